"""A store in process memory, for tests and demos.

Long because: one class plays every role of the store (see `omnichannel.store.roles`),
with the indexes that keep each call's cost flat as the data grows; the roles share those
indexes (an outbox outcome and its audit line land in one step).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from anyio.lowlevel import checkpoint

from ..actions import Action, Sent
from ..errors import RecordNotFound, StoreConflict
from ..events import Event, MessageDeleted, MessageReceived, MessageUpdated
from ..model import Conversation, Message, Person, Ref
from ._rules import (
    Phrase,
    added_values,
    as_utc,
    decided,
    lease_lost,
    merge_conversation,
    phrases,
    tokens,
    utcnow,
    version_at,
)
from ._state_rules import queue_order, state_matches
from .base import (
    AuditEntry,
    DeadLetter,
    Draft,
    DraftStatus,
    HandlerFailure,
    OutboxItem,
    OutboxStatus,
)
from .roles import DEFAULT_LEASE, Store
from .states import ConversationState, ConversationStatus, StateChange

__all__ = ["MemoryStore"]

_Key = tuple[str, str]


def _key(ref: Ref) -> _Key:
    return (ref.network, ref.id)


@dataclass(slots=True)
class _EventRow:
    event: Event
    handled: bool = False


@dataclass(slots=True)
class _MessageRow:
    message: Message | None  # None once deleted: the text is erased
    deleted: bool = False


@dataclass(slots=True)
class _ConversationRow:
    conversation: Conversation
    last_activity: datetime


def _matches(words: list[str], phrase: Phrase) -> int:
    """How many times ``phrase`` occurs in ``words``."""
    size = len(phrase.words)
    count = 0
    for start in range(len(words) - size + 1):
        window = words[start : start + size]
        head, last = window[:-1], window[-1]
        if list(phrase.words[:-1]) != head:
            continue
        target = phrase.words[-1]
        if last == target or (phrase.prefix and last.startswith(target)):
            count += 1
    return count


class MemoryStore(Store):
    """Keep everything in memory; nothing survives the process.

    It behaves as [`SQLiteStore`][omnichannel.store.SQLiteStore] does, so tests
    written against it hold for the real store. Several workers (outboxes
    with their own ``worker`` ids) may share one object: claims and leases
    work as on a database. Closing and opening it again keeps its data and
    runs the same crash recovery as a reopened SQLite database (outbox items
    left ``sending`` become ``ambiguous`` at once: no worker of a closed store
    lives on; named leases are freed too), which lets a test simulate a restart.

    Example:
        ```python
        async with MemoryStore() as store:
            new = await store.record_batch("mastodon", events, cursor="42")
        ```
    """

    def __init__(self) -> None:
        """Create an empty store (open it before use)."""
        self._open = False
        self._events: dict[str, _EventRow] = {}
        # Indexes, so what one event costs does not grow with what is stored:
        self._unhandled: dict[str, None] = {}  # event ids, in record order
        self._in_conversation: dict[_Key, set[_Key]] = {}  # live messages by conversation
        self._words: dict[str, set[_Key]] = {}  # live messages by search word
        self._vocabulary: list[str] | None = []  # sorted words (None: to sort again)
        self._position: dict[_Key, int] = {}  # first-stored order of messages
        self._claimable: dict[str, None] = {}  # outbox keys not final (claimable in time)
        self._queued: dict[str, int] = {}  # outbox key: its place in the queue
        # (network, order key): the unfinished items' (place, key), in queue order
        self._lines: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._by_digest: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        self._cursors: dict[tuple[str, str], str] = {}
        self._people: dict[_Key, Person] = {}
        self._conversations: dict[_Key, _ConversationRow] = {}
        self._messages: dict[_Key, _MessageRow] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._drafts: dict[str, Draft] = {}
        self._audit: list[AuditEntry] = []
        self._dead: list[DeadLetter] = []
        self._failures: list[HandlerFailure] = []
        self._states: dict[_Key, ConversationState] = {}
        self._state_changes: dict[_Key, list[StateChange]] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}  # name: (holder, expiry)
        self._values: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<MemoryStore {state}: {len(self._events)} events>"

    async def _ready(self) -> None:
        await checkpoint()
        if not self._open:
            raise RuntimeError("the store is not open")

    # lifecycle

    async def open(self) -> None:
        """Open the store, ending the leases of its workers before a close.

        Outbox items left ``sending`` become ``ambiguous``; named leases are freed.
        """
        await checkpoint()
        if self._open:
            return
        now = utcnow()
        for key, item in self._outbox.items():
            if item.status == "sending":
                self._outbox[key] = item.model_copy(
                    update={"status": "ambiguous", "updated_at": now, "lease_until": None}
                )
            elif item.lease_until is not None:
                self._outbox[key] = item.model_copy(update={"lease_until": None})
        self._leases.clear()
        self._open = True

    async def aclose(self) -> None:
        """Close the store; its data stays for a later ``open()``."""
        await checkpoint()
        self._open = False

    # inbound

    async def record_batch(
        self,
        network: str,
        events: Sequence[Event],
        *,
        cursor: str | None,
        stream: str = "default",
    ) -> list[Event]:
        """Persist a batch of inbound events; return the ones not seen before."""
        await self._ready()
        # No await from here on: concurrent callers (webhook and polling paths
        # recording the same events) each see the whole batch applied or not at
        # all, so every event id is returned as new to exactly one of them.
        new: list[Event] = []
        for event in events:
            if event.id in self._events:
                continue
            self._events[event.id] = _EventRow(event)
            self._unhandled[event.id] = None
            new.append(event)
            self._apply(event)
        if cursor is not None:
            self._cursors[(network, stream)] = cursor
        return new

    def _apply(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self._remember_people(event.conversation.participants)
            self._upsert_message(event.message, event.conversation)
        elif isinstance(event, MessageUpdated):
            self._upsert_message(event.message, None)
        elif isinstance(event, MessageDeleted):
            key = _key(event.message)
            row = self._messages.get(key)
            if row is not None and row.message is not None:
                self._unindex(key, row.message)
            self._position.setdefault(key, len(self._position))
            self._messages[key] = _MessageRow(None, deleted=True)

    def _remember_people(self, people: Sequence[Person]) -> None:
        for person in people:
            self._people[_key(person.ref)] = person

    def _upsert_message(self, message: Message, conversation: Conversation | None) -> None:
        key = _key(message.ref)
        row = self._messages.get(key)
        if row is not None:
            if row.deleted:
                return
            if row.message is not None and version_at(row.message) > version_at(message):
                return
            if row.message is not None:
                self._unindex(key, row.message)
        self._position.setdefault(key, len(self._position))
        self._messages[key] = _MessageRow(message)
        self._index(key, message)
        self._remember_people((message.author,))
        conv_key = _key(message.conversation)
        existing = self._conversations.get(conv_key)
        merged = merge_conversation(
            existing.conversation if existing is not None else None, conversation, message
        )
        last = message.created_at
        if existing is not None and existing.last_activity > last:
            last = existing.last_activity
        self._conversations[conv_key] = _ConversationRow(merged, last)

    def _index(self, key: _Key, message: Message) -> None:
        self._in_conversation.setdefault(_key(message.conversation), set()).add(key)
        for word in set(tokens(message.text)):
            holders = self._words.get(word)
            if holders is None:
                holders = self._words[word] = set()
                self._vocabulary = None
            holders.add(key)

    def _unindex(self, key: _Key, message: Message) -> None:
        members = self._in_conversation.get(_key(message.conversation))
        if members is not None:
            members.discard(key)
        for word in set(tokens(message.text)):
            holders = self._words.get(word)
            if holders is not None:
                holders.discard(key)

    def _with_prefix(self, prefix: str) -> set[_Key]:
        """Messages holding a word that starts with ``prefix``."""
        if self._vocabulary is None:
            self._vocabulary = sorted(self._words)
        words = self._vocabulary
        found: set[_Key] = set()
        at = bisect.bisect_left(words, prefix)
        while at < len(words) and words[at].startswith(prefix):
            found |= self._words[words[at]]
            at += 1
        return found

    async def get_cursor(self, network: str, stream: str = "default") -> str | None:
        """Return the cursor saved by the last batch of ``network``/``stream``."""
        await self._ready()
        return self._cursors.get((network, stream))

    async def mark_handled(self, event_id: str) -> None:
        """Mark an event handled (an unknown id is ignored)."""
        await self._ready()
        row = self._events.get(event_id)
        if row is not None:
            row.handled = True
            self._unhandled.pop(event_id, None)

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        """Return the events not yet handled, in the order they were recorded."""
        await self._ready()
        events = (self._events[event_id].event for event_id in self._unhandled)
        return [event for event in events if network is None or event.network == network]

    async def seen(self, event_id: str) -> bool:
        """Return whether an event with this id was recorded."""
        await self._ready()
        return event_id in self._events

    async def is_handled(self, event_id: str) -> bool:
        """Return whether the event was recorded and marked handled."""
        await self._ready()
        row = self._events.get(event_id)
        return row is not None and row.handled

    # messages

    async def get_message(self, ref: Ref) -> Message | None:
        """Return a stored message, or ``None`` (also when it was deleted)."""
        await self._ready()
        row = self._messages.get(_key(ref))
        return row.message if row is not None else None

    async def get_conversation(self, ref: Ref) -> Conversation | None:
        """Return a stored conversation, or ``None``."""
        await self._ready()
        row = self._conversations.get(_key(ref))
        return row.conversation if row is not None else None

    async def conversation_messages(self, ref: Ref, *, limit: int = 100) -> list[Message]:
        """Return the latest ``limit`` messages of a conversation, oldest first."""
        await self._ready()
        found = [
            message
            for key in self._in_conversation.get(_key(ref), ())
            if (message := self._messages[key].message) is not None
        ]
        found.sort(key=lambda message: (message.created_at, message.ref.id))
        return found[-limit:] if limit > 0 else []

    async def list_conversations(
        self, *, network: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Return conversations, most recent activity first."""
        await self._ready()
        rows = [
            row
            for row in self._conversations.values()
            if network is None or row.conversation.ref.network == network
        ]
        rows.sort(key=lambda row: (row.last_activity, row.conversation.ref.id), reverse=True)
        return [row.conversation for row in rows[: max(limit, 0)]]

    async def search(
        self, query: str, *, network: str | None = None, limit: int = 20
    ) -> list[Message]:
        """Return messages containing every word of ``query``, best match first."""
        await self._ready()
        terms = phrases(query)
        if not terms:
            return []
        scored: list[tuple[int, Message]] = []
        for key in sorted(self._candidates(terms), key=self._position.__getitem__):
            message = self._messages[key].message
            if message is None or (network is not None and message.network != network):
                continue
            words = tokens(message.text)
            counts = [_matches(words, term) for term in terms]
            if all(counts):
                scored.append((sum(counts), message))
        scored.sort(key=lambda pair: (pair[0], pair[1].created_at), reverse=True)
        return [message for _, message in scored[: max(limit, 0)]]

    def _candidates(self, terms: Iterable[Phrase]) -> set[_Key]:
        """Messages holding every word of every term (a superset of the matches)."""
        found: set[_Key] | None = None
        for term in terms:
            whole = term.words[:-1] if term.prefix else term.words
            for word in whole:
                holders = self._words.get(word, set())
                found = set(holders) if found is None else found & holders
                if not found:
                    return set()
            if term.prefix:
                holders = self._with_prefix(term.words[-1])
                found = holders if found is None else found & holders
                if not found:
                    return set()
        return found or set()

    async def save_messages(self, messages: Sequence[Message]) -> None:
        """Upsert messages (our own sent replies, fetched history)."""
        await self._ready()
        for message in messages:
            self._upsert_message(message, None)

    # outbox

    async def enqueue(self, item: OutboxItem) -> OutboxItem:
        """Add an item; when its key is already queued, return the stored one."""
        await self._ready()
        stored = self._outbox.get(item.key)
        if stored is not None:
            return stored
        self._outbox[item.key] = item
        self._queued[item.key] = len(self._queued)
        self._track(item)
        if item.recipient is not None and item.text_digest is not None:
            bisect.insort(
                self._by_digest.setdefault((item.network, item.text_digest), []),
                (item.created_at, item.key),
            )
        return item

    def _track(self, item: OutboxItem) -> None:
        """Keep the claimable index and the item's line in step with its status."""
        unfinished = item.status in ("pending", "sending", "ambiguous")
        if unfinished:
            self._claimable[item.key] = None
        else:
            self._claimable.pop(item.key, None)
        order = item.order_key
        if order is None:
            return
        name = (item.network, order)
        line = self._lines.get(name, [])
        place = (self._queued[item.key], item.key)
        at = bisect.bisect_left(line, place)
        present = at < len(line) and line[at] == place
        if unfinished and not present:
            line.insert(at, place)
            self._lines[name] = line
        elif not unfinished and present:
            del line[at]
            if not line:
                del self._lines[name]

    def _first_in_line(self, item: OutboxItem) -> bool:
        """Whether no unfinished item of ``item``'s order key was queued before it."""
        order = item.order_key
        if order is None:
            return True
        line = self._lines.get((item.network, order))
        return not line or line[0][1] == item.key

    async def get_outbox(self, key: str) -> OutboxItem | None:
        """Return the item with this key, or ``None``."""
        await self._ready()
        return self._outbox.get(key)

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int = 10,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[OutboxItem]:
        """Claim due items for ``worker``, oldest first (see `Store.claim_due`)."""
        await self._ready()
        now = as_utc(now, "now")
        due = [
            item
            for key in self._claimable
            if _claimable((item := self._outbox[key]), now) and self._first_in_line(item)
        ]
        due.sort(key=lambda item: (item.created_at, item.key))
        claimed: list[OutboxItem] = []
        for item in due[: max(limit, 0)]:
            status: OutboxStatus = "sending" if item.status == "pending" else "ambiguous"
            updated = item.model_copy(
                update={
                    "status": status, "attempts": item.attempts + 1, "updated_at": now,
                    "worker": worker, "lease_until": now + lease,
                }
            )
            self._outbox[item.key] = updated
            self._track(updated)
            claimed.append(updated)
        return claimed

    async def renew_claims(
        self,
        keys: Sequence[str],
        *,
        worker: str,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[str]:
        """Extend ``worker``'s claims on ``keys``; return the keys renewed."""
        await self._ready()
        now = as_utc(now, "now")
        renewed: list[str] = []
        for key in keys:
            item = self._outbox.get(key)
            if item is not None and _held_by(item, worker):
                self._outbox[key] = item.model_copy(update={"lease_until": now + lease})
                renewed.append(key)
        return renewed

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
        """Set an item's status, adding ``audit`` (if given) in the same step.

        Other arguments left ``None`` keep their value; the claim on the item ends.

        Raises:
            RecordNotFound: No item has this key (nothing is changed or added).
            StoreConflict: ``worker`` no longer holds the item.
        """
        await self._ready()
        # No await from here on: the change and its audit line land together.
        item = self._outbox.get(key)
        if item is None:
            raise RecordNotFound("outbox item", key)
        if worker is not None and not _held_by(item, worker):
            raise lease_lost(key, worker)
        update: dict[str, object] = {
            "status": status, "updated_at": utcnow(), "lease_until": None,
        }
        if next_attempt_at is not None:
            update["next_attempt_at"] = as_utc(next_attempt_at, "next_attempt_at")
        if last_error is not None:
            update["last_error"] = last_error
        if sent is not None:
            update["sent"] = sent
        updated = item.model_copy(update=update)
        self._outbox[key] = updated
        self._track(updated)
        if audit is not None:
            self._append_audit(audit)
        return updated

    async def list_outbox(
        self, *, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Return items (all, or those with ``status``), oldest first."""
        await self._ready()
        items = [i for i in self._outbox.values() if status is None or i.status == status]
        items.sort(key=lambda item: (item.created_at, item.key))
        return items[: max(limit, 0)]

    async def recent_recipients(
        self, *, network: str, text_digest: str, since: datetime
    ) -> list[str]:
        """Return who was sent this text since ``since`` (not failed or cancelled)."""
        await self._ready()
        since = as_utc(since, "since")
        entries = self._by_digest.get((network, text_digest), [])
        found: dict[str, None] = {}
        for _, key in entries[bisect.bisect_left(entries, (since, "")) :]:
            item = self._outbox[key]
            if item.recipient is not None and item.status not in ("failed", "cancelled"):
                found[item.recipient] = None
        return list(found)

    # named leases

    async def acquire_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take the lease ``name`` for ``holder`` (see `Store.acquire_lease`)."""
        await self._ready()
        now = as_utc(now, "now")
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, now + ttl)
        return True

    async def renew_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Extend ``holder``'s unexpired lease (see `Store.renew_lease`)."""
        await self._ready()
        now = as_utc(now, "now")
        current = self._leases.get(name)
        if current is None or current[0] != holder or current[1] <= now:
            return False
        self._leases[name] = (holder, now + ttl)
        return True

    async def release_lease(self, name: str, *, holder: str) -> bool:
        """Give the lease back if ``holder`` holds it."""
        await self._ready()
        current = self._leases.get(name)
        if current is None or current[0] != holder:
            return False
        del self._leases[name]
        return True

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Return who holds the lease ``name`` at ``now``, or ``None``."""
        await self._ready()
        now = as_utc(now, "now")
        current = self._leases.get(name)
        return current[0] if current is not None and current[1] > now else None

    # values

    async def get_value(self, scope: str, key: str) -> str | None:
        """Return the value of ``key`` in ``scope``, or ``None``."""
        await self._ready()
        return self._values.get((scope, key))

    async def put_value(self, scope: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``scope`` (replacing any)."""
        await self._ready()
        self._values[(scope, key)] = value

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget ``key`` in ``scope``."""
        await self._ready()
        self._values.pop((scope, key), None)

    async def add_values(
        self,
        scope: str,
        amounts: Mapping[str, Decimal],
        *,
        limits: Mapping[str, Decimal] | None = None,
    ) -> dict[str, Decimal] | None:
        """Add each amount to its key's number, all or none; ``None`` when a limit refuses."""
        await self._ready()
        current = {key: self._values.get((scope, key)) for key in amounts}
        totals = added_values(scope, current, amounts, limits)
        if totals is not None:
            for key, total in totals.items():
                self._values[(scope, key)] = str(total)
        return totals

    # drafts

    async def add_draft(self, draft: Draft) -> None:
        """Store a new draft.

        Raises:
            StoreConflict: A draft with this id exists.
        """
        await self._ready()
        if draft.id in self._drafts:
            raise StoreConflict(f"draft {draft.id} already exists", record="draft", key=draft.id)
        self._drafts[draft.id] = draft

    async def get_draft(self, draft_id: str) -> Draft | None:
        """Return a draft, or ``None``."""
        await self._ready()
        return self._drafts.get(draft_id)

    async def list_drafts(
        self, *, status: DraftStatus | None = "pending", limit: int = 100
    ) -> list[Draft]:
        """Return drafts (those with ``status``, or all with ``None``), oldest first."""
        await self._ready()
        drafts = [d for d in self._drafts.values() if status is None or d.status == status]
        drafts.sort(key=lambda draft: (draft.created_at, draft.id))
        return drafts[: max(limit, 0)]

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
        await self._ready()
        draft = self._drafts.get(draft_id)
        if draft is None:
            raise RecordNotFound("draft", draft_id)
        result = decided(draft, status=status, by=by, reason=reason, action=action, at=utcnow())
        self._drafts[draft_id] = result
        return result

    # audit, dead letters, failures

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (its ``id`` is assigned)."""
        await self._ready()
        self._append_audit(entry)

    def _append_audit(self, entry: AuditEntry) -> None:
        self._audit.append(entry.model_copy(update={"id": len(self._audit) + 1}))

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        await self._ready()
        return _newest(self._audit, limit)

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a body we could not use (its ``id`` is assigned)."""
        await self._ready()
        self._dead.append(letter.model_copy(update={"id": len(self._dead) + 1}))

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Return dead letters, newest first."""
        await self._ready()
        return _newest(self._dead, limit)

    async def add_failure(self, failure: HandlerFailure) -> None:
        """Record a handler failure (its ``id`` is assigned)."""
        await self._ready()
        self._failures.append(failure.model_copy(update={"id": len(self._failures) + 1}))

    async def failures(self, *, limit: int = 100) -> list[HandlerFailure]:
        """Return handler failures, newest first."""
        await self._ready()
        return _newest(self._failures, limit)

    # conversation state ----------------------------------------------------

    async def get_state(self, conversation: Ref) -> ConversationState | None:
        """Return the stored state of ``conversation``, if any."""
        await self._ready()
        return self._states.get(_key(conversation))

    async def put_state(
        self, state: ConversationState, *, expected_version: int,
        changes: Sequence[StateChange] = (),
    ) -> ConversationState:
        """Write ``state`` if its stored version is ``expected_version`` (compare-and-set)."""
        await self._ready()
        key = _key(state.conversation)
        current = self._states.get(key)
        stored_version = current.version if current is not None else 0
        if stored_version != expected_version:
            raise StoreConflict(
                f"conversation {state.conversation.network}:{state.conversation.id} changed "
                f"(version {stored_version}, expected {expected_version})",
                record="conversation state", key=f"{key[0]}:{key[1]}",
            )
        written = state.model_copy(update={"version": expected_version + 1})
        self._states[key] = written
        self._state_changes.setdefault(key, []).extend(
            change.model_copy(update={"version": written.version}) for change in changes
        )
        return written

    async def list_states(
        self,
        *,
        status: Sequence[ConversationStatus] | None = None,
        assignee: str | None = None,
        queue: str | None = None,
        network: str | None = None,
        due_before: datetime | None = None,
        limit: int = 100,
    ) -> list[ConversationState]:
        """Return states matching the filters, the soonest due first."""
        await self._ready()
        found = [
            state for state in self._states.values()
            if state_matches(state, status=status, assignee=assignee, queue=queue,
                             network=network, due_before=due_before)
        ]
        return sorted(found, key=queue_order)[: max(limit, 0)]

    async def state_changes(self, conversation: Ref, *, limit: int = 100) -> list[StateChange]:
        """Return the changes of ``conversation``, oldest first (the last ``limit``)."""
        await self._ready()
        changes = self._state_changes.get(_key(conversation), [])
        return list(changes[-limit:]) if limit > 0 else []


def _claimable(item: OutboxItem, now: datetime) -> bool:
    """Whether a claim at ``now`` may take ``item`` (see `Store.claim_due`)."""
    free = item.lease_until is None or item.lease_until <= now
    if item.status == "sending":
        return free
    return free and item.next_attempt_at <= now


def _held_by(item: OutboxItem, worker: str) -> bool:
    """Whether ``worker`` holds a claim on ``item``."""
    return (
        item.status in ("sending", "ambiguous")
        and item.worker == worker
        and item.lease_until is not None
    )


_R = TypeVar("_R", AuditEntry, DeadLetter, HandlerFailure)


def _newest(records: list[_R], limit: int) -> list[_R]:
    ordered = sorted(records, key=lambda record: (record.at, record.id or 0), reverse=True)
    return ordered[: max(limit, 0)]
