"""``hub.drafts``: replies held for a human, and the human's decision on each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .context import OutgoingMessage
from .errors import DraftNotPending
from .events import Event
from .store import AuditEntry, Draft, OutboxItem

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ._outgoing import Outgoing
    from .outbox import Clock
    from .store import Store

__all__ = ["Drafts"]


class Drafts:
    """Replies held for a human: list, approve (optionally edited) or reject them.

    Reach it as ``hub.drafts``.
    """

    def __init__(self, *, store: Store, outgoing: Outgoing, clock: Clock) -> None:
        self._store = store
        self._outgoing = outgoing
        self._clock = clock

    def __repr__(self) -> str:
        return "<Drafts>"

    async def pending(self, *, limit: int = 100) -> list[Draft]:
        """Return the drafts waiting for a decision, oldest first."""
        return await self._store.list_drafts(status="pending", limit=limit)

    async def get(self, draft_id: str) -> Draft | None:
        """Return one draft, or ``None``."""
        return await self._store.get_draft(draft_id)

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
        store = self._store
        draft = await store.get_draft(draft_id)
        if draft is None or draft.status != "pending":
            raise DraftNotPending(draft_id, status=None if draft is None else draft.status)
        action: OutgoingMessage = draft.action
        if text is not None:
            action = action.model_copy(update={"text": text})
        # The audit names who wrote the draft as the actor and ``by`` as approver.
        origin = draft.origin if draft.origin is not None else f"draft:{draft.id}"
        item = await self._outgoing.queue(
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
                await self._outgoing.cancel(item.key)
            raise DraftNotPending(
                draft_id, status=None if current is None else current.status
            ) from None
        return item

    async def reject(self, draft_id: str, *, by: str, reason: str | None = None) -> Draft:
        """Reject a draft: it is never sent. The decision is audited.

        Raises:
            DraftNotPending: No such draft, or it was already decided.
        """
        store = self._store
        try:
            draft = await store.decide_draft(draft_id, status="rejected", by=by, reason=reason)
        except KeyError:
            raise DraftNotPending(draft_id, status=None) from None
        except ValueError:
            current = await store.get_draft(draft_id)
            raise DraftNotPending(
                draft_id, status=None if current is None else current.status
            ) from None
        await self._outgoing.cancel(draft.action.idempotency_key)
        await store.add_audit(
            AuditEntry(
                at=self._clock(), network=draft.action.network,
                action_type=draft.action.type, idempotency_key=draft.action.idempotency_key,
                actor=by, detail=f"draft {draft.id} rejected" + (f": {reason}" if reason else ""),
            )
        )
        return draft

    async def _hold(
        self, action: OutgoingMessage, *, event: Event | None, origin: str, note: str
    ) -> Draft:
        """Store ``action`` as a draft, unchecked (the checked way is ``ctx.draft``)."""
        return await self._outgoing.store_draft(action, event=event, origin=origin, note=note)
