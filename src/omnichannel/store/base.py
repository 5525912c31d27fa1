"""The records a store keeps (the roles it plays are in `omnichannel.store.roles`).

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
"""

from __future__ import annotations

import traceback as _traceback
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..actions import Action, Delete, Hide, Post, PrivateReply, React, Reply, Sent

__all__ = [
    "AuditEntry",
    "DeadLetter",
    "Draft",
    "DraftAction",
    "DraftStatus",
    "HandlerFailure",
    "OutboxItem",
    "OutboxStatus",
]

OutboxStatus = Literal["pending", "sending", "ambiguous", "sent", "failed", "cancelled"]
"""Where an outbox item stands.

``pending`` waits for its ``next_attempt_at``; ``sending`` is claimed by a
worker (``OutboxItem.worker``) until its lease runs out; ``ambiguous`` may have
landed and must be reconciled before any retry; ``sent``, ``failed`` and
``cancelled`` are final.
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
        worker: The worker that claimed it last (``"host:pid:random"``), or
            ``None`` before any claim.
        lease_until: While a worker holds the item: when its claim runs out
            unless renewed. Past it, another worker may claim the item again
            (as ``ambiguous``: the send may have landed). ``None`` when no
            worker holds it.

    Items of one network with the same
    [`order_key`][omnichannel.store.OutboxItem.order_key] (one conversation's
    replies) go out in the order they were queued: a store claims such an
    item only once every item queued before it is finished (see
    [`claim_due`][omnichannel.store.OutboxStore.claim_due]).

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
    worker: str | None = None
    lease_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _matches_action(self) -> Self:
        if self.key != self.action.idempotency_key:
            raise ValueError("key must be the action's idempotency_key")
        if self.network != self.action.network:
            raise ValueError("network must be the action's network")
        return self

    @property
    def order_key(self) -> str | None:
        """What this item is ordered within, on its network; ``None`` when nothing.

        ``"conversation:<id>"`` for a reply or a private reply (the conversation
        of the message answered), ``"target:<id>"`` for a reaction, a hide or a
        delete (the thing acted on), ``None`` for a post: a new post starts a
        conversation of its own and waits for no other item.

        Example:
            ```python
            from omnichannel.actions import Post
            from omnichannel.store import OutboxItem

            post = OutboxItem.for_action(Post(network="mastodon", text="Hi"), origin="docs")
            assert post.order_key is None
            ```
        """
        return _order_key(self.action)

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


def _order_key(action: Action) -> str | None:
    """The order key of ``action`` (see `OutboxItem.order_key`)."""
    if isinstance(action, Reply | PrivateReply):
        return f"conversation:{action.to.conversation.id}"
    if isinstance(action, React | Hide | Delete):
        return f"target:{action.target.id}"
    return None


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
