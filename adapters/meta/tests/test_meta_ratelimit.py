"""Meta's usage-header parser, checked against recorded and documented headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from omnichannel.http import RateLimitInfo
from omnichannel_meta import parse_meta_headers

from .conftest import vector

NOW = datetime(2025, 5, 22, 14, 40, tzinfo=UTC)


def test_meta_app_usage_from_recorded_graph_response() -> None:
    """The recorded X-App-Usage {"call_count":2,...} is 2 % used: 98 of 100 left, no reset."""
    batch = json.loads(vector("facebook/restfb__batch__batch-first-error.json"))
    headers = {h["name"]: h["value"] for h in batch[0]["headers"]}
    assert headers["X-App-Usage"] == '{"call_count":2,"total_cputime":2,"total_time":2}'
    info = parse_meta_headers(headers, now=NOW)
    assert info == RateLimitInfo(limit=100, remaining=98, reset_at=None)


def test_meta_business_use_case_usage_not_throttled() -> None:
    """A Page BUC header at 1 % with no time to regain access leaves 99 % and no reset."""
    # Shape and values as in python-facebook's tests (tests/test_ratelimit.py).
    headers = {
        "x-business-use-case-usage": (
            '{"112130216863063":[{"type":"pages","call_count":1,"total_cputime":1,'
            '"total_time":1,"estimated_time_to_regain_access":0}]}'
        )
    }
    assert parse_meta_headers(headers, now=NOW) == RateLimitInfo(limit=100, remaining=99)


def test_meta_usage_at_100_percent_is_exhausted_until_regain_time() -> None:
    """At 100 % with 5 minutes to regain access, nothing remains until now + 5 minutes."""
    headers = {
        "X-App-Usage": '{"call_count":16,"total_cputime":15,"total_time":12}',
        "X-Business-Use-Case-Usage": (
            '{"112130216863063":[{"type":"pages","call_count":100,"total_cputime":40,'
            '"total_time":38,"estimated_time_to_regain_access":5}]}'
        ),
    }
    info = parse_meta_headers(headers, now=NOW)
    assert info == RateLimitInfo(limit=100, remaining=0, reset_at=NOW + timedelta(minutes=5))


def test_meta_time_to_regain_access_means_throttled_even_below_100() -> None:
    """A non-zero time to regain access marks the budget exhausted whatever the percentages."""
    headers = {
        "X-Business-Use-Case-Usage": (
            '{"1":[{"type":"pages","call_count":90,"total_cputime":10,'
            '"total_time":10,"estimated_time_to_regain_access":2}]}'
        )
    }
    info = parse_meta_headers(headers, now=NOW)
    assert info is not None
    assert info.remaining == 0
    assert info.reset_at == NOW + timedelta(minutes=2)


def test_meta_parser_returns_none_without_its_headers() -> None:
    """A response without usage headers gives no info, not an empty one."""
    assert parse_meta_headers({"content-type": "application/json"}, now=NOW) is None


def test_meta_malformed_usage_is_ignored_not_raised() -> None:
    """Garbage in a usage header drops that header instead of failing the response."""
    assert parse_meta_headers({"x-app-usage": "{not json"}, now=NOW) is None
    assert parse_meta_headers({"x-app-usage": '{"call_count": "high"}'}, now=NOW) is None
