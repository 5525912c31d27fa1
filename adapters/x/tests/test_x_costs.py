"""Pay-per-use prices, the ledger (each read resource once a UTC day) and the budget guard."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from omnichannel import Hub
from omnichannel.actions import Delete, Post, PrivateReply, Reply
from omnichannel.errors import ConfigurationError
from omnichannel.events import MessageReceived
from omnichannel.policy import AutoSend
from omnichannel.sources import StreamSource
from omnichannel.store import MemoryStore, SQLiteStore, Store
from omnichannel_x import BudgetExceeded, CostLedger, Prices, XAdapter, hold_link_posts
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


async def _first_mention(sandbox: XSandbox, x: XAdapter, text: str) -> MessageReceived:
    cursor = (await x.poll(None)).cursor
    sandbox.customer_mention(text)
    (event,) = (await x.poll(cursor)).events
    assert isinstance(event, MessageReceived)
    return event


async def test_prices_follow_the_2026_list() -> None:
    """URL post 0.20, summoned reply 0.010, plain reply 0.015, DM 0.015, delete 0.010."""
    sandbox = XSandbox(seed=1)
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        event = await _first_mention(sandbox, x, "my order is late")
        message = event.message
        with_url = Reply(network="x", to=message, text="Track it at example.com/t/1")
        assert x.price_of(with_url) == Decimal("0.200")
        assert x.price_of(Reply(network="x", to=message, text="On it")) == Decimal("0.010")
        ours = message.model_copy(update={"from_us": True, "entities": ()})
        assert x.price_of(Reply(network="x", to=ours, text="More")) == Decimal("0.010")
        assert x.price_of(PrivateReply(network="x", to=message, text="DM")) == Decimal("0.015")
        assert x.price_of(Delete(network="x", target=message.ref)) == Decimal("0.010")
    enterprise = XAdapter({**sandbox.adapter_settings(), "tier": "enterprise"})
    assert enterprise.price_of(with_url) == Decimal(0)


async def test_ledger_charges_reads_once_a_day_and_writes_each_time() -> None:
    """Polling the same mentions twice charges them once; each reply is charged."""
    sandbox = XSandbox(seed=2)
    for text in ("one", "two", "three"):
        sandbox.customer_mention(text)
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        first = await x.poll(None)
        await x.poll(None)
        today = datetime.now(UTC).date()
        spent = x.costs.breakdown(today)
        assert spent["owned_read"] == Decimal("0.003")
        # us (users/me, and mentioned in each post) and the three customers
        assert spent["user_read"] == Decimal("0.040")
        message = first.events[0]
        assert isinstance(message, MessageReceived)
        await x.send(Reply(network="x", to=message.message, text="Thanks!"))
        assert x.costs.breakdown(today)["summoned_reply"] == Decimal("0.010")
        assert x.costs.spent_on(today) == Decimal("0.053")


async def test_budget_refuses_before_any_request() -> None:
    """A reply with a URL over the daily budget is refused by check and by send, unsent."""
    sandbox = XSandbox(seed=3)
    settings = {**sandbox.adapter_settings(), "daily_budget": "0.10"}
    async with XAdapter(settings, transport=sandbox.transport()) as x:
        event = await _first_mention(sandbox, x, "where is it?")
        action = Reply(network="x", to=event.message, text="See https://example.com/t/9")
        before = sandbox.request_count()
        with pytest.raises(BudgetExceeded) as caught:
            x.check(action)
        assert caught.value.period == "day"
        assert caught.value.price == Decimal("0.200")
        with pytest.raises(BudgetExceeded):
            await x.send(action)
        assert sandbox.request_count() == before
        await x.send(Reply(network="x", to=event.message, text="It ships today"))
    assert [r.text for r in sandbox.sent()] == ["It ships today"]


def test_monthly_budget_and_custom_prices() -> None:
    """The monthly budget sums the month's days; prices can be overridden."""
    ledger = CostLedger(Prices(post_create=Decimal("0.02")), monthly_budget=Decimal("0.05"))
    ledger.charge("post_create", at=datetime(2026, 3, 1, tzinfo=UTC), count=2)
    ledger.charge("post_create", at=datetime(2026, 2, 28, tzinfo=UTC), count=5)
    assert ledger.spent_in_month(2026, 3) == Decimal("0.04")
    ledger.guard(Decimal("0.01"), at=datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(BudgetExceeded) as caught:
        ledger.guard(Decimal("0.02"), at=datetime(2026, 3, 2, tzinfo=UTC))
    assert caught.value.period == "month"
    assert caught.value.spent == Decimal("0.04")


# the ledger file ------------------------------------------------------------------------------


async def test_spend_survives_a_restart_and_the_budget_still_refuses(tmp_path: Path) -> None:
    """A restarted adapter reads the day's spend back: over the budget, nothing is sent.

    Reads billed before the restart are not billed again the same day.
    """
    sandbox = XSandbox(seed=4)
    settings = {**sandbox.adapter_settings(), "daily_budget": "0.25",
                "ledger_file": str(tmp_path / "ledger.json")}
    async with XAdapter(settings, transport=sandbox.transport()) as x:
        event = await _first_mention(sandbox, x, "where is it?")
        await x.send(Reply(network="x", to=event.message, text="See https://example.com/t/9"))
        today = datetime.now(UTC).date()
        spent = x.costs.spent_on(today)
    assert stat.S_IMODE(os.stat(tmp_path / "ledger.json").st_mode) == 0o600
    async with XAdapter(settings, transport=sandbox.transport()) as again:
        # users/me is read again at open, but it was billed today already
        assert again.costs.spent_on(today) == spent
        action = Reply(network="x", to=event.message, text="Also https://example.com/t/10")
        before = sandbox.request_count()
        with pytest.raises(BudgetExceeded) as caught:
            await again.send(action)
        assert sandbox.request_count() == before
        assert caught.value.spent == spent
        await again.poll(None)
        assert again.costs.spent_on(today) == spent, "reads billed before the restart"


def test_ledger_file_keeps_two_months_and_refuses_a_foreign_file(tmp_path: Path) -> None:
    """Days before the previous month are dropped on save; a foreign file is refused."""
    path = tmp_path / "ledger.json"
    ledger = CostLedger(path=path)
    for month in (1, 2, 3):
        ledger.charge("post_create", at=datetime(2026, month, 10, tzinfo=UTC))
    ledger.charge_reads("post_read", ["1", "2"], at=datetime(2026, 3, 10, tzinfo=UTC))
    assert ledger.dirty
    ledger.save(today=date(2026, 3, 10))
    assert not ledger.dirty
    back = CostLedger(path=path)
    assert back.spent_in_month(2026, 1) == Decimal(0)
    assert back.spent_in_month(2026, 2) == Decimal("0.015")
    assert back.spent_on(date(2026, 3, 10)) == Decimal("0.025")
    assert back.charge_reads("post_read", ["2", "3"], at=datetime(2026, 3, 10, tzinfo=UTC)) == (
        Decimal("0.005"))
    path.write_text('{"tokens": "not a ledger"}')
    with pytest.raises(ConfigurationError, match="not an X cost ledger"):
        CostLedger(path=path)


# the link policy ------------------------------------------------------------------------------


async def test_public_link_posts_are_held_for_a_human() -> None:
    """A public reply or post with a link (bare domains too) is held; DMs and plain replies go."""
    sandbox = XSandbox(seed=5)
    policy = hold_link_posts(otherwise=AutoSend())
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        event = await _first_mention(sandbox, x, "where is it?")
    message = event.message
    held = policy.decide(event, Reply(network="x", to=message, text="Track: example.com/t/1"))
    assert held.held
    assert "0.20 USD" in held.reason
    assert policy.decide(event, Post(network="x", text="Sale! https://shop.example")).held
    assert not policy.decide(event, Reply(network="x", to=message, text="It ships today")).held
    private = PrivateReply(network="x", to=message, text="Track: https://example.com/t/1")
    assert not policy.decide(event, private).held
    as_dm = Reply(network="x", to=message, text="https://example.com/t/1", visibility="private")
    assert not policy.decide(event, as_dm).held
    elsewhere = message.model_copy(update={"ref": message.ref.model_copy(
        update={"network": "mastodon"})})
    assert not policy.decide(None, Reply(network="mastodon", to=elsewhere,
                                         text="https://example.com")).held


def test_the_inbox_shows_todays_spend_from_the_ledger_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`omnichannel inbox` reads the X ledger file the settings name: no network call."""
    import anyio

    from omnichannel.cli import main
    from omnichannel.store import SQLiteStore

    now = datetime.now(UTC)
    ledger = CostLedger(path=tmp_path / "x-ledger.json", daily_budget=Decimal("5"))
    ledger.charge("post_create_url", at=now)
    ledger.charge("post_create", at=now, count=2)
    ledger.save(today=now.date())
    store = tmp_path / "bot.db"

    async def create() -> None:
        async with SQLiteStore(store):
            pass

    anyio.run(create)
    config = tmp_path / "omnichannel.toml"
    config.write_text(
        f'store = "{store}"\n\n[x]\nclient_id = "c"\naccess_token = "t"\n'
        f'ledger_file = "{tmp_path / "x-ledger.json"}"\ndaily_budget = 5\n', encoding="utf-8")
    assert main(["inbox", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    spent = ledger.spent_on(now.date())
    assert f"x: spent today {spent:.2f} USD of 5.00; this month {spent:.2f} USD" in out


# the spend in the hub's store -------------------------------------------------------------


def _stores(tmp_path: Path) -> dict[str, Callable[[], Store]]:
    shared = MemoryStore()
    return {"memory": lambda: shared, "sqlite": lambda: SQLiteStore(tmp_path / "bot.db")}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_spend_is_kept_in_the_hubs_store_and_shown_in_its_statistics(
    kind: str, tmp_path: Path
) -> None:
    """Under a hub, what X charges goes to the hub's store, per day, and to hub.statistics()."""
    sandbox = XSandbox(seed=6)
    opener = _stores(tmp_path)[kind]
    x = XAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    hub = Hub(adapters=[x], store=opener())
    today = datetime.now(UTC).date()
    async with hub:
        assert x.spend is x.costs.meter
        assert x.spend.store is hub.store
        event = await _first_mention(sandbox, x, "my order is late")
        await x.send(Reply(network="x", to=event.message, text="See example.com/t/1"))
        spent = x.costs.spent_on(today)
        # us and the customer read, one owned read, the reply with a URL
        assert spent == Decimal("0.010") * 2 + Decimal("0.001") + Decimal("0.200")
        stats = hub.statistics()
        assert stats.networks["x"].spend == {today: spent}
        assert stats.total.spend == {today: spent}
        assert await hub.store.get_value("spend.x", today.isoformat()) == str(spent)
        assert x.costs.breakdown(today)["post_create_url"] == Decimal("0.200")
    assert not (tmp_path / "ledger.json").exists()


async def test_a_restarted_worker_reads_the_days_spend_back_and_refuses(tmp_path: Path) -> None:
    """SQLite: the day's spend outlives the process; the budget refuses before any request."""
    sandbox = XSandbox(seed=7)
    settings = {**sandbox.adapter_settings(), "daily_budget": "0.30"}
    x = XAdapter(settings, transport=sandbox.transport())
    async with Hub(adapters=[x], store=SQLiteStore(tmp_path / "bot.db")):
        event = await _first_mention(sandbox, x, "where is it?")
        await x.send(Reply(network="x", to=event.message, text="See https://example.com/t/9"))
        spent = x.costs.spent_on(datetime.now(UTC).date())
    again = XAdapter(settings, transport=sandbox.transport())
    async with Hub(adapters=[again], store=SQLiteStore(tmp_path / "bot.db")):
        today = datetime.now(UTC).date()
        # read back at open: users/me read again, by this new process
        assert again.costs.spent_on(today) == spent + Decimal("0.010")
        action = Reply(network="x", to=event.message, text="Also https://example.com/t/10")
        with pytest.raises(BudgetExceeded):
            again.check(action)
        before = sandbox.request_count()
        with pytest.raises(BudgetExceeded) as caught:
            await again.send(action)
        assert sandbox.request_count() == before
        assert caught.value.spent == spent + Decimal("0.010")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_two_adapters_on_one_store_share_the_budget(kind: str, tmp_path: Path) -> None:
    """Two workers sending URL replies at once: the shared budget lets two through, not four."""
    sandbox = XSandbox(seed=8)
    store = _stores(tmp_path)[kind]()
    workers = [XAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
               for _ in range(2)]
    async with store:
        for worker in workers:
            worker.spend.bind(store)
        async with workers[0], workers[1]:
            event = await _first_mention(sandbox, workers[0], "where is it?")
            today = datetime.now(UTC).date()
            await workers[0].spend.refresh(datetime.now(UTC))
            budget = workers[0].spend.spent_on(today) + Decimal("0.45")
            for worker in workers:
                worker.spend.daily_budget = budget
            refused: list[BudgetExceeded] = []

            async def send(worker: XAdapter, number: int) -> None:
                action = Reply(network="x", to=event.message,
                               text=f"Tracking {number}: https://example.com/t/{number}")
                try:
                    await worker.send(action)
                except BudgetExceeded as exc:
                    refused.append(exc)

            async with anyio.create_task_group() as tg:
                for number in range(4):
                    tg.start_soon(send, workers[number % 2], number)
        assert len(sandbox.sent()) == 2
        assert len(refused) == 2
        total = Decimal(await store.get_value("spend.x", today.isoformat()) or "0")
        assert budget - Decimal("0.05") == total


async def test_activity_events_delivered_are_billed(tmp_path: Path) -> None:
    """Each X Activity event on the stream is billed: a mention 0.005, a received DM 0.010."""
    sandbox = XSandbox(seed=9)
    sandbox.customer_mention("@shop hello")
    sandbox.customer_dm("and a DM")
    settings = {**sandbox.adapter_settings(), "activity_stream": True, "read_dms": False}
    async with XAdapter(settings, transport=sandbox.transport()) as x:
        stream = {s.name: s for s in x.sources()}["activity"]
        assert isinstance(stream, StreamSource)
        async for _batch in stream.stream(None):
            pass
        spent = x.costs.breakdown(datetime.now(UTC).date())
    assert spent["post_event"] == Decimal("0.005")
    assert spent["dm_event"] == Decimal("0.010")


def test_the_inbox_shows_todays_spend_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`omnichannel inbox` reads the spend every worker added to the store (no ledger file)."""
    from omnichannel.cli import main

    now = datetime.now(UTC)
    store = tmp_path / "bot.db"

    async def spend() -> None:
        async with SQLiteStore(store) as opened:
            ledger = CostLedger()
            ledger.meter.bind(opened)
            ledger.charge("post_create_url", at=now)
            ledger.charge("post_create", at=now, count=2)
            await ledger.meter.flush()

    anyio.run(spend)
    config = tmp_path / "omnichannel.toml"
    config.write_text(f'store = "{store}"\n\n[x]\nclient_id = "c"\naccess_token = "t"\n',
                      encoding="utf-8")
    assert main(["inbox", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "x: spent today 0.23 USD; this month 0.23 USD (every worker, from the store)" in out
