"""Listening mode: Jetstream posts about us, resumed by cursor, in-process and over loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import pytest

from omnichannel.adapter import Batch
from omnichannel.errors import ConfigurationError, TransientError
from omnichannel.events import Event, MessageDeleted, MessageReceived, MessageUpdated
from omnichannel.http import RetryPolicy
from omnichannel.hub import Context, Hub
from omnichannel.store import MemoryStore
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky.sandbox import BlueskySandbox


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Listening mode runs on asyncio and on trio."""
    return str(request.param)


@asynccontextmanager
async def opened(
    sandbox: BlueskySandbox, *, base_url: str | None = None, **settings: Any
) -> AsyncIterator[BlueskyAdapter]:
    """An adapter on the sandbox: in-process, or over loopback when ``base_url`` is given."""
    transport = None if base_url else sandbox.transport()
    adapter = BlueskyAdapter({**sandbox.adapter_settings(base_url=base_url), **settings},
                             transport=transport, retry=RetryPolicy.testing())
    async with adapter:
        yield adapter


async def take(adapter: BlueskyAdapter, count: int, cursor: str | None = None) -> list[Batch]:
    """The first ``count`` batches with events from the stream (checkpoints skipped)."""
    batches: list[Batch] = []
    with anyio.fail_after(10):
        async with aclosing(adapter.stream(cursor)) as stream:
            async for batch in stream:
                if batch.events:
                    batches.append(batch)
                if len(batches) == count:
                    break
    return batches


def texts(batches: list[Batch]) -> list[str]:
    """The texts of the messages in some batches."""
    return [e.message.text for b in batches for e in b.events if isinstance(e, MessageReceived)]


async def test_stream_keeps_mentions_replies_and_keywords_only() -> None:
    """Of five posts, the mention, the reply to us and the keyword post come through."""
    sandbox = BlueskySandbox(seed=20)
    bob = sandbox.customer("bob")
    ours = sandbox.our_post("New arrivals 🛍️")
    sandbox.world.add_post(bob, "unrelated chatter")
    sandbox.customer_mention("where is my order?", author=bob)
    sandbox.world.add_post(bob, "anyone tried their REFUND process? 🤔")
    sandbox.customer_reply(ours, "love it", author=bob)
    async with opened(sandbox, keywords=("refund",)) as adapter:
        batches = await take(adapter, 3)
    assert texts(batches) == [
        "@shop.bsky.social where is my order?",
        "anyone tried their REFUND process? 🤔",
        "love it",
    ]
    cursors = [json.loads(b.cursor or "{}")["t"] for b in batches]
    assert cursors == sorted(cursors)


async def test_streamed_mention_has_the_same_event_id_as_polled() -> None:
    """The same mention seen by Jetstream and by polling carries one event id and address."""
    sandbox = BlueskySandbox(seed=21)
    sandbox.customer_mention("double delivery 📬")
    async with opened(sandbox) as adapter:
        (batch,) = await take(adapter, 1)
        polled = await adapter.poll(None)
    streamed = batch.events[0]
    assert isinstance(streamed, MessageReceived)
    (received,) = polled.events
    assert isinstance(received, MessageReceived)
    assert streamed.id == received.id
    assert streamed.message.ref == received.message.ref
    assert streamed.message.conversation == received.message.conversation
    assert [e.type for e in streamed.message.entities] == ["mention"]


async def test_resuming_at_a_cursor_skips_what_was_seen() -> None:
    """A stream restarted at the last batch's cursor yields only newer posts."""
    sandbox = BlueskySandbox(seed=22)
    for n in range(3):
        sandbox.customer_mention(f"early {n}")
    async with opened(sandbox) as adapter:
        first = await take(adapter, 2)
        sandbox.customer_mention("late")
        resumed = await take(adapter, 2, cursor=first[-1].cursor)
    assert texts(first) == ["@shop.bsky.social early 0", "@shop.bsky.social early 1"]
    assert texts(resumed) == ["@shop.bsky.social early 2", "@shop.bsky.social late"]


async def test_dropped_connection_reconnects_at_the_last_time_us() -> None:
    """After the connection drops, the stream reconnects with its cursor: nothing twice."""
    sandbox = BlueskySandbox(seed=23)
    for n in range(4):
        sandbox.customer_mention(f"m{n}")
    sandbox.jetstream.drop_after = 2
    async with opened(sandbox) as adapter:
        batches = await take(adapter, 4)
    assert texts(batches) == [f"@shop.bsky.social m{n}" for n in range(4)]
    assert sandbox.jetstream.connections == 2


async def test_replayed_golden_events_pass_the_filter(
    jetstream_lines: Callable[[str], list[str]],
) -> None:
    """Recorded Jetstream events replayed by the sandbox are filtered like live ones."""
    sandbox = BlueskySandbox(seed=24)
    sandbox.jetstream.replay(jetstream_lines("golden_v1") + jetstream_lines("expected_v1"))
    async with opened(sandbox, keywords=("rsv", "rebellion")) as adapter:
        batches = await take(adapter, 2)
    assert texts(batches)[0] == "Try RSV for a good time !!"
    assert "#IndieRebellion" in texts(batches)[1]
    assert json.loads(batches[0].cursor or "{}") == {"t": 1779719009157119}


async def test_stream_over_loopback_websocket() -> None:
    """Served by uvicorn, the Jetstream endpoint streams over a real WebSocket."""
    sandbox = BlueskySandbox(seed=25)
    sandbox.customer_mention("over the wire 🔌")
    async with sandbox.serve() as url, opened(sandbox, base_url=url) as adapter:
        (batch,) = await take(adapter, 1)
        sandbox.customer_mention("and a live one")
        later = await take(adapter, 1, cursor=batch.cursor)
    assert texts([batch]) == ["@shop.bsky.social over the wire 🔌"]
    assert texts(later) == ["@shop.bsky.social and a live one"]


async def test_poll_cursor_resumes_the_stream_and_stream_cursor_resumes_polling() -> None:
    """A cursor from poll starts the stream; the stream's cursor still resumes polling."""
    sandbox = BlueskySandbox(seed=27)
    sandbox.customer_mention("seen by polling")
    async with opened(sandbox) as adapter:
        polled = await adapter.poll(None)
        sandbox.customer_mention("seen by streaming")
        streamed = await take(adapter, 1, cursor=polled.cursor)
        sandbox.customer_mention("seen by polling again")
        again = await adapter.poll(streamed[-1].cursor)
    assert texts(streamed)[-1] == "@shop.bsky.social seen by streaming"
    state = json.loads(streamed[-1].cursor or "{}")
    assert state["n"] == json.loads(polled.cursor or "{}")["n"]
    assert [e.message.text for e in again.events if isinstance(e, MessageReceived)] == [
        "@shop.bsky.social seen by streaming", "@shop.bsky.social seen by polling again"]


async def listened(
    adapter: BlueskyAdapter, sandbox: BlueskySandbox, write: Callable[[], object],
    wanted: set[str],
    *, store: MemoryStore | None = None,
) -> dict[str, str | None]:
    """Run a hub over ``adapter`` until messages with all ``wanted`` texts came.

    ``write`` runs once the hub listens (and, in listening mode, Jetstream is
    connected). Returns the cursor stored for each source.
    """
    store = store or MemoryStore()
    hub = Hub(adapters=[adapter], store=store, listener_backoff=(0.01, 0.1))
    seen: set[str] = set()

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.add(event.message.text)

    async with hub, anyio.create_task_group() as tg:
        await tg.start(hub.run)
        with anyio.fail_after(10):
            if adapter.settings.listening:
                await _until(lambda: sandbox.jetstream.connections > 0)
            write()
            await _until(lambda: wanted <= seen)
        names = ("default", "notifications", "chat", "jetstream")
        cursors = {name: await store.get_cursor("bluesky", name) for name in names}
        tg.cancel_scope.cancel()
    return cursors


async def _until(check: Callable[[], bool]) -> None:
    while True:
        if check():
            return
        await anyio.sleep(0.01)


async def test_the_hub_streams_jetstream_and_still_polls_dms_in_listening_mode() -> None:
    """With listening on, keyword posts come from Jetstream and DMs from the chat source."""
    sandbox = BlueskySandbox(seed=28)
    bob = sandbox.customer("bob")

    def write() -> None:
        sandbox.world.add_post(bob, "my refund never came")
        sandbox.customer_dm("psst, a private question", author=bob)

    async with opened(sandbox, keywords=("refund",), listening=True,
                      poll_interval=0.05) as adapter:
        assert [s.name for s in adapter.sources()] == ["notifications", "chat", "jetstream"]
        cursors = await listened(adapter, sandbox, write,
                                 {"my refund never came", "psst, a private question"})
    assert sandbox.jetstream.connections >= 1
    assert cursors["default"] is None
    assert (cursors["jetstream"] or "").isdigit()
    assert cursors["chat"]
    assert cursors["notifications"]


async def test_the_hub_only_polls_without_listening_mode() -> None:
    """By default the hub polls notifications and chat, and Jetstream is never opened."""
    sandbox = BlueskySandbox(seed=29)

    def write() -> None:
        sandbox.customer_mention("tagged you")
        sandbox.customer_dm("and a DM")

    async with opened(sandbox, keywords=("refund",), poll_interval=0.05) as adapter:
        assert [s.name for s in adapter.sources()] == ["notifications", "chat"]
        await listened(adapter, sandbox, write, {"@shop.bsky.social tagged you", "and a DM"})
    assert sandbox.jetstream.connections == 0


async def test_the_hub_reconnects_a_dropped_jetstream_at_its_stored_time_us() -> None:
    """The hub reopens the jetstream source after a drop: every post once, none lost."""
    sandbox = BlueskySandbox(seed=32)
    bob = sandbox.customer("bob")
    store = MemoryStore()
    handled: list[str] = []

    def write() -> None:
        sandbox.jetstream.drop_after = 2
        for n in range(4):
            sandbox.world.add_post(bob, f"refund {n}, please")

    async with opened(sandbox, keywords=("refund",), listening=True,
                      poll_interval=60.0) as adapter:
        hub = Hub(adapters=[adapter], store=store, listener_backoff=(0.01, 0.1))

        @hub.on(MessageReceived)
        async def record(event: MessageReceived, ctx: Context) -> None:
            handled.append(event.message.text)

        async with hub, anyio.create_task_group() as tg:
            await tg.start(hub.run)
            with anyio.fail_after(10):
                await _until(lambda: sandbox.jetstream.connections > 0)
                write()
                await _until(lambda: len(set(handled)) == 4)
            await hub.wait_idle()
            cursor = await store.get_cursor("bluesky", "jetstream")
            tg.cancel_scope.cancel()
    assert sorted(handled) == [f"refund {n}, please" for n in range(4)]
    assert sandbox.jetstream.connections == 2
    assert (cursor or "").isdigit()


async def test_listen_alone_polls_unless_listening_mode_is_on() -> None:
    """``listen()`` called directly polls by default, and never opens Jetstream."""
    sandbox = BlueskySandbox(seed=30)
    sandbox.customer_dm("a DM for the script")
    async with opened(sandbox, poll_interval=0.01) as adapter:
        with anyio.fail_after(10):
            async with aclosing(adapter.listen(None)) as batches:
                async for batch in batches:
                    if texts([batch]):
                        break
    assert texts([batch]) == ["a DM for the script"]
    assert sandbox.jetstream.connections == 0


async def test_a_cursor_stored_before_sources_is_split_into_theirs() -> None:
    """An upgrade resumes notifications, chat and Jetstream where the packed cursor stood."""
    sandbox = BlueskySandbox(seed=31)
    sandbox.customer_mention("before the upgrade")
    async with opened(sandbox, listening=True) as adapter:
        polled = await adapter.poll(None)
    packed = json.loads(polled.cursor or "{}")
    packed["t"] = 1_700_000_000_000_000
    store = MemoryStore()
    async with store:
        await store.record_batch("bluesky", [], cursor=json.dumps(packed), stream="default")

    sandbox.customer_mention("while upgrading")  # after the packed cursor: must not be lost

    def write() -> None:
        sandbox.customer_mention("after the upgrade")

    wanted = {"@shop.bsky.social while upgrading", "@shop.bsky.social after the upgrade"}
    async with opened(sandbox, listening=True, poll_interval=0.05) as adapter:
        cursors = await listened(adapter, sandbox, write, wanted, store=store)
    notifications = json.loads(cursors["notifications"] or "{}")
    assert notifications["n"] >= packed["n"]
    assert set(notifications) <= {"n", "u", "b"}
    assert cursors["chat"] is not None
    assert int(cursors["jetstream"] or 0) >= packed["t"]
    async with opened(sandbox) as adapter:
        assert adapter.split_cursor(json.dumps(packed)) == {
            "notifications": json.dumps({"n": packed["n"], "u": packed["u"]},
                                        separators=(",", ":"), sort_keys=True),
            "chat": packed["c"],
            "jetstream": str(packed["t"]),
        }


async def test_bad_cursor_is_configuration_error() -> None:
    """A stream cursor that is not a time_us is refused."""
    sandbox = BlueskySandbox(seed=26)
    async with opened(sandbox) as adapter:
        with pytest.raises(ConfigurationError):
            await take(adapter, 1, cursor="yesterday")


# --- edits and deletions ------------------------------------------------------------


async def events_until(adapter: BlueskyAdapter, count: int, cursor: str | None = None
                       ) -> tuple[list[Event], str | None]:
    """The first ``count`` events the stream gives (checkpoints skipped), and the last cursor."""
    batches = await take(adapter, count, cursor)
    return [e for b in batches for e in b.events], batches[-1].cursor


async def test_edit_and_deletion_of_a_delivered_post_are_updated_and_deleted() -> None:
    """A streamed complaint, then its edit and its deletion: received, updated, deleted."""
    sandbox = BlueskySandbox(seed=40)
    complaint = sandbox.customer_mention("my order is late")
    async with opened(sandbox) as adapter:
        (first,), cursor = await events_until(adapter, 1)
        sandbox.customer_edit(complaint, "@shop.bsky.social my order is late AND damaged")
        sandbox.customer_delete(complaint)
        (edited, gone), _ = await events_until(adapter, 2, cursor=cursor)
    assert isinstance(first, MessageReceived)
    assert isinstance(edited, MessageUpdated)
    assert isinstance(gone, MessageDeleted)
    assert edited.message.ref.id == first.message.ref.id == complaint.id
    assert edited.message.text == "@shop.bsky.social my order is late AND damaged"
    assert edited.message.ref.extra["cid"] == sandbox.cid_of(complaint)
    assert edited.message.ref.extra["cid"] != first.message.ref.extra["cid"]
    assert edited.message.edited_at == edited.occurred_at
    assert edited.id == f"bluesky:message.updated:{complaint.id}:{sandbox.cid_of(complaint)}"
    assert gone.message.id == complaint.id
    assert gone.conversation is not None
    assert gone.conversation.id == first.message.conversation.id
    assert gone.id == f"bluesky:message.deleted:{complaint.id}"


async def test_changes_to_posts_never_delivered_are_not_events() -> None:
    """Edits and deletions of posts that never concerned us stay out of the stream."""
    sandbox = BlueskySandbox(seed=41)
    bob = sandbox.customer("bob")
    chatter = sandbox.world.add_post(bob, "lunch was great")
    sandbox.customer_edit(chatter, "lunch was great, again")
    sandbox.customer_delete(chatter)
    sandbox.customer_mention("the only one for us", author=bob)
    async with opened(sandbox) as adapter:
        events, _ = await events_until(adapter, 1)
    assert [type(e) for e in events] == [MessageReceived]
    assert texts([Batch(events=tuple(events))]) == ["@shop.bsky.social the only one for us"]


async def test_edit_that_makes_a_post_concern_us_is_an_update() -> None:
    """A post edited to name a keyword comes as MessageUpdated with the whole new text."""
    sandbox = BlueskySandbox(seed=42)
    bob = sandbox.customer("bob")
    sandbox.customer_mention("hello", author=bob)
    async with opened(sandbox, keywords=("refund",)) as adapter:
        _, cursor = await events_until(adapter, 1)
        chatter = sandbox.world.add_post(bob, "the parcel came")
        sandbox.customer_edit(chatter, "the parcel came broken, I want a refund")
        (edited,), _ = await events_until(adapter, 1, cursor=cursor)
    assert isinstance(edited, MessageUpdated)
    assert edited.message.ref.id == chatter.id
    assert edited.message.text == "the parcel came broken, I want a refund"


async def test_deletion_of_a_polled_mention_reaches_the_stream() -> None:
    """A mention seen by polling is known to listening mode: its deletion is an event."""
    sandbox = BlueskySandbox(seed=43)
    mention = sandbox.customer_mention("please call me")
    async with opened(sandbox) as adapter:
        polled = await adapter.poll(None)
        sandbox.customer_delete(mention)
        (gone,), _ = await events_until(adapter, 1, cursor=polled.cursor)
    assert [type(e) for e in polled.events] == [MessageReceived]
    assert isinstance(gone, MessageDeleted)
    assert gone.message.id == mention.id
    assert gone.conversation is not None
    assert gone.conversation.id == mention.id


async def test_malformed_post_event_is_rejected_and_the_stream_goes_on() -> None:
    """A post event about us that does not parse comes in Batch.rejected; the next one arrives."""
    sandbox = BlueskySandbox(seed=44)
    broken = ('{"did":"did:plc:x","time_us":5,"kind":"commit","commit":{"rev":"r",'
              '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
              '"record":{"text":["@shop.bsky.social"]}}}')
    sandbox.jetstream.replay([broken])
    sandbox.customer_mention("after the bad one")
    batches: list[Batch] = []
    async with opened(sandbox) as adapter:
        with anyio.fail_after(10):
            async with aclosing(adapter.stream(None)) as stream:
                async for batch in stream:
                    if batch.events or batch.rejected:
                        batches.append(batch)
                    if batch.events:
                        break
    rejected, delivered = batches
    (refused,) = rejected.rejected
    assert refused.path == "commit.record.text"
    assert refused.body == broken.encode()
    assert json.loads(rejected.cursor or "{}")["t"] == 5
    assert texts([delivered]) == ["@shop.bsky.social after the bad one"]


# --- reconnecting ------------------------------------------------------------------


async def test_drops_before_any_event_are_retried_up_to_the_limit() -> None:
    """Two connections dropped at once, then one that works: the stream delivers."""
    sandbox = BlueskySandbox(seed=45)
    sandbox.customer_mention("third time lucky")
    sandbox.jetstream.drop_connections = 2
    async with opened(sandbox, stream_reconnects=2) as adapter:
        batches = await take(adapter, 1)
    assert texts(batches) == ["@shop.bsky.social third time lucky"]
    assert sandbox.jetstream.connections == 3


async def test_stream_gives_up_after_its_reconnections_in_a_row() -> None:
    """One drop more than settings.stream_reconnects, with no event between, raises."""
    sandbox = BlueskySandbox(seed=46)
    sandbox.customer_mention("never seen")
    sandbox.jetstream.drop_connections = 3
    async with opened(sandbox, stream_reconnects=2) as adapter:
        with pytest.raises(TransientError) as info:
            await take(adapter, 1)
    assert info.value.network == "bluesky"
    assert "3 times in a row" in str(info.value)
    assert sandbox.jetstream.connections == 3


async def test_clean_close_reconnects_without_counting_a_drop() -> None:
    """A server closing cleanly (a restart) is reconnected at once, even with no drops allowed."""
    sandbox = BlueskySandbox(seed=47)
    for n in range(3):
        sandbox.customer_mention(f"c{n}")
    sandbox.jetstream.close_after = 1
    async with opened(sandbox, stream_reconnects=0) as adapter:
        batches = await take(adapter, 3)
    assert texts(batches) == [f"@shop.bsky.social c{n}" for n in range(3)]
    assert sandbox.jetstream.connections == 2


async def test_jetstream_never_sees_our_token() -> None:
    """The WebSocket handshake carries no Authorization header, in-process and on loopback."""
    sandbox = BlueskySandbox(seed=48)
    sandbox.customer_mention("hello")
    async with opened(sandbox) as adapter:
        await take(adapter, 1)
    async with sandbox.serve() as url, opened(sandbox, base_url=url) as adapter:
        await take(adapter, 1)
    assert len(sandbox.jetstream.handshakes) == 2
    for headers in sandbox.jetstream.handshakes:
        assert headers["upgrade"].lower() == "websocket"
        assert "authorization" not in headers



async def test_a_first_run_position_starts_jetstream_live() -> None:
    """A first run's position asks Jetstream for the live tail, not the newest mention's time.

    (Real Jetstream starts at the live tail without a cursor; the sandbox's
    replays its whole feed, so this checks the cursor the adapter resumes with.)
    """
    sandbox = BlueskySandbox(seed=30)
    sandbox.customer_mention("an old mention")
    async with opened(sandbox, listening=True) as adapter:
        position = await adapter.backlog()
        sandbox.customer_mention("a new mention")
        polled = await adapter.poll(position.cursor)
    start = json.loads(position.cursor or "{}")
    assert position.events == ()
    assert start["l"] is True
    assert "t" not in start
    assert start["n"]  # polling resumes after the newest notification
    assert [e.message.text for e in polled.events if isinstance(e, MessageReceived)] == [
        "@shop.bsky.social a new mention"]
    assert json.loads(polled.cursor or "{}")["l"] is True  # until Jetstream gives a time_us
