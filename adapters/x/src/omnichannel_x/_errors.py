"""X's error answers mapped onto the omnichannel error tree, in one place.

X API v2 answers errors with an RFC 7807 Problem, ``{"title", "detail",
"type", "status"}``, whose ``type`` is ``about:blank`` or
``https://api.twitter.com/2/problems/<name>`` (the OpenAPI specification's
``Problem`` discriminator; the docs also write ``api.x.com``). Older answers
carry ``{"errors": [{"code", "message"}]}``. The mapping goes by problem name
first, then by HTTP status; the few messages looked into are the duplicate
post and the 2026 reply rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from omnichannel.errors import (
    ActionError,
    AuthenticationError,
    DuplicateContent,
    NetworkError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TokenExpired,
    TransientError,
)

from ._ratelimit import parse_x_headers

__all__ = [
    "ClientForbidden",
    "DirectMessageRefused",
    "NotAuthorizedForResource",
    "NotSummoned",
    "ReauthorizationRequired",
    "UsageCapped",
    "error_for",
    "problem_name",
]

NETWORK = "x"
_MAX_MESSAGE = 300


class ReauthorizationRequired(TokenExpired):
    """The OAuth 2.0 refresh failed: a person must authorize the app again.

    The refresh token rotates on every refresh, so a lost or revoked one cannot
    be recovered; the adapter raises this instead of stopping silently.
    """

    def __init__(self, detail: str = "", *, network: str | None = NETWORK) -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"reauthorization required{extra}", network=network)


class NotSummoned(ActionError):
    """X's 2026 rule for self-serve apps forbids this reply: the author did not summon us.

    A reply is allowed only to a post whose author @mentioned our account or
    quoted one of our posts. Raised by `XAdapter.check` before any request on
    the tiers where the rule applies, and for X's own 403 refusing the reply.

    Attributes:
        post_id: The post that was to be answered.
    """

    def __init__(self, post_id: str, *, reason: str = "", network: str | None = NETWORK) -> None:
        self.post_id = post_id
        why = f": {reason}" if reason else ""
        super().__init__(
            f"X does not allow this reply (post {post_id} did not @mention or quote us){why}",
            network=network,
        )


class UsageCapped(NetworkError):
    """The app's or the project's usage cap (or credit balance) is spent (``usage-capped``).

    Attributes:
        period: ``"Daily"`` or ``"Monthly"``, when X says.
        scope: ``"Account"`` or ``"Product"``, when X says.
    """

    def __init__(
        self, message: str, *, network: str | None = NETWORK, status: int | None = None,
        period: str | None = None, scope: str | None = None,
    ) -> None:
        self.period = period
        self.scope = scope
        super().__init__(message, network=network, status=status, code="usage-capped")


class ClientForbidden(RequestRejected):
    """The app may not use this endpoint (``client-forbidden``): its tier or project lacks it."""


class NotAuthorizedForResource(RequestRejected):
    """The post or user is not visible to us (``not-authorized-for-resource``: protected...)."""


class DirectMessageRefused(RequestRejected):
    """X refused the DM: the customer does not accept DMs from our account."""


def problem_name(problem_type: str | None) -> str:
    """The last path segment of a problem ``type`` (``usage-capped``), or ``""``."""
    if not problem_type or problem_type == "about:blank":
        return ""
    return problem_type.rstrip("/").rsplit("/", 1)[-1]


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, RecursionError):  # any body, however deep
        return {}
    return body if isinstance(body, dict) else {}


def _message(body: dict[str, Any], status: int) -> str:
    parts: list[str] = []
    for key in ("title", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    errors = body.get("errors")
    if isinstance(errors, list):
        for item in errors[:2]:
            if isinstance(item, dict):
                text = item.get("message") or item.get("detail")
                if isinstance(text, str) and text not in parts:
                    parts.append(text)
    text = ": ".join(parts) or f"HTTP {status}"
    return text[:_MAX_MESSAGE]


def _first_type(body: dict[str, Any]) -> str | None:
    found = body.get("type")
    if isinstance(found, str):
        return found
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        inner = errors[0].get("type")
        return inner if isinstance(inner, str) else None
    return None


def _path(response: httpx.Response) -> tuple[str, str]:
    try:
        request = response.request
    except RuntimeError:
        return "", ""
    return request.method, request.url.path


def error_for(response: httpx.Response) -> OmnichannelError | None:
    """Map an X error response to our error tree.

    Args:
        response: The error response (status >= 400), body read.

    Returns:
        The error, or ``None`` to leave the answer to the HTTP layer's default.
    """
    status = response.status_code
    body = _body(response)
    name = problem_name(_first_type(body))
    what = _message(body, status)
    lowered = what.lower()
    method, path = _path(response)
    if name == "usage-capped":
        period, scope = body.get("period"), body.get("scope")
        return UsageCapped(
            what, status=status, period=period if isinstance(period, str) else None,
            scope=scope if isinstance(scope, str) else None,
        )
    if "duplicate content" in lowered or "status is a duplicate" in lowered:
        return DuplicateContent(what, network=NETWORK, status=status, code="duplicate-content")
    if status == 401:
        return AuthenticationError(what, network=NETWORK)
    if name == "client-forbidden":
        return ClientForbidden(what, network=NETWORK, status=status, code=name)
    if name == "not-authorized-for-resource":
        return NotAuthorizedForResource(what, network=NETWORK, status=status, code=name)
    if name == "resource-not-found":
        return NotFound(what, network=NETWORK, status=status, code=name)
    if status == 403:
        if method == "POST" and path.endswith("/2/tweets") and "mention" in lowered:
            return RequestRejected(what, network=NETWORK, status=status, code="not-summoned")
        if method == "POST" and "/2/dm_conversations" in path:
            return DirectMessageRefused(what, network=NETWORK, status=status, code="dm-refused")
        if name == "unsupported-authentication":
            return AuthenticationError(what, network=NETWORK)
        return RequestRejected(what, network=NETWORK, status=status, code=name or "forbidden")
    if status in (404, 410):
        return NotFound(what, network=NETWORK, status=status, code=name or None)
    if status == 429:
        info = parse_x_headers(response.headers, now=datetime.now(UTC))
        return RateLimited(
            network=NETWORK, reset_at=info.reset_at if info is not None else None, status=status,
        )
    if status >= 500 or status == 408:
        return TransientError(what, network=NETWORK, status=status, code=name or None)
    return RequestRejected(what, network=NETWORK, status=status, code=name or None)


def is_not_summoned(error: NetworkError) -> bool:
    """Whether ``error`` is X refusing a reply under the 2026 reply rule."""
    return isinstance(error, RequestRejected) and error.code == "not-summoned"
