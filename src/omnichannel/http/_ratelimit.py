"""Rate-limit headers of each network, parsed into one shape and kept in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt

__all__ = [
    "RateLimitInfo",
    "RateLimitParser",
    "RateLimitState",
    "parse_bluesky_headers",
    "parse_epoch_headers",
    "parse_mastodon_headers",
]


class RateLimitInfo(BaseModel):
    """What one response said about the budget left on its rate-limit bucket.

    Attributes:
        limit: Requests allowed in the window (Meta: ``100``, as usage is in percent).
        remaining: Requests left before the network answers 429 (Meta: percent left).
        reset_at: When the budget refills (timezone-aware), when the network says.
        policy_window: Length of the window, when the network says (Bluesky).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    limit: NonNegativeInt | None = None
    remaining: NonNegativeInt | None = None
    reset_at: AwareDatetime | None = None
    policy_window: timedelta | None = None

    @property
    def exhausted(self) -> bool:
        """Whether the budget is used up (``remaining == 0``)."""
        return self.remaining == 0


class RateLimitParser(Protocol):
    """Reads a network's rate-limit headers; returns ``None`` when there are none.

    A parser never raises on a malformed header: it ignores the value, since a bad
    rate-limit header must not fail a request that succeeded.
    """

    def __call__(
        self, headers: Mapping[str, str], /, *, now: datetime
    ) -> RateLimitInfo | None:
        """Parse ``headers``; ``now`` anchors relative values (Meta minutes)."""
        ...


class RateLimitState:
    """The last known budget of every ``(network, bucket)`` pair.

    A bucket is whatever the network counts requests against: an endpoint on X
    (``"POST /2/tweets"``), the whole account on Mastodon and Bluesky, the app or
    the Page on Meta. The HTTP client fills the state from each response and waits
    before a request whose bucket is exhausted, instead of running into a 429.
    It also counts the requests in flight on each bucket: while they could use
    up what is left of the budget, a new request waits for one of them to end
    (see `would_overrun`), so concurrent requests never overrun a known budget.
    One state may be shared by several clients (of one event loop).
    """

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], RateLimitInfo] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._ended: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"RateLimitState(buckets={len(self._buckets)})"

    def update(self, network: str, bucket: str, info: RateLimitInfo) -> None:
        """Record what a response said about ``bucket``, replacing what was known."""
        self._buckets[(network, bucket)] = info

    def get(self, network: str, bucket: str) -> RateLimitInfo | None:
        """The last recorded budget of ``bucket``, or ``None`` when nothing is known."""
        return self._buckets.get((network, bucket))

    def snapshot(self) -> dict[tuple[str, str], RateLimitInfo]:
        """A copy of every recorded bucket, keyed by ``(network, bucket)``."""
        return dict(self._buckets)

    def wait_time(self, network: str, bucket: str, *, now: datetime) -> float:
        """Seconds to wait before the next request on ``bucket``.

        It is the time until ``reset_at`` when the budget is exhausted and the
        reset is in the future, and ``0.0`` otherwise (including when nothing is
        known, or when the reset time is unknown).
        """
        info = self._buckets.get((network, bucket))
        if info is None or not info.exhausted or info.reset_at is None:
            return 0.0
        return max(0.0, (info.reset_at - now).total_seconds())

    def in_flight(self, network: str, bucket: str) -> int:
        """Requests on ``bucket`` sent and not yet answered."""
        return self._in_flight.get((network, bucket), 0)

    def would_overrun(self, network: str, bucket: str, *, now: datetime) -> bool:
        """Whether the requests in flight could use up the rest of the budget.

        True when the last known ``remaining`` (before a reset that is still
        ahead) is no more than the requests on ``bucket`` that have not been
        answered yet: one more request now could be the one answered 429.
        """
        count = self._in_flight.get((network, bucket), 0)
        if count == 0:
            return False
        info = self._buckets.get((network, bucket))
        if info is None or info.remaining is None:
            return False
        if info.reset_at is not None and info.reset_at <= now:
            return False
        return info.remaining <= count

    def started(self, network: str, bucket: str) -> None:
        """Count a request on ``bucket`` as sent."""
        key = (network, bucket)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def ended(self, network: str, bucket: str) -> None:
        """Count a request on ``bucket`` as answered (or failed), after its budget is recorded."""
        key = (network, bucket)
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        if self._ended is not None:
            self._ended.set()
            self._ended = None

    async def wait_for_answer(self) -> None:
        """Return once a request in flight (on any bucket) has ended."""
        if self._ended is None:
            self._ended = anyio.Event()
        await self._ended.wait()


def _pick(headers: Mapping[str, str], names: tuple[str, ...]) -> list[str | None]:
    """The values of ``names`` (lower case) in ``headers`` in one pass, any case.

    A header sent more than once reads as its values joined by ``", "``, as
    ``httpx.Headers.get`` returns it. Response headers are read as they are;
    any other mapping is copied into ``httpx.Headers`` first.
    """
    h = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
    encoding = h.encoding
    wanted = {name.encode(encoding): index for index, name in enumerate(names)}
    found: list[str | None] = [None] * len(names)
    for key, raw in h.raw:
        index = wanted.get(key.lower())
        if index is not None:
            value = raw.decode(encoding)
            before = found[index]
            found[index] = value if before is None else f"{before}, {value}"
    return found


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _epoch(value: str | None) -> datetime | None:
    seconds = _int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _policy_window(value: str | None) -> timedelta | None:
    """The window of the first quota of a ``RateLimit-Policy`` (``"3000;w=300"``)."""
    if not value:
        return None
    first = value.split(",", 1)[0]
    for part in first.split(";")[1:]:
        name, _, raw = part.strip().partition("=")
        if name.strip().lower() == "w":
            seconds = _int(raw)
            return timedelta(seconds=seconds) if seconds is not None else None
    return None


def _info(
    limit: int | None,
    remaining: int | None,
    reset_at: datetime | None,
    policy_window: timedelta | None = None,
) -> RateLimitInfo | None:
    if limit is None and remaining is None and reset_at is None:
        return None
    return RateLimitInfo(
        limit=limit, remaining=remaining, reset_at=reset_at, policy_window=policy_window
    )


def parse_epoch_headers(
    headers: Mapping[str, str],
    /,
    *,
    limit: str,
    remaining: str,
    reset: str,
    policy: str | None = None,
) -> RateLimitInfo | None:
    """Read the common shape: two counts and a reset in epoch seconds, under given names.

    The building block of Bluesky's parser and of an adapter's own (X uses
    ``x-rate-limit-*``). A value that is not a non-negative whole number is
    ignored, never an error.

    ```python
    from omnichannel.http import parse_epoch_headers

    info = parse_epoch_headers(
        {"X-Quota": "100", "X-Quota-Left": "7", "X-Quota-Reset": "1635976418"},
        limit="x-quota", remaining="x-quota-left", reset="x-quota-reset",
    )
    print(info.remaining if info else None, info.reset_at.year if info and info.reset_at else None)
    #> 7 2021
    ```

    Args:
        headers: Response headers (any case).
        limit: Name of the header with the requests allowed in the window.
        remaining: Name of the header with the requests left.
        reset: Name of the header with the refill time, in epoch seconds.
        policy: Name of an IETF ``RateLimit-Policy`` header (``"3000;w=300"``), if any.

    Returns:
        The budget, or ``None`` when the response carries none of the headers.
    """
    names: tuple[str, ...] = (limit.lower(), remaining.lower(), reset.lower())
    if policy is not None:
        names += (policy.lower(),)
    found = _pick(headers, names)
    return _info(
        _int(found[0]),
        _int(found[1]),
        _epoch(found[2]),
        _policy_window(found[3]) if policy is not None else None,
    )


def parse_bluesky_headers(
    headers: Mapping[str, str], /, *, now: datetime | None = None
) -> RateLimitInfo | None:
    """Read Bluesky's ``RateLimit-Limit/-Remaining/-Reset/-Policy``.

    The reset is in epoch seconds and the policy looks like ``"3000;w=300"``
    (3000 requests per 300-second window).

    Args:
        headers: Response headers (any case).
        now: Unused; accepted so every parser has the same signature.

    Returns:
        The budget, or ``None`` when the response carries none of the headers.
    """
    return parse_epoch_headers(
        headers, limit="ratelimit-limit", remaining="ratelimit-remaining",
        reset="ratelimit-reset", policy="ratelimit-policy",
    )


_MASTODON = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def parse_mastodon_headers(
    headers: Mapping[str, str], /, *, now: datetime | None = None
) -> RateLimitInfo | None:
    """Read Mastodon's ``X-RateLimit-Limit/-Remaining/-Reset``.

    The reset is an ISO-8601 timestamp such as ``2026-08-01T15:00:00.754511Z``.
    Mastodon reports the limit the account is closest to.

    Args:
        headers: Response headers (any case).
        now: Unused; accepted so every parser has the same signature.

    Returns:
        The budget, or ``None`` when the response carries none of the headers.
    """
    limit, remaining, raw = _pick(headers, _MASTODON)
    reset_at: datetime | None = None
    if raw:
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            reset_at = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _info(_int(limit), _int(remaining), reset_at)
