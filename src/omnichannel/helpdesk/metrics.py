"""Helpdesk metrics as data: response and resolution times, backlog and oldest wait per queue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from ..store.states import ConversationState

__all__ = ["GroupMetrics", "HelpdeskMetrics", "QueueMetrics", "measure"]


class GroupMetrics(BaseModel):
    """Figures for one group of conversations (a network, a priority, an agent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversations: int = 0
    open: int = 0
    answered: int = 0
    resolved: int = 0
    first_response_median: timedelta | None = None
    first_response_max: timedelta | None = None
    resolution_median: timedelta | None = None


class QueueMetrics(BaseModel):
    """The waiting work of one queue (``"-"``: conversations in no queue)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backlog: int = 0
    """Conversations waiting for us (open, or snoozed past their time)."""
    oldest_waiting: timedelta | None = None
    """How long the customer who has waited longest has waited."""
    breached: int = 0
    """Waiting conversations past an SLA due time."""


class HelpdeskMetrics(BaseModel):
    """First-response and resolution times by network, priority and agent; queues' backlog."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    total: GroupMetrics
    networks: dict[str, GroupMetrics] = Field(default_factory=dict)
    priorities: dict[str, GroupMetrics] = Field(default_factory=dict)
    agents: dict[str, GroupMetrics] = Field(default_factory=dict)
    queues: dict[str, QueueMetrics] = Field(default_factory=dict)


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _waiting(state: ConversationState, now: datetime) -> bool:
    if state.status == "open":
        return True
    return (state.status == "snoozed" and state.snoozed_until is not None
            and state.snoozed_until <= now)


def _group(states: list[ConversationState], now: datetime) -> GroupMetrics:
    firsts = [s.first_response_at - s.first_message_at for s in states
              if s.first_response_at is not None and s.first_message_at is not None]
    resolutions = [s.resolved_at - s.first_message_at for s in states
                   if s.status == "resolved" and s.resolved_at is not None
                   and s.first_message_at is not None]
    return GroupMetrics(
        conversations=len(states),
        open=sum(_waiting(s, now) for s in states),
        answered=len(firsts),
        resolved=sum(s.status == "resolved" for s in states),
        first_response_median=_median(firsts),
        first_response_max=max(firsts) if firsts else None,
        resolution_median=_median(resolutions),
    )


def measure(states: Iterable[ConversationState], *, now: datetime) -> HelpdeskMetrics:
    """Compute the metrics of ``states`` as of ``now`` (times are elapsed wall time)."""
    every = list(states)
    by_network: dict[str, list[ConversationState]] = {}
    by_priority: dict[str, list[ConversationState]] = {}
    by_agent: dict[str, list[ConversationState]] = {}
    by_queue: dict[str, list[ConversationState]] = {}
    for state in every:
        by_network.setdefault(state.conversation.network, []).append(state)
        by_priority.setdefault(state.priority, []).append(state)
        if state.assignee is not None:
            by_agent.setdefault(state.assignee, []).append(state)
        if _waiting(state, now):
            by_queue.setdefault(state.queue or "-", []).append(state)
    queues = {}
    for name, waiting in sorted(by_queue.items()):
        since = [s.waiting_since for s in waiting if s.waiting_since is not None]
        queues[name] = QueueMetrics(
            backlog=len(waiting),
            oldest_waiting=now - min(since) if since else None,
            breached=sum(1 for s in waiting if (due := s.next_due()) is not None and due <= now),
        )
    return HelpdeskMetrics(
        at=now,
        total=_group(every, now),
        networks={k: _group(v, now) for k, v in sorted(by_network.items())},
        priorities={k: _group(v, now) for k, v in sorted(by_priority.items())},
        agents={k: _group(v, now) for k, v in sorted(by_agent.items())},
        queues=queues,
    )
