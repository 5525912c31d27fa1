"""Conversation state: the helpdesk's record of each conversation, and the store role that keeps it.

A conversation's state is who owns it, how urgent it is, where it stands
(open, pending on the customer, snoozed, resolved), its tags and queue, and
its SLA due times. Every change is written with the state in one step, as a
[`StateChange`][omnichannel.store.StateChange] saying who changed what and why.

Writes are compare-and-set on ``version``: two workers (or two agents) that
change one conversation at the same moment cannot both win; the loser gets
[`StoreConflict`][omnichannel.errors.StoreConflict], reads again and retries
(the [`Workflow`][omnichannel.helpdesk.Workflow] does that for you).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from ..model import Ref

__all__ = [
    "PRIORITIES",
    "ConversationState",
    "ConversationStateStore",
    "ConversationStatus",
    "Priority",
    "StateChange",
]

Priority = Literal["urgent", "high", "normal", "low"]
"""How soon a conversation needs an answer, most urgent first."""

PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
"""Every priority, most urgent first."""

ConversationStatus = Literal["open", "pending", "snoozed", "resolved"]
"""Where a conversation stands.

``open`` waits for us; ``pending`` waits for the customer; ``snoozed`` is
put aside until ``snoozed_until``; ``resolved`` is done. A customer's new
message reopens a pending, snoozed or resolved conversation.
"""


class ConversationState(BaseModel):
    """The helpdesk's record of one conversation.

    Attributes:
        conversation: The conversation (its thread root or direct conversation).
        version: Bumped by every write; the compare-and-set key.
        status: Where it stands.
        snoozed_until: When a snoozed conversation comes back.
        assignee: The agent who owns it, if any.
        priority: How urgent it is.
        tags: Labels from triage and agents.
        queue: The team queue it is routed to, if any.
        customer: Native id of the customer (the first author who is not us).
        first_message_at: When the customer first wrote.
        waiting_since: When the oldest customer message we have not answered
            was written (``None``: nobody waits for us).
        first_response_at: When we first answered.
        resolved_at: When it was last resolved.
        due: SLA due times by metric (``first_response``, ``next_response``,
            ``resolution``): ``{"warn_at": ..., "due_at": ...}``.
        fired: SLA notices already given, as ``"<metric>:<warning|breached>"``
            keys with the due time they were for, so each fires once.
        claimed_by: The agent viewing or typing in it now, if any.
        claimed_until: When that claim lapses unless renewed.
        claim_activity: What the claimer does: ``"viewing"`` or ``"typing"``.
        updated_at: When it was last written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    conversation: Ref
    version: int = Field(default=0, ge=0)
    status: ConversationStatus = "open"
    snoozed_until: AwareDatetime | None = None
    assignee: str | None = None
    priority: Priority = "normal"
    tags: tuple[str, ...] = ()
    queue: str | None = None
    customer: str | None = None
    first_message_at: AwareDatetime | None = None
    waiting_since: AwareDatetime | None = None
    first_response_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    due: dict[str, dict[str, AwareDatetime]] = Field(default_factory=dict)
    fired: dict[str, AwareDatetime] = Field(default_factory=dict)
    claimed_by: str | None = None
    claimed_until: AwareDatetime | None = None
    claim_activity: Literal["viewing", "typing"] | None = None
    updated_at: AwareDatetime | None = None

    def holder(self, now: datetime) -> str | None:
        """The agent whose claim is still running at ``now``, if any."""
        if self.claimed_by is None or self.claimed_until is None or self.claimed_until <= now:
            return None
        return self.claimed_by

    def next_due(self) -> datetime | None:
        """The earliest SLA due time still running, if any."""
        times = [entry["due_at"] for entry in self.due.values() if "due_at" in entry]
        return min(times) if times else None


class StateChange(BaseModel):
    """One audited change of a conversation's state.

    Attributes:
        conversation: The conversation changed.
        at: When.
        by: Who (``"agent:anna"``, ``"triage"``, ``"customer"``, ``"sla"``).
        what: The field changed (``"status"``, ``"assignee"``, ``"tags"``,
            ``"priority"``, ``"note"``...).
        old: Its value before (JSON).
        new: Its value after (JSON).
        why: The reason given, if any.
        version: The state's version this change produced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    conversation: Ref
    at: AwareDatetime
    by: str
    what: str
    old: JsonValue = None
    new: JsonValue = None
    why: str | None = None
    version: int = 0


class ConversationStateStore(Protocol):
    """The store role that keeps conversation states and their change history."""

    async def get_state(self, conversation: Ref) -> ConversationState | None:
        """Return the stored state of ``conversation``, or ``None`` if it has none yet."""
        ...

    async def put_state(
        self, state: ConversationState, *, expected_version: int,
        changes: Sequence[StateChange] = (),
    ) -> ConversationState:
        """Write ``state`` if the stored version is still ``expected_version``.

        ``expected_version`` is 0 for a conversation with no stored state. The
        state is stored with ``version = expected_version + 1`` and the changes
        are appended in the same transaction.

        Raises:
            StoreConflict: Another writer changed it first (nothing written).
        """
        ...

    async def list_states(
        self,
        *,
        status: Sequence[ConversationStatus] | None = None,
        assignee: str | None = None,
        queue: str | None = None,
        network: str | None = None,
        due_before: datetime | None = None,
        limit: int = 100,
    ) -> list[ConversationState]:
        """Return states matching every filter given, the soonest due first.

        States with no due time come after, most recently updated first.
        ``due_before`` keeps states with an SLA due or warning time before it.
        """
        ...

    async def state_changes(
        self, conversation: Ref, *, limit: int = 100
    ) -> list[StateChange]:
        """Return the changes of ``conversation``, oldest first (the last ``limit``)."""
        ...

