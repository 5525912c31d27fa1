"""Benchmark: `SQLiteStore.search` on a big store, against the one-statement ranking it replaced.

A store of ``--size`` answered messages is filled as `bench_store_sqlite.py` fills
its stores (a few thousand through the store's calls, the rest copied in SQL, the
search index settled); every message of ours says "Thanks, we are looking into
it!", so ``thanks`` matches every reply and a tenth of the customers' messages,
``numb*`` every customer message, and ``ticket<n>`` one.

Compared, interleaved (the order rotates each repeat), on the same read-only
connection and the same match expressions:

- **store**: the statement ``store.search(query, limit=20)`` runs (ranked in a
  subquery that carries only each match's number, score and time; rows read for
  the 20 returned);
- **one statement**: the statement used before, which joins every match's row and
  payload and sorts them all by rank.

Each turns its rows into messages as the store does. Both must return what
``store.search`` returns, in the same order (checked). Prints min and
median milliseconds per search, the ratio, and the machine's load.

Run: ``.venv/bin/python bench/bench_search.py [--size 100000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_store_sqlite

from omnichannel.store._rules import fts_match, phrases
from omnichannel.store.sqlite import _SEARCH, _message_from

ONE_STATEMENT = (
    "SELECT m.json, p.raw AS payload FROM messages_fts"
    " JOIN messages AS m ON m.seq = messages_fts.rowid"
    " LEFT JOIN payloads AS p ON p.digest = m.raw"
    " WHERE messages_fts MATCH ? AND m.deleted = 0 AND (? IS NULL OR m.network = ?)"
    " ORDER BY bm25(messages_fts), m.created_at DESC LIMIT ?"
)
QUERIES = ("thanks", "numb*", "ticket4321")
STATEMENTS = {"store": _SEARCH, "one statement": ONE_STATEMENT}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    print(f"load before: {load()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "store.db"
        started = time.perf_counter()
        store = await bench_store_sqlite.fill(path, args.size, "normal")
        print(f"filled {args.size:,} answered messages in {time.perf_counter() - started:.0f} s")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        times: dict[tuple[str, str], list[float]] = {}
        try:
            for query in QUERIES:
                match = fts_match(phrases(query))
                want = [m.ref.id for m in await store.search(query, limit=20)]
                for case, statement in STATEMENTS.items():
                    rows = conn.execute(statement, (match, None, None, 20)).fetchall()
                    if [_message_from(row).ref.id for row in rows] != want:
                        raise SystemExit(f"{query!r}: {case} disagrees with store.search")
                for repeat in range(args.repeats):
                    cases = list(STATEMENTS)
                    for case in cases[repeat % 2:] + cases[:repeat % 2]:
                        t0 = time.perf_counter()
                        [_message_from(row) for row in
                         conn.execute(STATEMENTS[case], (match, None, None, 20)).fetchall()]
                        times.setdefault((query, case), []).append(time.perf_counter() - t0)
        finally:
            conn.close()
            await store.aclose()
    print(f"{'query':<12} {'case':<14} {'min ms':>8} {'median ms':>10} {'store / it':>11}")
    for query in QUERIES:
        base = times[(query, "one statement")]
        for case in ("store", "one statement"):
            ts = times[(query, case)]
            ratio = statistics.median(times[(query, "store")]) / statistics.median(base)
            shown = f"{ratio:.2f}" if case == "store" else "1"
            print(f"{query:<12} {case:<14} {min(ts) * 1e3:>8.1f} "
                  f"{statistics.median(ts) * 1e3:>10.1f} {shown:>11}")
    print(f"load after: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="folder for the temporary store")
    anyio.run(main, parser.parse_args())
