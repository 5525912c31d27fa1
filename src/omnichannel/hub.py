"""The hub: business logic written once, run against every configured network.

```python
hub = Hub(adapters=[mastodon, bluesky], store=SQLiteStore("helpdesk.db"))

@hub.on(MessageReceived, visibility="private")
async def triage(event: MessageReceived, ctx: Context) -> None:
    if "refund" in event.message.text.casefold():
        await ctx.draft("Sorry about that, a teammate will follow up here.")
    else:
        await ctx.reply("Thanks, we are looking into it.")

async def main() -> None:
    async with hub:
        await hub.run()
```

The hub ties together parts with modules of their own (routing, context,
drafts, statistics; see the architecture page), whose public names it re-exports.

Every event, whether polled, streamed or posted to a webhook, takes one path:
de-duplicated by its id, persisted with its message and conversation, the
cursor advanced only once the batch is stored, then dispatched. Events of one
conversation are handled one after another, in order; different conversations
are handled concurrently, up to ``max_concurrency`` at a time.

Long because: `Hub` is the one public facade of the runtime; its methods are
short and documented, and the work is in the modules they call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from ._dispatch import (
    Dispatcher,
    claims_for,
    dispatch_unhandled,
    handle_event,
    submit_events,
    sweep_unhandled,
)
from ._health import AuthReports
from ._lifecycle import close_all, open_all
from ._listening import listeners, rejected_letter, start_listeners, store_source_lease
from ._logging import with_log_lines
from ._outgoing import Outgoing
from ._serving import on_asyncio, serve_asgi
from .actions import Action
from .adapter import Adapter, Rejected
from .context import Context, Delivery
from .drafts import Drafts
from .errors import ConfigurationError
from .events import Event
from .instrumentation import Instrumentation, _reporting_to
from .model import ConversationKind, Visibility
from .outbox import Clock, Outbox
from .policy import CopyPasteGuard, HoldPublic, ReplyPolicy
from .routing import CallNext, Handler, Middleware, Router, _EventT
from .sources import SourceLease
from .statistics import HubStatistics, NetworkStatistics, _Tally
from .store import DeadLetter, OutboxItem, Store
from .webhooks import WebhookApp

__all__ = [
    "CallNext",
    "Context",
    "Delivery",
    "Drafts",
    "Handler",
    "Hub",
    "HubStatistics",
    "Middleware",
    "NetworkStatistics",
    "Router",
]

logger = logging.getLogger("omnichannel.hub")

_ONE_MIB = 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Hub:
    """Runs handlers against every configured network, and delivers what they send.

    Args:
        adapters: One adapter per network.
        store: Where events, messages, the outbox, drafts and the audit log live.
            The hub opens it on ``async with hub`` and closes it on leaving.
        policy: Decides per reply whether it is sent at once or held as a draft
            (default: [`HoldPublic`][omnichannel.policy.HoldPublic], which holds
            public replies; pass [`AutoSend()`][omnichannel.policy.AutoSend] to
            send everything at once).
        middleware: Wrappers around every handler call, outermost first.
        max_concurrency: How many events (of different conversations) are
            handled at the same time.
        max_pending: How many events may wait for their handlers before the
            listeners stop fetching more.
        copy_paste_window: The guardrail's window: the same reply text to a
            different customer within it is refused. ``None`` disables it.
        max_body_bytes: Largest webhook body accepted (413 above it).
        listener_backoff: First and longest wait, in seconds, before a failed
            listener (network down, adapter error) starts again.
        source_lease: Held around each inbound source as it runs (see
            [`SourceLease`][omnichannel.sources.SourceLease]). ``None``: a lease
            in the store when several workers share it (``store.multi_worker``),
            so one worker reads each source and the others stand by.
        clock: Returns the current aware time (inject a fake one in tests).
        worker: This worker's id, ``hub.outbox.worker`` (see [`Outbox`][omnichannel.outbox.Outbox]).
        instrumentation: Consumers of the pipeline's hooks (see
            [`Instrumentation`][omnichannel.instrumentation.Instrumentation]);
            the log lines are always the first.

    Raises:
        ConfigurationError: Two adapters serve the same network, or a setting
            is out of range.
    """

    def __init__(
        self,
        *,
        adapters: Iterable[Adapter] = (),
        store: Store,
        policy: ReplyPolicy | None = None,
        middleware: Sequence[Middleware] = (),
        max_concurrency: int = 16,
        max_pending: int = 1000,
        copy_paste_window: timedelta | None = timedelta(hours=24),
        max_body_bytes: int = _ONE_MIB,
        listener_backoff: tuple[float, float] = (1.0, 60.0),
        source_lease: SourceLease | None = None,
        clock: Clock = _utcnow,
        worker: str | None = None,
        instrumentation: Sequence[Instrumentation] = (),
    ) -> None:
        by_network: dict[str, Adapter] = {}
        for adapter in adapters:
            if adapter.network in by_network:
                raise ConfigurationError(
                    f"two adapters serve network {adapter.network!r}", network=adapter.network
                )
            by_network[adapter.network] = adapter
        if max_concurrency < 1 or max_pending < 1:
            raise ConfigurationError("max_concurrency and max_pending must be at least 1")
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        self.adapters = by_network
        self._auth_reports = AuthReports(by_network.values())
        self.store = store
        self.policy: ReplyPolicy = policy if policy is not None else HoldPublic()
        self.middleware: list[Middleware] = list(middleware)
        self.max_concurrency = max_concurrency
        self.max_pending = max_pending
        self.guardrail = (
            CopyPasteGuard(window=copy_paste_window) if copy_paste_window is not None else None
        )
        self.max_body_bytes = max_body_bytes
        self.listener_backoff = listener_backoff
        self.source_lease = source_lease
        self.clock = clock
        self._tally = _Tally()
        self.instrumentation = with_log_lines(instrumentation)
        self.outbox = Outbox(
            store, by_network, clock=clock, on_outcome=self._tally.delivered,
            instrumentation=self.instrumentation, worker=worker,
        )
        if source_lease is None and store.multi_worker:
            self.source_lease = store_source_lease(store, holder=self.outbox.worker, clock=clock)
        self.router = Router("hub")
        self._outgoing = Outgoing(self, tally=self._tally)
        self.drafts = Drafts(store=store, outgoing=self._outgoing, clock=clock)
        self.webhook_address: tuple[str, int] | None = None
        self._open = False
        self._dispatcher: Dispatcher | None = None
        self._run_scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        handlers = len(list(self.router.registrations()))
        return f"<Hub networks={sorted(self.adapters)} handlers={handlers}>"

    # registration -----------------------------------------------------------

    def on(
        self,
        event_type: type[_EventT],
        *,
        network: str | Iterable[str] | None = None,
        visibility: Visibility | Iterable[Visibility] | None = None,
        kind: ConversationKind | Iterable[ConversationKind] | None = None,
        when: Callable[[_EventT], bool] | None = None,
    ) -> Callable[[Handler[_EventT]], Handler[_EventT]]:
        """Register a handler on the hub's router; see [`Router.on`][omnichannel.routing.Router.on].

        ``@hub.on(MessageReceived, network="mastodon", kind="direct")`` above an
        ``async def dm(event, ctx)`` registers it for direct messages on Mastodon.
        """
        return self.router.on(
            event_type, network=network, visibility=visibility, kind=kind, when=when
        )

    def include_router(self, router: Router) -> Router:
        """Run ``router``'s handlers too, after those registered so far.

        Raises:
            ConfigurationError: ``router`` includes the hub's own router.
        """
        return self.router.include_router(router)

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware (innermost so far); usable as a decorator."""
        self.middleware.append(middleware)
        return middleware

    def handled_types(self) -> frozenset[type[Any]]:
        """Return the event classes some handler listens to."""
        return self.router.handled_types()

    # lifecycle --------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the hub is entered (store and adapters open)."""
        return self._open

    @property
    def is_running(self) -> bool:
        """Whether ``run()`` is active (events are dispatched as they arrive)."""
        return self._dispatcher is not None

    async def __aenter__(self) -> Self:
        """Open the store and every adapter.

        Raises:
            AuthenticationError: An adapter's credentials were refused.
            ConfigurationError: An adapter's settings cannot work, or the
                store was opened read-only (the hub writes to it).
        """
        if getattr(self.store, "read_only", False) is True:
            raise ConfigurationError(
                f"the hub writes to its store: open {self.store!r} without read_only"
            )
        self._outgoing.reset_lock()  # bound to the loop the hub runs in
        with _reporting_to(self.instrumentation):  # the adapters' HTTP clients report too
            await open_all(self.store, self.adapters.values())
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the adapters and the store."""
        self._open = False
        await close_all(self.store, self.adapters.values())

    async def run(
        self,
        *,
        listen: bool | Collection[str] = True,
        deliver: bool = True,
        serve_webhooks: tuple[str, int] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled: listeners, dispatch, the outbox worker, webhooks.

        Everything runs in one task group. On start, events stored but not yet
        handled (from a previous run, or webhooks received meanwhile) are
        dispatched first; then each source resumes from its stored cursor. A
        source with no cursor (a first run) starts from the network's current
        position, unless the adapter's settings ask for a backfill (its events
        come marked ``backfilled``). Cancelling ``run`` stops everything; an
        event whose handlers did not finish is handled again on the next start
        (its replies keep their idempotency keys, so none is sent twice).

        Args:
            listen: Poll or stream every adapter that can (``True``), none
                (``False``), or only these networks.
            deliver: Run the outbox worker.
            serve_webhooks: ``(host, port)`` to serve ``hub.asgi`` on with
                uvicorn (asyncio only; port ``0`` picks a free one, see
                ``webhook_address``).
            task_status: For ``TaskGroup.start``: started once everything runs
                and every listener knows where it starts (or failed to find
                out and retries), so anything written on a network after
                ``await tg.start(hub.run)`` is new to the hub.

        Raises:
            ConfigurationError: The hub is not entered, or already running, or
                ``serve_webhooks`` is asked for on another backend than asyncio.
        """
        if not self._open:
            raise ConfigurationError("enter the hub first: `async with hub: await hub.run()`")
        if self._dispatcher is not None:
            raise ConfigurationError("the hub is already running")
        if serve_webhooks is not None and not on_asyncio():
            raise ConfigurationError(
                "serve_webhooks runs uvicorn, which needs the asyncio backend; on trio, "
                "serve hub.asgi with an ASGI server that runs on trio (hypercorn)"
            )
        try:
            async with anyio.create_task_group() as tg:
                self._run_scope = tg.cancel_scope
                dispatcher = Dispatcher(
                    tg, self._handle_event, concurrency=self.max_concurrency,
                    max_pending=self.max_pending, claims=claims_for(self.store, self.outbox),
                )
                self._dispatcher = dispatcher
                await self._outgoing.recover_drafts()
                if deliver:
                    await tg.start(self.outbox.run)
                await tg.start(self._auth_reports.run, self.ingest, self.store)
                await dispatch_unhandled(self.store, dispatcher)
                if self.store.multi_worker:
                    tg.start_soon(sweep_unhandled, self.store, dispatcher,
                                  lambda: self.outbox.lease)
                await start_listeners(tg, listeners(self.adapters, listen), inbound=self,
                                      backoff=self.listener_backoff, lease=self.source_lease)
                if serve_webhooks is not None:
                    host, port = serve_webhooks
                    await tg.start(self._serve_webhooks, host, port)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._dispatcher = None
            self._run_scope = None
            self.webhook_address = None

    def run_sync(self, *, backend: str = "asyncio", **run_options: Any) -> None:
        """Enter the hub and run it until interrupted (``async with hub: await hub.run()``).

        Args:
            backend: ``"asyncio"`` or ``"trio"``.
            run_options: Passed on to [`run`][omnichannel.hub.Hub.run].
        """

        async def main() -> None:
            async with self:
                await self.run(**run_options)

        anyio.run(main, backend=backend)

    def stop(self) -> None:
        """Stop a running ``run()`` (the same as cancelling it)."""
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def wait_idle(self) -> None:
        """Wait until the hub has nothing left to do now; return at once if not running.

        Every event dispatched so far has been handled, and every action
        queued has been tried by the outbox worker: sent, failed, or put back
        for a later attempt (a retry after a network error is not waited for).
        Events a listener has not fetched yet are not waited for either.

        Example:
            ```python
            async with hub, anyio.create_task_group() as tg:
                await tg.start(hub.run)
                await hub.ingest("mastodon", events)
                await hub.wait_idle()  # handled, and the replies delivered
                hub.stop()
            ```
        """
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        while True:
            await dispatcher.wait_idle()
            await self.outbox.wait_drained()
            if not dispatcher.pending:
                return

    def statistics(self) -> HubStatistics:
        """Return what the pipeline did so far, per network and in total.

        The counts are kept by the pipeline itself as it works (recording,
        de-duplicating, handling, queuing, delivering) since this hub was
        created; they are not read back from the store.

        Example:
            ```python
            stats = hub.statistics()
            print(stats.networks["mastodon"].duplicates_dropped, stats.total.actions_sent)
            ```
        """
        dispatcher = self._dispatcher
        return self._tally.snapshot(
            self.adapters, pending=dispatcher.pending if dispatcher is not None else 0
        )

    # inbound ----------------------------------------------------------------

    async def ingest(
        self,
        network: str,
        events: Sequence[Event],
        *,
        cursor: str | None = None,
        stream: str = "default",
        rejected: Sequence[Rejected] = (),
    ) -> list[Event]:
        """Persist a batch of events and dispatch the new ones.

        This is the one inbound path: listeners and the webhook app call it,
        and so can custom sources. Events already seen (by id) are dropped;
        the cursor is stored in the same transaction as the events. When the
        hub is not running, the new events wait in the store and are handled
        when ``run()`` starts.

        Args:
            network: The network the events come from.
            events: The batch, oldest first.
            cursor: Where to resume after it (``None`` keeps the stored one).
            stream: Which cursor of the network this is.
            rejected: Items of the batch the adapter could not use; each is
                logged and kept as a dead letter before the cursor moves past it.

        Returns:
            The events that were new, in batch order.
        """
        for item in rejected:
            await self.add_dead_letter(rejected_letter(network, item, at=self.clock()))
        new = await self.store.record_batch(network, events, cursor=cursor, stream=stream)
        for event in new:
            self.instrumentation.event_received(event)
        self._tally.add(network, "events_recorded", len(new))
        self._tally.add(network, "duplicates_dropped", len(events) - len(new))
        dispatcher = self._dispatcher
        if dispatcher is not None:
            await submit_events(self.store, dispatcher, new)
        return new

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an inbound body that could not be used (a dead letter), and count it."""
        await self.store.add_dead_letter(letter)
        self._tally.add(letter.network, "dead_letters")

    # outbound ---------------------------------------------------------------

    async def queue_as_agent(
        self, action: Action, *, by: str, allow_duplicate: bool = False
    ) -> OutboxItem:
        """Queue an action an agent (a human) chose, outside any handler; ``send`` is an alias.

        No reply policy applies (the agent decided); the capability check (with
        the human-agent window) and the copy-paste guardrail do.

        Args:
            action: Any action.
            by: The agent, recorded as the actor in the audit log.
            allow_duplicate: Skip the copy-paste guardrail.

        Raises:
            ConfigurationError: No adapter for the action's network.
            TextTooLong: The text is over the network's limit.
            CapabilityNotSupported: The network cannot do this.
            WindowClosed: The window to answer has closed.
            DuplicateReply: The same text went to another customer recently.
        """
        return await self._outgoing.queue(
            action, origin=by, approved_by=None, allow_duplicate=allow_duplicate,
            human_agent=True,
        )

    send = queue_as_agent
    """The earlier name of [`queue_as_agent`][omnichannel.hub.Hub.queue_as_agent]."""

    async def wait_for_room(self) -> None:
        """Return once the running dispatcher can take more events (at once when not running)."""
        if self._dispatcher is not None:
            await self._dispatcher.wait_for_room()

    async def _dispatch_unhandled(self, network: str | None = None) -> int:
        """Queue the stored events of ``network`` not yet handled; 0 when not running.

        Called when this worker takes a source over from another (before
        reading on, so a conversation's events keep their order).
        """
        if self._dispatcher is None:
            return 0
        return await dispatch_unhandled(self.store, self._dispatcher, network)

    async def _handle_event(self, event: Event) -> None:
        await handle_event(
            event, registrations=self.router.registrations(), middleware=self.middleware,
            context=partial(Context, self), store=self.store, clock=self.clock,
            tally=self._tally, instrumentation=self.instrumentation,
        )

    # webhooks ----------------------------------------------------------------

    @cached_property
    def asgi(self) -> WebhookApp:
        """The webhook receiver: a plain ASGI app serving ``GET``/``POST /{network}``.

        Mount it in FastAPI or Starlette (``app.mount("/webhooks", hub.asgi)``)
        or serve it alone; see [`WebhookApp`][omnichannel.webhooks.WebhookApp].
        """
        return WebhookApp(self, max_body_bytes=self.max_body_bytes)

    async def _serve_webhooks(
        self, host: str, port: int, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        await serve_asgi(
            self.asgi, host, port, on_started=partial(setattr, self, "webhook_address"),
            on_exit=self.stop, task_status=task_status,
        )
