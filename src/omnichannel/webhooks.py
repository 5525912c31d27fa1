"""The webhook receiver behind ``hub.asgi``: a plain ASGI application.

It needs no web framework: serve it alone with any ASGI server, or mount it
under a prefix in FastAPI or Starlette (``app.mount("/webhooks", hub.asgi)``).

Routes and answers:

| request | answer |
|---|---|
| ``GET /{network}``, a handshake (``hub.challenge``, X's CRC) | what ``verify`` returns |
| ``POST /{network}``, good signature, body parsed | ``200`` once events are stored |
| a signature that is missing | ``401`` |
| a signature (or handshake token) that is wrong, or ``verify`` failing | ``403`` |
| a body the adapter cannot parse | ``400`` + short reason; raw bytes dead-lettered |
| some items unusable (``parse`` gave a `Batch`) | ``200``; each such item dead-lettered |
| a body over ``max_body_bytes`` | ``413``, without reading it |
| a network with no adapter, or without webhooks | ``404`` |
| another method | ``405`` |
| the hub not entered (store closed) | ``503`` (networks retry) |

The body is read once, as raw bytes; the signature is checked over them, in
constant time, before anything parses them. Events are persisted before the
``200`` goes out, so an acknowledged event is never lost. Handlers do not run
inside the request: when the hub is running the new events are handed to its
dispatcher (which runs them in the hub's task group), otherwise they wait in the
store and are handled when ``hub.run()`` starts.

The app also speaks the ASGI ``lifespan`` protocol: served alone
(``uvicorn app:hub.asgi``) it enters the hub and runs it (listeners, outbox)
for the server's lifetime. When the hub is already entered by the caller it
leaves it alone.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime
from pathlib import PurePath
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl

import anyio
from pydantic import ValidationError

from .adapter import Adapter, Batch, Rejected, WebhookRequest, WebhookResponse
from .errors import CapabilityNotSupported, PayloadError, WebhookSignatureError
from .events import Event
from .store import DeadLetter

__all__ = ["WebhookApp", "WebhookTarget"]

logger = logging.getLogger("omnichannel.webhooks")

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]

_REASON_LIMIT = 200

_KEPT_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "user-agent", "date",
    # delivery ids: which delivery this was, to match it with the network's logs
    "x-request-id", "x-delivery-id", "x-webhook-id", "webhook-id", "webhook-timestamp",
})
"""Headers a dead letter keeps besides the adapter's declared signature headers.

An allowlist: whatever else a delivery carries (``Authorization``, ``X-Api-Key``,
a proxy's token, a cookie) is not stored.
"""


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class WebhookTarget(Protocol):
    """What the webhook app needs of the hub it serves; [`Hub`][omnichannel.hub.Hub] is one.

    The adapters verify and parse requests; requests are refused with ``503``
    until the target is open; events go through ``ingest`` and unusable bodies
    through ``add_dead_letter``.
    """

    @property
    def adapters(self) -> Mapping[str, Adapter]:
        """The adapters, by network id."""
        ...

    @property
    def is_open(self) -> bool:
        """Whether the store is open."""
        ...

    def clock(self) -> datetime:
        """Return the current aware time."""
        ...

    async def ingest(
        self,
        network: str,
        events: Sequence[Event],
        *,
        cursor: str | None = None,
        stream: str = "default",
        rejected: Sequence[Rejected] = (),
    ) -> list[Event]:
        """Persist a batch of events and dispatch the new ones."""
        ...

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an inbound body that could not be used."""
        ...

    async def __aenter__(self) -> Any:
        """Open the store and the adapters."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the adapters and the store."""
        ...

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run until cancelled (listeners, dispatch, the outbox worker)."""
        ...


class WebhookApp:
    """The ASGI app serving ``GET``/``POST /{network}`` for a hub's adapters.

    Get it as ``hub.asgi`` rather than building it.

    Args:
        hub: The hub whose adapters verify and parse, and whose store keeps
            events (anything with the [`WebhookTarget`][omnichannel.webhooks.WebhookTarget]
            interface).
        max_body_bytes: Largest body accepted; a larger one is answered ``413``.
    """

    def __init__(self, hub: WebhookTarget, *, max_body_bytes: int) -> None:
        self.hub = hub
        self.max_body_bytes = max_body_bytes

    def __repr__(self) -> str:
        return f"<WebhookApp networks={sorted(self.hub.adapters)}>"

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        """Serve one ASGI connection (``http`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            raise ValueError(f"the webhook app serves http, not {kind}")
        await self._http(scope, receive, send)

    # http ------------------------------------------------------------------

    async def _http(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        method = str(scope["method"]).upper()
        network = _network_of(scope)
        adapter = self.hub.adapters.get(network) if network else None
        if adapter is None:
            await _answer(send, 404, b"unknown network")
            return
        if method not in ("GET", "POST"):
            await _answer(send, 405, b"method not allowed", headers=[(b"allow", b"GET, POST")])
            return
        if not self.hub.is_open:
            await _answer(send, 503, b"not ready")
            return
        headers = _headers(scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, b"bad content-length")
                return
            if int(declared) > self.max_body_bytes:
                await _answer(send, 413, b"body too large")
                return
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            await _answer(send, 413, b"body too large")
            return
        except _Disconnected:
            return
        request = WebhookRequest(
            method=method,
            path=str(scope.get("path", "/")),
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                 keep_blank_values=True)),
            headers=headers,
            body=body,
        )
        try:
            handshake = await adapter.verify(request)
        except WebhookSignatureError as exc:
            missing = exc.missing or _unsigned(adapter, request)
            logger.warning("%s webhook refused: %s", network, exc)
            await _answer(send, 401 if missing else 403, b"bad signature")
            return
        except CapabilityNotSupported:
            await _answer(send, 404, b"no webhooks for this network")
            return
        except PayloadError as exc:
            await self._dead_letter(network, request, exc.reason)
            await _answer(send, 400, _short(exc.reason))
            return
        except Exception as exc:
            # Whatever else verify raises (an adapter bug on a strange header, a
            # missing secret), the request was not verified: refuse it. Only the
            # error's type and place are logged: its message may quote a header.
            missing = _unsigned(adapter, request)
            logger.error(  # noqa: TRY400 - no traceback: it would quote the message
                "%s webhook refused: the adapter's verify raised %s at %s",
                network, type(exc).__name__, _where(exc),
                extra={"network": network, "error_type": type(exc).__name__},
            )
            await _answer(send, 401 if missing else 403, b"bad signature")
            return
        if handshake is not None:
            await _respond(send, handshake)
            return
        if method != "POST":
            await _answer(send, 400, b"not a handshake")
            return
        try:
            parsed = adapter.parse(request)
        except PayloadError as exc:
            reason = f"{exc.path}: {exc.reason}" if exc.path else exc.reason
            logger.warning("%s webhook body refused: %s", network, reason)
            await self._dead_letter(network, request, reason)
            await _answer(send, 400, _short(reason))
            return
        except ValidationError as exc:
            reason = f"invalid payload ({exc.error_count()} errors)"
            await self._dead_letter(network, request, reason)
            await _answer(send, 400, _short(reason))
            return
        except Exception:
            logger.exception("the %s adapter failed to parse a webhook body", network)
            await self._dead_letter(network, request, "adapter error while parsing")
            await _answer(send, 500, b"internal error")
            return
        if isinstance(parsed, Batch):
            # Items the adapter could not use are dead-lettered one by one; the
            # others of the same delivery are stored and acknowledged.
            events, rejected = list(parsed.events), parsed.rejected
        else:
            events, rejected = list(parsed), ()
        try:
            await self.hub.ingest(
                network, events, cursor=None, stream="webhook", rejected=rejected
            )
        except Exception:
            logger.exception("%s webhook events could not be stored", network)
            await _answer(send, 500, b"internal error")
            return
        await _answer(send, 200, b"ok")

    async def _read_body(self, receive: _Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _dead_letter(self, network: str, request: WebhookRequest, reason: str) -> None:
        adapter = self.hub.adapters.get(network)
        declared = adapter.signature_headers if adapter is not None else frozenset()
        letter = DeadLetter(
            at=self.hub.clock(), network=network, reason=reason, body=request.body,
            headers=_kept_headers(request.headers, declared),
        )
        try:
            await self.hub.add_dead_letter(letter)
        except Exception:
            logger.exception("could not keep a dead letter from %s", network)

    # lifespan ----------------------------------------------------------------

    async def _lifespan(self, receive: _Receive, send: _Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":  # pragma: no cover - protocol order
            return
        if self.hub.is_open:
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        started = False
        try:
            async with self.hub, anyio.create_task_group() as tg:
                await tg.start(self._run_hub)
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
                tg.cancel_scope.cancel()
        except Exception as exc:
            logger.exception("the hub failed to %s", "stop" if started else "start")
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": type(exc).__name__})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _run_hub(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self.hub.run(task_status=task_status)


def _network_of(scope: _Scope) -> str:
    """The ``{network}`` segment, relative to where the app is mounted."""
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):]
    parts = [part for part in path.split("/") if part]
    return parts[0] if len(parts) == 1 else ""


def _kept_headers(headers: Mapping[str, str], signature_headers: Iterable[str]) -> dict[str, str]:
    """The headers a dead letter keeps: the allowlist and the declared signature headers."""
    kept = _KEPT_HEADERS | {name.lower() for name in signature_headers}
    return {name: value for name, value in headers.items() if name.lower() in kept}


def _unsigned(adapter: Adapter, request: WebhookRequest) -> bool:
    """Whether a delivery carries none of the signature headers its adapter declares."""
    declared = adapter.signature_headers
    return (
        request.method == "POST"
        and bool(declared)
        and not any(request.header(name) for name in declared)
    )


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised (``module.py:line in function``), never its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    last = frames[-1]
    return f"{PurePath(last.filename).name}:{last.lineno} in {last.name}"


def _headers(scope: _Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _short(reason: str) -> bytes:
    text = " ".join(reason.split())
    if len(text) > _REASON_LIMIT:
        text = text[: _REASON_LIMIT - 3] + "..."
    return text.encode("utf-8")


async def _answer(
    send: _Send, status: int, body: bytes, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            *(headers or []),
        ],
    })
    await send({"type": "http.response.body", "body": body})


async def _respond(send: _Send, response: WebhookResponse) -> None:
    await send({
        "type": "http.response.start",
        "status": response.status,
        "headers": [
            (b"content-type", response.content_type.encode("latin-1")),
            (b"content-length", str(len(response.body)).encode("ascii")),
        ],
    })
    await send({"type": "http.response.body", "body": response.body})
