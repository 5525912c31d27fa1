"""The store contract: the ``Store`` protocol and the records it keeps.

A store persists what the hub must not lose: inbound events (so a crash never
drops one), the messages and conversations they carry, polling cursors, the
outbox of actions to deliver, drafts waiting for approval, the audit log,
dead letters (inbound bodies and items we could not parse) and handler failures.

Every record is a frozen pydantic model; every time is a timezone-aware
datetime, stored in UTC. Three stores ship with omnichannel:
[`MemoryStore`][omnichannel.store.MemoryStore] for tests,
[`SQLiteStore`][omnichannel.store.SQLiteStore], the embedded default, and
[`PostgresStore`][omnichannel.store.PostgresStore] (the ``postgres`` extra).
Every one passes the store conformance suite
(``omnichannel.testing.store_conformance``).

Long because: it defines every record the store keeps besides the protocol itself; the
protocol is due to be split into the roles it plays.
"""

from __future__ import annotations

import traceback as _traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Annotated, Literal, Protocol, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..actions import Action, Post, PrivateReply, Reply, Sent
from ..events import Event
from ..model import Conversation, Message, Ref

__all__ = [
    "AuditEntry",
    "DeadLetter",
    "Draft",
    "DraftAction",
    "DraftStatus",
    "HandlerFailure",
    "OutboxItem",
    "OutboxStatus",
    "Store",
]

OutboxStatus = Literal["pending", "sending", "ambiguous", "sent", "failed", "cancelled"]
"""Where an outbox item stands.

``pending`` waits for its ``next_attempt_at``; ``sending`` is claimed by the
worker; ``ambiguous`` may have landed and must be reconciled before any retry;
``sent``, ``failed`` and ``cancelled`` are final.
"""

DraftStatus = Literal["pending", "approved", "rejected"]
"""Where a draft stands: waiting for a human, approved or rejected."""

DraftAction = Annotated[Reply | PrivateReply | Post, Field(discriminator="type")]
"""The actions a draft can hold: a reply, a private reply or a post."""

_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class OutboxItem(_Record):
    """One outgoing action on its way to the network.

    Build one with [`for_action`][omnichannel.store.OutboxItem.for_action].

    Attributes:
        key: The action's ``idempotency_key``; the outbox's primary key.
        network: The network the action goes to (the action's network).
        action: What to do.
        status: Where the item stands (see `OutboxStatus`).
        attempts: How many times the worker claimed it.
        next_attempt_at: When it is due (again).
        last_error: The last failure, as ``"Type: message"``.
        sent: What the network produced, once sent.
        created_at: When it was queued.
        updated_at: When it last changed.
        origin: Who or what queued it: ``"handler:<name>"``, ``"agent:<id>"``,
            ``"draft:<id>"``.
        approved_by: Who approved it, when a human did.
        recipient: Native id of the person answered (for the copy-paste guardrail).
        text_digest: SHA-256 of the normalized text (for the same guardrail).

    Raises:
        pydantic.ValidationError: ``key`` or ``network`` differ from the action's.
    """

    key: str = Field(min_length=1)
    network: str
    action: Action
    status: OutboxStatus = "pending"
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: AwareDatetime = Field(default_factory=_now)
    last_error: str | None = None
    sent: Sent | None = None
    created_at: AwareDatetime = Field(default_factory=_now)
    updated_at: AwareDatetime = Field(default_factory=_now)
    origin: str
    approved_by: str | None = None
    recipient: str | None = None
    text_digest: str | None = None

    @model_validator(mode="after")
    def _matches_action(self) -> Self:
        if self.key != self.action.idempotency_key:
            raise ValueError("key must be the action's idempotency_key")
        if self.network != self.action.network:
            raise ValueError("network must be the action's network")
        return self

    @classmethod
    def for_action(
        cls,
        action: Action,
        *,
        origin: str,
        approved_by: str | None = None,
        recipient: str | None = None,
        text_digest: str | None = None,
        now: datetime | None = None,
    ) -> OutboxItem:
        """Build a pending item for ``action``, due at once.

        Args:
            action: What to send; its idempotency key becomes the item's key.
            origin: Who or what queued it (``"handler:triage"``).
            approved_by: Who approved it, when a human did.
            recipient: Native id of the person answered.
            text_digest: SHA-256 of the normalized text.
            now: The current time (defaults to the wall clock).
        """
        at = now if now is not None else _now()
        return cls(
            key=action.idempotency_key,
            network=action.network,
            action=action,
            next_attempt_at=at,
            created_at=at,
            updated_at=at,
            origin=origin,
            approved_by=approved_by,
            recipient=recipient,
            text_digest=text_digest,
        )


class Draft(_Record):
    """A reply or post held for a human to approve or reject.

    Attributes:
        id: Random hex id.
        action: The action to send once approved.
        event_id: The event that led to it, if any.
        status: ``pending``, ``approved`` or ``rejected``.
        created_at: When it was drafted.
        decided_at: When a human decided.
        decided_by: Who decided.
        reason: Why (typically for a rejection).
        note: Why it was held for approval.
        origin: Who or what drafted it: ``"handler:<name>"``, ``"agent:<id>"``.
            Once approved and sent, the audit names it as the actor and the
            approver as ``approved_by``.
    """

    id: str = Field(default_factory=_new_id, min_length=1)
    action: DraftAction
    event_id: str | None = None
    status: DraftStatus = "pending"
    created_at: AwareDatetime = Field(default_factory=_now)
    decided_at: AwareDatetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    note: str | None = None
    origin: str | None = None


class AuditEntry(_Record):
    """One line of the audit trail: who sent or approved what.

    Attributes:
        id: Assigned by the store; ``None`` before it is added.
        at: When it happened.
        network: The network acted on.
        action_type: The action's ``type`` (``"reply"``, ``"hide"``...).
        idempotency_key: The action's key, linking to the outbox.
        actor: Who sent: ``"handler:<name>"`` or ``"agent:<id>"``.
        approved_by: Who approved it, when a human did.
        result_ref: The created or affected thing (``"mastodon:1234"``).
        detail: Free text (an error, a note).
    """

    id: int | None = None
    at: AwareDatetime = Field(default_factory=_now)
    network: str
    action_type: str
    idempotency_key: str
    actor: str
    approved_by: str | None = None
    result_ref: str | None = None
    detail: str | None = None


class DeadLetter(_Record):
    """An inbound body we could not use, kept byte for byte to replay or inspect.

    A webhook body the adapter could not parse, or one item of a polled or
    streamed page the adapter reported in ``Batch.rejected`` (then ``reason``
    starts with the path to the bad field and ``headers`` is empty).

    The webhook app keeps headers by an allowlist: content type and length,
    user agent, delivery ids, and the signature headers the adapter declares
    (``Adapter.signature_headers``, so the body can be verified again); any
    other header (``X-Api-Key``, a proxy's token) is never stored. As a second
    line, the record itself drops ``Authorization``, ``Proxy-Authorization``,
    ``Cookie`` and ``Set-Cookie`` whoever builds it.

    Attributes:
        id: Assigned by the store; ``None`` before it is added.
        at: When it arrived.
        network: The network it came from.
        reason: Why it was refused (a `PayloadError` message, say).
        body: The raw request body (or the rejected item), exactly.
        headers: The kept request headers, names lower-cased.
    """

    id: int | None = None
    at: AwareDatetime = Field(default_factory=_now)
    network: str
    reason: str
    body: bytes = Field(repr=False)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers", mode="after")
    @classmethod
    def _drop_credentials(cls, headers: dict[str, str]) -> dict[str, str]:
        return {
            name.lower(): value
            for name, value in headers.items()
            if name.lower() not in _DROPPED_HEADERS
        }


class HandlerFailure(_Record):
    """A handler raised while handling an event.

    Attributes:
        id: Assigned by the store; ``None`` before it is added.
        at: When it failed.
        event_id: The event being handled.
        handler: The handler's name.
        error: ``"Type: message"``.
        traceback: The formatted traceback.
    """

    id: int | None = None
    at: AwareDatetime = Field(default_factory=_now)
    event_id: str
    handler: str
    error: str
    traceback: str

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, event_id: str, handler: str, at: datetime | None = None
    ) -> HandlerFailure:
        """Record ``exc``, raised by ``handler`` while handling ``event_id``."""
        return cls(
            at=at if at is not None else _now(),
            event_id=event_id,
            handler=handler,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(_traceback.format_exception(exc)),
        )


class Store(Protocol):
    """What the hub needs from persistence.

    A store is opened once (``async with store:`` or ``open()``/``aclose()``)
    and is safe to call from many tasks of one process. Every method needs the
    store open. Opening resets outbox items left in ``sending`` by a crash to
    ``ambiguous``: the send may have landed, so the worker reconciles first.
    """

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

    # inbound

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

    # messages

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

    # outbox

    async def enqueue(self, item: OutboxItem) -> OutboxItem:
        """Add an item; when its key is already queued, return the stored one."""
        ...

    async def get_outbox(self, key: str) -> OutboxItem | None:
        """Return the item with this key, or ``None``."""
        ...

    async def claim_due(self, *, now: datetime, limit: int = 10) -> list[OutboxItem]:
        """Claim due items (``pending``/``ambiguous``, ``next_attempt_at <= now``).

        Oldest first. Each claimed item's ``attempts`` grows by one; ``pending``
        items become ``sending`` and ``ambiguous`` ones stay ``ambiguous`` (the
        worker reconciles them before any retry).
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
    ) -> OutboxItem:
        """Set an item's status; other arguments left ``None`` keep their value.

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

        Raises:
            RecordNotFound: No item has this key (nothing is changed or added).
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

    # drafts

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

    # audit, dead letters, failures

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
