"""What a network allows, declared by its adapter and checked before sending.

The hub calls [`Capabilities.check`][omnichannel.capabilities.Capabilities.check]
on every outgoing action before any network call, so an action that cannot be
done fails at once with a typed error instead of at the network.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .actions import Action, Delete, Hide, Post, PrivateReply, React, Reply
from .errors import CapabilityNotSupported, WindowClosed
from .model import AttachmentKind
from .text import TextRule

__all__ = ["Capabilities", "InboundMode"]

InboundMode = Literal["webhook", "stream", "poll"]
"""How events can reach us: pushed by webhook, read from a stream, or polled."""


class Capabilities(BaseModel):
    """What one network (through its adapter) can do.

    Attributes:
        text: Rule for public posts and replies.
        dm_text: Rule for direct messages (defaults to ``text``).
        post: Whether we can publish new top-level posts.
        private_reply: Whether a public message can be answered privately.
        private_reply_once: Whether the network allows one private reply per
            public message (Meta: one per comment); the hub remembers it in
            the store and refuses a second one before any request.
        private_reply_window: How long after the customer's message a private
            reply is allowed (Meta: 7 days); ``None`` for no limit.
        dm_window: How long after the customer's last message we may write
            in a DM conversation (Meta: 24 h); ``None`` for no limit.
        human_agent_window: The longer window open to a human agent (Meta's
            ``HUMAN_AGENT`` tag: 7 days), when the network has one.
        reactions: Reactions we can send to public messages (posts,
            comments); empty when reacting to them is unsupported.
        dm_reactions: Reactions we can send to a message in a direct-message
            conversation (a `React` naming its ``conversation``); empty when
            unsupported. Declaring them promises nothing about ``reactions``.
        hide: Whether comments on our content can be hidden.
        delete: Whether we can delete what we posted.
        edit: Whether we can edit what we posted.
        media: Attachment kinds we can send.
        inbound: How events reach us.
        native_idempotency: Whether the network itself refuses a repeated
            write with the same key (Mastodon, Bluesky record keys).
        inbound_edits: Whether the adapter's listening mode (its stream where
            it declares one, else ``poll``) delivers ``MessageUpdated`` when a
            customer edits a message it delivered.
        inbound_deletes: The same for ``MessageDeleted`` when a customer
            deletes one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    text: TextRule
    dm_text: TextRule | None = None
    post: bool = True
    private_reply: bool = False
    private_reply_once: bool = False
    private_reply_window: timedelta | None = None
    dm_window: timedelta | None = None
    human_agent_window: timedelta | None = None
    reactions: tuple[str, ...] = ()
    dm_reactions: tuple[str, ...] = ()
    hide: bool = False
    delete: bool = False
    edit: bool = False
    media: frozenset[AttachmentKind] = frozenset()
    inbound: frozenset[InboundMode] = frozenset({"poll"})
    native_idempotency: bool = False
    inbound_edits: bool = False
    inbound_deletes: bool = False

    def rule_for(self, action: Reply | PrivateReply | Post) -> TextRule:
        """Return the text rule that governs ``action``."""
        private = isinstance(action, PrivateReply) or (
            isinstance(action, Reply)
            and (action.visibility or action.to.visibility) == "private"
        )
        if private and self.dm_text is not None:
            return self.dm_text
        return self.text

    def check(
        self, action: Action, *, network: str, now: datetime | None = None,
        human_agent: bool = False, text: str | None = None,
    ) -> None:
        """Raise a typed error if ``action`` cannot be done; return quietly if it can.

        Args:
            action: The outgoing action.
            network: The network name, for the error.
            now: The current time (defaults to the wall clock).
            human_agent: Whether a human agent sends it (opens the longer
                window where the network has one).
            text: The text as the network will receive it, when the adapter
                adds to ``action.text`` (see ``Adapter.outgoing_text``).

        Raises:
            CapabilityNotSupported: The network cannot do this kind of action.
            TextTooLong: The text is over the limit, counted the network's way.
            WindowClosed: The messaging window for this recipient has closed.
        """
        when = now or datetime.now(UTC)
        match action:
            case Reply() | PrivateReply() | Post():
                if isinstance(action, Post) and not self.post:
                    raise CapabilityNotSupported("post", network=network)
                if isinstance(action, PrivateReply):
                    if not self.private_reply:
                        raise CapabilityNotSupported("private_reply", network=network)
                    self._check_window(action, when, network, human_agent)
                if isinstance(action, Reply) and action.to.is_private:
                    self._check_window(action, when, network, human_agent)
                sent_text = action.text if text is None else text
                self.rule_for(action).check(sent_text, network=network)
            case React():
                dm = action.conversation is not None
                allowed = self.dm_reactions if dm else self.reactions
                what = "dm_reactions" if dm else "react"
                if not allowed:
                    raise CapabilityNotSupported(what, network=network)
                if action.reaction not in allowed:
                    supported = ", ".join(allowed)
                    raise CapabilityNotSupported(
                        what, network=network,
                        detail=f"reaction {action.reaction!r} (supported: {supported})",
                    )
            case Hide():
                if not self.hide:
                    raise CapabilityNotSupported("hide", network=network)
            case Delete():
                if not self.delete:
                    raise CapabilityNotSupported("delete", network=network)

    def _check_window(
        self, action: Reply | PrivateReply, now: datetime, network: str, human_agent: bool
    ) -> None:
        window = (
            self.private_reply_window
            if isinstance(action, PrivateReply) and not action.to.is_private
            else self.dm_window
        )
        if human_agent and self.human_agent_window is not None:
            window = max(window or self.human_agent_window, self.human_agent_window)
        if window is None:
            return
        closes = action.to.created_at + window
        if now > closes:
            raise WindowClosed(
                f"the {window} window to answer this message closed at {closes.isoformat()}",
                network=network, closed_at=closes,
            )
