"""Whole hubs on one PostgreSQL database, SIGKILLed at random: answered once, in order.

Several worker processes, each a full hub (listener, handlers, outbox) with the
testnet adapter polling a fake network served on loopback that loses some
responses after committing them and refuses others. Customers write in several conversations
while workers are killed (SIGKILL, no cleanup) and replaced, every database
connection of the workers is ended at random moments (``pg_terminate_backend``,
mid-transaction or idle), and the database server is restarted once halfway
(when the bench runs its own throwaway server). Printed from the fake network's
ground truth: messages unhandled or unanswered, side effects and answers twice,
answers out of their conversation's order, and moments when two workers polled
the account at once; any of them fails the run (exit status 1). Not a timing.

    .venv/bin/python bench/hub_soak.py --workers 4 --messages 200 --kills 12
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hub_worker import hub_soak  # noqa: E402
from tests.runtime_adapter import FakeNetwork, serve_in_thread  # noqa: E402

Restart = Callable[[], None]


@contextmanager
def postgres_server() -> Iterator[tuple[str, Restart | None]]:
    """The bench's server and how to restart it: the environment's (not restarted), or a
    throwaway pgserver."""
    url = os.environ.get("OMNICHANNEL_BENCH_POSTGRES_URL")
    if url:
        yield url, None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import pgserver
        from pgserver._commands import pg_ctl

        folder = tempfile.mkdtemp(prefix="omnichannel-bench-pg-")
        server = pgserver.get_server(folder, cleanup_mode="delete")

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=folder, user=server.system_user)

    try:
        yield server.get_uri(), restart
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


async def main(args: argparse.Namespace, url: str, restart: Restart | None) -> int:
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
            connection_kills=args.connection_kills,
            restart=restart if args.restart else None,
        )
    print(result.line())
    if args.restart and restart is None:
        print("the server is OMNICHANNEL_BENCH_POSTGRES_URL's: not restarted")
    bad = result.problems()
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
    parser.add_argument("--connection-kills", type=int, default=6,
                        help="times every database connection of the workers is ended")
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True,
                        help="restart the database server once, halfway (own server only)")
    arguments = parser.parse_args()
    with postgres_server() as (server, restart_server):
        raise SystemExit(anyio.run(main, arguments, server, restart_server))
