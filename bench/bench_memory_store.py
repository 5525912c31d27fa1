"""Benchmark: what one answered event costs a MemoryStore holding 1k, 10k and 100k events.

Each store is filled with ``size`` answered conversations (event, message, a
sent outbox item, our reply), then measured on what the hub asks of the store
for one more inbound message that it answers: ``record_batch``,
``conversation_messages``, ``recent_recipients`` (the guardrail, on the same
canned reply text every time; one message a minute, so the guardrail's hour
holds 60 earlier replies at every size), ``enqueue``, ``claim_due``, ``update_outbox``
(sent), ``save_messages`` and ``mark_handled``; and, separately, one
``search`` for a word one message holds (what a scan of every message
would make grow with the store).

The sizes are measured interleaved (the order rotates each repeat), ``--events``
events per run; prints min and median microseconds per event and per search,
the ratio to the 1k store, and the machine's load.

Run: ``.venv/bin/python bench/bench_memory_store.py [--repeats 5] [--events 500]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import anyio

from omnichannel.actions import Reply, Sent
from omnichannel.events import MessageReceived, event_id
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import MemoryStore, OutboxItem

NET = "mastodon"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = Person(ref=Ref(network=NET, id="1"), handle="shop")
CANNED = "Thanks, we are looking into it!"
WORDS = ["order", "parcel", "refund", "invoice", "late", "broken", "thanks", "please",
         "help", "account"]


def inbound(n: int) -> MessageReceived:
    customer = Person(ref=Ref(network=NET, id=f"u{n % 5000}"), handle=f"c{n % 5000}")
    msg_ref = Ref(network=NET, id=f"m{n}")
    text = f"{WORDS[n % len(WORDS)]} {WORDS[(n // 7) % len(WORDS)]} number{n % 100} ticket{n}"
    message = Message(ref=msg_ref, conversation=msg_ref, author=customer, text=text,
                      created_at=T0 + timedelta(minutes=n))
    return MessageReceived(
        id=event_id("message.received", msg_ref), network=NET, account=US.ref.id,
        occurred_at=message.created_at, message=message,
        conversation=Conversation(ref=msg_ref, kind="thread", account=US.ref),
    )


async def answer(store: MemoryStore, event: MessageReceived, n: int) -> None:
    """The store calls of the hub for one inbound message it answers."""
    await store.record_batch(NET, [event], cursor=str(n))
    message = event.message
    await store.conversation_messages(message.conversation, limit=20)
    now = message.created_at
    await store.recent_recipients(network=NET, text_digest="canned",
                                  since=now - timedelta(hours=1))
    action = Reply(network=NET, to=message, text=CANNED)
    item = OutboxItem.for_action(action, origin="handler:bench", recipient=message.author.ref.id,
                                 text_digest="canned", now=now)
    await store.enqueue(item)
    for claimed in await store.claim_due(now=now, limit=20):
        ref = Ref(network=NET, id=f"r{n}")
        sent = Sent(idempotency_key=claimed.key, ref=ref, conversation=message.conversation,
                    sent_at=now)
        await store.update_outbox(claimed.key, status="sent", sent=sent)
        await store.save_messages([Message(
            ref=ref, conversation=message.conversation, author=US, text=CANNED,
            created_at=now, in_reply_to=message.ref, from_us=True,
        )])
    await store.mark_handled(event.id)


async def filled(size: int) -> MemoryStore:
    store = MemoryStore()
    await store.open()
    for n in range(size):
        await answer(store, inbound(n), n)
    return store


async def per_event(store: MemoryStore, start: int, events: int) -> float:
    batch = [inbound(n) for n in range(start, start + events)]
    began = time.perf_counter()
    for offset, event in enumerate(batch):
        await answer(store, event, start + offset)
    return (time.perf_counter() - began) / events


async def per_search(store: MemoryStore, size: int, searches: int) -> float:
    began = time.perf_counter()
    for n in range(searches):
        found = await store.search(f"ticket{n * 7919 % size}", limit=20)
        assert len(found) == 1
    return (time.perf_counter() - began) / searches


async def main(args: argparse.Namespace) -> None:
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cpus)")
    stores: dict[int, MemoryStore] = {}
    for size in sizes:
        began = time.perf_counter()
        stores[size] = await filled(size)
        print(f"filled {size:>7} in {time.perf_counter() - began:6.1f} s")
    next_n = {size: size for size in sizes}
    event_cost: dict[int, list[float]] = {size: [] for size in sizes}
    search_cost: dict[int, list[float]] = {size: [] for size in sizes}
    for repeat in range(args.repeats):
        shift = repeat % len(sizes)
        for size in sizes[shift:] + sizes[:shift]:
            event_cost[size].append(await per_event(stores[size], next_n[size], args.events))
            next_n[size] += args.events
            search_cost[size].append(await per_search(stores[size], size, args.searches))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    base_event = statistics.median(event_cost[sizes[0]])
    base_search = statistics.median(search_cost[sizes[0]])
    print(f"{'stored':>8} {'event min us':>13} {'median us':>10} {'x 1k':>6}"
          f"   {'search min us':>14} {'median us':>10} {'x 1k':>6}")
    for size in sizes:
        e, s = event_cost[size], search_cost[size]
        print(f"{size:>8} {min(e) * 1e6:13.0f} {statistics.median(e) * 1e6:10.0f} "
              f"{statistics.median(e) / base_event:6.2f}   {min(s) * 1e6:14.0f} "
              f"{statistics.median(s) * 1e6:10.0f} {statistics.median(s) / base_search:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    anyio.run(main, parser.parse_args())
