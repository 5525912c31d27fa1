"""Bluesky's XRPC errors mapped onto the omnichannel error tree, in one place.

An XRPC error answer carries ``{"error": "<Name>", "message": "..."}``. The
name decides the error class; the HTTP status decides where the name is
unknown. ``RateLimit-*`` headers (reset in epoch seconds) give a rate-limited
answer its ``reset_at``.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from omnichannel.errors import (
    AuthenticationError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TokenExpired,
    TransientError,
)
from omnichannel.http import parse_bluesky_headers

from ._wire import XrpcError

__all__ = ["DUPLICATE_RECORD_ERRORS", "is_expired_token", "map_error", "xrpc_error"]

NETWORK = "bluesky"

_AUTH_ERRORS = frozenset({
    "AuthenticationRequired", "InvalidToken", "AuthMissing", "BadJwt", "BadJwtSignature",
    "JwtExpired", "AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired",
    "InvalidPassword", "AccountSuspended",
})
_NOT_FOUND_ERRORS = frozenset({
    "RecordNotFound", "NotFound", "ConvoNotFound", "MessageNotFound", "ActorNotFound",
    "RepoNotFound",
})
DUPLICATE_RECORD_ERRORS = frozenset({"RecordAlreadyExists", "RecordExists", "DuplicateRecord"})
"""Names a PDS may give a ``createRecord`` whose record key is taken.

The reference PDS answers ``500 InternalServerError`` instead (bluesky-social/atproto
issues #3718 and #4725); pull request #4728 adds a named error. The adapter
checks for the existing record after either answer.
"""
_MAX_MESSAGE = 200


def xrpc_error(response: httpx.Response) -> XrpcError:
    """The ``{"error", "message"}`` body of an answer, empty when it has none."""
    try:
        return XrpcError.model_validate_json(response.content)
    except ValidationError:
        return XrpcError()


def is_expired_token(response: httpx.Response) -> bool:
    """Whether an answer says the access token expired (``400 ExpiredToken``)."""
    return response.status_code == 400 and xrpc_error(response).error == "ExpiredToken"


def map_error(response: httpx.Response) -> OmnichannelError | None:
    """Turn an XRPC error answer into our error.

    Args:
        response: An answer with status 400 or more; its body has been read.

    Returns:
        The error; never ``None``, so every Bluesky answer keeps its XRPC name
        in ``code``.
    """
    status = response.status_code
    body = xrpc_error(response)
    name = body.error or None
    detail = body.message[:_MAX_MESSAGE]
    what = f"{name or f'HTTP {status}'}" + (f": {detail}" if detail else "")
    if status == 429 or name == "RateLimitExceeded":
        info = parse_bluesky_headers(response.headers)
        return RateLimited(network=NETWORK, reset_at=info.reset_at if info else None,
                           status=status, code=name)
    if name == "ExpiredToken":
        return TokenExpired(what, network=NETWORK)
    if status == 401 or name in _AUTH_ERRORS:
        return AuthenticationError(what, network=NETWORK)
    if status == 404 or name in _NOT_FOUND_ERRORS or detail.startswith(
        ("Could not locate record", "Could not find repo")
    ):
        return NotFound(what, network=NETWORK, status=status, code=name)
    if status >= 500 or status == 408:
        return TransientError(what, network=NETWORK, status=status, code=name)
    if status == 403:
        return AuthenticationError(what, network=NETWORK)
    return RequestRejected(what, network=NETWORK, status=status, code=name)
