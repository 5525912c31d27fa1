"""``Bot``: handlers written once, run from the command line on real accounts or sandboxes.

Also importable as ``omnichannel.bot.Bot``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio
import anyio.abc

from ._logconfig import configure_logging
from ._shutdown import signal_receiver, stop_on_signal
from .adapter import Adapter
from .errors import AuthenticationError, ConfigurationError, OmnichannelError, TransientError
from .events import (
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
from .hub import CallNext, Context, Handler, Hub, Middleware
from .model import ConversationKind, Visibility
from .policy import ReplyPolicy
from .registry import check_networks, install_hint
from .routing import Router
from .settings import Config, adapters_from_settings
from .store import OutboxStatus, PostgresStore, SQLiteStore, Store, store_for

__all__ = ["Bot"]

E = TypeVar(
    "E", MessageReceived, MessageUpdated, MessageDeleted, ReactionAdded, ReactionRemoved,
    SlaWarning, SlaBreached, AuthHealth,
)

_BUSY: tuple[OutboxStatus, ...] = ("pending", "sending", "ambiguous")


class _Activity:
    """Remembers when a handler last ran (to tell when a bot has gone idle) and what it got."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.handled = 0
        self.started_at = datetime.now(UTC)
        self.received: set[str] = set()  # ids of the messages handed to handlers in this run

    def touch(self) -> None:
        self.last = time.monotonic()

    async def middleware(self, event: Event, ctx: Context, call_next: CallNext) -> None:
        self.touch()
        if isinstance(event, MessageReceived):
            self.received.add(str(event.message.ref))
        try:
            await call_next()
        finally:
            self.handled += 1
            self.touch()


def _run_summary(hub: Hub) -> str:
    """This run's figures, from the hub's own counters (which start at zero each run)."""
    total = hub.statistics().total
    parts = [
        f"{total.events_recorded} events received",
        f"{total.duplicates_dropped} already seen",
        f"{total.actions_sent} sent",
        f"{total.drafts_held} held as drafts",
        f"{total.actions_retried} retried",
        f"{total.actions_failed} failed",
    ]
    if total.handler_failures:
        parts.append(f"{total.handler_failures} handler failures")
    return "this run: " + ", ".join(parts)


def _message(exc: OmnichannelError) -> str:
    """The error's message, with the notes added to it (what to check) on the same line."""
    return "; ".join([str(exc), *getattr(exc, "__notes__", ())])


async def _busy(store: Store) -> bool:
    if await store.unhandled_events():
        return True
    for status in _BUSY:
        if await store.list_outbox(status=status, limit=1):
            return True
    return False


async def _wait_until_idle(hub: Hub, activity: _Activity, *, quiet: float) -> None:
    """Return once nothing was handled for ``quiet`` seconds and the outbox is drained."""
    while True:
        await anyio.sleep(0.05)
        if await _busy(hub.store):
            activity.touch()
            continue
        if time.monotonic() - activity.last >= quiet:
            return


class Bot:
    """A set of handlers that runs as a program on every configured network.

    Register handlers with [`on`][omnichannel.bot.Bot.on], exactly as on a
    [`Hub`][omnichannel.hub.Hub]; then ``bot.main()`` reads the command line
    and runs them, against real accounts (settings from ``omnichannel.toml``
    or ``OMNICHANNEL_<NETWORK>_<SETTING>`` variables) or, with
    ``--sandbox``, against the sandbox of every installed adapter with a few
    scripted customers.

    ```python
    bot = Bot("echo", policy=AutoSend())

    @bot.on(MessageReceived)
    async def echo(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply(f"You said: {event.message.text}")

    if __name__ == "__main__":
        raise SystemExit(bot.main())
    ```

    Args:
        name: The program's name (in messages and ``--help``).
        policy: The hub's reply policy (default: the hub's, which holds public
            replies as drafts).
        copy_paste_window: The hub's guardrail window against sending the same
            text to different customers (``None`` turns it off).
        description: Shown by ``--help``.
    """

    def __init__(
        self,
        name: str = "bot",
        *,
        policy: ReplyPolicy | None = None,
        copy_paste_window: timedelta | None = timedelta(hours=24),
        description: str | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.copy_paste_window = copy_paste_window
        self.description = description
        self.router = Router(name)
        self._middleware: list[Middleware] = []

    def __repr__(self) -> str:
        return f"<Bot {self.name!r} handlers={len(list(self.router.registrations()))}>"

    def on(
        self,
        event_type: type[E],
        *,
        network: str | Iterable[str] | None = None,
        visibility: Visibility | Iterable[Visibility] | None = None,
        kind: ConversationKind | Iterable[ConversationKind] | None = None,
        when: Callable[[E], bool] | None = None,
    ) -> Callable[[Handler[E]], Handler[E]]:
        """Register a handler on the bot's router.

        The filters are [`Router.on`][omnichannel.routing.Router.on]'s.
        """
        return self.router.on(
            event_type, network=network, visibility=visibility, kind=kind, when=when
        )

    def include_router(self, router: Router) -> Router:
        """Run ``router``'s handlers too, after those registered so far.

        Raises:
            ConfigurationError: ``router`` includes the bot's own router.
        """
        return self.router.include_router(router)

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware around every handler call; usable as a decorator."""
        self._middleware.append(middleware)
        return middleware

    def build_hub(self, *, adapters: Iterable[Adapter], store: Store, **hub_options: Any) -> Hub:
        """Return a new hub with these adapters, this store and the bot's handlers.

        Args:
            adapters: One adapter per network.
            store: Where the hub keeps its state.
            hub_options: Further [`Hub`][omnichannel.hub.Hub] arguments; they
                win over the bot's ``policy`` and ``copy_paste_window``.

        Raises:
            ConfigurationError: Two adapters serve the same network.
        """
        options: dict[str, Any] = {
            "policy": self.policy, "copy_paste_window": self.copy_paste_window, **hub_options,
        }
        hub = Hub(adapters=adapters, store=store, **options)
        for middleware in self._middleware:
            hub.use(middleware)
        hub.include_router(self.router)
        return hub

    # the command line -------------------------------------------------------------

    def _parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=self.name, description=self.description or f"Run the {self.name} bot.",
        )
        parser.add_argument(
            "--sandbox", action="store_true",
            help="run against the sandbox of every installed adapter, with scripted customers",
        )
        parser.add_argument("--config", metavar="FILE",
                            help="settings file (default: ./omnichannel.toml if it exists)")
        parser.add_argument("--store", metavar="FILE|URL",
                            help="SQLite file or postgresql:// URL (default: the config's, "
                                 "or omnichannel.db; "
                                 "a temporary one with --sandbox)")
        parser.add_argument("--network", action="append", metavar="NAME",
                            help="run on this network only (repeatable)")
        parser.add_argument("--until-idle", action="store_true",
                            help="stop once everything received is handled and delivered")
        parser.add_argument("--max-seconds", type=float, metavar="S",
                            help="stop after this many seconds at most")
        parser.add_argument("-v", "--verbose", action="count", default=0,
                            help="log more: -v adds one line per HTTP request, -vv debug")
        parser.add_argument("--log-config", metavar="FILE",
                            help="a logging dictConfig in JSON or TOML (default: "
                                 "OMNICHANNEL_LOG_CONFIG) instead of the readable lines")
        return parser

    def main(self, argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
        """Run the bot from the command line; return the exit status.

        Args:
            argv: The arguments (default: ``sys.argv[1:]``).
            out: Where to print (default: standard output).

        SIGTERM and SIGINT (Ctrl+C) stop it cleanly: handlers still running and
        sends in flight get a few seconds to finish (a second signal cuts this
        short), then they are cancelled (an unhandled event is handled again
        at the next start; a send cut mid-way is looked up before any resend);
        the adapters and the store are closed; the run's report is printed.

        Returns:
            ``0`` when it stopped normally or on SIGTERM, ``130`` on SIGINT,
            ``1`` when a network refused to start, ``2`` for a settings
            problem (the message names the setting).
        """
        stream = out or sys.stdout
        args = self._parser().parse_args(argv)
        try:
            configure_logging(args.verbose, config=args.log_config)
            if args.sandbox:
                stopped_by = anyio.run(lambda: self._run_sandbox(args, stream))
            else:
                stopped_by = anyio.run(lambda: self._run_accounts(args, stream))
        except ConfigurationError as exc:
            print(f"{self.name}: error: {_message(exc)}", file=sys.stderr)
            return 2
        except OmnichannelError as exc:
            print(f"{self.name}: error: {_message(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        return 130 if stopped_by == signal.SIGINT else 0

    async def _serve(
        self,
        hub: Hub,
        *,
        until_idle: bool,
        max_seconds: float | None,
        quiet: float,
        activity: _Activity,
        started: Callable[[], Awaitable[None]] | None = None,
    ) -> signal.Signals | None:
        """Run ``hub`` until it stops, goes idle (``until_idle``), times out or is signalled.

        Returns:
            The signal that stopped it, or ``None``.
        """
        hub.use(activity.middleware)
        stopped_by: list[signal.Signals] = []
        with ExitStack() as stack:
            signals = signal_receiver(stack)
            async with hub:
                with anyio.move_on_after(max_seconds if max_seconds is not None else float("inf")):
                    async with anyio.create_task_group() as tg:

                        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                            try:
                                await hub.run(task_status=task_status)
                            finally:
                                tg.cancel_scope.cancel()

                        if signals is not None:
                            tg.start_soon(
                                stop_on_signal, signals, hub, tg.cancel_scope, stopped_by
                            )
                        await tg.start(run)
                        if started is not None:
                            await started()
                        activity.touch()
                        if until_idle:
                            await _wait_until_idle(hub, activity, quiet=quiet)
                            tg.cancel_scope.cancel()
        return stopped_by[0] if stopped_by else None

    async def _run_accounts(
        self, args: argparse.Namespace, out: TextIO
    ) -> signal.Signals | None:
        config = Config.load(args.config)
        adapters = adapters_from_settings(config=args.config, networks=args.network)
        store = store_for(config.store_path(args.store))
        hub = self.build_hub(adapters=adapters, store=store)
        longest = max((float(getattr(a.settings, "poll_interval", 30.0)) for a in adapters),
                      default=30.0)

        async def started() -> None:
            names = ", ".join(
                f"{a.network} as @{a.account.handle}" if a.account and a.account.handle
                else a.network
                for a in adapters
            )
            print(f"{self.name}: answering on {names}; store {_where(store)}"
                  + ("" if args.until_idle else " (Ctrl+C to stop)"), file=out, flush=True)

        try:
            stopped_by = await self._serve(
                hub, until_idle=args.until_idle, max_seconds=args.max_seconds,
                quiet=2 * longest + 1, activity=_Activity(), started=started,
            )
        except (AuthenticationError, TransientError) as exc:  # a network refused to start
            failed = next((a for a in adapters if a.network == exc.network), None)
            hint = config.hint(type(failed), exc) if failed is not None else None
            if hint is not None:
                exc.add_note(hint)
            raise
        self._report_stop(stopped_by, hub, out)
        return stopped_by

    def _report_stop(self, stopped_by: signal.Signals | None, hub: Hub, out: TextIO) -> None:
        how = f"stopped on {stopped_by.name}" if stopped_by is not None else "stopped"
        print(f"{self.name}: {how}; {_run_summary(hub)}", file=out, flush=True)

    async def _run_sandbox(
        self, args: argparse.Namespace, out: TextIO
    ) -> signal.Signals | None:
        from ._demo._report import collect_outcomes, this_run, transcript
        from ._demo._sandboxes import open_sandbox_networks
        from ._demo._scenario import write_starter_conversations

        check_networks(args.network)
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-") as folder:
            path = args.store or str(Path(folder) / f"{self.name}.db")
            async with open_sandbox_networks(networks=args.network, loopback=False) as networks:
                if not networks:
                    raise ConfigurationError(
                        "no installed adapter ships a sandbox; from a clone of the "
                        f"repository: {install_hint('mastodon', 'bluesky')}"
                    )
                store = store_for(path)
                hub = self.build_hub(adapters=[n.adapter for n in networks], store=store)
                print(f"{self.name}: running on the {', '.join(n.network for n in networks)} "
                      "sandbox" + ("es" if len(networks) > 1 else "") + " with scripted customers",
                      file=out, flush=True)

                async def started() -> None:
                    for network in networks:
                        write_starter_conversations(network.sandbox)

                activity = _Activity()
                stopped_by = await self._serve(
                    hub, until_idle=args.until_idle, max_seconds=args.max_seconds,
                    quiet=1.0, activity=activity, started=started,
                )
                with anyio.CancelScope(shield=True):
                    async with store_for(path) as reader:
                        outcomes = this_run(await collect_outcomes(reader),
                                            since=activity.started_at, received=activity.received)
                print(transcript(outcomes) if outcomes else "(nothing received or answered in "
                      "this run)", file=out, flush=True)
                self._report_stop(stopped_by, hub, out)
                return stopped_by


def _where(store: SQLiteStore | PostgresStore) -> str:
    """The store's file, or its URL without the password."""
    return store.url if isinstance(store, PostgresStore) else store.path
