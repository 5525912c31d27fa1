"""PostgresStore at scale: per-event cost by stored messages; claim latency under contention.

Two measurements, each run interleaved (the order rotates each repeat):

- **size**: the store work of one event answered once (``handle`` in
  bench_store_postgres.py: record, enqueue, claim, mark sent with its audit line,
  mark handled, save our reply) on schemas already holding ``--sizes`` answered
  messages (1k, 10k by default), in µs per event. It must not grow with the store.
  A schema is filled fast: the first 2,000 answered messages through the store's
  calls (``seed``: each event, its reply queued, claimed and marked sent with an
  audit line, our answer saved), the rest copied from those rows in SQL
  (``multiply``: ``INSERT ... SELECT`` over ``generate_series``, 100,000 per
  transaction, with the ids, text, times and outbox keys ``customer(n)`` would
  give; the search column is generated and every index follows), then
  ``VACUUM (ANALYZE)``; then checked (``check``): row counts, and sampled copies
  read back through the store equal to what the store's calls would have written.
  ``--no-sync`` takes the disk syncs out of the commits (on the bench's own
  server), leaving the store's own work, which is what grows if anything does.
- **claims**: ``--items`` replies queued, then 1 or 4 claimers (each its own
  ``PostgresStore``, as separate workers are) take them one at a time with
  ``claim_due(limit=1)`` and mark each sent; the latency of every claim, p50 / p99 /
  max, and whether any item was claimed twice (it must not be).

PostgreSQL is ``$OMNICHANNEL_BENCH_POSTGRES_URL`` when set, else a throwaway ``pgserver``.

    .venv/bin/python bench/bench_pg_scale.py --sizes 1000,100000,1000000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store_postgres import handle, postgres_url

from omnichannel.actions import Reply, Sent
from omnichannel.model import Message
from omnichannel.store import AuditEntry, OutboxItem, PostgresStore
from omnichannel.testing.store_conformance import NET, T0, message, received

SEEDS = 2_000
"""Answered messages written through the store's calls before the rest are copied in SQL:
one per thread, so a copy keeps its seed's thread."""
ANSWER = "Sorry! Checking."


def customer(n: int) -> Message:
    """Stored customer message ``n`` (its thread is one of 2,000)."""
    return message(f"fill-{n}", f"where is parcel {n}, it was due on monday",
                   thread=f"fill-thread-{n % 2000}", at=T0 + timedelta(seconds=n))


def answer_to(incoming: Message) -> Message:
    """Our stored answer to ``incoming``."""
    return incoming.model_copy(update={
        "ref": incoming.ref.model_copy(update={"id": f"{incoming.ref.id}-answer"}),
        "text": ANSWER, "created_at": incoming.created_at + timedelta(seconds=1)})


async def seed(store: PostgresStore, count: int, chunk: int = 500) -> None:
    """Store ``count`` answered customer messages through the store's calls.

    For each: its event (handled), the reply queued, claimed and marked sent with
    its audit line, and our answer saved; the calls of a chunk run together over
    the pool's connections.
    """
    for first in range(0, count, chunk):
        batch = [customer(n) for n in range(first, min(first + chunk, count))]
        events = [received(m) for m in batch]
        await store.record_batch(NET, events, cursor=str(first))
        async with anyio.create_task_group() as tg:
            for m in batch:
                tg.start_soon(store.enqueue, OutboxItem.for_action(
                    Reply(network=NET, to=m, text=ANSWER), origin="handler:bench",
                    now=m.created_at))
        claimed = await store.claim_due(now=batch[-1].created_at, limit=len(batch))

        async def sent(item: OutboxItem) -> None:
            ours = answer_to(item.action.to)  # type: ignore[union-attr]
            await store.update_outbox(
                item.key, status="sent",
                sent=Sent(idempotency_key=item.key, ref=ours.ref, sent_at=ours.created_at),
                audit=AuditEntry(at=ours.created_at, network=NET, action_type="reply",
                                 idempotency_key=item.key, actor="handler:bench",
                                 result_ref=f"{NET}:{ours.ref.id}"))

        async with anyio.create_task_group() as tg:
            for item in claimed:
                tg.start_soon(sent, item)
            for event in events:
                tg.start_soon(store.mark_handled, event.id)
        await store.save_messages([answer_to(m) for m in batch])


# Copying in SQL. A copy ``n`` of seed ``t = n % seeds`` is the seed's rows with
# every value that names ``t`` replaced by the one ``customer(n)`` would give
# (whole quoted JSON strings, so "fill-1" never matches inside "fill-10").

_TEMPLATES = """
CREATE TEMP TABLE tmpl AS
SELECT substr(m.id, 6)::bigint AS t, m.text, m.words, m.json AS msg, m.conversation, m.author,
       a.json AS answer, a.author AS answer_author, a.text AS answer_text, a.words AS answer_words,
       e.json AS event, o.key, o.status, o.attempts, o.updated_at, o.origin, o.recipient,
       o.text_digest, o.action, o.sent, o.worker, u.action_type, u.actor, u.detail
FROM messages AS m
JOIN messages AS a ON a.network = m.network AND a.id = m.id || '-answer'
JOIN events AS e ON e.id = 'mastodon:message.received:' || m.id
JOIN outbox AS o ON o.action::jsonb #>> '{to,ref,id}' = m.id
JOIN audit AS u ON u.idempotency_key = o.key
WHERE m.network = 'mastodon' AND m.id ~ '^fill-[0-9]+$'
"""
_NUMBERS = """
CREATE TEMP TABLE fill ON COMMIT DROP AS
SELECT n, n %% %(seeds)s AS t, %(t0)s::timestamptz + n * interval '1 second' AS at,
       md5(random()::text || n) AS key
FROM generate_series(%(first)s::bigint, %(end)s::bigint - 1) AS n
"""


def _z(at: str) -> str:
    return f"to_char(({at}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


_T_AT = "%(t0)s::timestamptz + tmpl.t * interval '1 second'"
_STEPS = (
    ("'\"fill-' || tmpl.t || '\"'", "'\"fill-' || fill.n || '\"'"),
    ("'\"fill-' || tmpl.t || '-answer\"'", "'\"fill-' || fill.n || '-answer\"'"),
    ("':fill-' || tmpl.t || '\"'", "':fill-' || fill.n || '\"'"),
    ("'\"' || tmpl.text || '\"'", "'\"where is parcel ' || fill.n || ', it was due on monday\"'"),
    ("'\"' || " + _z(_T_AT) + " || '\"'", "'\"' || " + _z("fill.at") + " || '\"'"),
    ("'\"' || " + _z(_T_AT + " + interval '1 second'") + " || '\"'",
     "'\"' || " + _z("fill.at + interval '1 second'") + " || '\"'"),
    ("'\"' || tmpl.key || '\"'", "'\"' || fill.key || '\"'"),
)


def _swapped(column: str) -> str:
    """SQL for ``column`` of a seed's row with the seed's values replaced by copy ``n``'s."""
    sql = column
    for old, new in _STEPS:
        sql = f"replace({sql}, {old}, {new})"
    return sql


_COPIES = (
    f"""
INSERT INTO events (id, network, type, json, handled, received_at)
SELECT 'mastodon:message.received:fill-' || fill.n, 'mastodon', 'message.received',
       {_swapped("tmpl.event")}, TRUE, fill.at + interval '1 second'
FROM fill JOIN tmpl USING (t) ORDER BY fill.n
""",  # noqa: S608 - constants only
    f"""
INSERT INTO messages (network, id, conversation, author, text, words, created_at, version_at, json)
SELECT network, id, conversation, author, text, words, at, at, json FROM (
  SELECT fill.n, 0 AS k, 'mastodon' AS network, 'fill-' || fill.n AS id, tmpl.conversation,
         tmpl.author, 'where is parcel ' || fill.n || ', it was due on monday' AS text,
         replace(tmpl.words, ' ' || tmpl.t || ' ', ' ' || fill.n || ' ') AS words,
         fill.at, {_swapped("tmpl.msg")} AS json
  FROM fill JOIN tmpl USING (t)
  UNION ALL
  SELECT fill.n, 1, 'mastodon', 'fill-' || fill.n || '-answer', tmpl.conversation,
         tmpl.answer_author, tmpl.answer_text, tmpl.answer_words, fill.at + interval '1 second',
         {_swapped("tmpl.answer")}
  FROM fill JOIN tmpl USING (t)
) AS copies ORDER BY n, k
""",  # noqa: S608 - constants only
    f"""
INSERT INTO outbox (key, network, status, attempts, next_attempt_at, created_at, updated_at,
                    origin, recipient, text_digest, action, sent, worker)
SELECT fill.key, 'mastodon', tmpl.status, tmpl.attempts, fill.at, fill.at, tmpl.updated_at,
       tmpl.origin, tmpl.recipient, tmpl.text_digest, {_swapped("tmpl.action")},
       {_swapped("tmpl.sent")}, tmpl.worker
FROM fill JOIN tmpl USING (t) ORDER BY fill.n
""",  # noqa: S608 - constants only
    """
INSERT INTO audit (at, network, action_type, idempotency_key, actor, result_ref, detail)
SELECT fill.at + interval '1 second', 'mastodon', tmpl.action_type, fill.key, tmpl.actor,
       'mastodon:fill-' || fill.n || '-answer', tmpl.detail
FROM fill JOIN tmpl USING (t) ORDER BY fill.n
""",
)
_LAST_ACTIVITY = """
UPDATE conversations AS c SET last_activity_at = latest.at
FROM (SELECT conversation, max(created_at) AS at FROM messages
      WHERE network = 'mastodon' AND id LIKE 'fill-%' GROUP BY conversation) AS latest
WHERE c.network = 'mastodon' AND c.id = latest.conversation AND c.last_activity_at < latest.at
"""


def multiply(url: str, schema: str, seeds: int, size: int, chunk: int = 100_000) -> None:
    """Copy the ``seeds`` stored answered messages in SQL until the schema holds ``size``.

    Each chunk of copies is one transaction; the search column is generated by the
    table, and every index follows. Ends with ``VACUUM (ANALYZE)`` of the tables
    written, as autovacuum would do (statistics, the visibility map, the search
    index's pending list merged).
    """
    import psycopg

    options = f"-c search_path={schema} -c TimeZone=UTC"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(_TEMPLATES)
        conn.execute("CREATE UNIQUE INDEX ON tmpl (t)")
        row = conn.execute("SELECT count(*) FROM tmpl").fetchone()
        if row is None or row[0] != seeds:
            raise SystemExit(f"{row} seed messages found of {seeds}")
        values = {"seeds": seeds, "t0": T0}
        for first in range(seeds, size, chunk):
            with conn.transaction():
                conn.execute(_NUMBERS, {**values, "first": first, "end": min(first + chunk, size)})
                for statement in _COPIES:
                    conn.execute(statement, values)
        conn.execute(_LAST_ACTIVITY)
        conn.execute("DROP TABLE tmpl")
        conn.execute("VACUUM (ANALYZE) events, messages, conversations, outbox, audit")


async def fill(url: str, schema: str, size: int) -> float:
    """Store ``size`` answered customer messages in ``schema``, check them; return seconds."""
    start = time.perf_counter()
    seeds = min(size, SEEDS)
    async with PostgresStore(url, schema=schema) as store:
        await seed(store, seeds)
    if size > seeds:
        await anyio.to_thread.run_sync(multiply, url, schema, seeds, size)
    seconds = time.perf_counter() - start
    await check(url, schema, seeds, size)
    return seconds


async def check(url: str, schema: str, seeds: int, size: int, samples: int = 20) -> None:
    """Stop unless the filled schema reads back as ``seed`` would have written it."""
    import psycopg

    picker = random.Random(size)
    picked = sorted({picker.randrange(size) for _ in range(samples)} | {seeds - 1, size - 1})
    options = f"-c search_path={schema}"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM outbox), (SELECT count(*) FROM audit),"
            " (SELECT count(*) FROM events WHERE NOT handled)").fetchone()
        keys: dict[int, str] = {}
        for n in picked:
            row = conn.execute("SELECT key FROM outbox WHERE action::jsonb #>> '{to,ref,id}' = %s",
                               (f"fill-{n}",)).fetchone()
            keys[n] = str(row[0]) if row else ""
    expected = (size, 2 * size, size, size, 0)
    if counts != expected:
        raise SystemExit(f"filled schema: counts {counts} (events, messages, outbox, audit,"
                         f" unhandled); expected {expected}")
    async with PostgresStore(url, schema=schema) as store:
        for n in picked:
            wanted = customer(n)
            ours = answer_to(wanted)
            got = await store.get_message(wanted.ref)
            got_answer = await store.get_message(ours.ref)
            item = await store.get_outbox(keys[n])
            hits = await store.search(str(n), network=NET)
            problems = [
                name for name, ok in (
                    ("message", got == wanted),
                    ("answer", got_answer == ours),
                    ("event", await store.is_handled(received(wanted).id)),
                    ("outbox", item is not None and item.status == "sent"
                     and item.action == Reply(network=NET, to=wanted, text=ANSWER,
                                              idempotency_key=item.key)
                     and item.sent is not None and item.sent.ref == ours.ref),
                    ("search", [m.ref for m in hits] == [wanted.ref]),
                ) if not ok
            ]
            if problems:
                raise SystemExit(f"filled schema: copy {n} reads back wrong: "
                                 f"{', '.join(problems)}")


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
                    idempotency_key=item.key, ref=item.action.to.ref,  # type: ignore[union-attr]
                    sent_at=T0))

    async with anyio.create_task_group() as tg:
        for c in range(claimers):
            tg.start_soon(claimer, f"{run}-w{c}")
    doubled = sum(1 for count in taken.values() if count > 1)
    if doubled or len(taken) != items:
        raise SystemExit(f"claims went wrong: {len(taken)} of {items} taken, {doubled} twice")
    return latencies


def no_sync(url: str) -> None:
    """Commit without waiting for the disk, as the test suite's throwaway server does."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    print("commits without a disk sync (fsync off, synchronous_commit off)")


async def schema_bytes(url: str, schema: str) -> int:
    """Bytes on disk of a schema's tables with their indexes and TOAST."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
            " JOIN pg_namespace AS s ON s.oid = c.relnamespace"
            " WHERE s.nspname = %s AND c.relkind = 'r'", (schema,)).fetchone()
    return int(row[0]) if row else 0


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
    parser.add_argument("--no-sync", action="store_true",
                        help="commits without a disk sync (the bench's own server only)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.no_sync and os.environ.get("OMNICHANNEL_BENCH_POSTGRES_URL"):
        raise SystemExit("--no-sync changes the server's settings: only on the bench's own server")
    print(f"load average before: {os.getloadavg()}")
    with postgres_url() as url:
        if args.no_sync:
            no_sync(url)
        cost: dict[int, list[float]] = {size: [] for size in sizes}
        latency: dict[int, list[float]] = {1: [], 4: []}
        claim_rate: dict[int, list[float]] = {1: [], 4: []}

        async def run_all() -> None:
            schemas = {size: f"scale_{uuid.uuid4().hex[:8]}" for size in sizes}
            for size in sizes:
                seconds = await fill(url, schemas[size], size)
                print(f"filled {size} messages in {seconds:.1f} s (checked),"
                      f" {await schema_bytes(url, schemas[size]) / 2**20:,.0f} MiB", flush=True)
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
    first = statistics.median(cost[sizes[0]])
    for size, values in cost.items():
        print(f"  {size:>9} stored  min {min(values):8.0f}  "
              f"median {statistics.median(values):8.0f}  "
              f"x first {statistics.median(values) / first:5.2f}")
    print(f"claim_due(limit=1) latency, {args.items} items per run, all runs pooled (ms):")
    for claimers, values in latency.items():
        print(f"  {claimers} claimer(s)  p50 {_pct(values, 0.5) * 1e3:6.2f}  "
              f"p99 {_pct(values, 0.99) * 1e3:6.2f}  max {max(values) * 1e3:6.2f}  "
              f"items/s median {statistics.median(claim_rate[claimers]):6.0f}  "
              "(none claimed twice)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
