"""The demo's helpdesk step: triage, assignment, a refused collision, SLA warning, canned reply.

After the quick bot has drafted its answer to the sarcastic complaint, two
agents take over on each network through the helpdesk workflow: triage has
made the complaint urgent; it is assigned to the less loaded agent; the other
agent's answer is refused while the first one types; the unanswered complaint
reaches its SLA warning (on a clock moved forward for the demo, so nobody
waits 25 minutes); and the assigned agent answers with a canned reply whose
text fits the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from ..actions import Reply
from ..cli._table import render_table
from ..errors import ConversationClaimed
from ..helpdesk import (
    Agent,
    CannedReply,
    SlaNotice,
    SlaPolicy,
    SlaTargets,
    Triage,
    TriageRule,
    Workflow,
)
from ..hub import Hub
from ..model import Message, Ref
from ..store import ConversationStateStore, OutboxItem

__all__ = ["HelpdeskDemo", "HelpdeskRow", "helpdesk_table"]

TRIAGE = Triage([
    TriageRule(name="upset", signs=["🙄", "😡", "🤬", "🙃"],
               phrases=["thanks a lot for losing", "thanks for nothing", "still waiting"],
               words={"en": ["refund", "broken", "lost"]},
               priority="high", tags=["complaint"], queue="care"),
])
SLA = SlaPolicy(targets={
    "high": SlaTargets(first_response=timedelta(minutes=30)),
    "normal": SlaTargets(first_response=timedelta(hours=4)),
})
TEAM = (Agent(id="anna", name="Anna", capacity=10), Agent(id="ben", name="Ben", capacity=10))
LOST_PARCEL = CannedReply(
    name="lost-parcel",
    text="{name}, we're so sorry your parcel went missing again. A replacement ships today by "
         "express, on us, and the tracking link is on its way to you now. 📦",
    variants={
        "x": "{name}, so sorry! A replacement ships today by express, on us 📦",
        "bluesky": "{name}, so sorry your parcel went missing again! A replacement ships today "
                   "by express, on us 📦",
    },
)
_SHIFT = timedelta(minutes=25)  # past the 30-minute target's warning (75 %: 22.5 min)


@dataclass
class HelpdeskRow:
    """What the helpdesk step did on one network, for the summary."""

    network: str
    priority: str = "-"
    tags: str = "-"
    assignee: str = "-"
    collision: str = "-"
    sla: str = "-"
    canned: str = "-"


class HelpdeskDemo:
    """The workflow the demo's hub runs with, and the step each network's script ends with."""

    def __init__(self, store: ConversationStateStore) -> None:
        self.store = store
        self.workflow = Workflow(store, triage=TRIAGE, sla=SLA, agents=TEAM)
        self.notices: dict[Ref, list[SlaNotice]] = {}
        self.rows: dict[str, HelpdeskRow] = {}

    async def _sla_warnings(self, conversation: Ref) -> list[SlaNotice]:
        """This conversation's notices, from a look at the queue 25 minutes on."""
        later = Workflow(self.store, sla=SLA, clock=lambda: datetime.now(UTC) + _SHIFT)
        for notice in await later.sla_notices():
            self.notices.setdefault(notice.conversation, []).append(notice)
        return self.notices.get(conversation, [])

    async def run(
        self,
        hub: Hub,
        complaint: Message,
        *,
        line: Callable[[str, str, str], None],
        check: Callable[[str, bool, str], None],
    ) -> HelpdeskRow:
        """Take the drafted complaint through the workflow; record checks and a summary row."""
        network = complaint.network
        workflow = self.workflow
        conversation = complaint.conversation
        row = HelpdeskRow(network)
        self.rows[network] = row

        state = await workflow.state(conversation)
        row.priority, row.tags = state.priority, ", ".join(state.tags) or "-"
        check("triage makes the sarcastic complaint high priority and tags it",
              state.priority == "high" and "complaint" in state.tags,
              f"priority {state.priority}, tags {list(state.tags)}")

        state = await workflow.assign_next(conversation)
        holder = state.assignee or "-"
        row.assignee = holder
        line(network, "**", f"triage: {state.priority}, tagged {', '.join(state.tags)}; "
                            f"assigned to {holder} (least loaded)")
        check("the complaint is assigned to an agent", holder in {a.id for a in TEAM},
              f"assignee {holder}")

        colleague = next(a.id for a in TEAM if a.id != holder)
        await workflow.claim(conversation, holder, activity="typing")
        refused: ConversationClaimed | None = None
        try:
            await workflow.answer(hub, Reply(network=network, to=complaint,
                                             text=f"Hi, {colleague} here, on it!"),
                                  agent=colleague)
        except ConversationClaimed as exc:
            refused = exc
        row.collision = f"{colleague} refused ({refused.holder} typing)" if refused else "sent!"
        line(network, "**", f"{colleague} tries to answer while {holder} types: "
                            + ("refused" if refused else "SENT"))
        check("a colleague's answer is refused while the owner types",
              refused is not None and refused.holder == holder,
              "refused" if refused else "it was queued")

        warnings = [n for n in await self._sla_warnings(conversation) if n.state == "warning"]
        again = [n for n in await self._sla_warnings(conversation) if n.state == "warning"]
        row.sla = f"warning at {_SHIFT.seconds // 60} min" if warnings else "none"
        line(network, "**", "25 minutes on, the unanswered complaint reaches its SLA warning"
             + ("" if warnings else ": NO WARNING"))
        check("an SLA warning fires once for the unanswered complaint",
              len(warnings) == 1 and len(again) == 1, f"{len(warnings)} warnings")

        name = complaint.author.display_name or complaint.author.handle or "there"
        rule = hub.adapters[network].capabilities.text
        text = LOST_PARCEL.render(network, rule=rule, name=name)
        item = await workflow.answer(hub, Reply(network=network, to=complaint, text=text),
                                     agent=holder)
        for draft in await hub.drafts.pending():
            action = draft.action
            if isinstance(action, Reply) and action.to.ref == complaint.ref:
                await hub.drafts.reject(draft.id, by=f"agent:{holder}",
                                        reason="answered with a canned reply")
        stored = await _settled(hub, item.key)
        delivered = stored is not None and stored.status == "sent"
        row.canned = f"{rule.count(text)}/{rule.limit} {rule.unit}: {text[:28]}…"
        line(network, "->", f"{holder} answers with the canned reply ({rule.count(text)} of "
                            f"{rule.limit} {rule.unit})")
        check("a canned reply, fitted to the network, reaches the customer once",
              delivered and rule.fits(text), f"status {stored.status if stored else None}")
        return row


async def _settled(hub: Hub, key: str) -> OutboxItem | None:
    """The outbox item ``key`` once sent or failed (or as it is after 20 s)."""
    stored = await hub.store.get_outbox(key)
    with anyio.move_on_after(20):
        while stored is not None and stored.status not in ("sent", "failed"):
            await hub.wait_idle()
            await anyio.sleep(0.05)
            stored = await hub.store.get_outbox(key)
    return stored


def helpdesk_table(rows: dict[str, HelpdeskRow]) -> str:
    """The summary of the helpdesk step, one row per network."""
    headers = ["network", "triage", "assigned", "collision", "SLA", "canned reply (length/limit)"]
    body = [[r.network, f"{r.priority} ({r.tags})", r.assignee, r.collision, r.sla, r.canned]
            for _, r in sorted(rows.items())]
    return "Helpdesk: the sarcastic complaint, taken over by two agents\n" + render_table(
        headers, body)
