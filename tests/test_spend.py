"""``SpendMeter``: spend per network and UTC day, kept in the store, budgets shared by workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import anyio
import pytest
from tests.conftest import PostgresServer
from tests.runtime_adapter import FakeNetwork, RuntimeAdapter, adapter_for

from omnichannel.hub import Hub
from omnichannel.spend import BudgetExceeded, SpendMeter
from omnichannel.store import MemoryStore, SQLiteStore, Store

pytestmark = pytest.mark.anyio

NOON = datetime(2026, 12, 4, 12, tzinfo=UTC)
DAY = NOON.date()
URL_POST = Decimal("0.200")

Opener = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Builds store objects over one database: a second worker's, or a restarted process's."""
    if request.param == "memory":
        shared = MemoryStore()
        yield lambda: shared
    elif request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "spend.db")
    else:
        pytest.importorskip("psycopg", reason="psycopg is not installed")
        from omnichannel.store import PostgresStore

        server: PostgresServer = request.getfixturevalue("postgres_server")
        schema: str = request.getfixturevalue("postgres_schema")
        yield lambda: PostgresStore(server.url, schema=schema)


def test_without_a_store_the_meter_counts_and_refuses_in_memory() -> None:
    meter = SpendMeter("chirp", daily_budget=Decimal("0.25"), monthly_budget=Decimal("1"))
    meter.charge("post_create", Decimal("0.015"), at=NOON)
    meter.charge("user_read", Decimal("0.010"), at=NOON)
    meter.charge("post_create", Decimal("0.015"), at=datetime(2026, 11, 30, tzinfo=UTC))
    assert meter.spent_on(DAY) == Decimal("0.025")
    assert meter.spent_in_month(2026, 12) == Decimal("0.025")
    assert meter.breakdown(DAY) == {"post_create": Decimal("0.015"), "user_read": Decimal("0.010")}
    assert meter.days() == {date(2026, 11, 30): Decimal("0.015"), DAY: Decimal("0.025")}
    with pytest.raises(BudgetExceeded) as caught:
        meter.check(URL_POST + Decimal("0.1"), at=NOON)
    assert (caught.value.period, caught.value.spent, caught.value.network) == (
        "day", Decimal("0.025"), "chirp")
    meter.check(URL_POST, at=NOON)


async def test_reserving_a_price_counts_it_and_refuses_over_the_budget(opener: Opener) -> None:
    async with opener() as store:
        meter = SpendMeter("chirp", daily_budget=Decimal("0.50"), store=store)
        await meter.reserve("post_create_url", URL_POST, at=NOON)
        await meter.reserve("post_create_url", URL_POST, at=NOON)
        with pytest.raises(BudgetExceeded) as caught:
            await meter.reserve("post_create_url", URL_POST, at=NOON)
        assert caught.value.spent == Decimal("0.400")
        assert caught.value.budget == Decimal("0.50")
        assert await store.get_value("spend.chirp", DAY.isoformat()) == "0.400"
        await meter.reserve(None, Decimal(0), at=NOON)  # a read may go: 0.40 is not over
        other = SpendMeter("chirp", daily_budget=Decimal("0.30"), store=store)
        with pytest.raises(BudgetExceeded):  # another worker's reads were spent: over its budget
            await other.reserve(None, Decimal(0), at=NOON)
        meter.charge("post_create_url", -URL_POST, at=NOON)  # the request did not happen
        assert meter.spent_on(DAY) == Decimal("0.200"), "counted before the flush"
        await meter.flush()
        assert await store.get_value("spend.chirp", "2026-12") == "0.200"
        assert meter.breakdown(DAY) == {"post_create_url": Decimal("0.200")}


async def test_two_workers_on_one_store_never_overrun_the_budget(opener: Opener) -> None:
    """Two workers reserving URL posts at once under 1.00 a day: exactly five go."""
    async with opener() as first_store, anyio.create_task_group() as tg:
        if not first_store.multi_worker:  # one process at a time: its workers share the object
            workers = [first_store, first_store]
        else:
            second_store = opener()
            await second_store.open()
            tg.start_soon(_close_at_end, second_store)
            workers = [first_store, second_store]
        meters = [SpendMeter("chirp", daily_budget=Decimal("1.00"), store=store)
                  for store in workers]
        sent: list[int] = []
        refused: list[int] = []

        async def send(number: int) -> None:
            try:
                await meters[number % 2].reserve("post_create_url", URL_POST, at=NOON)
            except BudgetExceeded:
                refused.append(number)
            else:
                sent.append(number)

        async with anyio.create_task_group() as senders:
            for number in range(12):
                senders.start_soon(send, number)
        assert (len(sent), len(refused)) == (5, 7)
        assert await first_store.get_value("spend.chirp", DAY.isoformat()) == "1.000"
        tg.cancel_scope.cancel()


async def _close_at_end(store: Store) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


async def test_a_restart_keeps_the_days_spend_and_the_budget(opener: Opener) -> None:
    async with opener() as store:
        meter = SpendMeter("chirp", daily_budget=Decimal("0.30"), store=store)
        await meter.reserve("post_create_url", URL_POST, at=NOON)
        meter.charge("user_read", Decimal("0.010"), at=NOON)
        await meter.flush()
    async with opener() as store:
        again = SpendMeter("chirp", daily_budget=Decimal("0.30"), store=store)
        assert again.spent_on(DAY) == 0, "nothing read yet"
        await again.refresh(NOON)
        assert again.spent_on(DAY) == Decimal("0.210")
        assert again.spent_in_month(2026, 12) == Decimal("0.210")
        with pytest.raises(BudgetExceeded):
            again.check(URL_POST, at=NOON)
        with pytest.raises(BudgetExceeded):
            await again.reserve("post_create_url", URL_POST, at=NOON)


async def test_a_failed_flush_keeps_the_charges_for_the_next() -> None:
    store = MemoryStore()
    meter = SpendMeter("chirp", store=store)
    meter.charge("user_read", Decimal("0.010"), at=NOON)
    with pytest.raises(RuntimeError):
        await meter.flush()  # the store is not open
    async with store:
        await meter.flush()
        assert await store.get_value("spend.chirp", DAY.isoformat()) == "0.010"
        await meter.flush()
        assert await store.get_value("spend.chirp", DAY.isoformat()) == "0.010"


class PricedAdapter(RuntimeAdapter):
    """The test adapter, on a network that bills every reply 0.015."""

    network: ClassVar[str] = "testnet"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.spend = SpendMeter(self.network, daily_budget=Decimal("5"))


async def test_the_hub_binds_the_meter_to_its_store_and_shows_the_spend_per_day() -> None:
    store = MemoryStore()
    adapter = adapter_for(FakeNetwork(), PricedAdapter)
    hub = Hub(adapters=[adapter], store=store)
    assert hub.statistics().networks["testnet"].spend == {}
    async with hub:
        assert adapter.spend is not None
        assert adapter.spend.store is store
        await adapter.spend.reserve("reply", Decimal("0.015"), at=NOON)
        adapter.spend.charge("read", Decimal("0.005"), at=datetime(2026, 12, 3, tzinfo=UTC))
        stats = hub.statistics()
        assert stats.networks["testnet"].spend == {
            date(2026, 12, 3): Decimal("0.005"), DAY: Decimal("0.015")}
        assert stats.total.spend == stats.networks["testnet"].spend
        await adapter.spend.flush()
        assert await store.get_value("spend.testnet", "2026-12") == "0.020"
