"""What X's pay-per-use requests cost, a ledger of what was spent, and the budget guard.

Prices are X's 2026 list (``x-api/getting-started/pricing.mdx``): reads are
charged per resource returned, each resource once per UTC day; writes per
request, and a post with a URL costs 0.20 USD against 0.015 (0.010 for a reply
that was summoned). X Activity API events are billed per event delivered
(``docs.x.com/x-api/activity/event-pricing``: a post event 0.005, a received
DM 0.010; sent DMs, read receipts and typing are not billed).

The figures themselves are the core's `SpendMeter` (``ledger.meter``): in the
hub's store when the hub runs the adapter, else in memory or in the ledger file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from omnichannel.errors import ConfigurationError
from omnichannel.spend import BudgetExceeded, SpendMeter

from ._text import XTextRule

__all__ = ["BudgetExceeded", "Charge", "CostLedger", "Prices", "has_url"]

Charge = Literal[
    "post_read", "owned_read", "user_read", "dm_event_read", "post_create", "post_create_url",
    "summoned_reply", "dm_create", "interaction_delete", "post_event", "dm_event",
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
        post_event: An X Activity API post event delivered (``post.mention.create``,
            ``post.reply.create``...), by webhook or on the stream.
        dm_event: An X Activity API ``dm.received`` (or ``chat.received``) delivered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    post_read: Decimal = Decimal("0.005")
    owned_read: Decimal = Decimal("0.001")
    user_read: Decimal = Decimal("0.010")
    dm_event_read: Decimal = Decimal("0.010")
    post_create: Decimal = Decimal("0.015")
    post_create_url: Decimal = Decimal("0.200")
    summoned_reply: Decimal = Decimal("0.010")
    dm_create: Decimal = Decimal("0.015")
    interaction_delete: Decimal = Decimal("0.010")
    post_event: Decimal = Decimal("0.005")
    dm_event: Decimal = Decimal("0.010")


def has_url(text: str) -> bool:
    """Whether X finds a URL in ``text`` (bare domains too): such a post costs 15 times more."""
    plain = unicodedata.normalize("NFC", text)
    return XTextRule().countable(plain) != plain


_CHARGES: frozenset[str] = frozenset(get_args(Charge))
_FORMAT = 1


class CostLedger:
    """What this account spent, per UTC day, charged as X bills.

    A read resource (a post, a user, a DM event) is charged once per UTC day,
    however often it is read again (this process remembers what it billed
    today). The figures are ``meter``, a `SpendMeter`: once it is bound to a
    store (the hub binds it to its own when it opens) they are kept there,
    shared by every worker and kept across restarts, and ``path`` is not
    used. Without a store and without ``path`` the ledger lives in memory;
    with ``path`` it is read from that file when made and `save` writes it
    back (JSON, mode 0600, replaced atomically), so the spend of the day and
    the month, and the resources already billed today, survive a restart and
    the budgets still hold. The file keeps the days of the current and the
    previous month and serves one process at a time.

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
        self.meter = SpendMeter("x", daily_budget=daily_budget, monthly_budget=monthly_budget)
        self.path = Path(path) if path is not None else None
        self._seen: dict[date, set[tuple[str, str]]] = defaultdict(set)
        self._dirty = False
        if self.path is not None:
            self._load(self.path)

    def __repr__(self) -> str:
        return f"CostLedger(meter={self.meter!r})"

    @property
    def daily_budget(self) -> Decimal | None:
        """The most to spend in a UTC day."""
        return self.meter.daily_budget

    @property
    def monthly_budget(self) -> Decimal | None:
        """The most to spend in a calendar month."""
        return self.meter.monthly_budget

    @property
    def dirty(self) -> bool:
        """Whether something was charged since the ledger was read or saved."""
        return self._dirty

    def charge(self, what: Charge, *, at: datetime, count: int = 1) -> Decimal:
        """Record ``count`` charges of ``what`` on ``at``'s UTC day; return the amount."""
        price: Decimal = getattr(self.prices, what)
        amount = price * count
        if count > 0:
            self.meter.charge(what, amount, at=at)
            self._dirty = True
        return amount

    def charge_reads(self, what: Charge, ids: list[str], *, at: datetime) -> Decimal:
        """Charge the resources in ``ids`` not charged yet today (X bills each once a day)."""
        seen = self._seen[at.date()]
        fresh = [i for i in dict.fromkeys(ids) if (what, i) not in seen]
        seen.update((what, i) for i in fresh)
        return self.charge(what, at=at, count=len(fresh))

    async def reserve(self, what: Charge | None, price: Decimal, *, at: datetime) -> None:
        """Check ``price`` against the budgets and record it as ``what``, in one step.

        Raises:
            BudgetExceeded: It would take the spend over a budget (nothing recorded).
        """
        await self.meter.reserve(what, price, at=at)
        self._dirty = self._dirty or bool(price)

    # the file -----------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        bad = ConfigurationError(f"{path} is not an X cost ledger", network="x")
        days: dict[date, dict[str, Decimal]] = defaultdict(dict)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise bad
            for day, amounts in data["days"].items():
                for what, amount in amounts.items():
                    if what in _CHARGES:
                        days[date.fromisoformat(day)][what] = Decimal(amount)
            for day, pairs in data.get("seen", {}).items():
                self._seen[date.fromisoformat(day)] = {(str(w), str(i)) for w, i in pairs}
        except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation):
            raise bad from None
        self.meter.load(days)

    def save(self, *, today: date | None = None) -> None:
        """Write the ledger to its file: atomically, mode 0600.

        A no-op without ``path``, or once the meter keeps the spend in a store.
        Days before the previous month, and the billed-resource lists of days
        before ``today``, are dropped first: the budgets no longer need them.
        """
        if self.path is None or self.meter.store is not None:
            return
        days: Mapping[date, Mapping[str, Decimal]] = self.meter.by_kind()
        now = today or max(days, default=None)
        if now is not None:
            oldest = date(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 1)
            days = {day: kinds for day, kinds in days.items() if day >= oldest}
            for day in [d for d in self._seen if d < now]:
                del self._seen[day]
        data = {
            "format": _FORMAT,
            "days": {
                day.isoformat(): {what: str(amount) for what, amount in amounts.items()}
                for day, amounts in sorted(days.items())
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
        """Everything spent on a UTC day (by every worker, when the meter has a store)."""
        return self.meter.spent_on(day)

    def spent_in_month(self, year: int, month: int) -> Decimal:
        """Everything spent in a calendar month (UTC)."""
        return self.meter.spent_in_month(year, month)

    def breakdown(self, day: date) -> dict[str, Decimal]:
        """What was spent on a day, per kind of charge."""
        return self.meter.breakdown(day)

    def guard(self, price: Decimal, *, at: datetime) -> None:
        """Refuse a request that would take the spend over a budget, by the figures last read.

        Raises:
            BudgetExceeded: ``spent + price`` is over the day's or the month's budget.
        """
        self.meter.check(price, at=at)
