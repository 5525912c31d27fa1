"""``omnichannel inbox``: show the inbox, or act on a conversation.

Actions: assign, claim, release, status, tag, snooze, resolve, reply.

Each action changes one conversation's state through the helpdesk
[`Workflow`][omnichannel.helpdesk.Workflow], so it is compare-and-set and
audited like the same change made from a web app or a handler. ``reply``
queues an agent's answer (a canned reply or a text) in the store's outbox for
the running bot to deliver; a colleague's claim refuses it by name.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import anyio

from .._health import AUDIT_TYPE
from ..actions import PrivateReply, Reply
from ..errors import ConfigurationError
from ..helpdesk import CannedReplies, Workflow
from ..hub import Hub
from ..model import Message, Ref
from ..registry import check_networks, load_adapter
from ..settings import Config
from ..spend import SpendMeter
from ..store import AuditEntry, ConversationState, Store, store_for
from ._commands import _addressee, _age, _handle, existing_store
from ._drafts import _checking_adapter, _default_agent
from ._table import render_table, shorten

__all__ = ["add_inbox_actions", "cmd_inbox", "state_json"]

logger = logging.getLogger("omnichannel.cli")

_RELATIVE = re.compile(r"^\+(\d+)([mhd])$")


def _conversation(text: str) -> Ref:
    network, sep, native = text.partition(":")
    if not sep or not network or not native:
        raise ConfigurationError(
            f"a conversation is NETWORK:ID (as `omnichannel inbox --json` shows), not {text!r}"
        )
    load_adapter(network)  # an unknown network is named with its install hint
    return Ref(network=network, id=native)


def _until(text: str, now: datetime) -> datetime:
    relative = _RELATIVE.match(text)
    if relative is not None:
        amount, unit = int(relative[1]), relative[2]
        return now + timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"snooze until {text!r}: give +30m, +4h, +2d or an ISO time with its offset"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"snooze until {text!r}: give the time's offset (+01:00, Z)")
    return moment


def add_inbox_actions(inbox: argparse.ArgumentParser) -> None:
    """Add the action verbs to the ``inbox`` parser (no verb: show the inbox)."""
    verbs = inbox.add_subparsers(dest="verb", metavar="ACTION")

    def action(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=help_, description=description)
        parser.add_argument("conversation", metavar="CONVERSATION",
                            help="NETWORK:ID of the conversation (as --json shows)")
        parser.add_argument("--store", metavar="FILE|URL",
                            help="the store (default: OMNICHANNEL_STORE, the config's, "
                                 "omnichannel.db)")
        parser.add_argument("--config", metavar="FILE", help="settings file naming the store")
        parser.add_argument("--json", action="store_true",
                            help="print the conversation's new state as JSON")
        return parser

    assign = action("assign", "give a conversation to an agent",
                    "Assign the conversation to AGENT ('-' unassigns); audited.")
    assign.add_argument("agent", metavar="AGENT", help="the agent's id, or - for nobody")
    assign.add_argument("--why", help="the reason, for the audit log")
    assign.add_argument("--by", help="who assigns (default: agent:<login name>)")

    claim = action("claim", "mark that an agent is viewing or typing in a conversation",
                   "Claim the conversation for AGENT for --ttl seconds (run it again to "
                   "renew). A colleague's running claim refuses it, naming them, unless "
                   "--force.")
    claim.add_argument("agent", metavar="AGENT", help="the agent's id")
    claim.add_argument("--typing", action="store_true", help="typing, not just viewing")
    claim.add_argument("--ttl", type=float, default=30.0, help="seconds (default 30)")
    claim.add_argument("--force", action="store_true", help="take over a colleague's claim")

    release = action("release", "give up an agent's claim", "Release AGENT's claim.")
    release.add_argument("agent", metavar="AGENT", help="the agent's id")

    status = action("status", "mark a conversation open or pending on the customer",
                    "Set the status: open (waits for us) or pending (waits for the customer).")
    status.add_argument("status", choices=["open", "pending"], help="the new status")
    status.add_argument("--why", help="the reason, for the audit log")
    status.add_argument("--by", help="who (default: agent:<login name>)")

    tag = action("tag", "add (or with --remove, remove) tags", "Add or remove tags.")
    tag.add_argument("tags", nargs="+", metavar="TAG", help="the tags")
    tag.add_argument("--remove", action="store_true", help="remove them instead")
    tag.add_argument("--by", help="who (default: agent:<login name>)")

    snooze = action("snooze", "put a conversation aside until a time",
                    "Snooze until UNTIL: +30m, +4h, +2d, or an ISO time with its offset. A "
                    "customer's message wakes it earlier.")
    snooze.add_argument("until", metavar="UNTIL", help="+30m, +4h, +2d or an ISO time")
    snooze.add_argument("--why", help="the reason, for the audit log")
    snooze.add_argument("--by", help="who (default: agent:<login name>)")

    resolve = action("resolve", "mark a conversation resolved", "Resolve; SLA clocks stop.")
    resolve.add_argument("--why", help="the reason, for the audit log")
    resolve.add_argument("--by", help="who (default: agent:<login name>)")

    reply = action(
        "reply", "answer the customer's last message (a canned reply or a text)",
        "Queue an answer to the customer's last message in the conversation, as AGENT: "
        "--canned NAME (from [[helpdesk.canned]] in the settings file, with --var "
        "name=value for its variables; the customer's name is filled in as 'name' unless "
        "given) or --text. A colleague's claim refuses it, naming them, unless --force. "
        "The running bot delivers it.",
    )
    reply.add_argument("agent", metavar="AGENT", help="the agent's id")
    what = reply.add_mutually_exclusive_group(required=True)
    what.add_argument("--canned", metavar="NAME", help="a canned reply from the settings")
    what.add_argument("--text", help="the answer's text")
    reply.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="a variable of the canned reply (repeatable)")
    reply.add_argument("--private", action="store_true",
                       help="answer privately (a direct message)")
    reply.add_argument("--force", action="store_true", help="answer despite a colleague's claim")
    reply.add_argument("--allow-duplicate", action="store_true",
                       help="skip the copy-paste guardrail")


def state_json(state: ConversationState) -> dict[str, Any]:
    """A conversation state as plain JSON data (what ``--json`` prints)."""
    data: dict[str, Any] = state.model_dump(mode="json")
    data["conversation"] = f"{state.conversation.network}:{state.conversation.id}"
    return data


async def _last_customer_message(store: Store, conversation: Ref) -> Message:
    messages = await store.conversation_messages(conversation, limit=100)
    customers = [m for m in messages if not m.from_us]
    if not customers:
        raise ConfigurationError(
            f"conversation {conversation.network}:{conversation.id} has no customer message "
            "in the store to answer"
        )
    return customers[-1]


def _variables(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"--var {pair!r}: give NAME=VALUE")
        out[name] = value
    return out


async def _act(args: argparse.Namespace, target: str, config: Config, out: TextIO) -> int:
    conversation = _conversation(args.conversation)
    by = getattr(args, "by", None) or _default_agent()
    async with store_for(target) as store:
        workflow = Workflow(store)
        verb = args.verb
        if verb == "assign":
            agent = None if args.agent == "-" else args.agent
            state = await workflow.assign(conversation, agent, by=by, why=args.why)
            said = f"assigned to {agent}" if agent else "unassigned"
        elif verb == "claim":
            state = await workflow.claim(
                conversation, args.agent, activity="typing" if args.typing else "viewing",
                ttl=timedelta(seconds=args.ttl), force=args.force,
            )
            said = f"claimed by {args.agent} until {state.claimed_until:%H:%M:%S}"
        elif verb == "release":
            state = await workflow.release(conversation, args.agent)
            said = f"released by {args.agent}"
        elif verb == "status":
            state = await workflow.set_status(conversation, args.status, by=by, why=args.why)
            said = f"now {args.status}"
        elif verb == "tag":
            change: Callable[..., Any] = workflow.untag if args.remove else workflow.tag
            state = await change(conversation, *args.tags, by=by)
            said = "tags: " + (", ".join(state.tags) or "none")
        elif verb == "snooze":
            until = _until(args.until, datetime.now(UTC))
            state = await workflow.snooze(conversation, until, by=by, why=args.why)
            said = f"snoozed until {until.isoformat(timespec='minutes')}"
        elif verb == "resolve":
            state = await workflow.resolve(conversation, by=by, why=args.why)
            said = "resolved"
        else:
            return await _reply(args, store, workflow, conversation, config, out)
    if args.json:
        print(json.dumps(state_json(state), ensure_ascii=False), file=out)
    else:
        print(f"{conversation.network}:{conversation.id}: {said}", file=out)
    return 0


async def _reply(args: argparse.Namespace, store: Store, workflow: Workflow, conversation: Ref,
                 config: Config, out: TextIO) -> int:
    customer = await _last_customer_message(store, conversation)
    adapter = _checking_adapter(conversation.network, config)
    if args.canned is not None:
        replies = CannedReplies.from_settings(config.helpdesk.get("canned", []))
        values = {"name": customer.author.display_name or customer.author.handle or "there",
                  **_variables(args.var)}
        rule = adapter.capabilities.dm_text if args.private else None
        text = replies[args.canned].render(
            conversation.network, private=args.private,
            rule=rule or adapter.capabilities.text, **values,
        )
    else:
        text = args.text
    action = (PrivateReply(network=conversation.network, to=customer, text=text)
              if args.private else Reply(network=conversation.network, to=customer, text=text))
    hub = Hub(adapters=[adapter], store=store)
    item = await workflow.answer(hub, action, agent=args.agent, force=args.force,
                                 allow_duplicate=args.allow_duplicate)
    if args.json:
        state = await workflow.state(conversation)
        print(json.dumps({"queued": item.key, "text": text, "state": state_json(state)},
                         ensure_ascii=False), file=out)
    else:
        how = "privately" if args.private else "publicly"
        print(f"{conversation.network}:{conversation.id}: answer queued {how} as "
              f"{item.key[:12]}; the running bot delivers it", file=out)
    return 0


def run_inbox_action(args: argparse.Namespace, target: str, config: Config,
                     out: TextIO) -> int:
    """Run one ``inbox`` action on the store at ``target``."""
    return anyio.run(lambda: _act(args, target, config, out))


# showing the inbox -----------------------------------------------------------------


def _status_lines(
    config: Config | None, network: str | None, now: datetime
) -> list[tuple[str, str]]:
    """What each configured network's adapter says from its settings (spend, say)."""
    if config is None:
        return []
    lines: list[tuple[str, str]] = []
    for name in config.configured_networks():
        if network is not None and name != network:
            continue
        try:
            cls = load_adapter(name)
            settings = cls.settings_model.model_validate(config.settings_for(cls))
            lines.extend((name, line) for line in cls.status_lines(settings, now=now))
        except Exception:
            logger.debug("no status lines for %s", name, exc_info=True)
    return lines


async def _inbox(target: str, *, network: str | None, limit: int, out: TextIO,
                 config: Config | None = None) -> None:
    now = datetime.now(UTC)
    # Read-only: no migration, no recovery, no write; safe next to a running bot.
    async with store_for(target, read_only=True) as store:
        conversations = await store.list_conversations(network=network, limit=limit)
        rows: list[list[str]] = []
        for conversation in conversations:
            messages = await store.conversation_messages(conversation.ref, limit=100)
            state = await store.get_state(conversation.ref)
            last = messages[-1] if messages else None
            customers = [m for m in messages if not m.from_us]
            who = _handle(customers[-1]) if customers else ", ".join(
                "@" + (p.handle or p.ref.id) for p in conversation.participants
            ) or "-"
            due = state.next_due() if state is not None else None
            rows.append([
                conversation.ref.network, conversation.kind, who, str(len(messages)),
                state.status if state else "-", (state.assignee or "-") if state else "-",
                state.priority if state else "-",
                ("overdue" if due <= now else "in " + _duration(due - now))
                if due is not None else "-",
                _age(last.created_at, now) if last else "-",
                shorten(last.text, 40) if last else "",
            ])
        print(f"Conversations ({len(rows)}, most recent first)", file=out)
        if rows:
            print(render_table(
                ["network", "kind", "customer", "msgs", "status", "assignee", "priority",
                 "due", "age", "last message"], rows,
                numeric=[False, False, False, True, False, False, False, True, True, False],
            ), file=out)
        drafts = [
            d for d in await store.list_drafts(status="pending", limit=limit)
            if network is None or d.action.network == network
        ]
        print(file=out)
        print(f"Pending drafts ({len(drafts)}, oldest first)", file=out)
        if drafts:
            print(render_table(
                ["id", "network", "to", "kind", "age", "note", "text"],
                [[d.id[:12], d.action.network, _addressee(d.action), d.action.type,
                  _age(d.created_at, now), shorten(d.note or "", 24), shorten(d.action.text, 44)]
                 for d in drafts],
            ), file=out)
        counts = await _outbox_counts(store, network)
        order = ["pending", "sending", "ambiguous", "sent", "failed", "cancelled"]
        summary = ", ".join(f"{counts[s]} {s}" for s in order if s in counts) or "empty"
        print(file=out)
        print(f"Outbox: {summary}", file=out)
        for entry in await _auth_health(store, network, now):
            print(f"Account health: {entry.network}: {entry.detail} "
                  f"({_age(entry.at, now)} ago)", file=out)
        for name, line in _status_lines(config, network, now):
            print(f"{name}: {line}", file=out)
        shown = {c.ref.network for c in conversations}
        for name, line in await _spend_lines(store, config, network, shown, now):
            print(f"{name}: {line}", file=out)


async def _spend_lines(
    store: Store, config: Config | None, network: str | None, shown: set[str], now: datetime
) -> list[tuple[str, str]]:
    """Today's and this month's spend the store keeps, for each network that has some."""
    names = set(shown) | set(config.configured_networks() if config is not None else ())
    lines: list[tuple[str, str]] = []
    for name in sorted(names):
        if network is not None and name != network:
            continue
        meter = SpendMeter(name, store=store)
        await meter.refresh(now)
        month = meter.spent_in_month(now.year, now.month)
        if month:
            lines.append((name, f"spent today {meter.spent_on(now.date()):.2f} USD; this month "
                                f"{month:.2f} USD (every worker, from the store)"))
    return lines


async def _auth_health(store: Store, network: str | None, now: datetime) -> list[AuditEntry]:
    """The latest account-health report per network of the last two weeks."""
    latest: dict[str, AuditEntry] = {}
    for entry in await store.audit_log(limit=2000):  # newest first
        if entry.action_type != AUDIT_TYPE or now - entry.at > timedelta(days=14):
            continue
        if network is None or entry.network == network:
            latest.setdefault(entry.network, entry)
    return [latest[name] for name in sorted(latest)]


async def _outbox_counts(store: Store, network: str | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in await store.list_outbox(limit=100_000):
        if network is None or item.network == network:
            counts[item.status] = counts.get(item.status, 0) + 1
    return counts


async def _inbox_json(target: str, *, network: str | None, limit: int, out: TextIO) -> None:
    async with store_for(target, read_only=True) as store:
        conversations = []
        for conversation in await store.list_conversations(network=network, limit=limit):
            messages = await store.conversation_messages(conversation.ref, limit=100)
            state = await store.get_state(conversation.ref)
            last = messages[-1] if messages else None
            conversations.append({
                "conversation": f"{conversation.ref.network}:{conversation.ref.id}",
                "kind": conversation.kind,
                "messages": len(messages),
                "last_message": last.model_dump(mode="json", exclude={"raw"}) if last else None,
                "state": state_json(state) if state is not None else None,
            })
        drafts = [
            d.model_dump(mode="json") for d in await store.list_drafts(status="pending",
                                                                      limit=limit)
            if network is None or d.action.network == network
        ]
        health = await _auth_health(store, network, datetime.now(UTC))
        document = {"conversations": conversations, "drafts": drafts,
                    "outbox": await _outbox_counts(store, network),
                    "auth_health": [e.model_dump(mode="json") for e in health]}
    print(json.dumps(document, ensure_ascii=False, default=str), file=out)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


async def _inbox_stats(target: str, *, as_json: bool, out: TextIO) -> None:
    async with store_for(target, read_only=True) as store:
        metrics = await Workflow(store).metrics()
    if as_json:
        print(metrics.model_dump_json(), file=out)
        return
    for title, groups in (("network", metrics.networks), ("priority", metrics.priorities),
                          ("agent", metrics.agents)):
        print(f"By {title}", file=out)
        if groups:
            print(render_table(
                [title, "conversations", "open", "answered", "resolved", "first response (median)",
                 "first response (max)", "resolution (median)"],
                [[name, str(g.conversations), str(g.open), str(g.answered), str(g.resolved),
                  _duration(g.first_response_median), _duration(g.first_response_max),
                  _duration(g.resolution_median)] for name, g in groups.items()],
                numeric=[False, True, True, True, True, True, True, True],
            ), file=out)
        print(file=out)
    print("Queues", file=out)
    if metrics.queues:
        print(render_table(
            ["queue", "backlog", "oldest waiting", "past due"],
            [[name, str(q.backlog), _duration(q.oldest_waiting), str(q.breached)]
             for name, q in metrics.queues.items()],
            numeric=[False, True, True, True],
        ), file=out)


def cmd_inbox(args: argparse.Namespace, out: TextIO) -> int:
    """Show the inbox of a store (a SQLite file or PostgreSQL URL), or act on a conversation."""
    config = Config.load(args.config)
    target = existing_store(config.store_path(args.store))
    if getattr(args, "verb", None):
        return run_inbox_action(args, target, config, out)
    check_networks([args.network] if args.network else None)
    if args.stats:
        anyio.run(lambda: _inbox_stats(target, as_json=args.json, out=out))
    elif args.json:
        anyio.run(lambda: _inbox_json(target, network=args.network, limit=args.limit, out=out))
    else:
        anyio.run(lambda: _inbox(target, network=args.network, limit=args.limit, out=out,
                                 config=config))
    return 0
