"""X Activity API subscriptions and webhook replays from a terminal.

```sh
python -m omnichannel_x.activity subscribe post.mention.create dm.received --webhook-id 11466
python -m omnichannel_x.activity list
python -m omnichannel_x.activity delete 1913283497362223104
python -m omnichannel_x.activity replay --webhook-id 11466 --since 2026-12-04T09:00Z \
    --until 2026-12-04T11:30Z
```

The account comes from omnichannel's configuration, as for ``omnichannel
run``: the ``[x]`` section of the config file or the ``OMNICHANNEL_X_*``
environment variables (``OMNICHANNEL_X_TOKEN_FILE``, ``OMNICHANNEL_X_CLIENT_ID``...).
Subscriptions are made for our own account with its user token, which private
events (mentions, DMs) need. Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

import anyio
import httpx

from omnichannel.errors import OmnichannelError
from omnichannel.settings import Config

from ._adapter import XAdapter

__all__ = ["main"]


def _when(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    top = argparse.ArgumentParser(
        prog="python -m omnichannel_x.activity",
        description="Manage the X Activity API subscriptions of the configured account.")
    top.add_argument("--config", help="the omnichannel config file (default: as omnichannel run)")
    commands = top.add_subparsers(dest="command", required=True)
    subscribe = commands.add_parser("subscribe", help="subscribe our account to event types")
    subscribe.add_argument("event_types", nargs="+", metavar="EVENT_TYPE",
                           help="post.mention.create, post.reply.create, dm.received...")
    subscribe.add_argument("--webhook-id", help="deliver to this webhook (default: the stream)")
    subscribe.add_argument("--tag", help="a label X puts on each delivery")
    commands.add_parser("list", help="list the subscriptions")
    delete = commands.add_parser("delete", help="end subscriptions")
    delete.add_argument("subscription_ids", nargs="+", metavar="SUBSCRIPTION_ID")
    replay = commands.add_parser("replay", help="have X deliver a time range again")
    replay.add_argument("--webhook-id", required=True)
    replay.add_argument("--since", required=True, type=_when, help="ISO 8601, UTC by default")
    replay.add_argument("--until", required=True, type=_when, help="ISO 8601, UTC by default")
    return top


async def _run(args: argparse.Namespace, adapter: XAdapter, out: TextIO) -> None:
    async with adapter:
        if args.command == "subscribe":
            for kind in args.event_types:
                made = await adapter.create_subscription(kind, webhook_id=args.webhook_id,
                                                         tag=args.tag)
                print(f"subscribed {made.event_type}: {made.subscription_id}", file=out)
        elif args.command == "list":
            found = await adapter.list_subscriptions()
            for item in found:
                target = f"webhook {item.webhook_id}" if item.webhook_id else "stream"
                print(f"{item.subscription_id}  {item.event_type}  user {item.filter.user_id}"
                      f"  {target}", file=out)
            print(f"{len(found)} subscriptions", file=out)
        elif args.command == "delete":
            for subscription_id in args.subscription_ids:
                await adapter.delete_subscription(subscription_id)
                print(f"deleted {subscription_id}", file=out)
        else:
            job = await adapter.replay(args.webhook_id, args.since, args.until)
            print(f"replay job {job}", file=out)


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
    stderr: TextIO | None = None, environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run one command; return the exit status (1 with a one-line reason on an error)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(argv)
    try:
        config = Config.load(args.config, environ=environ)
        built = config.build(XAdapter)  # names a bad setting, never its value
        assert isinstance(built, XAdapter)  # noqa: S101 - build returns the class given
        adapter = XAdapter(built.settings, transport=transport)
        anyio.run(_run, args, adapter, out)
    except (OmnichannelError, ValueError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
