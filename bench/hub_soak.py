"""Whole hubs on one PostgreSQL database, SIGKILLed at random: answered once, in order.

Several worker processes, each a full hub (listener, handlers, outbox) with the
testnet adapter polling a fake network served on loopback that loses some
responses after committing them and refuses others. Customers write in several conversations
while workers are killed (SIGKILL, no cleanup) and replaced. Printed from the
fake network's ground truth: messages unhandled or unanswered, side effects and
answers twice, answers out of their conversation's order, and moments when two
workers polled the account at once. Not a timing.

    .venv/bin/python bench/hub_soak.py --workers 4 --messages 200 --kills 12
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_store_postgres import postgres_url  # type: ignore[import-not-found]  # noqa: E402
from tests.hub_worker import hub_soak  # noqa: E402
from tests.runtime_adapter import FakeNetwork, serve_in_thread  # noqa: E402


async def main(args: argparse.Namespace, url: str) -> int:
    from omnichannel.store import PostgresStore

    schema = f"soak_{uuid.uuid4().hex[:10]}"
    async with PostgresStore(url, schema=schema):  # creates the schema
        pass
    fake = FakeNetwork(lose_rate=args.lose_rate, refuse_rate=args.refuse_rate,
                       latency=args.latency, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(fake) as fake_url:
        result = await hub_soak(
            db=f"{url}#{schema}", url=fake_url, fake=fake, log=Path(tmp) / "hubs.log",
            workers=args.workers, kills=args.kills, messages=args.messages,
            conversations=args.conversations, seed=args.seed, lease=args.lease,
        )
    print(result.line())
    bad = (result.unanswered + result.doubled + result.out_of_order
           + (result.messages - result.handled) + result.effects_doubled
           + result.pollers_overlapping)
    print("OK: every message handled, its effect and answer once, in order, one poller at a time"
          if not bad else f"{bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--lose-rate", type=float, default=0.07)
    parser.add_argument("--refuse-rate", type=float, default=0.04)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    with postgres_url() as server:
        raise SystemExit(anyio.run(main, arguments, server))
