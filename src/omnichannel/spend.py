"""What a network charges per request: spend per UTC day, shared through the store, and budgets.

An adapter for a network that bills each request (X on pay-per-use) prices
what it does and records it on a [`SpendMeter`][omnichannel.spend.SpendMeter]
that it exposes as its ``spend`` attribute. When the hub opens, it hands
every such meter its store (the
[`ValueStore`][omnichannel.store.ValueStore] role), and the spend of each
UTC day and of each month is kept there with
[`add_values`][omnichannel.store.ValueStore.add_values]: several workers on
one store add to one figure, a restarted process reads it back, and a budget
checked with `SpendMeter.reserve` holds across both.
[`hub.statistics()`][omnichannel.hub.Hub.statistics] shows each network's
spend per day (``NetworkStatistics.spend``).

Amounts are US dollars, the currency the networks that charge bill in.

```python
from datetime import UTC, datetime
from decimal import Decimal

from omnichannel.spend import SpendMeter

meter = SpendMeter("chirp", daily_budget=Decimal("1.00"))
meter.charge("post_create", Decimal("0.015"), at=datetime(2026, 12, 4, 9, tzinfo=UTC))
print(meter.spent_on(datetime(2026, 12, 4).date()), meter.daily_budget)
#> 0.015 1.00
```
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

from .errors import ActionError
from .store.roles import ValueStore

__all__ = ["BudgetExceeded", "SpendMeter"]

class BudgetExceeded(ActionError):
    """The request would take the spend over the daily or monthly budget; nothing was sent.

    Attributes:
        period: ``"day"`` or ``"month"``.
        spent: What was spent in the period (USD), by every worker sharing the store.
        budget: The budget of the period (USD).
        price: What the refused request would have cost.
    """

    def __init__(
        self, *, period: str, spent: Decimal, budget: Decimal, price: Decimal,
        network: str | None = None,
    ) -> None:
        self.period = period
        self.spent = spent
        self.budget = budget
        self.price = price
        where = f" on {network}" if network else ""
        super().__init__(
            f"the {period}'s budget of {budget} USD{where} would be exceeded "
            f"(spent {spent}, this costs {price})", network=network,
        )


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date() if at.tzinfo is not None else at.date()


def _day_key(day: date) -> str:
    return day.isoformat()


def _month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _kind_key(day: date, kind: str) -> str:
    return f"{day.isoformat()} {kind}"


def _keys(kind: str | None, amount: Decimal, day: date) -> dict[str, Decimal]:
    """The store keys one charge adds to: its day, its month and, named, its kind on that day."""
    keys = {_day_key(day): amount, _month_key(day.year, day.month): amount}
    if kind is not None:
        keys[_kind_key(day, kind)] = amount
    return keys


def _summed(
    charges: Mapping[tuple[str, date], Decimal], onto: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """``onto`` (store figures by key) with ``charges`` (per kind and day) added to each key."""
    figures = dict(onto)
    for (kind, day), amount in charges.items():
        for key, value in _keys(kind, amount, day).items():
            figures[key] = figures.get(key, Decimal(0)) + value
    return figures


class SpendMeter:
    """One network's spend per UTC day and month, with its budgets; shared through a store.

    Without a store the figures live in this object. Once `bind` gave it a
    store (the hub does when it opens), every charge is added to the store's
    figures at the next `flush`, and `reserve` checks a budget and records a
    price there in one atomic step, so workers sharing the store share the
    budget. The figures this object shows (`spent_on`, `days`, `check`) are
    those the store answered last, plus the charges not flushed yet.

    Args:
        network: The network id (the store scope is ``spend.<network>``).
        daily_budget: The most to spend in a UTC day (USD), or ``None``.
        monthly_budget: The most to spend in a calendar month (UTC), or ``None``.
        store: Where to keep the spend; ``None`` until `bind`.

    Attributes:
        store: The store the spend is kept in, or ``None``.
    """

    def __init__(
        self, network: str, *, daily_budget: Decimal | None = None,
        monthly_budget: Decimal | None = None, store: ValueStore | None = None,
    ) -> None:
        self.network = network
        self.daily_budget = daily_budget
        self.monthly_budget = monthly_budget
        self.store = store
        self._known: dict[str, Decimal] = {}
        self._pending: dict[tuple[str, date], Decimal] = {}

    def __repr__(self) -> str:
        return f"SpendMeter(network={self.network!r}, shared={self.store is not None})"

    @property
    def scope(self) -> str:
        """The store scope the figures are kept under."""
        return f"spend.{self.network}"

    def bind(self, store: ValueStore) -> None:
        """Keep the spend in ``store`` from now on; figures kept here before are left behind."""
        self.store = store
        self._known.clear()
        self._pending.clear()

    # recording -----------------------------------------------------------------

    def charge(self, kind: str, amount: Decimal, *, at: datetime) -> None:
        """Record ``amount`` spent on ``kind`` on ``at``'s UTC day (a negative amount refunds).

        Counted here at once; with a store, added to the store's figures at
        the next `flush`.
        """
        if not amount:
            return
        day = _day(at)
        if self.store is None:
            self._add_known(_keys(kind, amount, day))
        else:
            self._pending[(kind, day)] = self._pending.get((kind, day), Decimal(0)) + amount

    async def flush(self) -> None:
        """Add the charges recorded since the last flush to the store's figures.

        Raises:
            Exception: What the store raised (a `StoreError`, say); the
                charges are kept for the next flush.
        """
        store = self.store
        if store is None or not self._pending:
            return
        pending, self._pending = self._pending, {}
        amounts = _summed(pending, {})
        try:
            totals = await store.add_values(self.scope, amounts)  # one transaction
        except BaseException:
            for entry, amount in pending.items():
                self._pending[entry] = self._pending.get(entry, Decimal(0)) + amount
            raise
        self._known.update(totals or {})

    async def reserve(self, kind: str | None, price: Decimal, *, at: datetime) -> None:
        """Check ``price`` against the budgets and record it, in one step (before the request).

        With a store, the check reads the figures every worker adds to, and
        nothing else can be added between the check and the record: two
        workers never both take the last of a budget. ``kind=None`` with a
        price of ``0`` only checks that no budget is spent already (before a
        read, whose price is known after). Give the price back with
        ``charge(kind, -price, ...)`` if the request did not happen.

        Raises:
            BudgetExceeded: ``spent + price`` is over the day's or the month's
                budget (nothing is recorded).
        """
        await self.flush()
        day = _day(at)
        amounts = _keys(kind, price, day)
        if self.store is None:
            self.check(price, at=at)
            self._add_known(amounts)
            return
        if kind is None and not price:  # nothing to record: a read of the figures will do
            await self.refresh(at)
            self.check(price, at=at)
            return
        limits: dict[str, Decimal] = {}
        if self.daily_budget is not None:
            limits[_day_key(day)] = self.daily_budget
        if self.monthly_budget is not None:
            limits[_month_key(day.year, day.month)] = self.monthly_budget
        totals = await self.store.add_values(self.scope, amounts, limits=limits)
        if totals is None:
            await self.refresh(at)
            self.check(price, at=at)
            # another worker's refund came between the refusal and the read: still refused
            raise self._exceeded("day" if self.daily_budget is not None else "month", price, day)
        self._known.update(totals)

    async def refresh(self, at: datetime) -> None:
        """Read the day's and the month's figures of ``at`` back from the store (no-op without)."""
        store = self.store
        if store is None:
            return
        day = _day(at)
        for key in (_day_key(day), _month_key(day.year, day.month)):
            value = await store.get_value(self.scope, key)
            if value is not None:
                self._known[key] = Decimal(value)

    def load(self, days: Mapping[date, Mapping[str, Decimal]]) -> None:
        """Set the figures from a record kept elsewhere (a ledger file): per day, per kind."""
        self._known.clear()
        for day, kinds in days.items():
            for kind, amount in kinds.items():
                self._add_known(_keys(kind, amount, day))

    def _add_known(self, amounts: Mapping[str, Decimal]) -> None:
        for key, amount in amounts.items():
            self._known[key] = self._known.get(key, Decimal(0)) + amount

    def _figures(self) -> dict[str, Decimal]:
        """The store's figures as last read, with the charges not flushed yet on top."""
        if not self._pending:
            return self._known
        return _summed(self._pending, self._known)

    # reading ------------------------------------------------------------------

    def check(self, price: Decimal, *, at: datetime) -> None:
        """Refuse ``price`` if it would go over a budget, by the figures last read (no I/O).

        Raises:
            BudgetExceeded: ``spent + price`` is over the day's or the month's budget.
        """
        day = _day(at)
        if self.daily_budget is not None and self.spent_on(day) + price > self.daily_budget:
            raise self._exceeded("day", price, day)
        if (self.monthly_budget is not None
                and self.spent_in_month(day.year, day.month) + price > self.monthly_budget):
            raise self._exceeded("month", price, day)

    def _exceeded(self, period: str, price: Decimal, day: date) -> BudgetExceeded:
        if period == "day":
            spent, budget = self.spent_on(day), self.daily_budget
        else:
            spent, budget = self.spent_in_month(day.year, day.month), self.monthly_budget
        return BudgetExceeded(period=period, spent=spent, budget=budget or Decimal(0),
                              price=price, network=self.network)

    def spent_on(self, day: date) -> Decimal:
        """What was spent on a UTC day."""
        return self._figures().get(_day_key(day), Decimal(0))

    def spent_in_month(self, year: int, month: int) -> Decimal:
        """What was spent in a calendar month (UTC)."""
        return self._figures().get(_month_key(year, month), Decimal(0))

    def breakdown(self, day: date) -> dict[str, Decimal]:
        """What was spent on a UTC day, per kind of charge (those known to this process)."""
        prefix = f"{day.isoformat()} "
        return {key.removeprefix(prefix): amount for key, amount in self._figures().items()
                if key.startswith(prefix) and amount}

    def days(self) -> dict[date, Decimal]:
        """The spend of every UTC day known here, oldest first (what the statistics show)."""
        found = {date.fromisoformat(key): amount for key, amount in self._figures().items()
                 if len(key) == 10 and amount}
        return dict(sorted(found.items()))

    def by_kind(self) -> dict[date, dict[str, Decimal]]:
        """Every day's spend known here, per kind of charge (what a ledger file keeps)."""
        found: dict[date, dict[str, Decimal]] = {}
        for key, amount in self._figures().items():
            day, _, kind = key.partition(" ")
            if kind and amount:
                found.setdefault(date.fromisoformat(day), {})[kind] = amount
        return dict(sorted(found.items()))
