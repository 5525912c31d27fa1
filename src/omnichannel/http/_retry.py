"""When a request is tried again, and how long the client waits first."""

from __future__ import annotations

import enum
import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omnichannel.errors import OmnichannelError

__all__ = ["RetryPolicy"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

#: Statuses that say the server did not process the request: safe to send again,
#: whatever the method. 429 is handled apart (it waits for the reset).
NOT_PROCESSED_STATUSES = frozenset({408, 503})
#: Server errors after which an idempotent request is tried again. For a request
#: that is not idempotent, 500, 502 and 504 mean the write may have landed.
RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})


class RetryPolicy(BaseModel):
    """How many times, and how patiently, the HTTP client tries a request.

    Backoff before attempt *n + 1* is ``wait_initial * 2 ** (n - 1)`` plus a random
    jitter in ``[0, wait_jitter]``, capped at ``wait_max``. A 429 waits exactly
    until its reset instead, when the network says when that is; a reset further
    away than ``max_rate_limit_wait`` raises ``RateLimited`` at once.

    Attributes:
        attempts: Tries in total, the first included (``1`` disables retrying).
        wait_initial: Backoff before the second try, in seconds.
        wait_max: Longest backoff, in seconds.
        wait_jitter: Largest random amount added to a backoff, in seconds.
        max_rate_limit_wait: Longest wait for a rate-limit reset, in seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    attempts: int = Field(default=4, ge=1)
    wait_initial: float = Field(default=0.2, ge=0)
    wait_max: float = Field(default=5.0, ge=0)
    wait_jitter: float = Field(default=0.5, ge=0)
    max_rate_limit_wait: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _check_waits(self) -> RetryPolicy:
        if self.wait_initial > self.wait_max:
            raise ValueError("wait_initial must not exceed wait_max")
        return self

    @classmethod
    def testing(cls, *, attempts: int = 2) -> RetryPolicy:
        """A policy for tests: few attempts and no backoff between them.

        Rate-limit waits are still honoured (they are exact, not backoff); give
        the client a fake ``sleep`` to keep them instant.
        """
        return cls(attempts=attempts, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        exponential = self.wait_initial * 2.0 ** max(0, attempt - 1)
        # Jitter spreads retries of many clients apart; it is not a secret.
        jitter = random.uniform(0, self.wait_jitter) if self.wait_jitter else 0.0  # noqa: S311
        return min(self.wait_max, exponential + jitter)


class Sent(enum.Enum):
    """How far a request that failed without a response got."""

    NO = "no"  # never left: connecting failed
    MAYBE = "maybe"  # may have reached the server
    CONFIG = "config"  # can never be sent as built


def sent_state(exc: httpx.RequestError) -> Sent:
    """Whether a request that raised ``exc`` may have reached the server."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Sent.NO
    if isinstance(exc, httpx.ProxyError):
        return Sent.NO
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Sent.CONFIG
    return Sent.MAYBE


def retry_after(headers: httpx.Headers, *, now: datetime) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta seconds or HTTP date)."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about local time
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def seconds_until(moment: datetime | None, *, now: datetime) -> float | None:
    """Seconds from ``now`` to ``moment``, or ``None`` when it is unknown or past."""
    if moment is None:
        return None
    seconds = (moment - now).total_seconds()
    return seconds if seconds > 0 else None


def moment_after(seconds: float, *, now: datetime) -> datetime:
    """``now`` plus ``seconds``."""
    return now + timedelta(seconds=seconds)


class RetryRequest(Exception):
    """Raised inside one attempt to ask the retry loop for another.

    Attributes:
        error: What to raise if no attempt is left.
        delay: Exact seconds to wait (a rate-limit reset), or ``None`` for backoff.
    """

    def __init__(self, error: OmnichannelError, *, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay
