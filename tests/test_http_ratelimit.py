"""Rate-limit header parsers and `RateLimitState`, checked against recorded headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel.http import (
    RateLimitInfo,
    RateLimitState,
    parse_bluesky_headers,
    parse_epoch_headers,
    parse_mastodon_headers,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
NOW = datetime(2025, 5, 22, 14, 40, tzinfo=UTC)


def recorded_headers(network: str, cassette: str, index: int) -> dict[str, str]:
    """Response headers of one recorded interaction of a decoded cassette."""
    data = json.loads((VECTORS / network / "decoded" / f"{cassette}.json").read_text())
    headers: dict[str, Any] = data["interactions"][index]["response_headers"]
    return {name: str(value) for name, value in headers.items()}


def test_bluesky_headers_fill_info_and_policy_window() -> None:
    """Bluesky's RateLimit-* headers on createRecord give 3000/2993, a reset and a 300 s window."""
    headers = recorded_headers("bluesky", "bskyr__r_post_reply", 3)
    info = parse_bluesky_headers(headers, now=NOW)
    assert info == RateLimitInfo(
        limit=3000,
        remaining=2993,
        reset_at=datetime.fromtimestamp(1747925095, UTC),
        policy_window=timedelta(seconds=300),
    )


def test_bluesky_lowercase_headers_from_chat_host() -> None:
    """The chat host's lowercase ratelimit-* headers are read the same way."""
    headers = recorded_headers("bluesky", "bskyr__c_send", 0)
    assert "ratelimit-limit" in headers
    info = parse_bluesky_headers(headers, now=NOW)
    assert info is not None
    assert (info.limit, info.remaining) == (3000, 2993)
    assert info.reset_at == datetime.fromtimestamp(1747924529, UTC)


def test_bluesky_create_session_daily_policy() -> None:
    """createSession's recorded policy "10;w=86400" is a one-day window."""
    headers = recorded_headers("bluesky", "bskyr__repo_auth_direct", 0)
    info = parse_bluesky_headers(headers, now=NOW)
    assert info is not None
    assert (info.limit, info.remaining, info.policy_window) == (10, 9, timedelta(days=1))


def test_mastodon_headers_parse_iso_reset_with_microseconds() -> None:
    """Mastodon's X-RateLimit-Reset 2026-08-01T15:00:00.754511Z becomes an exact aware datetime."""
    headers = recorded_headers("mastodon", "mastodonpy__test_status_reply", 0)
    info = parse_mastodon_headers(headers, now=NOW)
    assert info == RateLimitInfo(
        limit=300,
        remaining=235,
        reset_at=datetime(2026, 8, 1, 15, 0, 0, 754511, tzinfo=UTC),
    )


def test_mastodon_delete_bucket_from_recording() -> None:
    """The recorded DELETE /api/v1/statuses/:id reports its own 30-request limit."""
    headers = recorded_headers("mastodon", "mastodonpy__test_status_reply", 3)
    info = parse_mastodon_headers(headers, now=NOW)
    assert info is not None
    assert (info.limit, info.remaining) == (30, 29)
    assert info.reset_at == datetime(2026, 8, 1, 14, 0, 0, 23707, tzinfo=UTC)


@pytest.mark.parametrize(
    "parser", [parse_bluesky_headers, parse_mastodon_headers]
)
def test_parsers_return_none_without_their_headers(parser: Any) -> None:
    """A response without rate-limit headers gives no info, not an empty one."""
    assert parser({"content-type": "application/json"}, now=NOW) is None


def test_malformed_values_are_ignored_not_raised() -> None:
    """Garbage in a rate-limit header drops that value instead of failing the response."""
    info = parse_mastodon_headers(
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "soon"}, now=NOW
    )
    assert info == RateLimitInfo(remaining=0)
    assert parse_bluesky_headers(
        {"ratelimit-limit": "10", "ratelimit-policy": "10;w=oops"}, now=NOW
    ) == RateLimitInfo(limit=10)


def test_state_waits_only_when_exhausted_with_future_reset() -> None:
    """wait_time is the time to reset when remaining is 0, and 0 otherwise."""
    state = RateLimitState()
    reset = NOW + timedelta(seconds=42)
    assert state.wait_time("x", "POST /2/tweets", now=NOW) == 0.0
    state.update("x", "POST /2/tweets", RateLimitInfo(limit=200, remaining=1, reset_at=reset))
    assert state.wait_time("x", "POST /2/tweets", now=NOW) == 0.0
    state.update("x", "POST /2/tweets", RateLimitInfo(limit=200, remaining=0, reset_at=reset))
    assert state.wait_time("x", "POST /2/tweets", now=NOW) == 42.0
    assert state.wait_time("x", "POST /2/tweets", now=reset + timedelta(seconds=1)) == 0.0
    assert state.wait_time("mastodon", "POST /2/tweets", now=NOW) == 0.0
    state.update("x", "GET /2/users/me", RateLimitInfo(remaining=0))
    assert state.wait_time("x", "GET /2/users/me", now=NOW) == 0.0


def test_state_keys_by_network_and_bucket() -> None:
    """Buckets of different networks never mix, and snapshot lists each one."""
    state = RateLimitState()
    state.update("x", "a", RateLimitInfo(remaining=1))
    state.update("bluesky", "a", RateLimitInfo(remaining=2))
    assert state.get("x", "a") == RateLimitInfo(remaining=1)
    assert state.get("bluesky", "a") == RateLimitInfo(remaining=2)
    assert state.get("x", "b") is None
    assert set(state.snapshot()) == {("x", "a"), ("bluesky", "a")}


def test_info_requires_aware_reset() -> None:
    """A naive reset time is refused, so waits are never computed across time zones."""
    with pytest.raises(ValueError, match="timezone"):
        RateLimitInfo(reset_at=datetime(2026, 1, 1))


def test_epoch_headers_under_any_names_and_bad_values_ignored() -> None:
    """The shared shape reads the names it is given; a bad value is left out, none gives None."""
    names = {"limit": "x-quota", "remaining": "x-quota-left", "reset": "x-quota-reset"}
    assert parse_epoch_headers({"X-Quota": "100", "X-Quota-Left": "-3",
                                "X-Quota-Reset": "1635976418"}, **names) == RateLimitInfo(
        limit=100, remaining=None, reset_at=datetime.fromtimestamp(1635976418, UTC))
    assert parse_epoch_headers({"x-quota-reset": "10" * 20}, **names) is None
    assert parse_epoch_headers({"RateLimit-Limit": "5"}, **names) is None


def test_response_headers_read_as_they_arrive_in_any_case() -> None:
    """A response's own headers (mixed case) read as a plain mapping of them does."""
    recorded = recorded_headers("mastodon", "mastodonpy__test_status_reply", 0)
    upper = {name.upper(): value for name, value in recorded.items()}
    response = httpx.Response(200, headers=upper)
    assert parse_mastodon_headers(response.headers, now=NOW) == parse_mastodon_headers(
        recorded, now=NOW
    )
    names = {"limit": "RateLimit-Limit", "remaining": "RATELIMIT-REMAINING",
             "reset": "ratelimit-reset", "policy": "RateLimit-Policy"}
    bluesky = httpx.Response(200, headers=recorded_headers("bluesky", "bskyr__r_post_reply", 3))
    assert parse_epoch_headers(bluesky.headers, **names) == parse_bluesky_headers(
        bluesky.headers, now=NOW
    ) == RateLimitInfo(limit=3000, remaining=2993,
                       reset_at=datetime.fromtimestamp(1747925095, UTC),
                       policy_window=timedelta(seconds=300))


def test_a_repeated_header_reads_as_its_values_joined() -> None:
    """Two X-RateLimit-Remaining headers read "5, 4", which is no count: it is left out."""
    headers = httpx.Headers([("x-ratelimit-limit", "300"), ("X-RateLimit-Remaining", "5"),
                             ("x-ratelimit-remaining", "4")])
    assert parse_mastodon_headers(headers, now=NOW) == RateLimitInfo(limit=300)
    policy = httpx.Headers([("ratelimit-limit", "10"), ("ratelimit-policy", "10;w=60"),
                            ("RateLimit-Policy", "100;w=3600")])
    info = parse_bluesky_headers(policy, now=NOW)
    assert info == RateLimitInfo(limit=10, policy_window=timedelta(seconds=60))
