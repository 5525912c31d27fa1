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

The stores for (2) are built fast: ``record_batch`` and ``save_messages`` with
1,000 messages per call (one transaction each) and the outbox rows inserted in
bulk through the store's own connection, in the shape ``enqueue`` and
``update_outbox`` give them. Every row is what the per-event calls would have
written; only the number of transactions differs.

Run: ``.venv/bin/python bench/bench_store_sqlite.py [--sizes 1000,10000,100000]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from omnichannel.actions import Reply, Sent
from omnichannel.events import MessageReceived, event_id
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import OutboxItem, SQLiteStore
from omnichannel.store import sqlite as sqlite_module

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


async def answer(store: SQLiteStore, event: MessageReceived, n: int) -> None:
    """The store calls of the hub for one inbound message it answers."""
    await store.record_batch(NET, [event], cursor=str(n))
    message = event.message
    await store.conversation_messages(message.conversation, limit=20)
    now = message.created_at
    await store.recent_recipients(network=NET, text_digest="canned",
                                  since=now - timedelta(hours=1))
    await store.enqueue(outbox_item(message))
    for claimed in await store.claim_due(now=now, limit=20):
        sent = Sent(idempotency_key=claimed.key, ref=Ref(network=NET, id=f"r{n}"),
                    conversation=message.conversation, sent_at=now)
        await store.update_outbox(claimed.key, status="sent", sent=sent)
        await store.save_messages([our_reply(n, message)])
    await store.mark_handled(event.id)


async def bulk_fill(store: SQLiteStore, size: int, chunk: int = 1000) -> None:
    """Write ``size`` answered messages, ``chunk`` per transaction (see the module doc)."""
    for start in range(0, size, chunk):
        numbers = range(start, min(start + chunk, size))
        events = [inbound(n) for n in numbers]
        await store.record_batch(NET, events, cursor=str(numbers[-1]))
        replies = [our_reply(n, e.message) for n, e in zip(numbers, events, strict=True)]
        await store.save_messages(replies)
        items = [outbox_item(e.message) for e in events]

        def write(conn: sqlite3.Connection, items: list[OutboxItem] = items) -> None:
            payloads = sqlite_module._Payloads(conn)
            for item in items:
                action, digest = sqlite_module._action_json(item.action, payloads)
                sent = Sent(idempotency_key=item.key, ref=Ref(network=NET, id="r"),
                            conversation=item.action.to.conversation,  # type: ignore[union-attr]
                            sent_at=item.created_at)
                ts = sqlite_module._ts
                conn.execute(sqlite_module._INSERT_OUTBOX, (
                    item.key, item.network, "sent", 1, ts(item.next_attempt_at),
                    ts(item.created_at), ts(item.updated_at), item.origin, item.approved_by,
                    item.recipient, item.text_digest, None, action, sent.model_dump_json(),
                    digest, None, None,
                ))
            conn.execute("UPDATE events SET handled = 1 WHERE handled = 0")

        await store._write(write, operation="bulk_fill")


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


async def per_event(store: SQLiteStore, start: int, events: int) -> float:
    batch = [inbound(n) for n in range(start, start + events)]
    began = time.perf_counter()
    for offset, event in enumerate(batch):
        await answer(store, event, start + offset)
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
        stores: dict[int, SQLiteStore] = {}
        for size in sizes:
            began = time.perf_counter()
            stores[size] = SQLiteStore(folder / f"s{size}.db", synchronous=args.synchronous)
            await stores[size].open()
            await bulk_fill(stores[size], size)
            print(f"filled {size:>8} in {time.perf_counter() - began:6.1f} s")
        next_n = dict.fromkeys(sizes, 0)
        for size in sizes:
            next_n[size] = size
        cost: dict[int, list[float]] = {size: [] for size in sizes}
        for repeat in range(args.repeats):
            shift = repeat % len(sizes) if sizes else 0
            for size in sizes[shift:] + sizes[:shift]:
                cost[size].append(await per_event(stores[size], next_n[size], args.events))
                next_n[size] += args.events
        for store in stores.values():
            await store.aclose()
    print(f"load average after:  {load()}")
    if not sizes:
        return
    base = statistics.median(cost[sizes[0]])
    print(f"\nsynchronous={args.synchronous}, {args.repeats} repeats x {args.events} events")
    print(f"{'stored':>9} {'event min us':>13} {'median us':>10} {'x first':>8}")
    for size in sizes:
        c = cost[size]
        print(f"{size:>9} {min(c) * 1e6:13.0f} {statistics.median(c) * 1e6:10.0f} "
              f"{statistics.median(c) / base:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--storage", type=int, default=500,
                        help="answered messages for the storage figure (0: skip)")
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--dir", default=None, help="folder for the temporary stores")
    anyio.run(main, parser.parse_args())
