"""Outgoing actions and their result.

Each action carries a client-side ``idempotency_key``, chosen once when the
action is created and kept through every retry: the outbox stores it, adapters
pass it to networks with native idempotency (Mastodon's ``Idempotency-Key``,
Bluesky record keys) and use it to find a reply whose response was lost.

Besides its own fields, every action has ``network`` (the network id it goes
to) and ``idempotency_key`` (8 to 64 characters; by default a fresh one from
[`new_idempotency_key`][omnichannel.actions.new_idempotency_key]).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from .model import Message, Ref, Visibility

__all__ = [
    "Action",
    "Delete",
    "Hide",
    "Post",
    "PrivateReply",
    "React",
    "Reply",
    "Sent",
    "new_idempotency_key",
    "parse_action",
]


def new_idempotency_key() -> str:
    """Return a fresh random idempotency key (32 hex characters)."""
    return uuid.uuid4().hex


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    network: str
    idempotency_key: str = Field(default_factory=new_idempotency_key, min_length=8, max_length=64)


class Reply(_Action):
    """Answer a message where it was written: in its thread, or in its DM conversation.

    ``visibility=None`` follows the original message (a reply to a DM stays private).

    Attributes:
        type: Always ``"reply"``.
        to: The message answered.
        text: The reply text.
        visibility: Who may see the reply; ``None`` follows ``to``.
        human_agent: Whether a person wrote or approved it. Set by the hub and
            the outbox when the reply is queued (whatever the caller passed),
            so an adapter knows at delivery time which window applies, e.g.
            Meta's ``HUMAN_AGENT`` tag after 24 hours.
    """

    type: Literal["reply"] = "reply"
    to: Message
    text: str
    visibility: Visibility | None = None
    human_agent: bool = False


class PrivateReply(_Action):
    """Answer a (usually public) message privately, on the same network.

    Meta sends the network's private reply to a comment; Mastodon a direct
    status; X and Bluesky a direct message to the author.

    Attributes:
        type: Always ``"private_reply"``.
        to: The message answered.
        text: The reply text.
        human_agent: Whether a person wrote or approved it (set when queued;
            see `Reply`).
    """

    type: Literal["private_reply"] = "private_reply"
    to: Message
    text: str
    human_agent: bool = False


class Post(_Action):
    """Publish a new top-level post from our account.

    Attributes:
        type: Always ``"post"``.
        text: The post's text.
        visibility: Who may see it.
    """

    type: Literal["post"] = "post"
    text: str
    visibility: Visibility = "public"


class React(_Action):
    """React to a message (like, favourite, or an emoji where supported).

    A reaction to a message in a direct-message conversation names that
    conversation too (``conversation``): Meta's Send API addresses it to the
    conversation's customer. Such reactions are checked against
    ``Capabilities.dm_reactions``, the others against ``Capabilities.reactions``.

    Attributes:
        type: Always ``"react"``.
        target: The message reacted to.
        reaction: ``"like"``, or an emoji the network accepts.
        conversation: The direct-message conversation of ``target``
            (``message.conversation``); ``None`` for a public message.
    """

    type: Literal["react"] = "react"
    target: Ref
    reaction: str = "like"
    conversation: Ref | None = None


class Hide(_Action):
    """Hide (``hidden=True``) or unhide a comment or reply on our content.

    Attributes:
        type: Always ``"hide"``.
        target: The comment or reply.
        hidden: ``True`` hides it, ``False`` shows it again.
    """

    type: Literal["hide"] = "hide"
    target: Ref
    hidden: bool = True


class Delete(_Action):
    """Delete something we posted.

    Attributes:
        type: Always ``"delete"``.
        target: What to delete.
    """

    type: Literal["delete"] = "delete"
    target: Ref


Action = Annotated[
    Reply | PrivateReply | Post | React | Hide | Delete, Field(discriminator="type")
]
"""Any outgoing action, discriminated on ``type``."""

_DEFERRED = ConfigDict(defer_build=True)
"""Adapters build their validators on first use, not at import."""
_ACTION: TypeAdapter[Action] = TypeAdapter(Action, config=_DEFERRED)


def parse_action(data: str | bytes | dict[str, Any]) -> Action:
    """Parse an action from JSON text or a decoded mapping.

    Raises:
        pydantic.ValidationError: The data is not an action.
    """
    if isinstance(data, str | bytes):
        return _ACTION.validate_json(data)
    return _ACTION.validate_python(data)


def _now() -> datetime:
    return datetime.now(UTC)


class Sent(BaseModel):
    """What an action produced on the network.

    Attributes:
        idempotency_key: The key of the action that produced it.
        ref: The created message (for react/hide/delete: the target).
        conversation: The conversation it landed in, when there is one.
        sent_at: When the network accepted it.
        raw: The native response, an escape hatch.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    idempotency_key: str
    ref: Ref
    conversation: Ref | None = None
    sent_at: AwareDatetime = Field(default_factory=_now)
    raw: dict[str, JsonValue] | None = Field(default=None, repr=False)
