"""What X's pay-per-use requests cost, a ledger of what was spent, and the budget guard.

Prices are X's 2026 list (``x-api/getting-started/pricing.mdx``): reads are
charged per resource returned, each resource once per UTC day; writes per
request, and a post with a URL costs 0.20 USD against 0.015 (0.010 for a reply
that was summoned).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import unicodedata
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from omnichannel.errors import ActionError, ConfigurationError

from ._text import XTextRule

__all__ = ["BudgetExceeded", "Charge", "CostLedger", "Prices", "has_url"]

Charge = Literal[
    "post_read", "owned_read", "user_read", "dm_event_read", "post_create", "post_create_url",
    "summoned_reply", "dm_create", "interaction_delete",
]
"""A kind of charge: the name of its price in `Prices`."""


class Prices(BaseModel):
    """X's pay-per-use prices in USD (the 2026 list); override any in the settings.

    Attributes:
        post_read: A post read.
        owned_read: A post read from our own timelines (mentions, our posts).
        user_read: A user read.
        dm_event_read: A DM event read.
        post_create: A post created.
        post_create_url: A post created with a URL in it.
        summoned_reply: A reply to a post that summoned us.
        dm_create: A DM sent.
        interaction_delete: A deletion.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    post_read: Decimal = Decimal("0.005")
    owned_read: Decimal = Decimal("0.001")
    user_read: Decimal = Decimal("0.010")
    dm_event_read: Decimal = Decimal("0.010")
    post_create: Decimal = Decimal("0.015")
    post_create_url: Decimal = Decimal("0.200")
    summoned_reply: Decimal = Decimal("0.010")
    dm_create: Decimal = Decimal("0.015")
    interaction_delete: Decimal = Decimal("0.010")


class BudgetExceeded(ActionError):
    """The request would take the spend over the daily or monthly budget.

    Attributes:
        period: ``"day"`` or ``"month"``.
        spent: What was spent in the period (USD).
        budget: The budget of the period (USD).
        price: What the refused request would have cost.
    """

    def __init__(
        self, *, period: str, spent: Decimal, budget: Decimal, price: Decimal,
        network: str | None = "x",
    ) -> None:
        self.period = period
        self.spent = spent
        self.budget = budget
        self.price = price
        super().__init__(
            f"the {period}'s X budget of {budget} USD would be exceeded "
            f"(spent {spent}, this costs {price})", network=network,
        )


def has_url(text: str) -> bool:
    """Whether X finds a URL in ``text`` (bare domains too): such a post costs 15 times more."""
    plain = unicodedata.normalize("NFC", text)
    return XTextRule().countable(plain) != plain


_CHARGES: frozenset[str] = frozenset(get_args(Charge))
_FORMAT = 1


class CostLedger:
    """What this account spent, per UTC day, charged as X bills.

    A read resource (a post, a user, a DM event) is charged once per UTC day,
    however often it is read again. Without ``path`` the ledger lives in
    memory; with one it is read from that file when made and `save` writes it
    back (JSON, mode 0600, replaced atomically), so the spend of the day and
    the month, and the resources already billed today, survive a restart and
    the budgets still hold. It keeps the days of the current and the previous
    month. One file serves one process at a time.

    Args:
        prices: The price table.
        daily_budget: The most to spend in a UTC day, or ``None``.
        monthly_budget: The most to spend in a calendar month (UTC), or ``None``.
        path: The file to keep the ledger in, or ``None``.

    Raises:
        ConfigurationError: ``path`` exists but is not a ledger file.
    """

    def __init__(
        self, prices: Prices | None = None, *, daily_budget: Decimal | None = None,
        monthly_budget: Decimal | None = None, path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.prices = prices or Prices()
        self.daily_budget = daily_budget
        self.monthly_budget = monthly_budget
        self.path = Path(path) if path is not None else None
        self._days: dict[date, dict[Charge, Decimal]] = defaultdict(
            lambda: defaultdict(Decimal))
        self._seen: dict[date, set[tuple[str, str]]] = defaultdict(set)
        self._dirty = False
        if self.path is not None:
            self._load(self.path)

    def __repr__(self) -> str:
        return f"CostLedger(days={len(self._days)})"

    @property
    def dirty(self) -> bool:
        """Whether something was charged since the ledger was read or saved."""
        return self._dirty

    def charge(self, what: Charge, *, at: datetime, count: int = 1) -> Decimal:
        """Record ``count`` charges of ``what`` on ``at``'s UTC day; return the amount."""
        price: Decimal = getattr(self.prices, what)
        amount = price * count
        if count > 0:
            self._days[at.date()][what] += amount
            self._dirty = True
        return amount

    def charge_reads(self, what: Charge, ids: list[str], *, at: datetime) -> Decimal:
        """Charge the resources in ``ids`` not charged yet today (X bills each once a day)."""
        seen = self._seen[at.date()]
        fresh = [i for i in dict.fromkeys(ids) if (what, i) not in seen]
        seen.update((what, i) for i in fresh)
        return self.charge(what, at=at, count=len(fresh))

    # the file -----------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        bad = ConfigurationError(f"{path} is not an X cost ledger", network="x")
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise bad
            for day, amounts in data["days"].items():
                for what, amount in amounts.items():
                    if what in _CHARGES:
                        self._days[date.fromisoformat(day)][what] = Decimal(amount)
            for day, pairs in data.get("seen", {}).items():
                self._seen[date.fromisoformat(day)] = {(str(w), str(i)) for w, i in pairs}
        except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation):
            raise bad from None

    def save(self, *, today: date | None = None) -> None:
        """Write the ledger to its file (no-op without ``path``): atomically, mode 0600.

        Days before the previous month, and the billed-resource lists of days
        before ``today``, are dropped first: the budgets no longer need them.
        """
        if self.path is None:
            return
        now = today or max(self._days, default=None)
        if now is not None:
            oldest = date(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 1)
            for day in [d for d in self._days if d < oldest]:
                del self._days[day]
            for day in [d for d in self._seen if d < now]:
                del self._seen[day]
        data = {
            "format": _FORMAT,
            "days": {
                day.isoformat(): {what: str(amount) for what, amount in amounts.items()}
                for day, amounts in sorted(self._days.items())
            },
            "seen": {
                day.isoformat(): sorted(pairs) for day, pairs in sorted(self._seen.items())
            },
        }
        body = json.dumps(data).encode("utf-8")
        folder = self.path.parent
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._dirty = False

    def spent_on(self, day: date) -> Decimal:
        """Everything spent on a UTC day."""
        return sum(self._days.get(day, {}).values(), Decimal(0))

    def spent_in_month(self, year: int, month: int) -> Decimal:
        """Everything spent in a calendar month (UTC)."""
        return sum(
            (self.spent_on(day) for day in self._days if (day.year, day.month) == (year, month)),
            Decimal(0),
        )

    def breakdown(self, day: date) -> dict[str, Decimal]:
        """What was spent on a day, per kind of charge."""
        return {what: amount for what, amount in self._days.get(day, {}).items() if amount}

    def guard(self, price: Decimal, *, at: datetime) -> None:
        """Refuse a request that would take the spend over a budget.

        Raises:
            BudgetExceeded: ``spent + price`` is over the day's or the month's budget.
        """
        if self.daily_budget is not None:
            spent = self.spent_on(at.date())
            if spent + price > self.daily_budget:
                raise BudgetExceeded(period="day", spent=spent, budget=self.daily_budget,
                                     price=price)
        if self.monthly_budget is not None:
            spent = self.spent_in_month(at.year, at.month)
            if spent + price > self.monthly_budget:
                raise BudgetExceeded(period="month", spent=spent, budget=self.monthly_budget,
                                     price=price)
