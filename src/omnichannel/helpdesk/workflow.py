"""The helpdesk workflow: conversation state, claims, assignment and SLA notices, on the store.

[`Workflow`][omnichannel.helpdesk.Workflow] keeps each conversation's
[`ConversationState`][omnichannel.store.ConversationState] in the store and
changes it only by compare-and-set, so several workers and several agents can
work on one store: a change that lost a race is read again and re-applied,
never lost. Every change is audited with who made it and why.

- A customer's message (through the hub middleware
  [`Workflow.middleware`][omnichannel.helpdesk.Workflow.middleware], or
  [`customer_wrote`][omnichannel.helpdesk.Workflow.customer_wrote]) reopens a
  pending, snoozed or resolved conversation, runs triage and starts the SLA
  clocks.
- An agent's answer goes through [`answer`][omnichannel.helpdesk.Workflow.answer]:
  refused with [`ConversationClaimed`][omnichannel.errors.ConversationClaimed]
  while a colleague holds the conversation, queued through the hub otherwise,
  and the response clocks stop.
- [`claim`][omnichannel.helpdesk.Workflow.claim] marks who is viewing or
  typing (a lease with an expiry, renewed by calling it again);
  [`assign`][omnichannel.helpdesk.Workflow.assign],
  [`resolve`][omnichannel.helpdesk.Workflow.resolve] and the others change the
  rest.
- [`sla_notices`][omnichannel.helpdesk.Workflow.sla_notices] returns each SLA
  warning and breach once, across workers and restarts: the notice is written
  into the state with the same compare-and-set before it is returned.

Long because: every change of a conversation is one compare-and-set edit here, beside the
write path they share; split by topic they would each need that path's internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
from pydantic import BaseModel, ConfigDict, JsonValue

from ..actions import Action, PrivateReply, Reply
from ..errors import ConfigurationError, ConversationClaimed, StoreConflict
from ..events import Event, MessageReceived, SlaBreached, SlaWarning, event_id
from ..instrumentation import Instrumentation
from ..model import Message, Ref
from ..store.states import (
    PRIORITIES,
    ConversationState,
    ConversationStateStore,
    ConversationStatus,
    Priority,
    StateChange,
)
from .assign import Agent, AssignmentStrategy, LeastLoaded, RoundRobin, Work
from .hours import BusinessHours
from .metrics import HelpdeskMetrics, measure
from .sla import SlaMetric, SlaPolicy, SlaState
from .triage import Triage

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..hub import Context, Hub
    from ..store import OutboxItem

__all__ = ["SlaNotice", "Workflow"]

logger = logging.getLogger("omnichannel.helpdesk")

_ATTEMPTS = 50
_DEFAULT_CLAIM = timedelta(seconds=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SlaNotice(BaseModel):
    """One SLA target reaching its warning or its breach, given once.

    Attributes:
        conversation: The conversation.
        metric: Which target.
        state: ``"warning"`` or ``"breached"``.
        due_at: The target's due time.
        assignee: Who owns the conversation, if anyone.
        priority: Its priority.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation: Ref
    metric: SlaMetric
    state: SlaState
    due_at: datetime
    assignee: str | None = None
    priority: Priority = "normal"


_Audit = list[tuple[str, JsonValue, JsonValue]]
_EditResult = tuple[dict[str, Any], _Audit]
_Edit = Callable[[ConversationState], _EditResult]
"""Given the current state: the fields to set, and the (what, old, new) changes to audit."""


def _dump(value: object) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value  # type: ignore[return-value]


class Workflow:
    """Conversation state, claims, assignment and SLA notices for one store.

    Args:
        store: A store with the conversation-state role (every store that
            ships with omnichannel has it).
        triage: Rules run on each customer message (priority, tags, queue).
        sla: Targets whose due times each conversation carries.
        agents: The team, for [`assign_next`][omnichannel.helpdesk.Workflow.assign_next].
        strategy: How `assign_next` picks an agent (default: least loaded).
        clock: Returns the current aware time (inject a fake one in tests).
        instrumentation: Consumers told of each first answer and resolution,
            with its duration, priority and agent (the ``helpdesk_timing`` hook;
            [`omnichannel.otel`][omnichannel.otel] records them as a histogram).

    Example:
        ```python
        workflow = Workflow(store, triage=triage, sla=policy)
        hub.use(workflow.middleware)  # every customer message updates its conversation
        ```
    """

    def __init__(
        self,
        store: ConversationStateStore,
        *,
        triage: Triage | None = None,
        sla: SlaPolicy | None = None,
        agents: Sequence[Agent] = (),
        strategy: AssignmentStrategy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        instrumentation: Sequence[Instrumentation] = (),
    ) -> None:
        self.store = store
        self.instrumentation = list(instrumentation)
        self.triage = triage
        self.sla = sla
        self.agents: list[Agent] = list(agents)
        self.strategy: AssignmentStrategy = strategy or LeastLoaded()
        self.clock = clock

    def __repr__(self) -> str:
        return f"<Workflow agents={len(self.agents)} triage={self.triage is not None}>"

    @classmethod
    def from_settings(
        cls, store: ConversationStateStore, table: Mapping[str, Any], **options: Any
    ) -> Workflow:
        """Build a workflow from the ``[helpdesk]`` table of ``omnichannel.toml``.

        Reads ``[[helpdesk.triage]]`` rules, ``[helpdesk.hours]`` (business
        hours), ``[helpdesk.sla]`` (targets per priority, and per network under
        ``[helpdesk.sla.networks.<network>]``), ``[[helpdesk.agents]]`` and
        ``assignment = "least_loaded" | "round_robin"``. Durations are seconds
        or ISO 8601 (``"PT1H"``). ``options`` go to the constructor (``clock``,
        ``instrumentation``).

        Raises:
            ConfigurationError: A part of the table is not valid; the message names it.
        """
        def part(name: str, build: Callable[[Any], Any]) -> Any:
            try:
                return build(table[name])
            except ConfigurationError:
                raise
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigurationError(f"[helpdesk.{name}] is not valid: {exc}") from None

        triage = part("triage", Triage.from_settings) if "triage" in table else None
        hours = part("hours", BusinessHours.model_validate) if "hours" in table else None
        sla = None
        if "sla" in table:
            def policy(raw: Mapping[str, Any]) -> SlaPolicy:
                targets = {k: v for k, v in raw.items() if k != "networks"}
                return SlaPolicy.model_validate(
                    {"targets": targets, "networks": raw.get("networks", {}), "hours": hours})

            sla = part("sla", policy)
        agents = part("agents", lambda raw: [Agent.model_validate(a) for a in raw]) \
            if "agents" in table else []
        strategies: dict[str, AssignmentStrategy] = {
            "least_loaded": LeastLoaded(), "round_robin": RoundRobin()}
        chosen = table.get("assignment", "least_loaded")
        if chosen not in strategies:
            raise ConfigurationError(
                f"[helpdesk] assignment = {chosen!r}: choose least_loaded or round_robin")
        return cls(store, triage=triage, sla=sla, agents=agents, strategy=strategies[chosen],
                   **options)

    # reading -----------------------------------------------------------------

    async def state(self, conversation: Ref) -> ConversationState:
        """Return the state of ``conversation`` (a fresh open one if it has none yet)."""
        stored = await self.store.get_state(conversation)
        return stored if stored is not None else ConversationState(conversation=conversation)

    async def history(self, conversation: Ref, *, limit: int = 100) -> list[StateChange]:
        """Return the audited changes of ``conversation``, oldest first."""
        return await self.store.state_changes(conversation, limit=limit)

    async def queue(
        self,
        *,
        status: Sequence[ConversationStatus] | None = ("open",),
        assignee: str | None = None,
        queue: str | None = None,
        network: str | None = None,
        limit: int = 100,
    ) -> list[ConversationState]:
        """The conversations waiting, soonest SLA due first, then by priority.

        Snoozed conversations whose time has come count as open here.
        """
        wanted = None if status is None else list(status)
        if wanted is not None and "open" in wanted and "snoozed" not in wanted:
            wanted.append("snoozed")
        states = await self.store.list_states(
            status=wanted, assignee=assignee, queue=queue, network=network, limit=limit * 2 + 10,
        )
        now = self.clock()
        if status is not None:
            states = [s for s in states if s.status in status or self._woken(s, now)]
        order = {name: index for index, name in enumerate(PRIORITIES)}

        def key(state: ConversationState) -> tuple[float, int]:
            due = state.next_due()
            return (due.timestamp() if due is not None else float("inf"), order[state.priority])

        return sorted(states, key=key)[:limit]

    @staticmethod
    def _woken(state: ConversationState, now: datetime) -> bool:
        return (
            state.status == "snoozed"
            and state.snoozed_until is not None
            and state.snoozed_until <= now
        )

    async def metrics(self, *, limit: int = 100_000) -> HelpdeskMetrics:
        """First-response and resolution times per network, priority and agent; queue backlog."""
        states = await self.store.list_states(limit=limit)
        return measure(states, now=self.clock())

    # the one write path --------------------------------------------------------

    async def _change(
        self, conversation: Ref, edit: _Edit, *, by: str, why: str | None = None
    ) -> ConversationState:
        """Apply ``edit`` to the current state by compare-and-set, retrying lost races."""
        for _ in range(_ATTEMPTS):
            current = await self.state(conversation)
            fields, audited = edit(current)
            if not fields:
                return current
            now = self.clock()
            changed = current.model_copy(update={**fields, "updated_at": now})
            changed = ConversationState.model_validate(changed.model_dump())
            changes = [
                StateChange(conversation=conversation, at=now, by=by, what=what, old=old,
                            new=new, why=why)
                for what, old, new in audited
            ]
            try:
                return await self.store.put_state(
                    changed, expected_version=current.version, changes=changes
                )
            except StoreConflict:
                continue
        raise StoreConflict(
            f"conversation {conversation.network}:{conversation.id} kept changing; "
            f"gave up after {_ATTEMPTS} attempts",
            record="conversation state", key=f"{conversation.network}:{conversation.id}",
        )

    def _set(self, **fields: Any) -> _Edit:
        def edit(state: ConversationState) -> _EditResult:
            update = {k: v for k, v in fields.items() if getattr(state, k) != v}
            return update, [(k, _dump(getattr(state, k)), _dump(v)) for k, v in update.items()]

        return edit

    # agents' changes ---------------------------------------------------------

    async def assign(
        self, conversation: Ref, agent: str | None, *, by: str, why: str | None = None
    ) -> ConversationState:
        """Give ``conversation`` to ``agent`` (``None``: unassign)."""
        return await self._change(conversation, self._set(assignee=agent), by=by, why=why)

    async def assign_next(self, conversation: Ref, *, by: str = "assignment") -> ConversationState:
        """Assign ``conversation`` with the strategy, among the team; unchanged if nobody can.

        Raises:
            ConfigurationError: The workflow has no agents.
        """
        if not self.agents:
            raise ConfigurationError("the workflow has no agents to assign to")
        state = await self.state(conversation)
        if state.assignee is not None:
            return state
        open_states = await self.store.list_states(status=["open", "pending", "snoozed"],
                                                   limit=100_000)
        load: dict[str, int] = {}
        for each in open_states:
            if each.assignee is not None:
                load[each.assignee] = load.get(each.assignee, 0) + 1
        last = max(
            (each for each in open_states if each.assignee is not None and each.updated_at),
            key=lambda each: each.updated_at or datetime.min.replace(tzinfo=UTC),
            default=None,
        )
        work = Work(network=conversation.network, tags=frozenset(state.tags))
        agent = self.strategy.choose(work, self.agents, load=load,
                                     last=last.assignee if last is not None else None)
        if agent is None:
            return state
        return await self._change(conversation, self._set(assignee=agent.id), by=by,
                                  why=type(self.strategy).__name__)

    async def set_status(
        self, conversation: Ref, status: Literal["open", "pending"], *, by: str,
        why: str | None = None,
    ) -> ConversationState:
        """Mark ``conversation`` open (waits for us) or pending (waits for the customer)."""
        return await self._change(
            conversation, self._set(status=status, snoozed_until=None), by=by, why=why
        )

    async def snooze(
        self, conversation: Ref, until: datetime, *, by: str, why: str | None = None
    ) -> ConversationState:
        """Put ``conversation`` aside until ``until`` (a customer message wakes it earlier)."""
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        return await self._change(
            conversation, self._set(status="snoozed", snoozed_until=until), by=by, why=why
        )

    async def resolve(
        self, conversation: Ref, *, by: str, why: str | None = None
    ) -> ConversationState:
        """Mark ``conversation`` resolved; its SLA clocks stop."""
        now = self.clock()

        resolving = False  # whether the write that landed is this call's resolution

        def edit(state: ConversationState) -> _EditResult:
            nonlocal resolving
            resolving = state.status != "resolved"
            if not resolving:
                return {}, []
            return (
                {"status": "resolved", "snoozed_until": None, "resolved_at": now, "due": {},
                 "waiting_since": None},
                [("status", state.status, "resolved")],
            )

        state = await self._change(conversation, edit, by=by, why=why)
        if resolving and state.first_message_at is not None:
            self._timing(state, "resolution", now - state.first_message_at, by)
        return state

    def _timing(
        self, state: ConversationState, metric: Literal["first_response", "resolution"],
        duration: timedelta, agent: str | None,
    ) -> None:
        for consumer in self.instrumentation:
            try:
                consumer.helpdesk_timing(state.conversation, metric, duration=duration,
                                         priority=state.priority, agent=agent)
            except Exception:
                logger.exception("the helpdesk_timing hook of %r failed", consumer)

    async def prioritize(
        self, conversation: Ref, priority: Priority, *, by: str, why: str | None = None
    ) -> ConversationState:
        """Set the priority of ``conversation``."""
        return await self._change(conversation, self._set(priority=priority), by=by, why=why)

    async def tag(self, conversation: Ref, *tags: str, by: str) -> ConversationState:
        """Add tags to ``conversation``."""
        def edit(state: ConversationState) -> _EditResult:
            new = tuple(dict.fromkeys((*state.tags, *tags)))
            if new == state.tags:
                return {}, []
            return {"tags": new}, [("tags", list(state.tags), list(new))]

        return await self._change(conversation, edit, by=by)

    async def untag(self, conversation: Ref, *tags: str, by: str) -> ConversationState:
        """Remove tags from ``conversation``."""
        def edit(state: ConversationState) -> _EditResult:
            new = tuple(tag for tag in state.tags if tag not in tags)
            if new == state.tags:
                return {}, []
            return {"tags": new}, [("tags", list(state.tags), list(new))]

        return await self._change(conversation, edit, by=by)

    async def note(self, conversation: Ref, text: str, *, by: str) -> ConversationState:
        """Add an internal note (never sent to the customer) to the conversation's history."""
        def edit(state: ConversationState) -> _EditResult:
            return {"updated_at": self.clock()}, [("note", None, text)]

        return await self._change(conversation, edit, by=by)

    # claims (collision) --------------------------------------------------------

    async def claim(
        self,
        conversation: Ref,
        agent: str,
        *,
        activity: Literal["viewing", "typing"] = "viewing",
        ttl: timedelta = _DEFAULT_CLAIM,
        force: bool = False,
    ) -> ConversationState:
        """Claim ``conversation`` for ``agent`` (or renew the claim) for ``ttl``.

        Call it again while the agent stays (a heartbeat); a claim that is not
        renewed lapses. Renewals are not audited; taking a claim, and taking
        over a colleague's with ``force``, are.

        Raises:
            ConversationClaimed: A colleague holds it (and ``force`` is not set).
        """
        now = self.clock()

        def edit(state: ConversationState) -> _EditResult:
            holder = state.holder(now)
            if holder is not None and holder != agent and not force:
                raise _claimed(state, holder)
            fields = {"claimed_by": agent, "claimed_until": now + ttl, "claim_activity": activity}
            audited: _Audit = []
            if holder != agent:
                what = "claim taken over" if holder is not None else "claim"
                audited.append((what, holder, agent))
            return fields, audited

        return await self._change(conversation, edit, by=f"agent:{agent}")

    async def release(self, conversation: Ref, agent: str) -> ConversationState:
        """Give up ``agent``'s claim on ``conversation`` (nothing if they do not hold it)."""
        def edit(state: ConversationState) -> _EditResult:
            if state.claimed_by != agent:
                return {}, []
            return ({"claimed_by": None, "claimed_until": None, "claim_activity": None},
                    [("release", agent, None)])

        return await self._change(conversation, edit, by=f"agent:{agent}")

    async def answer(
        self,
        hub: Hub,
        action: Action,
        *,
        agent: str,
        force: bool = False,
        allow_duplicate: bool = False,
    ) -> OutboxItem:
        """Queue an agent's answer through ``hub``, unless a colleague holds the conversation.

        The response clocks of the conversation stop (first response, next
        response), it becomes pending on the customer, and the agent's claim
        is released.

        Raises:
            ConversationClaimed: A colleague holds it (and ``force`` is not set).
            DuplicateReply, TextTooLong, WindowClosed, CapabilityNotSupported:
                As [`Hub.queue_as_agent`][omnichannel.hub.Hub.queue_as_agent].
        """
        conversation = _conversation_of(action)
        now = self.clock()
        state = await self.state(conversation)
        holder = state.holder(now)
        if holder is not None and holder != agent:
            if not force:
                raise _claimed(state, holder)
            await self._change(
                conversation, lambda s: ({"updated_at": now}, [("forced send", holder, agent)]),
                by=f"agent:{agent}",
            )
        item = await hub.queue_as_agent(action, by=f"agent:{agent}",
                                        allow_duplicate=allow_duplicate)
        await self.we_answered(conversation, by=f"agent:{agent}", release=agent)
        return item

    async def hand_off(
        self,
        hub: Hub,
        to: Message,
        *,
        public: str,
        private: str,
        agent: str,
        force: bool = False,
    ) -> tuple[OutboxItem, OutboxItem]:
        """Answer a public message with a short public line and move to a private conversation.

        The public line (``"We've sent you a DM 💬"``) goes in the thread; the
        private reply opens (or continues) the direct conversation with the
        customer. Both are queued as ``agent``'s; the handoff is recorded in the
        public conversation's history with the customer's id, linking the two.

        Raises:
            ConversationClaimed: A colleague holds the conversation.
        """
        public_item = await self.answer(
            hub, Reply(network=to.network, to=to, text=public, visibility="public"),
            agent=agent, force=force,
        )
        private_item = await hub.queue_as_agent(
            PrivateReply(network=to.network, to=to, text=private), by=f"agent:{agent}"
        )
        customer = to.author.ref.id
        await self._change(
            to.conversation,
            lambda state: ({"updated_at": self.clock()}, [("handoff", to.ref.id, customer)]),
            by=f"agent:{agent}", why="moved to a private conversation",
        )
        return public_item, private_item

    async def track_incident(
        self, hub: Hub, queued: Mapping[str, OutboxItem], *, name: str, by: str = "broadcast",
    ) -> list[Ref]:
        """Collect replies to a broadcast as one incident: its posts' threads share a queue.

        For each post of ``queued`` (what [`broadcast`][omnichannel.helpdesk.broadcast]
        returned) that the network has accepted, the thread it starts is
        tagged ``incident:<name>`` and routed to the queue of that name, so
        every customer who answers the announcement, on any network, lands
        in one place: ``workflow.queue(queue="incident:<name>")``. Posts not
        delivered yet are skipped: call it again once they are.

        Returns:
            The threads now tracked.
        """
        tracked: list[Ref] = []
        label = f"incident:{name}"
        for item in queued.values():
            stored = await hub.store.get_outbox(item.key)
            if stored is None or stored.status != "sent" or stored.sent is None:
                continue
            thread = stored.sent.conversation or stored.sent.ref

            def edit(state: ConversationState) -> _EditResult:
                if label in state.tags and state.queue == label:
                    return {}, []
                return ({"tags": tuple(dict.fromkeys((*state.tags, label))), "queue": label,
                         "status": "pending"},
                        [("incident", None, name)])

            await self._change(thread, edit, by=by)
            tracked.append(thread)
        return tracked

    async def we_answered(
        self, conversation: Ref, *, by: str, release: str | None = None
    ) -> ConversationState:
        """Record that we answered: response clocks stop; it waits for the customer now."""
        now = self.clock()

        first = False  # whether the write that landed is the conversation's first answer

        def edit(state: ConversationState) -> _EditResult:
            nonlocal first
            fields: dict[str, Any] = {
                "waiting_since": None,
                "due": {k: v for k, v in state.due.items() if k == "resolution"},
            }
            audited: _Audit = [("answered", None, now.isoformat())]
            first = state.first_response_at is None
            if first:
                fields["first_response_at"] = now
            if state.status == "open":
                fields["status"] = "pending"
                audited.append(("status", "open", "pending"))
            if release is not None and state.claimed_by == release:
                fields.update(claimed_by=None, claimed_until=None, claim_activity=None)
            return fields, audited

        state = await self._change(conversation, edit, by=by)
        if first and state.first_message_at is not None and by.startswith("agent:"):
            self._timing(state, "first_response", now - state.first_message_at, by)
        return state

    # customers ---------------------------------------------------------------

    async def customer_wrote(self, message: Message) -> ConversationState:
        """Record a customer's message: reopen, triage, start the SLA clocks."""
        if message.from_us:
            return await self.we_answered(message.conversation, by="network")
        now = self.clock()

        def edit(state: ConversationState) -> _EditResult:
            fields: dict[str, Any] = {}
            audited: _Audit = []
            if state.status != "open":
                fields.update(status="open", snoozed_until=None)
                audited.append(("status", state.status, "open"))
            if state.customer is None:
                fields["customer"] = message.author.ref.id
            first = state.first_message_at or message.created_at
            if state.first_message_at is None:
                fields["first_message_at"] = message.created_at
            waiting = state.waiting_since or message.created_at
            if state.waiting_since is None:
                fields["waiting_since"] = message.created_at
            if self.triage is not None:
                result = self.triage.evaluate(message, now=now, waiting_since=waiting)
                if PRIORITIES.index(result.priority) < PRIORITIES.index(state.priority):
                    fields["priority"] = result.priority
                    audited.append(("priority", state.priority, result.priority))
                tags = tuple(dict.fromkeys((*state.tags, *result.tags)))
                if tags != state.tags:
                    fields["tags"] = tags
                    audited.append(("tags", list(state.tags), list(tags)))
                if state.queue is None and result.queue is not None:
                    fields["queue"] = result.queue
                    audited.append(("queue", None, result.queue))
            if self.sla is not None:
                priority: Priority = fields.get("priority", state.priority)
                due = dict(state.due)
                metric: SlaMetric = (
                    "first_response" if state.first_response_at is None else "next_response"
                )
                # A clock starts once; a rise in priority restarts it from the same
                # moment under the tighter target.
                if metric not in due or "priority" in fields:
                    started = self.sla.due(metric, since=waiting, network=message.network,
                                           priority=priority)
                    if started is not None:
                        due[metric] = {"warn_at": started.warn_at, "due_at": started.due_at}
                if "resolution" not in due or "priority" in fields:
                    # A reopened conversation's resolution clock starts again now.
                    since = message.created_at if state.status == "resolved" else first
                    resolution = self.sla.due("resolution", since=since,
                                              network=message.network, priority=priority)
                    if resolution is not None:
                        due["resolution"] = {"warn_at": resolution.warn_at,
                                             "due_at": resolution.due_at}
                if due != state.due:
                    fields["due"] = due
            if fields and not audited:
                audited.append(("customer wrote", None, message.ref.id))
            return fields, audited

        return await self._change(message.conversation, edit, by="customer")

    async def middleware(
        self, event: Event, ctx: Context, call_next: Callable[[], Awaitable[None]]
    ) -> None:
        """Hub middleware: update the conversation's state before the handlers run."""
        if isinstance(event, MessageReceived) and not event.backfilled:
            await self.customer_wrote(event.message)
        await call_next()

    # SLA -----------------------------------------------------------------------

    async def sla_notices(self, *, limit: int = 100) -> list[SlaNotice]:
        """Return the SLA warnings and breaches due now, each once across workers and restarts."""
        now = self.clock()
        notices: list[SlaNotice] = []
        for state in await self.store.list_states(due_before=now, limit=limit):
            if state.status == "resolved":
                continue
            if not any(_due_notices(state, now)):
                continue
            given: list[SlaNotice] = []

            def edit(current: ConversationState, given: list[SlaNotice] = given) -> _EditResult:
                given.clear()  # a retried edit decides again on the state it reads
                given.extend(_due_notices(current, now))
                if not given:
                    return {}, []
                fired = dict(current.fired)
                for notice in given:
                    fired[f"{notice.metric}:{notice.state}"] = notice.due_at
                return {"fired": fired}, [
                    (f"sla {n.state}", n.metric, n.due_at.isoformat()) for n in given]

            await self._change(state.conversation, edit, by="sla")
            notices.extend(given)
        return notices

    async def fire_sla(self, hub: Hub) -> list[SlaWarning | SlaBreached]:
        """Hand the SLA notices due now to ``hub`` as events; return the events handed over.

        Each becomes a [`SlaWarning`][omnichannel.events.SlaWarning] or
        [`SlaBreached`][omnichannel.events.SlaBreached] event, persisted and
        dispatched through ``hub.ingest`` like any inbound event: handlers
        registered for them run once, across workers and restarts (the
        notice is written into the conversation's state first, and the
        event's id names the conversation, target and due time).
        """
        events: list[SlaWarning | SlaBreached] = []
        now = self.clock()
        for notice in await self.sla_notices():
            kind = SlaWarning if notice.state == "warning" else SlaBreached
            ref = notice.conversation
            events.append(kind(
                id=event_id(f"sla.{notice.state}", ref, notice.metric, notice.due_at.isoformat()),
                network=ref.network, occurred_at=now, conversation=ref, metric=notice.metric,
                due_at=notice.due_at, priority=notice.priority, assignee=notice.assignee,
            ))
        by_network: dict[str, list[SlaWarning | SlaBreached]] = {}
        for event in events:
            by_network.setdefault(event.network, []).append(event)
        for network, batch in by_network.items():
            await hub.ingest(network, batch)
        return events

    async def run_sla_timer(
        self, hub: Hub, *, interval: float = 30.0,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Look for due SLA notices every ``interval`` seconds and hand them to ``hub`` (forever).

        Run it beside the hub: ``await tg.start(workflow.run_sla_timer, hub)``.
        A failing look is logged and tried again at the next tick.
        """
        task_status.started()
        while True:
            try:
                await self.fire_sla(hub)
            except Exception:
                logger.exception("the SLA timer failed; trying again in %.0f s", interval)
            await anyio.sleep(interval)


def _due_notices(state: ConversationState, now: datetime) -> Iterable[SlaNotice]:
    for metric, times in state.due.items():
        due_at = times.get("due_at")
        warn_at = times.get("warn_at")
        if due_at is None:
            continue
        if now >= due_at:
            kind: SlaState = "breached"
        elif warn_at is not None and now >= warn_at:
            kind = "warning"
        else:
            continue
        if state.fired.get(f"{metric}:{kind}") == due_at:
            continue
        yield SlaNotice(conversation=state.conversation, metric=metric,
                        state=kind, due_at=due_at, assignee=state.assignee,
                        priority=state.priority)


def _claimed(state: ConversationState, holder: str) -> ConversationClaimed:
    ref = state.conversation
    return ConversationClaimed(
        holder=holder, until=state.claimed_until or datetime.now(UTC),
        conversation=f"{ref.network}:{ref.id}", network=ref.network,
    )


def _conversation_of(action: Action) -> Ref:
    if isinstance(action, Reply | PrivateReply):
        return action.to.conversation
    raise ConfigurationError(
        f"an agent answers with a reply or a private reply, not {type(action).__name__}"
    )
