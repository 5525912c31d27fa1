"""Meta webhooks: parsing batched deliveries, and ingesting them over loopback.

Deliveries are built from the recorded Facebook webhook bodies in
``tests/vectors/facebook/`` (restfb's ``feed-comment-add-25`` and
``messaging-message-basic``): each delivery holds ``--batch`` items, half feed
comments (``changes``) and half Messenger messages (``messaging``), spread over
entries as Meta batches them, every item with its own ids. Two measurements:

``parse`` (in process): ``json.loads`` of a 100-item delivery (the baseline)
against ``FacebookAdapter.parse_payload`` of the same bytes into events.

``ingest`` (loopback, driven by wrk like ``bench_webhook_ingest.py``): a bare
ASGI endpoint (reads the body, answers 200) against ``hub.asgi`` over a
``FacebookAdapter`` and a SQLiteStore (``synchronous=full``), which answers 200
only after the ``X-Hub-Signature-256`` check, parsing and the commit of every
item; each request is a new signed delivery. Servers run in their own
processes; runs are interleaved, repeated, printed as min and median with the
load average before and after.

    .venv/bin/python bench/bench_meta.py parse --repeats 7
    .venv/bin/python bench/bench_meta.py ingest --repeats 5 --duration 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_webhook_ingest import bare_app, lua_script, wait_for, wrk  # noqa: E402
from bench_x_parse import interleaved  # noqa: E402

from omnichannel_meta import FacebookAdapter  # noqa: E402
from omnichannel_meta.sandbox import FacebookSandbox  # noqa: E402

VECTORS = REPO / "tests" / "vectors" / "facebook"
PER_ENTRY = 5


def _vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return data


def delivery(page_id: str, items: int, start: int) -> dict[str, Any]:
    """A ``page`` delivery of ``items`` items with ids from ``start``, ``PER_ENTRY`` an entry."""
    change = _vector("restfb__webhooks__feed-comment-add-25.json")["entry"][0]["changes"][0]
    message = _vector("restfb__webhooks__messaging-message-basic.json")["entry"][0]["messaging"][0]
    entries: list[dict[str, Any]] = []
    for n in range(start, start + items):
        if (n - start) % PER_ENTRY == 0:
            entries.append({"id": page_id, "time": 1457764198246 + n})
        entry = entries[-1]
        customer = str(987_654_321_000 + n % 40)
        if n % 2:
            item = copy.deepcopy(change)
            value = item["value"]
            value["comment_id"] = f"{page_id}_9{n:012d}"
            value["post_id"] = value["parent_id"] = f"{page_id}_901097836652708"
            value["sender_id"], value["from"] = customer, {"id": customer, "name": "Tester"}
            value["message"] = f"is the blue one back in stock? #{n}"
            entry.setdefault("changes", []).append(item)
        else:
            item = copy.deepcopy(message)
            item["sender"], item["recipient"] = {"id": customer}, {"id": page_id}
            item["message"]["mid"] = f"mid.{n:016d}:41d102a3e1ae206a38"
            item["message"]["text"] = f"hello, where is order {n}? 📦"
            entry.setdefault("messaging", []).append(item)
    return {"object": "page", "entry": entries}


def parse_bench(args: argparse.Namespace) -> None:
    sandbox = FacebookSandbox()
    page_id = sandbox.our_account.id
    body = sandbox.sign(delivery(page_id, 100, 1)).body
    events = FacebookAdapter.parse_payload(body, account=page_id)
    assert len(events) == 100, len(events)
    print(f"load average before: {os.getloadavg()}")
    print(f"delivery: 100 items (50 comments, 50 DMs) in {100 // PER_ENTRY} entries, "
          f"{len(body)} bytes; {args.repeats} interleaved repeats")
    times = interleaved({
        "json.loads": lambda: json.loads(body),
        "FacebookAdapter.parse_payload": lambda: FacebookAdapter.parse_payload(
            body, account=page_id),
    }, repeats=args.repeats, calls=args.calls)
    base = statistics.median(times["json.loads"])
    for name, seconds in times.items():
        low, mid = min(seconds), statistics.median(seconds)
        print(f"{name:<30} min {100 / low:10,.0f} items/s, median {100 / mid:10,.0f} items/s "
              f"({mid / base:.1f}x json.loads)")
    print(f"load average after: {os.getloadavg()}")


LUA = lua_script("/facebook", "X-Hub-Signature-256")


def hub_app(db: Path, secret: str) -> Any:
    """hub.asgi over a FacebookAdapter (its Graph API the in-process sandbox) and SQLite."""
    from omnichannel.events import MessageReceived
    from omnichannel.hub import Context, Hub
    from omnichannel.store import SQLiteStore

    sandbox = FacebookSandbox()
    settings = {**sandbox.adapter_settings(), "poll_interval": 3600, "app_secret": secret}
    adapter = FacebookAdapter(settings, transport=sandbox.transport())
    hub = Hub(adapters=[adapter], store=SQLiteStore(db))

    @hub.on(MessageReceived)
    async def noop(event: MessageReceived, ctx: Context) -> None:
        return None

    return hub.asgi


def serve(target: str, port: int, db: Path, secret: str) -> None:
    import uvicorn

    app = bare_app if target == "bare" else hub_app(db, secret)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="on", backlog=1024)


def ingest_bench(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    from tests.runtime_adapter import free_port

    targets = ["bare", "hub-meta"]
    runs = args.repeats * 2
    count = args.bodies or int(runs * args.duration * 1500)
    sandbox = FacebookSandbox()  # same seed as the server's: the same page id
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script, bodies = folder / "deliver.lua", folder / "bodies.txt"
        script.write_text(LUA)
        with bodies.open("w") as out:
            for n in range(count):
                signed = sandbox.sign(delivery(sandbox.our_account.id, args.batch,
                                               n * args.batch))
                out.write(f"{signed.headers['X-Hub-Signature-256']} {signed.body.decode()}\n")
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        results: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
        offset = dict.fromkeys(targets, 0)
        try:
            for target in targets:
                port = free_port()
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, __file__, "--serve", target, "--port", str(port),
                     "--db", str(folder / f"{target}.db")], cwd=REPO,
                    env={**os.environ, "BENCH_META_SECRET": sandbox.webhook_secret})
                servers[target] = (proc, f"http://127.0.0.1:{port}")
            for _, url in servers.values():
                wait_for(url)
            for target in targets:  # warm-up
                offset[target] += int(wrk(servers[target][1], 16, 1, script, bodies,
                                          offset[target], 2)["requests"]) + 64
            for repeat in range(args.repeats):
                for target in targets[repeat % 2:] + targets[:repeat % 2]:
                    r = wrk(servers[target][1], args.connections, args.duration, script,
                            bodies, offset[target], 2)
                    offset[target] += int(r["requests"]) + args.connections
                    results[target].append(r)
            if offset["hub-meta"] > count:
                print(f"warning: {offset['hub-meta']} requests for {count} distinct bodies")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    print(f"load average after:  {os.getloadavg()}")
    print(f"\nwrk -t2 -c{args.connections}, {args.duration:g} s per run, {args.repeats} "
          f"repeats; each request a new signed delivery of {args.batch} items")
    base = statistics.median(r["rps"] for r in results["bare"])
    for target in targets:
        rs = results[target]
        med = statistics.median(r["rps"] for r in rs)
        print(f"{target:<9} req/s min {min(r['rps'] for r in rs):7.0f} median {med:7.0f}; "
              f"items/s median {med * args.batch:8.0f}; p99 "
              f"{statistics.median(r['p99'] for r in rs):6.1f} ms; {med / base:.2f}x bare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=["parse", "ingest"], default="parse")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50, help="parses per measurement")
    parser.add_argument("--batch", type=int, default=10, help="items per ingested delivery")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--bodies", type=int, default=0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, Path(args.db), os.environ["BENCH_META_SECRET"])
    elif args.what == "parse":
        parse_bench(args)
    else:
        ingest_bench(args)


if __name__ == "__main__":
    main()
