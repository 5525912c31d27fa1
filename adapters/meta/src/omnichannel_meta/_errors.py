"""Graph API error answers mapped onto the omnichannel error tree, in one place.

Meta answers errors with ``{"error": {"message", "type", "code", "error_subcode",
"is_transient", "fbtrace_id"}}``, mostly as HTTP 400 whatever the cause, so the
mapping goes by ``code`` and ``error_subcode``:

| code / subcode | error |
|---|---|
| ``190`` (``463``: expired) | `TokenExpired` for 463, else `AuthenticationError` |
| ``102``, ``458``-``467`` | `AuthenticationError` |
| ``10`` / ``2018278`` or ``2534022`` | `WindowClosed` (outside the allowed window) |
| ``10`` / ``1893063`` | `RequestRejected`, code ``page_restricted`` |
| ``551`` / ``1545041`` | `RequestRejected`, code ``person_unavailable`` |
| ``4``, ``17``, ``32``, ``613``, ``80001``-``80099`` | `RateLimited` (reset: usage headers) |
| ``1``, ``2``, or ``is_transient`` | `TransientError` |
| ``100`` / ``33``, HTTP 404 | `NotFound` |
| anything else | `RequestRejected` (``code`` is ``"<code>/<subcode>"``) |

The message is Meta's, cut to 300 characters; it never holds the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from omnichannel.errors import (
    AuthenticationError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TokenExpired,
    TransientError,
    WindowClosed,
)

from ._ratelimit import parse_meta_headers

__all__ = ["THROTTLING_CODES", "MetaErrors", "error_from_body"]

THROTTLING_CODES = frozenset({4, 17, 32, 613})
"""Graph error codes that mean "slow down" (with the ``80001``-``80099`` BUC range)."""

_WINDOW_SUBCODES = frozenset({2018278, 2534022})
_MAX_MESSAGE = 300


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def error_from_body(
    body: object, *, network: str, status: int, headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> OmnichannelError | None:
    """Map a decoded Graph error body to our error tree.

    Args:
        body: The decoded JSON answer.
        network: ``"facebook"`` or ``"instagram"``, for the error.
        status: The HTTP status.
        headers: The response headers (usage headers give a throttle's reset).
        now: When the answer came (for the reset).

    Returns:
        The error, or ``None`` when the body is not a Graph error envelope.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    code = _int(error.get("code"))
    sub = _int(error.get("error_subcode"))
    message = str(error.get("message") or f"HTTP {status}")[:_MAX_MESSAGE]
    label = f"{code}/{sub}" if sub is not None else str(code)
    if code == 190:
        if sub == 463:
            return TokenExpired(message, network=network)
        return AuthenticationError(message, network=network)
    if code == 102 or (sub is not None and 458 <= sub <= 467):
        return AuthenticationError(message, network=network)
    if code == 10 and sub in _WINDOW_SUBCODES:
        return WindowClosed(message, network=network)
    if code == 10 and sub == 1893063:
        return RequestRejected(message, network=network, status=status, code="page_restricted")
    if code == 551 or sub == 1545041:
        return RequestRejected(message, network=network, status=status,
                               code="person_unavailable")
    if code is not None and (code in THROTTLING_CODES or 80001 <= code <= 80099):
        info = parse_meta_headers(headers or {}, now=now or datetime.now(UTC))
        return RateLimited(
            network=network, reset_at=info.reset_at if info is not None else None,
            status=status, code=label,
        )
    if code in (1, 2) or error.get("is_transient") is True or status >= 500:
        return TransientError(message, network=network, status=status, code=label)
    if (code == 100 and sub == 33) or status == 404:
        return NotFound(message, network=network, status=status, code=label)
    return RequestRejected(message, network=network, status=status, code=label)


class MetaErrors:
    """The error mapper handed to the HTTP client.

    Args:
        network: ``"facebook"`` or ``"instagram"``.
    """

    def __init__(self, network: str) -> None:
        self.network = network

    def __call__(self, response: httpx.Response) -> OmnichannelError | None:
        """Map one error response; ``None`` leaves a non-Graph answer to the HTTP layer."""
        try:
            body: Any = json.loads(response.content) if response.content else None
        except (ValueError, RecursionError):  # any body, however deep
            body = None
        return error_from_body(
            body, network=self.network, status=response.status_code,
            headers=response.headers, now=datetime.now(UTC),
        )
