"""Exactly-once under SIGKILL: a worker process to kill, and the harness that kills it.

Run as a module, this file is the *worker*: it opens an outbox (a SQLite file,
or ``postgresql://...#schema``), delivers everything in it to the testnet fake
network at ``URL`` and exits 0 when nothing is left to deliver::

    python -m tests.crash_worker <db> <url> [<lease seconds>]

Imported, it is the *harness* (``soak``): it queues actions in a fresh
database, starts workers and kills them with SIGKILL at random moments (seeded)
while the fake network, served by uvicorn in the calling process, counts what
it receives per idempotency key and loses some responses after committing
them. When the killing is over, one worker runs to the end, and every accepted
action must have been created on the network exactly once. ``soak_shared`` does
the same with several workers at once on one PostgreSQL store: each kill takes
one of them, a new one starts, and a killed worker's items wait for its lease
to run out.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from subprocess import PIPE

import anyio
import anyio.abc
from tests.runtime_adapter import FakeNetwork, RuntimeAdapter, RuntimeSettings, received

from omnichannel.actions import Reply
from omnichannel.outbox import Outbox
from omnichannel.store import OutboxStatus, PostgresStore, SQLiteStore, Store, is_postgres_url

REPO = Path(__file__).resolve().parent.parent
_UNFINISHED: tuple[OutboxStatus, ...] = ("pending", "sending", "ambiguous")


# --------------------------------------------------------------------------- the worker


def open_store(target: str | Path) -> Store:
    """The store ``target`` names: a SQLite file, or ``postgresql://...#schema``."""
    text = str(target)
    if is_postgres_url(text):
        url, _, schema = text.partition("#")
        return PostgresStore(url, schema=schema or None)
    return SQLiteStore(text)


async def work(db: str, url: str, lease: float = 60.0) -> None:
    """Deliver everything in the outbox at ``db`` to ``url``; return when nothing is left."""
    adapter = RuntimeAdapter(RuntimeSettings(base_url=url, timeout=5.0))
    async with adapter, open_store(db) as store:
        outbox = Outbox(
            store, {adapter.network: adapter}, ambiguous_delay=timedelta(0),
            backoff_initial=timedelta(milliseconds=5), backoff_max=timedelta(milliseconds=50),
            max_attempts=1000, lease=timedelta(seconds=lease),
        )
        print("ready", flush=True)
        while True:
            if await outbox.run_once():
                continue
            left = [i for s in _UNFINISHED for i in await store.list_outbox(status=s, limit=1)]
            if not left:
                break
            await anyio.sleep(0.002)
    print("done", flush=True)


# --------------------------------------------------------------------------- the harness


@dataclass
class SoakResult:
    """What one soak did and found."""

    runs: int
    kills: int
    accepted: int
    sent: int
    lost: int
    doubled: int
    stray: int
    lost_responses: int
    posts: int
    lookups: int
    found: int
    unaudited: int
    audit_repeats: int
    unfinished: int
    seconds: float

    def line(self) -> str:
        """One printable line of figures."""
        return (
            f"runs={self.runs} kills={self.kills} accepted={self.accepted} sent={self.sent} "
            f"lost={self.lost} doubled={self.doubled} stray={self.stray} "
            f"lost_responses={self.lost_responses} posts={self.posts} "
            f"lookups={self.lookups} found={self.found} unaudited={self.unaudited} "
            f"audit_repeats={self.audit_repeats} "
            f"unfinished={self.unfinished} seconds={self.seconds:.1f}"
        )


async def enqueue(db: str | Path, fake: FakeNetwork, count: int) -> list[str]:
    """Queue ``count`` replies (to fresh customer messages) in a new database; return their keys."""
    adapter = RuntimeAdapter(RuntimeSettings())  # capabilities only: not opened
    async with open_store(db) as store:
        outbox = Outbox(store, {adapter.network: adapter})
        keys = []
        for i in range(count):
            message = received(fake, adapter, f"question {i}", author=f"c{i}")
            action = Reply(network=adapter.network, to=message, text=f"Answer number {i}.")
            keys.append((await outbox.submit(action, origin="crash-test")).key)
    return keys


async def _start(db: str | Path, url: str, log: Path, lease: float = 60.0) -> anyio.abc.Process:
    with log.open("ab") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.crash_worker", str(db), url, str(lease)],
            cwd=REPO, stdout=PIPE, stderr=stderr,
        )
    assert process.stdout is not None
    with anyio.fail_after(30):
        seen = b""
        while b"ready" not in seen:
            seen += await process.stdout.receive()
    return process


async def _finish(process: anyio.abc.Process) -> None:
    if process.stdout is not None:
        await process.stdout.aclose()


async def soak(
    *,
    db: Path,
    url: str,
    fake: FakeNetwork,
    actions: int,
    kills: int,
    seed: int,
    max_kill_delay: float = 0.06,
) -> SoakResult:
    """Queue ``actions``, kill ``kills`` workers at random moments, finish, and count."""
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - kill timings, not secrets
    keys = await enqueue(db, fake, actions)
    log = db.with_suffix(".log")
    runs = done_kills = 0
    while True:
        runs += 1
        process = await _start(db, url, log)
        if done_kills < kills:
            with anyio.move_on_after(rng.uniform(0, max_kill_delay)):
                await process.wait()
            if process.returncode is None:
                process.kill()  # SIGKILL: no cleanup, no finally
                await process.wait()
                await _finish(process)
                done_kills += 1
                continue
        with anyio.fail_after(60):
            await process.wait()
        await _finish(process)
        if process.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"worker failed ({process.returncode}): {tail}")
        if done_kills >= kills:
            break
    return await _result(db, fake, keys, runs=runs, kills=done_kills, started=started)


async def soak_shared(
    *,
    db: str,
    log: Path,
    url: str,
    fake: FakeNetwork,
    actions: int,
    workers: int,
    kills: int,
    seed: int,
    lease: float,
    max_kill_delay: float = 0.1,
) -> SoakResult:
    """Queue ``actions``; run ``workers`` at once on one store, killing one ``kills`` times."""
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - kill timings, not secrets
    keys = await enqueue(db, fake, actions)
    live: list[anyio.abc.Process] = []

    async def start() -> None:
        live.append(await _start(db, url, log, lease))

    async with anyio.create_task_group() as tg:  # together, so each claims a share at once
        for _ in range(workers):
            tg.start_soon(start)
    runs, done_kills = workers, 0
    while done_kills < kills:
        await anyio.sleep(rng.uniform(0, max_kill_delay))
        victim = live.pop(rng.randrange(len(live)))
        if victim.returncode is not None:  # finished: everything was delivered
            await _finish(victim)
            break
        victim.kill()  # SIGKILL: no cleanup; its claims stay until their leases run out
        await victim.wait()
        await _finish(victim)
        done_kills += 1
        live.append(await _start(db, url, log, lease))
        runs += 1
    for process in live:
        with anyio.fail_after(60):
            await process.wait()
        await _finish(process)
        if process.returncode != 0:
            tail = (await anyio.Path(log).read_text(errors="replace"))[-2000:]
            raise RuntimeError(f"worker failed ({process.returncode}): {tail}")
    return await _result(db, fake, keys, runs=runs, kills=done_kills, started=started)


async def _result(
    db: str | Path, fake: FakeNetwork, keys: list[str], *, runs: int, kills: int, started: float
) -> SoakResult:
    actions = len(keys)
    async with open_store(db) as store:
        unfinished = 0
        for status in _UNFINISHED:
            unfinished += len(await store.list_outbox(status=status))
        sent = len(await store.list_outbox(status="sent", limit=actions + 1))
        audit = [e.idempotency_key for e in await store.audit_log(limit=10 * actions)]
        audited = set(audit)
    created = fake.created
    return SoakResult(
        runs=runs, kills=kills, accepted=len(keys), sent=sent,
        lost=sum(1 for k in keys if created[k] == 0),
        doubled=sum(1 for k in keys if created[k] > 1),
        stray=sum(1 for k in created if k not in set(keys)),
        lost_responses=fake.lost_responses, posts=sum(fake.attempts.values()),
        lookups=fake.lookups, found=fake.found, unaudited=len(set(keys) - audited),
        audit_repeats=len(audit) - len(audited),
        unfinished=unfinished,
        seconds=time.monotonic() - started,
    )


if __name__ == "__main__":
    anyio.run(work, sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 60.0)
