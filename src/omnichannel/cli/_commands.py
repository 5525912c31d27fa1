"""The ``adapters``, ``replay`` and ``serve`` commands, and helpers the others share."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import anyio
import anyio.abc

from .._shutdown import signal_receiver, stop_on_signal
from ..actions import Post, PrivateReply, Reply
from ..adapter import Adapter, Batch, WebhookRequest
from ..errors import CapabilityNotSupported, ConfigurationError, OmnichannelError, PayloadError
from ..events import (
    AuthHealth,
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
    SlaBreached,
    SlaWarning,
)
from ..hub import Hub
from ..model import Message
from ..registry import adapters as installed_adapters
from ..registry import install_hint, load_adapter
from ..settings import Config
from ..store import is_postgres_url
from ._capabilities import capability_matrix
from ._table import render_table

__all__ = ["cmd_adapters", "cmd_replay", "cmd_serve", "describe_event"]

# adapters -------------------------------------------------------------------------

logger = logging.getLogger("omnichannel.cli")


def cmd_adapters(args: argparse.Namespace, out: TextIO) -> int:
    """List installed adapters and their declared capabilities."""
    infos = installed_adapters()
    if args.json:
        data = [
            {
                "network": info.network,
                "distribution": info.distribution,
                "version": info.version,
                "ok": info.ok,
                "error": info.error,
                "capabilities": (
                    info.capabilities.model_dump(mode="json")
                    if info.capabilities is not None else None
                ),
            }
            for info in infos
        ]
        print(json.dumps(data, indent=2, sort_keys=True), file=out)
        return 0 if all(info.ok for info in infos) else 1
    if not infos:
        print("No adapters are installed. From a clone of the repository, install those "
              f"that ship with omnichannel: {install_hint()}", file=out)
        return 0
    rows = [
        [info.network, info.distribution or "?", info.version or "?",
         "ok" if info.ok else f"failed: {info.error}"]
        for info in infos
    ]
    print(render_table(["network", "distribution", "version", "status"], rows), file=out)
    headers, matrix = capability_matrix(infos)
    if len(headers) > 1:
        print(file=out)
        print(render_table(headers, matrix), file=out)
    return 0 if all(info.ok for info in infos) else 1


# replay ---------------------------------------------------------------------------


def _message_lines(message: Message) -> list[str]:
    who = "@" + (message.author.handle or message.author.ref.id)
    if message.author.display_name:
        who += f" ({message.author.display_name})"
    lines = [
        f"   from {who}{' (us)' if message.from_us else ''}, {message.visibility}, "
        f"conversation {message.conversation}",
        f"   text: {json.dumps(message.text, ensure_ascii=False)}",
    ]
    if message.in_reply_to is not None:
        lines.append(f"   in reply to {message.in_reply_to}")
    for entity in message.entities:
        covered = json.dumps(entity.text_in(message.text), ensure_ascii=False)
        lines.append(f"   {entity.type} {covered} [{entity.start}:{entity.end}]")
    for attachment in message.attachments:
        alt = ""
        if attachment.alt_text:
            alt = f" alt={json.dumps(attachment.alt_text, ensure_ascii=False)}"
        lines.append(f"   {attachment.kind} {attachment.url or ''}{alt}".rstrip())
    return lines


def describe_event(number: int, event: Event) -> str:
    """Describe one normalized event in a few human-readable lines."""
    head = f"{number}. {event.type}  id={event.id}  at {event.occurred_at.isoformat()}"
    lines = [head]
    match event:
        case MessageReceived() | MessageUpdated():
            lines.extend(_message_lines(event.message))
        case MessageDeleted():
            lines.append(f"   message {event.message}")
        case ReactionAdded() | ReactionRemoved():
            who = event.by.handle or event.by.ref.id
            lines.append(f"   {event.reaction} by @{who} on {event.target}")
        case SlaWarning() | SlaBreached():
            lines.append(f"   {event.metric} due {event.due_at.isoformat()} on "
                         f"{event.conversation}")
        case AuthHealth():
            lines.append(f"   {event.kind}: {event.detail}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Payload:
    """One body to replay: a whole file, or one interaction of a decoded cassette."""

    label: str
    endpoint: str | None
    body: bytes
    skip: str | None = None


def _payloads(path: Path, data: bytes, *, only: int | None) -> list[_Payload]:
    """Split a file into payloads: a decoded cassette gives one per interaction.

    An interaction's endpoint is its URI's path and query (an adapter may need
    the query). Unless ``only`` names one, interactions that are not what a
    ``GET`` answered successfully are marked to skip: ``parse_payload`` reads
    answers to reads, not to writes or errors.
    """
    try:
        decoded = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: one raw payload
        decoded = None
    if not (isinstance(decoded, dict) and isinstance(decoded.get("interactions"), list)):
        return [_Payload(str(path), None, data)]
    found: list[_Payload] = []
    for index, interaction in enumerate(decoded["interactions"], start=1):
        if only is not None and index != only:
            continue
        if not isinstance(interaction, dict) or "response_body" not in interaction:
            continue
        body = interaction["response_body"]
        # A JSON string may hold lone surrogates ("\ud800"): kept as they are, the
        # adapter refuses them as a PayloadError like any other bad byte.
        raw = (body.encode("utf-8", "surrogatepass") if isinstance(body, str)
               else json.dumps(body).encode())
        uri = str(interaction.get("uri", ""))
        method = str(interaction.get("method", "GET")).upper()
        status = interaction.get("status")
        parts = urlsplit(uri)
        endpoint = parts.path + (f"?{parts.query}" if parts.query else "")
        skip = None
        if only is None and method != "GET":
            skip = f"a {method} answer (replay reads GET answers; --interaction {index} forces it)"
        elif only is None and isinstance(status, int) and status >= 400:
            skip = f"an error answer (HTTP {status})"
        label = f"interaction {index}: {method} {uri} -> {status if status is not None else '?'}"
        found.append(_Payload(label, endpoint or None, raw, skip))
    if only is not None and not found:
        raise ConfigurationError(f"{path} has no interaction number {only}")
    return found


def _webhook_adapter(cls: type[Adapter], config: Config) -> Adapter:
    try:
        return config.build(cls)
    except ConfigurationError:
        # Parsing needs no credentials: build with unvalidated defaults.
        return cls(cls.settings_model.model_construct())


def _parse(
    cls: type[Adapter], body: bytes, *, endpoint: str | None, account: str | None,
    headers: dict[str, str], webhook: bool, config: Config,
) -> Sequence[Event]:
    """The events of one body: the adapter's ``parse_payload``, or ``parse`` for a webhook."""
    has_webhooks = "webhook" in cls.capabilities.inbound
    if not webhook:
        try:
            return cls.parse_payload(body, path=endpoint, account=account)
        except CapabilityNotSupported:
            if not has_webhooks:
                raise ConfigurationError(
                    "this adapter cannot replay payloads: it has no webhooks and does not "
                    "implement Adapter.parse_payload to read recorded API answers",
                    network=cls.network,
                ) from None
    elif not has_webhooks:
        raise ConfigurationError("this network has no webhooks: drop --webhook",
                                 network=cls.network)
    adapter = _webhook_adapter(cls, config)
    request = WebhookRequest(method="POST", path=f"/{cls.network}", headers=headers, body=body)
    parsed = adapter.parse(request)
    if not isinstance(parsed, Batch):
        return parsed
    for item in parsed.rejected:
        where = f"{item.path}: " if item.path else ""
        logger.warning("%s: an item of the body was rejected: %s%s", cls.network, where,
                       item.reason)
    return parsed.events


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """Feed a recorded webhook body or API answer through an adapter; print the events.

    With ``--json`` only the events go to ``out`` (one per line); headings and
    notes go to standard error.
    """
    cls = load_adapter(args.network)
    path = Path(args.file)
    if args.file == "-":
        data = sys.stdin.buffer.read()
    elif not path.is_file():
        raise ConfigurationError(f"no such file: {path}")
    else:
        data = path.read_bytes()
    headers: dict[str, str] = {}
    for header in args.header or []:
        name, sep, value = header.partition(":")
        if not sep:
            raise ConfigurationError(f"--header wants 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    config = Config.load(args.config)
    payloads = _payloads(path, data, only=args.interaction)
    if payloads and all(p.skip is not None for p in payloads):
        raise ConfigurationError(
            f"{path} holds no successful GET answer to replay; pick an interaction "
            "with --interaction N"
        )
    notes = sys.stderr if args.json else out
    total = parsed = failures = skipped = 0
    for payload in payloads:
        if len(payloads) > 1:
            print(f"== {payload.label}", file=notes)
        if payload.skip is not None:
            skipped += 1
            print(f"   skipped: {payload.skip}", file=notes)
            continue
        try:
            events = _parse(
                cls, payload.body, endpoint=args.path or payload.endpoint,
                account=args.account, headers=headers, webhook=args.webhook, config=config,
            )
        except PayloadError as exc:
            failures += 1
            print(f"   not parsed: {exc}", file=notes)
            continue
        parsed += 1
        for event in events:
            total += 1
            if args.json:
                exclude: Any = None if args.raw else {"message": {"raw"}}
                dumped = event.model_dump(mode="json", exclude=exclude)
                print(json.dumps(dumped, ensure_ascii=False, sort_keys=True), file=out)
            else:
                print(describe_event(total, event), file=out)
        if not events:
            print("   (no events)", file=notes)
    summary = f"{_plural(total, 'event')} from {_plural(parsed, 'payload')}"
    if failures:
        summary += f"; {failures} not parsed"
    if skipped:
        summary += f"; {skipped} skipped"
    print(summary, file=notes)
    return 1 if failures and not parsed else 0


# inbox ----------------------------------------------------------------------------


def _age(when: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _handle(message: Message) -> str:
    return "@" + (message.author.handle or message.author.ref.id)


def _addressee(action: Reply | PrivateReply | Post) -> str:
    return _handle(action.to) if isinstance(action, Reply | PrivateReply) else "(new post)"


# serve ----------------------------------------------------------------------------


def _import_target(spec: str) -> object:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"APP must look like 'module:attribute', not {spec!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigurationError(f"cannot import module {module_name!r}: {exc}") from None
        raise
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise ConfigurationError(
            "serving needs uvicorn: pip install uvicorn"
        ) from None
    return uvicorn


def _webhook_summary(hub: Hub, host: str, port: int) -> str:
    """Where the hub's networks take webhooks; networks without webhooks are named as such.

    Only an adapter whose capabilities list ``webhook`` among its inbound
    modes gets a URL: a network that polls or streams has nothing to post.
    """
    if not hub.adapters:
        return "webhooks at (no adapters)"
    address = hub.webhook_address or (host, port)
    base = f"http://{address[0]}:{address[1]}"
    with_hooks = sorted(n for n, a in hub.adapters.items() if "webhook" in a.capabilities.inbound)
    without = sorted(n for n in hub.adapters if n not in with_hooks)
    parts = []
    if with_hooks:
        parts.append("webhooks at " + ", ".join(f"{base}/{n}" for n in with_hooks))
    if without:
        parts.append("no webhooks for " + ", ".join(without) + " (polled or streamed)")
    return "; ".join(parts)


async def _serve_hub(
    hub: Hub, *, host: str, port: int, listen: bool, out: TextIO
) -> signal.Signals | None:
    """Run ``hub`` with its webhook server until it stops or SIGINT/SIGTERM arrives.

    A signal stops the hub's run as the quick bot's does: running handlers
    and sends get a few seconds to finish, then the run is cancelled, as
    Ctrl+C in a script would: the webhook server answers what it was
    answering, the adapters are closed and the store too; nothing is cut
    half-way by the process dying.

    Returns:
        The signal that stopped the hub, or ``None`` when it stopped on its own.
    """
    stopped_by: list[signal.Signals] = []
    with ExitStack() as stack:
        signals = signal_receiver(stack)
        async with hub, anyio.create_task_group() as tg:

            async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                try:
                    await hub.run(
                        listen=listen, serve_webhooks=(host, port), task_status=task_status
                    )
                finally:
                    tg.cancel_scope.cancel()

            if signals is not None:
                tg.start_soon(stop_on_signal, signals, hub, tg.cancel_scope, stopped_by)
            await tg.start(run)
            print(f"omnichannel: hub running; {_webhook_summary(hub, host, port)} "
                  "(Ctrl+C to stop)", file=out, flush=True)
    if stopped_by:
        print(f"omnichannel: stopped on {stopped_by[0].name}", file=out, flush=True)
        return stopped_by[0]
    return None


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    """Run a hub (listeners, outbox, webhooks) or an ASGI app with uvicorn."""
    target = _import_target(args.app)
    if args.factory:
        if not callable(target):
            raise ConfigurationError(f"{args.app} is not callable, so it cannot be a --factory")
        target = target()
    if isinstance(target, Hub):
        _uvicorn()
        try:
            stopped_by = anyio.run(lambda: _serve_hub(
                target, host=args.host, port=args.port, listen=not args.no_listen, out=out
            ))
        except KeyboardInterrupt:
            return 130
        return 130 if stopped_by == signal.SIGINT else 0
    if not callable(target):
        raise ConfigurationError(
            f"{args.app} is neither a Hub nor an ASGI application (got {type(target).__name__})"
        )
    uvicorn = _uvicorn()
    print(f"omnichannel: serving {args.app} on http://{args.host}:{args.port} (Ctrl+C to stop)",
          file=out, flush=True)
    uvicorn.run(target, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def as_error_message(exc: OmnichannelError) -> str:
    """Return the one-line (or few-line) message the CLI prints for ``exc``."""
    return str(exc)


def existing_store(target: str) -> str:
    """Return ``target`` when it names a PostgreSQL database or an existing SQLite file.

    Raises:
        ConfigurationError: No SQLite file is there (it is not created).
    """
    if not is_postgres_url(target) and not Path(target).is_file():
        raise ConfigurationError(
            f"no store at {target}: run a bot first, or name one with --store "
            "(or OMNICHANNEL_STORE)"
        )
    return target
