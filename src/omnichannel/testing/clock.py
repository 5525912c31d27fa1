"""A virtual clock for sandboxes: time that moves only when a test says so.

A sandbox stamps every record it creates (``created_at``, ``edited_at``,
token expiry) from its [`VirtualClock`][omnichannel.testing.clock.VirtualClock],
so a test run is reproducible and a test can jump a day ahead without waiting.

Rate-limit windows are the exception: a client waits for them in real time, so
[`RateLimits`][omnichannel.testing.sandbox.RateLimits] reads the wall clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_START", "VirtualClock"]

DEFAULT_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""Where a ``VirtualClock`` starts unless told otherwise (a Monday, 09:00 UTC)."""


class VirtualClock:
    """Time under test control: ``now()`` is frozen until ``advance()`` moves it.

    Args:
        start: The first instant (timezone-aware; naive values are taken as UTC).
        tick: How far each ``now()`` call moves the clock afterwards. The
            default ``0`` freezes time; a small tick (``timedelta(seconds=1)``)
            gives every record a distinct, increasing timestamp.

    Examples:
        >>> clock = VirtualClock(start=datetime(2025, 1, 1, tzinfo=UTC))
        >>> clock.advance(timedelta(hours=2)).isoformat()
        '2025-01-01T02:00:00+00:00'
    """

    def __init__(
        self, start: datetime | None = None, *, tick: timedelta = timedelta(0)
    ) -> None:
        when = start or DEFAULT_START
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if tick < timedelta(0):
            raise ValueError("tick must not be negative")
        self._now = when.astimezone(UTC)
        self._tick = tick
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now.isoformat()})"

    def now(self) -> datetime:
        """Return the current virtual time (UTC), then move on by ``tick``."""
        with self._lock:
            current = self._now
            self._now = current + self._tick
            return current

    def peek(self) -> datetime:
        """Return the current virtual time without ticking."""
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        """Return the current virtual time as POSIX seconds (without ticking)."""
        return self.peek().timestamp()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (a timedelta or seconds); return the new time.

        Raises:
            ValueError: ``delta`` is negative (time never runs backwards).
        """
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("a virtual clock never runs backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (not earlier than now); return it.

        Raises:
            ValueError: ``when`` is earlier than the current time.
        """
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            if when < self._now:
                raise ValueError("a virtual clock never runs backwards")
            self._now = when.astimezone(UTC)
            return self._now
