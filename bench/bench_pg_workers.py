"""Events handled and replies delivered per second with 1, 2 and 4 hubs on PostgreSQL vs SQLite.

Each worker is a whole hub in its own process (tests/hub_worker.py: the testnet
adapter polling a fake network on loopback, a handler answering each message,
the outbox with its default 16 sends in flight). Once the workers are ready,
customers write ``--messages`` messages in ``--conversations`` conversations
at once; the figure is messages / seconds until every one has its answer on
the network (one event handled and one reply delivered per message). Every
send takes ``--latency`` seconds at the fake network. Runs interleave (the
order rotates each repeat); SQLite, which admits one writing process, runs with
one worker.

    .venv/bin/python bench/bench_pg_workers.py --messages 300 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_store_postgres import postgres_url  # type: ignore[import-not-found]  # noqa: E402
from tests.hub_worker import _answers, _start, _stop  # noqa: E402
from tests.runtime_adapter import FakeNetwork, serve_in_thread  # noqa: E402


async def one_run(db: str, workers: int, args: argparse.Namespace, log: Path) -> float:
    """Messages per second for ``workers`` hubs on ``db``."""
    fake = FakeNetwork(latency=args.latency, seed=1)
    with serve_in_thread(fake) as url:
        live = []
        async with anyio.create_task_group() as tg:
            async def start(n: int) -> None:
                live.append(await _start(db, url, f"w{n}", 10.0, log))

            for n in range(workers):
                tg.start_soon(start, n)
        try:
            started = time.perf_counter()
            ids = [fake.customer_says(f"question {n}", author=f"c{n % args.conversations}",
                                      conversation=f"conv{n % args.conversations}")["id"]
                   for n in range(args.messages)]
            with anyio.fail_after(600):
                while not all(m in _answers(fake) for m in ids):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            return args.messages / (time.perf_counter() - started)
        finally:
            for process in live:
                await _stop(process)


async def main(args: argparse.Namespace, url: str) -> None:
    setups = [("sqlite", 1), *(("postgres", n) for n in (1, 2, 4))]
    rates: dict[tuple[str, int], list[float]] = {setup: [] for setup in setups}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "workers.log"
        for repeat in range(args.repeats):
            order = setups[repeat % len(setups):] + setups[:repeat % len(setups)]
            for kind, workers in order:
                if kind == "sqlite":
                    db = str(Path(tmp) / f"run{repeat}.db")
                else:
                    from omnichannel.store import PostgresStore

                    schema = f"bench_{uuid.uuid4().hex[:10]}"
                    async with PostgresStore(url, schema=schema):
                        pass
                    db = f"{url}#{schema}"
                rates[(kind, workers)].append(await one_run(db, workers, args, log))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{args.messages} messages in {args.conversations} conversations, send latency "
          f"{args.latency * 1000:.0f} ms, {args.repeats} runs each")
    base = statistics.median(rates[("sqlite", 1)])
    print("store      workers  min msg/s  median msg/s  vs SQLite (median)")
    for (kind, workers), values in rates.items():
        median = statistics.median(values)
        print(f"{kind:<10} {workers:>7}  {min(values):9.1f}  {median:12.1f}  {median / base:8.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--conversations", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    with postgres_url() as server:
        anyio.run(main, arguments, server)
