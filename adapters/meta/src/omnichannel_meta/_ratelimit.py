"""Meta's usage headers, read for the core's HTTP client."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import httpx

from omnichannel.http import RateLimitInfo

__all__ = ["parse_meta_headers"]

_META_USAGE_HEADERS = ("x-app-usage", "x-page-usage", "x-business-use-case-usage")
_META_USAGE_FIELDS = ("call_count", "total_cputime", "total_time")


def _meta_entries(value: object) -> list[Mapping[str, object]]:
    """The usage objects in a Meta header: flat, or ``{object id: [usage, ...]}``."""
    if not isinstance(value, Mapping):
        return []
    if any(field in value for field in _META_USAGE_FIELDS):
        return [value]
    entries: list[Mapping[str, object]] = []
    for item in value.values():
        if isinstance(item, list):
            entries.extend(entry for entry in item if isinstance(entry, Mapping))
    return entries


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def parse_meta_headers(
    headers: Mapping[str, str], /, *, now: datetime | None = None
) -> RateLimitInfo | None:
    """Read Meta's usage headers (``X-App-Usage``, ``X-Page-Usage``, ``X-Business-Use-Case-Usage``).

    They carry JSON percentages (``call_count``, ``total_cputime``, ``total_time``)
    and, for business use cases, ``estimated_time_to_regain_access`` in minutes.
    The most used figure of all headers wins: ``limit`` is ``100``, ``remaining``
    is ``100`` minus that usage (``0`` at 100 % or more, or while a time to regain
    access is given), and ``reset_at`` is ``now`` plus the longest time to regain
    access, when one is given.

    A [`RateLimitParser`][omnichannel.http.RateLimitParser] for
    [`open_client`][omnichannel.http.open_client]; the Meta adapters pass it.

    ```python
    from datetime import UTC, datetime

    from omnichannel_meta import parse_meta_headers

    now = datetime(2026, 1, 1, tzinfo=UTC)
    info = parse_meta_headers({"X-App-Usage": '{"call_count": 28, "total_time": 9}'}, now=now)
    print(info.remaining if info else None)
    #> 72
    ```

    Args:
        headers: Response headers (any case).
        now: The time the response arrived (defaults to the current time).

    Returns:
        The budget, or ``None`` when the response carries no usable usage header.
    """
    h = httpx.Headers(headers)
    usage: float | None = None
    regain_minutes = 0.0
    for name in _META_USAGE_HEADERS:
        raw = h.get(name)
        if not raw:
            continue
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):  # a header is never a reason to fail
            continue
        for entry in _meta_entries(decoded):
            for field in _META_USAGE_FIELDS:
                number = _number(entry.get(field))
                if number is not None:
                    usage = number if usage is None else max(usage, number)
            minutes = _number(entry.get("estimated_time_to_regain_access"))
            if minutes is not None:
                regain_minutes = max(regain_minutes, minutes)
    if usage is None:
        return None
    remaining = max(0, 100 - math.ceil(usage))
    reset_at: datetime | None = None
    if regain_minutes > 0:
        # Meta only gives a time to regain access while it is throttling us.
        remaining = 0
        reset_at = (now or datetime.now(UTC)) + timedelta(minutes=regain_minutes)
    return RateLimitInfo(limit=100, remaining=remaining, reset_at=reset_at)
