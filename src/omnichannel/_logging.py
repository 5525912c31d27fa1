"""The readable log lines of the pipeline: one per message received, reply sent,
draft held, delivery retried and delivery failed.

``LogLines`` writes them as a consumer of the instrumentation hooks; every
hub and outbox has one, before the consumers the application adds.

Each is one record on a logger under ``omnichannel.*`` with its data in ``extra=``
(``omnichannel_event``, ``network``, ``conversation``, ``text``, ``outcome``...), so a
JSON formatter can print the fields and a plain one prints the sentence. Only what a
person running a bot needs: ids, a short excerpt of the text and the error's type and
message (our errors never carry a token); never a header, a body or a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .actions import Action, Delete, Hide, Post, PrivateReply, React, Reply, Sent
from .events import Event, MessageReceived
from .instrumentation import DeliveryOutcome, Instrumentation, _Fanout
from .store import Draft, OutboxItem

TEXT_LIMIT = 60
"""Graphemes of a message's text shown in a log line; longer texts end with ``…``."""


def short_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """Return ``text`` on one line, cut to ``limit`` graphemes (``…`` marks a cut)."""
    from .text import graphemes  # compiles its patterns on first use

    flat = " ".join(text[: limit * 8].split())
    clusters = graphemes(flat)
    if len(clusters) <= limit and len(text) <= limit * 8:
        return flat
    return "".join(clusters[: limit - 1]).rstrip() + "…"


def _action_text(action: Action) -> str | None:
    return action.text if isinstance(action, Reply | PrivateReply | Post) else None


def _action_conversation(action: Action, sent: Sent | None) -> str | None:
    if sent is not None and sent.conversation is not None:
        return sent.conversation.id
    if isinstance(action, Reply):
        return action.to.conversation.id
    return None


def _where(conversation: str | None, action: Action | None = None) -> str:
    if conversation is not None:
        return f" in conversation {conversation}"
    if isinstance(action, PrivateReply):
        return f" to {action.to.author.handle or action.to.author.ref.id}"
    if isinstance(action, React | Hide | Delete):
        return f" on {action.target.id}"
    return ""


def _excerpt(text: str | None) -> str:
    return f': "{short_text(text)}"' if text else ""


_NAMES = {"private_reply": "private reply", "react": "reaction"}


def _name(action: Action) -> str:
    return _NAMES.get(action.type, action.type)


def message_received(logger: logging.Logger, event: MessageReceived) -> None:
    """Log one new inbound message (nothing is built when INFO is off: it runs per delivery)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    message = event.message
    author = message.author.handle or message.author.ref.id
    conversation = event.conversation.ref.id
    logger.info(
        "%s: message received from %s%s%s",
        event.network, author, _where(conversation), _excerpt(message.text),
        extra=_fields(
            "message.received", network=event.network, conversation=conversation,
            event_id=event.id, message_id=message.ref.id, author=author,
            visibility=message.visibility, text=short_text(message.text),
            outcome="from_us" if message.from_us else "recorded",
        ),
    )


def draft_held(logger: logging.Logger, draft: Draft) -> None:
    """Log one reply held as a draft for a human."""
    action = draft.action
    conversation = _action_conversation(action, None)
    logger.info(
        "%s: draft held%s%s (%s)",
        action.network, _where(conversation, action), _excerpt(action.text),
        draft.note or "held",
        extra=_fields(
            "draft.held", network=action.network, conversation=conversation,
            event_id=draft.event_id, action_id=action.idempotency_key,
            action_type=action.type, draft_id=draft.id, text=short_text(action.text),
            outcome="held", reason=draft.note,
        ),
    )


def action_sent(
    logger: logging.Logger, item: OutboxItem, sent: Sent | None, *, reconciled: bool
) -> None:
    """Log one action the network accepted (nothing is built when INFO is off: once per reply)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    action = item.action
    text = _action_text(action)
    conversation = _action_conversation(action, sent)
    notes = ["found already sent, not sent again"] if reconciled else []
    if item.attempts > 1:
        notes.append(f"attempt {item.attempts}")
    logger.info(
        "%s: %s sent%s%s%s",
        item.network, _name(action), _where(conversation, action), _excerpt(text),
        f" ({', '.join(notes)})" if notes else "",
        extra=_fields(
            "reply.sent" if text is not None else "action.sent",
            network=item.network, conversation=conversation,
            action_id=item.key, action_type=action.type,
            message_id=sent.ref.id if sent is not None else None,
            text=short_text(text) if text is not None else None,
            outcome="reconciled" if reconciled else "sent",
            attempt=item.attempts, origin=item.origin,
        ),
    )


def delivery_retried(
    logger: logging.Logger, item: OutboxItem, *, status: str, at: datetime, error: str
) -> None:
    """Log one delivery attempt put back for later (transient error, rate limit, ambiguous)."""
    action = item.action
    text = _action_text(action)
    conversation = _action_conversation(action, None)
    then = "looked up, then tried again" if status == "ambiguous" else "tried again"
    logger.info(
        "%s: %s delivery retried%s%s (attempt %d: %s; %s at %s)",
        item.network, _name(action), _where(conversation, action), _excerpt(text),
        item.attempts, error, then, at.isoformat(timespec="seconds"),
        extra=_fields(
            "delivery.retried", network=item.network, conversation=conversation,
            action_id=item.key, action_type=action.type,
            text=short_text(text) if text is not None else None, outcome=status,
            attempt=item.attempts, error=error, retry_at=at.isoformat(),
        ),
    )


def delivery_failed(logger: logging.Logger, item: OutboxItem, *, error: str) -> None:
    """Log one action the outbox gave up on."""
    action = item.action
    text = _action_text(action)
    conversation = _action_conversation(action, None)
    logger.error(
        "%s: %s delivery failed%s%s (attempt %d: %s; given up)",
        item.network, _name(action), _where(conversation, action), _excerpt(text),
        item.attempts, error,
        extra=_fields(
            "delivery.failed", network=item.network, conversation=conversation,
            action_id=item.key, action_type=action.type,
            text=short_text(text) if text is not None else None, outcome="failed",
            attempt=item.attempts, error=error, origin=item.origin,
        ),
    )


def _fields(kind: str, **fields: Any) -> dict[str, Any]:
    return {"omnichannel_event": kind, **fields}


_HUB = logging.getLogger("omnichannel.hub")
_OUTBOX = logging.getLogger("omnichannel.outbox")


class LogLines(Instrumentation):
    """The log lines above, written from the instrumentation hooks."""

    def event_received(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            message_received(_HUB, event)

    def draft_held(self, draft: Draft) -> None:
        draft_held(_HUB, draft)

    def delivery_outcome(
        self,
        item: OutboxItem,
        outcome: DeliveryOutcome,
        *,
        sent: Sent | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        if outcome in ("sent", "reconciled"):
            action_sent(_OUTBOX, item, sent, reconciled=outcome == "reconciled")
        elif outcome == "failed":
            delivery_failed(_OUTBOX, item, error=error or "")
        elif retry_at is not None:
            status = "ambiguous" if outcome == "ambiguous" else "pending"
            delivery_retried(_OUTBOX, item, status=status, at=retry_at, error=error or "")

    def __repr__(self) -> str:
        return "<LogLines>"


def with_log_lines(consumers: Iterable[Instrumentation] = ()) -> Instrumentation:
    """One instrumentation calling the log lines, then each of ``consumers``."""
    return _Fanout([LogLines(), *consumers])
