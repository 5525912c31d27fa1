"""Benchmark: delivering replies across many conversations, against a sequential loop.

A fake Mastodon (a sandbox's recorded answers) runs in a child process (its own
interpreter, so it does not share our GIL), a bare HTTP/1.1 server on loopback
(``bench/_loopback.py``), with a fixed delay on every
``POST /api/v1/statuses`` standing for the network round trip (100 ms by
default) and its default rate limit (300 requests per 5 minutes per account)
in force. Customers have opened ``--conversations`` threads; we answer each
``--replies / --conversations`` times, replies queued round-robin (answer 1 of
every thread, then answer 2...).

Compared, in the same run, each on a fresh sandbox, interleaved (the order
rotates each repeat):

- ``outbox L=<n>``: the `Outbox` worker with ``max_in_flight=n`` and the
  Mastodon adapter, on a `MemoryStore`: from the first ``submit`` until the
  last item is marked sent. Its ideal is
  ``max(ceil(replies / n), replies per thread) * round trip``;
- ``httpx loop``: a plain ``httpx.AsyncClient`` posting the same statuses one
  after another (what a sequential ``status_post`` loop does);
- ``Mastodon.py loop``: ``Mastodon.status_post`` in a loop, when Mastodon.py is
  installed (skipped with a message otherwise).

Prints min and median seconds of each, the outbox's ratio to its ideal and to
the sequential loops, the 429s the sandbox served, and the machine's load.

Run: ``.venv/bin/python bench/bench_delivery.py [--repeats 5] [--limits 16,50]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import _loopback
import anyio
import httpx
from _loopback import Answer, recorded_mastodon

from omnichannel.actions import Reply
from omnichannel.model import Message, Person, Ref
from omnichannel.outbox import Outbox
from omnichannel.store import MemoryStore, OutboxItem


def serve(rtt: float, conversations: int) -> None:
    """Child process: Mastodon's answers over bare HTTP/1.1 (`_loopback`), until stdin closes.

    Every ``POST /api/v1/statuses`` is answered ``rtt`` seconds later with a
    status of a new id, and counts against a budget of 300 requests (then 429),
    as Mastodon's default limit does; the rate-limit headers say what is left.
    """
    answers = recorded_mastodon()
    state = {"statuses": 0, "served_429": 0, "left": 300}
    reset = "2099-01-01T00:00:00.000000Z"

    def answer(method: str, path: str, body: bytes) -> Answer:
        headers = {"x-ratelimit-limit": "300", "x-ratelimit-reset": reset}
        if method == "POST" and path.startswith("/api/v1/statuses"):
            if state["left"] == 0:
                state["served_429"] += 1
                return Answer(429, b'{"error": "Too many requests"}',
                              {**headers, "x-ratelimit-remaining": "0"})
            state["left"] -= 1
            state["statuses"] += 1
            status = dict(answers["status"], id=str(2 * 10**17 + state["statuses"]))
            return Answer(200, json.dumps(status).encode(),
                          {**headers, "x-ratelimit-remaining": str(state["left"])}, delay=rtt)
        headers["x-ratelimit-remaining"] = str(state["left"])
        if path.startswith("/api/v1/accounts/verify_credentials"):
            return Answer(200, json.dumps(answers["me"]).encode(), headers)
        if path.startswith("/api/v2/instance"):
            return Answer(200, json.dumps(answers["instance"]).encode(), headers)
        return Answer(404, b'{"error": "Record not found"}', headers)

    mentions = [str(10**17 + n) for n in range(conversations)]
    _loopback.serve(answer, {"token": "bench-token", "mentions": mentions},
                    lambda: {"served_429": state["served_429"], "statuses": state["statuses"]})


class Server(_loopback.Child):
    """The fake Mastodon in a child process, fresh for one measured run."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__([__file__, "--serve", "--rtt", str(args.rtt),
                          "--conversations", str(args.conversations)])
        self.token: str = self.info["token"]
        self.mentions: list[str] = self.info["mentions"]


def plan(args: argparse.Namespace, mentions: list[str]) -> list[tuple[str, str]]:
    """(status id answered, text) of every reply, round-robin over the threads."""
    rounds = args.replies // len(mentions)
    return [(m, f"answer {n} to {m}") for n in range(rounds) for m in mentions]


class _Counting(Outbox):
    def __init__(self, *args: Any, total: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.total = total
        self.sent = 0
        self.done = anyio.Event()

    async def deliver(self, item: OutboxItem) -> OutboxItem:
        updated = await super().deliver(item)
        if updated.status in ("sent", "failed"):
            self.sent += updated.status == "sent"
            self.total -= 1
            if self.total == 0:
                self.done.set()
        return updated


def customer_message(status_id: str) -> Message:
    """The customer's mention, as the adapter would have read it."""
    return Message(
        ref=Ref(network="mastodon", id=status_id),
        conversation=Ref(network="mastodon", id=status_id),
        author=Person(ref=Ref(network="mastodon", id="7"), handle="alice"),
        text="@shop help with my order", created_at=datetime.now(UTC),
    )


async def run_outbox(args: argparse.Namespace, server: Server, limit: int) -> tuple[float, int]:
    from omnichannel_mastodon import MastodonAdapter

    adapter = MastodonAdapter({"base_url": server.url, "access_token": server.token,
                               "page_size": 80})
    async with adapter, MemoryStore() as store:
        messages = {status_id: customer_message(status_id) for status_id in server.mentions}
        replies = plan(args, server.mentions)
        outbox = _Counting(store, {"mastodon": adapter}, total=len(replies),
                           max_in_flight=limit, ambiguous_delay=timedelta(seconds=0.2))
        async with anyio.create_task_group() as tg:
            start = time.perf_counter()
            await tg.start(outbox.run)
            for status_id, text in replies:
                action = Reply(network="mastodon", to=messages[status_id], text=text)
                await outbox.submit(action, origin="bench")
            await outbox.done.wait()
            elapsed = time.perf_counter() - start
            tg.cancel_scope.cancel()
    return elapsed, outbox.sent


async def run_httpx(args: argparse.Namespace, server: Server) -> tuple[float, int]:
    sent = 0
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {server.token}"}
    ) as client:
        start = time.perf_counter()
        for status_id, text in plan(args, server.mentions):
            response = await client.post("/api/v1/statuses", data={
                "status": f"@alice {text}", "in_reply_to_id": status_id,
                "visibility": "public",
            })
            sent += response.status_code == 200
            response.json()
        return time.perf_counter() - start, sent


def run_mastodonpy(args: argparse.Namespace, server: Server) -> tuple[float, int]:
    from mastodon import Mastodon

    api = Mastodon(access_token=server.token, api_base_url=server.url,
                   version_check_mode="none")
    sent = 0
    start = time.perf_counter()
    for status_id, text in plan(args, server.mentions):
        api.status_post(f"@alice {text}", in_reply_to_id=status_id, visibility="public")
        sent += 1
    return time.perf_counter() - start, sent


def mastodonpy_installed() -> bool:
    try:
        import mastodon  # noqa: F401
    except ImportError:
        return False
    return True


def measure(args: argparse.Namespace, name: str, runner: Callable[[Server], tuple[float, int]],
            served: dict[str, list[int]]) -> float:
    server = Server(args)
    try:
        elapsed, sent = runner(server)
    finally:
        counts = server.close()
    served.setdefault(name, []).append(counts["served_429"])
    if sent != args.replies or counts["statuses"] != args.replies:
        raise SystemExit(f"{name}: {sent} sent, {counts['statuses']} statuses posted, "
                         f"expected {args.replies}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--rtt", type=float, default=0.1, help="seconds per POST")
    parser.add_argument("--limits", default="16,50", help="max_in_flight values to run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.rtt, args.conversations)
        return
    if args.replies % args.conversations:
        raise SystemExit("--replies must be a multiple of --conversations")

    limits = [int(value) for value in args.limits.split(",")]
    runners: dict[str, Callable[[Server], tuple[float, int]]] = {}
    for limit in limits:
        runners[f"outbox L={limit}"] = (
            lambda server, limit=limit: anyio.run(run_outbox, args, server, limit)
        )
    runners["httpx loop"] = lambda server: anyio.run(run_httpx, args, server)
    if mastodonpy_installed():
        runners["Mastodon.py loop"] = lambda server: run_mastodonpy(args, server)
    else:
        print("Mastodon.py is not installed: its loop is skipped (pip install Mastodon.py)")

    print(f"{args.replies} replies in {args.conversations} conversations, "
          f"{args.rtt * 1000:.0f} ms per POST, {args.repeats} repeats, interleaved")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cpus)")
    times: dict[str, list[float]] = {name: [] for name in runners}
    served: dict[str, list[int]] = {}
    names = list(runners)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(measure(args, name, runners[name], served))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    per_thread = args.replies // args.conversations
    print(f"{'':18} {'min s':>8} {'median s':>9} {'429s':>5}")
    for name in names:
        print(f"{name:18} {min(times[name]):8.2f} {statistics.median(times[name]):9.2f} "
              f"{sum(served[name]):5d}")
    print()
    for limit in limits:
        name = f"outbox L={limit}"
        ideal = max(math.ceil(args.replies / limit), per_thread) * args.rtt
        best, median = min(times[name]), statistics.median(times[name])
        print(f"{name}: ideal {ideal:.2f} s; x ideal {best / ideal:.2f} (min) "
              f"{median / ideal:.2f} (median)")
        for peer in names:
            if peer.startswith("outbox"):
                continue
            print(f"  {peer} / {name}: {min(times[peer]) / best:.1f}x (min) "
                  f"{statistics.median(times[peer]) / median:.1f}x (median)")


if __name__ == "__main__":
    main()
