"""Business hours: when a team works, and how much working time lies between two instants.

SLA targets are usually counted in working time: a question that comes in on
Friday at 18:00 to a team working 9 to 5 on weekdays is not late on Saturday.
[`BusinessHours`][omnichannel.helpdesk.BusinessHours] knows a team's time zone,
its weekly hours and its holidays, and answers two questions: when is ``start``
plus so much working time (a due time), and how much working time passed
between two instants (a waiting time). [`WallClock`][omnichannel.helpdesk.WallClock]
answers the same questions in plain elapsed time.

Daylight-saving changes are handled by the time zone: an hour from 09:00 to
17:00 local is 8 hours of work even on the day the clocks change, and a local
time that does not exist that day (skipped by the change) is read in the offset
from before the change.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigurationError

__all__ = ["BusinessHours", "Clock", "WallClock", "Weekday"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""A day of the week, as the three letters a schedule names it by."""

_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# How far ahead a due time is looked for before the schedule is called empty.
_HORIZON_DAYS = 3 * 366


class Clock(Protocol):
    """How time is counted for a target: working time or elapsed time."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """Return the instant when ``duration`` of counted time has passed since ``start``."""
        ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Return how much counted time lies between ``start`` and ``end`` (zero if reversed)."""
        ...


class WallClock(BaseModel):
    """Elapsed time, day and night: the clock of a team that never closes.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta
        from omnichannel.helpdesk import WallClock

        start = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
        assert WallClock().add(start, timedelta(hours=8)) == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """Return ``start + duration``."""
        _aware(start)
        return start + duration

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Return ``end - start``, or zero when ``end`` is earlier."""
        _aware(start)
        _aware(end)
        return max(end - start, timedelta(0))


class BusinessHours(BaseModel):
    """A team's working week in its own time zone, with holidays.

    Attributes:
        timezone: An IANA time zone name (``"Europe/Berlin"``).
        weekly: For each working day, its open spans as ``"HH:MM-HH:MM"``
            strings (``"24:00"`` ends a span at midnight). Days left out are
            closed.
        holidays: Local dates on which the team does not work.

    Raises:
        pydantic.ValidationError: An unknown time zone, a malformed or empty
            span, overlapping spans, or a week with no working time at all.

    Example:
        ```python
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo
        from omnichannel.helpdesk import BusinessHours

        hours = BusinessHours.weekdays("09:00", "17:00", timezone="Europe/Berlin")
        friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        due = hours.add(friday_evening, timedelta(hours=2))
        assert due == datetime(2026, 12, 7, 11, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    weekly: dict[Weekday, tuple[str, ...]] = Field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @classmethod
    def weekdays(
        cls,
        opens: str = "09:00",
        closes: str = "17:00",
        *,
        timezone: str = "UTC",
        days: Iterable[Weekday] = ("mon", "tue", "wed", "thu", "fri"),
        holidays: Iterable[date] = (),
    ) -> BusinessHours:
        """The same hours on each of ``days`` (Monday to Friday by default)."""
        return cls(
            timezone=timezone,
            weekly={day: (f"{opens}-{closes}",) for day in days},
            holidays=frozenset(holidays),
        )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _valid_week(self) -> BusinessHours:
        total = 0
        for day, spans in self.weekly.items():
            parsed = sorted(_parse_span(day, span) for span in spans)
            for (_, end), (start, _) in itertools.pairwise(parsed):
                if start < end:
                    raise ValueError(f"business hours on {day} overlap: {spans}")
            total += sum(end - start for start, end in parsed)
        if total == 0:
            raise ValueError("business hours have no working time in the week")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone, as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """Return whether ``at`` falls in working time."""
        _aware(at)
        local_day = at.astimezone(self.zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            for start, end in self._intervals(day):
                if start <= at < end:
                    return True
        return False

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """Return the instant when ``duration`` of working time has passed since ``start``.

        ``start`` outside working time counts from the next opening. A zero
        duration returns ``start`` itself when it is in working time.

        Raises:
            ConfigurationError: No working time in the next three years
                (holidays cover every working day).
        """
        _aware(start)
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        left = duration
        for begin, end in self._intervals_from(start):
            begin = max(begin, start)
            if begin >= end:
                continue
            if begin + left <= end:
                return (begin + left).astimezone(start.tzinfo)
            left -= end - begin
        raise ConfigurationError("business hours have no working time in the next three years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Return the working time between ``start`` and ``end`` (zero when ``end`` is earlier)."""
        _aware(start)
        _aware(end)
        total = timedelta(0)
        if end <= start:
            return total
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        day = first
        while day <= last:
            for begin, close in self._intervals(day):
                overlap = min(close, end) - max(begin, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def _intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(_HORIZON_DAYS):
            yield from self._intervals(day)
            day += timedelta(days=1)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open spans of local ``day`` as aware UTC instants, in order."""
        if day in self.holidays:
            return []
        spans = self.weekly.get(_DAYS[day.weekday()], ())
        zone = self.zone
        out = []
        for span in spans:
            opens, closes = _parse_span(_DAYS[day.weekday()], span)
            begin = _local(day, opens, zone)
            end = _local(day, closes, zone)
            if end > begin:
                out.append((begin, end))
        return sorted(out)


def _parse_span(day: str, span: str) -> tuple[int, int]:
    """``"09:00-17:30"`` as minutes after midnight (``(540, 1050)``)."""
    match = _SPAN.match(span)
    if match is None:
        raise ValueError(f"business hours on {day}: {span!r} is not 'HH:MM-HH:MM'")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    opens, closes = h1 * 60 + m1, h2 * 60 + m2
    if m1 > 59 or m2 > 59 or opens >= 24 * 60 or closes > 24 * 60 or closes <= opens:
        raise ValueError(f"business hours on {day}: {span!r} is not a span of one day")
    return opens, closes


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """Local ``day`` at ``minutes`` after midnight, as an aware UTC instant.

    A wall time that the clocks skipped that day (a spring-forward gap) is
    read in the offset from before the change, as ``zoneinfo`` does: 02:30 on
    such a night is 03:30 local. An ambiguous one (fall back) is its first
    occurrence.
    """
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return wall.astimezone(UTC)


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware")

