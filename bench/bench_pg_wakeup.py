"""How fast an idle PostgreSQL worker sees an item another process queued: NOTIFY vs polling.

A worker loop claims due outbox items on one store object; when none is due it
waits, either in ``PostgresStore.wait_for_work`` (LISTEN, woken by the NOTIFY
that ``enqueue`` sends) or in a plain sleep of the same length (what polling
does). A second store object, as another process would, queues one item at a
random moment inside each wait; the figure is the time from its ``enqueue``
returning to the worker's ``claim_due`` returning it. Both modes run
interleaved in one process (the order rotates each repeat), poll interval 1 s.

    .venv/bin/python bench/bench_pg_wakeup.py --items 20 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from datetime import timedelta
from functools import partial

import anyio
from bench_store_postgres import postgres_url  # type: ignore[import-not-found]

from omnichannel.actions import Reply
from omnichannel.store import OutboxItem, PostgresStore
from omnichannel.testing.store_conformance import NET, T0, message

POLL = 1.0


async def run(url: str, *, notify: bool, items: int, seed: int) -> list[float]:
    """Latencies (seconds) of ``items`` items queued at random moments."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    rng = random.Random(seed)
    latencies: list[float] = []
    queued_at: dict[str, float] = {}
    async with PostgresStore(url, schema=schema, notify=notify) as worker, PostgresStore(
        url, schema=schema, notify=notify
    ) as other:

        async def consume() -> None:
            while len(latencies) < items:
                claimed = await worker.claim_due(now=T0 + timedelta(days=1), limit=10,
                                                 worker="w", lease=timedelta(minutes=5))
                now = time.perf_counter()
                for item in claimed:
                    latencies.append(now - queued_at[item.key])
                if not claimed:
                    if notify:
                        await worker.wait_for_work(POLL)
                    else:
                        await anyio.sleep(POLL)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for n in range(items):
                await anyio.sleep(rng.uniform(0.05, POLL))
                incoming = message(f"{schema}-{n}", "where is my parcel?", at=T0)
                item = OutboxItem.for_action(
                    Reply(network=NET, to=incoming, text=f"Checking {n}"),
                    origin="handler:bench", now=T0)
                await other.enqueue(item)
                queued_at[item.key] = time.perf_counter()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    figures: dict[str, list[float]] = {"notify": [], "poll": []}
    with postgres_url() as url:
        for repeat in range(args.repeats):
            modes = ["notify", "poll"] if repeat % 2 == 0 else ["poll", "notify"]
            for mode in modes:
                latencies = anyio.run(partial(
                    run, url, notify=mode == "notify", items=args.items, seed=repeat))
                figures[mode].append(statistics.median(latencies))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{args.items} items per run, {args.repeats} runs each, poll interval {POLL:.0f} s")
    print("mode     median latency per run: min / median (ms)")
    for mode, medians in figures.items():
        print(f"{mode:<8} {min(medians) * 1000:8.1f} / {statistics.median(medians) * 1000:8.1f}")
    ratio = statistics.median(figures["poll"]) / statistics.median(figures["notify"])
    print(f"polling waits {ratio:.0f}x longer than NOTIFY (medians)")


if __name__ == "__main__":
    main()
