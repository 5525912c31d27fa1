"""Mastodon's error answers mapped onto the omnichannel error tree, in one place.

Mastodon answers errors with ``{"error": "..."}`` (sometimes plus
``error_description``). The text is localized by ``Accept-Language``, so the
mapping goes by HTTP status; the one message we look into is the 422 of an
over-long status, recognised by the instance's limit appearing in it
(``"Validation failed: Text character limit of 500 exceeded"``, recorded in
Japanese and German too).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx

from omnichannel.errors import (
    AuthenticationError,
    NetworkError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from omnichannel.http import parse_mastodon_headers

from ._wire import error_message

__all__ = ["TOO_LONG", "MastodonErrors", "error_for", "is_too_long"]

NETWORK = "mastodon"

TOO_LONG = "text_too_long"
"""``NetworkError.code`` of a 422 that refused a status as over the limit."""

_MAX_MESSAGE = 300


def _message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, RecursionError):  # any body, however deep
        body = None
    text = error_message(body)
    # Server messages are short; a runaway one is cut, never echoed whole.
    return text[:_MAX_MESSAGE]


def _is_status_write(request: httpx.Request | None) -> bool:
    if request is None:
        return False
    return request.method in {"POST", "PUT"} and request.url.path.rstrip("/").startswith(
        "/api/v1/statuses"
    )


def error_for(
    response: httpx.Response, *, max_characters: int | None = None
) -> OmnichannelError | None:
    """Map an error response to our error tree.

    Args:
        response: The error response (status >= 400), body read.
        max_characters: The instance's status limit, to recognise the localized
            over-limit 422 whatever its language.

    Returns:
        The error, or ``None`` to leave the answer to the HTTP layer's default.
    """
    status = response.status_code
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:
        request = None
    what = _message(response) or f"HTTP {status}"
    match status:
        case 401:
            return AuthenticationError(what, network=NETWORK)
        case 403:
            # Doorkeeper names a missing scope in WWW-Authenticate; other 403s
            # refuse this one action (deleting someone else's status...).
            if "insufficient_scope" in response.headers.get("www-authenticate", ""):
                return AuthenticationError(what, network=NETWORK)
            return RequestRejected(what, network=NETWORK, status=status, code="forbidden")
        case 404 | 410:
            return NotFound(what, network=NETWORK, status=status)
        case 422:
            if (
                max_characters is not None
                and _is_status_write(request)
                and re.search(rf"(?<!\d){max_characters}(?!\d)", what)
            ):
                return RequestRejected(what, network=NETWORK, status=status, code=TOO_LONG)
            return RequestRejected(what, network=NETWORK, status=status, code="validation")
        case 429:
            info = parse_mastodon_headers(response.headers, now=datetime.now(UTC))
            return RateLimited(
                network=NETWORK, reset_at=info.reset_at if info is not None else None,
                status=status,
            )
        case _ if status >= 500 or status == 408:
            return TransientError(what, network=NETWORK, status=status)
        case _:
            return RequestRejected(what, network=NETWORK, status=status)


class MastodonErrors:
    """The error mapper handed to the HTTP client; knows the instance's limit.

    Attributes:
        max_characters: The status limit read from the instance, once known.
    """

    def __init__(self) -> None:
        self.max_characters: int | None = None

    def __call__(self, response: httpx.Response) -> OmnichannelError | None:
        """Map one error response (see `error_for`)."""
        return error_for(response, max_characters=self.max_characters)


def is_too_long(error: NetworkError) -> bool:
    """Whether ``error`` is Mastodon refusing a status as over the limit."""
    return isinstance(error, RequestRejected) and error.code == TOO_LONG
