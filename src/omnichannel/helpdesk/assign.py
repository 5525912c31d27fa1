"""Assignment: which agent takes a conversation.

A strategy is a small protocol: given the conversation's network and tags, the
agents, and how many open conversations each holds, it picks one (or none,
when nobody can take it). Round-robin and least-loaded come with the library;
both respect each agent's capacity, networks, skills and away flag, so a team
can write its own strategy on the same filter
([`eligible`][omnichannel.helpdesk.eligible]).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Agent", "AssignmentStrategy", "LeastLoaded", "RoundRobin", "Work", "eligible"]


class Agent(BaseModel):
    """A person who answers customers.

    Attributes:
        id: A stable id (``"anna"``, an employee number).
        name: Shown to colleagues.
        capacity: The most open conversations they hold at once.
        networks: Only conversations on these networks (``None``: any).
        skills: Tags they can handle (``"billing"``, ``"de"``); a conversation
            tagged with a skill nobody has goes to anyone eligible otherwise.
        away: Away agents get nothing new.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = ""
    capacity: int = Field(default=10, ge=0)
    networks: frozenset[str] | None = None
    skills: frozenset[str] = frozenset()
    away: bool = False


class Work(BaseModel):
    """What an assignment is about: a conversation's network and tags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: str
    tags: frozenset[str] = frozenset()


def eligible(
    work: Work, agents: Sequence[Agent], load: Mapping[str, int], *,
    skills: Collection[str] = (),
) -> list[Agent]:
    """The agents who can take ``work`` now, in the order given.

    An agent is eligible when not away, under capacity, allowed on the
    network, and (when any agent has a skill among the work's tags) has one
    of those skills.

    Args:
        work: The conversation to assign.
        agents: Every agent.
        load: Open conversations each agent holds, by agent id.
        skills: Restrict to these tags as skills (default: the work's tags).
    """
    available = [
        agent for agent in agents
        if not agent.away
        and load.get(agent.id, 0) < agent.capacity
        and (agent.networks is None or work.network in agent.networks)
    ]
    wanted = set(skills or work.tags)
    skilled = [agent for agent in available if agent.skills & wanted]
    return skilled if skilled else available


class AssignmentStrategy(Protocol):
    """Picks the agent for a conversation, or ``None`` when nobody can take it."""

    def choose(
        self, work: Work, agents: Sequence[Agent], *, load: Mapping[str, int],
        last: str | None = None,
    ) -> Agent | None:
        """Pick an agent.

        Args:
            work: The conversation's network and tags.
            agents: Every agent, in the team's order.
            load: Open conversations each agent holds, by agent id.
            last: The agent who got the previous assignment (for rotations).
        """
        ...


class RoundRobin:
    """The next eligible agent after the one assigned last, in the team's order.

    The rotation's position is ``last`` (read from the store by the caller),
    so it holds across restarts and workers.
    """

    def choose(
        self, work: Work, agents: Sequence[Agent], *, load: Mapping[str, int],
        last: str | None = None,
    ) -> Agent | None:
        """Pick the next eligible agent after ``last``."""
        candidates = eligible(work, agents, load)
        if not candidates:
            return None
        order = [agent.id for agent in agents]
        start = order.index(last) + 1 if last in order else 0
        ranked = sorted(candidates, key=lambda a: (order.index(a.id) - start) % len(order))
        return ranked[0]


class LeastLoaded:
    """The eligible agent with the fewest open conversations for their capacity.

    Ties go to the agent with the most room left, then to the team's order.
    """

    def choose(
        self, work: Work, agents: Sequence[Agent], *, load: Mapping[str, int],
        last: str | None = None,
    ) -> Agent | None:
        """Pick the least loaded eligible agent."""
        candidates = eligible(work, agents, load)
        if not candidates:
            return None
        order = {agent.id: index for index, agent in enumerate(agents)}
        return min(candidates, key=lambda a: (
            load.get(a.id, 0) / max(a.capacity, 1), -(a.capacity - load.get(a.id, 0)),
            order[a.id],
        ))
