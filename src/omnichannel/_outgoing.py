"""The one way out: every action a handler, an agent or an approval asks for.

Each action is checked once against its network's capabilities, with who
wrote it stated (a human, which opens the network's human-agent window, or
automated), then guarded against copy-paste replies and either queued in the
outbox or held as a draft. ``hub.queue_as_agent``, ``ctx.reply`` (and the other context
methods) and ``hub.drafts.approve`` all come through here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio

from .actions import Action, Post, PrivateReply, Reply
from .context import Delivery, OutgoingMessage
from .errors import PrivateReplyUsed
from .events import Event
from .outbox import _stamp_writer
from .policy import Decision, text_digest
from .store import Draft, OutboxItem

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .hub import Hub
    from .statistics import _Tally

logger = logging.getLogger("omnichannel.hub")

_GUARD_LEASE = timedelta(seconds=30)
"""How long a worker may hold a text's guardrail lease (it releases it at once)."""

_GUARD_RETRY = 0.01
"""Seconds between tries for a guardrail lease another worker holds."""

_TEXTS_HERE: dict[tuple[int, str], anyio.Event] = {}
"""Guardrail leases held in this process on stores it owns, by ``(id(store), lease name)``;
each event is set when its lease is given back."""

_ONE_PRIVATE_REPLY = "private-replies"
"""The store scope remembering each message's one private reply (``private_reply_once``)."""


class Outgoing:
    """Checks, guards, then queues or holds the hub's actions.

    Reads the hub's public parts (``store``, ``outbox``, ``policy``,
    ``guardrail``, ``clock``) when it acts, so changing one on the hub takes
    effect at once.
    """

    def __init__(self, hub: Hub, *, tally: _Tally) -> None:
        self._hub = hub
        self._tally = tally
        self._lock: anyio.Lock | None = None

    def reset_lock(self) -> None:
        """Make the guardrail lock anew (in the event loop the hub runs in)."""
        self._lock = anyio.Lock()

    @property
    def _guard_lock(self) -> anyio.Lock:
        """Serialises guardrail check + queuing (made in the running event loop)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def queue(
        self,
        action: Action,
        *,
        origin: str,
        approved_by: str | None = None,
        human_agent: bool,
        allow_duplicate: bool,
    ) -> OutboxItem:
        """Check ``action`` (with ``human_agent`` saying who wrote it), guard it, queue it.

        ``human_agent`` is whether a human wrote or approved it; the check uses
        it, never ``approved_by`` (which is recorded only).
        """
        self._hub.outbox.check(action, human_agent=human_agent)
        return await self._enqueue(
            action, origin=origin, approved_by=approved_by, human_agent=human_agent,
            allow_duplicate=allow_duplicate, known=None,
        )

    async def propose(
        self,
        action: OutgoingMessage,
        *,
        event: Event | None,
        origin: str,
        hold: bool | None,
        allow_duplicate: bool,
    ) -> Delivery:
        """Check a handler's reply once, then queue it or hold it as the policy decides."""
        if hold is None:
            decision = self._hub.policy.decide(event, action)
        else:
            decision = Decision.hold("held by the handler") if hold else Decision.send(
                "sent by the handler"
            )
        # Sent now, the reply is automated; held, it goes out when a human
        # approves it, so the human-agent window is the one that applies.
        self._hub.outbox.check(action, human_agent=decision.held)
        existing = await self._hub.store.get_outbox(action.idempotency_key)
        if existing is not None:  # a re-run of a handler that already queued this
            return Delivery(status="queued", action=action, item=existing, reason="already queued")
        if decision.held:
            await self._guard(action, allow_duplicate=allow_duplicate)
            draft = await self.store_draft(action, event=event, origin=origin, note=decision.reason)
            return Delivery(status="held", action=action, draft=draft, reason=decision.reason)
        item = await self._enqueue(
            action, origin=origin, approved_by=None, human_agent=False,
            allow_duplicate=allow_duplicate, known=False,
        )
        return Delivery(status="queued", action=action, item=item, reason=decision.reason)

    async def hold(
        self, action: OutgoingMessage, *, event: Event | None, origin: str, note: str
    ) -> Delivery:
        """Check ``action`` as a human will send it, and hold it as a draft."""
        self._hub.outbox.check(action, human_agent=True)
        draft = await self.store_draft(action, event=event, origin=origin, note=note)
        return Delivery(status="held", action=action, draft=draft, reason=draft.note or "")

    async def cancel(self, key: str) -> None:
        """Cancel the queued item ``key`` if it was not tried yet."""
        store = self._hub.store
        item = await store.get_outbox(key)
        if item is not None and item.status == "pending":
            await store.update_outbox(key, status="cancelled")

    async def recover_drafts(self) -> None:
        """Finish approvals a crash interrupted: queued, but the draft still pending."""
        store = self._hub.store
        for draft in await store.list_drafts(status="pending", limit=1000):
            item = await store.get_outbox(draft.action.idempotency_key)
            if item is not None and item.approved_by is not None:
                try:
                    await store.decide_draft(draft.id, status="approved", by=item.approved_by)
                except (KeyError, ValueError):  # decided meanwhile
                    continue

    # the steps -------------------------------------------------------------

    async def _guard(
        self, action: Action, *, allow_duplicate: bool
    ) -> tuple[str | None, str | None]:
        """Run the guardrail; return the recipient and text digest to store."""
        if not isinstance(action, Reply | PrivateReply | Post):
            return None, None
        recipient = action.to.author.ref.id if isinstance(action, Reply | PrivateReply) else None
        guardrail = self._hub.guardrail
        if guardrail is not None and not allow_duplicate:
            await guardrail.check(
                self._hub.store, network=action.network, text=action.text, recipient=recipient,
                now=self._hub.clock(),
            )
        return recipient, text_digest(action.text)

    async def _enqueue(
        self,
        action: Action,
        *,
        origin: str,
        approved_by: str | None,
        human_agent: bool,
        allow_duplicate: bool,
        known: bool | None,
    ) -> OutboxItem:
        """Guard and queue a checked action; ``known=None`` looks up whether it is queued."""
        store = self._hub.store
        action = _stamp_writer(action, human_agent=human_agent)
        # The guardrail reads what is queued; checking and queuing must be one
        # step, or concurrent handlers each pass the check before any queues:
        # one at a time in this process, and one worker at a time per text.
        async with self._guard_lock, self._text_lease(action, allow_duplicate=allow_duplicate):
            recipient, digest = await self._guard(action, allow_duplicate=allow_duplicate)
            once = await self._private_reply_once(action)
            if known is None:
                known = await store.get_outbox(action.idempotency_key) is not None
            item = OutboxItem.for_action(
                action, origin=origin, approved_by=approved_by, recipient=recipient,
                text_digest=digest, now=self._hub.clock(),
            )
            stored = await store.enqueue(item)
            if once is not None:
                await store.put_value(_ONE_PRIVATE_REPLY, once, action.idempotency_key)
        self._hub.outbox.wake()
        if not known:
            self._tally.add(stored.network, "actions_queued")
        return stored

    async def _private_reply_once(self, action: Action) -> str | None:
        """The store key of ``action``'s one private reply, or ``None`` when unlimited.

        Raises:
            PrivateReplyUsed: Another private reply to the same message was queued.
        """
        # A reply with ``visibility="private"`` to a public message is the
        # same private reply (adapters send it so), and counts the same.
        if not isinstance(action, PrivateReply | Reply) or action.to.is_private:
            return None
        if isinstance(action, Reply) and action.visibility != "private":
            return None
        if not self._hub.outbox.adapter_for(action.network).capabilities.private_reply_once:
            return None
        key = f"{action.network}:{action.to.ref.id}"
        previous = await self._hub.store.get_value(_ONE_PRIVATE_REPLY, key)
        if previous is not None and previous != action.idempotency_key:
            # One that never reached the customer (failed for good, or
            # cancelled) used nothing up: another may take its place.
            earlier = await self._hub.store.get_outbox(previous)
            if earlier is None or earlier.status not in ("failed", "cancelled"):
                raise PrivateReplyUsed(message=key, previous_key=previous, network=action.network)
        return key

    @asynccontextmanager
    async def _text_lease(self, action: Action, *, allow_duplicate: bool) -> AsyncIterator[None]:
        """Hold the store's lease on ``action``'s text while it is checked and queued.

        Workers sharing a store each check the guardrail in their own process;
        the lease (one per network and normalized text) makes their
        check-then-queue steps for one text take turns. A store one process
        owns (``multi_worker`` false: SQLite's lock, memory) is only written by
        the hubs of this process, so the lease is held here, in memory, and
        costs the store no write (two per reply).
        """
        if (
            not isinstance(action, Reply | PrivateReply)
            or self._hub.guardrail is None
            or allow_duplicate
        ):
            yield
            return
        store = self._hub.store
        name = f"guardrail:{action.network}:{text_digest(action.text)}"
        if not store.multi_worker:
            here = (id(store), name)
            while (held := _TEXTS_HERE.get(here)) is not None:
                await held.wait()
            _TEXTS_HERE[here] = given_back = anyio.Event()
            try:
                yield
            finally:
                del _TEXTS_HERE[here]
                given_back.set()
            return
        holder = self._hub.outbox.worker
        while True:
            now = self._hub.clock()
            if await store.acquire_lease(name, holder=holder, ttl=_GUARD_LEASE, now=now):
                break
            await anyio.sleep(_GUARD_RETRY)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_lease(name, holder=holder)

    async def store_draft(
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
        self._tally.add(action.network, "drafts_held")
        self._hub.instrumentation.draft_held(draft)
        return draft
