"""Fault injection for sandboxes: latency, 5xx, 429, resets, timeouts, lost responses.

Faults are rules: *on requests matching this route, do that, N times or at
this rate*. Every random draw comes from one ``random.Random(seed)``, so the
same seed and the same sequence of requests give the same faults.

```python
sandbox.faults.add("POST /posts", "lost_response", times=1)   # the next create is lost
sandbox.faults.add("*", "status", rate=0.1, status=503)      # 10% of requests fail
sandbox.faults.latency("GET /mentions", 0.05)                 # every poll is 50 ms slower
```

Route patterns are ``"[METHOD ]/path"``: the method is optional (any method),
``{name}`` matches one path segment and ``*`` matches anything, so
``"/posts/{id}/like"``, ``"POST /posts"``, ``"/api/*"`` and ``"*"`` all work.

What the client sees for each kind:

| kind | in-process transport | over uvicorn on loopback |
|---|---|---|
| ``latency`` | the answer comes ``seconds`` later | same |
| ``status`` | the network's error body with that status (5xx) | same |
| ``rate_limit`` | the network's 429 body and headers | same |
| ``reset`` | ``httpx.RemoteProtocolError``; nothing applied | the connection closes mid-response |
| ``timeout`` | ``httpx.ReadTimeout``; nothing applied | the connection closes mid-response |
| ``lost_response`` | applied, then ``httpx.ReadTimeout`` | applied, then the connection closes |
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = [
    "Fault",
    "FaultDecision",
    "FaultHit",
    "FaultKind",
    "FaultRule",
    "Faults",
    "route_matcher",
]

FaultKind = Literal["latency", "status", "rate_limit", "reset", "timeout", "lost_response"]
"""The kinds of fault a sandbox can inject."""

_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
_TERMINAL: frozenset[str] = _KINDS - {"latency"}


def route_matcher(pattern: str) -> re.Pattern[str]:
    """Compile a ``"[METHOD ]/path"`` route pattern into a regex over ``"METHOD /path"``.

    ``{name}`` matches one path segment, ``*`` matches anything (slashes
    included); a pattern without a method matches every method.

    Examples:
        >>> bool(route_matcher("/posts/{id}/like").match("POST /posts/42/like"))
        True
    """
    text = pattern.strip()
    method, _, path = text.partition(" ")
    if not _ or not path:
        method, path = "*", text
    method_rx = r"[A-Z]+" if method == "*" else re.escape(method.upper())
    parts: list[str] = []
    for piece in re.split(r"(\{[^}/]+\}|\*)", path):
        if piece == "*":
            parts.append(".*")
        elif piece.startswith("{") and piece.endswith("}"):
            parts.append(r"[^/]+")
        else:
            parts.append(re.escape(piece))
    return re.compile(rf"{method_rx} {''.join(parts)}\Z")


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request.

    Attributes:
        kind: What goes wrong.
        status: The HTTP status for ``status`` faults (a 5xx).
        seconds: Added delay for ``latency``; the ``Retry-After`` for ``rate_limit``.
        retry_after: For ``status`` faults, a ``Retry-After`` header (seconds) to
            send with the error, ``None`` for none. ``0`` lets a client retry at
            once instead of backing off in real time.
    """

    kind: FaultKind
    status: int = 503
    seconds: float = 0.0
    retry_after: float | None = None


@dataclass
class FaultRule:
    """A standing instruction: apply ``fault`` to requests matching ``route``.

    Attributes:
        route: The route pattern, as given.
        fault: What to do.
        times: How many more times to fire (``None``: no limit).
        rate: Probability of firing per matching request (``None``: always).
        fired: How many times it fired so far.
    """

    route: str
    fault: Fault
    times: int | None = None
    rate: float | None = None
    fired: int = 0
    _rx: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rx = route_matcher(self.route)

    @property
    def active(self) -> bool:
        """Whether the rule can still fire."""
        return self.times is None or self.times > 0

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies to a request to ``method path``."""
        return self._rx.match(f"{method.upper()} {path}") is not None


@dataclass(frozen=True)
class FaultHit:
    """A fault that fired: the record that makes runs comparable.

    Attributes:
        seq: The sandbox-wide request number it fired on (from 1).
        method: The request's method.
        path: The request's path.
        kind: The fault kind.
        status: The status for ``status`` faults.
        seconds: The delay for ``latency``/``rate_limit``.
    """

    seq: int
    method: str
    path: str
    kind: FaultKind
    status: int
    seconds: float


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request: a total delay and at most one terminal fault.

    Attributes:
        latency: Seconds to wait before answering.
        fault: The terminal fault, if one fired.
    """

    latency: float = 0.0
    fault: Fault | None = None


class Faults:
    """The fault plan of one sandbox, reproducible from ``seed``.

    Args:
        seed: Seeds the random draws of rate-based rules.

    Attributes:
        rules: The rules, in the order they were added (first match wins
            among terminal faults; latencies add up).
        hits: Every fault that fired, in order.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.rules: list[FaultRule] = []
        self.hits: list[FaultHit] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible test faults, not crypto
        self._seq = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Faults seed={self.seed} rules={len(self.rules)} hits={len(self.hits)}>"

    # building -------------------------------------------------------------

    def add(
        self, route: str, kind: FaultKind, *, times: int | None = None,
        rate: float | None = None, status: int = 503, seconds: float = 0.0,
        retry_after: float | None = None,
    ) -> FaultRule:
        """Add a rule; return it (its ``fired`` count can be read later).

        Args:
            route: ``"[METHOD ]/path"`` pattern (see the module docs).
            kind: What goes wrong.
            times: Fire on the next ``times`` matching requests only.
            rate: Fire on each matching request with this probability.
                With neither ``times`` nor ``rate`` the rule fires every time;
                with both, it fires at ``rate`` until it has fired ``times``.
            status: The status of a ``status`` fault (500-599).
            seconds: Delay of a ``latency`` fault; ``Retry-After`` of a
                ``rate_limit`` fault (default 1 s).
            retry_after: ``Retry-After`` seconds sent with a ``status`` fault
                (``None``: no header).

        Raises:
            ValueError: An unknown kind, a rate outside [0, 1], a negative
                count or delay, or a ``status`` fault that is not a 5xx.
        """
        if kind not in _KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if times is not None and times < 0:
            raise ValueError("times must not be negative")
        if seconds < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("seconds must not be negative")
        if kind == "status" and not 500 <= status <= 599:
            raise ValueError("a status fault is a 5xx; use rate_limit for 429")
        if kind == "rate_limit" and seconds == 0.0:
            seconds = 1.0
        fault = Fault(kind, status=status, seconds=seconds,
                      retry_after=retry_after if kind == "status" else None)
        rule = FaultRule(route, fault, times, rate)
        with self._lock:
            self.rules.append(rule)
        return rule

    def latency(
        self, route: str, seconds: float, *, times: int | None = None, rate: float | None = None
    ) -> FaultRule:
        """Delay matching requests by ``seconds`` (real time)."""
        return self.add(route, "latency", times=times, rate=rate, seconds=seconds)

    def fail(
        self, route: str, status: int = 503, *, times: int | None = None,
        rate: float | None = None, retry_after: float | None = None,
    ) -> FaultRule:
        """Answer matching requests with a 5xx (nothing is applied).

        ``retry_after`` adds a ``Retry-After`` header (``0``: retry at once).
        """
        return self.add(route, "status", times=times, rate=rate, status=status,
                        retry_after=retry_after)

    def rate_limit(
        self, route: str, *, retry_after: float = 1.0, times: int | None = None,
        rate: float | None = None,
    ) -> FaultRule:
        """Answer matching requests with the network's 429 (nothing is applied)."""
        return self.add(route, "rate_limit", times=times, rate=rate, seconds=retry_after)

    def reset(
        self, route: str, *, times: int | None = None, rate: float | None = None
    ) -> FaultRule:
        """Drop the connection of matching requests before anything is applied."""
        return self.add(route, "reset", times=times, rate=rate)

    def timeout(
        self, route: str, *, times: int | None = None, rate: float | None = None
    ) -> FaultRule:
        """Time out matching requests before anything is applied."""
        return self.add(route, "timeout", times=times, rate=rate)

    def lose_response(
        self, route: str, *, times: int | None = None, rate: float | None = None
    ) -> FaultRule:
        """Apply matching requests, then lose the answer (the write happened)."""
        return self.add(route, "lost_response", times=times, rate=rate)

    def clear(self) -> None:
        """Remove every rule (the hit log and the random sequence are kept)."""
        with self._lock:
            self.rules.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random sequence from ``seed`` and forget past hits."""
        with self._lock:
            self.seed = seed
            self._rng.seed(seed)
            self.hits.clear()
            self._seq = 0

    # deciding -------------------------------------------------------------

    def decide(self, method: str, path: str) -> FaultDecision:
        """Draw the faults for one request, in order; record what fired.

        Called once per request by the sandbox. Every active rule that
        matches draws from the random sequence when it has a ``rate``, so the
        draws depend only on the seed and the sequence of requests.
        """
        with self._lock:
            self._seq += 1
            latency = 0.0
            terminal: Fault | None = None
            for rule in self.rules:
                if not rule.active or not rule.matches(method, path):
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                is_terminal = rule.fault.kind in _TERMINAL
                if is_terminal and terminal is not None:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                rule.fired += 1
                self.hits.append(FaultHit(
                    self._seq, method.upper(), path, rule.fault.kind,
                    rule.fault.status, rule.fault.seconds,
                ))
                if is_terminal:
                    terminal = rule.fault
                else:
                    latency += rule.fault.seconds
            return FaultDecision(latency=latency, fault=terminal)
