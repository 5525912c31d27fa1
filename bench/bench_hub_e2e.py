"""Benchmark: a whole hub on SQLite answering messages, against a bare httpx loop.

A fake Mastodon runs in a child process (a bare HTTP/1.1 server on loopback,
``bench/_loopback.py``) holding ``--messages`` mention notifications, each a
recorded one (``tests/vectors/mastodon``) with its own ids, customer and text;
it serves them in pages (``min_id``, ``limit``, a ``Link`` header as Mastodon
sends), holds the streaming connection open, and answers every
``POST /api/v1/statuses`` with a new status. Compared, each on a fresh server,
in a fresh interpreter, interleaved (the order rotates each repeat):

- ``hub``: `Hub` with a `SQLiteStore` in a temporary file (default settings:
  ``synchronous="full"``), the Mastodon adapter (its stream, caught up by
  polling pages of 80), `AutoSend`, and one handler answering each message
  with ``ctx.reply``; from ``hub.run`` starting (store and adapter already
  open, the source's cursor stored) until every message is answered and
  ``hub.wait_idle()`` returns (every event marked handled);
- ``bare``: an ``httpx.AsyncClient`` loop doing the same requests with no
  store: each page in turn, then one ``POST`` reply per message of it;
- ``hub-memory`` (with ``--memory``): the same hub on a `MemoryStore`, which
  shows what the hub costs with no store work to speak of;
- ``hub@<dir>`` (with ``--compare-src DIR``): the hub case run on another
  checkout's code (``DIR/src`` and ``DIR/adapters/mastodon/src`` first on
  ``PYTHONPATH``), for before/after figures in one run; with ``--memory``
  also ``hub-memory@<dir>``.

Prints min and median seconds of each, and the CPU time of the measured
process per message (the fake network's not included; steadier than seconds
on a busy machine), the ratio bare / hub (the goal: at least 0.5), the hub's
store calls and write transactions per answered message (counted on the
store: transactions are ``COMMIT``s; hops to the store's thread are its
transactions and the reads that run there), and the machine's load before
and after. With ``--statements``, also the CPU time of each SQLite statement
the hub runs in its event loop's thread, per message (timing them adds to the
CPU figures: compare those from runs without it).

Run: ``.venv/bin/python bench/bench_hub_e2e.py [--messages 400] [--repeats 5]
[--compare-src ../main]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import _loopback
from _loopback import Answer

ROOT = Path(__file__).resolve().parent.parent
VECTOR = (ROOT / "tests" / "vectors" / "mastodon" / "decoded"
          / "mastodonpy__test_notifications_mentions_only.json")
PAGE = 80
TOKEN = "bench-token"  # noqa: S105 - a fake server's


# the fake network (child process) ------------------------------------------------


def _template() -> dict[str, Any]:
    for interaction in json.loads(VECTOR.read_text("utf-8"))["interactions"]:
        body = interaction.get("response_body")
        if isinstance(body, dict) and body.get("type") == "mention":
            return body
    raise SystemExit(f"no mention notification in {VECTOR}")


def notifications(count: int, me: dict[str, Any]) -> list[dict[str, Any]]:
    """``count`` mention notifications of our account, oldest first, each its own."""
    template = _template()
    handle = me["username"]
    found = []
    for n in range(count):
        item = copy.deepcopy(template)
        customer = 5000 + n % 500
        status = item["status"]
        item["id"] = str(n + 1)
        item["account"] = status["account"] = dict(
            status["account"], id=str(customer), username=f"customer{customer}",
            acct=f"customer{customer}",
        )
        status["id"] = str(10**17 + n)
        status["uri"] = f"https://mastodon.example/users/customer{customer}/statuses/{n}"
        status["url"] = f"https://mastodon.example/@customer{customer}/{n}"
        status["content"] = f"<p>@{handle} where is my order? ticket {n}</p>"
        status["mentions"] = [{"id": me["id"], "username": handle, "acct": handle,
                               "url": me.get("url", "")}]
        found.append(item)
    return found


def serve(count: int) -> None:
    """Child process: the fake Mastodon, until stdin closes."""
    answers = _loopback.recorded_mastodon()
    # The stream on this server, not at the host the sandbox announces.
    answers["instance"]["configuration"]["urls"].pop("streaming", None)
    inbox = notifications(count, answers["me"])
    posted: list[str] = []
    state = {"pages": 0}

    def page(query: str) -> Answer:
        params = parse_qs(query)
        limit = int(params.get("limit", ["40"])[0])
        if "min_id" in params:
            start = int(params["min_id"][0])
            chosen = inbox[start:start + limit]
        else:
            chosen = inbox[-limit:]
        state["pages"] += 1
        headers = {}
        if chosen:
            base = "http://mastodon.example/api/v1/notifications"
            headers["link"] = (f'<{base}?max_id={chosen[0]["id"]}>; rel="next", '
                               f'<{base}?min_id={chosen[-1]["id"]}>; rel="prev"')
        return Answer(200, json.dumps(chosen[::-1]).encode(), headers)

    def answer(method: str, target: str, body: bytes) -> Answer:
        url = urlsplit(target)
        if method == "POST" and url.path == "/api/v1/statuses":
            form = parse_qs(body.decode())
            posted.append(form.get("in_reply_to_id", [""])[0])
            status = dict(answers["status"], id=str(2 * 10**17 + len(posted)),
                          content=form.get("status", [""])[0])
            return Answer(200, json.dumps(status).encode())
        if url.path == "/api/v1/notifications":
            return page(url.query)
        if url.path.startswith("/api/v1/streaming/"):
            return Answer(stream=True)
        if url.path == "/api/v1/accounts/verify_credentials":
            return Answer(200, json.dumps(answers["me"]).encode())
        if url.path == "/api/v2/instance":
            return Answer(200, json.dumps(answers["instance"]).encode())
        if url.path.endswith("/context"):
            return Answer(200, b'{"ancestors": [], "descendants": []}')
        return Answer(404, b'{"error": "Record not found"}')

    _loopback.serve(answer, {"token": TOKEN}, lambda: {
        "pages": state["pages"], "replies": len(posted), "answered": len(set(posted)),
    })


# the measured runs (each in a child interpreter) ---------------------------------


def run_bare(url: str) -> dict[str, Any]:
    import anyio
    import httpx

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=url, headers={"authorization": f"Bearer {TOKEN}"}
        ) as client:
            start, cpu = time.perf_counter(), time.process_time()
            cursor, replies = "0", 0
            while True:
                response = await client.get("/api/v1/notifications", params={
                    "types[]": ["mention", "favourite", "update"], "limit": PAGE,
                    "min_id": cursor,
                })
                page = response.json()
                for item in reversed(page):
                    status = item["status"]
                    reply = await client.post("/api/v1/statuses", data={
                        "status": f"@{status['account']['acct']} we are on it, "
                                  f"ticket {status['id']}",
                        "in_reply_to_id": status["id"], "visibility": "public",
                    })
                    reply.raise_for_status()
                    reply.json()
                    replies += 1
                if page:
                    cursor = response.links["prev"]["url"].rpartition("min_id=")[2]
                if len(page) < PAGE:
                    break
            return {"seconds": time.perf_counter() - start, "replies": replies,
                    "cpu": time.process_time() - cpu}

    return anyio.run(main)


def time_statements() -> dict[str, list[float]]:
    """Time every SQLite statement run in this (the event loop's) thread, by its text.

    Returns the table it fills: the statement's first words -> [CPU seconds, count].
    Reads on the store's second, read-only connection are marked ``[reader]``.
    """
    import sqlite3
    import threading

    table: dict[str, list[float]] = {}
    here = threading.get_ident()
    connect = sqlite3.connect

    class Timed(sqlite3.Connection):
        reader = False

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self.reader = self.reader or "query_only" in sql
            began = time.thread_time()
            try:
                return super().execute(sql, *args)
            finally:
                if threading.get_ident() == here:
                    name = " ".join(sql.split())[:60] + (" [reader]" if self.reader else "")
                    entry = table.setdefault(name, [0.0, 0])
                    entry[0] += time.thread_time() - began
                    entry[1] += 1

    def timed_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", Timed)
        return connect(*args, **kwargs)

    sqlite3.connect = timed_connect  # type: ignore[assignment]
    return table


def run_hub(url: str, count: int, synchronous: str, memory: bool = False,
            statements: bool = False) -> dict[str, Any]:
    import sqlite3

    import anyio

    from omnichannel import Context, Hub, MemoryStore, MessageReceived, SQLiteStore
    from omnichannel.instrumentation import Instrumentation
    from omnichannel.policy import AutoSend
    from omnichannel_mastodon import MastodonAdapter

    class CountingStore(SQLiteStore):
        """Counts hops to the store's thread (by method) and ``COMMIT``s."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls: Counter[str] = Counter()
            self.commits = 0
            self.read_hops = 0

        def _trace(self, statement: str) -> None:
            if statement == "COMMIT":
                self.commits += 1

        async def open(self) -> None:
            await super().open()
            conn: sqlite3.Connection | None = self._conn
            assert conn is not None
            conn.set_trace_callback(self._trace)

        async def _call(self, work: Any) -> Any:
            caller = sys._getframe(1).f_code.co_name
            if caller != "_lookup":
                self.calls[caller] += 1
                self.read_hops += 1
            return await super()._call(work)

        async def _lookup(self, work: Any) -> Any:  # absent before: never called there
            self.calls[sys._getframe(1).f_code.co_name] += 1
            return await super()._lookup(work)

        async def _write(self, work: Any, *, operation: str) -> Any:
            self.calls[operation] += 1
            return await super()._write(work, operation=operation)

    class Answered(Instrumentation):
        def __init__(self) -> None:
            self.sent = 0
            self.done = anyio.Event()

        def delivery_outcome(self, item: Any, outcome: str, **kwargs: Any) -> None:
            if outcome == "sent":
                self.sent += 1
                if self.sent == count:
                    self.done.set()

    timed = time_statements() if statements else None

    async def main(path: str) -> dict[str, Any]:
        answered = Answered()
        store = MemoryStore() if memory else CountingStore(path, synchronous=synchronous)
        adapter = MastodonAdapter({"base_url": url, "access_token": TOKEN, "page_size": PAGE,
                                   "poll_interval": 60})
        hub = Hub(adapters=[adapter], store=store, policy=AutoSend(),
                  instrumentation=[answered])

        @hub.on(MessageReceived)
        async def answer(event: MessageReceived, ctx: Context) -> None:
            await ctx.reply(f"we are on it, ticket {event.message.ref.id}")

        async with hub:
            # Where the hub starts: before every notification (not a first run).
            await store.record_batch("mastodon", [], cursor="0", stream="notifications")
            if isinstance(store, CountingStore):
                store.calls.clear()
                store.commits = 0
                store.read_hops = 0
            if timed is not None:
                timed.clear()
            async with anyio.create_task_group() as tg:
                start, cpu = time.perf_counter(), time.process_time()
                await tg.start(hub.run)
                await answered.done.wait()
                await hub.wait_idle()
                seconds = time.perf_counter() - start
                cpu = time.process_time() - cpu
                hub.stop()
            handled = len(await store.unhandled_events())
        counts = store if isinstance(store, CountingStore) else None
        return {"seconds": seconds, "cpu": cpu, "replies": answered.sent, "unhandled": handled,
                "commits": counts.commits if counts else 0,
                "read_hops": counts.read_hops if counts else 0,
                "calls": dict(counts.calls) if counts else {},
                "statements": timed or {}}

    with tempfile.TemporaryDirectory() as folder:
        return anyio.run(main, str(Path(folder) / "hub.db"))


# the parent: interleaved runs ------------------------------------------------------


def measure(args: argparse.Namespace, case: str) -> dict[str, Any]:
    server = _loopback.Child([__file__, "--serve", "--messages", str(args.messages)])
    env = dict(os.environ)
    kind = case
    if "@" in case:
        kind, tree = case.split("@", 1)[0], Path(case.split("@", 1)[1])
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tree / "src"), str(tree / "adapters" / "mastodon" / "src"),
             env.get("PYTHONPATH", "")]
        )
    try:
        done = subprocess.run(  # noqa: S603 - our own script
            [sys.executable, __file__, "--run", kind, "--url", server.url,
             "--messages", str(args.messages), "--synchronous", args.synchronous]
            + (["--statements"] if args.statements else []),
            env=env, capture_output=True, text=True, check=False, timeout=300,
        )
    finally:
        counts = server.close()
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["replies"] != args.messages or counts["answered"] != args.messages or (
        counts["replies"] != args.messages or result.get("unhandled", 0)
    ):
        raise SystemExit(f"{case}: {result['replies']} replies, server saw {counts}, "
                         f"{result.get('unhandled', 0)} events unhandled; "
                         f"expected {args.messages}")
    result["pages"] = counts["pages"]
    return result


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare-src", action="append", default=[], metavar="DIR",
                        help="also run the hub on this checkout's code (repeatable)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="the hub's SQLiteStore setting (default: its default, full)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true",
                        help="also run the hub on a MemoryStore (no store cost to speak of)")
    parser.add_argument("--statements", action="store_true",
                        help="also time each SQLite statement the hub runs in its event "
                             "loop's thread (CPU per message, by statement)")
    parser.add_argument("--run", choices=["hub", "hub-memory", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.messages)
        return
    if args.run:
        runner: Callable[[], dict[str, Any]] = (
            (lambda: run_bare(args.url)) if args.run == "bare"
            else (lambda: run_hub(args.url, args.messages, args.synchronous,
                                  memory=args.run == "hub-memory",
                                  statements=args.statements))
        )
        print(json.dumps(runner()))
        return

    trees = [Path(tree).resolve() for tree in args.compare_src]
    cases = ["hub", "bare"] + [f"hub@{tree}" for tree in trees]
    if args.memory:
        cases += ["hub-memory"] + [f"hub-memory@{tree}" for tree in trees]
    print(f"{args.messages} messages answered, pages of {PAGE}, {args.repeats} repeats, "
          "interleaved")
    print(f"load average before: {load()} ({os.cpu_count()} cpus)")
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for repeat in range(args.repeats):
        shift = repeat % len(cases)
        for case in cases[shift:] + cases[:shift]:
            results[case].append(measure(args, case))
    print(f"load average after:  {load()}")
    print()
    times = {case: [r["seconds"] for r in runs] for case, runs in results.items()}
    cpu = {case: [run["cpu"] * 1000 / args.messages for run in runs]
           for case, runs in results.items()}
    print(f"{'':30} {'min s':>7} {'median s':>9} {'msg/s (median)':>15} "
          f"{'CPU ms/msg min':>15} {'median':>7}")
    for case in cases:
        median = statistics.median(times[case])
        print(f"{case[:30]:30} {min(times[case]):7.2f} {median:9.2f} "
              f"{args.messages / median:15.0f} {min(cpu[case]):15.2f} "
              f"{statistics.median(cpu[case]):7.2f}")
    print()
    for case in cases:
        if not case.startswith("hub"):
            continue
        print(f"bare / {case}: {min(times['bare']) / min(times[case]):.2f} (min) "
              f"{statistics.median(times['bare']) / statistics.median(times[case]):.2f} "
              "(median); goal >= 0.5")
        runs = results[case]
        if case.startswith("hub-memory"):
            continue
        calls: Counter[str] = Counter()
        for run in runs:
            calls.update(run["calls"])
        total = len(runs) * args.messages
        commits = sum(run["commits"] for run in runs) / total
        hops = sum(run["read_hops"] for run in runs) / total + commits
        print(f"  per answered message: {sum(calls.values()) / total:.2f} store calls, "
              f"{commits:.2f} write transactions, {hops:.2f} hops to the store's thread")
        print("  calls per message: " + ", ".join(
            f"{name} {number / total:.2f}" for name, number in calls.most_common()))
        if args.statements:
            spent: dict[str, list[float]] = {}
            for run in runs:
                for name, (seconds, number) in run["statements"].items():
                    entry = spent.setdefault(name, [0.0, 0])
                    entry[0] += seconds
                    entry[1] += number
            print(f"  SQLite statements in the loop's thread: "
                  f"{sum(n for _, n in spent.values()) / total:.2f} a message, "
                  f"{sum(t for t, _ in spent.values()) * 1e6 / total:.0f} µs CPU a message")
            for name, (seconds, number) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
                print(f"    {seconds * 1e6 / total:7.1f} µs {number / total:5.2f}x  {name}")


if __name__ == "__main__":
    main()
