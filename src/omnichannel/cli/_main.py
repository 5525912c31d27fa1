"""The ``omnichannel`` command: argument parsing and error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from .._logconfig import configure_logging
from .._version import __version__
from ..errors import ConfigurationError, OmnichannelError
from ..registry import check_networks
from ._commands import cmd_adapters, cmd_replay, cmd_serve
from ._drafts import add_drafts_parser
from ._inbox import add_inbox_actions, cmd_inbox
from ._store import add_store_parser

__all__ = ["build_parser", "main"]


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .._demo import run_demo

    check_networks(args.network)
    return run_demo(in_process=args.in_process, seed=args.seed,
                    networks=args.network, verbose=args.verbose, out=out)


def _logging_options(*, after: bool) -> argparse.ArgumentParser:
    """``-v`` and ``--log-config``: accepted before the command and after it (then added up)."""
    common = argparse.ArgumentParser(add_help=False)
    suffix = "_after" if after else ""
    common.add_argument("-v", "--verbose", action="count", default=0, dest="verbose" + suffix,
                        help="log more: -v adds one line per HTTP request, -vv debug")
    common.add_argument("--log-config", metavar="FILE", default=None, dest="log_config" + suffix,
                        help="a logging dictConfig in JSON or TOML (default: "
                             "OMNICHANNEL_LOG_CONFIG) instead of the readable lines")
    return common


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``omnichannel`` command."""
    common = _logging_options(after=True)
    parser = argparse.ArgumentParser(
        prog="omnichannel",
        description="Social customer service from the command line.",
        parents=[_logging_options(after=False)],
    )
    parser.add_argument("--version", action="version", version=f"omnichannel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, **kwargs: object) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = sub.add_parser(name, parents=[common], **kwargs)  # type: ignore[arg-type]
        return made

    adapters = add("adapters", help="list installed adapters and their capabilities",
                   description="List installed adapters and their capabilities.")
    adapters.add_argument("--json", action="store_true", help="print JSON")
    adapters.set_defaults(func=cmd_adapters)

    demo = add(
        "demo", help="run the offline demo",
        description="Start the sandbox of every installed adapter, have scripted customers "
                    "write, answer them with the quick bot, and print a summary per network.",
    )
    demo.add_argument("--in-process", action="store_true",
                      help="answer from the sandboxes in-process instead of serving them on "
                           "127.0.0.1")
    demo.add_argument("--network", action="append", metavar="NAME",
                      help="only this network (repeatable)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the sandboxes")
    demo.set_defaults(func=_cmd_demo)

    serve = add(
        "serve", help="run a hub or an ASGI app with uvicorn",
        description="Run APP ('module:attribute'): a Hub runs its listeners, outbox and "
                    "webhook app; any other ASGI application is served as it is.",
    )
    serve.add_argument("app", metavar="APP", help="module:attribute of a Hub or an ASGI app")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--factory", action="store_true",
                       help="APP is a function returning the Hub or app")
    serve.add_argument("--no-listen", action="store_true",
                       help="a Hub only receives webhooks (no polling or streaming)")
    serve.add_argument("--log-level", default="info", help="uvicorn's log level")
    serve.set_defaults(func=cmd_serve)

    inbox = add("inbox", help="show the inbox, or act on a conversation",
                description="Without an ACTION: show conversations (with their helpdesk "
                            "state), pending drafts and the outbox from a store (a SQLite file "
                            "or a PostgreSQL database), read-only, safe beside a running bot. "
                            "With one: change a conversation (assign, claim, release, status, "
                            "tag, snooze, resolve) or answer it (reply), audited.")
    inbox.add_argument("--store", metavar="FILE|URL",
                       help="the store (default: OMNICHANNEL_STORE, the config's, omnichannel.db)")
    inbox.add_argument("--config", metavar="FILE", help="settings file naming the store")
    inbox.add_argument("--network", metavar="NAME", help="only this network")
    inbox.add_argument("--limit", type=int, default=20, help="rows per table (default 20)")
    inbox.add_argument("--json", action="store_true",
                       help="print conversations (with their helpdesk state), drafts and the "
                            "outbox as one JSON document")
    inbox.add_argument("--stats", action="store_true",
                       help="print helpdesk metrics: first-response and resolution times per "
                            "network, priority and agent; backlog and oldest wait per queue")
    inbox.set_defaults(func=cmd_inbox)
    add_inbox_actions(inbox)

    add_drafts_parser(add)
    add_store_parser(add)

    replay = add(
        "replay", help="print the events an adapter makes of a recorded payload",
        description="Feed a recorded webhook body, API answer or stream capture through an "
                    "adapter and print the normalized events; nothing goes to the network. "
                    "FILE may be a raw body, '-' for standard input, or a decoded cassette "
                    "({\"interactions\": [...]}) whose successful GET answers are each "
                    "replayed with their endpoint path.",
    )
    replay.add_argument("network", metavar="NETWORK", help="the network id, e.g. mastodon")
    replay.add_argument("file", metavar="FILE", help="the payload file ('-' for stdin)")
    replay.add_argument("--path", help="the API endpoint the body answered, e.g. "
                                       "/api/v1/notifications (default: a cassette's own; "
                                       "for a raw body the adapter recognises it if it can)")
    replay.add_argument("--account", metavar="ID",
                        help="our own account's id on the network (a Mastodon account id, a "
                             "Bluesky DID): its messages show as from us")
    replay.add_argument("--interaction", type=int, metavar="N",
                        help="only interaction N (from 1) of a decoded cassette, whatever "
                             "its method and status")
    replay.add_argument("--webhook", action="store_true",
                        help="treat FILE as a webhook delivery (adapter.parse)")
    replay.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                        help="a webhook request header (repeatable)")
    replay.add_argument("--config", metavar="FILE", help="settings file for the adapter")
    replay.add_argument("--json", action="store_true", help="one JSON event per line")
    replay.add_argument("--raw", action="store_true",
                        help="with --json, keep each message's native payload")
    replay.set_defaults(func=cmd_replay)
    return parser


def _message(exc: OmnichannelError) -> str:
    """The error's message, with its notes (what to do about it) on the same line."""
    return "; ".join([str(exc), *getattr(exc, "__notes__", ())])


def _utf8(stream: TextIO) -> None:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    reconfigure = getattr(stream, "reconfigure", None)
    if encoding != "utf8" and reconfigure is not None:
        reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``omnichannel`` command line; return the exit status.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        ``0`` on success, ``1`` when the command failed (a demo expectation,
        a payload that did not parse, a network error), ``2`` for a usage or
        settings problem.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `omnichannel` alone: what it can do
        parser.print_help()
        return 0
    args.verbose += getattr(args, "verbose_after", 0)
    args.log_config = getattr(args, "log_config_after", None) or args.log_config
    _utf8(sys.stdout)
    _utf8(sys.stderr)
    out = sys.stdout
    try:
        configure_logging(args.verbose, config=args.log_config)
        status: int = args.func(args, out)
    except ConfigurationError as exc:
        print(f"omnichannel: error: {_message(exc)}", file=sys.stderr)
        return 2
    except OmnichannelError as exc:
        print(f"omnichannel: error: {_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `omnichannel inbox | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status
