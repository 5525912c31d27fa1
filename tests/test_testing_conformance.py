"""The conformance suite catches broken adapters, each with a named failing scenario."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel.actions import Post, PrivateReply, React, Reply, Sent  # noqa: E402
from omnichannel.adapter import Adapter, Batch  # noqa: E402
from omnichannel.errors import NetworkError, OmnichannelError, TokenExpired  # noqa: E402
from omnichannel.model import Message  # noqa: E402
from omnichannel.testing.conformance import AdapterConformance  # noqa: E402
from omnichannel.text import TextRule  # noqa: E402
from omnichannel_chirp import ChirpAdapter, _wire  # noqa: E402
from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402

pytest_plugins = ["pytester"]


class WrongThreading(ChirpAdapter):
    """Answers the thread's root instead of the message replied to."""

    def reply_to_id(self, message: Message) -> str:
        return message.conversation.id


class DoublePosting(ChirpAdapter):
    """Cannot find a message whose response was lost, so the outbox posts it again."""

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        return None


class UndeclaredHide(ChirpAdapter):
    """Hides comments but does not declare it."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={"hide": False})


class DeclaredButMissingReact(ChirpAdapter):
    """Declares reactions but never sends them."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={"reactions": ("like",)})

    async def react(self, action: React) -> Sent:
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)


class WrongEmojiOffsetIn(ChirpAdapter):
    """Reads Chirp's UTF-16 offsets as code points."""

    def read_offset(self, text: str, offset: int) -> int:
        return offset


class WrongEmojiOffsetOut(ChirpAdapter):
    """Writes code-point offsets where Chirp wants UTF-16 units."""

    def write_offset(self, text: str, index: int) -> int:
        return index


class StreamingChirp(ChirpAdapter):
    """Streams by polling through a held channel (as over a connection) it must close."""

    capabilities = ChirpAdapter.capabilities.model_copy(
        update={"inbound": ChirpAdapter.capabilities.inbound | {"stream"}}
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stream_log: list[str] = []

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        send, receive = anyio.create_memory_object_stream[Batch](1)
        self.stream_log.append("opened")
        try:
            while True:
                batch = await self.poll(cursor)
                cursor = batch.cursor or cursor
                await send.send(batch)
                yield await receive.receive()
                if not batch.more:
                    await anyio.sleep(0.01)
        finally:
            await send.aclose()  # a cleanup that awaits, as closing a connection does
            await receive.aclose()
            self.stream_log.append("closed")


def suite_for(adapter: type[Adapter]) -> AdapterConformance:
    """Build the conformance suite for one adapter class against the Chirp sandbox."""

    class Suite(AdapterConformance):
        adapter_class = adapter
        sandbox_class = ChirpSandbox

    return Suite()


CAUGHT = [
    pytest.param(WrongThreading, "test_replies_in_thread", "not the message replied to",
                 id="wrong-threading"),
    pytest.param(DoublePosting, "test_lost_response_does_not_double_post",
                 "find_sent did not find", id="double-post"),
    pytest.param(DoublePosting, "test_outbox_resend_after_lost_response_posts_once",
                 "posted 2 times", id="double-post-outbox"),
    pytest.param(UndeclaredHide, "test_hides_comment", "hide works but is not declared",
                 id="undeclared-hide"),
    pytest.param(UndeclaredHide, "test_capabilities_match_behaviour",
                 "hide: works but is not declared", id="undeclared-hide-table"),
    pytest.param(DeclaredButMissingReact, "test_reacts", "react is declared but",
                 id="declared-missing-react"),
    pytest.param(DeclaredButMissingReact, "test_capabilities_match_behaviour",
                 "react: declared but had no effect", id="declared-missing-react-table"),
    pytest.param(WrongEmojiOffsetIn, "test_inbound_entities_keep_offsets", "Mention",
                 id="emoji-offset-in"),
    pytest.param(WrongEmojiOffsetOut, "test_outbound_entities_keep_offsets", "invalid_entities",
                 id="emoji-offset-out"),
]


@pytest.mark.parametrize(("broken", "scenario", "says"), CAUGHT)
async def test_named_scenario_fails_for_broken_adapter(
    broken: type[ChirpAdapter], scenario: str, says: str
) -> None:
    """Each deliberately broken adapter fails its named scenario, which passes for the real one."""
    good = suite_for(ChirpAdapter)
    async with good.open_conformance("inprocess") as env:
        await getattr(good, scenario)(env)
    bad = suite_for(broken)
    async with bad.open_conformance("inprocess") as env:
        with pytest.raises((AssertionError, OmnichannelError)) as info:
            await getattr(bad, scenario)(env)
    assert says in str(info.value)


def test_broken_adapter_fails_in_a_real_pytest_run(pytester: pytest.Pytester) -> None:
    """Run through pytest, a subclass for a broken adapter reports the named test as failed."""
    pytester.makeconftest("""
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
""")
    pytester.makepyfile(test_chirp=f"""
import sys
sys.path.insert(0, {str(TUTORIAL)!r})
from omnichannel_chirp import ChirpAdapter
from omnichannel_chirp.sandbox import ChirpSandbox
from omnichannel.testing.conformance import AdapterConformance


class WrongThreading(ChirpAdapter):
    def reply_to_id(self, message):
        return message.conversation.id


class TestWrongThreading(AdapterConformance):
    adapter_class = WrongThreading
    sandbox_class = ChirpSandbox
""")
    result = pytester.runpytest_inprocess(
        "-p", "anyio", "-m", "conformance", "-k", "replies_in_thread or receives_public",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_replies_in_thread[[]inprocess[]]*"])


async def test_scenarios_close_the_streams_they_read() -> None:
    """The stream scenario and the capability probe close their stream before they return."""
    suite = suite_for(StreamingChirp)
    async with suite.open_conformance("inprocess") as env:
        adapter = env.adapter
        assert isinstance(adapter, StreamingChirp)
        await suite.test_streams(env)  # type: ignore[attr-defined]
        after_scenario = list(adapter.stream_log)
        await suite.test_capabilities_match_behaviour(env)  # type: ignore[attr-defined]
        after_probe = list(adapter.stream_log)
    assert after_scenario == ["opened", "closed"]
    assert after_probe == ["opened", "closed", "opened", "closed"]


# Planted mistakes for the scenarios that guard the outbox, credentials and the inbox.


class FindsNewest(ChirpAdapter):
    """find_sent answers our newest message, whatever it is."""

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        feed = "/me/dms" if self._private(action) else "/me/posts"
        page = await self.page(feed)
        if not page.data:
            return None
        if self._private(action):
            return self._sent(action, _wire.ChirpDM.model_validate(page.data[0]))
        return self._sent(action, _wire.ChirpPost.model_validate(page.data[0]))


class RetriesItself(ChirpAdapter):
    """Sends again, after a pause, when the first try failed."""

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        try:
            return await super().send(action)
        except NetworkError:
            await anyio.sleep(0.001)
            return await super().send(action)


class SleepsItself(ChirpAdapter):
    """Paces its own sends with a sleep."""

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        await anyio.sleep(0.001)
        return await super().send(action)


class CountsGraphemes(ChirpAdapter):
    """Counts graphemes where Chirp counts code points (lets too-long texts through)."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={
        "text": TextRule.graphemes(280), "dm_text": TextRule.graphemes(1000)})


class CountsBytes(ChirpAdapter):
    """Counts UTF-8 bytes where Chirp counts code points (refuses texts Chirp takes)."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={
        "text": TextRule(unit="utf8_bytes", limit=280),
        "dm_text": TextRule(unit="utf8_bytes", limit=1000)})


class SwallowsErrors(ChirpAdapter):
    """A listener that turns every failure into an empty page."""

    async def poll(self, cursor: str | None) -> Batch:
        try:
            return await super().poll(cursor)
        except OmnichannelError:
            return Batch(cursor=cursor)


class HidesExpiry(ChirpAdapter):
    """Answers an empty page while its token is expired."""

    async def poll(self, cursor: str | None) -> Batch:
        try:
            return await super().poll(cursor)
        except TokenExpired:
            return Batch(cursor=cursor)


class NotFromUs(ChirpAdapter):
    """Never marks our own direct messages as ours."""

    def message_from_dm(self, dm: _wire.ChirpDM) -> Message:
        return super().message_from_dm(dm).model_copy(update={"from_us": False})


class NewestFirst(ChirpAdapter):
    """Delivers each page newest first."""

    async def poll(self, cursor: str | None) -> Batch:
        batch = await super().poll(cursor)
        return batch.model_copy(update={"events": tuple(reversed(batch.events))})


class ReceiptTime(ChirpAdapter):
    """Stamps messages with the time they were read, not the network's."""

    def message_from_post(self, post: _wire.ChirpPost) -> Message:
        message = super().message_from_post(post)
        return message.model_copy(update={"created_at": datetime.now(UTC)})


class CatchesUpToNow(ChirpAdapter):
    """When more than a page waits, jumps to the newest page (the rest is lost)."""

    async def poll(self, cursor: str | None) -> Batch:
        batch = await super().poll(cursor)
        if not batch.more:
            return batch
        newest = await super().poll(None)
        return Batch(events=batch.events + newest.events, cursor=newest.cursor,
                     rejected=batch.rejected)


class ForgetsRejected(ChirpAdapter):
    """Skips malformed items without reporting them."""

    async def poll(self, cursor: str | None) -> Batch:
        return (await super().poll(cursor)).model_copy(update={"rejected": ()})


class StallsOnBadItem(ChirpAdapter):
    """Converts items directly instead of through `convert_item`: one bad item fails the page."""

    async def poll(self, cursor: str | None) -> Batch:
        mention_since, dm_since = (cursor or ":").partition(":")[::2]
        mentions = await self.page("/mentions", since=mention_since)
        dms = await self.page("/dms", since=dm_since)
        events = [self.event_from(feed, item)
                  for feed, page in (("mentions", mentions), ("dms", dms)) for item in page.data]
        return Batch(events=tuple(events),
                     cursor=f"{mentions.next_since or mention_since}:{dms.next_since or dm_since}",
                     more=mentions.has_more or dms.has_more)


class ClaimsEdits(ChirpAdapter):
    """Declares inbound edits and deletions that Chirp's feeds never deliver."""

    capabilities = ChirpAdapter.capabilities.model_copy(
        update={"inbound_edits": True, "inbound_deletes": True})


PLANTED = [
    pytest.param(DoublePosting, "test_find_sent_finds_a_public_reply_among_decoys",
                 "find_sent answered None", id="find-sent-none"),
    pytest.param(DoublePosting, "test_find_sent_finds_a_direct_reply_among_decoys",
                 "find_sent answered None", id="find-sent-none-direct"),
    pytest.param(FindsNewest, "test_find_sent_finds_a_public_reply_among_decoys",
                 "another of our messages", id="find-sent-newest"),
    pytest.param(FindsNewest, "test_find_sent_finds_a_direct_reply_among_decoys",
                 "another of our messages", id="find-sent-newest-direct"),
    pytest.param(RetriesItself, "test_failed_create_is_not_retried_by_the_adapter",
                 "retries by itself", id="retries-itself"),
    pytest.param(SleepsItself, "test_failed_create_is_not_retried_by_the_adapter",
                 "never sleep in an adapter", id="sleeps-itself"),
    pytest.param(CountsGraphemes, "test_text_limit_counts_the_networks_unit",
                 "over the network's limit", id="counts-graphemes"),
    pytest.param(CountsBytes, "test_text_limit_counts_the_networks_unit",
                 "exactly the network's limit", id="counts-bytes"),
    pytest.param(SwallowsErrors, "test_revoked_credentials_after_open_raise",
                 "swallows errors", id="swallows-revoked"),
    pytest.param(SwallowsErrors, "test_failing_poll_raises_instead_of_an_empty_page",
                 "swallows errors", id="swallows-failures"),
    pytest.param(HidesExpiry, "test_expired_token_is_refreshed_once_or_raises",
                 "without refreshing it", id="hides-expiry"),
    pytest.param(NotFromUs, "test_own_messages_are_marked_from_us",
                 "the bot would answer itself", id="not-from-us"),
    pytest.param(NewestFirst, "test_conversation_events_keep_order_and_network_times",
                 "oldest first", id="newest-first"),
    pytest.param(ReceiptTime, "test_conversation_events_keep_order_and_network_times",
                 "use the network's time", id="receipt-time"),
    pytest.param(CatchesUpToNow, "test_burst_larger_than_a_page_is_delivered_whole",
                 "never delivered", id="drops-burst"),
    pytest.param(ForgetsRejected, "test_malformed_item_is_rejected_and_the_rest_delivered",
                 "not reported in Batch.rejected", id="forgets-rejected"),
    pytest.param(StallsOnBadItem, "test_malformed_item_is_rejected_and_the_rest_delivered",
                 "one malformed item made poll raise", id="stalls-on-bad-item"),
    pytest.param(ClaimsEdits, "test_inbound_edits_and_deletes",
                 "inbound_edits is declared but nothing arrived", id="claims-edits"),
]


@pytest.mark.parametrize(("broken", "scenario", "says"), PLANTED)
async def test_planted_mistake_fails_its_named_scenario(
    broken: type[ChirpAdapter], scenario: str, says: str
) -> None:
    """Each mistake planted alone into the tutorial adapter fails its named scenario."""
    bad = suite_for(broken)
    async with bad.open_conformance("inprocess") as env:
        with pytest.raises(AssertionError) as info:
            await getattr(bad, scenario)(env)
    assert says in str(info.value)


def test_every_new_scenario_has_a_planted_mistake() -> None:
    """Each scenario the planted mistakes target is one the suite runs (no typo hides one)."""
    scenarios = {p.values[1] for p in PLANTED}
    assert scenarios <= {n for n in dir(AdapterConformance) if n.startswith("test_")}


def test_reference_lists_every_scenario() -> None:
    """docs/reference/testing.md has a row for every scenario the suite runs."""
    page = (TUTORIAL.parent.parent / "docs" / "reference" / "testing.md").read_text("utf-8")
    scenarios = [n for n in dir(AdapterConformance) if n.startswith("test_")]
    assert [n for n in scenarios if f"`{n}`" not in page] == []
