"""``SQLiteStore(path, read_only=True)``: reads next to a live writer, never changes the file."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnichannel.actions import Reply
from omnichannel.errors import ConfigurationError
from omnichannel.events import MessageReceived, event_id
from omnichannel.hub import Hub
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import (
    AuditEntry,
    DeadLetter,
    Draft,
    HandlerFailure,
    OutboxItem,
    SQLiteStore,
)
from omnichannel.store._sqlite_schema import MIGRATIONS

T0 = datetime(2024, 11, 5, 14, 3, 7, tzinfo=UTC)
ANN = Person(ref=Ref(network="mastodon", id="110245"), handle="ann@mastodon.social")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The read-only store runs on both anyio backends."""
    return str(request.param)


def status(id_: str, text: str) -> Message:
    """A Mastodon status by Ann, the root of its own thread."""
    ref = Ref(network="mastodon", id=id_)
    return Message(ref=ref, conversation=ref, author=ANN, text=text, created_at=T0)


def received(msg: Message) -> MessageReceived:
    """The event an adapter emits for ``msg``."""
    return MessageReceived(
        id=event_id("message.received", msg.ref), network=msg.network,
        occurred_at=msg.created_at, message=msg,
        conversation=Conversation(ref=msg.conversation, kind="thread"),
    )


def digest(path: Path) -> str:
    """The SHA-256 of the database file, after checking its write-ahead log holds nothing.

    A reader of a WAL database may create the empty ``-wal`` and ``-shm``
    companions SQLite readers share; what it must never do is write data.
    """
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "something was written to the WAL"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    """The schema version stored in the file."""
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_reads_what_a_running_writer_commits(tmp_path: Path) -> None:
    """While a writer keeps the file open, the reader sees its commits, old and new."""
    path = tmp_path / "bot.db"
    first, second = status("1", "where is my refund?"), status("2", "parcel lost")
    async with SQLiteStore(path) as bot:
        await bot.record_batch("mastodon", [received(first)], cursor="1")
        async with SQLiteStore(path, read_only=True) as inbox:
            assert await inbox.search("refund") == [first]
            assert await inbox.get_cursor("mastodon") == "1"
            await bot.record_batch("mastodon", [received(second)], cursor="2")
            assert await inbox.get_message(second.ref) == second
            assert [c.ref.id for c in await inbox.list_conversations()] == ["2", "1"]
        await bot.mark_handled(received(first).id)  # the writer is not blocked by the reader
        assert [e.id for e in await bot.unhandled_events()] == [received(second).id]


async def test_a_send_under_way_is_left_as_it_is(tmp_path: Path) -> None:
    """No crash recovery: an item left ``sending`` stays so, where a writer would reconcile it."""
    path = tmp_path / "bot.db"
    action = Reply(network="mastodon", to=status("3", "help"), text="On it!")
    item = OutboxItem.for_action(action, origin="handler:triage", now=T0)
    async with SQLiteStore(path) as bot:
        await bot.enqueue(item)
        [claimed] = await bot.claim_due(now=T0)
        assert claimed.status == "sending"
        async with SQLiteStore(path, read_only=True) as inbox:
            seen = await inbox.get_outbox(item.key)
    assert seen is not None
    assert seen.status == "sending"
    async with SQLiteStore(path) as restarted:  # the contrast: a writer recovers it
        recovered = await restarted.get_outbox(item.key)
    assert recovered is not None
    assert recovered.status == "ambiguous"


async def test_opening_and_reading_changes_no_byte(tmp_path: Path) -> None:
    """Opening, reading and closing a closed bot's database leaves the file as it was."""
    path = tmp_path / "bot.db"
    async with SQLiteStore(path) as bot:
        await bot.record_batch("mastodon", [received(status("4", "refund please"))], cursor="4")
    before = digest(path)
    async with SQLiteStore(path, read_only=True) as inbox:
        assert len(await inbox.search("refund")) == 1
        assert await inbox.list_outbox() == []
    assert digest(path) == before


async def test_every_write_is_refused_naming_the_file_and_the_call(tmp_path: Path) -> None:
    """Each method that writes raises RuntimeError; the database is unchanged."""
    path = tmp_path / "bot.db"
    msg = status("5", "hello")
    action = Reply(network="mastodon", to=msg, text="Hi!")
    item = OutboxItem.for_action(action, origin="agent:anna", now=T0)
    async with SQLiteStore(path) as bot:
        await bot.enqueue(item)
        await bot.add_draft(Draft(id="d1", action=action))
    before = digest(path)
    async with SQLiteStore(path, read_only=True) as inbox:
        writes: dict[str, Callable[[], Awaitable[object]]] = {
            "record_batch": lambda: inbox.record_batch("mastodon", [received(msg)], cursor="9"),
            "mark_handled": lambda: inbox.mark_handled("x"),
            "save_messages": lambda: inbox.save_messages([msg]),
            "enqueue": lambda: inbox.enqueue(item.model_copy(update={"key": "k2"})),
            "claim_due": lambda: inbox.claim_due(now=T0),
            "update_outbox": lambda: inbox.update_outbox(item.key, status="cancelled"),
            "add_draft": lambda: inbox.add_draft(Draft(id="d2", action=action)),
            "decide_draft": lambda: inbox.decide_draft("d1", status="rejected", by="agent:anna"),
            "add_audit": lambda: inbox.add_audit(AuditEntry(
                network="mastodon", action_type="reply", idempotency_key="k", actor="a")),
            "add_dead_letter": lambda: inbox.add_dead_letter(
                DeadLetter(network="mastodon", reason="bad", body=b"{")),
            "add_failure": lambda: inbox.add_failure(
                HandlerFailure(event_id="e", handler="h", error="boom", traceback="")),
        }
        for name, write in writes.items():
            with pytest.raises(RuntimeError, match=rf"bot\.db.*read-only: {name}\(\)"):
                await write()
        assert (await inbox.get_outbox(item.key)) == item
        draft = await inbox.get_draft("d1")
        assert draft is not None
        assert draft.status == "pending"
    assert digest(path) == before


async def test_an_older_schema_is_refused_and_not_migrated(tmp_path: Path) -> None:
    """A file at an older schema version raises ConfigurationError naming it, and stays old."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(ConfigurationError, match=r"old\.db.*schema version 1, older"):
        await SQLiteStore(path, read_only=True).open()
    assert user_version(path) == 1


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer schema raises ConfigurationError naming it."""
    path = tmp_path / "future.db"
    async with SQLiteStore(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = SQLiteStore(path, read_only=True)
    with pytest.raises(ConfigurationError, match=r"future\.db.*newer"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.seen("x")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot open"),  # no file: nothing is created
        (b"", "holds no omnichannel store"),
        (b"this is not a database, just some text" * 40, "not a SQLite database"),
    ],
    ids=["missing", "empty", "not-sqlite"],
)
async def test_a_file_that_is_not_a_store_is_refused(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    """A missing, empty or foreign file raises ConfigurationError naming it; none is created."""
    path = tmp_path / "inbox.db"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        await SQLiteStore(path, read_only=True).open()
    assert "inbox.db" in str(info.value)
    assert says in str(info.value)
    assert path.exists() == (content is not None)
    if content is not None:
        assert path.read_bytes() == content


def test_a_private_memory_database_cannot_be_read_only() -> None:
    """``:memory:`` with read_only is refused at once: there would be nothing to read."""
    with pytest.raises(ConfigurationError, match="memory"):
        SQLiteStore(":memory:", read_only=True)


async def test_a_hub_refuses_a_read_only_store(tmp_path: Path) -> None:
    """Entering a hub over a read-only store raises ConfigurationError before opening it."""
    path = tmp_path / "bot.db"
    async with SQLiteStore(path):
        pass
    store = SQLiteStore(path, read_only=True)
    hub = Hub(store=store)
    with pytest.raises(ConfigurationError, match="read_only"):
        await hub.__aenter__()
    assert repr(store).endswith("read-only closed>")
