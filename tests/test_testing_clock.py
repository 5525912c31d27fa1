"""`omnichannel.testing.clock`: virtual time that moves only when told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnichannel.testing import VirtualClock
from omnichannel.testing.clock import DEFAULT_START


def test_time_is_frozen_until_advanced() -> None:
    """now() returns the same instant until advance() moves it."""
    clock = VirtualClock()
    assert clock.now() == clock.now() == DEFAULT_START
    assert clock.advance(timedelta(minutes=5)) == DEFAULT_START + timedelta(minutes=5)
    assert clock.now() == DEFAULT_START + timedelta(minutes=5)


def test_advance_accepts_seconds() -> None:
    """advance() takes a float of seconds as well as a timedelta."""
    clock = VirtualClock(start=datetime(2025, 1, 1, tzinfo=UTC))
    assert clock.advance(90).isoformat() == "2025-01-01T00:01:30+00:00"


def test_tick_moves_time_after_each_reading() -> None:
    """With a tick, each now() is later than the one before."""
    clock = VirtualClock(start=datetime(2025, 1, 1, tzinfo=UTC), tick=timedelta(seconds=1))
    first, second = clock.now(), clock.now()
    assert second - first == timedelta(seconds=1)
    assert clock.peek() == second + timedelta(seconds=1)


def test_naive_start_is_taken_as_utc() -> None:
    """A naive start datetime is read as UTC."""
    clock = VirtualClock(start=datetime(2025, 3, 1, 12, 0))
    assert clock.now() == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert clock.timestamp() == datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def test_time_never_runs_backwards() -> None:
    """Negative steps, jumps into the past and negative ticks are refused."""
    clock = VirtualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(DEFAULT_START - timedelta(seconds=1))
    with pytest.raises(ValueError):
        VirtualClock(tick=timedelta(seconds=-1))
    assert clock.set(DEFAULT_START + timedelta(days=1)) == DEFAULT_START + timedelta(days=1)
