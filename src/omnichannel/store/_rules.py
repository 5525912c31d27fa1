"""Rules every store applies the same way: merging, versions, search terms, drafts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from ..actions import Action, Post, PrivateReply, Reply
from ..errors import StoreConflict
from ..model import Conversation, Message, Person
from .base import Draft, DraftStatus

__all__ = [
    "Phrase",
    "added_values",
    "as_utc",
    "decided",
    "fts_match",
    "infer_conversation",
    "lease_lost",
    "merge_conversation",
    "phrases",
    "tokens",
    "utcnow",
    "version_at",
]

# Letters and numbers make words; everything else (punctuation, spaces, emoji)
# separates them, as SQLite's unicode61 tokenizer does.
_WORD = re.compile(r"[^\W_]+")


def utcnow() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC, refusing a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def added_values(
    scope: str,
    current: Mapping[str, str | None],
    amounts: Mapping[str, Decimal],
    limits: Mapping[str, Decimal] | None,
) -> dict[str, Decimal] | None:
    """The totals `add_values` writes (``None``: a limit refuses), from the values it read.

    Raises:
        StoreConflict: A key holds text that is not a number.
    """
    totals: dict[str, Decimal] = {}
    for key, amount in amounts.items():
        text = current.get(key)
        try:
            number = Decimal(text) if text is not None else Decimal(0)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise StoreConflict(f"value {key!r} in {scope!r} is not a number",
                                record="value", key=key)
        totals[key] = number + amount
    for key, limit in (limits or {}).items():
        if key in totals and totals[key] > limit:
            return None
    return totals


def lease_lost(key: str, worker: str) -> StoreConflict:
    """The error for a change by ``worker`` to an outbox item it no longer holds."""
    return StoreConflict(
        f"outbox item {key} is no longer claimed by worker {worker} (its lease ran out)",
        record="outbox item", key=key,
    )


def version_at(message: Message) -> datetime:
    """When this version of the message was written (edit time, else creation)."""
    return message.edited_at if message.edited_at is not None else message.created_at


def _participants(*groups: Iterable[Person]) -> tuple[Person, ...]:
    merged: dict[tuple[str, str], Person] = {}
    for group in groups:
        for person in group:
            merged[(person.ref.network, person.ref.id)] = person
    return tuple(merged.values())


def infer_conversation(message: Message) -> Conversation:
    """The conversation a message implies when none was recorded for it."""
    return Conversation(
        ref=message.conversation,
        kind="direct" if message.is_private else "thread",
        participants=() if message.from_us else (message.author,),
    )


def merge_conversation(
    existing: Conversation | None, incoming: Conversation | None, message: Message
) -> Conversation:
    """Combine what is known of a conversation with what a new message tells.

    Participants are united (newer details win, first-seen order kept); the
    message's author joins them unless it is us; a missing account is filled.
    """
    base = existing if existing is not None else incoming
    if base is None:
        base = infer_conversation(message)
    author = () if message.from_us else (message.author,)
    participants = _participants(
        existing.participants if existing is not None else (),
        incoming.participants if incoming is not None else (),
        author,
    )
    account = base.account
    if incoming is not None and incoming.account is not None:
        account = incoming.account
    kind = incoming.kind if incoming is not None else base.kind
    return base.model_copy(update={"participants": participants, "account": account, "kind": kind})


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def tokens(text: str) -> list[str]:
    """Split text into search words: case-folded, accents removed."""
    return _WORD.findall(_fold(text))


@dataclass(frozen=True, slots=True)
class Phrase:
    """One query term: its words in sequence; ``prefix`` when it ended in ``*``."""

    words: tuple[str, ...]
    prefix: bool


def phrases(query: str) -> list[Phrase]:
    """Parse a user's query: whitespace-separated terms, ``*`` suffix for a prefix.

    Every other character is plain text: ``don't`` is the phrase ``don t``.
    """
    found: list[Phrase] = []
    for chunk in query.split():
        words = tokens(chunk)
        if words:
            found.append(Phrase(words=tuple(words), prefix=chunk.endswith("*")))
    return found


def fts_match(terms: list[Phrase]) -> str:
    """An FTS5 MATCH expression for ``terms``: quoted phrases, all required."""
    parts = []
    for term in terms:
        # Words hold only letters and numbers, so quoting cannot be broken out of.
        quoted = '"' + " ".join(term.words) + '"'
        parts.append(quoted + ("*" if term.prefix else ""))
    return " AND ".join(parts)


def decided(
    draft: Draft,
    *,
    status: DraftStatus,
    by: str,
    reason: str | None,
    action: Action | None,
    at: datetime,
) -> Draft:
    """Return ``draft`` decided, or raise `StoreConflict` when it cannot be."""
    if draft.status != "pending":
        raise StoreConflict(
            f"draft {draft.id} is already {draft.status}", record="draft", key=draft.id
        )
    if status == "pending":
        raise StoreConflict("a decision must approve or reject", record="draft", key=draft.id)
    update: dict[str, object] = {
        "status": status,
        "decided_at": at,
        "decided_by": by,
        "reason": reason,
    }
    if action is not None:
        if not isinstance(action, Reply | PrivateReply | Post):
            raise StoreConflict(
                "a draft holds a reply, a private reply or a post", record="draft", key=draft.id
            )
        update["action"] = action
    return draft.model_copy(update=update)
