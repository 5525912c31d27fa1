"""Benchmark: `PostgresStore.search` on a big store, against the one-statement ranking it replaced.

A schema of ``--size`` answered messages is filled as `bench_pg_scale.py` fills
its schemas (2,000 through the store's calls, the rest copied in SQL, checked,
``VACUUM (ANALYZE)``). Every customer message there says "where is parcel <n>,
it was due on monday" and every reply of ours "Sorry! Checking."; a tenth of the
customer messages then get ", sorry, sorry" added (text, words and JSON, in SQL;
the search column follows), so ``sorry`` matches every reply and a tenth of the
customers' messages (55% of all, those tenth ranked above the replies),
``parc*`` every customer message, and ``4321`` one.

Compared, interleaved (the order rotates each repeat), on one connection with
the same query expressions:

- **store**: the statement ``store.search(query, limit=20)`` runs (ranked in a
  subquery that carries only each match's number, score and time; the JSON read
  by primary key for the 20 returned);
- **one statement**: the statement used before, which carries every match's
  JSON through the scan and the sort by rank.

Each turns its rows into messages as the store does. Both must return what
``store.search`` returns, in the same order (checked). Prints min and median
milliseconds per search, the ratio, and the machine's load.

PostgreSQL is ``$OMNICHANNEL_BENCH_POSTGRES_URL`` when set, else a throwaway ``pgserver``.

Run: ``.venv/bin/python bench/bench_pg_search.py [--size 100000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pg_scale
from bench_store_postgres import postgres_url

from omnichannel.model import Message
from omnichannel.store import PostgresStore
from omnichannel.store.postgres import _SEARCH, _tsquery

ONE_STATEMENT = (
    "SELECT json FROM messages, to_tsquery('simple', %s) AS q"
    " WHERE search @@ q AND NOT deleted AND (%s::text IS NULL OR network = %s)"
    " ORDER BY ts_rank(search, q) DESC, created_at DESC LIMIT %s"
)
QUERIES = ("sorry", "parc*", "4321")
STATEMENTS = {"store": _SEARCH, "one statement": ONE_STATEMENT}
_SORRY = """
UPDATE messages SET text = text || ', sorry, sorry', words = words || ' sorry sorry',
    json = replace(json, '"' || text || '"', '"' || text || ', sorry, sorry"')
WHERE network = 'mastodon' AND id ~ '^fill-[0-9]+$' AND substr(id, 6)::bigint % 10 = 0
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sorry(url: str, schema: str, size: int) -> None:
    """Add ", sorry, sorry" to every tenth customer message; settle the table."""
    import psycopg

    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        changed = conn.execute(_SORRY).rowcount
        conn.execute("VACUUM (ANALYZE) messages")
    if changed != (size + 9) // 10:
        raise SystemExit(f"{changed} customer messages changed, expected {(size + 9) // 10}")


async def main(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg.rows import dict_row

    print(f"load before: {load()}")
    schema = f"search_{uuid.uuid4().hex[:8]}"
    with postgres_url() as url:
        started = time.perf_counter()
        await bench_pg_scale.fill(url, schema, args.size)
        sorry(url, schema, args.size)
        print(f"filled {args.size:,} answered messages in {time.perf_counter() - started:.0f} s")
        times: dict[tuple[str, str], list[float]] = {}
        async with PostgresStore(url, schema=schema) as store:
            with psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                 options=f"-c search_path={schema}") as conn:
                for query in QUERIES:
                    params = (_tsquery(query), None, None, 20)
                    want = [m.ref.id for m in await store.search(query, limit=20)]
                    if not want:
                        raise SystemExit(f"{query!r}: no match")
                    for case, statement in STATEMENTS.items():
                        rows = conn.execute(statement, params).fetchall()
                        got = [Message.model_validate_json(row["json"]).ref.id for row in rows]
                        if got != want:
                            raise SystemExit(f"{query!r}: {case} disagrees with store.search")
                    for repeat in range(args.repeats):
                        cases = list(STATEMENTS)
                        for case in cases[repeat % 2:] + cases[:repeat % 2]:
                            t0 = time.perf_counter()
                            [Message.model_validate_json(row["json"]) for row in
                             conn.execute(STATEMENTS[case], params).fetchall()]
                            times.setdefault((query, case), []).append(time.perf_counter() - t0)
    print(f"{args.repeats} repeats, interleaved")
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
    anyio.run(main, parser.parse_args())
