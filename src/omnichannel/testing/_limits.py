"""Rate-limit windows and access tokens for sandboxes."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from .clock import VirtualClock

__all__ = ["RateLimitWindow", "RateLimits", "TokenInfo", "TokenState", "Tokens"]

TokenState = Literal["valid", "expired", "revoked", "invalid", "missing"]
"""How a presented token was judged."""


@dataclass(frozen=True)
class RateLimitWindow:
    """The state of one rate-limit bucket, as a network's headers report it.

    Attributes:
        bucket: The bucket's name (``"default"`` unless a route says otherwise).
        limit: Requests allowed per window.
        remaining: Requests left in this window.
        reset_at: When the window resets (wall-clock time, UTC).
        window: The window's length in seconds.
        checked_at: When this state was read (by the buckets' time source).
    """

    bucket: str
    limit: int
    remaining: int
    reset_at: datetime
    window: float
    checked_at: datetime | None = None

    @property
    def reset_epoch(self) -> int:
        """``reset_at`` as whole POSIX seconds, rounded up."""
        whole = int(self.reset_at.timestamp())
        return whole if whole == self.reset_at.timestamp() else whole + 1

    def retry_after(self, now: float | None = None) -> float:
        """Seconds from ``now`` until the reset, at least 0.

        ``now`` defaults to ``checked_at``, else the wall clock.
        """
        if now is None:
            now = self.checked_at.timestamp() if self.checked_at is not None else time.time()
        return max(0.0, self.reset_at.timestamp() - now)


@dataclass
class _Bucket:
    limit: int
    window: float
    remaining: int
    reset_at: float


class RateLimits:
    """Fixed-window rate limits per bucket, timed by the wall clock.

    Clients wait for a reset in real time, so windows use real time, not the
    sandbox's virtual clock. Keep windows short in tests (``exhaust(reset_in=0.5)``).

    Args:
        limit: Requests per window for buckets not configured otherwise.
        window: Window length in seconds.
        now: The time source (POSIX seconds).
    """

    def __init__(
        self, *, limit: int = 300, window: float = 300.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.default_limit = limit
        self.default_window = window
        self._now = now
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, name: str, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = _Bucket(self.default_limit, self.default_window, self.default_limit,
                             now + self.default_window)
            self._buckets[name] = bucket
        elif now >= bucket.reset_at:
            bucket.remaining = bucket.limit
            bucket.reset_at = now + bucket.window
        return bucket

    def _view(self, name: str, bucket: _Bucket) -> RateLimitWindow:
        return RateLimitWindow(
            name, bucket.limit, bucket.remaining,
            datetime.fromtimestamp(bucket.reset_at, UTC), bucket.window,
            datetime.fromtimestamp(self._now(), UTC),
        )

    def configure(self, bucket: str = "default", *, limit: int, window: float) -> None:
        """Set a bucket's limit and window, starting a fresh window now.

        Raises:
            ValueError: ``limit`` is negative or ``window`` not positive.
        """
        if limit < 0 or window <= 0:
            raise ValueError("limit must be >= 0 and window > 0")
        with self._lock:
            now = self._now()
            self._buckets[bucket] = _Bucket(limit, window, limit, now + window)

    def exhaust(self, bucket: str = "default", *, reset_in: float = 1.0) -> RateLimitWindow:
        """Use up a bucket: the next request is refused until ``reset_in`` seconds from now."""
        with self._lock:
            now = self._now()
            b = self._bucket(bucket, now)
            b.remaining = 0
            b.reset_at = now + reset_in
            return self._view(bucket, b)

    def take(self, bucket: str = "default") -> tuple[bool, RateLimitWindow]:
        """Spend one request from a bucket; return whether it was allowed, and the state after."""
        with self._lock:
            b = self._bucket(bucket, self._now())
            if b.remaining <= 0:
                return False, self._view(bucket, b)
            b.remaining -= 1
            return True, self._view(bucket, b)

    def peek(self, bucket: str = "default") -> RateLimitWindow:
        """Return a bucket's state without spending anything."""
        with self._lock:
            return self._view(bucket, self._bucket(bucket, self._now()))

    def reset(self) -> None:
        """Forget every bucket (all start full again)."""
        with self._lock:
            self._buckets.clear()


@dataclass
class TokenInfo:
    """An access token the sandbox issued.

    Attributes:
        token: The secret.
        account_id: Whose token it is.
        expires_at: When it expires (virtual time), if ever.
        revoked: Whether it was revoked.
        scopes: Scopes granted (informational; networks may check them).
        kind: ``"access"`` or ``"refresh"`` (networks with sessions use both).
        extra: Network-specific data.
    """

    token: str = field(repr=False)
    account_id: str
    expires_at: datetime | None = None
    revoked: bool = False
    scopes: tuple[str, ...] = ()
    kind: str = "access"
    extra: dict[str, object] = field(default_factory=dict)

    def state(self, now: datetime) -> Literal["valid", "expired", "revoked"]:
        """Return ``"valid"``, ``"expired"`` or ``"revoked"`` at ``now``."""
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "valid"


class Tokens:
    """The tokens a sandbox accepts; expiry is judged on the virtual clock."""

    def __init__(self, *, clock: VirtualClock) -> None:
        self.clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()

    def issue(
        self, account_id: str, *, token: str | None = None, expires_at: datetime | None = None,
        scopes: Iterable[str] = (), kind: str = "access",
    ) -> str:
        """Issue a token for an account; return the secret."""
        secret = token or secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[secret] = TokenInfo(
                secret, account_id, expires_at, False, tuple(scopes), kind
            )
        return secret

    def lookup(self, token: str) -> TokenInfo | None:
        """Return what the sandbox knows of a token, or ``None``."""
        with self._lock:
            return self._tokens.get(token)

    def check(
        self, token: str | None, *, kind: str = "access"
    ) -> tuple[TokenState, TokenInfo | None]:
        """Judge a presented token: ``("valid"|"expired"|"revoked"|"invalid"|"missing", info)``."""
        if not token:
            return "missing", None
        info = self.lookup(token)
        if info is None or info.kind != kind:
            return "invalid", None
        return info.state(self.clock.peek()), info

    def issued(self, account_id: str, *, kind: str = "access") -> int:
        """Count the tokens of ``kind`` ever issued to an account (refreshes included)."""
        with self._lock:
            return sum(1 for info in self._tokens.values()
                       if info.account_id == account_id and info.kind == kind)

    def expire(self, token: str) -> None:
        """Make a token expired from now on.

        Raises:
            KeyError: Unknown token.
        """
        with self._lock:
            self._tokens[token].expires_at = self.clock.peek()

    def revoke(self, token: str) -> None:
        """Revoke a token.

        Raises:
            KeyError: Unknown token.
        """
        with self._lock:
            self._tokens[token].revoked = True
