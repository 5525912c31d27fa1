"""What a bot did, read back from the store: per-message outcomes and per-network figures."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..actions import PrivateReply, Reply
from ..cli._table import render_table, shorten
from ..hub import HubStatistics
from ..model import Message, Ref
from ..store import Draft, OutboxItem, Store

__all__ = [
    "LEGEND", "NetworkFigures", "Outcome", "collect_outcomes", "figures_table", "this_run",
    "transcript",
]

LEGEND = (
    "Markers: <- a customer wrote   -> the bot answered   .. drafted for a human   "
    "!! a delivery failed, the outbox retries   xx the outbox gave up   "
    "** a scripted step"
)
"""The meaning of the demo's progress markers, printed with its summary."""


@dataclass
class Outcome:
    """One customer message and what was done about it.

    Attributes:
        message: The customer's message as stored.
        sent: Outbox items answering it (any status).
        drafts: Drafts answering it.
    """

    message: Message
    sent: list[OutboxItem] = field(default_factory=list)
    drafts: list[Draft] = field(default_factory=list)

    def delivered(self) -> list[OutboxItem]:
        """The answers the network accepted."""
        return [item for item in self.sent if item.status == "sent"]


def _to(action: object) -> Ref | None:
    if isinstance(action, Reply | PrivateReply):
        return action.to.ref
    return None


async def collect_outcomes(store: Store, *, limit: int = 1000) -> list[Outcome]:
    """Read every stored customer message with the replies and drafts that answer it."""
    by_ref: dict[Ref, Outcome] = {}
    order: list[Outcome] = []
    for conversation in await store.list_conversations(limit=limit):
        for message in await store.conversation_messages(conversation.ref, limit=limit):
            if message.from_us or message.ref in by_ref:
                continue
            outcome = Outcome(message)
            by_ref[message.ref] = outcome
            order.append(outcome)
    for item in await store.list_outbox(limit=100_000):
        ref = _to(item.action)
        if ref is not None and ref in by_ref:
            by_ref[ref].sent.append(item)
    for draft in await store.list_drafts(status=None, limit=100_000):
        ref = _to(draft.action)
        if ref is not None and ref in by_ref:
            by_ref[ref].drafts.append(draft)
    order.reverse()  # conversations come newest first
    order.sort(key=lambda o: (o.message.network, o.message.created_at))
    return order


def this_run(
    outcomes: Iterable[Outcome], *, since: datetime, received: Iterable[str]
) -> list[Outcome]:
    """Keep what happened in one run: a store may hold earlier runs' work too.

    Args:
        outcomes: Everything the store holds (``collect_outcomes``).
        since: When the run started (wall clock, like the store's timestamps).
        received: The refs (``str(message.ref)``) of the messages handed to
            handlers in this run.

    Returns:
        The messages received in this run, or answered in it, each with only
        the deliveries settled and the drafts written since ``since``.
    """
    got = set(received)
    kept: list[Outcome] = []
    for outcome in outcomes:
        sent = [item for item in outcome.sent if item.updated_at >= since]
        drafts = [draft for draft in outcome.drafts if draft.created_at >= since]
        if str(outcome.message.ref) in got or sent or drafts:
            kept.append(Outcome(outcome.message, sent, drafts))
    return kept


def _quote(text: str, width: int = 70) -> str:
    return json.dumps(shorten(text, width), ensure_ascii=False)


def _author(message: Message) -> str:
    return "@" + (message.author.handle or message.author.ref.id)


def transcript(outcomes: Sequence[Outcome]) -> str:
    """Render what the bot did, message by message, grouped by network."""
    lines: list[str] = []
    network = None
    for outcome in outcomes:
        message = outcome.message
        if message.network != network:
            network = message.network
            if lines:
                lines.append("")
            lines.append(network)
        where = "DM" if message.is_private else "public"
        lines.append(f"  {_author(message)} ({where}): {_quote(message.text)}")
        for item in outcome.sent:
            action = item.action
            text = getattr(action, "text", "")
            kind = "replied privately" if _is_private(item) else "replied publicly"
            status = "" if item.status == "sent" else f" [{item.status}]"
            lines.append(f"    -> {kind}{status}: {_quote(text)}")
        for draft in outcome.drafts:
            note = f" ({draft.note})" if draft.note else ""
            lines.append(f"    .. drafted for a human{note}: {_quote(draft.action.text)}")
        if not outcome.sent and not outcome.drafts:
            lines.append("    (no answer)")
    return "\n".join(lines)


@dataclass
class NetworkFigures:
    """The summary figures of one network.

    Attributes:
        network: The network id.
        received: Customer messages stored.
        replied: Answers the network accepted (public and private).
        drafted: Drafts written for a human.
        private: Of the answers, those sent privately.
        duplicates: Deliveries the hub dropped as already seen.
        retries: Delivery attempts the outbox put back for a later try.
        first_response: Seconds from each customer message to its first answer.
    """

    network: str
    received: int = 0
    replied: int = 0
    drafted: int = 0
    private: int = 0
    duplicates: int = 0
    retries: int = 0
    first_response: list[float] = field(default_factory=list)

    def median_first_response(self) -> float | None:
        """The median first-response time in seconds, or ``None`` when nothing was answered."""
        return statistics.median(self.first_response) if self.first_response else None


def _is_private(item: OutboxItem) -> bool:
    action = item.action
    if isinstance(action, PrivateReply):
        return True
    return isinstance(action, Reply) and (action.visibility or action.to.visibility) == "private"


def figures(
    outcomes: Iterable[Outcome], statistics: HubStatistics, *, networks: Iterable[str],
) -> list[NetworkFigures]:
    """Compute the per-network figures from outcomes and the hub's own statistics."""
    table = {name: NetworkFigures(name) for name in networks}
    for outcome in outcomes:
        row = table.setdefault(outcome.message.network, NetworkFigures(outcome.message.network))
        row.received += 1
        row.drafted += len(outcome.drafts)
        delivered = outcome.delivered()
        row.replied += len(delivered)
        row.private += sum(1 for item in delivered if _is_private(item))
        if delivered:
            # updated_at is when the outbox recorded the network's acceptance (wall clock).
            first: datetime = min(item.updated_at for item in delivered)
            row.first_response.append(
                max(0.0, (first - outcome.message.created_at).total_seconds())
            )
    for name, counts in statistics.networks.items():
        row = table.setdefault(name, NetworkFigures(name))
        row.duplicates += counts.duplicates_dropped
        row.retries += counts.actions_retried
    return [table[name] for name in sorted(table)]


def figures_table(rows: Sequence[NetworkFigures]) -> str:
    """Render the summary table, one row per network plus a total."""
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    headers = ["network", "received", "replied", "drafted for a human", "private replies",
               "duplicates suppressed", "retries", "first response (median)"]
    body = [
        [r.network, str(r.received), str(r.replied), str(r.drafted), str(r.private),
         str(r.duplicates), str(r.retries), seconds(r.median_first_response())]
        for r in rows
    ]
    everything = [t for r in rows for t in r.first_response]
    body.append([
        "total", str(sum(r.received for r in rows)), str(sum(r.replied for r in rows)),
        str(sum(r.drafted for r in rows)), str(sum(r.private for r in rows)),
        str(sum(r.duplicates for r in rows)), str(sum(r.retries for r in rows)),
        seconds(statistics.median(everything) if everything else None),
    ])
    return render_table(headers, body, numeric=[False, *([True] * 7)])
