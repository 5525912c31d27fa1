"""Exactly-once under SIGKILL: a worker process to kill, and the harness that kills it.

Run as a module, this file is the *worker*: it opens a SQLite outbox, delivers
everything in it to the testnet fake network at ``URL`` and exits 0 when
nothing is left to deliver::

    python -m tests.crash_worker <db> <url>

Imported, it is the *harness* (``soak``): it queues actions in a fresh
database, starts workers and kills them with SIGKILL at random moments (seeded)
while the fake network, served by uvicorn in the calling process, counts what
it receives per idempotency key and loses some responses after committing
them. When the killing is over, one worker runs to the end, and every accepted
action must have been created on the network exactly once.
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
from omnichannel.store import OutboxStatus, SQLiteStore

REPO = Path(__file__).resolve().parent.parent
_UNFINISHED: tuple[OutboxStatus, ...] = ("pending", "sending", "ambiguous")


# --------------------------------------------------------------------------- the worker


async def work(db: Path, url: str) -> None:
    """Deliver everything in the outbox at ``db`` to ``url``; return when nothing is left."""
    adapter = RuntimeAdapter(RuntimeSettings(base_url=url, timeout=5.0))
    async with adapter, SQLiteStore(db) as store:
        outbox = Outbox(
            store, {adapter.network: adapter}, ambiguous_delay=timedelta(0),
            backoff_initial=timedelta(milliseconds=5), backoff_max=timedelta(milliseconds=50),
            max_attempts=1000,
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


async def enqueue(db: Path, fake: FakeNetwork, count: int) -> list[str]:
    """Queue ``count`` replies (to fresh customer messages) in a new database; return their keys."""
    adapter = RuntimeAdapter(RuntimeSettings())  # capabilities only: not opened
    async with SQLiteStore(db) as store:
        outbox = Outbox(store, {adapter.network: adapter})
        keys = []
        for i in range(count):
            message = received(fake, adapter, f"question {i}", author=f"c{i}")
            action = Reply(network=adapter.network, to=message, text=f"Answer number {i}.")
            keys.append((await outbox.submit(action, origin="crash-test")).key)
    return keys


async def _start(db: Path, url: str, log: Path) -> anyio.abc.Process:
    with log.open("ab") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.crash_worker", str(db), url],
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
    async with SQLiteStore(db) as store:
        unfinished = 0
        for status in _UNFINISHED:
            unfinished += len(await store.list_outbox(status=status))
        sent = len(await store.list_outbox(status="sent", limit=actions + 1))
        audit = [e.idempotency_key for e in await store.audit_log(limit=10 * actions)]
        audited = set(audit)
    created = fake.created
    return SoakResult(
        runs=runs, kills=done_kills, accepted=len(keys), sent=sent,
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
    anyio.run(work, Path(sys.argv[1]), sys.argv[2])
