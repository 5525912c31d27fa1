"""Several hubs (workers) on one store: the guardrail and conversation order hold across them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import FakeClock, FakeNetwork, adapter_for, eventually, received

from omnichannel.actions import Reply
from omnichannel.errors import DuplicateReply, StoreError
from omnichannel.events import Event, MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.store import MemoryStore, PostgresStore, SQLiteStore, Store
from omnichannel.testing.store_conformance import NET, T0, message
from omnichannel.testing.store_conformance import received as received_event
from omnichannel.webhooks import WebhookRequest

_SECOND = timedelta(seconds=1)

TEXT = "Thanks for reaching out, we will look into it and come back to you."


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_two_workers_never_both_send_one_text_to_two_customers(
    kind: str, tmp_path: Path
) -> None:
    """Two hubs queuing one text to two customers at once: one is queued, one refused."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    clock = FakeClock()
    store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "shared.db")
    one = Hub(adapters=[adapter], store=store, clock=clock, worker="w1")
    two = Hub(adapters=[adapter], store=store, clock=clock, worker="w2")
    alice = received(fake, adapter, "my order", author="alice")
    bob = received(fake, adapter, "my parcel", author="bob")
    outcomes: list[str] = []

    async def answer(hub: Hub, to_: str, reply: Reply) -> None:
        try:
            await hub.queue_as_agent(reply, by="agent:anna")
            outcomes.append(f"{to_} queued")
        except DuplicateReply:
            outcomes.append(f"{to_} refused")

    async with store:
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, one, "alice", Reply(network="testnet", to=alice, text=TEXT))
            tg.start_soon(answer, two, "bob", Reply(network="testnet", to=bob, text=TEXT))
        queued = await store.list_outbox()
        guard_left = await store.lease_holder(f"guardrail:testnet:{queued[0].text_digest}",
                                              now=clock())

    assert sorted(outcomes) in (["alice queued", "bob refused"], ["alice refused", "bob queued"])
    assert len(queued) == 1
    assert guard_left is None  # released once queued


class CountingLeases(SQLiteStore):
    """A SQLite store counting the named leases taken on it."""

    acquired = 0

    async def acquire_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        self.acquired += 1
        return await super().acquire_lease(name, holder=holder, ttl=ttl, now=now)


async def test_the_guardrail_takes_no_store_lease_on_a_store_one_process_owns(
    tmp_path: Path,
) -> None:
    """On SQLite (one process writes it) the guardrail's turn per text is held in memory.

    Only this process's hubs queue into the store, so the lease per text
    costs no writes there (it took two per reply); two hubs of the process
    still take turns (the test above, on SQLite and memory).
    """
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    store = CountingLeases(tmp_path / "hub.db")
    hub = Hub(adapters=[adapter], store=store, clock=FakeClock())
    async with store:
        for n in range(3):
            customer = received(fake, adapter, "my order", author=f"customer{n}")
            await hub.queue_as_agent(
                Reply(network="testnet", to=customer, text=f"{TEXT} Ticket {n}."), by="agent:anna"
            )
        other = received(fake, adapter, "my parcel", author="someone else")
        same = Reply(network="testnet", to=other, text=f"{TEXT} Ticket 0.")
        with pytest.raises(DuplicateReply):
            await hub.queue_as_agent(same, by="agent:anna")
        queued = await store.list_outbox()

    assert len(queued) == 3
    assert store.acquired == 0


class SharedMemoryStore(MemoryStore):
    """A memory store that says several workers use it, as a PostgreSQL one does."""

    multi_worker = True


@pytest.fixture(params=["memory", "postgres"])
async def two_stores(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Store, Store]]:
    """The stores of two workers: one shared memory object, or two on one PostgreSQL schema."""
    if request.param == "memory":
        async with SharedMemoryStore() as shared:
            yield shared, shared
        return
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    server = request.getfixturevalue("postgres_server")
    schema = request.getfixturevalue("postgres_schema")
    async with PostgresStore(server.url, schema=schema) as a, PostgresStore(
        server.url, schema=schema
    ) as b:
        yield a, b


async def test_two_workers_never_handle_one_conversation_at_once(
    two_stores: tuple[Store, Store],
) -> None:
    """Events of one conversation ingested by two hubs are handled one at a time, others not."""
    store, other = two_stores
    one = Hub(store=store, worker="w1")
    two = Hub(store=other, worker="w2")
    spans: dict[str, tuple[float, float]] = {}
    for hub in (one, two):

        @hub.on(MessageReceived)
        async def slow(event: MessageReceived, ctx: Context) -> None:
            started = time.monotonic()
            await anyio.sleep(0.3)
            spans[event.message.text] = (started, time.monotonic())

    first = received_event(message("118000", "first"))
    second = received_event(message("118001", "second", thread="118000", at=T0 + _SECOND))
    elsewhere = received_event(message("118100", "elsewhere"))

    async def all_handled_and_released() -> bool:
        return not await store.unhandled_events() and await store.lease_holder(
            "conversation:mastodon:118000", now=T0
        ) is None

    async with one, two, anyio.create_task_group() as tg:
        await tg.start(partial(one.run, listen=False, deliver=False))
        await tg.start(partial(two.run, listen=False, deliver=False))
        await one.ingest(NET, [first])
        await two.ingest(NET, [second, elsewhere])
        await eventually(all_handled_and_released)  # each lease is given back after its event
        tg.cancel_scope.cancel()

    earlier, later = sorted([spans["first"], spans["second"]])
    assert earlier[1] <= later[0]  # one after the other, never overlapping
    assert spans["elsewhere"][0] < later[0]  # another conversation did not wait for this one


async def test_a_store_one_process_owns_takes_no_conversation_leases(tmp_path: Path) -> None:
    """On SQLite (one writer) the hub orders conversations in memory: no lease is written."""
    store = SQLiteStore(tmp_path / "one.db")
    hub = Hub(store=store)
    seen: list[str | None] = []

    @hub.on(MessageReceived)
    async def look(event: MessageReceived, ctx: Context) -> None:
        seen.append(await store.lease_holder("conversation:mastodon:118200", now=T0))

    async with hub, anyio.create_task_group() as tg:
        await tg.start(partial(hub.run, listen=False, deliver=False))
        await hub.ingest(NET, [received_event(message("118200", "hello"))])
        await eventually(lambda: len(seen) == 1)
        tg.cancel_scope.cancel()
    assert seen == [None]


class _CountingAdapter:
    """Counts the polls each worker's adapter makes."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}

    def wrap(self, hub_name: str, fake: FakeNetwork) -> object:
        adapter = adapter_for(fake)
        original = adapter.poll
        counts = self.polls

        async def poll(cursor: str | None) -> object:
            counts[hub_name] = counts.get(hub_name, 0) + 1
            return await original(cursor)

        adapter.poll = poll  # type: ignore[method-assign]
        return adapter


async def test_one_worker_reads_each_source_and_another_takes_over(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two hubs on one multi-worker store: one polls the account, the other stands by."""
    import omnichannel._listening as listening

    monkeypatch.setattr(listening, "_STANDBY_AFTER", 0.2)
    fake = FakeNetwork()
    counter = _CountingAdapter()
    store_a, store_b = two_stores
    one = Hub(adapters=[counter.wrap("one", fake)], store=store_a, worker="w1")  # type: ignore[list-item]
    two = Hub(adapters=[counter.wrap("two", fake)], store=store_b, worker="w2")  # type: ignore[list-item]
    assert one.source_lease is not None
    async with one, two, anyio.create_task_group() as tg:
        await tg.start(one.run)
        await tg.start(two.run)  # returns: the second worker stands by
        await eventually(lambda: counter.polls.get("one", 0) >= 5)
        assert counter.polls.get("two", 0) == 0
        holder = await store_a.lease_holder("source:testnet:default", now=one.clock())
        assert holder == "w1"
        one.stop()  # the first worker leaves and gives its lease back
        await eventually(lambda: counter.polls.get("two", 0) >= 3, limit=10)
        tg.cancel_scope.cancel()


async def test_an_event_both_workers_find_unhandled_at_start_is_handled_once(
    two_stores: tuple[Store, Store],
) -> None:
    """Events left unhandled by a stopped worker: two hubs starting together handle each once."""
    store_a, store_b = two_stores
    events = [received_event(message(f"m{n}", f"still waiting {n}")) for n in range(6)]
    await store_a.record_batch(NET, events, cursor=None)
    fake = FakeNetwork()
    handled: list[str] = []
    hubs = [Hub(adapters=[adapter_for(fake)], store=store, worker=name)
            for store, name in ((store_a, "w1"), (store_b, "w2"))]
    for hub in hubs:

        @hub.on(MessageReceived)
        async def count(event: MessageReceived, ctx: Context) -> None:
            handled.append(event.id)
            await anyio.sleep(0.01)

    async with hubs[0], hubs[1], anyio.create_task_group() as tg:
        for hub in hubs:
            await tg.start(partial(hub.run, listen=False, deliver=False))
        await eventually(lambda: len(handled) >= len(events))
        for hub in hubs:
            await hub.wait_idle()
        tg.cancel_scope.cancel()
    assert sorted(handled) == sorted(e.id for e in events)


async def test_events_a_worker_recorded_and_left_are_taken_up_by_a_running_one(
    two_stores: tuple[Store, Store],
) -> None:
    """A worker that died between recording events and handling them: another handles them."""
    _, store = two_stores
    hub = Hub(store=store, worker="w2")
    hub.outbox.lease = timedelta(seconds=0.2)
    handled: list[str] = []

    @hub.on(MessageReceived)
    async def count(event: MessageReceived, ctx: Context) -> None:
        handled.append(event.message.text)

    async with hub, anyio.create_task_group() as tg:
        await tg.start(partial(hub.run, listen=False, deliver=False))
        # recorded by a worker that died before it handled them: nobody dispatched them here
        left = [received_event(message(f"left-{n}", f"left behind {n}")) for n in range(3)]
        await store.record_batch(NET, left, cursor=None)
        await eventually(lambda: len(handled) == 3, limit=10)
        await hub.wait_idle()
        assert not await store.unhandled_events()
        tg.cancel_scope.cancel()
    assert sorted(handled) == [f"left behind {n}" for n in range(3)]


async def test_a_worker_taking_over_a_source_handles_what_the_last_reader_left_first(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reader dies after recording a message; the next one reads a later one of the thread.

    The worker taking the source over handles the message left behind before the
    later one it reads itself, so the conversation's order holds.
    """
    import omnichannel._listening as listening

    monkeypatch.setattr(listening, "_STANDBY_AFTER", 0.2)
    fake = FakeNetwork()
    store_a, store_b = two_stores
    stuck, polling = anyio.Event(), anyio.Event()
    first = adapter_for(fake)
    original = first.poll

    async def poll_until_stuck(cursor: str | None) -> object:
        if stuck.is_set():
            polling.set()
            await anyio.sleep_forever()
        return await original(cursor)

    first.poll = poll_until_stuck  # type: ignore[method-assign]
    one = Hub(adapters=[first], store=store_a, worker="w1")
    two = Hub(adapters=[adapter_for(fake)], store=store_b, worker="w2")
    handled: list[str] = []
    for hub in (one, two):

        @hub.on(MessageReceived)
        async def note(event: MessageReceived, ctx: Context) -> None:
            handled.append(event.message.text)

    async with one, two, anyio.create_task_group() as tg:
        await tg.start(partial(one.run, deliver=False))
        await tg.start(partial(two.run, deliver=False))  # stands by
        stuck.set()
        await polling.wait()  # the reader is stuck: it reads nothing more
        left = fake.message_item("my parcel is lost", conversation="thread-9")
        [event] = first.parse(WebhookRequest(method="POST", body=fake.webhook_body([left])))
        await store_a.record_batch("testnet", [event], cursor=None)  # recorded, then it dies
        fake.customer_says("hello? anyone?", conversation="thread-9")
        one.stop()
        await eventually(lambda: len(handled) == 2, limit=10)
        tg.cancel_scope.cancel()
    assert handled == ["my parcel is lost", "hello? anyone?"]


class _UnreadableLeftovers(SharedMemoryStore):
    """A shared store that fails to list one network's unhandled events (as at a takeover)."""

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        if network is not None:
            raise StoreError("the database went away for a moment", path="shared")
        return await super().unhandled_events(network)


async def test_a_source_reads_on_when_the_events_left_unhandled_cannot_be_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Taking a source over, listing what the last reader left fails: logged, read all the same."""
    import omnichannel._listening as listening

    monkeypatch.setattr(listening, "_STANDBY_AFTER", 0.2)
    fake = FakeNetwork()
    store = _UnreadableLeftovers()
    one = Hub(adapters=[adapter_for(fake)], store=store, worker="w1")
    two = Hub(adapters=[adapter_for(fake)], store=store, worker="w2")
    handled: list[str] = []

    @two.on(MessageReceived)
    async def note(event: MessageReceived, ctx: Context) -> None:
        handled.append(event.message.text)

    async with one, two, anyio.create_task_group() as tg:
        await tg.start(partial(one.run, deliver=False))
        await tg.start(partial(two.run, deliver=False))  # stands by
        one.stop()  # gives the source's lease back: the second takes over
        fake.customer_says("is anyone there?")
        await eventually(lambda: handled == ["is anyone there?"], limit=10)
        tg.cancel_scope.cancel()


class _FlakyLeftovers(SharedMemoryStore):
    """A shared store whose listing of unhandled events fails every other time after the first."""

    calls = 0

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        self.calls += 1
        if self.calls > 1 and self.calls % 2 == 0:
            raise StoreError("the database went away for a moment", path="shared")
        return await super().unhandled_events(network)


async def test_the_sweep_for_unhandled_events_outlives_a_store_failure() -> None:
    """A failed look for events left unhandled is logged; the next look takes them up."""
    store = _FlakyLeftovers()
    hub = Hub(store=store, worker="w2")
    hub.outbox.lease = timedelta(seconds=0.1)
    handled: list[str] = []

    @hub.on(MessageReceived)
    async def count(event: MessageReceived, ctx: Context) -> None:
        handled.append(event.message.text)

    async with hub, anyio.create_task_group() as tg:
        await tg.start(partial(hub.run, listen=False, deliver=False))
        await store.record_batch(NET, [received_event(message("left-9", "left behind"))],
                                 cursor=None)
        await eventually(lambda: handled == ["left behind"], limit=10)
        tg.cancel_scope.cancel()
    assert store.calls >= 4  # it looked again after failing


class _CountingLeftovers(SharedMemoryStore):
    """A shared store counting how often one network's unhandled events are listed."""

    by_network = 0

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        self.by_network += network is not None
        return await super().unhandled_events(network)


async def test_a_worker_reading_its_sources_from_the_start_lists_no_leftovers_again() -> None:
    """At start the hub has queued every unhandled event: taking a free source reads none again.

    Only a worker that stood by and then took a source over looks for what the last
    reader left (see the takeover test above).
    """
    store = _CountingLeftovers()
    hub = Hub(adapters=[adapter_for(FakeNetwork())], store=store, worker="w1")
    async with hub, anyio.create_task_group() as tg:
        await tg.start(partial(hub.run, deliver=False))  # returns once the source reads
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert store.by_network == 0
