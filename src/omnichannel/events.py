"""Inbound events, a union discriminated on ``type``.

Every event has a stable ``id``: the same happening delivered twice, or seen
by both a webhook and polling, carries the same id, and the hub runs its
handlers once. Build ids with [`event_id`][omnichannel.events.event_id].

Besides its own fields, every event has:

| field | what it holds |
|---|---|
| ``id`` | the de-duplication key, stable across re-deliveries |
| ``network`` | the network id (``"mastodon"``...) |
| ``account`` | our own account's native id on that network, when known |
| ``occurred_at`` | when it happened on the network |
| ``received_at`` | when we received it |
| ``backfilled`` | ``True`` when it happened before the first run and was read as a backfill |
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from .model import Conversation, Message, Person, Ref

__all__ = [
    "AuthHealth",
    "AuthHealthKind",
    "Event",
    "EventType",
    "MessageDeleted",
    "MessageReceived",
    "MessageUpdated",
    "ReactionAdded",
    "ReactionRemoved",
    "SlaBreached",
    "SlaWarning",
    "event_id",
    "parse_event",
]


def _now() -> datetime:
    return datetime.now(UTC)


def event_id(type_: str, ref: Ref, *parts: str) -> str:
    """Build the stable de-duplication id of an event.

    The id depends only on what happened (``type_``), the thing it happened to
    and any distinguishing ``parts`` (an edit's timestamp, a reactor's id), never
    on how it was delivered.

    Examples:
        >>> event_id("message.received", Ref(network="mastodon", id="42"))
        'mastodon:message.received:42'
    """
    tail = ":".join((ref.id, *parts))
    return f"{ref.network}:{type_}:{tail}"


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str = Field(min_length=1)
    """Stable across re-deliveries: the de-duplication key."""
    network: str
    account: str | None = None
    """Our own account's native id on that network, when known."""
    occurred_at: AwareDatetime
    received_at: AwareDatetime = Field(default_factory=_now)
    backfilled: bool = False
    """Read from before the listener's first run, because a backfill was asked for.

    Such events are history, not live: the default reply policies hold every
    reply to them as a draft (see ``AdapterSettings.backfill``)."""


class MessageReceived(_Event):
    """A new message addressed to us: a mention, comment, reply or DM.

    Attributes:
        type: Always ``"message.received"``.
        message: The message.
        conversation: The thread or direct conversation it belongs to.
    """

    type: Literal["message.received"] = "message.received"
    message: Message
    conversation: Conversation


class MessageUpdated(_Event):
    """A message we saw was edited; ``message`` is the new version.

    Attributes:
        type: Always ``"message.updated"``.
        message: The message as it is now.
    """

    type: Literal["message.updated"] = "message.updated"
    message: Message


class MessageDeleted(_Event):
    """A message was deleted (or hidden from us) by its author or the network.

    Attributes:
        type: Always ``"message.deleted"``.
        message: The message that is gone.
        conversation: Its conversation, when the network says.
    """

    type: Literal["message.deleted"] = "message.deleted"
    message: Ref
    conversation: Ref | None = None


class ReactionAdded(_Event):
    """Someone reacted to a message (a like, favourite or emoji reaction).

    Attributes:
        type: Always ``"reaction.added"``.
        target: The message reacted to.
        by: Who reacted.
        reaction: ``"like"``, or the emoji where the network has several.
    """

    type: Literal["reaction.added"] = "reaction.added"
    target: Ref
    by: Person
    reaction: str = "like"


class ReactionRemoved(_Event):
    """Someone took a reaction back.

    Attributes:
        type: Always ``"reaction.removed"``.
        target: The message the reaction was on.
        by: Who took it back.
        reaction: ``"like"``, or the emoji where the network has several.
    """

    type: Literal["reaction.removed"] = "reaction.removed"
    target: Ref
    by: Person
    reaction: str = "like"


class _SlaEvent(_Event):
    conversation: Ref
    metric: str
    due_at: AwareDatetime
    priority: str = "normal"
    assignee: str | None = None


class SlaWarning(_SlaEvent):
    """A conversation's SLA target reached its warning time (given once per target).

    Made by the helpdesk workflow's timer
    ([`Workflow.run_sla_timer`][omnichannel.helpdesk.Workflow.run_sla_timer]),
    persisted and handled like any event, so a handler hears of it once,
    across workers and restarts.

    Attributes:
        type: Always ``"sla.warning"``.
        conversation: The conversation waiting.
        metric: ``"first_response"``, ``"next_response"`` or ``"resolution"``.
        due_at: When the target is breached.
        priority: The conversation's priority.
        assignee: Who owns it, if anyone.
    """

    type: Literal["sla.warning"] = "sla.warning"


class SlaBreached(_SlaEvent):
    """A conversation's SLA target passed its due time (given once per target).

    Attributes:
        type: Always ``"sla.breached"``.
        conversation: The conversation waiting.
        metric: ``"first_response"``, ``"next_response"`` or ``"resolution"``.
        due_at: When the target was due.
        priority: The conversation's priority.
        assignee: Who owns it, if anyone.
    """

    type: Literal["sla.breached"] = "sla.breached"


AuthHealthKind = Literal[
    "expiring", "refreshed", "refresh_failed", "revoked", "reauthorization_required",
    "not_persisted",
]
"""What happened to an account's credentials."""


class AuthHealth(_Event):
    """Something happened to our credentials on a network: act before the channel goes silent.

    Adapters report a token that will expire soon, a refresh that failed, a
    token the network revoked or that needs the account owner to authorize
    again, and a rotated token that could not be saved. The hub persists the
    report and hands it to handlers (``@hub.on(AuthHealth)``); `omnichannel
    inbox` shows the latest per network. One report per kind and day.

    Attributes:
        type: Always ``"auth.health"``.
        kind: What happened.
        detail: A human-readable explanation (never a token).
        expires_at: When the credentials expire, when known.
    """

    type: Literal["auth.health"] = "auth.health"
    kind: AuthHealthKind
    detail: str = ""
    expires_at: AwareDatetime | None = None

    @classmethod
    def report(
        cls, network: str, kind: AuthHealthKind, detail: str = "", *,
        at: datetime | None = None, expires_at: datetime | None = None,
        account: str | None = None,
    ) -> AuthHealth:
        """Build the report for ``network`` now (its id: network, kind and UTC day)."""
        moment = at or _now()
        day = moment.astimezone(UTC).date().isoformat()
        ref = Ref(network=network, id="account")  # one adapter, so one account, per network
        return cls(id=event_id("auth.health", ref, kind, day), network=network,
                   account=account, occurred_at=moment, kind=kind, detail=detail,
                   expires_at=expires_at)


Event = Annotated[
    MessageReceived | MessageUpdated | MessageDeleted | ReactionAdded | ReactionRemoved
    | SlaWarning | SlaBreached | AuthHealth,
    Field(discriminator="type"),
]
"""Any inbound event, discriminated on ``type``."""

EventType = (
    type[MessageReceived]
    | type[MessageUpdated]
    | type[MessageDeleted]
    | type[ReactionAdded]
    | type[ReactionRemoved]
    | type[SlaWarning]
    | type[SlaBreached]
    | type[AuthHealth]
)
"""One of the event classes, as passed to ``Hub.on``."""

_DEFERRED = ConfigDict(defer_build=True)
"""Adapters build their validators on first use, not at import."""
_EVENT: TypeAdapter[Event] = TypeAdapter(Event, config=_DEFERRED)


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Parse an event from JSON text or a decoded mapping.

    Raises:
        pydantic.ValidationError: The data is not an event.
    """
    if isinstance(data, str | bytes):
        return _EVENT.validate_json(data)
    return _EVENT.validate_python(data)
