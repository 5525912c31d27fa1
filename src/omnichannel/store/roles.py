"""The roles a store plays, each a small protocol, and `Store`, all of them together.

The hub needs every role and takes a [`Store`][omnichannel.store.Store]; a
piece that needs less names the role it uses, so a store built for one
purpose (an outbox worker's, a report's) implements only what it must:

- [`EventStore`][omnichannel.store.EventStore]: inbound events, whether each
  was handled, polling cursors;
- [`MessageStore`][omnichannel.store.MessageStore]: messages and
  conversations, and search over them;
- [`OutboxStore`][omnichannel.store.OutboxStore]: the outbox, and the
  workers' claims (leases) on its items;
- [`DraftStore`][omnichannel.store.DraftStore]: drafts waiting for a human;
- [`AuditStore`][omnichannel.store.AuditStore]: the audit log, dead letters,
  handler failures;
- [`LeaseStore`][omnichannel.store.LeaseStore]: named leases, one holder at a
  time, each with an expiry.

Leases are what let several workers share one store: a worker claims an
outbox item (or a named lease) with its id and an expiry, renews it while it
works, and only a lease that ran out is taken over by another worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self

from ..actions import Action, Sent
from ..events import Event
from ..model import Conversation, Message, Ref
from .base import (
    AuditEntry,
    DeadLetter,
    Draft,
    DraftStatus,
    HandlerFailure,
    OutboxItem,
    OutboxStatus,
)
from .states import ConversationStateStore

__all__ = [
    "DEFAULT_LEASE",
    "AuditStore",
    "DraftStore",
    "EventStore",
    "LeaseStore",
    "MessageStore",
    "OutboxStore",
    "Store",
    "ValueStore",
]

DEFAULT_LEASE = timedelta(seconds=60)
"""How long a claim holds unless renewed: a worker renews at a third of it, so
an item of a worker that died is taken over about a minute later."""


class EventStore(Protocol):
    """Inbound events (recorded once, marked handled) and polling cursors."""

    async def record_batch(
        self,
        network: str,
        events: Sequence[Event],
        *,
        cursor: str | None,
        stream: str = "default",
    ) -> list[Event]:
        """Persist a batch of inbound events in one transaction.

        Inserts the events not seen before (by ``id``) as unhandled, upserts the
        messages, conversations and people they carry, marks deleted messages
        deleted, and sets the cursor when it is not ``None``.

        Returns:
            The events not seen before, in batch order.
        """
        ...

    async def get_cursor(self, network: str, stream: str = "default") -> str | None:
        """Return the cursor saved by the last batch of ``network``/``stream``."""
        ...

    async def mark_handled(self, event_id: str) -> None:
        """Mark an event handled (an unknown id is ignored)."""
        ...

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        """Return the events not yet handled, in the order they were recorded."""
        ...

    async def seen(self, event_id: str) -> bool:
        """Return whether an event with this id was recorded."""
        ...


class MessageStore(Protocol):
    """Messages and conversations, as the events carried them, and search over them."""

    async def is_handled(self, event_id: str) -> bool:
        """Return whether the event was recorded and marked handled (by any worker)."""
        ...

    async def get_message(self, ref: Ref) -> Message | None:
        """Return a stored message, or ``None`` (also when it was deleted)."""
        ...

    async def get_conversation(self, ref: Ref) -> Conversation | None:
        """Return a stored conversation, or ``None``."""
        ...

    async def conversation_messages(self, ref: Ref, *, limit: int = 100) -> list[Message]:
        """Return the latest ``limit`` messages of a conversation, oldest first."""
        ...

    async def list_conversations(
        self, *, network: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Return conversations, most recent activity first."""
        ...

    async def search(
        self, query: str, *, network: str | None = None, limit: int = 20
    ) -> list[Message]:
        """Return messages containing every word of ``query``, best match first.

        A word ending in ``*`` matches as a prefix; any other punctuation is
        plain text, never query syntax.
        """
        ...

    async def save_messages(self, messages: Sequence[Message]) -> None:
        """Upsert messages (our own sent replies, fetched history)."""
        ...


class OutboxStore(Protocol):
    """The outbox: actions on their way out, and the workers' claims on them."""

    async def enqueue(self, item: OutboxItem) -> OutboxItem:
        """Add an item; when its key is already queued, return the stored one."""
        ...

    async def get_outbox(self, key: str) -> OutboxItem | None:
        """Return the item with this key, or ``None``."""
        ...

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int = 10,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[OutboxItem]:
        """Claim due items for ``worker``, each under a lease of ``lease`` from ``now``.

        Claimable: ``pending`` and ``ambiguous`` items with ``next_attempt_at <=
        now`` that no worker holds (no lease, or one that ran out), and
        ``sending`` items whose lease ran out (their worker died or stalled).
        Oldest first. Each claimed item's ``attempts`` grows by one, its
        ``worker`` and ``lease_until`` are set; ``pending`` items become
        ``sending``, ``ambiguous`` ones stay ``ambiguous``, and ``sending`` ones
        become ``ambiguous``: their send may have landed, so the worker
        reconciles them before any retry. Two workers claiming at the same
        moment never get the same item.

        One conversation's items go out in the order they were queued: an item
        with an [`order_key`][omnichannel.store.OutboxItem.order_key] is
        claimable only while no item of the same network and order key queued
        before it is unfinished (``pending``, even one waiting for a later
        retry; ``sending``; ``ambiguous``), whoever holds it. So a claim takes
        at most one item of a conversation, and that conversation's next item
        only once the one before it is ``sent``, ``failed`` or ``cancelled``:
        a final outcome, a failure included, lets the next one go. Items
        without an order key (posts) wait for nothing. Finding what holds an
        item back is an index lookup, not a scan.

        Args:
            now: The current time.
            limit: The most items to claim.
            worker: Who claims (an ``Outbox``'s ``worker`` id).
            lease: How long the claim holds unless renewed (`renew_claims`).
        """
        ...

    async def renew_claims(
        self,
        keys: Sequence[str],
        *,
        worker: str,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[str]:
        """Extend ``worker``'s claims on ``keys`` to ``now + lease``; return the keys renewed.

        A key left out of the answer is no longer ``worker``'s: it was
        finished, or its lease ran out and another worker claimed it.
        """
        ...

    async def update_outbox(
        self,
        key: str,
        *,
        status: OutboxStatus,
        next_attempt_at: datetime | None = None,
        last_error: str | None = None,
        sent: Sent | None = None,
        audit: AuditEntry | None = None,
        worker: str | None = None,
    ) -> OutboxItem:
        """Set an item's status and end any claim on it.

        Other arguments left ``None`` keep their value.

        With ``audit``, the audit line is added in the same transaction as the
        change: a crash keeps both or neither, so marking an item ``sent`` and
        auditing it can neither lose nor repeat the line.

        Args:
            key: The item's key.
            status: The new status.
            next_attempt_at: When it is due again.
            last_error: The last failure, as ``"Type: message"``.
            sent: What the network produced.
            audit: An audit line to add with the change (its ``id`` is assigned).
            worker: Change the item only while this worker holds its claim
                (the outcome of a delivery it made).

        Raises:
            RecordNotFound: No item has this key (nothing is changed or added).
            StoreConflict: ``worker`` was given and no longer holds the item
                (its lease ran out and another worker claimed it); nothing
                is changed or added.
        """
        ...

    async def list_outbox(
        self, *, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Return items (all, or those with ``status``), oldest first."""
        ...

    async def recent_recipients(
        self, *, network: str, text_digest: str, since: datetime
    ) -> list[str]:
        """Return who was sent this text since ``since`` (not failed or cancelled)."""
        ...


class DraftStore(Protocol):
    """Drafts held for a human to approve or reject."""

    async def add_draft(self, draft: Draft) -> None:
        """Store a new draft.

        Raises:
            StoreConflict: A draft with this id exists.
        """
        ...

    async def get_draft(self, draft_id: str) -> Draft | None:
        """Return a draft, or ``None``."""
        ...

    async def list_drafts(
        self, *, status: DraftStatus | None = "pending", limit: int = 100
    ) -> list[Draft]:
        """Return drafts (those with ``status``, or all with ``None``), oldest first."""
        ...

    async def decide_draft(
        self,
        draft_id: str,
        *,
        status: DraftStatus,
        by: str,
        reason: str | None = None,
        action: Action | None = None,
    ) -> Draft:
        """Approve or reject a pending draft, optionally replacing its action.

        Raises:
            RecordNotFound: No draft has this id.
            StoreConflict: The draft was already decided, ``status`` is
                ``"pending"``, or ``action`` is not a reply, private reply or post.
        """
        ...


class AuditStore(Protocol):
    """The audit log, dead letters and handler failures: what happened, kept for people."""

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (its ``id`` is assigned)."""
        ...

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        ...

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a body we could not use (its ``id`` is assigned)."""
        ...

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Return dead letters, newest first."""
        ...

    async def add_failure(self, failure: HandlerFailure) -> None:
        """Record a handler failure (its ``id`` is assigned)."""
        ...

    async def failures(self, *, limit: int = 100) -> list[HandlerFailure]:
        """Return handler failures, newest first."""
        ...


class LeaseStore(Protocol):
    """Named leases: one holder at a time, each with an expiry.

    A lease is a name (``"listener:mastodon:109301"``), its holder (a worker
    id) and when it runs out. Holders renew before that; a holder that dies
    stops renewing, and once the lease ran out another may take it. Every
    time is passed in (``now``), so tests run leases on a virtual clock.
    """

    async def acquire_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take the lease ``name`` for ``holder`` until ``now + ttl``; return whether it did.

        It succeeds when nobody holds the lease, when the last holder's lease
        ran out, or when ``holder`` holds it already (then it is extended).
        Atomic: two holders never both hold one unexpired lease.
        """
        ...

    async def renew_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Extend ``holder``'s unexpired lease to ``now + ttl``; return whether it did.

        ``False`` means the lease ran out or is someone else's: the holder
        must stop what the lease guarded (and may try `acquire_lease` again).
        """
        ...

    async def release_lease(self, name: str, *, holder: str) -> bool:
        """Give the lease back if ``holder`` holds it; return whether it did."""
        ...

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Return who holds the lease ``name`` at ``now``, or ``None`` (free or run out)."""
        ...


class ValueStore(Protocol):
    """Small named values kept across restarts: an adapter's rotated tokens, a spend ledger.

    Values are text (callers encode JSON, or encrypt, as they need), grouped
    by ``scope`` (``"x.tokens"``); writing a key replaces its value.
    `add_values` keeps numbers (the spend of a day) that several workers add
    to at once.
    """

    async def get_value(self, scope: str, key: str) -> str | None:
        """Return the value of ``key`` in ``scope``, or ``None``."""
        ...

    async def put_value(self, scope: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``scope`` (replacing any)."""
        ...

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget ``key`` in ``scope`` (nothing if it is not there)."""
        ...

    async def add_values(
        self,
        scope: str,
        amounts: Mapping[str, Decimal],
        *,
        limits: Mapping[str, Decimal] | None = None,
    ) -> dict[str, Decimal] | None:
        """Add each amount to the number kept under its key, all or none, atomically.

        A key not there yet counts as ``0``; numbers are kept as decimal text.
        With ``limits``, nothing is added when a key's new total would go
        over its limit. Several tasks, processes or workers adding to one key
        at once each see their own addition counted once, so a budget shared
        through the store is never overrun.

        Returns:
            Each key's new total, or ``None`` when a limit refused the addition
            (nothing was changed).

        Raises:
            StoreConflict: A key holds text that is not a number (nothing is changed).
        """
        ...


class Store(
    EventStore, MessageStore, OutboxStore, DraftStore, AuditStore, LeaseStore,
    ConversationStateStore, ValueStore, Protocol,
):
    """What the hub needs from persistence: every role, and opening and closing.

    Attributes:
        multi_worker: Whether several processes may work on the store at once
            (PostgreSQL). The hub then also takes the store's lease on a
            conversation while it handles one of its events; a store one
            process owns (SQLite's lock, memory) needs no such lease.

    A store is opened once (``async with store:`` or ``open()``/``aclose()``)
    and is safe to call from many tasks of one process. Every method needs the
    store open. Several workers may share one store when its backend allows
    it (PostgreSQL): outbox items and named leases are claimed with a worker
    id and an expiry, and only a claim that ran out is taken over. A store
    that admits one process at a time (SQLite's file lock) knows at open that
    every item left ``sending`` belongs to a worker that died, and turns it
    ``ambiguous`` at once instead of waiting for its lease.
    """

    multi_worker: bool = False

    async def open(self) -> None:
        """Open the store (create or migrate its schema), recovering from a crash.

        A store that keeps its data outside the process checks, before it
        recovers anything, that it may: that the data is its own and sound,
        and that no other process writes it unless the store is built for
        several. What it refuses raises a
        [`StoreError`][omnichannel.errors.StoreError] (a
        [`StoreLocked`][omnichannel.errors.StoreLocked] for another
        writer, a [`StoreDamaged`][omnichannel.errors.StoreDamaged] for
        damaged data), never the database driver's own exception.
        """
        ...

    async def aclose(self) -> None:
        """Close the store; it may be opened again."""
        ...

    async def __aenter__(self) -> Self:
        """Open the store and return it (inherited by stores that subclass `Store`)."""
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store (inherited by stores that subclass `Store`)."""
        await self.aclose()

