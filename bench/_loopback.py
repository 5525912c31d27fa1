"""A fake network for benches: a bare HTTP/1.1 server on loopback, in a child process.

The server runs in its own interpreter (so it does not share the measured
process's GIL) and answers with a function the bench gives: ``answer(method,
target, body)`` returns an `Answer` (status, JSON body, extra headers, a delay
standing for the network round trip, or a server-sent-events stream held open
until the client leaves). No HTTP framework: requests are read with
``asyncio`` streams, so the server costs as little CPU as it can.

A bench starts the child with `Child` (its own script with a ``--serve`` flag,
say); the child calls `serve`, which prints one JSON line (``info`` and the
server's ``url``) once it listens, serves until its standard input closes, and
then prints ``counts()`` as a second JSON line, which `Child.close` returns.

Also here: `recorded_mastodon`, what a Mastodon sandbox answers for our
account, the instance and a posted status, to be served again.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """What the server answers to one request."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    stream: bool = False
    """Answer with ``text/event-stream`` and hold the connection open (no body)."""


Answerer = Callable[[str, str, bytes], Answer]


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serve(
    answer: Answerer, info: Mapping[str, Any], counts: Callable[[], Mapping[str, Any]]
) -> None:
    """Serve ``answer`` on a free loopback port until standard input closes (child side)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                reply = answer(method, target, body)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.stream:
                    writer.write(_head(reply.status, {
                        "content-type": "text/event-stream", "transfer-encoding": "chunked",
                        **reply.headers,
                    }))
                    await writer.drain()
                    await reader.read()  # held open until the client leaves
                    return
                writer.write(_head(reply.status, {
                    "content-type": "application/json", "content-length": str(len(reply.body)),
                    **reply.headers,
                }) + reply.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({**info, "url": f"http://127.0.0.1:{port}"}), flush=True)
        closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(closed.set)),
            daemon=True,
        ).start()
        await closed.wait()
        server.close()
        print(json.dumps(dict(counts())), flush=True)

    asyncio.run(main())


class Child:
    """A server child process (``argv`` runs `serve`), fresh for one measured run."""

    def __init__(self, argv: list[str]) -> None:
        self._child = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._child.stdout is not None
        self.info: dict[str, Any] = json.loads(self._child.stdout.readline())
        self.url: str = self.info["url"]

    def close(self) -> dict[str, Any]:
        """Stop the child; return what it counted."""
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        self._child.stdin.close()
        counts: dict[str, Any] = json.loads(self._child.stdout.readline())
        self._child.wait(timeout=30)
        return counts


def recorded_mastodon() -> dict[str, Any]:
    """A Mastodon sandbox's answers for our account (``me``), the ``instance`` and a ``status``."""
    import anyio

    from omnichannel_mastodon.sandbox import MastodonSandbox

    sandbox = MastodonSandbox(seed=1)
    mention = sandbox.customer_mention("help with my order")

    async def fetch() -> dict[str, Any]:
        async with sandbox.client() as http:
            me = (await http.get("/api/v1/accounts/verify_credentials")).json()
            instance = (await http.get("/api/v2/instance")).json()
            status = (await http.post("/api/v1/statuses", data={
                "status": "@alice thanks", "in_reply_to_id": mention.id,
            })).json()
        return {"me": me, "instance": instance, "status": status}

    return anyio.run(fetch)
