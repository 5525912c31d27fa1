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

Every event, whether polled, streamed or posted to a webhook, takes one path:
de-duplicated by its id, persisted with its message and conversation, the
cursor advanced only once the batch is stored, then dispatched. Events of one
conversation are handled one after another, in order; different conversations
are handled concurrently, up to ``max_concurrency`` at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, cast

import anyio
import anyio.abc
from pydantic import BaseModel, ConfigDict

from . import _logging
from .actions import Action, Hide, Post, PrivateReply, React, Reply
from .adapter import Adapter, Batch, Rejected, newest_events
from .errors import (
    ActionError,
    CapabilityNotSupported,
    ConfigurationError,
    DraftNotPending,
    OmnichannelError,
)
from .events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
)
from .model import ConversationKind, Message, Ref, Visibility
from .outbox import Clock, Outbox
from .policy import CopyPasteGuard, Decision, HoldPublic, ReplyPolicy, text_digest
from .store import AuditEntry, DeadLetter, Draft, HandlerFailure, OutboxItem, Store

if TYPE_CHECKING:  # pragma: no cover - typing only
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
]

logger = logging.getLogger("omnichannel.hub")

_EventT = TypeVar(
    "_EventT", MessageReceived, MessageUpdated, MessageDeleted, ReactionAdded, ReactionRemoved
)

Handler = Callable[[_EventT, "Context"], Awaitable[None]]
"""An event handler: ``async def handler(event, ctx) -> None``."""

CallNext = Callable[[], Awaitable[None]]
"""Runs the rest of the middleware chain and the handler."""

Middleware = Callable[[Event, "Context", CallNext], Awaitable[None]]
"""Wraps every handler call: ``async def mw(event, ctx, call_next) -> None``.

Call ``await call_next()`` exactly once to run the handler (and the
middleware after this one); skip it to drop the event for this handler.
"""

OutgoingMessage = Reply | PrivateReply | Post

_DONE_MEMORY = 10_000
_ONE_MIB = 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (uvicorn runs on nothing else)."""
    import asyncio  # only asked, never used to run anything

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


def _event_message(event: Event) -> Message | None:
    if isinstance(event, MessageReceived | MessageUpdated):
        return event.message
    return None


def _event_kind(event: Event) -> ConversationKind | None:
    if isinstance(event, MessageReceived):
        return event.conversation.kind
    if isinstance(event, MessageUpdated):
        return "direct" if event.message.is_private else "thread"
    return None


class _Registration:
    """One handler and its filters."""

    def __init__(
        self,
        event_type: type[Any],
        func: Callable[[Any, Context], Awaitable[None]],
        *,
        networks: frozenset[str] | None,
        visibilities: frozenset[str] | None,
        kinds: frozenset[str] | None,
        when: Callable[[Any], bool] | None,
    ) -> None:
        self.event_type = event_type
        self.func = func
        qualname = getattr(func, "__qualname__", None) or repr(func)
        module = getattr(func, "__module__", None)
        self.name = f"{module}.{qualname}" if module else qualname
        self.networks = networks
        self.visibilities = visibilities
        self.kinds = kinds
        self.when = when

    def matches(self, event: Event) -> bool:
        if not isinstance(event, self.event_type):
            return False
        if self.networks is not None and event.network not in self.networks:
            return False
        if self.visibilities is not None:
            message = _event_message(event)
            if message is None or message.visibility not in self.visibilities:
                return False
        if self.kinds is not None and _event_kind(event) not in self.kinds:
            return False
        return self.when is None or bool(self.when(event))


class Delivery(BaseModel):
    """What became of an action a handler asked for: queued, or held as a draft.

    Attributes:
        status: ``"queued"`` (in the outbox, the worker delivers it) or
            ``"held"`` (a draft waiting for a human).
        action: The action, with its idempotency key.
        item: The outbox item, when queued.
        draft: The draft, when held.
        reason: Why the policy decided so.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["queued", "held"]
    action: Action
    item: OutboxItem | None = None
    draft: Draft | None = None
    reason: str = ""

    @property
    def queued(self) -> bool:
        """Whether the action is in the outbox."""
        return self.status == "queued"

    @property
    def held(self) -> bool:
        """Whether the action waits for approval as a draft."""
        return self.status == "held"


_Figure = Literal[
    "events_recorded",
    "duplicates_dropped",
    "events_handled",
    "handler_failures",
    "dead_letters",
    "actions_queued",
    "actions_sent",
    "actions_failed",
    "actions_retried",
    "drafts_held",
]


class NetworkStatistics(BaseModel):
    """What the hub's pipeline did for one network (or, as ``total``, for all).

    Counted since the hub was created, in this process; a restarted hub starts
    again from zero (the store keeps the records themselves).

    Attributes:
        events_recorded: New events stored, whether polled, streamed, posted to
            the webhook app or passed to ``ingest``.
        duplicates_dropped: Events delivered again (a webhook retry, a second
            worker, a poll overlapping a webhook) and dropped as already seen.
        events_handled: Events whose handlers all ran, marked handled.
        handler_failures: Handler calls that raised (each is also stored).
        dead_letters: Inbound items the adapter could not use, kept as dead letters.
        actions_queued: Actions added to the outbox (queuing a key that is
            already there again does not count).
        actions_sent: Actions the network accepted, including those found
            there by reconciliation instead of being sent again.
        actions_failed: Actions the outbox gave up on.
        actions_retried: Delivery attempts put back for a later try: a
            transient error, a rate limit, a send that may have landed.
        drafts_held: Replies held as drafts for a human.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    events_recorded: int = 0
    duplicates_dropped: int = 0
    events_handled: int = 0
    handler_failures: int = 0
    dead_letters: int = 0
    actions_queued: int = 0
    actions_sent: int = 0
    actions_failed: int = 0
    actions_retried: int = 0
    drafts_held: int = 0


class HubStatistics(BaseModel):
    """A snapshot of the hub's counters, as ``hub.statistics()`` returns it.

    Attributes:
        networks: The counts of each network, by network id: every configured
            adapter's, and any other network events were ingested for.
        total: The sums over all networks.
        events_pending: Events dispatched whose handlers have not finished
            (``0`` when the hub is not running).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    networks: Mapping[str, NetworkStatistics]
    total: NetworkStatistics
    events_pending: int = 0


_DELIVERY_OUTCOMES: dict[str, _Figure] = {
    "sent": "actions_sent",
    "failed": "actions_failed",
    "pending": "actions_retried",  # put back for a later attempt
    "ambiguous": "actions_retried",  # looked up before the next attempt
}


class _Tally:
    """The hub's running counters, per network."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[_Figure]] = {}

    def add(self, network: str, figure: _Figure, amount: int = 1) -> None:
        if amount:
            self.counts.setdefault(network, Counter())[figure] += amount

    def snapshot(self, networks: Iterable[str], *, pending: int) -> HubStatistics:
        names = sorted({*networks, *self.counts})
        total: Counter[_Figure] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        return HubStatistics(
            networks={
                name: NetworkStatistics.model_validate(dict(self.counts.get(name, {})))
                for name in names
            },
            total=NetworkStatistics.model_validate(dict(total)),
            events_pending=pending,
        )


class _CountingOutbox(Outbox):
    """The hub's outbox: the durable outbox, counting what it queues and delivers."""

    def __init__(
        self, store: Store, adapters: Mapping[str, Adapter], *, clock: Clock, tally: _Tally
    ) -> None:
        super().__init__(store, adapters, clock=clock)
        self._tally = tally

    async def submit(
        self,
        action: Action,
        *,
        origin: str,
        approved_by: str | None = None,
        human_agent: bool = False,
        recipient: str | None = None,
        text_digest: str | None = None,
    ) -> OutboxItem:
        """Check and persist ``action`` (see `Outbox.submit`); count it when it is new.

        Raises:
            ConfigurationError: No adapter for the action's network.
            CapabilityNotSupported: The network cannot do this.
            TextTooLong: The text is over the network's limit.
            WindowClosed: The private-messaging window has closed.
        """
        self.check(action, human_agent=human_agent)
        known = await self.store.get_outbox(action.idempotency_key) is not None
        item = await super().submit(
            action, origin=origin, approved_by=approved_by, human_agent=human_agent,
            recipient=recipient, text_digest=text_digest,
        )
        if not known:
            self._tally.add(item.network, "actions_queued")
        return item

    async def deliver(self, item: OutboxItem) -> OutboxItem:
        """Try one claimed item once (see `Outbox.deliver`) and count the outcome."""
        updated = await super().deliver(item)
        figure = _DELIVERY_OUTCOMES.get(updated.status)
        if figure is not None:
            self._tally.add(updated.network, figure)
        return updated


class Context:
    """What a handler can do about the event it was given.

    Every action a context creates gets an idempotency key derived from the
    event id, the handler's name and the call's position in the handler: when
    a handler runs again for the same event (after a crash or a restart), it
    re-creates the same keys and nothing is queued twice.

    Attributes:
        hub: The hub running the handler.
        event: The event being handled.
        handler: The handler's name.
    """

    def __init__(self, hub: Hub, event: Event, handler: str) -> None:
        self.hub = hub
        self.event = event
        self.handler = handler
        self._calls = 0

    def __repr__(self) -> str:
        return f"<Context event={self.event.id!r} handler={self.handler!r}>"

    @property
    def network(self) -> str:
        """The network the event came from."""
        return self.event.network

    @property
    def adapter(self) -> Adapter:
        """The adapter of the event's network.

        Raises:
            ConfigurationError: The hub has no adapter for this network.
        """
        return self.hub.outbox.adapter_for(self.event.network)

    @property
    def message(self) -> Message | None:
        """The message the event carries (received or edited), if any."""
        return _event_message(self.event)

    @property
    def origin(self) -> str:
        """How actions from this context are attributed: ``"handler:<name>"``."""
        return f"handler:{self.handler}"

    def _next_key(self) -> str:
        self._calls += 1
        seed = f"{self.event.id}\x00{self.handler}\x00{self._calls}"
        return hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]

    def _require_message(self, what: str) -> Message:
        message = self.message
        if message is None:
            raise ActionError(
                f"cannot {what}: a {self.event.type} event carries no message",
                network=self.network,
            )
        return message

    async def reply(
        self,
        text: str,
        *,
        visibility: Visibility | None = None,
        hold: bool | None = None,
        allow_duplicate: bool = False,
    ) -> Delivery:
        """Answer the event's message where it was written (its thread or DM).

        The reply is checked at once against the network's capabilities and
        the copy-paste guardrail; then the hub's reply policy (or ``hold``)
        decides whether it is queued or held as a draft.

        Args:
            text: The reply text.
            visibility: Override the visibility (default: the message's own).
            hold: ``True`` holds it as a draft, ``False`` sends it at once;
                ``None`` lets the policy decide.
            allow_duplicate: Skip the copy-paste guardrail for this reply.

        Raises:
            ActionError: The event carries no message to answer.
            TextTooLong: The text is over the network's limit.
            CapabilityNotSupported: The network cannot do this.
            WindowClosed: The private-messaging window has closed.
            DuplicateReply: The same text went to another customer recently.
        """
        message = self._require_message("reply")
        action = Reply(
            network=self.network, to=message, text=text, visibility=visibility,
            idempotency_key=self._next_key(),
        )
        return await self.hub._propose(
            action, event=self.event, origin=self.origin, hold=hold,
            allow_duplicate=allow_duplicate,
        )

    async def reply_privately(
        self, text: str, *, hold: bool | None = None, allow_duplicate: bool = False
    ) -> Delivery:
        """Answer the event's message privately on the same network.

        A DM where the message is one; the network's private reply to a
        comment (Meta) or a direct message to the author otherwise.

        Args:
            text: The reply text.
            hold: ``True`` holds it as a draft, ``False`` sends it at once;
                ``None`` lets the policy decide.
            allow_duplicate: Skip the copy-paste guardrail for this reply.

        Raises:
            ActionError: The event carries no message to answer.
            TextTooLong: The text is over the network's limit.
            CapabilityNotSupported: The network has no private reply.
            WindowClosed: The private-reply window has closed.
            DuplicateReply: The same text went to another customer recently.
        """
        message = self._require_message("reply privately")
        action = PrivateReply(
            network=self.network, to=message, text=text, idempotency_key=self._next_key()
        )
        return await self.hub._propose(
            action, event=self.event, origin=self.origin, hold=hold,
            allow_duplicate=allow_duplicate,
        )

    async def draft(
        self, text: str, *, private: bool = False, note: str | None = None
    ) -> Delivery:
        """Write a reply and hold it for a human to approve (``hub.drafts``).

        Args:
            text: The proposed reply.
            private: Propose a private reply instead of a reply in place.
            note: Why it was held, shown to the agent.

        Raises:
            ActionError: The event carries no message to answer.
            TextTooLong: The text is over the network's limit.
            CapabilityNotSupported: The network cannot do this.
        """
        message = self._require_message("draft a reply")
        key = self._next_key()
        action: OutgoingMessage = (
            PrivateReply(network=self.network, to=message, text=text, idempotency_key=key)
            if private
            else Reply(network=self.network, to=message, text=text, idempotency_key=key)
        )
        self.hub.outbox.check(action, human_agent=True)
        draft = await self.hub.drafts._hold(
            action, event=self.event, origin=self.origin, note=note or "drafted"
        )
        return Delivery(status="held", action=action, draft=draft, reason=draft.note or "")

    async def react(self, reaction: str = "like", *, target: Ref | None = None) -> Delivery:
        """React to the event's message (or to ``target``); sent at once.

        Raises:
            ActionError: No target was given and the event carries no message.
            CapabilityNotSupported: The network cannot react, or not with ``reaction``.
        """
        ref = target if target is not None else self._require_message("react").ref
        action = React(
            network=self.network, target=ref, reaction=reaction, idempotency_key=self._next_key()
        )
        item = await self.hub.outbox.submit(action, origin=self.origin)
        return Delivery(status="queued", action=action, item=item, reason="reaction")

    async def hide(self, *, hidden: bool = True, target: Ref | None = None) -> Delivery:
        """Hide (or with ``hidden=False`` unhide) the event's message or ``target``.

        Raises:
            ActionError: No target was given and the event carries no message.
            CapabilityNotSupported: The network cannot hide comments.
        """
        ref = target if target is not None else self._require_message("hide").ref
        action = Hide(
            network=self.network, target=ref, hidden=hidden, idempotency_key=self._next_key()
        )
        item = await self.hub.outbox.submit(action, origin=self.origin)
        return Delivery(status="queued", action=action, item=item, reason="moderation")

    async def history(self, *, limit: int = 50, refresh: bool = False) -> list[Message]:
        """Return the conversation so far, oldest first.

        Read from the store; when the store knows nothing of the conversation
        beyond the message being handled (or ``refresh`` is true), the
        adapter's ``fetch_conversation`` is asked and what it returns is
        stored. A network that cannot fetch history, or fails to, leaves the
        stored messages as the answer.
        """
        conversation = await self.hub._conversation_of(self.event)
        if conversation is None:
            return []
        store = self.hub.store
        stored = await store.conversation_messages(conversation, limit=limit)
        if not refresh and len(stored) > 1:
            return stored
        try:
            fetched = await self.adapter.fetch_conversation(conversation, limit=limit)
        except CapabilityNotSupported:
            return stored
        except OmnichannelError as exc:
            logger.warning("history of %s could not be fetched: %s", conversation, exc)
            return stored
        if fetched:
            await store.save_messages(list(fetched))
            stored = await store.conversation_messages(conversation, limit=limit)
        return stored


class Drafts:
    """Replies held for a human: list, approve (optionally edited) or reject them.

    Reach it as ``hub.drafts``.
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def __repr__(self) -> str:
        return "<Drafts>"

    async def pending(self, *, limit: int = 100) -> list[Draft]:
        """Return the drafts waiting for a decision, oldest first."""
        return await self._hub.store.list_drafts(status="pending", limit=limit)

    async def get(self, draft_id: str) -> Draft | None:
        """Return one draft, or ``None``."""
        return await self._hub.store.get_draft(draft_id)

    async def approve(
        self,
        draft_id: str,
        *,
        by: str,
        text: str | None = None,
        allow_duplicate: bool = False,
    ) -> OutboxItem:
        """Approve a draft, optionally with edited text, and queue it for delivery.

        The (edited) action is checked again against the network's
        capabilities (with the human-agent window where the network has one)
        and the copy-paste guardrail. The audit log records the draft's author
        (its ``origin``, such as ``"handler:triage"``) as the actor and ``by``
        as the approver; a draft stored without an origin is attributed to
        ``"draft:<id>"``.

        Args:
            draft_id: The draft's id.
            by: Who approves (an agent id such as ``"agent:anna"``).
            text: Replacement text, when the agent edited it.
            allow_duplicate: Skip the copy-paste guardrail.

        Returns:
            The queued outbox item.

        Raises:
            DraftNotPending: No such draft, or it was already decided.
            TextTooLong: The (edited) text is over the network's limit.
            CapabilityNotSupported: The network cannot do this.
            WindowClosed: The window to answer has closed.
            DuplicateReply: The same text went to another customer recently.
        """
        store = self._hub.store
        draft = await store.get_draft(draft_id)
        if draft is None or draft.status != "pending":
            raise DraftNotPending(draft_id, status=None if draft is None else draft.status)
        action: OutgoingMessage = draft.action
        if text is not None:
            action = action.model_copy(update={"text": text})
        # The audit names who wrote the draft as the actor and ``by`` as approver.
        origin = draft.origin if draft.origin is not None else f"draft:{draft.id}"
        item = await self._hub._queue(
            action, origin=origin, approved_by=by, human_agent=True,
            allow_duplicate=allow_duplicate,
        )
        try:
            await store.decide_draft(
                draft_id, status="approved", by=by, action=action if text is not None else None
            )
        except (KeyError, ValueError):
            # Someone decided it between our read and our write: undo our queuing.
            current = await store.get_draft(draft_id)
            if current is not None and current.status == "rejected":
                await self._hub._cancel(item.key)
            raise DraftNotPending(
                draft_id, status=None if current is None else current.status
            ) from None
        return item

    async def reject(self, draft_id: str, *, by: str, reason: str | None = None) -> Draft:
        """Reject a draft: it is never sent. The decision is audited.

        Raises:
            DraftNotPending: No such draft, or it was already decided.
        """
        store = self._hub.store
        try:
            draft = await store.decide_draft(draft_id, status="rejected", by=by, reason=reason)
        except KeyError:
            raise DraftNotPending(draft_id, status=None) from None
        except ValueError:
            current = await store.get_draft(draft_id)
            raise DraftNotPending(
                draft_id, status=None if current is None else current.status
            ) from None
        await self._hub._cancel(draft.action.idempotency_key)
        await store.add_audit(
            AuditEntry(
                at=self._hub.clock(), network=draft.action.network,
                action_type=draft.action.type, idempotency_key=draft.action.idempotency_key,
                actor=by, detail=f"draft {draft.id} rejected" + (f": {reason}" if reason else ""),
            )
        )
        return draft

    async def _hold(
        self, action: OutgoingMessage, *, event: Event | None, origin: str, note: str
    ) -> Draft:
        """Store ``action`` as a draft keyed by its idempotency key (idempotent)."""
        store = self._hub.store
        existing = await store.get_draft(action.idempotency_key)
        if existing is not None:
            return existing
        draft = Draft(
            id=action.idempotency_key, action=action,
            event_id=event.id if event is not None else None,
            created_at=self._hub.clock(), note=note, origin=origin,
        )
        try:
            await store.add_draft(draft)
        except ValueError:
            stored = await store.get_draft(draft.id)
            if stored is not None:
                return stored
            raise
        self._hub._tally.add(action.network, "drafts_held")
        _logging.draft_held(logger, draft)
        return draft


class _Dispatcher:
    """Per-conversation FIFO queues drained concurrently under one limiter."""

    def __init__(
        self,
        tg: anyio.abc.TaskGroup,
        handle: Callable[[Event], Awaitable[None]],
        *,
        concurrency: int,
        max_pending: int,
    ) -> None:
        self._tg = tg
        self._handle = handle
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._max_pending = max_pending
        self._queues: dict[str, deque[Event]] = {}
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
        else:
            self._queues[key] = deque([event])
            self._tg.start_soon(self._drain, key, name=f"omnichannel conversation {key}")
        return True

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                event = queue[0]
                async with self._limiter:
                    await self._handle(event)
                queue.popleft()
                self._finished(event.id)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    def _finished(self, event_id: str) -> None:
        self._inflight.discard(event_id)
        self._done[event_id] = None
        if len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)
        if self._room is not None and len(self._inflight) < self._max_pending:
            self._room.set()
        if self._idle is not None and not self._inflight:
            self._idle.set()

    async def wait_for_room(self) -> None:
        while len(self._inflight) >= self._max_pending:
            self._room = anyio.Event()
            await self._room.wait()

    async def wait_idle(self) -> None:
        while self._inflight:
            self._idle = anyio.Event()
            await self._idle.wait()


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
        clock: Returns the current aware time (inject a fake one in tests).

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
        clock: Clock = _utcnow,
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
        self.clock = clock
        self._tally = _Tally()
        self.outbox: Outbox = _CountingOutbox(store, by_network, clock=clock, tally=self._tally)
        self.drafts = Drafts(self)
        self.webhook_address: tuple[str, int] | None = None
        self._handlers: list[_Registration] = []
        self._open = False
        self._dispatcher: _Dispatcher | None = None
        self._run_scope: anyio.CancelScope | None = None
        self._guard_lock_obj: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"<Hub networks={sorted(self.adapters)} handlers={len(self._handlers)}>"

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
        """Register an async handler for ``event_type``, optionally filtered.

        Handlers run in registration order for each event. Filters that an
        event cannot satisfy (``visibility`` on a deletion, say) exclude it.
        Our own messages (``MessageReceived`` with ``message.from_us``, such as
        Messenger echoes) are stored for the history but reach no handler.

        Args:
            event_type: The event class (``MessageReceived``...).
            network: Only events from this network (or these networks).
            visibility: Only messages with this visibility (or these).
            kind: Only messages in a ``"thread"`` or a ``"direct"`` conversation.
            when: Only events for which this predicate is true.

        Example:
            ```python
            @hub.on(MessageReceived, network="mastodon", kind="direct")
            async def dm(event: MessageReceived, ctx: Context) -> None:
                await ctx.reply("Thanks for writing to us!")
            ```
        """

        def register(func: Handler[_EventT]) -> Handler[_EventT]:
            self._handlers.append(
                _Registration(
                    event_type, cast(Callable[[Any, Context], Awaitable[None]], func),
                    networks=_as_set(network), visibilities=_as_set(visibility),
                    kinds=_as_set(kind), when=cast(Callable[[Any], bool] | None, when),
                )
            )
            return func

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware (innermost so far); usable as a decorator."""
        self.middleware.append(middleware)
        return middleware

    def handled_types(self) -> frozenset[type[Any]]:
        """Return the event classes some handler listens to."""
        return frozenset(reg.event_type for reg in self._handlers)

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
        self._guard_lock_obj = anyio.Lock()  # bound to the loop the hub runs in
        await self.store.open()
        opened: list[Adapter] = []
        try:
            for adapter in self.adapters.values():
                await adapter.open()
                opened.append(adapter)
        except BaseException:
            with anyio.CancelScope(shield=True):
                for adapter in reversed(opened):
                    await self._close_adapter(adapter)
                await self.store.aclose()
            raise
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
        with anyio.CancelScope(shield=True):
            for adapter in reversed(list(self.adapters.values())):
                await self._close_adapter(adapter)
            await self.store.aclose()

    async def _close_adapter(self, adapter: Adapter) -> None:
        try:
            await adapter.aclose()
        except Exception:
            logger.exception("closing the %s adapter failed", adapter.network)

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
        handled (from a previous run, or from webhooks received while the hub
        was not running) are dispatched first; then each listener resumes from
        its stored cursor. A listener with no stored cursor (a first run)
        starts from the network's current position: older events are not
        handled, unless the adapter's settings ask for a backfill
        (``backfill``, ``backfill_age``), whose events come marked
        ``backfilled``. Webhook deliveries are always live. Cancelling
        ``run`` stops everything; an event whose
        handlers did not finish stays unhandled and is handled again on the
        next start (its replies keep their idempotency keys, so none is sent
        twice).

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
        if serve_webhooks is not None and not _on_asyncio():
            raise ConfigurationError(
                "serve_webhooks runs uvicorn, which needs the asyncio backend; on trio, "
                "serve hub.asgi with an ASGI server that runs on trio (hypercorn)"
            )
        try:
            async with anyio.create_task_group() as tg:
                self._run_scope = tg.cancel_scope
                dispatcher = _Dispatcher(
                    tg, self._handle_event, concurrency=self.max_concurrency,
                    max_pending=self.max_pending,
                )
                self._dispatcher = dispatcher
                await self._recover_drafts()
                if deliver:
                    await tg.start(self.outbox.run)
                for event in await self.store.unhandled_events():
                    dispatcher.submit(event, await self._ordering_key(event))
                for adapter in self._listeners(listen):
                    await tg.start(
                        self._listen, adapter, name=f"omnichannel {adapter.network} listener"
                    )
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
        """Enter the hub and run it until interrupted, from synchronous code.

        The same as ``anyio.run(main)`` with ``async with hub: await hub.run()``.

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

    def _listeners(self, listen: bool | Collection[str]) -> list[Adapter]:
        if listen is False:
            return []
        chosen = [
            adapter for adapter in self.adapters.values()
            if adapter.capabilities.inbound & {"poll", "stream"}
        ]
        if listen is True:
            return chosen
        unknown = set(listen) - set(self.adapters)
        if unknown:
            raise ConfigurationError(f"no adapter for networks {sorted(unknown)} to listen to")
        return [adapter for adapter in chosen if adapter.network in listen]

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
            await self._keep_rejected(network, item)
        new = await self.store.record_batch(network, events, cursor=cursor, stream=stream)
        for event in new:
            if isinstance(event, MessageReceived):
                _logging.message_received(logger, event)
        self._tally.add(network, "events_recorded", len(new))
        self._tally.add(network, "duplicates_dropped", len(events) - len(new))
        dispatcher = self._dispatcher
        if dispatcher is not None:
            for event in new:
                dispatcher.submit(event, await self._ordering_key(event))
        return new

    async def _keep_rejected(self, network: str, item: Rejected) -> None:
        reason = f"{item.path}: {item.reason}" if item.path else item.reason
        logger.warning(
            "%s: skipped an inbound item the adapter could not use (%s); kept as a dead letter",
            network, reason, extra={"network": network, "path": item.path},
        )
        await self._add_dead_letter(
            DeadLetter(at=self.clock(), network=network, reason=reason, body=item.body)
        )

    async def _add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep an inbound body that could not be used, and count it."""
        await self.store.add_dead_letter(letter)
        self._tally.add(letter.network, "dead_letters")

    async def _listen(
        self,
        adapter: Adapter,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        initial, longest = self.listener_backoff
        delay = initial
        starting = True
        while True:
            batches: AsyncIterator[Batch] | None = None
            try:
                cursor = await self.store.get_cursor(adapter.network)
                if cursor is None:
                    cursor = await self._first_run(adapter)
                if starting:
                    starting = False
                    task_status.started()
                batches = adapter.listen(cursor)
                async for batch in batches:
                    await self.ingest(
                        adapter.network, batch.events, cursor=batch.cursor,
                        rejected=batch.rejected,
                    )
                    delay = initial
                    if self._dispatcher is not None:
                        await self._dispatcher.wait_for_room()
            except Exception as exc:
                logger.warning(
                    "the %s listener failed (%s: %s); retrying in %.1f s",
                    adapter.network, type(exc).__name__, exc, delay,
                    exc_info=not isinstance(exc, OmnichannelError),
                )
            else:
                logger.info("the %s stream ended; resuming from the stored cursor", adapter.network)
            finally:
                closer = getattr(batches, "aclose", None)
                if closer is not None:
                    with anyio.CancelScope(shield=True):
                        await closer()
            if starting:  # the network is down: the hub runs, this listener retries
                starting = False
                task_status.started()
            await anyio.sleep(delay)
            delay = min(longest, delay * 2)

    async def _first_run(self, adapter: Adapter) -> str | None:
        """Start listening to a network with no stored cursor: from now, or with a backfill.

        Reads the network's current position and stores it as the cursor.
        Older events are not handled (and not stored) unless the adapter's
        settings ask for a backfill; backfilled events are marked so.
        """
        network = adapter.network
        limit, since = adapter.settings.backfill_plan(self.clock())
        batch = await adapter.backlog(limit=limit, since=since)
        events = [
            event.model_copy(update={"backfilled": True})
            for event in newest_events(batch.events, limit=limit, since=since)
        ]
        if batch.cursor is None:
            logger.warning(
                "%s: the adapter gave no current position; listening from its own start",
                network, extra={"network": network},
            )
        if limit:
            logger.info(
                "%s: first run: backfilling %d events from before now (replies to them are "
                "held as drafts by the default policies)", network, len(events),
                extra={"network": network, "backfilled": len(events)},
            )
        else:
            logger.info(
                "%s: first run: listening from now; older events are not handled "
                "(set backfill in the adapter's settings to handle some)", network,
                extra={"network": network},
            )
        await self.ingest(network, events, cursor=batch.cursor, rejected=batch.rejected)
        return batch.cursor

    async def _conversation_of(self, event: Event) -> Ref | None:
        match event:
            case MessageReceived():
                return event.conversation.ref
            case MessageUpdated():
                return event.message.conversation
            case MessageDeleted():
                return event.conversation
            case ReactionAdded() | ReactionRemoved():
                stored = await self.store.get_message(event.target)
                return stored.conversation if stored is not None else None

    async def _ordering_key(self, event: Event) -> str:
        conversation = await self._conversation_of(event)
        if conversation is not None:
            return str(conversation)
        match event:
            case MessageDeleted():
                return str(event.message)
            case ReactionAdded() | ReactionRemoved():
                return str(event.target)
            case _:  # pragma: no cover - every message event has a conversation
                return event.id

    async def _handle_event(self, event: Event) -> None:
        # Our own message (a Messenger echo, a reply sent from another tool) is
        # stored for the history but never handed to handlers: nothing answers it.
        own = isinstance(event, MessageReceived) and event.message.from_us
        for registration in () if own else self._handlers:
            if not registration.matches(event):
                continue
            ctx = Context(self, event, registration.name)
            try:
                await self._call(registration, event, ctx)
            except Exception as exc:
                self._tally.add(event.network, "handler_failures")
                logger.exception(
                    "handler %s failed on event %s", registration.name, event.id,
                    extra={"event_id": event.id, "handler": registration.name},
                )
                failure = HandlerFailure.from_exception(
                    exc, event_id=event.id, handler=registration.name, at=self.clock()
                )
                try:
                    await self.store.add_failure(failure)
                except Exception:
                    logger.exception("could not store the failure of event %s", event.id)
        try:
            await self.store.mark_handled(event.id)
        except Exception:  # it stays unhandled and is handled again on the next start
            logger.exception("could not mark event %s handled", event.id)
        else:
            self._tally.add(event.network, "events_handled")

    async def _call(self, registration: _Registration, event: Event, ctx: Context) -> None:
        chain = list(self.middleware)

        async def step(index: int) -> None:
            if index == len(chain):
                await registration.func(event, ctx)
                return
            await chain[index](event, ctx, lambda: step(index + 1))

        await step(0)

    # outbound ---------------------------------------------------------------

    async def send(
        self, action: Action, *, by: str, allow_duplicate: bool = False
    ) -> OutboxItem:
        """Queue an action an agent (a human) chose, outside any handler.

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
        return await self._queue(
            action, origin=by, approved_by=None, allow_duplicate=allow_duplicate,
            human_agent=True,
        )

    @property
    def _guard_lock(self) -> anyio.Lock:
        """Serialises guardrail check + queuing (made in the running event loop)."""
        if self._guard_lock_obj is None:
            self._guard_lock_obj = anyio.Lock()
        return self._guard_lock_obj

    async def _guard(
        self, action: Action, *, allow_duplicate: bool
    ) -> tuple[str | None, str | None]:
        """Run the guardrail; return the recipient and text digest to store."""
        if not isinstance(action, Reply | PrivateReply | Post):
            return None, None
        recipient = action.to.author.ref.id if isinstance(action, Reply | PrivateReply) else None
        if self.guardrail is not None and not allow_duplicate:
            await self.guardrail.check(
                self.store, network=action.network, text=action.text, recipient=recipient,
                now=self.clock(),
            )
        return recipient, text_digest(action.text)

    async def _queue(
        self,
        action: Action,
        *,
        origin: str,
        approved_by: str | None,
        human_agent: bool,
        allow_duplicate: bool,
    ) -> OutboxItem:
        """Check, guard and queue ``action``.

        ``human_agent`` says whether a human wrote or approved it; every check
        on the way (here and the outbox's) uses it, never ``approved_by``.
        """
        self.outbox.check(action, human_agent=human_agent)
        # The guardrail reads what is queued; checking and queuing must be one
        # step, or concurrent handlers each pass the check before any queues.
        async with self._guard_lock:
            recipient, digest = await self._guard(action, allow_duplicate=allow_duplicate)
            return await self.outbox.submit(
                action, origin=origin, approved_by=approved_by, human_agent=human_agent,
                recipient=recipient, text_digest=digest,
            )

    async def _propose(
        self,
        action: OutgoingMessage,
        *,
        event: Event | None,
        origin: str,
        hold: bool | None,
        allow_duplicate: bool,
    ) -> Delivery:
        """Check, guard, then queue or hold a handler's reply."""
        if hold is None:
            decision = self.policy.decide(event, action)
        else:
            decision = Decision.hold("held by the handler") if hold else Decision.send(
                "sent by the handler"
            )
        # Sent now, the reply is automated; held, it goes out when a human
        # approves it, so the human-agent window is the one that applies.
        self.outbox.check(action, human_agent=decision.held)
        existing = await self.store.get_outbox(action.idempotency_key)
        if existing is not None:  # a re-run of a handler that already queued this
            return Delivery(status="queued", action=action, item=existing, reason="already queued")
        if decision.held:
            await self._guard(action, allow_duplicate=allow_duplicate)
            draft = await self.drafts._hold(
                action, event=event, origin=origin, note=decision.reason
            )
            return Delivery(status="held", action=action, draft=draft, reason=decision.reason)
        item = await self._queue(
            action, origin=origin, approved_by=None, human_agent=False,
            allow_duplicate=allow_duplicate,
        )
        return Delivery(status="queued", action=action, item=item, reason=decision.reason)

    async def _cancel(self, key: str) -> None:
        item = await self.store.get_outbox(key)
        if item is not None and item.status == "pending":
            await self.store.update_outbox(key, status="cancelled")

    async def _recover_drafts(self) -> None:
        """Finish approvals a crash interrupted: queued, but the draft still pending."""
        for draft in await self.store.list_drafts(status="pending", limit=1000):
            item = await self.store.get_outbox(draft.action.idempotency_key)
            if item is not None and item.approved_by is not None:
                try:
                    await self.store.decide_draft(draft.id, status="approved", by=item.approved_by)
                except (KeyError, ValueError):  # decided meanwhile
                    continue

    # webhooks ----------------------------------------------------------------

    @cached_property
    def asgi(self) -> WebhookApp:
        """The webhook receiver: a plain ASGI app serving ``GET``/``POST /{network}``.

        Mount it in FastAPI or Starlette (``app.mount("/webhooks", hub.asgi)``)
        or serve it alone; see [`WebhookApp`][omnichannel.webhooks.WebhookApp].
        """
        from .webhooks import WebhookApp

        return WebhookApp(self, max_body_bytes=self.max_body_bytes)

    async def _serve_webhooks(
        self, host: str, port: int, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        try:
            import uvicorn
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "serving webhooks needs uvicorn: pip install uvicorn"
            ) from exc
        config = uvicorn.Config(
            self.asgi, host=host, port=port, lifespan="off", log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        finished = anyio.Event()

        async def serve() -> None:
            try:
                with anyio.CancelScope(shield=True):
                    await server.serve()
            finally:
                finished.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            try:
                while not server.started:
                    if finished.is_set():
                        raise ConfigurationError(
                            f"the webhook server could not start on {host}:{port}"
                        )
                    await anyio.sleep(0.01)
                sockname = server.servers[0].sockets[0].getsockname()
                self.webhook_address = (str(sockname[0]), int(sockname[1]))
                task_status.started()
                await finished.wait()
                self.stop()  # the server stopped on its own (a signal): stop the hub too
            finally:
                server.should_exit = True
