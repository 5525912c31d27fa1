"""The HTTP client adapters use: retries, rate-limit waits, error mapping and logging.

Long because: one request's life (auth, retries, rate-limit waits, error mapping,
redacted logging) is one loop that reads best in one place.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias
from urllib.parse import quote, urlsplit

import anyio
import httpx

from omnichannel._version import __version__
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    ConfigurationError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from omnichannel.instrumentation import _reporting

from ._ratelimit import RateLimitInfo, RateLimitParser, RateLimitState
from ._redact import install_log_redaction, redact_url
from ._retry import (
    IDEMPOTENT_METHODS,
    NOT_PROCESSED_STATUSES,
    RETRYABLE_SERVER_STATUSES,
    RetryPolicy,
    RetryRequest,
    Sent,
    moment_after,
    retry_after,
    seconds_until,
    sent_state,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; tenacity loads with the first request
    from tenacity import RetryCallState

__all__ = ["ApiClient", "ErrorMapper", "Reconnects", "open_client"]

logger = logging.getLogger("omnichannel.http")

ErrorMapper: TypeAlias = Callable[[httpx.Response], OmnichannelError | None]
"""Turns an error response (status >= 400) into our error, or ``None`` for the default.

The response body has been read; it may not be JSON (a gateway's HTML page). The
error message must not quote a token, a query string or a request body. A mapper
that raises is ignored (with a warning) and the default mapping applies.
"""

Clock: TypeAlias = Callable[[], datetime]
Sleep: TypeAlias = Callable[[float], Awaitable[None]]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


_URLS_KEPT = 256
"""Joined URLs of paths without parameters a client remembers."""

_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
"""Keep every connection the outbox's concurrent sends open (httpx keeps 20)."""


_USER_AGENT = f"omnichannel/{__version__}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Call:
    """One ``request()`` call, shared by its attempts."""

    method: str
    url: str
    endpoint: str
    bucket: str
    idempotent: bool
    authenticated: bool
    params: Any
    json: Any
    data: Mapping[str, Any] | None
    content: bytes | None
    files: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    attempt: int = 0
    fixed: bool = False  # the path has no parameters: its joined URL is worth keeping

    @property
    def label(self) -> str:
        return f"{self.method} {self.endpoint}"


@lru_cache(maxsize=256)
def _template(template: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A path template's endpoint (to log), its literal pieces and its placeholders."""
    pieces = _PLACEHOLDER.split(template)  # literal, name, literal, ..., literal
    return urlsplit(template).path or "/", tuple(pieces[0::2]), tuple(pieces[1::2])


def _expand(template: str, path_params: Mapping[str, str | int] | None) -> tuple[str, str]:
    """The URL with path parameters filled in, and the endpoint template to log."""
    endpoint, literals, names = _template(template)
    given = path_params or {}
    if not names and not given:
        return template, endpoint
    url = [literals[0]]
    for name, literal in zip(names, literals[1:], strict=True):
        if name not in given:
            raise ConfigurationError(f"path parameter {name!r} is missing for {endpoint}")
        url += (quote(str(given[name]), safe=""), literal)
    unused = sorted(set(given) - set(names))
    if unused:
        raise ConfigurationError(f"path parameters {unused} are not in {endpoint}")
    return "".join(url), endpoint


def _default_error(
    call: _Call, response: httpx.Response, *, network: str
) -> OmnichannelError:
    status = response.status_code
    what = f"{call.label} answered HTTP {status}"
    if status in (401, 403):
        return AuthenticationError(what, network=network)
    if status == 404:
        return NotFound(what, network=network, status=status)
    if status == 429:
        return RateLimited(network=network, status=status)
    if status >= 500 or status == 408:
        return TransientError(what, network=network, status=status)
    return RequestRejected(what, network=network, status=status)


class ApiClient:
    """One network's HTTP client: the only way adapters reach their network.

    Get one from `open_client`. `request` retries what is safe to retry, waits
    for rate limits instead of running into them, raises our errors for error
    answers and logs every exchange without headers, tokens or query strings.
    Adapters never retry or sleep themselves.

    Attributes:
        network: The network this client talks to (in logs and errors).
        rate_limits: The rate-limit state this client fills and obeys.
        retry: The retry policy in force.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        network: str,
        rate_limit_parser: RateLimitParser | None = None,
        error_mapper: ErrorMapper | None = None,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimitState | None = None,
        default_bucket: str | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._http = http
        self.network = network
        self._parser = rate_limit_parser
        self._mapper = error_mapper
        self.retry = retry if retry is not None else RetryPolicy()
        self.rate_limits = rate_limits if rate_limits is not None else RateLimitState()
        self._default_bucket = default_bucket
        self._clock: Clock = clock or _utcnow
        self._sleep: Sleep = sleep or anyio.sleep
        self._instrumentation = _reporting()  # the hub's, when it opens the adapter
        self._urls: dict[str, httpx.URL] = {}
        self._urls_base = http.base_url

    def __repr__(self) -> str:
        return f"ApiClient(network={self.network!r}, base_url={redact_url(self._http.base_url)!r})"

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient``, for streams and WebSockets.

        Requests sent through it directly get no retries, rate-limit waits,
        error mapping or logging.
        """
        return self._http

    async def request(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        bucket: str | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send a request, retrying and waiting as the rules allow; return a success.

        ``path`` is a template relative to the base URL (or an absolute URL):
        ``"/2/users/{id}/mentions"`` with ``path_params={"id": "783214"}``. The
        values are percent-encoded, and logs show the template, never the values.

        Retries: a request that never left (connection refused, connect timeout)
        is sent again whatever its method. A 429, or an answer the error mapper
        turns into ``RateLimited``, waits for the reset (``Retry-After`` or the
        rate-limit headers) and is sent again, since the network did not process
        it. 408 and 503 are retried for every method; 500, 502 and 504, and
        failures after sending (read timeout, dropped connection), only for
        idempotent requests. A request that is not idempotent and may have
        landed raises `AmbiguousDelivery` at once, for the outbox to reconcile.

        Args:
            method: HTTP method.
            path: Path template or absolute URL, without a query string.
            path_params: Values for the ``{name}`` placeholders in ``path``.
            params: Query parameters.
            json: JSON body.
            data: Form body.
            content: Raw body.
            files: Multipart files.
            headers: Extra headers for this request. An ``Authorization``
                header here is sent as it is.
            idempotent: Whether sending twice is harmless. Defaults to true for
                GET, HEAD, OPTIONS, PUT and DELETE, and for any request carrying
                an ``Idempotency-Key`` header; false otherwise (POST, PATCH).
            bucket: Rate-limit bucket. Defaults to the client's default bucket,
                else ``"<METHOD> <path template>"``.
            authenticated: ``False`` sends the request without the client's auth
                (logging in, refreshing a session).

        Returns:
            The response, with a status below 400; its body has been read.

        Raises:
            AmbiguousDelivery: A request that is not idempotent may have landed.
            RateLimited: The reset is further than the policy waits, or the
                attempts ran out while rate limited.
            TransientError: Retryable failures outlasted the attempts.
            AuthenticationError: 401/403, or a token refresh failed.
            NotFound: 404.
            RequestRejected: Another 4xx.
            ConfigurationError: A path parameter is missing or unknown, or the
                URL cannot be sent.
            OmnichannelError: Whatever the adapter's error mapper returns.
        """
        verb = method.upper()
        url, endpoint = _expand(path, path_params)
        if idempotent is None:
            idempotent = verb in IDEMPOTENT_METHODS or (
                headers is not None and "idempotency-key" in httpx.Headers(headers)
            )
        call = _Call(
            method=verb,
            url=url,
            endpoint=endpoint,
            bucket=bucket or self._default_bucket or f"{verb} {endpoint}",
            idempotent=idempotent,
            authenticated=authenticated,
            params=params,
            json=json,
            data=data,
            content=content,
            files=files,
            headers=headers,
            fixed=url == path,
        )
        try:
            return await self._attempt(call)
        except RetryRequest as failure:
            first = failure
        return await self._retry(call, first)

    async def _retry(self, call: _Call, first: RetryRequest) -> httpx.Response:
        """Go on after a first attempt that asked for another, as the policy allows.

        Most requests succeed at once and never get here: the retry loop is
        built only now, and its first attempt hands it the failure the first
        attempt had, so waits and attempt numbers are those of one loop.
        """
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

        replay: RetryRequest | None = first

        async def attempt(call: _Call) -> httpx.Response:
            nonlocal replay
            if replay is not None:
                failure, replay = replay, None
                raise failure
            return await self._attempt(call)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryRequest),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(attempt, call)
        except RetryRequest as exhausted:
            raise exhausted.error from None
        return response

    @asynccontextmanager
    async def open_stream(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, str | int] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
        bucket: str | None = None,
        authenticated: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """Open a long-lived response (server-sent events, a feed) and close it on leaving.

        The request carries the client's headers and auth (unless
        ``authenticated=False``), is logged like `request`'s, waits for an
        exhausted rate-limit bucket, and an error
        answer raises our error through the adapter's error mapper. It is not
        retried: pace reconnections with `reconnects`. A connection that drops
        while the body is read (a read timeout, a reset) raises
        `TransientError` out of the block.

        ```python
        async with api.open_stream("GET", "/api/v1/streaming/user") as response:
            async for line in response.aiter_lines():
                ...
        ```

        Args:
            method: HTTP method.
            path: Path template or absolute URL (a separate streaming host).
            path_params: Values for the ``{name}`` placeholders in ``path``.
            params: Query parameters.
            headers: Extra headers (``Accept: text/event-stream``).
            read_timeout: Seconds without a byte before the connection counts
                as dropped (default: the client's timeout).
            bucket: Rate-limit bucket (default: as for `request`).
            authenticated: ``False`` opens the stream without the client's auth
                (a public feed on another host, which must never see our token).

        Yields:
            The response, status below 400, its body not read yet.

        Raises:
            TransientError: The network could not be reached, or the
                connection dropped while the body was read.
            RateLimited: The bucket is exhausted for longer than the policy
                waits, or the network answered 429.
            AuthenticationError: 401/403.
            NotFound: 404.
            RequestRejected: Another 4xx.
            ConfigurationError: A path parameter is missing or unknown, or the
                URL cannot be sent.
            OmnichannelError: Whatever the adapter's error mapper returns.
        """
        verb = method.upper()
        url, endpoint = _expand(path, path_params)
        call = _Call(
            method=verb, url=url, endpoint=endpoint,
            bucket=bucket or self._default_bucket or f"{verb} {endpoint}",
            idempotent=True, authenticated=authenticated, params=params, json=None, data=None,
            content=None, files=None, headers=headers, attempt=1,
        )
        await self._wait_for_budget(call)
        request = self._http.build_request(verb, url, params=params, headers=headers)
        if read_timeout is not None:
            base = self._http.timeout
            request.extensions["timeout"] = httpx.Timeout(
                connect=base.connect, read=read_timeout, write=base.write, pool=base.pool
            ).as_dict()
        auth = httpx.USE_CLIENT_DEFAULT if authenticated else None
        started = time.perf_counter()
        try:
            response = await self._http.send(request, stream=True, auth=auth)
        except httpx.RequestError as exc:
            failure = self._stream_failure(call, exc, opening=True)
            self._log(call, started=started, status=None, error=type(exc).__name__,
                      outcome="failed")
            raise failure from None
        try:
            self._observe(call, response)
            if response.status_code >= 400:
                await response.aread()
                error = self._error(call, response, self._map(response))
                self._log(call, started=started, status=response.status_code,
                          outcome=self._outcome(call, error))
                raise error
            self._log(call, started=started, status=response.status_code, outcome="ok")
            try:
                yield response
            except httpx.TransportError as exc:
                raise self._stream_failure(call, exc, opening=False) from None
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    def _stream_failure(
        self, call: _Call, exc: httpx.TransportError | httpx.RequestError, *, opening: bool
    ) -> OmnichannelError:
        name = type(exc).__name__
        if opening and sent_state(exc) is Sent.CONFIG:
            return ConfigurationError(f"{call.label} cannot be sent ({name})", network=self.network)
        what = "could not be opened" if opening else "dropped"
        return TransientError(f"the stream {call.label} {what} ({name})", network=self.network)

    def reconnects(self, *, limit: int, what: str = "the stream") -> Reconnects:
        """Pace the reconnections of a long-lived stream with this client's retry policy.

        Args:
            limit: Drops in a row tolerated; the next one raises `TransientError`.
            what: How log lines and the final error name the stream.

        Returns:
            A fresh `Reconnects` (no drop counted yet).
        """
        return Reconnects(self, limit=limit, what=what)

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, RetryRequest) and failure.delay is not None:
            return failure.delay
        return self.retry.backoff(state.attempt_number)

    async def _attempt(self, call: _Call) -> httpx.Response:
        call.attempt += 1
        await self._wait_for_budget(call)
        request = self._http.build_request(
            call.method,
            self._url(call.url) if call.fixed and not self._http.params else call.url,
            params=call.params,
            json=call.json,
            data=call.data,
            content=call.content,
            files=call.files,
            headers=call.headers,
        )
        auth = httpx.USE_CLIENT_DEFAULT if call.authenticated else None
        started = time.perf_counter()
        self.rate_limits.started(self.network, call.bucket)
        try:
            try:
                response = await self._http.send(request, auth=auth)
            except httpx.RequestError as exc:
                failure = self._transport_failure(call, exc)
                self._log(call, started=started, status=None, error=type(exc).__name__,
                          outcome=self._outcome(call, failure))
                raise failure from None
            info, now = self._observe(call, response)
        finally:
            self.rate_limits.ended(self.network, call.bucket)
        if response.status_code < 400:
            self._log(call, started=started, status=response.status_code, outcome="ok")
            return response
        try:
            self._fail(call, response, info, now)
        except Exception as failure:
            self._log(call, started=started, status=response.status_code,
                      outcome=self._outcome(call, failure))
            raise

    def _url(self, url: str) -> httpx.URL:
        """``url`` joined to the base URL, as httpx joins it, remembered for next time.

        Joining parses the URL again, and most requests go to a few paths
        without parameters (paths with parameters are not kept: each id
        would be a new entry).
        """
        if self._http.base_url is not self._urls_base:  # someone changed it
            self._urls.clear()
            self._urls_base = self._http.base_url
        found = self._urls.get(url)
        if found is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            found = self._urls[url] = self._http.build_request("GET", url).url
        return found

    def _observe(
        self, call: _Call, response: httpx.Response
    ) -> tuple[RateLimitInfo | None, datetime]:
        """Record what the response says of the call's rate-limit bucket."""
        now = self._clock()
        info = self._parse(response, now)
        if info is not None:
            self.rate_limits.update(self.network, call.bucket, info)
        return info, now

    def _error(
        self, call: _Call, response: httpx.Response, mapped: OmnichannelError | None
    ) -> OmnichannelError:
        """The adapter's error for an error answer, else the default one."""
        if mapped is not None:
            return mapped
        return _default_error(call, response, network=self.network)

    def _parse(self, response: httpx.Response, now: datetime) -> RateLimitInfo | None:
        if self._parser is None:
            return None
        try:
            return self._parser(response.headers, now=now)
        except Exception as exc:  # a broken parser must not turn a success into a failure
            self._hook_failed("rate-limit parser", exc)
            return None

    def _map(self, response: httpx.Response) -> OmnichannelError | None:
        if self._mapper is None:
            return None
        try:
            return self._mapper(response)
        except Exception as exc:  # an HTML 502 page must not hide that a write may have landed
            self._hook_failed("error mapper", exc)
            return None

    def _hook_failed(self, hook: str, exc: Exception) -> None:
        logger.warning(
            "%s %s raised %s; ignored", self.network, hook, type(exc).__name__,
            extra={"network": self.network, "error": type(exc).__name__},
        )

    async def _wait_for_budget(self, call: _Call) -> None:
        # Concurrent requests: while those in flight could use up what is left,
        # wait for their answers (and the budget they report) before sending.
        while self.rate_limits.would_overrun(self.network, call.bucket, now=self._clock()):
            await self.rate_limits.wait_for_answer()
        now = self._clock()
        delay = self.rate_limits.wait_time(self.network, call.bucket, now=now)
        if delay <= 0:
            return
        if delay > self.retry.max_rate_limit_wait:
            raise RateLimited(network=self.network, reset_at=moment_after(delay, now=now),
                              status=None)
        logger.info(
            "%s %s waits %.1f s for its rate limit to reset", self.network, call.label, delay,
            extra={"network": self.network, "method": call.method, "endpoint": call.endpoint,
                   "wait_s": round(delay, 3)},
        )
        await self._sleep(delay)

    def _transport_failure(self, call: _Call, exc: httpx.RequestError) -> Exception:
        name = type(exc).__name__
        sent = sent_state(exc)
        if sent is Sent.CONFIG:
            return ConfigurationError(f"{call.label} cannot be sent ({name})", network=self.network)
        if sent is Sent.NO:
            return RetryRequest(TransientError(
                f"{call.label} could not reach the network ({name})", network=self.network))
        if call.idempotent:
            return RetryRequest(TransientError(
                f"{call.label} failed after it was sent ({name})", network=self.network))
        return AmbiguousDelivery(
            f"{call.label} failed after it was sent ({name}); it may have landed",
            network=self.network,
        )

    def _fail(
        self, call: _Call, response: httpx.Response, info: RateLimitInfo | None, now: datetime
    ) -> NoReturn:
        status = response.status_code
        mapped = self._map(response)
        if isinstance(mapped, RateLimited) or (mapped is None and status == 429):
            self._rate_limited(response, mapped, info, now)
        error = self._error(call, response, mapped)
        retryable = (
            status in RETRYABLE_SERVER_STATUSES
            or status in NOT_PROCESSED_STATUSES
            or isinstance(mapped, TransientError)  # the adapter says so
        )
        if isinstance(error, TransientError) and retryable:
            if call.idempotent or status in NOT_PROCESSED_STATUSES:
                delay = retry_after(response.headers, now=now)
                if delay is not None and delay > self.retry.max_rate_limit_wait:
                    raise error
                raise RetryRequest(error, delay=delay)
            if status in RETRYABLE_SERVER_STATUSES:
                raise AmbiguousDelivery(
                    f"{call.label} answered HTTP {status} after it was sent; it may have landed",
                    network=self.network, status=status,
                    code=error.code,
                )
        raise error

    def _rate_limited(
        self,
        response: httpx.Response,
        mapped: RateLimited | None,
        info: RateLimitInfo | None,
        now: datetime,
    ) -> NoReturn:
        delay = retry_after(response.headers, now=now)
        if delay is None and info is not None:
            delay = seconds_until(info.reset_at, now=now)
        if delay is None and mapped is not None:
            delay = seconds_until(mapped.reset_at, now=now)
        if mapped is not None and (mapped.reset_at is not None or delay is None):
            error = mapped
        else:
            error = RateLimited(
                network=self.network,
                reset_at=moment_after(delay, now=now) if delay is not None else None,
                status=response.status_code,
                code=mapped.code if mapped is not None else None,
            )
        if delay is not None and delay > self.retry.max_rate_limit_wait:
            raise error
        raise RetryRequest(error, delay=delay)

    def _outcome(self, call: _Call, failure: BaseException) -> str:
        if isinstance(failure, RetryRequest):
            if call.attempt < self.retry.attempts:
                return "retry"
            failure = failure.error
        if isinstance(failure, AmbiguousDelivery):
            return "ambiguous"
        if isinstance(failure, RateLimited):
            return "rate_limited"
        return "failed"

    def _log(
        self,
        call: _Call,
        *,
        started: float,
        status: int | None,
        outcome: str,
        error: str | None = None,
    ) -> None:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        level = logging.DEBUG if outcome == "ok" else logging.WARNING
        if logger.isEnabledFor(level):
            self._write_log(call, level, status=status, outcome=outcome, error=error,
                            elapsed_ms=elapsed_ms)
        if self._instrumentation is not None:
            self._instrumentation.http_attempt(
                self.network, method=call.method, endpoint=call.endpoint, status=status,
                attempt=call.attempt, elapsed=elapsed_ms / 1000, outcome=outcome, error=error,
            )

    def _write_log(
        self,
        call: _Call,
        level: int,
        *,
        status: int | None,
        outcome: str,
        error: str | None,
        elapsed_ms: float,
    ) -> None:
        logger.log(
            level,
            "%s %s -> %s in %.1f ms (attempt %d, %s)",
            self.network, call.label, status if status is not None else error,
            elapsed_ms, call.attempt, outcome,
            extra={
                "network": self.network,
                "method": call.method,
                "endpoint": call.endpoint,
                "status": status,
                "error": error,
                "elapsed_ms": elapsed_ms,
                "attempt": call.attempt,
                "outcome": outcome,
            },
        )


class Reconnects:
    """Paces the reconnections of one long-lived stream (server-sent events, a WebSocket).

    Get one from `ApiClient.reconnects`. Call `connected` once a connection is
    useful again (it resets the count of drops), and `wait` after it ended: it
    sleeps the retry policy's backoff with the client's sleep, longer after
    each drop in a row, and gives up with `TransientError` after ``limit`` drops
    in a row. Adapters loop over connections with it and never sleep themselves.

    ```python
    reconnects = api.reconnects(limit=5)
    while True:
        try:
            async with api.open_stream("GET", "/api/v1/streaming/user") as response:
                reconnects.connected()
                async for line in response.aiter_lines():
                    ...
        except TransientError as exc:
            await reconnects.wait(exc)  # it dropped: back off, or give up
        else:
            await reconnects.wait()  # the server ended it: reconnect soon
    ```

    Args:
        client: The client whose policy, sleep and network are used.
        limit: Drops in a row tolerated; the next one raises `TransientError`.
        what: How log lines and the final error name the stream.
    """

    def __init__(self, client: ApiClient, *, limit: int, what: str = "the stream") -> None:
        if limit < 0:
            raise ConfigurationError("limit must not be negative", network=client.network)
        self._client = client
        self.limit = limit
        self.what = what
        self._drops = 0

    def __repr__(self) -> str:
        return (
            f"Reconnects(network={self._client.network!r}, drops={self._drops}, "
            f"limit={self.limit})"
        )

    @property
    def drops(self) -> int:
        """Drops in a row since the last `connected`."""
        return self._drops

    def connected(self) -> None:
        """Note that a connection works again: the count of drops starts over."""
        self._drops = 0

    async def wait(self, error: Exception | None = None) -> None:
        """Wait before the next connection.

        Args:
            error: Why the connection ended, or ``None`` when the server closed
                it cleanly (a restart, an idle proxy): that waits the shortest
                backoff and counts no drop.

        Raises:
            TransientError: ``error`` is drop number ``limit + 1`` in a row.
        """
        client = self._client
        if error is None:
            delay = client.retry.backoff(1)
        else:
            self._drops += 1
            name = type(error).__name__
            if self._drops > self.limit:
                raise TransientError(
                    f"{self.what} dropped {self._drops} times in a row ({name})",
                    network=client.network,
                ) from error
            delay = client.retry.backoff(self._drops)
            logger.warning(
                "%s %s dropped (%s); reconnecting in %.1f s", client.network, self.what, name,
                delay,
                extra={"network": client.network, "attempt": self._drops, "error": name,
                       "wait_s": round(delay, 3)},
            )
        await client._sleep(delay)


@asynccontextmanager
async def open_client(
    *,
    network: str,
    base_url: str | httpx.URL,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rate_limit_parser: RateLimitParser | None = None,
    error_mapper: ErrorMapper | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - httpx's, per request
    user_agent: str | None = None,
    headers: Mapping[str, str] | None = None,
    rate_limits: RateLimitState | None = None,
    default_bucket: str | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> AsyncIterator[ApiClient]:
    """Open the HTTP client of one network; close it on leaving the block.

    Args:
        network: Network id, used in logs, errors and rate-limit keys.
        base_url: Base URL of the network's API.
        auth: Credentials as an ``httpx.Auth`` (`BearerAuth`, `RefreshingBearerAuth`,
            `OAuth1Auth`), or ``None``.
        transport: An ``httpx`` transport to use instead of the network (a
            sandbox, ``httpx.MockTransport``, an ASGI app).
        rate_limit_parser: Reads the network's rate-limit headers
            (`parse_mastodon_headers`, `parse_bluesky_headers`, or an adapter's own).
        error_mapper: Turns error responses into our errors; ``None`` answers
            fall back to the default mapping.
        retry: Retry policy (default: `RetryPolicy()`).
        timeout: Seconds, or an ``httpx.Timeout`` (default: 10 s, 5 s to connect).
        user_agent: ``User-Agent`` header (default: ``omnichannel/<version>``).
        headers: Headers sent with every request.
        rate_limits: A state to share with other clients (default: a new one).
        default_bucket: Rate-limit bucket of requests that name none, for
            networks whose limit covers every endpoint (Mastodon, Bluesky).
        clock: Returns the current aware time (for tests).
        sleep: Awaitable sleep in seconds (for tests; default ``anyio.sleep``).

    Yields:
        The client.
    """
    install_log_redaction()  # httpx logs full URLs: keep userinfo and query values out
    merged = {"User-Agent": user_agent or _USER_AGENT}
    merged.update(headers or {})
    async with httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        transport=transport,
        timeout=timeout,
        headers=merged,
        limits=_POOL_LIMITS,
    ) as http:
        yield ApiClient(
            http,
            network=network,
            rate_limit_parser=rate_limit_parser,
            error_mapper=error_mapper,
            retry=retry,
            rate_limits=rate_limits,
            default_bucket=default_bucket,
            clock=clock,
            sleep=sleep,
        )
