"""X's rate-limit headers, read for the core's HTTP client."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from omnichannel.http import RateLimitInfo, parse_epoch_headers

__all__ = ["parse_x_headers"]


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
    return parse_epoch_headers(
        headers, limit="x-rate-limit-limit", remaining="x-rate-limit-remaining",
        reset="x-rate-limit-reset",
    )
