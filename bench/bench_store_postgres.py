"""Events handled per second by one worker: PostgresStore vs SQLiteStore.

"Handled" is the store work the hub does for one inbound event that gets one reply:
record the event (``record_batch``), queue the reply (``enqueue``), claim it
(``claim_due``), mark it sent with its audit line (``update_outbox``), mark the event
handled (``mark_handled``), and save our reply (``save_messages``): six calls, five
write transactions. No network, no handler: what is left is the store's own cost.

The two stores run interleaved in one process (the order rotates each repeat), with
durable commits on both (SQLite ``synchronous=full``; PostgreSQL's defaults, fsync on).
PostgreSQL is ``$OMNICHANNEL_BENCH_POSTGRES_URL`` when set, else a throwaway server from
the ``pgserver`` package (installed by the ``test`` extra) on a local socket.

    .venv/bin/python bench/bench_store_postgres.py --events 300 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from omnichannel.actions import Reply, Sent
from omnichannel.store import AuditEntry, OutboxItem, PostgresStore, SQLiteStore, Store
from omnichannel.testing.store_conformance import NET, T0, message, received


@contextmanager
def postgres_url() -> Iterator[str]:
    """The bench's server: the environment's, or a throwaway pgserver."""
    url = os.environ.get("OMNICHANNEL_BENCH_POSTGRES_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        folder = tempfile.mkdtemp(prefix="omnichannel-bench-pg-")
        server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


async def handle(store: Store, run: str, events: int) -> float:
    """Do the store work of ``events`` events; return the seconds it took."""
    start = time.perf_counter()
    for n in range(events):
        at = T0 + timedelta(seconds=n)
        incoming = message(f"{run}-{n}", f"my parcel {n} is late", at=at)
        event = received(incoming)
        await store.record_batch(NET, [event], cursor=str(n))
        reply = Reply(network=NET, to=incoming, text=f"Sorry! Checking parcel {n}.")
        await store.enqueue(OutboxItem.for_action(reply, origin="handler:bench", now=at))
        [item] = await store.claim_due(now=at, limit=1)
        sent = Sent(idempotency_key=item.key, ref=incoming.ref.model_copy(
            update={"id": f"{run}-{n}-reply"}), sent_at=at)
        await store.update_outbox(item.key, status="sent", sent=sent, audit=AuditEntry(
            at=at, network=NET, action_type="reply", idempotency_key=item.key,
            actor="handler:bench", result_ref=f"{NET}:{run}-{n}-reply"))
        await store.mark_handled(event.id)
        ours = incoming.model_copy(update={
            "ref": sent.ref, "text": reply.text, "created_at": at + timedelta(seconds=1)})
        await store.save_messages([ours])
    return time.perf_counter() - start


def main() -> None:
    """Run the comparison and print min/median events per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300, help="events per run (300)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per store (5)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with postgres_url() as url, tempfile.TemporaryDirectory() as folder:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        makers: dict[str, Callable[[], Store]] = {
            "SQLiteStore": lambda: SQLiteStore(Path(folder) / "bench.db"),
            "PostgresStore": lambda: PostgresStore(url, schema=schema),
        }
        rates: dict[str, list[float]] = {name: [] for name in makers}

        async def run_all() -> None:
            names = list(makers)
            for repeat in range(args.repeats):
                order = names[repeat % len(names):] + names[:repeat % len(names)]
                for name in order:
                    async with makers[name]() as store:
                        seconds = await handle(store, f"r{repeat}", args.events)
                    rates[name].append(args.events / seconds)

        anyio.run(run_all)
    print(f"{args.events} events per run, {args.repeats} runs each, interleaved; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for name, values in rates.items():
        print(f"{name:14} events/s  min {min(values):7.1f}  median "
              f"{statistics.median(values):7.1f}  max {max(values):7.1f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
