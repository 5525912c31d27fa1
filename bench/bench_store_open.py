"""How long opening a big SQLite store takes, and how much of it is the integrity check.

Builds a store of ``--messages`` messages (each received as an event, so the
events, messages, conversations and search index all grow), closes it, then
opens it read-write and read-only a few times and, separately, times SQLite's
``PRAGMA quick_check`` alone on the same file.

    .venv/bin/python bench/bench_store_open.py --messages 100000

Prints the file size and the median time of each.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from omnichannel.events import MessageReceived, event_id
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import SQLiteStore

T0 = datetime(2024, 11, 5, tzinfo=UTC)
WORDS = ("refund", "parcel", "order", "late", "broken", "thanks", "where", "colour", "size")


def _event(n: int) -> MessageReceived:
    author = Person(ref=Ref(network="mastodon", id=str(n % 5000)), handle=f"c{n % 5000}@ex.social")
    ref = Ref(network="mastodon", id=str(10**9 + n))
    thread = Ref(network="mastodon", id=str(10**9 + n - n % 4))
    words = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(1, 12))
    message = Message(ref=ref, conversation=thread, author=author,
                      text=f"@shop order #{n} {words}", created_at=T0 + timedelta(seconds=n))
    return MessageReceived(id=event_id("message.received", ref), network="mastodon",
                           occurred_at=message.created_at, message=message,
                           conversation=Conversation(ref=thread, kind="thread"))


async def _fill(path: Path, count: int) -> None:
    async with SQLiteStore(path, synchronous="normal") as store:
        for start in range(0, count, 1000):
            batch = [_event(n) for n in range(start, min(start + 1000, count))]
            await store.record_batch("mastodon", batch, cursor=str(start))


async def _open(path: Path, *, read_only: bool) -> None:
    async with SQLiteStore(path, read_only=read_only):
        pass


def _quick_check(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA quick_check(1)").fetchone() == ("ok",)


def _median(work: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Build, then time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.db"
        started = time.perf_counter()
        anyio.run(_fill, path, args.messages)
        print(f"built {args.messages} messages in {time.perf_counter() - started:.1f} s; "
              f"file {path.stat().st_size / 2**20:.1f} MiB")
        # Warm the page cache first, as on a machine where the bot just stopped.
        _quick_check(path)
        check = _median(lambda: _quick_check(path), args.repeat)
        rw = _median(lambda: anyio.run(lambda: _open(path, read_only=False)), args.repeat)
        ro = _median(lambda: anyio.run(lambda: _open(path, read_only=True)), args.repeat)
        print(f"PRAGMA quick_check alone: {check * 1000:.0f} ms (median of {args.repeat})")
        print(f"open+close read-write:    {rw * 1000:.0f} ms")
        print(f"open+close read-only:     {ro * 1000:.0f} ms")


if __name__ == "__main__":
    main()
