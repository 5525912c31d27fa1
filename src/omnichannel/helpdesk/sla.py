"""SLA policies: response and resolution targets per priority and network, and their due times.

A policy names targets (first response, next response, resolution) for each
priority, optionally different on some networks, and the clock they are
counted on: [`BusinessHours`][omnichannel.helpdesk.BusinessHours] or wall time.
[`SlaPolicy.due`][omnichannel.helpdesk.SlaPolicy.due] turns a start instant
into an [`SlaDue`][omnichannel.helpdesk.SlaDue]: when to warn and when the
target is breached.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..store.states import PRIORITIES, Priority
from .hours import BusinessHours, Clock, WallClock

__all__ = ["PRIORITIES", "Priority", "SlaDue", "SlaMetric", "SlaPolicy", "SlaState", "SlaTargets"]

SlaMetric = Literal["first_response", "next_response", "resolution"]
"""What a target measures: the first answer, each later answer, or the resolution."""

SlaState = Literal["ok", "warning", "breached"]
"""Where a running target stands at a given instant."""


class SlaTargets(BaseModel):
    """The targets for one priority (``None``: no target for that metric).

    Attributes:
        first_response: From the customer's first message to our first answer.
        next_response: From a customer's message to our next answer.
        resolution: From the first message to the conversation resolved.
        warn_at: The share of a target after which it is in warning (0.75:
            a 4-hour target warns after 3 hours of counted time).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_response: timedelta | None = None
    next_response: timedelta | None = None
    resolution: timedelta | None = None
    warn_at: float = Field(default=0.75, gt=0, le=1)

    @model_validator(mode="after")
    def _positive(self) -> SlaTargets:
        for name in ("first_response", "next_response", "resolution"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"SLA target {name} must be positive, not {value}")
        return self

    def target(self, metric: SlaMetric) -> timedelta | None:
        """Return the target for ``metric``."""
        value: timedelta | None = getattr(self, metric)
        return value


class SlaDue(BaseModel):
    """One running target: when it started, when it warns, when it is breached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: SlaMetric
    started_at: datetime
    warn_at: datetime
    due_at: datetime

    def state(self, now: datetime) -> SlaState:
        """Return ``"breached"`` at or after the due time, ``"warning"`` after the warning."""
        if now >= self.due_at:
            return "breached"
        if now >= self.warn_at:
            return "warning"
        return "ok"


class SlaPolicy(BaseModel):
    """Targets per priority (and per network where they differ), counted on one clock.

    Attributes:
        targets: Targets for each priority; a priority left out has none.
        networks: Per network, targets that replace ``targets`` for the
            priorities they name (Twitter/X customers expect faster public
            answers than email-like channels, say).
        hours: Count in these business hours; ``None`` counts wall time.

    Example:
        ```python
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo
        from omnichannel.helpdesk import BusinessHours, SlaPolicy, SlaTargets

        policy = SlaPolicy(
            targets={"high": SlaTargets(first_response=timedelta(hours=1)),
                     "normal": SlaTargets(first_response=timedelta(hours=4))},
            networks={"x": {"high": SlaTargets(first_response=timedelta(minutes=30))}},
            hours=BusinessHours.weekdays("09:00", "17:00", timezone="Europe/Berlin"),
        )
        start = datetime(2026, 12, 4, 16, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # Friday
        due = policy.due("first_response", since=start, network="mastodon", priority="high")
        assert due is not None and due.due_at.hour == 9 and due.due_at.day == 7  # Monday 09:30
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: dict[Priority, SlaTargets] = Field(default_factory=dict)
    networks: dict[str, dict[Priority, SlaTargets]] = Field(default_factory=dict)
    hours: BusinessHours | None = None

    @property
    def clock(self) -> Clock:
        """The clock targets are counted on."""
        return self.hours if self.hours is not None else WallClock()

    def targets_for(self, network: str, priority: Priority) -> SlaTargets | None:
        """Return the targets that apply on ``network`` at ``priority``, if any."""
        special = self.networks.get(network, {})
        if priority in special:
            return special[priority]
        return self.targets.get(priority)

    def due(
        self, metric: SlaMetric, *, since: datetime, network: str, priority: Priority
    ) -> SlaDue | None:
        """Return when ``metric``, started at ``since``, warns and is due (``None``: no target)."""
        targets = self.targets_for(network, priority)
        target = targets.target(metric) if targets is not None else None
        if targets is None or target is None:
            return None
        clock = self.clock
        return SlaDue(
            metric=metric,
            started_at=since,
            warn_at=clock.add(since, target * targets.warn_at),
            due_at=clock.add(since, target),
        )
