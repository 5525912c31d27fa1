"""The hub's statistics: what its pipeline did, per network and in total.

``hub.statistics()`` returns a [`HubStatistics`][omnichannel.statistics.HubStatistics]
snapshot; the pipeline counts as it works, in this process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from .store import OutboxItem

if TYPE_CHECKING:
    from .adapter import Adapter

__all__ = ["HubStatistics", "NetworkStatistics"]

_Figure = Literal[
    "events_recorded",
    "duplicates_dropped",
    "events_handled",
    "handler_failures",
    "dead_letters",
    "actions_queued",
    "actions_sent",
    "actions_failed",
    "actions_retried",
    "drafts_held",
]


class NetworkStatistics(BaseModel):
    """What the hub's pipeline did for one network (or, as ``total``, for all).

    Counted since the hub was created, in this process; a restarted hub starts
    again from zero (the store keeps the records themselves).

    Attributes:
        events_recorded: New events stored, whether polled, streamed, posted to
            the webhook app or passed to ``ingest``.
        duplicates_dropped: Events delivered again (a webhook retry, a second
            worker, a poll overlapping a webhook) and dropped as already seen.
        events_handled: Events whose handlers all ran, marked handled.
        handler_failures: Handler calls that raised (each is also stored).
        dead_letters: Inbound items the adapter could not use, kept as dead letters.
        actions_queued: Actions added to the outbox (queuing a key that is
            already there again does not count).
        actions_sent: Actions the network accepted, including those found
            there by reconciliation instead of being sent again.
        actions_failed: Actions the outbox gave up on.
        actions_retried: Delivery attempts put back for a later try: a
            transient error, a rate limit, a send that may have landed.
        drafts_held: Replies held as drafts for a human.
        spend: What the network charged per UTC day, in US dollars, for a
            network that bills each request (its adapter's
            [`SpendMeter`][omnichannel.spend.SpendMeter]): the figures of the
            hub's store as this process last read or added to them, so they
            count every worker sharing the store and survive a restart. In
            ``total``, the sum over networks.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    events_recorded: int = 0
    duplicates_dropped: int = 0
    events_handled: int = 0
    handler_failures: int = 0
    dead_letters: int = 0
    actions_queued: int = 0
    actions_sent: int = 0
    actions_failed: int = 0
    actions_retried: int = 0
    drafts_held: int = 0
    spend: Mapping[date, Decimal] = {}


class HubStatistics(BaseModel):
    """A snapshot of the hub's counters, as ``hub.statistics()`` returns it.

    Attributes:
        networks: The counts of each network, by network id: every configured
            adapter's, and any other network events were ingested for.
        total: The sums over all networks.
        events_pending: Events dispatched whose handlers have not finished
            (``0`` when the hub is not running).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    networks: Mapping[str, NetworkStatistics]
    total: NetworkStatistics
    events_pending: int = 0


_DELIVERY_OUTCOMES: dict[str, _Figure] = {
    "sent": "actions_sent",
    "failed": "actions_failed",
    "pending": "actions_retried",  # put back for a later attempt
    "ambiguous": "actions_retried",  # looked up before the next attempt
}


class _Tally:
    """The hub's running counters, per network (the hub adds, ``statistics()`` reads)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[_Figure]] = {}

    def add(self, network: str, figure: _Figure, amount: int = 1) -> None:
        if amount:
            counts = self.counts.get(network)
            if counts is None:  # not setdefault: a Counter built on every call costs more
                counts = self.counts[network] = Counter()
            counts[figure] += amount

    def snapshot(self, adapters: Mapping[str, Adapter], *, pending: int) -> HubStatistics:
        names = sorted({*adapters, *self.counts})
        total: Counter[_Figure] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        spend: dict[str, dict[date, Decimal]] = {}
        for name, adapter in adapters.items():
            if adapter.spend is not None:
                spend[name] = adapter.spend.days()
        total_spend: dict[date, Decimal] = {}
        for days in spend.values():
            for day, amount in days.items():
                total_spend[day] = total_spend.get(day, Decimal(0)) + amount
        return HubStatistics(
            networks={
                name: NetworkStatistics.model_validate(
                    {**self.counts.get(name, {}), "spend": spend.get(name, {})})
                for name in names
            },
            total=NetworkStatistics.model_validate(
                {**total, "spend": dict(sorted(total_spend.items()))}),
            events_pending=pending,
        )

    def delivered(self, item: OutboxItem) -> None:
        """Count the outcome of one delivery attempt (the outbox's ``on_outcome``)."""
        figure = _DELIVERY_OUTCOMES.get(item.status)
        if figure is not None:
            self.add(item.network, figure)
