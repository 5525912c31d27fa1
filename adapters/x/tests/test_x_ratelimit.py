"""X's rate-limit header parser, checked against recorded headers."""

from __future__ import annotations

from datetime import UTC, datetime

from omnichannel.http import RateLimitInfo
from omnichannel_x import parse_x_headers

from .conftest import Recording

NOW = datetime(2025, 5, 22, 14, 40, tzinfo=UTC)


def recorded_headers(cassette: str, index: int) -> dict[str, str]:
    """Response headers of one recorded interaction of a decoded tweepy cassette."""
    headers = Recording(cassette).interactions[index]["response_headers"]
    return {name: str(value) for name, value in headers.items()}


def test_x_headers_fill_info_from_recorded_post_tweets() -> None:
    """X's x-rate-limit-* headers of the recorded POST /2/tweets give limit, remaining, reset."""
    headers = recorded_headers("test_client_create_and_delete_tweet", 0)
    info = parse_x_headers(headers, now=NOW)
    assert info == RateLimitInfo(
        limit=200, remaining=199, reset_at=datetime.fromtimestamp(1635976418, UTC)
    )


def test_x_headers_from_recorded_mentions_poll() -> None:
    """The recorded mentions poll reads 450/448 with its epoch-seconds reset."""
    headers = recorded_headers("test_client_get_users_mentions", 0)
    info = parse_x_headers(headers, now=NOW)
    assert info is not None
    assert (info.limit, info.remaining) == (450, 448)
    assert info.reset_at == datetime(2022, 10, 7, 22, 53, 48, tzinfo=UTC)


def test_x_parser_returns_none_without_its_headers() -> None:
    """A response without x-rate-limit-* headers gives no info, not an empty one."""
    assert parse_x_headers({"content-type": "application/json"}, now=NOW) is None


def test_x_malformed_values_are_ignored_not_raised() -> None:
    """Garbage in an x-rate-limit header drops that value instead of failing the response."""
    assert parse_x_headers({"x-rate-limit-remaining": "lots"}, now=NOW) is None
    assert parse_x_headers(
        {"x-rate-limit-remaining": "-1", "x-rate-limit-reset": "99999999999999999"}
    ) is None
    assert parse_x_headers({"X-Rate-Limit-Remaining": "3"}) == RateLimitInfo(remaining=3)
