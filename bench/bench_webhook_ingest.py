"""Webhook ingest on loopback, driven by wrk: hub.asgi against a bare ASGI endpoint.

Every server runs in its own process (uvicorn, 127.0.0.1, a free port), all
started once: ``bare`` (an ASGI app that reads the body and answers 200: the
floor set by uvicorn), ``hub-sqlite`` (``hub.asgi`` over a testnet adapter and
a SQLiteStore with ``synchronous=full``: it answers 200 only after the
signature check, parsing and the commit that persists the event) and, with
``--targets``, ``hub-sqlite-normal`` (the same with ``synchronous=normal``: no
disk sync per commit) and ``hub-memory`` (a MemoryStore: no SQLite at all);
those two show how much of the hub's cost is the store's. A ``ceiling``
server (asyncio, no ASGI, a canned answer) shows what the load generator
itself can drive on this machine: when it is not well above ``bare``, the
generator is the bottleneck.

wrk (``apt-get install wrk``) sends signed deliveries, each a new event (a Lua
script walks a file of distinct signed bodies; no body is sent twice), at
``--connections`` (16 and 64) for ``--duration`` seconds per run. Runs are
interleaved (targets rotate each repeat), ``--repeats`` times; prints min and
median requests/s, median p99 latency, and each target over ``bare``.

    .venv/bin/python bench/bench_webhook_ingest.py --repeats 5 --duration 3

``--compare TREE`` also serves each ``hub-*`` target from another checkout
(its ``src`` and its ``tests/runtime_adapter.py``) as ``<target>@before``, in
the same interleaved runs:

    .venv/bin/python bench/bench_webhook_ingest.py --repeats 5 --duration 1 \
        --targets bare,hub-memory,hub-sqlite --compare ../main

Goal: hub-sqlite >= 0.5x bare at 16 and 64 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
if "--serve" in sys.argv and Path.cwd().resolve() != REPO:  # a --compare checkout's hub
    sys.path.insert(0, str(Path.cwd().resolve()))

from tests.runtime_adapter import SIGNATURE_HEADER, FakeNetwork, free_port, sign  # noqa: E402

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
    store = (SQLiteStore(db) if store_kind == "sqlite"
             else SQLiteStore(db, synchronous="normal") if store_kind == "sqlite-normal"
             else MemoryStore())
    hub = Hub(adapters=[adapter], store=store)

    @hub.on(MessageReceived)
    async def noop(event: MessageReceived, ctx: Context) -> None:
        return None

    return hub.asgi  # its lifespan enters and runs the hub



async def _ceiling(port: int) -> None:
    """A canned HTTP/1.1 answer to every request, no ASGI: the generator's ceiling."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if match:
                    await reader.readexactly(int(match.group(1)))
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def serve(target: str, port: int, db: Path) -> None:
    """Serve one target in this process until terminated."""
    target = target.removesuffix(BEFORE)
    if target == "ceiling":
        asyncio.run(_ceiling(port))
        return
    import uvicorn

    app = bare_app if target == "bare" else hub_app(target.removeprefix("hub-"), db)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="on", backlog=1024)


# --------------------------------------------------------------------------- load

_LUA = """
local sigs, bodies = {}, {}
local created = 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
end
function init(args)
  step = tonumber(args[3])
  local file = io.open(args[1], "r")
  for line in file:lines() do
    local sig, body = line:match("^(%S+) (.*)$")
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  file:close()
  counter = tonumber(args[2]) + id
end
function request()
  local i = counter % #bodies + 1
  counter = counter + step
  return wrk.format("POST", "PATH",
    {["Content-Type"] = "application/json", ["HEADER"] = sigs[i]}, bodies[i])
end
"""


def lua_script(path: str, signature_header: str) -> str:
    """The wrk script posting signed deliveries (``<signature> <body>`` lines) to ``path``."""
    return _LUA.replace("PATH", path).replace("HEADER", signature_header)


LUA = lua_script("/testnet", SIGNATURE_HEADER)


def write_bodies(path: Path, count: int) -> None:
    """``count`` distinct signed deliveries, one a line: ``<signature> <body>``."""
    fake = FakeNetwork()
    with path.open("w") as out:
        for _ in range(count):
            body = fake.webhook_body([fake.message_item("where is my order? 📦 #late")])
            out.write(f"{sign(body, fake.secret)} {body.decode()}\n")


BEFORE = "@before"
"""The suffix of a target served from the ``--compare`` checkout."""


def compare_env(tree: Path) -> dict[str, str]:
    """This environment with another checkout's packages first on ``PYTHONPATH``."""
    paths = [tree / "src", *sorted((tree / "adapters").glob("*/src"))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(path) for path in paths)}


def wrk(url: str, connections: int, duration: float, script: Path, bodies: Path,
        offset: int, threads: int) -> dict[str, float]:
    result = subprocess.run(  # noqa: S603 - wrk, fixed arguments
        [shutil.which("wrk") or "wrk", f"-t{threads}", f"-c{connections}",
         f"-d{duration:g}s", "--latency",
         "-s", str(script), url, "--", str(bodies), str(offset), str(threads)],
        check=True, capture_output=True, text=True,
    )
    out = result.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"{url}: failed requests\n{out}")
    return {"requests": requests, "rps": rps,
            "p99": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")}


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(f"{url} did not start")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--targets", default="ceiling,bare,hub-sqlite")
    parser.add_argument("--bodies", type=int, default=0,
                        help="distinct deliveries to write (default: enough for every run)")
    parser.add_argument("--compare", metavar="TREE", type=Path,
                        help="another checkout whose hub targets run too, as <target>@before")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, Path(args.db))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    targets = args.targets.split(",")
    if args.compare:
        args.compare = args.compare.resolve()
        if not (args.compare / "src" / "omnichannel").is_dir():
            raise SystemExit(f"{args.compare} is not a checkout of this project")
        targets += [target + BEFORE for target in targets if target.startswith("hub")]
    connections = [int(c) for c in args.connections.split(",")]
    runs = args.repeats * len(connections)
    count = args.bodies or int(runs * args.duration * 6000)  # above any hub rate seen here
    print(f"load average before: {load()} ({os.cpu_count()} cpus)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script, bodies = folder / "deliver.lua", folder / "bodies.txt"
        script.write_text(LUA)
        write_bodies(bodies, count)
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for target in targets:
                port = free_port()
                before = target.endswith(BEFORE)
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, __file__, "--serve", target, "--port", str(port),
                     "--db", str(folder / f"{target}.db")],
                    cwd=args.compare if before else REPO,
                    env=compare_env(args.compare) if before else None,
                )
                servers[target] = (proc, f"http://127.0.0.1:{port}")
            for _, url in servers.values():
                wait_for(url)
            offset = {target: 0 for target in targets}
            results: dict[tuple[str, int], list[dict[str, float]]] = {
                (t, c): [] for t in targets for c in connections
            }
            for target in targets:  # warm-up
                offset[target] += int(wrk(servers[target][1], 16, 1, script, bodies,
                                          offset[target], args.threads)["requests"]) + 64
            for repeat in range(args.repeats):
                shift = repeat % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    for conns in connections:
                        r = wrk(servers[target][1], conns, args.duration, script, bodies,
                                offset[target], args.threads)
                        offset[target] += int(r["requests"]) + conns
                        results[(target, conns)].append(r)
            for target in targets:
                if target.startswith("hub") and offset[target] > count:
                    print(f"warning: {target} got {offset[target]} requests for {count} "
                          "distinct bodies: some were repeats (pass a larger --bodies)")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    print(f"load average after:  {load()}")
    print(f"\nwrk -t{args.threads}, {args.duration:g} s per run, {args.repeats} repeats, "
          "one new event per request")
    print(f"{'target':<18} {'conns':>5} {'req/s min':>10} {'median':>8} {'p99 ms med':>11} "
          f"{'x bare (median)':>16}")
    for conns in connections:
        base = statistics.median(r["rps"] for r in results[("bare", conns)]) \
            if "bare" in targets else None
        for target in targets:
            rs = results[(target, conns)]
            med = statistics.median(r["rps"] for r in rs)
            ratio = f"{med / base:.2f}" if base else "-"
            print(f"{target:<18} {conns:>5} {min(r['rps'] for r in rs):10.0f} {med:8.0f} "
                  f"{statistics.median(r['p99'] for r in rs):11.1f} {ratio:>16}")


if __name__ == "__main__":
    main()
