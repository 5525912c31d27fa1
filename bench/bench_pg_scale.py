"""PostgresStore at scale: per-event cost by stored messages; claim latency under contention.

Two measurements, each run interleaved (the order rotates each repeat):

- **size**: the store work of one event answered once (``handle`` in
  bench_store_postgres.py: record, enqueue, claim, mark sent with its audit line,
  mark handled, save our reply) on schemas already holding 1k and 10k answered
  messages (``--sizes``), in µs per event. It must not grow with the store.
- **claims**: ``--items`` replies queued, then 1 or 4 claimers (each its own
  ``PostgresStore``, as separate workers are) take them one at a time with
  ``claim_due(limit=1)`` and mark each sent; the latency of every claim, p50 / p99 /
  max, and whether any item was claimed twice (it must not be).

PostgreSQL is ``$OMNICHANNEL_BENCH_POSTGRES_URL`` when set, else a throwaway ``pgserver``.

    .venv/bin/python bench/bench_pg_scale.py --sizes 1000,10000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store_postgres import handle, postgres_url  # type: ignore[import-not-found]

from omnichannel.actions import Reply, Sent
from omnichannel.store import OutboxItem, PostgresStore
from omnichannel.testing.store_conformance import NET, T0, message, received


async def fill(store: PostgresStore, size: int) -> float:
    """Store ``size`` answered customer messages (and our answers) in 500s; return seconds."""
    start = time.perf_counter()
    for first in range(0, size, 500):
        batch = [message(f"fill-{n}", f"where is parcel {n}, it was due on monday",
                         thread=f"fill-thread-{n % 2000}", at=T0 + timedelta(seconds=n))
                 for n in range(first, min(first + 500, size))]
        events = [received(m) for m in batch]
        await store.record_batch(NET, events, cursor=str(first))
        async with anyio.create_task_group() as tg:  # the pool's connections in parallel
            for part in range(4):
                tg.start_soon(_mark_handled, store, [event.id for event in events[part::4]])
        await store.save_messages([m.model_copy(update={
            "ref": m.ref.model_copy(update={"id": f"{m.ref.id}-answer"}),
            "text": "Sorry! Checking.", "created_at": m.created_at + timedelta(seconds=1),
        }) for m in batch])
    return time.perf_counter() - start


async def _mark_handled(store: PostgresStore, ids: list[str]) -> None:
    for event_id in ids:
        await store.mark_handled(event_id)


async def claims(url: str, schema: str, claimers: int, items: int, run: str) -> list[float]:
    """Queue ``items``; ``claimers`` stores claim them one by one; return claim latencies (s)."""
    async with PostgresStore(url, schema=schema) as store:
        for n in range(items):
            incoming = message(f"{run}-{n}", "hello", thread=f"{run}-t{n % 50}")
            await store.enqueue(OutboxItem.for_action(
                Reply(network=NET, to=incoming, text=f"answer {n}"), origin="handler:bench",
                now=T0))
    latencies: list[float] = []
    taken: Counter[str] = Counter()

    async def claimer(worker: str) -> None:
        async with PostgresStore(url, schema=schema) as store:
            while True:
                start = time.perf_counter()
                got = await store.claim_due(now=T0 + timedelta(minutes=1), limit=1, worker=worker)
                latencies.append(time.perf_counter() - start)
                if not got:
                    return
                [item] = got
                taken[item.key] += 1
                await store.update_outbox(item.key, status="sent", sent=Sent(
                    idempotency_key=item.key, ref=item.action.to.ref, sent_at=T0))

    async with anyio.create_task_group() as tg:
        for c in range(claimers):
            tg.start_soon(claimer, f"{run}-w{c}")
    doubled = sum(1 for count in taken.values() if count > 1)
    if doubled or len(taken) != items:
        raise SystemExit(f"claims went wrong: {len(taken)} of {items} taken, {doubled} twice")
    return latencies


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="stored messages (1000,10000)")
    parser.add_argument("--events", type=int, default=100, help="events per timed run (100)")
    parser.add_argument("--items", type=int, default=200, help="items per claim run (200)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case (5)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {os.getloadavg()}")
    with postgres_url() as url:
        cost: dict[int, list[float]] = {size: [] for size in sizes}
        latency: dict[int, list[float]] = {1: [], 4: []}
        claim_rate: dict[int, list[float]] = {1: [], 4: []}

        async def run_all() -> None:
            schemas = {size: f"scale_{uuid.uuid4().hex[:8]}" for size in sizes}
            for size in sizes:
                async with PostgresStore(url, schema=schemas[size]) as store:
                    seconds = await fill(store, size)
                print(f"filled {size} messages in {seconds:.1f} s")
            claim_schema = f"claims_{uuid.uuid4().hex[:8]}"
            for repeat in range(args.repeats):
                shift = repeat % len(sizes)
                for size in sizes[shift:] + sizes[:shift]:
                    async with PostgresStore(url, schema=schemas[size]) as store:
                        seconds = await handle(store, f"r{repeat}", args.events)
                    cost[size].append(seconds / args.events * 1e6)
                for claimers in ((1, 4) if repeat % 2 == 0 else (4, 1)):
                    start = time.perf_counter()
                    found = await claims(url, claim_schema, claimers, args.items,
                                         f"c{repeat}-{claimers}")
                    claim_rate[claimers].append(args.items / (time.perf_counter() - start))
                    latency[claimers].extend(found)

        anyio.run(run_all)
    print(f"{args.repeats} repeats, interleaved; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"per event, {args.events} events per run (µs):")
    for size, values in cost.items():
        print(f"  {size:>9} stored  min {min(values):8.0f}  "
              f"median {statistics.median(values):8.0f}")
    print(f"claim_due(limit=1) latency, {args.items} items per run, all runs pooled (ms):")
    for claimers, values in latency.items():
        print(f"  {claimers} claimer(s)  p50 {_pct(values, 0.5) * 1e3:6.2f}  "
              f"p99 {_pct(values, 0.99) * 1e3:6.2f}  max {max(values) * 1e3:6.2f}  "
              f"items/s median {statistics.median(claim_rate[claimers]):6.0f}  "
              "(none claimed twice)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
