"""Benchmark: SQLiteStore storage per message, and per-event cost as the store grows.

Messages carry a real native payload: a recorded Mastodon mention notification
(``tests/vectors/mastodon``), its ids and text changed per message, as the
Mastodon adapter keeps it in ``Message.raw``.

1. **Storage**: ``--storage`` answered messages go through the hub's store calls
   (below); the file's size (after the write-ahead log is checkpointed), less an
   empty store's, divided by the count, against the payload's own JSON size.
2. **Per-event cost** at each of ``--sizes`` stored answered messages: the store
   calls of the hub for one more inbound message it answers (``record_batch``,
   ``conversation_messages``, ``recent_recipients``, ``enqueue``, ``claim_due``,
   ``update_outbox``, ``save_messages``, ``mark_handled``), ``--events`` per run,
   the sizes interleaved (order rotates each repeat), ``--repeats`` repeats;
   min and median microseconds per event and the ratio to the smallest size.

The stores for (2) are built fast: the first 5,000 answered messages go through
the store's calls (``seed``: the calls of 1,000 messages made together, so their
writes share commits); the rest are copies of those rows made in SQL
(``multiply``: ``INSERT ... SELECT`` over a recursive CTE of new numbers, 100,000
per transaction), each with the ids, text, times, outbox key and native payload
``inbound(n)`` would give it; the search index follows by the store's triggers
and is then settled as a store written one commit at a time has it
(``settle_index``; ``--bulk-index`` also measures the largest size without that).
The filled store is then opened (its ``quick_check``) and checked (``check``):
row counts, the search index's integrity check, and sampled copies read back
through the store equal to what ``answer`` would have written.

Run: ``.venv/bin/python bench/bench_store_sqlite.py [--sizes 1000,10000,100000] [--bulk-index]``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread

from omnichannel.actions import Reply, Sent
from omnichannel.events import MessageReceived, event_id
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import OutboxItem, SQLiteStore
from omnichannel.store import _sqlite_schema as sqlite_schema

NET = "mastodon"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = Person(ref=Ref(network=NET, id="1"), handle="shop")
CANNED = "Thanks, we are looking into it!"
WORDS = ["order", "parcel", "refund", "invoice", "late", "broken", "thanks", "please",
         "help", "account"]
VECTOR = (Path(__file__).resolve().parent.parent / "tests" / "vectors" / "mastodon" / "decoded"
          / "mastodonpy__test_notifications_mentions_only.json")


def _template() -> dict[str, Any]:
    for interaction in json.loads(VECTOR.read_text())["interactions"]:
        body = interaction.get("response_body")
        if isinstance(body, dict) and body.get("type") == "mention":
            return body
    raise SystemExit(f"no mention notification in {VECTOR}")


TEMPLATE = _template()


def inbound(n: int) -> MessageReceived:
    customer = Person(ref=Ref(network=NET, id=f"u{n % 5000}"), handle=f"c{n % 5000}")
    msg_ref = Ref(network=NET, id=f"m{n}")
    text = f"{WORDS[n % len(WORDS)]} {WORDS[(n // 7) % len(WORDS)]} number{n % 100} ticket{n}"
    raw = copy.deepcopy(TEMPLATE)
    raw["id"] = str(n)
    raw["status"]["id"] = f"m{n}"
    raw["status"]["content"] = f"<p>@shop {text}</p>"
    raw["status"]["uri"] = f"https://mastodon.example/users/c/statuses/m{n}"
    message = Message(ref=msg_ref, conversation=msg_ref, author=customer, text=text,
                      created_at=T0 + timedelta(minutes=n), raw=raw)
    return MessageReceived(
        id=event_id("message.received", msg_ref), network=NET, account=US.ref.id,
        occurred_at=message.created_at, message=message,
        conversation=Conversation(ref=msg_ref, kind="thread", account=US.ref),
    )


def our_reply(n: int, message: Message) -> Message:
    return Message(ref=Ref(network=NET, id=f"r{n}"), conversation=message.conversation,
                   author=US, text=CANNED, created_at=message.created_at,
                   in_reply_to=message.ref, from_us=True)


def outbox_item(message: Message) -> OutboxItem:
    action = Reply(network=NET, to=message, text=CANNED)
    return OutboxItem.for_action(action, origin="handler:bench", recipient=message.author.ref.id,
                                 text_digest="canned", now=message.created_at)


class Calls:
    """Seconds spent in each store call, summed (``with calls("name"): ...``)."""

    def __init__(self) -> None:
        self.spent: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.spent[name] += time.perf_counter() - began


async def answer(store: SQLiteStore, event: MessageReceived, n: int,
                 calls: Calls | None = None) -> None:
    """The store calls of the hub for one inbound message it answers."""
    timed = calls or Calls()
    with timed("record_batch"):
        await store.record_batch(NET, [event], cursor=str(n))
    message = event.message
    with timed("conversation_messages"):
        await store.conversation_messages(message.conversation, limit=20)
    now = message.created_at
    with timed("recent_recipients"):
        await store.recent_recipients(network=NET, text_digest="canned",
                                      since=now - timedelta(hours=1))
    with timed("enqueue"):
        await store.enqueue(outbox_item(message))
    with timed("claim_due"):
        claimed = await store.claim_due(now=now, limit=20)
    for item in claimed:
        sent = Sent(idempotency_key=item.key, ref=Ref(network=NET, id=f"r{n}"),
                    conversation=message.conversation, sent_at=now)
        with timed("update_outbox"):
            await store.update_outbox(item.key, status="sent", sent=sent)
        with timed("save_messages"):
            await store.save_messages([our_reply(n, message)])
    with timed("mark_handled"):
        await store.mark_handled(event.id)


SEEDS = 5_000
"""Answered messages written through the store's calls before the rest are copied in SQL:
the 5,000 customers once each, so a copy keeps its seed's author."""


async def seed(store: SQLiteStore, count: int, chunk: int = 1000) -> None:
    """Write ``count`` answered messages through the store's calls, ``chunk`` at a time.

    The same rows the per-event calls write (``answer``), with the calls of a chunk
    made together so their writes share commits.
    """
    for start in range(0, count, chunk):
        numbers = range(start, min(start + chunk, count))
        events = [inbound(n) for n in numbers]
        await store.record_batch(NET, events, cursor=str(numbers[-1]))
        async with anyio.create_task_group() as group:
            for event in events:
                group.start_soon(store.enqueue, outbox_item(event.message))
        claimed = await store.claim_due(now=events[-1].message.created_at, limit=len(events))
        by_message = {item.action.to.ref.id: item for item in claimed}  # type: ignore[union-attr]

        async def sent(n: int, event: MessageReceived,
                       by_message: dict[str, OutboxItem] = by_message) -> None:
            message = event.message
            item = by_message[message.ref.id]
            await store.update_outbox(item.key, status="sent", sent=Sent(
                idempotency_key=item.key, ref=Ref(network=NET, id=f"r{n}"),
                conversation=message.conversation, sent_at=message.created_at))
            await store.mark_handled(event.id)

        async with anyio.create_task_group() as group:
            for n, event in zip(numbers, events, strict=True):
                group.start_soon(sent, n, event)
        await store.save_messages([our_reply(n, e.message)
                                   for n, e in zip(numbers, events, strict=True)])


# Copying in SQL. A copy ``n`` of seed ``t = n % seeds`` is the seed's rows with
# every value that names ``t`` replaced by the one ``inbound(n)`` would give
# (quoted JSON strings, so "m1" never matches inside "m10"); zlib-packed JSON is
# unpacked, changed and packed again by functions registered on the connection,
# and each copy gets a payload of its own (``fill_payload``), as ``inbound`` makes.

_TEMPLATES = """
CREATE TEMP TABLE tmpl AS
SELECT CAST(substr(m.id, 2) AS INTEGER) AS t, m.text, substr(m.created_at, 1, 19) || 'Z' AS at,
       unpack(e.json) AS event, e.received_at, m.json AS msg, m.author,
       r.json AS reply, r.author AS reply_author, r.text AS reply_text, c.json AS conv, c.kind,
       o.key, unpack(o.action) AS action, o.sent, o.status, o.attempts, o.updated_at,
       o.origin, o.recipient, o.text_digest, p.raw AS payload
FROM messages AS m
JOIN events AS e ON e.id = 'mastodon:message.received:' || m.id
JOIN messages AS r ON r.network = m.network AND r.id = 'r' || substr(m.id, 2)
JOIN conversations AS c ON c.network = m.network AND c.id = m.id
JOIN outbox AS o ON o.raw = m.raw
JOIN payloads AS p ON p.digest = m.raw
WHERE m.network = 'mastodon' AND m.id GLOB 'm[0-9]*'
"""
_WORDS = "CREATE TEMP TABLE words (i INTEGER PRIMARY KEY, w TEXT NOT NULL)"
_NUMBERS = """
CREATE TEMP TABLE fill AS
WITH RECURSIVE seq(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < :end)
SELECT n, n % :seeds AS t,
       (SELECT w FROM words WHERE i = n % 10) || ' ' || (SELECT w FROM words WHERE i = (n / 7) % 10)
       || ' number' || (n % 100) || ' ticket' || n AS text,
       strftime('%Y-%m-%dT%H:%M:%S', '2026-01-01 00:00:00', '+' || n || ' minutes') AS at,
       lower(hex(randomblob(16))) AS key, NULL AS payload, NULL AS digest
FROM seq
"""
_PAYLOADS = """
UPDATE fill SET payload = fill_payload((SELECT payload FROM tmpl WHERE tmpl.t = fill.t), n, text);
UPDATE fill SET digest = payload_digest(payload);
INSERT INTO payloads (digest, raw) SELECT digest, payload FROM fill ORDER BY n;
"""


def _swapped(column: str) -> str:
    """SQL for ``column`` of a seed's row with the seed's values replaced by copy ``n``'s."""
    steps = (
        ("'\"m' || tmpl.t || '\"'", "'\"m' || fill.n || '\"'"),
        ("'\"r' || tmpl.t || '\"'", "'\"r' || fill.n || '\"'"),
        ("':m' || tmpl.t || '\"'", "':m' || fill.n || '\"'"),
        ("'\"' || tmpl.text || '\"'", "'\"' || fill.text || '\"'"),
        ("'\"' || tmpl.at || '\"'", "'\"' || fill.at || 'Z\"'"),
        ("'\"' || tmpl.key || '\"'", "'\"' || fill.key || '\"'"),
    )
    sql = column
    for old, new in steps:
        sql = f"replace({sql}, {old}, {new})"
    return sql


_TS = "fill.at || '.000000+00:00'"
_COPIES = f"""
INSERT INTO events (id, network, type, json, handled, received_at, raw)
SELECT 'mastodon:message.received:m' || fill.n, 'mastodon', 'message.received',
       pack({_swapped("tmpl.event")}), 1, tmpl.received_at, fill.digest
FROM fill JOIN tmpl USING (t) ORDER BY fill.n;
INSERT INTO messages (network, id, conversation, author, text, created_at, version_at, json,
                      deleted, raw)
SELECT network, id, conversation, author, text, at, at, json, 0, raw FROM (
  SELECT fill.n, 0 AS k, 'mastodon' AS network, 'm' || fill.n AS id, 'm' || fill.n AS conversation,
         tmpl.author, fill.text, {_TS} AS at, {_swapped("tmpl.msg")} AS json, fill.digest AS raw
  FROM fill JOIN tmpl USING (t)
  UNION ALL
  SELECT fill.n, 1, 'mastodon', 'r' || fill.n, 'm' || fill.n, tmpl.reply_author,
         tmpl.reply_text, {_TS}, {_swapped("tmpl.reply")}, NULL
  FROM fill JOIN tmpl USING (t)
) ORDER BY n, k;
INSERT INTO conversations (network, id, kind, json, last_activity_at)
SELECT 'mastodon', 'm' || fill.n, tmpl.kind, {_swapped("tmpl.conv")}, {_TS}
FROM fill JOIN tmpl USING (t) ORDER BY fill.n;
INSERT INTO outbox (key, network, status, attempts, next_attempt_at, created_at, updated_at,
                    origin, approved_by, recipient, text_digest, last_error, action, sent, raw,
                    worker, lease_until)
SELECT fill.key, 'mastodon', tmpl.status, tmpl.attempts, {_TS}, {_TS}, tmpl.updated_at,
       tmpl.origin, NULL, tmpl.recipient, tmpl.text_digest, NULL, pack({_swapped("tmpl.action")}),
       {_swapped("tmpl.sent")}, fill.digest, NULL, NULL
FROM fill JOIN tmpl USING (t) ORDER BY fill.n;
DROP TABLE fill;
"""  # noqa: S608 - constants only


def _fill_payload(template: bytes, n: int, text: str) -> bytes:
    """Seed ``template``'s native payload as ``inbound(n)`` makes it, packed as stored."""
    raw = json.loads(sqlite_schema.payload_json(template))
    raw["id"] = str(n)
    raw["status"]["id"] = f"m{n}"
    raw["status"]["content"] = f"<p>@shop {text}</p>"
    raw["status"]["uri"] = f"https://mastodon.example/users/c/statuses/m{n}"
    return zlib.compress(sqlite_schema.payload_digest(raw)[1])


def _payload_digest(packed: bytes) -> bytes:
    return hashlib.blake2b(zlib.decompress(packed), digest_size=16).digest()


def multiply(path: Path, seeds: int, size: int, chunk: int = 100_000, *,
             settle: bool = True) -> None:
    """Copy the ``seeds`` stored answered messages in SQL until the store holds ``size``.

    The store must be closed (it holds the file's lock while open). Each chunk
    of copies is one transaction; the search index follows by the store's own
    triggers on ``messages``, and is then settled (`settle_index`) unless
    ``settle`` is false (the index as bulk copying leaves it).
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.create_function("unpack", 1, lambda b: zlib.decompress(b).decode(),
                             deterministic=True)
        conn.create_function("pack", 1, lambda s: zlib.compress(s.encode()), deterministic=True)
        conn.create_function("fill_payload", 3, _fill_payload, deterministic=True)
        conn.create_function("payload_digest", 1, _payload_digest, deterministic=True)
        conn.execute(_TEMPLATES)
        conn.execute("CREATE UNIQUE INDEX temp.tmpl_t ON tmpl (t)")
        (found,) = conn.execute("SELECT count(*) FROM tmpl").fetchone()
        if found != seeds:
            raise SystemExit(f"{found} seed messages found of {seeds}")
        conn.execute(_WORDS)
        conn.executemany("INSERT INTO words VALUES (?, ?)", enumerate(WORDS))
        for first in range(seeds, size, chunk):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_NUMBERS, {"first": first, "end": min(first + chunk, size),
                                    "seeds": seeds})
            for statement in (_PAYLOADS + _COPIES).split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        if settle:
            settle_index(conn, size)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def settle_index(conn: sqlite3.Connection, size: int) -> None:
    """Leave the search index as a store that got its messages a commit at a time has it.

    FTS5 keeps its index as segments on levels: each commit that adds entries
    writes a small segment on level 0, and when a level holds ``automerge`` (4)
    segments they are merged into one on the next level, so a level's number
    says how many merges made its segments, not how big they are. Copies written
    100,000 to a transaction make big segments on the lowest levels (at 1M:
    9,100 pages on levels 1-3), which the next few thousand commits merge again
    and again as they climb: work in proportion to the whole index, falling on
    the timed events. A store that got its messages one commit at a time has
    its big segments on high levels, reached only after as many commits as the
    store holds entries. This merges the index into one segment (``optimize``)
    on the level such a store's biggest segment has (two commits with search
    entries per answered message, as the timed calls make), or the one above:
    an entry re-added in place (deleted and added again, so the index holds
    what it held), then ``optimize``, which puts its one segment above the
    highest level listed (two levels up at a time), until it is there. The
    timed events' commits merge up to level 2 or 3, far below either.
    """
    level = max(1, int(math.log(2 * size, 4)) - 2)
    seq, text = conn.execute("SELECT seq, text FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    for _ in range(64):
        if index_levels(conn) > level:
            return
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?, ?)",
                     (seq, text))
        conn.execute("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (seq, text))
        conn.execute("COMMIT")
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    raise SystemExit(f"the search index did not reach level {level}")


def index_levels(conn: sqlite3.Connection) -> int:
    """How many levels the search index's structure record lists (FTS5's own format).

    The record (row 10 of ``messages_fts_data``) starts with a 4-byte cookie, then
    (in newer SQLite versions) a 4-byte marker ``ff 00 00 01``, then the number of levels as
    a varint (at most 64, so one byte).
    """
    (block,) = conn.execute("SELECT block FROM messages_fts_data WHERE id = 10").fetchone()
    at = 8 if block[4:8] == b"\xff\x00\x00\x01" else 4
    return int(block[at])


async def fill(path: Path, size: int, synchronous: Literal["normal", "full"], *,
               settle: bool = True) -> SQLiteStore:
    """A store at ``path`` holding ``size`` answered messages; returned open (and checked)."""
    seeds = min(size, SEEDS)
    async with SQLiteStore(path, synchronous=synchronous) as store:
        await seed(store, seeds)
    if size > seeds:
        await anyio.to_thread.run_sync(functools.partial(multiply, path, seeds, size,
                                                         settle=settle))
    store = SQLiteStore(path, synchronous=synchronous)
    await store.open()  # quick_check and the schema checks
    await check(store, path, seeds, size)
    return store


async def check(store: SQLiteStore, path: Path, seeds: int, size: int, samples: int = 20) -> None:
    """Stop unless the filled store reads back as ``inbound``/``answer`` would have written it."""
    picked = _samples(seeds, size, samples)
    with sqlite3.connect(path) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM outbox), (SELECT count(*) FROM payloads),"
            " (SELECT count(*) FROM conversations)").fetchone()
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        (fts_rows,) = conn.execute("SELECT count(*) FROM messages_fts").fetchone()
        keys = {n: conn.execute(
            "SELECT o.key FROM messages AS m JOIN outbox AS o ON o.raw = m.raw"
            " WHERE m.network = 'mastodon' AND m.id = ?", (f"m{n}",)).fetchone()[0]
            for n in picked}
    expected = (size, 2 * size, size, size, size)
    if counts != expected or fts_rows != 2 * size:
        raise SystemExit(f"filled store: counts {counts} (events, messages, outbox, payloads,"
                         f" conversations), search rows {fts_rows}; expected {expected}")
    for n in picked:
        wanted = inbound(n).message
        ref = wanted.ref
        got = await store.get_message(ref)
        thread = await store.conversation_messages(ref, limit=20)
        item = await store.get_outbox(keys[n])
        hits = await store.search(f"ticket{n}", network=NET)
        problems = [
            name for name, ok in (
                ("message", got == wanted),
                ("conversation", [m.ref.id for m in thread] == [f"m{n}", f"r{n}"]
                 and thread[1] == our_reply(n, wanted)),
                ("event", await store.is_handled(inbound(n).id)),
                ("outbox", item is not None and item.status == "sent"
                 and item.action == Reply(network=NET, to=wanted, text=CANNED,
                                          idempotency_key=item.key)
                 and item.sent is not None and item.sent.ref.id == f"r{n}"),
                ("search", [m.ref for m in hits] == [ref]),
            ) if not ok
        ]
        if problems:
            raise SystemExit(f"filled store: copy {n} reads back wrong: {', '.join(problems)}")


def _samples(seeds: int, size: int, count: int) -> list[int]:
    picker = random.Random(size)
    return sorted({picker.randrange(size) for _ in range(count)}
                  | {seeds - 1, size - 1, min(seeds, size - 1)})[:count]


def file_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")
               if not p.name.endswith("-lock"))


async def storage(folder: Path, count: int) -> None:
    empty = folder / "empty.db"
    async with SQLiteStore(empty):
        pass
    path = folder / "storage.db"
    raw_bytes = 0
    async with SQLiteStore(path) as store:
        for n in range(count):
            event = inbound(n)
            raw_bytes += len(json.dumps(event.message.raw, separators=(",", ":")).encode())
            await answer(store, event, n)
    per_message = (file_bytes(path) - file_bytes(empty)) / count
    per_raw = raw_bytes / count
    print(f"storage: {count} answered messages; raw payload {per_raw:,.0f} B per message, "
          f"store {per_message:,.0f} B per message = {per_message / per_raw:.2f}x the payload "
          f"(goal <= 2x); {per_message * 100_000 / 1e9:.2f} GB per 100,000")


async def per_event(store: SQLiteStore, start: int, events: int, calls: Calls) -> float:
    batch = [inbound(n) for n in range(start, start + events)]
    began = time.perf_counter()
    for offset, event in enumerate(batch):
        await answer(store, event, start + offset, calls)
    return (time.perf_counter() - began) / events


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    print(f"load average before: {load()} ({os.cpu_count()} cpus)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        if args.storage:
            await storage(folder, args.storage)
        sizes = [int(size) for size in args.sizes.split(",") if size]
        runs = [str(size) for size in sizes]
        stores: dict[str, SQLiteStore] = {}
        for size in sizes:
            began = time.perf_counter()
            path = folder / f"s{size}.db"
            bulk = args.bulk_index and size == sizes[-1] and size > SEEDS
            stores[str(size)] = await fill(path, size, args.synchronous, settle=not bulk)
            print(f"filled {size:>8} in {time.perf_counter() - began:6.1f} s"
                  f" (checked), {file_bytes(path) / 2**20:,.0f} MiB", flush=True)
            if bulk:  # the same store twice: its index as copied, and settled
                await stores[str(size)].aclose()
                twin = folder / f"s{size}-bulk.db"
                await anyio.to_thread.run_sync(shutil.copyfile, path, twin)
                await anyio.to_thread.run_sync(_settle_file, path, size)
                stores[str(size)] = await _opened(path, args.synchronous)
                await check(stores[str(size)], path, SEEDS, size)
                stores[f"{size} bulk"] = await _opened(twin, args.synchronous)
                runs.append(f"{size} bulk")
        next_n = {run: int(run.split()[0]) for run in runs}
        cost: dict[str, list[float]] = {run: [] for run in runs}
        calls = {run: Calls() for run in runs}
        for repeat in range(args.repeats):
            shift = repeat % len(runs) if runs else 0
            for run in runs[shift:] + runs[:shift]:
                cost[run].append(await per_event(stores[run], next_n[run], args.events,
                                                 calls[run]))
                next_n[run] += args.events
        for store in stores.values():
            await store.aclose()
    print(f"load average after:  {load()}")
    if not runs:
        return
    base = statistics.median(cost[runs[0]])
    print(f"\nsynchronous={args.synchronous}, {args.repeats} repeats x {args.events} events")
    print(f"{'stored':>12} {'event min us':>13} {'median us':>10} {'x first':>8}")
    for run in runs:
        c = cost[run]
        print(f"{run:>12} {min(c) * 1e6:13.0f} {statistics.median(c) * 1e6:10.0f} "
              f"{statistics.median(c) / base:8.2f}")
    events = args.repeats * args.events
    print(f"\nmean us per event in each call ({events} events per size; x first: "
          f"{runs[len(sizes) - 1]} against {runs[0]})")
    print(f"{'call':>22} " + " ".join(f"{run:>12}" for run in runs) + f" {'x first':>8}")
    for name in calls[runs[0]].spent:
        spent = [calls[run].spent[name] / events * 1e6 for run in runs]
        print(f"{name:>22} " + " ".join(f"{us:12.0f}" for us in spent)
              + f" {spent[len(sizes) - 1] / spent[0]:8.2f}")


def _settle_file(path: Path, size: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        settle_index(conn, size)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def _opened(path: Path, synchronous: Literal["normal", "full"]) -> SQLiteStore:
    store = SQLiteStore(path, synchronous=synchronous)
    await store.open()
    return store


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--storage", type=int, default=500,
                        help="answered messages for the storage figure (0: skip)")
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--dir", default=None, help="folder for the temporary stores")
    parser.add_argument("--bulk-index", action="store_true",
                        help="also measure the largest size with its search index as bulk"
                             " copying leaves it (not settled: see settle_index)")
    anyio.run(main, parser.parse_args())
