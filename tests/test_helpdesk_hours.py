"""Business hours and SLA due times: working time counted across nights, weekends, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnichannel.errors import ConfigurationError
from omnichannel.helpdesk import BusinessHours, SlaPolicy, SlaTargets, WallClock

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = BusinessHours.weekdays("09:00", "17:00", timezone="Europe/Berlin")


def berlin(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)  # type: ignore[misc]


def test_time_inside_a_day_adds_up_within_the_day() -> None:
    assert OFFICE.add(berlin(2026, 12, 2, 10, 0), timedelta(hours=3)) == berlin(2026, 12, 2, 13, 0)


def test_friday_evening_counts_from_monday_morning() -> None:
    due = OFFICE.add(berlin(2026, 12, 4, 18, 0), timedelta(hours=2))
    assert due == berlin(2026, 12, 7, 11, 0)


def test_a_span_running_past_closing_goes_on_the_next_working_day() -> None:
    # Thursday 16:00 + 3 h: 1 h on Thursday, 2 h on Friday morning.
    assert OFFICE.add(berlin(2026, 12, 3, 16, 0), timedelta(hours=3)) == berlin(2026, 12, 4, 11, 0)


def test_holidays_are_skipped() -> None:
    hours = BusinessHours.weekdays(
        "09:00", "17:00", timezone="Europe/Berlin",
        holidays=[date(2026, 12, 24), date(2026, 12, 25)],
    )
    # Wednesday 23rd, 16:00 + 2 h: 1 h that day, then Thursday and Friday are holidays.
    assert hours.add(berlin(2026, 12, 23, 16, 0), timedelta(hours=2)) == berlin(2026, 12, 28, 10, 0)


def test_the_day_the_clocks_change_still_has_eight_working_hours() -> None:
    # 2026-03-29 is a Sunday; open that day to see the change inside business hours' day.
    hours = BusinessHours(timezone="Europe/Berlin", weekly={"sun": ("00:00-24:00",)})
    day = berlin(2026, 3, 29, 0, 0)
    assert hours.elapsed(day, berlin(2026, 3, 30, 0, 0)) == timedelta(hours=23)
    autumn = berlin(2026, 10, 25, 0, 0)
    assert hours.elapsed(autumn, berlin(2026, 10, 26, 0, 0)) == timedelta(hours=25)
    office_after_change = OFFICE.elapsed(berlin(2026, 3, 30, 0, 0), berlin(2026, 3, 31, 0, 0))
    assert office_after_change == timedelta(hours=8)


def test_elapsed_counts_only_working_time() -> None:
    friday_noon = berlin(2026, 12, 4, 12, 0)
    monday_noon = berlin(2026, 12, 7, 12, 0)
    assert OFFICE.elapsed(friday_noon, monday_noon) == timedelta(hours=8)
    assert OFFICE.elapsed(monday_noon, friday_noon) == timedelta(0)


def test_is_open() -> None:
    assert OFFICE.is_open(berlin(2026, 12, 4, 9, 0))
    assert not OFFICE.is_open(berlin(2026, 12, 4, 17, 0))
    assert not OFFICE.is_open(berlin(2026, 12, 5, 12, 0))  # Saturday
    # The same instant given in another zone is judged in the team's zone.
    assert OFFICE.is_open(datetime(2026, 12, 4, 8, 30, tzinfo=UTC))  # 09:30 in Berlin


def test_several_spans_a_day() -> None:
    hours = BusinessHours(timezone="UTC", weekly={"mon": ("08:00-12:00", "13:00-17:00")})
    start = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    assert hours.add(start, timedelta(hours=2)) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("weekly", "why"),
    [
        ({"mon": ("9-17",)}, "HH:MM"),
        ({"mon": ("17:00-09:00",)}, "span of one day"),
        ({"mon": ("09:00-12:00", "11:00-13:00")}, "overlap"),
        ({}, "no working time"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(
    weekly: dict[str, tuple[str, ...]], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        BusinessHours(timezone="UTC", weekly=weekly)  # type: ignore[arg-type]


def test_unknown_zone_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        BusinessHours.weekdays(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="aware"):
        OFFICE.add(datetime(2026, 12, 4, 10, 0), timedelta(hours=1))


def test_holidays_on_every_working_day_are_an_error_not_a_hang() -> None:
    mondays = frozenset(date(2026, 12, 7) + timedelta(weeks=w) for w in range(200))
    hours = BusinessHours(timezone="UTC", weekly={"mon": ("09:00-10:00",)}, holidays=mondays)
    with pytest.raises(ConfigurationError, match="no working time"):
        hours.add(datetime(2026, 12, 7, tzinfo=UTC), timedelta(hours=2))


@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1),
                       timezones=st.just(BERLIN)),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 20),
)
def test_adding_then_measuring_gives_back_the_duration(start: datetime, minutes: int) -> None:
    """add() and elapsed() agree: the working time from start to the due time is the target."""
    duration = timedelta(minutes=minutes)
    due = OFFICE.add(start, duration)
    assert due >= start
    assert OFFICE.elapsed(start, due) == duration
    if minutes:
        assert OFFICE.is_open(due - timedelta(seconds=1))


def test_wall_clock_counts_every_hour() -> None:
    start = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    assert WallClock().add(start, timedelta(hours=8)) == start + timedelta(hours=8)
    assert WallClock().elapsed(start, start - timedelta(hours=1)) == timedelta(0)


def test_sla_due_times_per_priority_and_network_in_business_hours() -> None:
    policy = SlaPolicy(
        targets={"high": SlaTargets(first_response=timedelta(hours=1),
                                    resolution=timedelta(hours=16)),
                 "normal": SlaTargets(first_response=timedelta(hours=4))},
        networks={"x": {"high": SlaTargets(first_response=timedelta(minutes=30))}},
        hours=OFFICE,
    )
    friday = berlin(2026, 12, 4, 16, 30)
    high = policy.due("first_response", since=friday, network="mastodon", priority="high")
    assert high is not None
    assert high.due_at == berlin(2026, 12, 7, 9, 30)
    # Warned after 75 % of 1 h of working time: 30 min on Friday, 15 on Monday.
    assert high.warn_at == berlin(2026, 12, 7, 9, 15)
    on_x = policy.due("first_response", since=friday, network="x", priority="high")
    assert on_x is not None
    assert on_x.due_at == berlin(2026, 12, 4, 17, 0)
    assert policy.due("next_response", since=friday, network="x", priority="high") is None
    assert policy.due("first_response", since=friday, network="x", priority="low") is None
    resolution = policy.due("resolution", since=friday, network="mastodon", priority="high")
    assert resolution is not None
    assert resolution.due_at == berlin(2026, 12, 8, 16, 30)

    assert high.state(berlin(2026, 12, 4, 16, 40)) == "ok"
    assert high.state(berlin(2026, 12, 7, 9, 10)) == "ok"
    assert high.state(berlin(2026, 12, 7, 9, 20)) == "warning"
    assert high.state(berlin(2026, 12, 7, 9, 30)) == "breached"


def test_sla_in_wall_time_and_bad_targets() -> None:
    policy = SlaPolicy(targets={"urgent": SlaTargets(first_response=timedelta(minutes=15))})
    start = datetime(2026, 12, 5, 23, 55, tzinfo=UTC)
    due = policy.due("first_response", since=start, network="bluesky", priority="urgent")
    assert due is not None
    assert due.due_at == start + timedelta(minutes=15)
    with pytest.raises(ValueError, match="positive"):
        SlaTargets(first_response=timedelta(0))
