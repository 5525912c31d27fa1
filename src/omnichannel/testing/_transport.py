"""Exposing a sandbox: an in-process httpx transport, an ASGI app, uvicorn on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread
import httpx

from ._router import SandboxRequest, SandboxResponse

__all__ = [
    "ASGIApp",
    "DropKind",
    "Outcome",
    "SandboxASGI",
    "SandboxTransport",
    "ThreadedServer",
    "answer_lifespan",
    "serve_async",
    "serve_in_thread",
]

DropKind = Literal["reset", "timeout", "lost_response"]


@dataclass(frozen=True)
class Outcome:
    """What the sandbox decided for one request: a response, or a dropped connection.

    Attributes:
        response: The answer (not sent when the connection is dropped first).
        drop: How the connection is dropped, if it is.
    """

    response: SandboxResponse
    drop: DropKind | None = None


class _Dispatcher(Protocol):
    async def dispatch(self, request: SandboxRequest) -> Outcome: ...


class _ChunkStream(httpx.AsyncByteStream):
    def __init__(self, factory: Callable[[], AsyncIterator[bytes]]) -> None:
        self._factory = factory

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._factory():
            yield chunk


class SandboxTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers from a sandbox in-process (no sockets).

    Dropped connections raise what httpx raises for them:
    ``httpx.RemoteProtocolError`` for a reset, ``httpx.ReadTimeout`` for a
    timeout or a lost response.
    """

    def __init__(self, sandbox: _Dispatcher) -> None:
        self.sandbox = sandbox

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from the sandbox."""
        body = await request.aread()
        outcome = await self.sandbox.dispatch(SandboxRequest(
            method=request.method, path=request.url.path,
            query=httpx.QueryParams(request.url.query.decode("ascii")),
            headers=httpx.Headers(request.headers), body=body,
        ))
        if outcome.drop == "reset":
            raise httpx.RemoteProtocolError("connection reset by peer", request=request)
        if outcome.drop is not None:
            raise httpx.ReadTimeout("timed out waiting for the response", request=request)
        answer = outcome.response
        headers = list(answer.headers.items())
        if answer.stream is not None:
            return httpx.Response(answer.status, headers=headers,
                                  stream=_ChunkStream(answer.stream), request=request)
        return httpx.Response(answer.status, headers=headers, content=answer.body, request=request)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ConnectionDropped(Exception):
    """Raised by the ASGI app after starting a response, so the server closes the connection."""


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Answer an ASGI ``lifespan`` scope: nothing to start or stop, so say so at once."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class SandboxASGI:
    """The sandbox as a plain ASGI 3 app (served by uvicorn, or mounted anywhere).

    A dropped connection is made by starting the response and then raising
    ``ConnectionDropped``: the server closes the socket mid-response and the
    client sees ``httpx.RemoteProtocolError``.
    """

    def __init__(self, sandbox: _Dispatcher) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the sandbox serves HTTP only, not {scope['type']!r}")
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw_headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        request = SandboxRequest(
            method=scope["method"], path=scope["path"],
            query=httpx.QueryParams(scope.get("query_string", b"").decode("latin-1")),
            headers=httpx.Headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
            ),
            body=b"".join(chunks),
        )
        outcome = await self.sandbox.dispatch(request)
        answer = outcome.response
        if outcome.drop is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"1024")]})
            raise ConnectionDropped(outcome.drop)
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
        ]
        if answer.stream is not None:
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            async for chunk in answer.stream():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if not any(k == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})


class ThreadedServer:
    """uvicorn serving an ASGI app on loopback in a background thread.

    A thread keeps the server independent of the caller's event loop (asyncio
    or trio). ``start()`` blocks until the socket is bound; ``url`` is then
    ``http://127.0.0.1:<port>``.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            import uvicorn
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "serving a sandbox needs uvicorn: pip install uvicorn"
            ) from exc
        config = uvicorn.Config(
            app, host=host, port=port, log_level="critical", access_log=False,
            # ws="auto": WebSockets for sandboxes that stream (Bluesky's Jetstream).
            lifespan="on", http="h11", loop="asyncio", ws="auto",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="sandbox-uvicorn", daemon=True
        )
        self.host = host
        self.url = ""

    def start(self, *, timeout: float = 10.0) -> str:
        """Start serving; return the base URL.

        Raises:
            RuntimeError: The server did not start within ``timeout`` seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        sockets = [s for server in self._server.servers for s in server.sockets]
        port = sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self.url

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, *, host: str, port: int) -> Iterator[str]:
    """Serve ``app`` on loopback for the duration of a ``with`` block."""
    server = ThreadedServer(app, host=host, port=port)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serve_async(app: ASGIApp, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on loopback for the duration of an ``async with`` block."""
    server = ThreadedServer(app, host=host, port=port)
    try:
        yield await anyio.to_thread.run_sync(server.start)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)
