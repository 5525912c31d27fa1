"""X's rate-limit headers, read for the core's HTTP client."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from omnichannel.http import RateLimitInfo

__all__ = ["parse_x_headers"]


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _epoch(value: str | None) -> datetime | None:
    seconds = _count(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_x_headers(
    headers: Mapping[str, str], /, *, now: datetime | None = None
) -> RateLimitInfo | None:
    """Read X's ``x-rate-limit-limit/-remaining/-reset`` (reset in epoch seconds).

    A [`RateLimitParser`][omnichannel.http.RateLimitParser] for
    [`open_client`][omnichannel.http.open_client]; the X adapter passes it.

    ```python
    from omnichannel_x import parse_x_headers

    info = parse_x_headers({"x-rate-limit-limit": "450", "x-rate-limit-remaining": "448"})
    print(info.remaining if info else None)
    #> 448
    ```

    Args:
        headers: Response headers (any case).
        now: Unused; accepted so every parser has the same signature.

    Returns:
        The budget, or ``None`` when the response carries none of the headers.
    """
    h = httpx.Headers(headers)
    limit = _count(h.get("x-rate-limit-limit"))
    remaining = _count(h.get("x-rate-limit-remaining"))
    reset_at = _epoch(h.get("x-rate-limit-reset"))
    if limit is None and remaining is None and reset_at is None:
        return None
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=reset_at)
