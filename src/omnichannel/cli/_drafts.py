"""``omnichannel drafts list|approve|reject``: decide held replies from the command line."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

import anyio

from ..adapter import Adapter
from ..errors import ConfigurationError, DraftNotPending, DuplicateReply
from ..hub import Hub
from ..registry import check_networks, load_adapter
from ..settings import Config
from ..store import Draft, DraftStatus, Store, store_for
from ._commands import _addressee, _age, existing_store
from ._table import render_table, shorten

__all__ = ["add_drafts_parser", "cmd_drafts"]


def _default_agent() -> str:
    try:
        return f"agent:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment
        return "agent:cli"


def add_drafts_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``drafts`` and its ``list``, ``approve`` and ``reject`` commands."""
    drafts = add(
        "drafts", help="list, approve (optionally edited) or reject held replies",
        description="Decide the replies a bot held for a human, in its SQLite store. "
                    "Approving queues the reply in the store's outbox, with the same checks "
                    "as Hub.drafts.approve (the network's limits, the copy-paste "
                    "guardrail); the running bot delivers it.",
    )
    verbs = drafts.add_subparsers(dest="verb", metavar="VERB", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--store", metavar="FILE|URL",
                            help="the store (default: OMNICHANNEL_STORE, the config's, "
                                 "omnichannel.db)")
        parser.add_argument("--config", metavar="FILE", help="settings file naming the store")

    listing = verbs.add_parser("list", help="list drafts (pending ones by default)",
                               description="List drafts, oldest first.")
    common(listing)
    listing.add_argument("--network", metavar="NAME", help="only this network")
    listing.add_argument("--status", choices=["pending", "approved", "rejected", "all"],
                         default="pending", help="which drafts (default: pending)")
    listing.add_argument("--limit", type=int, default=50, help="rows (default 50)")
    listing.set_defaults(func=cmd_drafts)

    approve = verbs.add_parser(
        "approve", help="approve a draft (with --text: edited) and queue it",
        description="Approve draft ID (its full id or a unique prefix, as `drafts list` "
                    "shows) and queue it for delivery by the running bot.",
    )
    common(approve)
    approve.add_argument("id", metavar="ID", help="the draft's id or a unique prefix of it")
    approve.add_argument("--text", help="send this text instead of the drafted one")
    approve.add_argument("--by", default=None, metavar="AGENT",
                         help="who approves, for the audit log (default: agent:<login name>)")
    approve.add_argument("--allow-duplicate", action="store_true",
                         help="skip the copy-paste guardrail (the same text already went to "
                              "someone else)")
    approve.set_defaults(func=cmd_drafts)

    reject = verbs.add_parser("reject", help="reject a draft: it is never sent",
                              description="Reject draft ID; the decision is audited.")
    common(reject)
    reject.add_argument("id", metavar="ID", help="the draft's id or a unique prefix of it")
    reject.add_argument("--reason", help="why, for the audit log")
    reject.add_argument("--by", default=None, metavar="AGENT",
                        help="who rejects, for the audit log (default: agent:<login name>)")
    reject.set_defaults(func=cmd_drafts)


async def _find(store: Store, wanted: str) -> Draft:
    """The draft whose id is ``wanted`` or starts with it (one only)."""
    exact = await store.get_draft(wanted)
    if exact is not None:
        return exact
    matches = [d for d in await store.list_drafts(status=None, limit=1_000_000)
               if d.id.startswith(wanted)]
    if not matches:
        raise ConfigurationError(f"no draft has the id {wanted!r}; see `omnichannel drafts list`")
    if len(matches) > 1:
        raise ConfigurationError(
            f"{len(matches)} drafts have ids starting with {wanted!r}: give more of the id"
        )
    return matches[0]


def _checking_adapter(network: str, config: Config) -> Adapter:
    """An adapter to check an approved reply against (never opened: no network call).

    Built from the settings when they are there (they may change a limit);
    otherwise from the adapter's defaults, which is all the checks need.
    """
    cls = load_adapter(network)
    try:
        return config.build(cls)
    except ConfigurationError:
        return cls(cls.settings_model.model_construct())


def _print_drafts(drafts: list[Draft], out: TextIO) -> None:
    now = datetime.now(UTC)
    rows = [
        [d.id[:12], d.status, d.action.network, _addressee(d.action), d.action.type,
         _age(d.created_at, now), shorten(d.note or "", 24), shorten(d.action.text, 56)]
        for d in drafts
    ]
    if rows:
        print(render_table(["id", "status", "network", "to", "kind", "age", "note", "text"],
                           rows), file=out)


async def _drafts(args: argparse.Namespace, path: str, config: Config, out: TextIO) -> int:
    if args.verb == "list":
        async with store_for(path, read_only=True) as reader:
            status: DraftStatus | None = None if args.status == "all" else args.status
            found = [
                d for d in await reader.list_drafts(status=status, limit=args.limit)
                if args.network is None or d.action.network == args.network
            ]
        label = "Drafts" if args.status == "all" else f"{args.status.capitalize()} drafts"
        print(f"{label} ({len(found)}, oldest first)", file=out)
        _print_drafts(found, out)
        return 0
    by = args.by or _default_agent()
    async with store_for(path) as store:
        draft = await _find(store, args.id)
        if draft.status != "pending":
            raise DraftNotPending(draft.id, status=draft.status)
        if args.verb == "reject":
            hub = Hub(store=store)
            await hub.drafts.reject(draft.id, by=by, reason=args.reason)
            print(f"rejected draft {draft.id[:12]} to {draft.action.network}; it will not be "
                  "sent", file=out)
            return 0
        adapter = _checking_adapter(draft.action.network, config)
        hub = Hub(adapters=[adapter], store=store)
        try:
            item = await hub.drafts.approve(draft.id, by=by, text=args.text,
                                            allow_duplicate=args.allow_duplicate)
        except DuplicateReply as exc:
            exc.add_note("--allow-duplicate approves it anyway")
            raise
        edited = " (edited)" if args.text is not None else ""
        print(f"approved draft {draft.id[:12]}{edited}: queued for {item.network} as "
              f"{item.key[:12]}; the running bot delivers it", file=out)
        return 0


def cmd_drafts(args: argparse.Namespace, out: TextIO) -> int:
    """List, approve or reject the drafts of a SQLite store."""
    config = Config.load(args.config)
    path = existing_store(config.store_path(args.store))
    check_networks([args.network] if getattr(args, "network", None) else None)
    return anyio.run(lambda: _drafts(args, path, config, out))
