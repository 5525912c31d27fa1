"""Webhook ingest on loopback: hub.asgi next to a bare ASGI endpoint, in the same run.

Each server runs in its own process (uvicorn, 127.0.0.1, a free port); the
client sends signed testnet webhook deliveries (one new event each) from
``--concurrency`` tasks and times each request from POST to the answer. For
``hub.asgi`` the answer comes after the signature check, parsing and the
store's commit (SQLite with ``synchronous=full``, and the memory store), so
the latency is "POST to persisted and acknowledged". The bare endpoint reads
the body and answers 200: the floor set by the server and the client.

    .venv/bin/python bench/bench_webhook_ingest.py --requests 2000 --concurrency 16

Prints requests/s, p50 and p99 per target and the ratio to the bare endpoint.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runtime_adapter import FakeNetwork, free_port  # noqa: E402

# --------------------------------------------------------------------------- servers


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI endpoint that reads the body and answers 200 ok."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def hub_app(store_kind: str, db: Path) -> Any:
    """hub.asgi over a testnet adapter (its API in process) and the chosen store."""
    from tests.runtime_adapter import RuntimeAdapter, RuntimeSettings

    from omnichannel.events import MessageReceived
    from omnichannel.hub import Context, Hub
    from omnichannel.store import MemoryStore, SQLiteStore

    fake = FakeNetwork()
    adapter = RuntimeAdapter(RuntimeSettings(poll_interval=3600), transport=fake.transport())
    store = SQLiteStore(db) if store_kind == "sqlite" else MemoryStore()
    hub = Hub(adapters=[adapter], store=store)

    @hub.on(MessageReceived)
    async def noop(event: MessageReceived, ctx: Context) -> None:
        return None

    return hub.asgi  # its lifespan enters and runs the hub


def serve(target: str, port: int, db: Path) -> None:
    """Serve one target in this process until terminated."""
    import uvicorn

    app = bare_app if target == "bare" else hub_app(target.removeprefix("hub-"), db)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="on")


# --------------------------------------------------------------------------- client


async def load(
    url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> list[float]:
    """Send every body, ``concurrency`` at a time; return the latencies in seconds."""
    latencies: list[float] = []
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                started = time.perf_counter()
                response = await client.post("/testnet", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text}")

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return latencies


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"{url} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(target: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--serve", target, "--port", str(port),
         "--db", str(tmp / f"{target}.db")],
        cwd=REPO,
    )
    try:
        wait_for(url)
        fake = FakeNetwork()
        warm = [_delivery(fake) for _ in range(min(200, args.requests))]
        anyio.run(load, url, warm, args.concurrency)
        bodies = [_delivery(fake) for _ in range(args.requests)]
        started = time.perf_counter()
        latencies = anyio.run(load, url, bodies, args.concurrency)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "mean": statistics.fmean(latencies) * 1000,
    }


def _delivery(fake: FakeNetwork) -> tuple[bytes, dict[str, str]]:
    body = fake.webhook_body([fake.message_item("where is my order? 📦 #late")])
    return body, fake.signed(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--targets", default="bare,hub-memory,hub-sqlite")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, Path(args.db))
        return
    print(f"webhook ingest on loopback: {args.requests} requests, "
          f"concurrency {args.concurrency}, one event per request")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            results[target] = measure(target, args, Path(tmp))
    base = results.get("bare")
    print(f"{'target':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
          f"{'req/s ratio':>12} {'p50 ratio':>10}")
    for target, r in results.items():
        ratio = f"{base['rps'] / r['rps']:.2f}x" if base else "-"
        p50_ratio = f"{r['p50'] / base['p50']:.2f}x" if base else "-"
        print(f"{target:<12} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
              f"{r['mean']:8.2f} {ratio:>12} {p50_ratio:>10}")
    if base:
        print("req/s ratio = bare req/s / target req/s; p50 ratio = target p50 / bare p50")


if __name__ == "__main__":
    main()
