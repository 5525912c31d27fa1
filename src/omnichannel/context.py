"""``Context``: what a handler can do about the event it was given.

A handler gets one per call (``async def handler(event, ctx)``); its methods
answer, draft, react, hide or read the conversation's history. What became of
each action is a [`Delivery`][omnichannel.context.Delivery].
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from ._dispatch import conversation_of
from .actions import Action, Hide, Post, PrivateReply, React, Reply
from .adapter import Adapter
from .errors import ActionError, CapabilityNotSupported, OmnichannelError
from .events import Event
from .model import Message, Ref, Visibility
from .routing import _event_message
from .store import Draft, OutboxItem

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .hub import Hub

__all__ = ["Context", "Delivery", "OutgoingMessage"]

logger = logging.getLogger("omnichannel.hub")

OutgoingMessage = Reply | PrivateReply | Post
"""The actions that carry text to a person: a reply, a private reply, a post."""


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

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

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
        return await self.hub._outgoing.propose(
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
        return await self.hub._outgoing.propose(
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
        return await self.hub._outgoing.hold(
            action, event=self.event, origin=self.origin, note=note or "drafted"
        )

    async def react(self, reaction: str = "like", *, target: Ref | None = None) -> Delivery:
        """React to the event's message (or to ``target``); sent at once.

        A reaction to the event's own direct message names its conversation
        (``React.conversation``) and is checked against ``dm_reactions``.

        Raises:
            ActionError: No target was given and the event carries no message.
            CapabilityNotSupported: The network cannot react, or not with ``reaction``.
        """
        conversation = None
        if target is None:
            message = self._require_message("react")
            target = message.ref
            conversation = message.conversation if message.is_private else None
        action = React(
            network=self.network, target=target, reaction=reaction,
            conversation=conversation, idempotency_key=self._next_key(),
        )
        item = await self.hub._outgoing.queue(
            action, origin=self.origin, human_agent=False, allow_duplicate=True
        )
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
        item = await self.hub._outgoing.queue(
            action, origin=self.origin, human_agent=False, allow_duplicate=True
        )
        return Delivery(status="queued", action=action, item=item, reason="moderation")

    async def history(self, *, limit: int = 50, refresh: bool = False) -> list[Message]:
        """Return the conversation so far, oldest first.

        Read from the store; when the store knows nothing of the conversation
        beyond the message being handled (or ``refresh`` is true), the
        adapter's ``fetch_conversation`` is asked and what it returns is
        stored. A network that cannot fetch history, or fails to, leaves the
        stored messages as the answer.
        """
        conversation = await conversation_of(self.hub.store, self.event)
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

