"""Dispatching: the order events are handled in, and one event's handlers run.

Events of one conversation are handled one after another, in order; different
conversations concurrently, up to the hub's ``max_concurrency``: that many
worker tasks at most (started as they are needed, then kept) take turns on the
conversations that have events waiting, one event a turn, so a new event costs
no new task. Each event's
matching handlers run in registration order, each wrapped in the middleware;
a handler that raises is logged and stored, and the event is marked handled
once every handler has run.

On a store several processes work on (``Store.multi_worker``), a worker
handles an event only while it holds the store's lease on the event's
conversation (``conversation:<network>:<id>``), renewed while its handlers
run: two workers never run handlers of one conversation at the same time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
    SlaBreached,
    SlaWarning,
)
from .model import Ref
from .store import HandlerFailure, Store

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .context import Context
    from .instrumentation import Instrumentation
    from .outbox import Clock, Outbox
    from .routing import Middleware, Registration
    from .statistics import _Tally

logger = logging.getLogger("omnichannel.hub")

_DONE_MEMORY = 10_000

_CLAIM_RETRY = 0.05
"""Seconds between tries for a conversation another worker is handling."""


async def conversation_of(store: Store, event: Event) -> Ref | None:
    """Return the conversation an event belongs to (a reaction's, from the store)."""
    match event:
        case MessageReceived():
            return event.conversation.ref
        case MessageUpdated():
            return event.message.conversation
        case MessageDeleted():
            return event.conversation
        case ReactionAdded() | ReactionRemoved():
            stored = await store.get_message(event.target)
            return stored.conversation if stored is not None else None
        case SlaWarning() | SlaBreached():
            return event.conversation
        case _:  # an account's health: no conversation
            return None


async def ordering_key(store: Store, event: Event) -> str:
    """Return the key events are serialised by: the conversation, else the message."""
    conversation = await conversation_of(store, event)
    if conversation is not None:
        return str(conversation)
    match event:
        case MessageDeleted():
            return str(event.message)
        case ReactionAdded() | ReactionRemoved():
            return str(event.target)
        case _:  # an event about no message (an account's health)
            return event.id


async def handle_event(
    event: Event,
    *,
    registrations: Iterable[Registration],
    middleware: Sequence[Middleware],
    context: Callable[[Event, str], Context],
    store: Store,
    clock: Clock,
    tally: _Tally,
    instrumentation: Instrumentation,
) -> None:
    """Run every matching handler on ``event``, then mark it handled.

    Our own message (a Messenger echo, a reply sent from another tool) is
    stored for the history but never handed to handlers: nothing answers it.
    """
    own = isinstance(event, MessageReceived) and event.message.from_us
    for registration in () if own else registrations:
        if not registration.matches(event):
            continue
        ctx = context(event, registration.name)
        started = time.perf_counter()
        try:
            await _call(registration, middleware, event, ctx)
        except Exception as exc:
            instrumentation.handler_finished(
                event, registration.name, duration=time.perf_counter() - started, error=exc
            )
            tally.add(event.network, "handler_failures")
            logger.exception(
                "handler %s failed on event %s", registration.name, event.id,
                extra={"event_id": event.id, "handler": registration.name},
            )
            failure = HandlerFailure.from_exception(
                exc, event_id=event.id, handler=registration.name, at=clock()
            )
            try:
                await store.add_failure(failure)
            except Exception:
                logger.exception("could not store the failure of event %s", event.id)
        else:
            instrumentation.handler_finished(
                event, registration.name, duration=time.perf_counter() - started, error=None
            )
    try:
        await store.mark_handled(event.id)
    except Exception:  # it stays unhandled and is handled again on the next start
        logger.exception("could not mark event %s handled", event.id)
    else:
        tally.add(event.network, "events_handled")


async def _call(
    registration: Registration, middleware: Sequence[Middleware], event: Event, ctx: Context
) -> None:
    if not middleware:  # most hubs: the handler itself, no chain to build
        await registration.func(event, ctx)
        return
    chain = list(middleware)

    async def step(index: int) -> None:
        if index == len(chain):
            await registration.func(event, ctx)
            return
        await chain[index](event, ctx, lambda: step(index + 1))

    await step(0)


def claims_for(store: Store, outbox: Outbox) -> ConversationClaims | None:
    """The claims a hub takes on conversations: none on a store one process owns."""
    return ConversationClaims(store, outbox) if store.multi_worker else None


class ConversationClaims:
    """The store's leases on conversations, held by one worker while it handles their events.

    The worker id, the lease's length and the clock are the outbox's, so one
    worker has one identity in the store.
    """

    def __init__(self, store: Store, outbox: Outbox) -> None:
        self.store = store
        self._worker = outbox.worker
        self._ttl: timedelta = outbox.lease
        self._clock = outbox.clock

    async def run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Take the lease on conversation ``key`` (waiting while another holds it), run ``work``."""
        name = f"conversation:{key}"
        while True:
            now = self._clock()
            if await self.store.acquire_lease(name, holder=self._worker, ttl=self._ttl, now=now):
                break
            await anyio.sleep(_CLAIM_RETRY)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew, name)
                await work()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.release_lease(name, holder=self._worker)
                except Exception:  # it runs out on its own
                    logger.exception("could not release the lease on %s", name)

    async def _renew(self, name: str) -> None:
        while True:
            await anyio.sleep(self._ttl.total_seconds() / 3)
            try:
                held = await self.store.renew_lease(
                    name, holder=self._worker, ttl=self._ttl, now=self._clock()
                )
            except Exception:
                logger.exception("could not renew the lease on %s; trying again", name)
                continue
            if not held:
                logger.warning("worker %s lost its lease on %s while handling", self._worker, name)
                return


class Dispatcher:
    """Per-conversation FIFO queues, handled by at most ``concurrency`` workers at once.

    A conversation with events waiting is in the ready queue once; a worker
    takes it, handles its first event and, when more wait, puts it back at the
    end (so a busy conversation does not keep a worker from the others). With
    claims (a store several processes work on), each conversation is drained
    by a task of its own instead, which waits for the conversation's lease
    without holding a worker.
    """

    def __init__(
        self,
        tg: anyio.abc.TaskGroup,
        handle: Callable[[Event], Awaitable[None]],
        *,
        concurrency: int,
        max_pending: int,
        claims: ConversationClaims | None = None,
    ) -> None:
        self._tg = tg
        self._handle = handle
        self._claims = claims
        self._concurrency = concurrency
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._max_pending = max_pending
        self._queues: dict[str, deque[Event]] = {}
        self._ready: deque[str] = deque()
        self._workers = 0
        self._asleep: list[anyio.Event] = []
        self._inflight: set[str] = set()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._room: anyio.Event | None = None
        self._idle: anyio.Event | None = None

    @property
    def pending(self) -> int:
        return len(self._inflight)

    def submit(self, event: Event, key: str) -> bool:
        """Queue ``event`` behind the others of its conversation; ``False`` if known."""
        if event.id in self._inflight or event.id in self._done:
            return False
        self._inflight.add(event.id)
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(event)
            return True
        self._queues[key] = deque([event])
        if self._claims is not None:
            self._tg.start_soon(self._drain, key, name=f"omnichannel conversation {key}")
            return True
        self._in_line(key)
        return True

    def _in_line(self, key: str) -> None:
        """Put conversation ``key`` in line for a worker, waking or starting one if none is busy."""
        self._ready.append(key)
        if self._asleep:
            self._asleep.pop().set()
        elif self._workers < self._concurrency:
            self._workers += 1
            self._tg.start_soon(self._work, name="omnichannel dispatch worker")

    async def _work(self) -> None:
        while True:
            while not self._ready:  # another worker may take the key it was woken for
                wake = anyio.Event()
                self._asleep.append(wake)
                await wake.wait()
            await self._turn(self._ready.popleft())

    async def _turn(self, key: str) -> None:
        """Handle the first event of conversation ``key``; put it back in line if more wait."""
        queue = self._queues[key]
        event = queue[0]
        await self._handle(event)
        queue.popleft()
        self._finished(event.id)
        if queue:
            self._in_line(key)
        else:
            del self._queues[key]

    async def _drain(self, key: str) -> None:
        assert self._claims is not None  # noqa: S101 - only started with claims
        queue = self._queues[key]
        try:
            while queue:
                event = queue[0]
                await self._claims.run(key, partial(self._unless_handled, event))
                queue.popleft()
                self._finished(event.id)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _limited(self, event: Event) -> None:
        async with self._limiter:
            await self._handle(event)

    async def _unless_handled(self, event: Event) -> None:
        """Handle ``event`` under its conversation's lease, unless another worker already did.

        Every worker dispatches the unhandled events it finds when it starts,
        so two may queue one event; the second to take the lease skips it.
        """
        assert self._claims is not None  # noqa: S101 - only called with claims
        if await self._claims.store.is_handled(event.id):
            return
        await self._limited(event)

    def _finished(self, event_id: str) -> None:
        self._inflight.discard(event_id)
        self._done[event_id] = None
        if len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)
        if self._room is not None and len(self._inflight) < self._max_pending:
            self._room.set()
            self._room = None
        if self._idle is not None and not self._inflight:
            self._idle.set()
            self._idle = None

    # Every waiter of the moment waits on the same event: a waiter that made
    # its own would replace another's, and the one replaced would never wake.

    async def wait_for_room(self) -> None:
        while len(self._inflight) >= self._max_pending:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    async def wait_idle(self) -> None:
        while self._inflight:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()



async def submit_events(store: Store, dispatcher: Dispatcher, events: Iterable[Event]) -> int:
    """Queue ``events`` behind the others of their conversations; return how many were new.

    Events this worker already has in hand are not queued twice (`Dispatcher.submit`).
    """
    queued = 0
    for event in events:
        queued += dispatcher.submit(event, await ordering_key(store, event))
    return queued


async def dispatch_unhandled(
    store: Store, dispatcher: Dispatcher, network: str | None = None
) -> int:
    """Queue the events recorded but not yet handled (of ``network``, or all); return how many."""
    return await submit_events(store, dispatcher, await store.unhandled_events(network))


async def sweep_unhandled(
    store: Store, dispatcher: Dispatcher, every: Callable[[], timedelta]
) -> None:
    """On a store several workers share, take up events a worker recorded and then left.

    A worker that dies between recording a batch and handling it leaves its
    events unhandled in the store; with no restart, nothing else would look
    at them. Every ``every()`` (the length of a claim: a live worker renews
    its conversation leases faster than that), the events found unhandled at
    the previous look and still unhandled are queued here. An event another
    worker is still handling waits for its conversation's lease and is then
    skipped as handled.
    """
    seen: set[str] = set()
    while True:
        await anyio.sleep(every().total_seconds())
        try:
            events = await store.unhandled_events()
            left = [event for event in events if event.id in seen]
            if taken := await submit_events(store, dispatcher, left):
                logger.info("taking up %d events recorded and left unhandled (%s)", taken,
                            ", ".join(event.id for event in left))
        except Exception:  # the store is away for a moment: look again next time
            logger.exception("could not take up the unhandled events; looking again later")
            continue
        seen = {event.id for event in events}
