"""Filtering and ordering of conversation states, shared by the store backends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .states import ConversationState, ConversationStatus


def earliest_warning(state: ConversationState) -> datetime | None:
    """The earliest SLA warning or due time of ``state`` (for ``due_before``)."""
    times = [t for entry in state.due.values() for t in entry.values()]
    return min(times) if times else None


def state_matches(
    state: ConversationState,
    *,
    status: Sequence[ConversationStatus] | None,
    assignee: str | None,
    queue: str | None,
    network: str | None,
    due_before: datetime | None,
) -> bool:
    """Whether ``state`` passes the filters of ``list_states`` (for stores that filter in code)."""
    if status is not None and state.status not in status:
        return False
    if assignee is not None and state.assignee != assignee:
        return False
    if queue is not None and state.queue != queue:
        return False
    if network is not None and state.conversation.network != network:
        return False
    if due_before is not None:
        first = earliest_warning(state)
        if first is None or first >= due_before:
            return False
    return True


def queue_order(state: ConversationState) -> tuple[int, float, float]:
    """Sort key of ``list_states``: soonest due first, then most recently updated."""
    due = state.next_due()
    updated = state.updated_at.timestamp() if state.updated_at is not None else 0.0
    return (0, due.timestamp(), -updated) if due is not None else (1, 0.0, -updated)
