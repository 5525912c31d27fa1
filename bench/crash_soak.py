"""Crash soak: kill outbox workers with SIGKILL many times and count lost and doubled sends.

The long version of ``tests/test_outbox_crash.py``. Each round queues actions in
a fresh SQLite outbox, then starts worker processes and kills them at random
moments (seeded) while a fake network served by uvicorn on 127.0.0.1 counts
what it received per idempotency key and loses a share of its responses after
committing them. After the kills one worker runs to the end.

    .venv/bin/python bench/crash_soak.py --rounds 20 --actions 40 --kills 8

Prints one line per round, then the totals: runs, sent, lost, doubled.
Exit status 1 if anything was lost or doubled, or an audit line is missing or repeated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.crash_worker import SoakResult, soak  # noqa: E402
from tests.runtime_adapter import FakeNetwork, serve_in_thread  # noqa: E402


async def main(args: argparse.Namespace) -> int:
    results: list[SoakResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            fake = FakeNetwork(
                lose_rate=args.lose_rate, latency=args.latency, seed=args.seed + round_no
            )
            with serve_in_thread(fake) as url:
                result = await soak(
                    db=Path(tmp) / f"round{round_no}.db", url=url, fake=fake,
                    actions=args.actions, kills=args.kills, seed=args.seed * 1000 + round_no,
                    max_kill_delay=args.max_kill_delay,
                )
            results.append(result)
            print(f"round {round_no + 1:3d}: {result.line()}", flush=True)
    runs = sum(r.runs for r in results)
    kills = sum(r.kills for r in results)
    sent = sum(r.sent for r in results)
    accepted = sum(r.accepted for r in results)
    lost = sum(r.lost for r in results)
    doubled = sum(r.doubled for r in results)
    lost_responses = sum(r.lost_responses for r in results)
    found = sum(r.found for r in results)
    unaudited = sum(r.unaudited for r in results)
    repeats = sum(r.audit_repeats for r in results)
    print(
        f"TOTAL rounds={len(results)} runs={runs} kills={kills} accepted={accepted} "
        f"sent={sent} lost={lost} doubled={doubled} "
        f"lost_responses={lost_responses} reconciled_by_lookup={found} unaudited={unaudited} "
        f"audit_repeats={repeats}"
    )
    return 1 if lost or doubled or unaudited or repeats else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--actions", type=int, default=40)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lose-rate", type=float, default=0.2)
    parser.add_argument("--latency", type=float, default=0.004)
    parser.add_argument("--max-kill-delay", type=float, default=0.08)
    sys.exit(anyio.run(main, parser.parse_args()))
