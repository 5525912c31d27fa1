"""Several outbox workers on one store: claims are leases, renewed while sending, then reclaimed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
)

from omnichannel.actions import Action, Reply, Sent
from omnichannel.errors import ConfigurationError
from omnichannel.outbox import Outbox, new_worker_id
from omnichannel.store import MemoryStore, PostgresStore, SQLiteStore, Store

LEASE = timedelta(seconds=30)


Stores = Callable[[], AbstractAsyncContextManager[tuple[Store, Store]]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    """What two workers use: one shared object (memory; SQLite admits one writer per file),
    or two store objects on one PostgreSQL schema."""
    if request.param == "postgres":
        pytest.importorskip("psycopg", reason="psycopg is not installed")
        server = request.getfixturevalue("postgres_server")
        schema = request.getfixturevalue("postgres_schema")

        @asynccontextmanager
        async def two() -> AsyncIterator[tuple[Store, Store]]:
            async with PostgresStore(server.url, schema=schema) as a, PostgresStore(
                server.url, schema=schema
            ) as b:
                yield a, b

        return two

    @asynccontextmanager
    async def one() -> AsyncIterator[tuple[Store, Store]]:
        store: Store = (
            MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "shared.db")
        )
        async with store:
            yield store, store

    return one


async def test_a_dead_workers_send_is_reconciled_by_the_next_worker(stores: Stores) -> None:
    """Worker a sends and dies unrecorded; b waits out a's lease, finds the reply, never resends."""
    fake = FakeNetwork()
    clock = FakeClock()
    async with adapter_for(fake) as adapter, stores() as (store, other):
        a = Outbox(store, {"testnet": adapter}, clock=clock, worker="a", lease=LEASE)
        b = Outbox(other, {"testnet": adapter}, clock=clock, worker="b", lease=LEASE)
        reply = Reply(network="testnet", to=received(fake, adapter), text="On it!")
        item = await a.submit(reply, origin="handler:test")
        [claimed] = await store.claim_due(now=clock(), worker=a.worker, lease=a.lease)
        await adapter.execute(claimed.action)  # landed; then worker a is killed
        clock.advance(LEASE.total_seconds() - 1)
        assert await b.run_once() == 0  # a's lease still holds
        held = await store.get_outbox(item.key)
        clock.advance(1)
        assert await b.run_once() == 1
        final = await store.get_outbox(item.key)
        [entry] = await store.audit_log()

    assert held is not None
    assert (held.status, held.worker) == ("sending", "a")
    assert final is not None
    assert (final.status, final.worker, final.attempts) == ("sent", "b", 2)
    assert fake.created[item.key] == 1
    assert fake.lookups == 1
    assert entry.detail is not None
    assert "reconciled" in entry.detail


class SlowAdapter(RuntimeAdapter):
    """Takes three seconds to send, longer than the test's lease."""

    async def execute(self, action: Action) -> Sent:
        """Wait, then send."""
        await anyio.sleep(3.0)
        return await super().execute(action)


async def test_the_worker_renews_its_claims_while_a_send_takes_longer_than_the_lease(
    stores: Stores,
) -> None:
    """A send outlasting the lease keeps its claim (renewed): the other worker never takes it."""
    fake = FakeNetwork()
    lease = timedelta(seconds=2)  # renewed every 2/3 s: slack for a loaded machine
    async with adapter_for(fake, SlowAdapter) as adapter, stores() as (store, other):
        a = Outbox(store, {"testnet": adapter}, worker="a", lease=lease)
        reply = Reply(network="testnet", to=received(fake, adapter), text="On it!")
        item = await a.submit(reply, origin="handler:test")
        stolen = []

        async def other_worker() -> None:
            # Tries to take the item only once a holds it (before that it is free to take).
            async def held_by_a() -> bool:
                held = await other.get_outbox(item.key)
                return held is not None and held.worker == "a"

            await eventually(held_by_a)
            while True:
                stolen.extend(await other.claim_due(now=a.clock(), worker="b", lease=lease))
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(other_worker)
            assert await a.run_once() == 1
            tg.cancel_scope.cancel()
        final = await store.get_outbox(item.key)

    assert stolen == []
    assert final is not None
    assert (final.status, final.worker) == ("sent", "a")
    assert fake.created[item.key] == 1


async def test_a_worker_that_lost_its_claim_records_nothing() -> None:
    """A late outcome from a worker whose lease ran out is dropped: the item stays b's."""
    fake = FakeNetwork()
    clock = FakeClock()
    async with adapter_for(fake) as adapter, MemoryStore() as store:
        a = Outbox(store, {"testnet": adapter}, clock=clock, worker="a", lease=LEASE)
        reply = Reply(network="testnet", to=received(fake, adapter), text="On it!")
        item = await a.submit(reply, origin="handler:test")
        [claimed] = await store.claim_due(now=clock(), worker="a", lease=LEASE)
        clock.advance(LEASE.total_seconds())
        [taken] = await store.claim_due(now=clock(), worker="b", lease=LEASE)
        late = await a.deliver(claimed)  # a wakes up and sends anyway
        audit = await store.audit_log()

    assert late == taken  # nothing recorded over b's claim
    assert audit == []
    assert fake.created[item.key] == 1  # a's send landed: b's find_sent will see it


def test_every_outbox_has_a_worker_id_and_a_positive_lease() -> None:
    """The default id names the host and process and differs per outbox."""
    one = Outbox(MemoryStore(), {})
    two = Outbox(MemoryStore(), {})
    assert one.worker != two.worker
    assert one.worker.split(":")[1] == new_worker_id().split(":")[1]
    assert "worker=" in repr(one)
    with pytest.raises(ConfigurationError, match="lease"):
        Outbox(MemoryStore(), {}, lease=timedelta(0))


async def test_an_item_claimed_without_a_worker_id_is_delivered_and_recorded() -> None:
    """A claim made with no worker id (older callers of claim_due) still records its outcome."""
    fake = FakeNetwork()
    clock = FakeClock()
    async with adapter_for(fake) as adapter, MemoryStore() as store:
        outbox = Outbox(store, {"testnet": adapter}, clock=clock, worker="a")
        reply = Reply(network="testnet", to=received(fake, adapter), text="On it!")
        item = await outbox.submit(reply, origin="handler:test")
        [claimed] = await store.claim_due(now=clock())
        done = await outbox.deliver(claimed)

    assert claimed.worker is None
    assert (done.status, done.lease_until) == ("sent", None)
    assert fake.created[item.key] == 1
