"""The store conformance suite: the same named scenarios, run against any store.

A store's test module opts in by subclassing
[`StoreConformance`][omnichannel.testing.store_conformance.StoreConformance]
(the base has no ``Test`` prefix, so pytest collects only the subclass) and
overriding one fixture, ``store_factory``: it returns a function that builds a
new, unopened store object over one fresh, empty database, the same database
every time it is called (that is how the suite restarts a store):

```python
import pytest

from omnichannel.store import SQLiteStore
from omnichannel.testing.store_conformance import StoreConformance, StoreFactory


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store_factory(self, tmp_path) -> StoreFactory:
        return lambda: SQLiteStore(tmp_path / "helpdesk.db")
```

Every scenario gets the store open (fixture ``store``) or a
[`StoreHarness`][omnichannel.testing.store_conformance.StoreHarness] that can
close and reopen it (fixture ``harness``). Scenarios with two workers get a
second one (fixture ``other_worker``): another store object over the same
database, opened beside the first, when the store says several processes may
work on it (``Store.multi_worker``: PostgreSQL), or else (SQLite, memory) the
same object shared by two worker ids. The scenarios cover events and cursors,
messages, conversations and search, the outbox and the workers' claims on it
(leases expiring on a virtual clock: every time is passed in), the order of one
conversation's items (a claim waits for the items queued before), named leases,
drafts, the audit log, dead letters, handler failures, the typed errors stores
raise, and many tasks calling one store at once. What only one backend has (SQLite's file
lock, PostgreSQL's pool) is tested beside the suite, not in it.

Long because: it is the one list of every behaviour a store must have, one scenario per
behaviour, so that a backend runs them all by subclassing one class.
"""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from omnichannel.actions import Post, PrivateReply, React, Reply, Sent
from omnichannel.errors import OmnichannelError, RecordNotFound, StoreConflict
from omnichannel.events import (
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    event_id,
)
from omnichannel.model import (
    Attachment,
    Conversation,
    Hashtag,
    Link,
    Mention,
    Message,
    Person,
    Ref,
    Visibility,
)
from omnichannel.store import (
    AuditEntry,
    DeadLetter,
    Draft,
    HandlerFailure,
    OutboxItem,
    OutboxStatus,
    Store,
)
from omnichannel.testing._order_scenarios import OutboxOrderScenarios
from omnichannel.testing._state_scenarios import ConversationStateScenarios
from omnichannel.testing._value_scenarios import ValueScenarios

__all__ = [
    "StoreConformance",
    "StoreFactory",
    "StoreHarness",
    "deleted",
    "message",
    "received",
    "ref",
    "reply_item",
    "updated",
]

StoreFactory = Callable[[], Store]
"""Builds a new, unopened store object over the test's one database."""

T0 = datetime(2024, 11, 5, 14, 3, 7, tzinfo=UTC)
NET = "mastodon"
OUR_ACCOUNT = Ref(network=NET, id="109301")
SHOP = Person(ref=OUR_ACCOUNT, handle="shop@social.example", display_name="Example Shop")
ANN = Person(
    ref=Ref(network=NET, id="110245"),
    handle="ann@mastodon.social",
    display_name="Ann 🌿",
    profile_url="https://mastodon.social/@ann",
    followers=312,
)
BOB = Person(ref=Ref(network=NET, id="110777"), handle="bob@fosstodon.org")
CARA = Person(ref=Ref(network=NET, id="111020"), handle="cara@mas.to", verified=True)


def ref(id_: str, network: str = NET) -> Ref:
    """A native id on a network."""
    return Ref(network=network, id=id_)


def message(
    id_: str,
    text: str,
    *,
    thread: str | None = None,
    author: Person = ANN,
    at: datetime = T0,
    edited_at: datetime | None = None,
    visibility: Visibility = "public",
    network: str = NET,
) -> Message:
    """A Mastodon-like status: ``thread`` is the root status id (itself by default)."""
    author_ref = author.ref if author.ref.network == network else ref(author.ref.id, network)
    return Message(
        ref=ref(id_, network),
        conversation=ref(thread or id_, network),
        author=author.model_copy(update={"ref": author_ref}),
        text=text,
        created_at=at,
        edited_at=edited_at,
        visibility=visibility,
        from_us=author.ref == OUR_ACCOUNT,
    )


def received(msg: Message, *, participants: tuple[Person, ...] = ()) -> MessageReceived:
    """The event an adapter emits for a new message."""
    conversation = Conversation(
        ref=msg.conversation,
        kind="direct" if msg.is_private else "thread",
        account=ref(OUR_ACCOUNT.id, msg.network),
        participants=participants,
    )
    return MessageReceived(
        id=event_id("message.received", msg.ref),
        network=msg.network,
        account=OUR_ACCOUNT.id,
        occurred_at=msg.created_at,
        received_at=msg.created_at + timedelta(seconds=1),
        message=msg,
        conversation=conversation,
    )


def updated(msg: Message) -> MessageUpdated:
    """The event for an edit; ``msg`` is the new version."""
    assert msg.edited_at is not None
    return MessageUpdated(
        id=event_id("message.updated", msg.ref, msg.edited_at.isoformat()),
        network=msg.network,
        occurred_at=msg.edited_at,
        message=msg,
    )


def deleted(target: Ref, conversation: Ref | None = None) -> MessageDeleted:
    """The event for a deletion."""
    return MessageDeleted(
        id=event_id("message.deleted", target),
        network=target.network,
        occurred_at=T0 + timedelta(hours=1),
        message=target,
        conversation=conversation,
    )


def reply_item(
    to: Message,
    text: str,
    *,
    at: datetime = T0,
    recipient: str | None = None,
    digest: str | None = None,
) -> OutboxItem:
    """A queued public reply to ``to``."""
    return OutboxItem.for_action(
        Reply(network=to.network, to=to, text=text),
        origin="handler:triage",
        recipient=recipient,
        text_digest=digest,
        now=at,
    )


class StoreHarness:
    """Opens a store and reopens it over the same data, as a restarted process would.

    Attributes:
        store: The store object in use (replaced by `reopen`).
    """

    def __init__(self, factory: StoreFactory) -> None:
        self._factory = factory
        self.store: Store = factory()

    async def reopen(self) -> Store:
        """Close the store, build a new one over the same data, and open it."""
        await self.store.aclose()
        self.store = self._factory()
        await self.store.open()
        return self.store


class StoreConformance(ConversationStateScenarios, ValueScenarios, OutboxOrderScenarios):
    """The scenarios every store passes; subclass it and override ``store_factory``.

    What a store declares decides some scenarios: one that several processes
    may work on (``multi_worker``) gets a second store object for a second
    worker and must reset nothing when it opens; one a process owns shares
    its object between two workers and must end every lease when it reopens.
    """

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Return a function building a store over one fresh database (override this)."""
        raise NotImplementedError("override the store_factory fixture")

    @pytest.fixture
    async def harness(self, store_factory: StoreFactory) -> AsyncIterator[StoreHarness]:
        """An open store that a scenario can reopen."""
        h = StoreHarness(store_factory)
        await h.store.open()
        try:
            yield h
        finally:
            await h.store.aclose()

    @pytest.fixture
    def store(self, harness: StoreHarness) -> Store:
        """The open store under test."""
        return harness.store

    @pytest.fixture
    async def other_worker(
        self, harness: StoreHarness, store_factory: StoreFactory
    ) -> AsyncIterator[Store]:
        """What a second worker uses: its own store object over the same data, if it may."""
        if not harness.store.multi_worker:
            yield harness.store
            return
        other = store_factory()
        await other.open()
        try:
            yield other
        finally:
            await other.aclose()

    # inbound

    async def test_record_batch_returns_only_new_events(self, store: Store) -> None:
        """A batch returns the events not seen before, in order, and drops repeats in itself."""
        a, b, c = (received(message(str(113000 + n), f"hello {n}")) for n in range(3))
        assert await store.record_batch(NET, [a, b], cursor=None) == [a, b]
        assert await store.record_batch(NET, [b, c, c], cursor=None) == [c]
        assert await store.record_batch(NET, [a, b, c], cursor=None) == []
        assert await store.seen(c.id)
        assert not await store.seen("mastodon:message.received:999")

    async def test_cursor_is_saved_only_with_a_batch(self, store: Store) -> None:
        """The cursor moves with each batch that carries one, per network and stream."""
        assert await store.get_cursor(NET) is None
        first = received(message("113001", "hi"))
        await store.record_batch(NET, [first], cursor="113001")
        await store.record_batch(NET, [], cursor=None)
        assert await store.get_cursor(NET) == "113001"
        await store.record_batch(NET, [], cursor="113005")
        await store.record_batch(NET, [], cursor="dm-77", stream="direct")
        await store.record_batch("bluesky", [], cursor="bafy-cursor")
        assert await store.get_cursor(NET) == "113005"
        assert await store.get_cursor(NET, "direct") == "dm-77"
        assert await store.get_cursor("bluesky") == "bafy-cursor"

    async def test_unhandled_events_in_recorded_order_until_handled(self, store: Store) -> None:
        """Unhandled events come back oldest first, per network, until marked handled."""
        first = received(message("113001", "first"))
        second = received(message("113002", "second"))
        sky = received(message("3kq2x", "from the sky", network="bluesky"))
        reaction = ReactionAdded(
            id=event_id("reaction.added", ref("113001"), BOB.ref.id),
            network=NET,
            occurred_at=T0,
            target=ref("113001"),
            by=BOB,
        )
        await store.record_batch(NET, [first, second, reaction], cursor=None)
        await store.record_batch("bluesky", [sky], cursor=None)
        assert await store.unhandled_events() == [first, second, reaction, sky]
        await store.mark_handled(second.id)
        await store.mark_handled("never-seen")
        assert await store.unhandled_events(NET) == [first, reaction]
        assert await store.unhandled_events("bluesky") == [sky]
        assert await store.is_handled(second.id)
        assert not await store.is_handled(first.id)
        assert not await store.is_handled("never-seen")

    async def test_unhandled_events_survive_reopen(self, harness: StoreHarness) -> None:
        """Events recorded but not handled are still there after a restart, handled ones are not."""
        done = received(message("113001", "done"))
        pending = received(message("113002", "still to do"))
        await harness.store.record_batch(NET, [done, pending], cursor="113002")
        await harness.store.mark_handled(done.id)
        store = await harness.reopen()
        assert await store.unhandled_events() == [pending]
        assert await store.seen(done.id)
        assert await store.get_cursor(NET) == "113002"

    async def test_message_and_conversation_are_stored_from_events(self, store: Store) -> None:
        """A received message is stored as is, and its conversation gathers the participants."""
        text = "@shop my order #4471 never arrived 😤 https://example.com/track/4471"
        root = Message(
            ref=ref("113210"),
            conversation=ref("113210"),
            author=ANN,
            text=text,
            entities=(
                Mention(start=0, end=5, handle="shop@social.example", person=OUR_ACCOUNT),
                Hashtag(start=text.index("#"), end=text.index("#") + 5, tag="4471"),
                Link(
                    start=text.index("https"), end=len(text), url="https://example.com/track/4471"
                ),
            ),
            attachments=(
                Attachment(
                    kind="image",
                    url="https://files.mastodon.social/media/abc.png",
                    alt_text="a torn parcel 📦",
                ),
            ),
            created_at=T0,
            raw={"id": "113210", "content": "<p>@shop my order…</p>", "tags": [{"name": "4471"}]},
        )
        answer = message(
            "113211", "Me too!", thread="113210", author=BOB, at=T0 + timedelta(minutes=3)
        )
        await store.record_batch(NET, [received(root, participants=(CARA,))], cursor=None)
        await store.record_batch(NET, [received(answer)], cursor=None)
        assert await store.get_message(root.ref) == root
        conversation = await store.get_conversation(ref("113210"))
        assert conversation is not None
        assert conversation.kind == "thread"
        assert conversation.account == OUR_ACCOUNT
        assert [p.ref.id for p in conversation.participants] == [
            CARA.ref.id,
            ANN.ref.id,
            BOB.ref.id,
        ]
        assert await store.conversation_messages(ref("113210")) == [root, answer]
        assert await store.get_message(ref("404")) is None

    async def test_edit_replaces_message_but_stale_version_does_not(self, store: Store) -> None:
        """An edit replaces the stored text; an older version arriving late is ignored."""
        original = message("113300", "Where is my parcel?")
        edited = original.model_copy(
            update={"text": "Where is my parcel? Found it, thanks!", "edited_at": T0 + timedelta(1)}
        )
        await store.record_batch(NET, [received(original)], cursor=None)
        await store.record_batch(NET, [updated(edited)], cursor=None)
        assert await store.get_message(original.ref) == edited
        await store.save_messages([original])
        assert await store.get_message(original.ref) == edited
        assert await store.search("found") == [edited]

    async def test_deleted_message_is_hidden_and_not_resurrected(self, store: Store) -> None:
        """A deleted message leaves reads and search; a late edit cannot bring it back."""
        keep = message("113400", "I need a refund for order 12", thread="113400")
        gone = message(
            "113401", "refund now or else", thread="113400", at=T0 + timedelta(minutes=1)
        )
        await store.record_batch(NET, [received(keep), received(gone)], cursor=None)
        await store.record_batch(NET, [deleted(gone.ref, gone.conversation)], cursor=None)
        assert await store.get_message(gone.ref) is None
        assert await store.conversation_messages(keep.conversation) == [keep]
        assert await store.search("refund") == [keep]
        late_edit = gone.model_copy(
            update={"text": "refund edited", "edited_at": T0 + timedelta(2)}
        )
        await store.record_batch(NET, [updated(late_edit)], cursor=None)
        await store.save_messages([late_edit])
        assert await store.get_message(gone.ref) is None

    async def test_deletion_before_the_message_is_a_tombstone(self, store: Store) -> None:
        """A deletion that arrives before its message keeps the message from being stored."""
        msg = message("113450", "out of order refund")
        await store.record_batch(NET, [deleted(msg.ref)], cursor=None)
        await store.record_batch(NET, [received(msg)], cursor=None)
        assert await store.get_message(msg.ref) is None
        assert await store.search("refund") == []

    async def test_conversation_messages_are_latest_oldest_first(self, store: Store) -> None:
        """A conversation's history returns the latest ``limit`` messages in time order."""
        msgs = [
            message(f"1135{n:02d}", f"message {n}", thread="113500", at=T0 + timedelta(minutes=n))
            for n in range(5)
        ]
        await store.save_messages(list(reversed(msgs)))
        assert await store.conversation_messages(ref("113500"), limit=3) == msgs[2:]
        assert await store.conversation_messages(ref("113500")) == msgs

    async def test_list_conversations_most_recent_activity_first(self, store: Store) -> None:
        """Conversations are listed by their latest message, newest first, per network."""
        quiet = message("113600", "old thread", at=T0)
        busy = message("113700", "busy thread", at=T0 + timedelta(minutes=1))
        sky = message("3kq2x", "sky thread", network="bluesky", at=T0 + timedelta(minutes=2))
        await store.record_batch(NET, [received(quiet), received(busy)], cursor=None)
        await store.record_batch("bluesky", [received(sky)], cursor=None)
        late = message("113601", "bump", thread="113600", at=T0 + timedelta(minutes=5))
        await store.record_batch(NET, [received(late)], cursor=None)
        listed = await store.list_conversations()
        assert [c.ref.id for c in listed] == ["113600", "3kq2x", "113700"]
        only = await store.list_conversations(network=NET, limit=1)
        assert [c.ref.id for c in only] == ["113600"]

    async def test_saved_messages_create_an_inferred_conversation(self, store: Store) -> None:
        """Messages saved without an event create their conversation: private ones are direct."""
        dm = message("dm-1", "can you DM me the label?", thread="conv-9", visibility="private")
        ours = message("dm-2", "Sure, sent!", thread="conv-9", author=SHOP, visibility="private")
        await store.save_messages([dm, ours])
        conversation = await store.get_conversation(ref("conv-9"))
        assert conversation is not None
        assert conversation.kind == "direct"
        assert [p.ref for p in conversation.participants] == [ANN.ref]
        assert await store.get_message(ours.ref) == ours

    # search

    async def test_search_finds_words_case_and_accent_insensitively(self, store: Store) -> None:
        """Search matches whole words regardless of case and accents."""
        refund = message("113800", "I want a REFUND for the Café order 😤")
        other = message("113801", "refunded already? no, refundable")
        await store.save_messages([refund, other])
        assert await store.search("refund") == [refund]
        assert await store.search("cafe") == [refund]
        assert await store.search("  Refund  café ") == [refund]

    async def test_search_filters_by_network(self, store: Store) -> None:
        """A network filter keeps only that network's messages."""
        masto = message("113900", "refund please")
        sky = message("3kq3a", "refund please", network="bluesky")
        await store.save_messages([masto, sky])
        assert await store.search("refund", network="bluesky") == [sky]
        assert {m.network for m in await store.search("refund")} == {NET, "bluesky"}

    async def test_search_requires_every_word_and_supports_prefix(self, store: Store) -> None:
        """Every term must occur; a trailing ``*`` makes a term a prefix."""
        late = message("114000", "parcel arrived late")
        lost = message("114001", "parcel lost")
        await store.save_messages([late, lost])
        assert await store.search("parcel late") == [late]
        assert await store.search("lo*") == [lost]
        assert await store.search("lo") == []

    @pytest.mark.parametrize(
        ("query", "found"),
        [
            ("don't \"refund", True),
            ("-refund", True),
            ("(refund", True),
            ("^refund", True),
            ("refund, parcel!", True),
            ('"want my"', True),
            ("refund OR", False),
            ("NEAR(refund", False),
            ("refund AND NOT", False),
            ('"', False),
            ("*", False),
            ("text:refund", False),
            ("{text}: refund", False),
            ("refund'; DROP TABLE messages; --", False),
        ],
    )
    async def test_search_treats_punctuation_as_text(
        self, store: Store, query: str, found: bool
    ) -> None:
        """Quotes, operators and column filters in user text never raise: they are plain words."""
        msg = message("114100", "I don't want a refund, I want my parcel")
        await store.save_messages([msg])
        assert await store.search(query) == ([msg] if found else [])
        assert await store.get_message(msg.ref) == msg

    async def test_search_phrase_inside_term(self, store: Store) -> None:
        """A term with inner punctuation matches its words in sequence."""
        wont = message("114200", "I don't know")
        other = message("114201", "don know t")
        await store.save_messages([wont, other])
        assert await store.search("don't") == [wont]
        assert await store.search("🙂 ☕") == []

    async def test_search_ranks_better_matches_first_and_limits(self, store: Store) -> None:
        """A message dense with the term ranks before one that mentions it once; limit caps hits."""
        once = message(
            "114300", "long message about shipping, tracking, labels and one refund question"
        )
        dense = message("114301", "refund refund refund")
        await store.save_messages([once, dense])
        assert await store.search("refund") == [dense, once]
        assert await store.search("refund", limit=1) == [dense]

    # outbox

    async def test_enqueue_is_idempotent_on_key(self, store: Store) -> None:
        """Enqueueing a key again returns the item already stored, unchanged."""
        to = message("114400", "help")
        item = reply_item(to, "On it!")
        assert await store.enqueue(item) == item
        again = item.model_copy(update={"origin": "agent:maria"})
        assert await store.enqueue(again) == item
        assert await store.get_outbox(item.key) == item
        assert await store.list_outbox() == [item]
        assert await store.get_outbox("missing-key") is None

    async def test_claim_due_takes_oldest_due_items_once(self, store: Store) -> None:
        """Due items are claimed oldest first, become sending, and are not claimed twice."""
        items = [
            reply_item(message(f"11450{n}", "help"), f"answer {n}", at=T0 + timedelta(seconds=n))
            for n in range(3)
        ]
        later = reply_item(message("114509", "help"), "later", at=T0).model_copy(
            update={"next_attempt_at": T0 + timedelta(hours=1)}
        )
        for item in [items[2], later, items[0], items[1]]:
            await store.enqueue(item)
        now = T0 + timedelta(minutes=1)
        day = timedelta(days=1)
        first = await store.claim_due(now=now, limit=2, lease=day)
        assert [i.key for i in first] == [items[0].key, items[1].key]
        assert all(i.status == "sending" and i.attempts == 1 for i in first)
        second = await store.claim_due(now=now, lease=day)
        assert [i.key for i in second] == [items[2].key]
        assert await store.claim_due(now=now) == []
        stored = await store.get_outbox(items[0].key)
        assert stored is not None
        assert stored.status == "sending"
        assert [i.key for i in await store.claim_due(now=T0 + timedelta(hours=2))] == [later.key]

    async def test_claim_due_keeps_ambiguous_items_ambiguous(self, store: Store) -> None:
        """An ambiguous item is claimed again as ambiguous, so the worker reconciles it."""
        item = await store.enqueue(reply_item(message("114600", "help"), "On it!"))
        await store.claim_due(now=T0)
        retry_at = T0 + timedelta(seconds=30)
        await store.update_outbox(
            item.key, status="ambiguous", next_attempt_at=retry_at, last_error="ReadTimeout: ..."
        )
        assert await store.claim_due(now=T0 + timedelta(seconds=29)) == []
        (claimed,) = await store.claim_due(now=retry_at)
        assert claimed.status == "ambiguous"
        assert claimed.attempts == 2
        assert claimed.last_error == "ReadTimeout: ..."

    async def test_update_outbox_keeps_what_it_is_not_given(self, store: Store) -> None:
        """Updating the status keeps the other fields, and a sent result round-trips."""
        item = await store.enqueue(reply_item(message("114700", "help"), "On it!"))
        failed_once = await store.update_outbox(
            item.key,
            status="pending",
            next_attempt_at=T0 + timedelta(seconds=5),
            last_error="TransientError: 503",
        )
        assert failed_once.next_attempt_at == T0 + timedelta(seconds=5)
        sent = Sent(
            idempotency_key=item.key,
            ref=ref("114701"),
            conversation=ref("114700"),
            sent_at=T0 + timedelta(seconds=6),
            raw={"id": "114701", "visibility": "public"},
        )
        done = await store.update_outbox(item.key, status="sent", sent=sent)
        assert done.status == "sent"
        assert done.sent == sent
        assert done.last_error == "TransientError: 503"
        assert done.next_attempt_at == T0 + timedelta(seconds=5)
        assert done.action == item.action
        assert await store.get_outbox(item.key) == done
        with pytest.raises(RecordNotFound):
            await store.update_outbox("missing-key", status="failed")

    async def test_update_outbox_adds_its_audit_line_with_the_change(self, store: Store) -> None:
        """An audit line given to update_outbox is stored with an id; an unknown key adds none."""
        item = await store.enqueue(reply_item(message("114750", "help"), "On it!"))
        sent = Sent(idempotency_key=item.key, ref=ref("114751"), sent_at=T0 + timedelta(seconds=2))
        line = AuditEntry(
            at=T0 + timedelta(seconds=2),
            network=NET,
            action_type="reply",
            idempotency_key=item.key,
            actor="handler:triage",
            approved_by="agent:maria",
            result_ref="mastodon:114751",
        )
        done = await store.update_outbox(item.key, status="sent", sent=sent, audit=line)
        with pytest.raises(RecordNotFound):
            await store.update_outbox(
                "missing-key", status="failed", audit=line.model_copy(update={"actor": "x"})
            )
        [entry] = await store.audit_log()
        assert done.status == "sent"
        assert done.sent == sent
        assert entry.id is not None
        assert entry == line.model_copy(update={"id": entry.id})

    async def test_list_outbox_filters_by_status(self, store: Store) -> None:
        """Listing by status returns only items in that status, oldest first."""
        to = message("114800", "help")
        a = await store.enqueue(reply_item(to, "a", at=T0))
        b = await store.enqueue(reply_item(to, "b", at=T0 + timedelta(seconds=1)))
        await store.update_outbox(a.key, status="cancelled")
        assert [i.key for i in await store.list_outbox(status="pending")] == [b.key]
        assert [i.key for i in await store.list_outbox(status="cancelled")] == [a.key]
        assert [i.key for i in await store.list_outbox(limit=1)] == [a.key]

    async def test_sending_items_become_ambiguous_on_reopen(self, harness: StoreHarness) -> None:
        """A single-writer store knows at open that its earlier workers are gone: leases end."""
        if harness.store.multi_worker:
            pytest.skip("several workers share this store: a reopen resets nothing")
        item = await harness.store.enqueue(reply_item(message("114900", "help"), "On it!"))
        waiting = await harness.store.enqueue(
            reply_item(message("114901", "help"), "Later", at=T0 + timedelta(days=1))
        )
        await harness.store.claim_due(now=T0, worker="w1")
        assert await harness.store.acquire_lease("x", holder="w1", ttl=timedelta(days=1), now=T0)
        store = await harness.reopen()
        assert await store.lease_holder("x", now=T0) is None
        recovered = await store.get_outbox(item.key)
        assert recovered is not None
        assert recovered.status == "ambiguous"
        assert recovered.attempts == 1
        assert recovered.lease_until is None
        still = await store.get_outbox(waiting.key)
        assert still is not None
        assert still.status == "pending"

    async def test_reopen_leaves_other_workers_claims_alone(self, harness: StoreHarness) -> None:
        """A store several workers share resets nothing at open: a claim holds until its lease."""
        if not harness.store.multi_worker:
            pytest.skip("one writer at a time: a reopened store recovers at once")
        item = await harness.store.enqueue(reply_item(message("114950", "help"), "On it!"))
        await harness.store.claim_due(now=T0, worker="w1", lease=timedelta(seconds=30))
        assert await harness.store.acquire_lease("x", holder="w1", ttl=timedelta(days=1), now=T0)
        store = await harness.reopen()
        assert await store.lease_holder("x", now=T0) == "w1"
        still = await store.get_outbox(item.key)
        assert still is not None
        assert (still.status, still.worker) == ("sending", "w1")
        assert await store.claim_due(now=T0 + timedelta(seconds=29), worker="w2") == []
        [taken] = await store.claim_due(now=T0 + timedelta(seconds=30), worker="w2")
        assert (taken.status, taken.worker) == ("ambiguous", "w2")

    # leases on outbox items

    async def test_a_claim_is_stamped_with_its_worker_and_lease(self, store: Store) -> None:
        """A claim records who claimed and until when; an outcome ends the claim."""
        item = await store.enqueue(reply_item(message("117000", "help"), "On it!"))
        assert (item.worker, item.lease_until) == (None, None)
        [claimed] = await store.claim_due(now=T0, worker="w1", lease=timedelta(seconds=30))
        assert (claimed.worker, claimed.lease_until) == ("w1", T0 + timedelta(seconds=30))
        assert await store.get_outbox(item.key) == claimed
        done = await store.update_outbox(item.key, status="sent", worker="w1")
        assert (done.status, done.worker, done.lease_until) == ("sent", "w1", None)

    async def test_a_claimed_ambiguous_item_is_not_claimed_again_while_leased(
        self, store: Store
    ) -> None:
        """An ambiguous item stays due, but a claim on it keeps other claims off until it ends."""
        item = await store.enqueue(reply_item(message("117100", "help"), "On it!"))
        await store.claim_due(now=T0, worker="w1")
        await store.update_outbox(item.key, status="ambiguous", next_attempt_at=T0, worker="w1")
        [claimed] = await store.claim_due(now=T0, worker="w1", lease=timedelta(seconds=30))
        assert (claimed.status, claimed.attempts) == ("ambiguous", 2)
        assert await store.claim_due(now=T0 + timedelta(seconds=29), worker="w2") == []
        [again] = await store.claim_due(now=T0 + timedelta(seconds=30), worker="w2")
        assert (again.status, again.worker, again.attempts) == ("ambiguous", "w2", 3)

    async def test_a_dead_workers_item_is_reclaimed_as_ambiguous(
        self, store: Store, other_worker: Store
    ) -> None:
        """Once w1's lease ran out, w2 claims its item as ambiguous; w1's late word is refused."""
        item = await store.enqueue(reply_item(message("117200", "help"), "On it!"))
        await store.claim_due(now=T0, worker="w1", lease=timedelta(seconds=30))
        assert await other_worker.claim_due(now=T0 + timedelta(seconds=29), worker="w2") == []
        [taken] = await other_worker.claim_due(
            now=T0 + timedelta(seconds=30), worker="w2", lease=timedelta(seconds=30)
        )
        assert (taken.status, taken.worker, taken.attempts) == ("ambiguous", "w2", 2)
        line = AuditEntry(
            at=T0, network=NET, action_type="reply", idempotency_key=item.key, actor="x"
        )
        with pytest.raises(StoreConflict):
            await store.update_outbox(item.key, status="sent", audit=line, worker="w1")
        assert await store.get_outbox(item.key) == taken  # nothing changed
        assert await store.audit_log() == []
        assert await store.renew_claims(
            [item.key], worker="w1", now=T0 + timedelta(seconds=31)
        ) == []
        done = await other_worker.update_outbox(item.key, status="sent", audit=line, worker="w2")
        assert (done.status, done.worker) == ("sent", "w2")
        assert len(await store.audit_log()) == 1

    async def test_renewed_claims_hold_until_their_new_expiry(
        self, store: Store, other_worker: Store
    ) -> None:
        """A worker that renews keeps its items; only the keys it still holds are renewed."""
        a = await store.enqueue(reply_item(message("117300", "help"), "a", at=T0))
        b = await store.enqueue(
            reply_item(message("117301", "help"), "b", at=T0 + timedelta(seconds=1))
        )
        now = T0 + timedelta(seconds=1)
        await store.claim_due(now=now, worker="w1", lease=timedelta(seconds=30))
        await store.update_outbox(b.key, status="sent", worker="w1")
        renewed = await store.renew_claims(
            [a.key, b.key, "missing-key"], worker="w1", now=now + timedelta(seconds=20),
            lease=timedelta(seconds=30),
        )
        assert renewed == [a.key]
        assert await other_worker.renew_claims([a.key], worker="w2", now=now) == []
        assert await other_worker.claim_due(now=now + timedelta(seconds=49), worker="w2") == []
        [taken] = await other_worker.claim_due(now=now + timedelta(seconds=50), worker="w2")
        assert taken.key == a.key

    async def test_two_workers_claiming_together_never_share_an_item(
        self, store: Store, other_worker: Store
    ) -> None:
        """Workers claiming at the same moment, leases expiring between rounds: one holder each."""
        keys = [
            (await store.enqueue(reply_item(
                message(f"1174{n:02}", "help"), f"n{n}", at=T0 + timedelta(seconds=n)
            ))).key
            for n in range(12)
        ]
        lease = timedelta(seconds=10)
        for round_ in range(3):  # nobody finishes: every round reclaims what the last held
            now = T0 + timedelta(minutes=1) + round_ * lease
            got: dict[str, list[str]] = {"w1": [], "w2": []}

            async def claim(
                worker: str, on: Store, now: datetime = now, got: dict[str, list[str]] = got
            ) -> None:
                while batch := await on.claim_due(now=now, worker=worker, limit=2, lease=lease):
                    got[worker].extend(item.key for item in batch)

            async with anyio.create_task_group() as tg:
                for _ in range(2):
                    tg.start_soon(claim, "w1", store)
                    tg.start_soon(claim, "w2", other_worker)
            assert sorted(got["w1"] + got["w2"]) == sorted(keys)
            for worker, taken in got.items():
                for key in taken:
                    stored = await store.get_outbox(key)
                    assert stored is not None
                    assert stored.worker == worker
                    assert stored.attempts == round_ + 1
                    assert stored.status == ("sending" if round_ == 0 else "ambiguous")

    # named leases

    async def test_a_named_lease_has_one_holder_until_it_runs_out(
        self, store: Store, other_worker: Store
    ) -> None:
        """Acquire, renew, release: a second holder gets the lease only once it is free."""
        name, ttl = "listener:mastodon:109301", timedelta(seconds=30)
        assert await store.lease_holder(name, now=T0) is None
        assert await store.acquire_lease(name, holder="w1", ttl=ttl, now=T0)
        assert await store.acquire_lease(name, holder="w1", ttl=ttl, now=T0)  # extends
        assert not await other_worker.acquire_lease(
            name, holder="w2", ttl=ttl, now=T0 + timedelta(seconds=29)
        )
        assert await other_worker.lease_holder(name, now=T0 + timedelta(seconds=29)) == "w1"
        assert await store.renew_lease(name, holder="w1", ttl=ttl, now=T0 + timedelta(seconds=20))
        assert not await other_worker.renew_lease(name, holder="w2", ttl=ttl, now=T0)
        later = T0 + timedelta(seconds=49)
        assert not await other_worker.acquire_lease(name, holder="w2", ttl=ttl, now=later)
        expired = T0 + timedelta(seconds=50)
        assert await other_worker.lease_holder(name, now=expired) is None
        assert not await store.renew_lease(name, holder="w1", ttl=ttl, now=expired)
        assert await other_worker.acquire_lease(name, holder="w2", ttl=ttl, now=expired)
        assert await store.lease_holder(name, now=expired) == "w2"
        assert not await store.release_lease(name, holder="w1")
        assert await store.lease_holder(name, now=expired) == "w2"
        assert await other_worker.release_lease(name, holder="w2")
        assert await store.lease_holder(name, now=expired) is None
        assert await store.acquire_lease(name, holder="w1", ttl=ttl, now=expired)
        assert await store.lease_holder("another", now=expired) is None

    async def test_concurrent_acquires_of_one_lease_have_one_winner(
        self, store: Store, other_worker: Store
    ) -> None:
        """Many holders racing for one lease on two store objects: one gets it, each time."""
        ttl = timedelta(seconds=10)
        for round_ in range(3):
            now = T0 + round_ * ttl  # the last round's lease has just run out
            winners: list[str] = []

            async def race(
                holder: str, on: Store, now: datetime = now, winners: list[str] = winners
            ) -> None:
                if await on.acquire_lease("guard", holder=holder, ttl=ttl, now=now):
                    winners.append(holder)

            async with anyio.create_task_group() as tg:
                for n in range(6):
                    tg.start_soon(race, f"r{round_}-h{n}", store if n % 2 else other_worker)
            assert len(winners) == 1
            assert await store.lease_holder("guard", now=now) == winners[0]

    async def test_recent_recipients_within_window(self, store: Store) -> None:
        """Only live items with the same digest on the same network since the window count."""
        digest = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        to = message("115000", "help")
        now = T0 + timedelta(hours=3)
        rows: list[tuple[str, str, datetime, OutboxStatus, str]] = [
            ("alice", digest, now - timedelta(hours=2), "sent", NET),
            ("bob", digest, now - timedelta(minutes=10), "sent", NET),
            ("bob", digest, now - timedelta(minutes=5), "pending", NET),
            ("carol", digest, now - timedelta(minutes=9), "failed", NET),
            ("dave", "other-digest", now - timedelta(minutes=8), "sent", NET),
            ("erin", digest, now - timedelta(minutes=7), "sent", "bluesky"),
            ("frank", digest, now - timedelta(minutes=6), "pending", NET),
        ]
        for recipient, dig, at, status, network in rows:
            target = to if network == NET else message("3kq", "help", network=network)
            item = reply_item(target, "Sorry!", at=at, recipient=recipient, digest=dig)
            await store.enqueue(item)
            if status != "pending":
                await store.update_outbox(item.key, status=status)
        found = await store.recent_recipients(
            network=NET, text_digest=digest, since=now - timedelta(hours=1)
        )
        assert found == ["bob", "frank"]

    async def test_naive_times_are_refused(self, store: Store) -> None:
        """A naive datetime is refused rather than guessed."""
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.claim_due(now=datetime(2024, 1, 1))

    # drafts

    async def test_draft_lifecycle(self, store: Store) -> None:
        """A draft waits as pending, is approved once with an edited action, then is final."""
        to = message("115100", "I want a refund")
        draft = Draft(
            action=PrivateReply(network=NET, to=to, text="Sorry! DM us yur order number"),
            event_id=event_id("message.received", to.ref),
            created_at=T0,
            note="angry customer: needs a human",
            origin="handler:triage",
        )
        other = Draft(
            action=Post(network=NET, text="We are back online"), created_at=T0 + timedelta(1)
        )
        await store.add_draft(draft)
        await store.add_draft(other)
        assert await store.get_draft(draft.id) == draft
        assert await store.list_drafts() == [draft, other]
        fixed = PrivateReply(network=NET, to=to, text="Sorry! DM us your order number")
        approved = await store.decide_draft(
            draft.id, status="approved", by="agent:maria", action=fixed
        )
        assert approved.status == "approved"
        assert approved.decided_by == "agent:maria"
        assert approved.decided_at is not None
        assert approved.action == fixed
        assert approved.origin == "handler:triage"
        assert await store.get_draft(draft.id) == approved
        assert await store.list_drafts() == [other]
        assert await store.list_drafts(status="approved") == [approved]
        assert len(await store.list_drafts(status=None)) == 2
        assert (await store.list_drafts(status=None))[1].origin is None
        with pytest.raises(StoreConflict, match="already approved"):
            await store.decide_draft(draft.id, status="rejected", by="agent:tom")
        rejected = await store.decide_draft(
            other.id, status="rejected", by="agent:tom", reason="no"
        )
        assert rejected.reason == "no"
        with pytest.raises(RecordNotFound):
            await store.decide_draft("0" * 32, status="approved", by="agent:maria")

    async def test_draft_refuses_bad_decisions_and_duplicates(self, store: Store) -> None:
        """A duplicate id, a "pending" decision and a non-reply action are refused."""
        to = message("115200", "hello")
        draft = Draft(action=Reply(network=NET, to=to, text="Hi!"))
        await store.add_draft(draft)
        with pytest.raises(StoreConflict, match="exists"):
            await store.add_draft(draft)
        with pytest.raises(StoreConflict, match="approve or reject"):
            await store.decide_draft(draft.id, status="pending", by="agent:maria")
        with pytest.raises(StoreConflict, match="reply"):
            await store.decide_draft(
                draft.id,
                status="approved",
                by="agent:maria",
                action=React(network=NET, target=to.ref),
            )
        assert await store.get_draft(draft.id) == draft

    async def test_missing_records_and_conflicts_are_typed_errors(self, store: Store) -> None:
        """A missing key is `RecordNotFound` and a refused change `StoreConflict`, with data."""
        with pytest.raises(RecordNotFound) as missing_item:
            await store.update_outbox("no-such-key", status="sent")
        assert (missing_item.value.record, missing_item.value.key) == ("outbox item", "no-such-key")
        assert str(missing_item.value) == "no outbox item with key 'no-such-key'"
        with pytest.raises(RecordNotFound) as missing_draft:
            await store.decide_draft("f" * 32, status="approved", by="agent:maria")
        assert (missing_draft.value.record, missing_draft.value.key) == ("draft", "f" * 32)
        draft = Draft(action=Post(network=NET, text="Back online"), created_at=T0)
        await store.add_draft(draft)
        with pytest.raises(StoreConflict) as duplicate:
            await store.add_draft(draft)
        assert (duplicate.value.record, duplicate.value.key) == ("draft", draft.id)
        await store.decide_draft(draft.id, status="rejected", by="agent:tom")
        with pytest.raises(StoreConflict) as decided:
            await store.decide_draft(draft.id, status="approved", by="agent:maria")
        assert decided.value.key == draft.id
        assert isinstance(decided.value, OmnichannelError)
        assert await store.list_outbox() == []

    # audit, dead letters, failures

    async def test_audit_log_is_newest_first_with_ids(self, store: Store) -> None:
        """Audit entries get ids and come back newest first."""
        for n in range(3):
            await store.add_audit(
                AuditEntry(
                    at=T0 + timedelta(minutes=n),
                    network=NET,
                    action_type="reply",
                    idempotency_key=f"key-{n:04d}-abcdef",
                    actor="handler:triage",
                    approved_by="agent:maria" if n == 1 else None,
                    result_ref=f"mastodon:1152{n:02d}",
                )
            )
        log = await store.audit_log()
        keys = [e.idempotency_key for e in log]
        assert keys == ["key-0002-abcdef", "key-0001-abcdef", "key-0000-abcdef"]
        assert len({e.id for e in log}) == 3
        assert None not in {e.id for e in log}
        assert log[1].approved_by == "agent:maria"
        assert len(await store.audit_log(limit=2)) == 2

    async def test_dead_letters_keep_raw_bytes_exactly(self, store: Store) -> None:
        """A dead letter's body comes back byte for byte, and credential headers are gone."""
        body = b'{"object":"page","entry":[\xff\xfe\x00 broken\r\n'
        await store.add_dead_letter(
            DeadLetter(
                at=T0,
                network="facebook",
                reason="PayloadError: bad payload at entry.0: not an object",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": "sha256=6d5a2f",
                    "Authorization": "Bearer secret-token",
                    "Cookie": "session=abc",
                },
            )
        )
        await store.add_dead_letter(
            DeadLetter(at=T0 + timedelta(1), network="x", reason="r", body=b"")
        )
        newest, letter = await store.dead_letters()
        assert newest.body == b""
        assert letter.body == body
        assert letter.headers == {
            "content-type": "application/json",
            "x-hub-signature-256": "sha256=6d5a2f",
        }
        assert letter.id is not None

    async def test_failures_are_recorded_newest_first(self, store: Store) -> None:
        """Handler failures keep the error and traceback, newest first."""
        orders: dict[str, int] = {}
        try:
            orders["order"] += 1
        except KeyError as exc:
            first = HandlerFailure.from_exception(exc, event_id="e1", handler="triage", at=T0)
        second = HandlerFailure(
            at=T0 + timedelta(seconds=1),
            event_id="e2",
            handler="notify",
            error="X: y",
            traceback="tb",
        )
        await store.add_failure(first)
        await store.add_failure(second)
        latest, earliest = await store.failures()
        assert latest.event_id == "e2"
        assert earliest.error == "KeyError: 'order'"
        assert "Traceback" in earliest.traceback
        assert earliest.traceback == first.traceback
        assert [f.event_id for f in await store.failures(limit=1)] == ["e2"]

    # lifecycle and concurrency

    async def test_store_must_be_open(self, harness: StoreHarness) -> None:
        """Calls on a closed store fail instead of silently losing data."""
        await harness.store.aclose()
        with pytest.raises(RuntimeError, match="not open"):
            await harness.store.seen("x")
        await harness.store.open()
        assert not await harness.store.seen("x")

    async def test_many_tasks_record_concurrently(self, store: Store) -> None:
        """Concurrent batches from many tasks are all stored, each event once."""
        batches = [
            [received(message(f"116{t:02d}{n:02d}", f"task {t} says {n}")) for n in range(5)]
            for t in range(10)
        ]
        new: list[int] = []

        async def record(batch: list[MessageReceived]) -> None:
            new.append(len(await store.record_batch(NET, [*batch, batch[0]], cursor=None)))

        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(record, batch)
                tg.start_soon(record, batch)
        assert sorted(new) == [0] * 10 + [5] * 10
        assert len(await store.unhandled_events()) == 50

    async def test_concurrent_batches_of_the_same_events_return_each_once(
        self, store: Store
    ) -> None:
        """Tasks recording overlapping batches of the same events get each id back once."""
        events = [received(message(f"1166{n:02d}", f"same words {n}")) for n in range(12)]
        batches = [
            events[t % 4 :] + events[: t % 4] if t % 2 else list(reversed(events)) for t in range(8)
        ]
        returned: list[str] = []

        async def record(batch: list[MessageReceived]) -> None:
            returned.extend(e.id for e in await store.record_batch(NET, batch, cursor=None))

        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(record, batch)
        assert sorted(returned) == sorted(e.id for e in events)
        assert len(await store.unhandled_events()) == len(events)

    async def test_cancelled_call_leaves_store_usable(self, store: Store) -> None:
        """A call cancelled before it runs changes nothing and the store keeps working."""
        event = received(message("116500", "hello"))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.record_batch(NET, [event], cursor="c")
        assert not await store.seen(event.id)
        assert await store.record_batch(NET, [event], cursor="c") == [event]

    async def test_search_and_threads_follow_edits_and_deletions(
        self,
        store: Store,
    ) -> None:
        """An edit replaces the words found; a deletion removes the message from both."""
        first = message("120001", "my parcel is late", thread="120001")
        second = message(
            "120002", "parcel tracking please", thread="120001", at=T0 + timedelta(minutes=1)
        )
        await store.record_batch(NET, [received(first), received(second)], cursor=None)
        edit = first.model_copy(
            update={"text": "my invoice is wrong", "edited_at": T0 + timedelta(minutes=5)}
        )
        await store.record_batch(NET, [updated(edit)], cursor=None)

        assert [m.ref.id for m in await store.search("parcel")] == ["120002"]
        assert [m.ref.id for m in await store.search("invoi*")] == ["120001"]
        assert [m.ref.id for m in await store.conversation_messages(ref("120001"))] == [
            "120001",
            "120002",
        ]

        await store.record_batch(NET, [deleted(ref("120002"))], cursor=None)

        assert await store.search("parcel") == []
        assert await store.search("track*") == []
        assert [m.text for m in await store.conversation_messages(ref("120001"))] == [
            "my invoice is wrong"
        ]
