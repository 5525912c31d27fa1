"""Several whole hubs on one PostgreSQL store, killed at random: a worker process and its harness.

Run as a module, this file is one *worker*: a hub with the testnet adapter
(polling the fake network at ``URL``), a handler that answers each customer
message once, and ``PostgresStore`` on ``postgresql://...#schema``; leases of
``lease`` seconds, so a killed worker's sources, conversations and replies are
taken over quickly::

    python -m tests.hub_worker <db> <url> <worker id> <lease seconds>

Imported, it is the *harness* (``hub_soak``): it starts several workers at
once, has customers write in several conversations while it SIGKILLs workers
(half of the kills the worker reading the account, the rest at random)
and starts new ones, ends every database connection of the workers at random
moments (``pg_terminate_backend``: a transaction in flight is cut off), and
may restart the database server once, then reads the fake network's ground
truth: every message answered once, none twice, each conversation's answers in
the order its messages came.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import anyio.abc
from tests.crash_worker import REPO, open_store
from tests.runtime_adapter import FakeNetwork, RuntimeAdapter, RuntimeSettings

from omnichannel._listening import store_source_lease
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.policy import AutoSend


async def work(db: str, url: str, worker: str, lease: float) -> None:
    """Run one hub until killed."""
    adapter = RuntimeAdapter(RuntimeSettings(base_url=url, timeout=5.0, poll_interval=0.05,
                                             poller=worker))
    store = open_store(db)
    ttl = timedelta(seconds=lease)
    hub = Hub(adapters=[adapter], store=store, policy=AutoSend(caps=None), worker=worker,
              copy_paste_window=None,
              source_lease=store_source_lease(store, holder=worker, clock=_now, ttl=ttl))
    hub.outbox.lease = ttl
    hub.outbox.ambiguous_delay = timedelta(0)
    hub.outbox.backoff_initial = timedelta(milliseconds=20)
    hub.outbox.backoff_max = timedelta(milliseconds=200)
    hub.outbox.poll_interval = 0.1

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        # A side effect of its own, idempotent by the message's key (a ticket, say),
        # then the reply: the fake network counts both.
        await adapter.client.request("POST", "/effects", json={"key": event.message.ref.id})
        await ctx.reply(f"Answer to {event.message.ref.id}")

    async with hub, anyio.create_task_group() as tg:
        await tg.start(hub.run)
        print("ready", flush=True)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class HubSoakResult:
    """What a hub soak did and found, from the fake network's ground truth."""

    workers_started: int
    kills: int
    messages: int
    answered: int
    unanswered: int
    doubled: int
    out_of_order: int
    lost_responses: int
    refused: int
    lookups: int
    handled: int
    handled_again: int
    effects_doubled: int
    pollers_overlapping: int
    takeovers: int
    seconds: float
    connections_killed: int = 0
    restarts: int = 0

    def line(self) -> str:
        """One printable line of figures."""
        return (f"workers_started={self.workers_started} kills={self.kills} "
                f"messages={self.messages} answered={self.answered} "
                f"unanswered={self.unanswered} doubled={self.doubled} "
                f"out_of_order={self.out_of_order} lost_responses={self.lost_responses} "
                f"refused={self.refused} lookups={self.lookups} handled={self.handled} "
                f"handled_again={self.handled_again} effects_doubled={self.effects_doubled} "
                f"pollers_overlapping={self.pollers_overlapping} takeovers={self.takeovers} "
                f"connections_killed={self.connections_killed} restarts={self.restarts} "
                f"seconds={self.seconds:.1f}")

    def problems(self) -> int:
        """How many things went wrong: lost, doubled or out of order, or two pollers at once."""
        return (self.unanswered + self.doubled + self.out_of_order
                + (self.messages - self.handled) + self.effects_doubled
                + self.pollers_overlapping)


async def _start(db: str, url: str, worker: str, lease: float, log: Path) -> anyio.abc.Process:
    """Start a worker and return once its hub runs.

    A worker that cannot open the store (the server is restarting) exits with a
    `StoreError`; it is started again, as a service manager would restart it.
    """
    with anyio.fail_after(60):
        while True:
            with log.open("ab") as stderr:
                process = await anyio.open_process(
                    [sys.executable, "-m", "tests.hub_worker", db, url, worker, str(lease)],
                    cwd=REPO, stdout=PIPE, stderr=stderr,
                )
            assert process.stdout is not None
            seen = b""
            try:
                while b"ready" not in seen:
                    seen += await process.stdout.receive()
            except anyio.EndOfStream:  # it exited before its hub ran
                await _stop(process)
                await anyio.sleep(0.2)
                continue
            return process


async def _stop(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()


_APPLICATION = "omnichannel-hub-soak"
"""The ``application_name`` of the workers' database connections, so the harness finds them."""


def _named(db: str) -> str:
    """``postgresql://...#schema`` with the workers' ``application_name`` in its URL."""
    url, _, schema = db.partition("#")
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("application_name", _APPLICATION)])
    return urlunsplit(parts._replace(query=query)) + (f"#{schema}" if schema else "")


def _terminate_workers_connections(url: str) -> int:
    """End every database connection of the workers, mid-transaction or idle; return how many."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()) AS ended",
                (_APPLICATION,),
            ).fetchone()
    except psycopg.OperationalError:  # the server is restarting: it ends them all itself
        return 0
    return int(row[0]) if row is not None else 0


def _answers(fake: FakeNetwork) -> dict[str, list[int]]:
    """For each message id, the positions of the posts answering it."""
    found: dict[str, list[int]] = {}
    for position, post in enumerate(list(fake.posted)):
        if post.get("in_reply_to"):
            found.setdefault(post["in_reply_to"], []).append(position)
    return found


def _reading_spans(log: list[tuple[str, float]], gap: float) -> list[tuple[str, float, float]]:
    """Each poller's stretches of reading: its polls no more than ``gap`` apart."""
    spans: dict[str, list[list[float]]] = {}
    for poller, at in log:
        runs = spans.setdefault(poller, [])
        if runs and at - runs[-1][1] <= gap:
            runs[-1][1] = at
        else:
            runs.append([at, at])
    return sorted((poller, first, last) for poller, runs in spans.items()
                  for first, last in runs)


def pollers_overlapping(log: list[tuple[str, float]], gap: float) -> int:
    """Pairs of different pollers whose reading stretches overlap in time.

    A poller reads every poll interval while it holds the source; a worker that
    took over polls first after the dead one's last poll plus its lease. Any
    overlap means two workers read one account at the same moment.
    """
    spans = _reading_spans(log, gap)
    return sum(
        1
        for i, (a, a_first, a_last) in enumerate(spans)
        for b, b_first, b_last in spans[i + 1:]
        if a != b and a_first <= b_last and b_first <= a_last
    )


async def hub_soak(
    *, db: str, url: str, fake: FakeNetwork, log: Path, workers: int, kills: int,
    messages: int, conversations: int, seed: int, lease: float, limit: float = 120.0,
    connection_kills: int = 0, restart: Callable[[], None] | None = None,
) -> HubSoakResult:
    """Run ``workers`` hubs, have customers write ``messages``, kill ``kills`` times; count.

    ``connection_kills`` times, at random moments while customers write, every
    database connection of the workers is ended (``pg_terminate_backend``);
    with ``restart``, the database server is restarted once, halfway through.
    """
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - timings, not secrets
    count = 0
    live: list[tuple[str, anyio.abc.Process]] = []
    admin_url = db.partition("#")[0]
    db = _named(db)
    severed = restarts = 0

    async def start() -> None:
        nonlocal count
        count += 1
        worker = f"w{count}"
        live.append((worker, await _start(db, url, worker, lease, log)))

    async def sever(at: float) -> None:
        nonlocal severed
        await anyio.sleep(at)
        severed += await anyio.to_thread.run_sync(_terminate_workers_connections, admin_url)

    async def restart_server(at: float) -> None:
        nonlocal restarts
        assert restart is not None
        await anyio.sleep(at)
        await anyio.to_thread.run_sync(restart)
        restarts += 1

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(start)
    written: dict[str, list[str]] = {}
    kill_at = sorted(rng.sample(range(1, messages), kills))
    done_kills = 0
    writing = messages * 0.025  # about how long customers write (0-50 ms between messages)
    try:
        async with anyio.create_task_group() as faults:
            for _ in range(connection_kills):
                faults.start_soon(sever, rng.uniform(0.1, writing))
            if restart is not None:
                faults.start_soon(restart_server, writing / 2)
            for n in range(messages):
                conversation = f"conv{n % conversations}"
                item = fake.customer_says(f"question {n}", author=f"c{n % conversations}",
                                          conversation=conversation)
                written.setdefault(conversation, []).append(item["id"])
                await anyio.sleep(rng.uniform(0.0, 0.05))
                if done_kills < kills and n == kill_at[done_kills]:
                    # Every other kill is the worker reading the account (the last to
                    # poll), so its source is taken over; the rest are at random.
                    reader = fake.poll_log[-1][0] if fake.poll_log else ""
                    ids = [worker for worker, _ in live]
                    pick = ids.index(reader) if done_kills % 2 == 0 and reader in ids else None
                    _, victim = live.pop(rng.randrange(len(live)) if pick is None else pick)
                    await _stop(victim)  # SIGKILL: no cleanup; its leases run out
                    done_kills += 1
                    await start()
        every = [m for ids in written.values() for m in ids]
        with anyio.move_on_after(limit):
            # The fake network runs in another thread: nothing to wait on but its state.
            while not all(m in _answers(fake) for m in every):  # noqa: ASYNC110
                await anyio.sleep(0.2)
        await anyio.sleep(2 * lease)  # a late duplicate would show by now
    finally:
        for _, process in live:
            await _stop(process)
    answers = _answers(fake)
    log = list(fake.poll_log)
    spans = _reading_spans(log, lease)
    out_of_order = 0
    for ids in written.values():
        firsts = [answers[m][0] for m in ids if m in answers]
        out_of_order += sum(1 for a, b in itertools.pairwise(firsts) if b < a)
    return HubSoakResult(
        workers_started=count, kills=done_kills, messages=messages,
        answered=sum(1 for m in every if m in answers),
        unanswered=sum(1 for m in every if m not in answers),
        doubled=sum(1 for m in every if len(answers.get(m, [])) > 1),
        out_of_order=out_of_order, lost_responses=fake.lost_responses, refused=fake.refused,
        lookups=fake.lookups,
        handled=sum(1 for m in every if fake.effect_calls[m]),
        handled_again=sum(fake.effect_calls[m] - 1 for m in every if fake.effect_calls[m] > 1),
        effects_doubled=sum(1 for m in every if fake.effects[m] > 1),
        pollers_overlapping=pollers_overlapping(log, lease),
        takeovers=sum(1 for a, b in itertools.pairwise(sorted(spans, key=lambda s: s[1]))
                      if a[0] != b[0]),
        seconds=time.monotonic() - started, connections_killed=severed, restarts=restarts,
    )


if __name__ == "__main__":
    anyio.run(work, sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
