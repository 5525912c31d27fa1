"""Token health: an Instagram User token refreshed before it expires, and said out loud.

An Instagram Login token lives 60 days and can be refreshed (``GET
/refresh_access_token?grant_type=ig_refresh_token``) once it is a day old and
until it expires; an expired one cannot. So the adapter refreshes it ahead of
time and reports each step as a `TokenHealth`, to a callback given to the
adapter and as a log line, days before a dead token would stop the inbox.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from typing import Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr

__all__ = ["TokenHealth", "TokenHealthHook", "deliver"]

logger = logging.getLogger("omnichannel.meta")


class TokenHealth(BaseModel):
    """What happened to an account's access token.

    Attributes:
        network: ``"instagram"`` (or ``"facebook"``).
        account_id: Whose token it is.
        status: ``"refreshed"`` (a new token is in use: persist ``access_token``),
            ``"expiring"`` (within ``refresh_before`` of ``expires_at``, and not
            refreshed: a person must log in again before then), or
            ``"refresh_failed"`` (Meta refused or could not be reached; the
            old token is used until it expires, and the refresh is tried again).
        expires_at: When the token in use expires, when known.
        access_token: The new token (``"refreshed"`` only).
        error: Why the refresh failed: the error's type and message (never the token).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    network: str
    account_id: str
    status: Literal["refreshed", "expiring", "refresh_failed"]
    expires_at: AwareDatetime | None = None
    access_token: SecretStr | None = None
    error: str | None = None


TokenHealthHook = Callable[[TokenHealth], Awaitable[None] | None]
"""Called with each `TokenHealth` (plain or async); persist a refreshed token there."""


async def deliver(hook: TokenHealthHook | None, health: TokenHealth) -> None:
    """Log ``health`` and hand it to ``hook``; an error the hook raises is logged, not raised."""
    when = health.expires_at.isoformat() if health.expires_at is not None else "unknown"
    if health.status == "refreshed":
        logger.info("%s: access token of %s refreshed; it now expires %s", health.network,
                    health.account_id, when)
    else:
        logger.warning("%s: access token of %s %s (expires %s)%s", health.network,
                       health.account_id, health.status.replace("_", " "), when,
                       f": {health.error}" if health.error else "")
    if hook is None:
        return
    try:
        result = hook(health)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # a broken hook never stops the adapter
        # Not logger.exception: the hook's message or traceback may quote the token.
        logger.error("%s: the token health hook raised %s",  # noqa: TRY400
                     health.network, type(exc).__name__)


class SwappableBearer(httpx.Auth):
    """``Authorization: Bearer`` with a token that can be replaced (after a refresh)."""

    def __init__(self, token: SecretStr) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"SwappableBearer(token={self.token!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the current token (unless the request carries its own) and send."""
        if "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        yield request


def seconds_left(expires_at: datetime | None, now: datetime) -> float | None:
    """Seconds until ``expires_at`` (negative once past), or ``None`` when unknown."""
    return None if expires_at is None else (expires_at - now).total_seconds()
