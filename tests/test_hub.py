"""The hub's inbound pipeline and handlers, proven with the test-local testnet adapter."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    running,
)

from omnichannel.adapter import WebhookRequest
from omnichannel.errors import ActionError, CapabilityNotSupported, ConfigurationError, TextTooLong
from omnichannel.events import Event, MessageReceived, ReactionAdded, event_id
from omnichannel.hub import Context, Hub
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.policy import AutoSend
from omnichannel.store import MemoryStore, SQLiteStore


def make_hub(fake: FakeNetwork, **options: object) -> Hub:
    """A hub over a memory store and one testnet adapter."""
    return Hub(adapters=[adapter_for(fake)], store=MemoryStore(), **options)  # type: ignore[arg-type]


async def test_handlers_receive_only_the_events_their_filters_match() -> None:
    """Event type, network, visibility, kind and a predicate each narrow what a handler gets."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    seen: dict[str, list[str]] = defaultdict(list)

    @hub.on(MessageReceived)
    async def every_message(event: MessageReceived, ctx: Context) -> None:
        seen["all"].append(event.message.text)

    @hub.on(MessageReceived, visibility="private")
    async def private_only(event: MessageReceived, ctx: Context) -> None:
        seen["private"].append(event.message.text)

    @hub.on(MessageReceived, kind="thread", network="testnet")
    async def threads(event: MessageReceived, ctx: Context) -> None:
        seen["thread"].append(event.message.text)

    @hub.on(MessageReceived, network="elsewhere")
    async def other_network(event: MessageReceived, ctx: Context) -> None:
        seen["elsewhere"].append(event.message.text)

    @hub.on(MessageReceived, when=lambda event: "refund" in event.message.text)
    async def refunds(event: MessageReceived, ctx: Context) -> None:
        seen["refund"].append(event.message.text)

    @hub.on(ReactionAdded)
    async def likes(event: ReactionAdded, ctx: Context) -> None:
        seen["like"].append(event.target.id)

    async with running(hub):
        first = fake.customer_says("hello in public")
        fake.customer_says("a private refund question", visibility="private")
        fake.customer_reacts(first["id"])
        await eventually(lambda: len(seen["like"]) == 1 and len(seen["all"]) == 2)
        await hub.wait_idle()

    # Two conversations are handled concurrently: no order between them (trio shuffles).
    assert sorted(seen["all"]) == ["a private refund question", "hello in public"]
    assert seen["private"] == ["a private refund question"]
    assert seen["thread"] == ["hello in public"]
    assert seen["refund"] == ["a private refund question"]
    assert seen["like"] == [first["id"]]
    assert "elsewhere" not in seen


async def test_event_seen_by_webhook_and_polling_is_handled_once() -> None:
    """The same event delivered by a webhook, again by it, and by polling runs the handler once."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    calls: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        calls.append(event.id)

    item = fake.message_item("my order is late")
    body = fake.webhook_body([item])
    async with running(hub, listen=False):
        adapter = hub.adapters["testnet"]
        transport = httpx.ASGITransport(app=hub.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            for _ in range(2):
                response = await c.post("/testnet", content=body, headers=fake.signed(body))
                assert response.status_code == 200
        fake.publish(item)
        batch = await adapter.poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()

    assert calls == ["testnet:message.received:" + item["id"]]


async def test_listener_resumes_from_the_stored_cursor_after_a_restart(tmp_path: Path) -> None:
    """A restarted hub on the same database polls from where it stopped and skips handled events."""
    fake = FakeNetwork()
    seen: list[str] = []

    def build() -> Hub:
        hub = Hub(adapters=[adapter_for(fake)], store=SQLiteStore(tmp_path / "hub.db"))

        @hub.on(MessageReceived)
        async def record(event: MessageReceived, ctx: Context) -> None:
            seen.append(event.message.text)

        return hub

    async with running(build()) as hub:
        for text in ("one", "two", "three"):
            fake.customer_says(text)
        await eventually(lambda: len(seen) == 3)
        await hub.wait_idle()
    for text in ("four", "five"):
        fake.customer_says(text)
    polls_before_restart = len(fake.polled_after)
    async with running(build()) as hub:
        await eventually(lambda: len(seen) == 5)
        await hub.wait_idle()
        assert await hub.store.get_cursor("testnet") == "5"

    # The restarted listener asked for what came after the stored cursor, not from the start.
    assert fake.polled_after[polls_before_restart] == 3

    # Each message is its own conversation, so handled in any order; each exactly once.
    assert sorted(seen) == ["five", "four", "one", "three", "two"]


async def test_messages_from_polling_and_webhooks_are_searchable(tmp_path: Path) -> None:
    """Messages that came in through the pipeline are found by full-text search in SQLite."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=SQLiteStore(tmp_path / "hub.db"))
    pushed = fake.message_item("Refunding takes too long", author="carol")
    body = fake.webhook_body([pushed])
    async with running(hub):
        fake.customer_says("Where is my refund? 😤 #late", author="alice")
        fake.customer_says("Love the new shoes!", author="bob")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hub.asgi), base_url="http://hub"
        ) as c:
            assert (await c.post("/testnet", content=body, headers=fake.signed(body))).is_success
        await eventually(lambda: _cursor_is(hub, "2"))
        exact = await hub.store.search("refund")
        prefix = await hub.store.search("refund*")
        none = await hub.store.search("invoice")

    assert [m.author.handle for m in exact] == ["alice"]
    assert sorted(m.author.handle or "" for m in prefix) == ["alice", "carol"]
    assert none == []


async def _cursor_is(hub: Hub, cursor: str) -> bool:
    return await hub.store.get_cursor("testnet") == cursor


async def test_events_of_one_conversation_are_handled_in_order_others_concurrently() -> None:
    """Within a conversation events are handled one by one in order; conversations overlap."""
    fake = FakeNetwork()
    hub = make_hub(fake, max_concurrency=4)
    order: dict[str, list[str]] = defaultdict(list)
    active: dict[str, int] = defaultdict(int)
    overlap = {"conversations": 0, "same_conversation": 0}
    both_started = anyio.Event()

    @hub.on(MessageReceived)
    async def slow(event: MessageReceived, ctx: Context) -> None:
        conversation = event.conversation.ref.id
        active[conversation] += 1
        if active[conversation] > 1:
            overlap["same_conversation"] += 1
        if len([c for c, n in active.items() if n]) > 1:
            overlap["conversations"] += 1
            both_started.set()
        # the first message of each conversation waits until both conversations are in flight
        if event.message.text.endswith("0"):
            with anyio.move_on_after(2):
                await both_started.wait()
        await anyio.lowlevel.checkpoint()
        order[conversation].append(event.message.text)
        active[conversation] -= 1

    async with running(hub):
        for i in range(5):
            fake.customer_says(f"a{i}", conversation="A")
            fake.customer_says(f"b{i}", conversation="B")
        await eventually(lambda: sum(len(v) for v in order.values()) == 10)

    assert order["A"] == [f"a{i}" for i in range(5)]
    assert order["B"] == [f"b{i}" for i in range(5)]
    assert overlap["same_conversation"] == 0
    assert overlap["conversations"] >= 1


async def test_conversations_take_turns_within_the_concurrency_limit() -> None:
    """At most ``max_concurrency`` events at once; a conversation with a backlog takes turns."""
    handled: list[str] = []
    active = {"now": 0, "most": 0}

    async def track(event: MessageReceived, ctx: Context) -> None:
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        handled.append(event.message.text)
        active["now"] -= 1

    async def deliver(limit: int, items: list[tuple[str, str]]) -> None:
        fake = FakeNetwork()
        hub = make_hub(fake, max_concurrency=limit)
        hub.on(MessageReceived)(track)
        body = fake.webhook_body([fake.message_item(text, conversation=conversation)
                                  for text, conversation in items])
        async with running(hub), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hub.asgi), base_url="http://hub"
        ) as c:
            assert (await c.post("/testnet", content=body, headers=fake.signed(body))).is_success
            await eventually(lambda: len(handled) == len(items))

    # one batch, queued conversation by conversation: each takes one event a turn
    await deliver(1, [(f"{c.lower()}{i}", c) for c in "ABC" for i in range(3)])
    assert handled == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert active["most"] == 1

    handled.clear()
    await deliver(4, [(f"x{i}", f"X{i}") for i in range(12)])
    assert active["most"] == 4


async def test_a_failing_handler_is_recorded_and_stops_nothing() -> None:
    """A handler's exception is stored with the event id; other handlers and later events run."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    handled: list[str] = []
    ids: list[str] = []

    @hub.on(MessageReceived)
    async def broken(event: MessageReceived, ctx: Context) -> None:
        raise RuntimeError(f"boom on {event.message.text}")

    @hub.on(MessageReceived)
    async def fine(event: MessageReceived, ctx: Context) -> None:
        handled.append(event.message.text)
        ids.append(event.id)

    async with running(hub):
        fake.customer_says("first")
        await eventually(lambda: handled == ["first"])
        fake.customer_says("second")
        await eventually(lambda: handled == ["first", "second"])
        await hub.wait_idle()
        failures = await hub.store.failures()
        assert await hub.store.unhandled_events() == []

    assert sorted(f.error for f in failures) == [
        "RuntimeError: boom on first", "RuntimeError: boom on second"
    ]
    assert {f.event_id for f in failures} == set(ids)
    assert all(f.handler.endswith("broken") for f in failures)


async def test_middleware_wraps_every_handler_call_in_order() -> None:
    """Middleware runs outermost first around each handler and can skip the handler."""
    fake = FakeNetwork()
    trail: list[str] = []

    async def outer(event: Event, ctx: Context, call_next: Callable[[], Awaitable[None]]) -> None:
        trail.append("outer in")
        await call_next()
        trail.append("outer out")

    hub = make_hub(fake, middleware=[outer])

    @hub.use
    async def gate(event: Event, ctx: Context, call_next: Callable[[], Awaitable[None]]) -> None:
        if ctx.handler.endswith("skipped"):
            trail.append("gate skips")
            return
        await call_next()

    @hub.on(MessageReceived)
    async def handler(event: MessageReceived, ctx: Context) -> None:
        trail.append("handler")

    @hub.on(MessageReceived)
    async def skipped(event: MessageReceived, ctx: Context) -> None:
        trail.append("never")

    async with running(hub):
        fake.customer_says("hi")
        await eventually(lambda: len(trail) == 6)

    assert trail == ["outer in", "handler", "outer out", "outer in", "gate skips", "outer out"]


async def test_reply_outcome_follows_the_policy() -> None:
    """By default a public reply is held as a draft and a private one is queued and delivered."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    outcomes: dict[str, str] = {}

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        delivery = await ctx.reply(f"Thanks for your message about {event.message.text}!")
        outcomes[event.message.text] = delivery.status

    async with running(hub):
        fake.customer_says("shoes")
        fake.customer_says("socks", visibility="private", author="bob")
        await eventually(lambda: len(fake.posted) == 1)
        pending = await hub.drafts.pending()

    assert outcomes == {"shoes": "held", "socks": "queued"}
    assert [d.action.text for d in pending] == ["Thanks for your message about shoes!"]
    assert fake.posted[0]["text"] == "Thanks for your message about socks!"
    assert fake.posted[0]["visibility"] == "private"


async def test_auto_send_policy_and_per_call_override() -> None:
    """With AutoSend public replies go out at once, unless the call says hold=True."""
    fake = FakeNetwork()
    hub = make_hub(fake, policy=AutoSend())
    outcomes: list[str] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        sent = await ctx.reply("We are on it, sorry for the wait.")
        held = await ctx.reply("Here is a refund voucher code.", hold=True)
        outcomes.extend([sent.status, held.status])

    async with running(hub):
        fake.customer_says("where is my parcel?")
        await eventually(lambda: len(fake.posted) == 1)

    assert outcomes == ["queued", "held"]
    assert fake.posted[0]["in_reply_to"] is not None


async def test_reply_is_checked_against_capabilities_before_anything_is_stored() -> None:
    """Too long a text or an unsupported reaction raises in the handler; nothing is queued."""
    fake = FakeNetwork()
    hub = make_hub(fake, policy=AutoSend())
    errors: list[type[Exception]] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        try:
            await ctx.reply("x" * 281)
        except TextTooLong as exc:
            errors.append(type(exc))
        try:
            await ctx.react("heart")
        except CapabilityNotSupported as exc:
            errors.append(type(exc))

    @hub.on(ReactionAdded)
    async def no_message(event: ReactionAdded, ctx: Context) -> None:
        try:
            await ctx.reply("thanks for the like")
        except ActionError as exc:
            errors.append(type(exc))

    async with running(hub):
        first = fake.customer_says("hi")
        fake.customer_reacts(first["id"])
        await eventually(lambda: len(errors) == 3)
        assert await hub.store.list_outbox() == []
        assert await hub.drafts.pending() == []

    assert errors == [TextTooLong, CapabilityNotSupported, ActionError]


async def test_react_and_hide_are_delivered_at_once() -> None:
    """Reactions and hiding skip the reply policy and reach the network."""
    fake = FakeNetwork()
    hub = make_hub(fake)

    @hub.on(MessageReceived)
    async def moderate(event: MessageReceived, ctx: Context) -> None:
        await ctx.react()
        if "spam" in event.message.text:
            await ctx.hide()

    async with running(hub):
        liked = fake.customer_says("nice shop")
        spam = fake.customer_says("buy spam now", author="spammer")
        await eventually(lambda: len(fake.reactions) == 2 and spam["id"] in fake.hidden)

    assert fake.reactions[(liked["id"], "like")] == 1
    assert fake.hidden == {spam["id"]: True}


async def test_history_reads_the_store_and_fetches_when_missing() -> None:
    """history() fetches an unknown conversation from the network once, then reads the store."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    histories: list[list[str]] = []

    @hub.on(MessageReceived, when=lambda event: event.message.text == "third")
    async def look_back(event: MessageReceived, ctx: Context) -> None:
        histories.append([m.text for m in await ctx.history()])
        histories.append([m.text for m in await ctx.history()])

    # the first two messages of the thread happened before the hub was listening
    fake.customer_says("first", conversation="T")
    fake.customer_says("second", conversation="T")
    third = fake.message_item("third", conversation="T")
    body = fake.webhook_body([third])
    fake.publish(third)
    async with running(hub, listen=False):
        adapter = hub.adapters["testnet"]
        events = adapter.parse(WebhookRequest(method="POST", body=body))
        await hub.ingest("testnet", events)
        await eventually(lambda: len(histories) == 2)

    assert histories == [["first", "second", "third"]] * 2


async def test_a_handler_run_again_after_a_crash_queues_nothing_twice() -> None:
    """A handler cancelled mid-way is run again on restart; its reply keeps its key, sent once."""
    fake = FakeNetwork()
    store = MemoryStore()
    runs: list[int] = []

    def build() -> Hub:
        hub = Hub(adapters=[adapter_for(fake)], store=store, policy=AutoSend())

        @hub.on(MessageReceived)
        async def reply_then_stall(event: MessageReceived, ctx: Context) -> None:
            runs.append(1)
            await ctx.reply("Thanks, a teammate is on it.")
            if len(runs) == 1:
                await anyio.sleep_forever()  # the process "dies" here

        return hub

    async with running(build(), deliver=False) as hub:
        fake.customer_says("help")
        await eventually(lambda: len(runs) == 1)
        await eventually(lambda: _outbox_size(hub, 1))
        assert len(await hub.store.unhandled_events()) == 1
    async with running(build()) as hub:
        await eventually(lambda: len(fake.posted) == 1 and len(runs) == 2)
        await hub.wait_idle()
        assert await hub.store.unhandled_events() == []
        assert len(await hub.store.list_outbox()) == 1

    assert list(fake.created.values()) == [1]


async def _outbox_size(hub: Hub, size: int) -> bool:
    return len(await hub.store.list_outbox()) == size


async def test_listener_survives_network_failures() -> None:
    """A listener whose polls fail backs off and carries on; the hub keeps running."""
    fake = FakeNetwork()
    hub = make_hub(fake, listener_backoff=(0.01, 0.02))
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    fake.fail_polls = 3  # with two tries per call: the first-run read and half the next fail
    async with running(hub):  # the hub runs although its listener could not start yet
        await eventually(lambda: _cursor_is(hub, "0"))
        assert fake.fail_polls == 0
        fake.customer_says("after a failed start")
        await eventually(lambda: seen == ["after a failed start"])
        fake.fail_polls = 3  # an outage while running
        fake.customer_says("during the outage")
        await eventually(lambda: seen == ["after a failed start", "during the outage"])
        fake.customer_says("after the outage")
        await eventually(lambda: seen[-1] == "after the outage")
    assert seen == ["after a failed start", "during the outage", "after the outage"]
    assert fake.fail_polls == 0


async def test_a_malformed_item_is_dead_lettered_and_the_rest_of_its_page_handled() -> None:
    """A bad item in a polled page becomes one dead letter; its neighbours are handled, once."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    async with running(hub):
        fake.customer_says("before")
        bad = fake.customer_says("broken")
        del bad["author"]
        fake.customer_says("after")
        await eventually(lambda: sorted(seen) == ["after", "before"])
        polls = fake.polls
        await eventually(lambda: fake.polls >= polls + 3)  # later polls start past it
        letters = await hub.store.dead_letters()
        assert await hub.store.get_cursor("testnet") == "3"
    [letter] = letters
    assert letter.network == "testnet"
    assert letter.reason.startswith("events.1: bad item")
    assert json.loads(letter.body) == bad
    assert sorted(seen) == ["after", "before"]  # two conversations: handled in any order


async def test_events_stored_while_stopped_are_handled_when_the_hub_runs() -> None:
    """Events ingested while the hub does not run wait in the store and are handled on start."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    item = fake.message_item("sent while we were down")
    async with hub:
        adapter = hub.adapters["testnet"]
        events = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
        assert [e.id for e in await hub.ingest("testnet", events)] == [events[0].id]
        assert seen == []
    async with running(hub, listen=False):
        await eventually(lambda: seen == ["sent while we were down"])


async def test_hub_refuses_to_run_unopened_or_twice_and_duplicate_networks() -> None:
    """Misuse raises ConfigurationError: run unentered, run twice, two adapters for a network."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    with pytest.raises(ConfigurationError):
        await hub.run()
    async with running(hub):
        with pytest.raises(ConfigurationError):
            await hub.run()
    with pytest.raises(ConfigurationError):
        Hub(adapters=[adapter_for(fake), adapter_for(fake)], store=MemoryStore())


async def test_adapters_are_opened_and_closed_with_the_hub() -> None:
    """Entering the hub opens each adapter (resolving our account); leaving closes it."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    hub = Hub(adapters=[adapter], store=MemoryStore())
    async with hub:
        assert adapter.account is not None
        assert adapter.account.handle == "shop"
    assert (adapter.opened, adapter.closed) == (1, 1)


def test_run_sync_runs_until_stopped() -> None:
    """run_sync enters and runs the hub from synchronous code until stop() is called."""
    fake = FakeNetwork()
    # Written before the first run: handled because the adapter asks for a backfill.
    fake.customer_says("hello from a script")
    hub = Hub(adapters=[adapter_for(fake, backfill=1)], store=MemoryStore())
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record_and_stop(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)
        hub.stop()

    hub.run_sync()
    assert seen == ["hello from a script"]
    assert not hub.is_open


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_hub_runs_on_trio() -> None:
    """Polling, dispatch, a reply and its delivery work on the trio backend too."""
    fake = FakeNetwork()
    hub = make_hub(fake, policy=AutoSend())

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("Answered on trio.")

    async with running(hub):
        fake.customer_says("are you there?")
        await eventually(lambda: len(fake.posted) == 1)
    assert fake.posted[0]["text"] == "Answered on trio."


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serving_webhooks_on_trio_is_refused_before_anything_starts() -> None:
    """run(serve_webhooks=...) needs asyncio (uvicorn): on trio it says so, nothing runs."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    async with hub:
        with pytest.raises(ConfigurationError, match="asyncio"):
            await hub.run(serve_webhooks=("127.0.0.1", 0))
        assert not hub.is_running
    assert fake.polls == 0


def test_runtime_adapter_is_a_real_adapter() -> None:
    """The test adapter declares the contract's class attributes."""
    assert RuntimeAdapter.network == "testnet"
    assert "webhook" in RuntimeAdapter.capabilities.inbound


@pytest.mark.parametrize(
    ("backfill", "age_days", "expected"),
    [
        (2, None, ["2 days ago", "1 day ago"]),
        (0, 4, ["3 days ago", "2 days ago", "1 day ago"]),
        (2, 4, ["2 days ago", "1 day ago"]),
        (5, 2.5, ["2 days ago", "1 day ago"]),
    ],
    ids=["count", "age", "count-and-age", "age-narrower"],
)
async def test_a_first_run_backfills_what_the_settings_ask_marked_and_held(
    backfill: int, age_days: float | None, expected: list[str]
) -> None:
    """A backfill hands the newest young history, marked; AutoSend only drafts replies to it."""
    clock = FakeClock()
    fake = FakeNetwork()
    for days, text in ((9, "9 days ago"), (3, "3 days ago"), (2, "2 days ago"), (1, "1 day ago")):
        fake.customer_says(text, author=f"customer{days}",
                           created_at=clock.now - timedelta(days=days))
    age = timedelta(days=age_days) if age_days is not None else None
    hub = Hub(adapters=[adapter_for(fake, backfill=backfill, backfill_age=age)],
              store=MemoryStore(), policy=AutoSend(), clock=clock)
    seen: list[tuple[str, bool]] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        seen.append((event.message.text, event.backfilled))
        await ctx.reply(f"About {event.message.text}: thanks for waiting!")

    async with running(hub):
        await eventually(lambda: len(seen) == len(expected))
        fake.customer_says("written now", author="live")
        await eventually(lambda: len(fake.posted) == 1)
        await hub.wait_idle()
        drafts = await hub.drafts.pending()

    assert sorted(seen) == sorted([(text, True) for text in expected] + [("written now", False)])
    assert sorted(d.action.to.text for d in drafts) == sorted(expected)
    assert all("backfilled" in (d.note or "") for d in drafts)
    assert [post["text"] for post in fake.posted] == ["About written now: thanks for waiting!"]


async def test_a_first_run_without_backfill_stores_the_position_and_nothing_older() -> None:
    """Old events are neither handled nor stored; the network's position is the cursor."""
    fake = FakeNetwork()
    for text in ("old one", "old two", "old three"):
        fake.customer_says(text)
    hub = make_hub(fake)
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    async with running(hub):
        assert await hub.store.get_cursor("testnet") == "3"  # set before run() reports started
        assert await hub.store.search("old") == []
        fake.customer_says("new one")
        await eventually(lambda: seen == ["new one"])
    assert hub.statistics().total.events_recorded == 1


async def test_our_own_messages_are_stored_but_never_handled() -> None:
    """A MessageReceived with from_us (an echo of our reply) reaches no handler, yet is kept."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    def received(native: str, text: str, *, ours: bool) -> MessageReceived:
        author = Person(ref=Ref(network="testnet", id="us" if ours else "u-alice"))
        ref = Ref(network="testnet", id=native)
        message = Message(ref=ref, conversation=Ref(network="testnet", id="dm-alice"),
                          author=author, text=text, created_at=datetime.now(UTC),
                          visibility="private", from_us=ours)
        return MessageReceived(
            id=event_id("message.received", ref), network="testnet",
            occurred_at=message.created_at, message=message,
            conversation=Conversation(ref=message.conversation, kind="direct"),
        )

    async with running(hub, listen=False):
        await hub.ingest("testnet", [received("m1", "help?", ours=False),
                                     received("m2", "On it!", ours=True)])
        await eventually(lambda: seen == ["help?"])
        await hub.wait_idle()
        unhandled = await hub.store.unhandled_events()
        history = await hub.store.conversation_messages(Ref(network="testnet", id="dm-alice"))
    assert seen == ["help?"]
    assert unhandled == []
    assert [m.text for m in history] == ["help?", "On it!"]


async def test_answered_messages_cost_few_commits_on_sqlite(tmp_path: Path) -> None:
    """Received, answered and delivered on SQLite: the store's writes share commits.

    An answered message writes its event (with its message), its reply, the
    reply's claim and outcome (with our message), and its event marked handled.
    These 8 took 33 commits when each write had its own and the guardrail took
    and gave back a lease in the store for every reply; they take 13 or 14 now.
    """
    fake = FakeNetwork()
    store = SQLiteStore(tmp_path / "hub.db")
    hub = Hub(adapters=[adapter_for(fake)], store=store, policy=AutoSend())

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply(f"On it: {event.message.text}")

    statements: list[str] = []
    async with running(hub):
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        for n in range(8):
            fake.customer_says(f"order {n}", author=f"customer{n}")
        await eventually(lambda: len(fake.posted) == 8)
        await hub.wait_idle()
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]

    commits = statements.count("COMMIT")
    assert commits <= 20, commits
