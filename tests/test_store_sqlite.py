"""What only SQLiteStore does: the file, WAL, schema migrations, the search index."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import threading
import zlib
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from omnichannel.actions import Reply
from omnichannel.errors import ConfigurationError, RecordNotFound, StoreConflict
from omnichannel.events import MessageDeleted, MessageReceived, event_id
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import AuditEntry, Draft, OutboxItem, SQLiteStore
from omnichannel.store._sqlite_schema import MIGRATIONS

HOW_TO = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "store.md"
T0 = datetime(2024, 11, 5, 14, 3, 7, tzinfo=UTC)
ANN = Person(ref=Ref(network="mastodon", id="110245"), handle="ann@mastodon.social")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The worker-thread plumbing runs on both anyio backends."""
    return str(request.param)


def status(id_: str, text: str, *, at: datetime = T0) -> Message:
    """A Mastodon status by Ann, the root of its own thread."""
    return Message(
        ref=Ref(network="mastodon", id=id_),
        conversation=Ref(network="mastodon", id=id_),
        author=ANN,
        text=text,
        created_at=at,
    )


def received(msg: Message) -> MessageReceived:
    """The event an adapter emits for ``msg``."""
    return MessageReceived(
        id=event_id("message.received", msg.ref),
        network=msg.network,
        occurred_at=msg.created_at,
        message=msg,
        conversation=Conversation(ref=msg.conversation, kind="thread"),
    )


def pragma(path: Path, name: str) -> object:
    """Read a pragma through a separate connection, as another process would."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_new_file_is_wal_at_current_version(tmp_path: Path) -> None:
    """A new database file uses write-ahead logging and the latest schema version."""
    path = tmp_path / "helpdesk.db"
    async with SQLiteStore(path):
        assert path.exists()
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == len(MIGRATIONS)


async def test_version_1_file_is_migrated_forward(tmp_path: Path) -> None:
    """A file created at schema version 1 is migrated on open and its messages become searchable."""
    path = tmp_path / "old.db"
    old = status("113001", "Still waiting for my refund")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO messages (network, id, conversation, author, text, created_at,"
            " version_at, json, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                "mastodon",
                "113001",
                "113001",
                ANN.ref.id,
                old.text,
                T0.isoformat(timespec="microseconds"),
                T0.isoformat(timespec="microseconds"),
                old.model_dump_json(),
            ),
        )
    async with SQLiteStore(path) as store:
        assert await store.search("refund") == [old]
        assert await store.get_message(old.ref) == old
    assert pragma(path, "user_version") == len(MIGRATIONS)


async def test_version_2_file_gains_draft_origins(tmp_path: Path) -> None:
    """A version 2 file keeps its drafts (origin unknown) and stores origins after migrating."""
    path = tmp_path / "v2.db"
    old = Draft(action=Reply(network="mastodon", to=status("113010", "help"), text="Hi!"), note="n")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(MIGRATIONS[0])
        conn.executescript(MIGRATIONS[1])
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO drafts (id, status, event_id, action, created_at, decided_at,"
            " decided_by, reason, note) VALUES (?, 'pending', NULL, ?, ?, NULL, NULL, NULL, ?)",
            (
                old.id,
                old.action.model_dump_json(),
                old.created_at.isoformat(timespec="microseconds"),
                old.note,
            ),
        )
    new = Draft(
        action=Reply(network="mastodon", to=status("113011", "help"), text="Hello!"),
        origin="handler:triage",
    )
    async with SQLiteStore(path) as store:
        assert await store.get_draft(old.id) == old
        await store.add_draft(new)
        assert await store.get_draft(new.id) == new
    assert pragma(path, "user_version") == len(MIGRATIONS)


async def test_version_4_file_gains_leases(tmp_path: Path) -> None:
    """A version 4 file migrates to leases: its items keep their fields, unclaimed.

    An item a version 4 worker left ``sending`` is ``ambiguous`` after the open (SQLite
    admits one writer, so its worker is gone), free to claim and then leased.
    """
    path = tmp_path / "v4.db"
    pending = OutboxItem.for_action(
        Reply(network="mastodon", to=status("113050", "help"), text="On it!"),
        origin="handler:triage", now=T0,
    )
    sending = OutboxItem.for_action(
        Reply(network="mastodon", to=status("113051", "help"), text="Looking."),
        origin="handler:triage", now=T0 + timedelta(seconds=1),
    )
    with closing(sqlite3.connect(path)) as conn, conn:
        for script in MIGRATIONS[:4]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 4")
        for item, state in ((pending, "pending"), (sending, "sending")):
            conn.execute(
                "INSERT INTO outbox (key, network, status, attempts, next_attempt_at,"
                " created_at, updated_at, origin, action) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (item.key, item.network, state, *(t.isoformat(timespec="microseconds")
                 for t in (item.next_attempt_at, item.created_at, item.updated_at)),
                 item.origin, item.action.model_dump_json()),
            )
    async with SQLiteStore(path) as store:
        assert await store.get_outbox(pending.key) == pending.model_copy(update={"attempts": 1})
        recovered = await store.get_outbox(sending.key)
        assert recovered is not None
        assert (recovered.status, recovered.worker, recovered.lease_until) == (
            "ambiguous", None, None
        )
        claimed = await store.claim_due(now=T0 + timedelta(minutes=1), worker="w1")
        assert [(i.key, i.status, i.worker) for i in claimed] == [
            (pending.key, "sending", "w1"), (sending.key, "ambiguous", "w1")
        ]
        assert await store.acquire_lease("x", holder="w1", ttl=timedelta(seconds=5), now=T0)
    assert pragma(path, "user_version") == len(MIGRATIONS)



async def test_version_7_file_orders_the_items_it_had_queued(tmp_path: Path) -> None:
    """A version 7 file's unfinished items keep their queue order, per conversation, after
    migrating: the reply a dead worker left ``sending`` goes out before the next one."""
    path = tmp_path / "v7.db"
    to = status("113060", "help")
    first, second = (
        OutboxItem.for_action(Reply(network="mastodon", to=to, text=text),
                              origin="handler:triage", now=T0)
        for text in ("first", "second")
    )
    elsewhere = OutboxItem.for_action(
        Reply(network="mastodon", to=status("113061", "help"), text="elsewhere"),
        origin="handler:triage", now=T0,
    )
    with closing(sqlite3.connect(path)) as conn, conn:
        for script in MIGRATIONS[:7]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 7")
        for item, state in ((first, "sending"), (second, "pending"), (elsewhere, "pending")):
            conn.execute(
                "INSERT INTO outbox (key, network, status, attempts, next_attempt_at,"
                " created_at, updated_at, origin, action) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (item.key, item.network, state, *(t.isoformat(timespec="microseconds")
                 for t in (item.next_attempt_at, item.created_at, item.updated_at)),
                 item.origin, zlib.compress(item.action.model_dump_json().encode())),
            )
    async with SQLiteStore(path) as store:
        now = T0 + timedelta(minutes=1)
        claimed = await store.claim_due(now=now, worker="w1")
        assert sorted(i.key for i in claimed) == sorted([first.key, elsewhere.key])
        await store.update_outbox(first.key, status="sent", worker="w1")
        assert [i.key for i in await store.claim_due(now=now, worker="w1")] == [second.key]
    assert pragma(path, "user_version") == len(MIGRATIONS)


RAW = {"id": "113030", "content": "<p>@shop où est ma commande ?</p>", "tags": [{"name": "x"}]}


def raw_status(id_: str = "113030") -> Message:
    """A status carrying its native payload, as adapters give it."""
    return status(id_, "où est ma commande ?").model_copy(update={"raw": {**RAW, "id": id_}})


def payload_counts(path: Path) -> tuple[int, int]:
    """How many payloads are stored, and how many row JSON texts still embed one."""
    with closing(sqlite3.connect(path)) as conn:
        (payloads,) = conn.execute("SELECT count(*) FROM payloads").fetchone()
        texts = conn.execute(
            "SELECT json FROM events UNION ALL SELECT json FROM messages"
            " UNION ALL SELECT action FROM outbox"
        ).fetchall()
    unpacked = [zlib.decompress(t) if isinstance(t, bytes) else str(t).encode() for (t,) in texts]
    return int(payloads), sum(b'"raw":{' in text for text in unpacked)


async def test_native_payload_is_stored_once_and_read_back_whole(tmp_path: Path) -> None:
    """The event, the message and the reply that carry one payload store it once between them."""
    path = tmp_path / "helpdesk.db"
    message = raw_status()
    event = received(message)
    item = OutboxItem.for_action(
        Reply(network="mastodon", to=message, text="On it!"), origin="handler:triage", now=T0
    )
    async with SQLiteStore(path) as store:
        assert await store.record_batch("mastodon", [event], cursor=None) == [event]
        assert await store.enqueue(item) == item
        assert await store.unhandled_events() == [event]
        assert await store.get_message(message.ref) == message
        assert (await store.get_message(message.ref)).raw == message.raw  # type: ignore[union-attr]
        assert await store.search("commande") == [message]
        assert await store.conversation_messages(message.conversation) == [message]
        assert await store.get_outbox(item.key) == item
        assert (await store.list_outbox())[0].action == item.action
    assert payload_counts(path) == (1, 0)


async def test_version_3_file_moves_its_payloads_out_without_loss(tmp_path: Path) -> None:
    """A version 3 file (payload inside each row's JSON) migrates; every row reads back the same."""
    path = tmp_path / "v3.db"
    message = raw_status("113040")
    event = received(message)
    plain = received(status("113041", "no payload here"))
    item = OutboxItem.for_action(
        Reply(network="mastodon", to=message, text="On it!"), origin="handler:triage", now=T0
    )
    async with SQLiteStore(path) as store:  # today's code writes the rows ...
        await store.record_batch("mastodon", [event, plain], cursor="c1")
        await store.enqueue(item)
    with closing(sqlite3.connect(path)) as conn, conn:  # ... rewritten as version 3 had them
        conn.execute("UPDATE events SET json = ?, raw = NULL WHERE id = ?",
                     (event.model_dump_json(), event.id))
        conn.execute("UPDATE messages SET json = ?, raw = NULL WHERE id = ?",
                     (message.model_dump_json(), message.ref.id))
        conn.execute("UPDATE outbox SET action = ?, raw = NULL", (item.action.model_dump_json(),))
        conn.executescript(
            "DELETE FROM payloads; DROP TABLE payloads; ALTER TABLE events DROP COLUMN raw;"
            " ALTER TABLE messages DROP COLUMN raw; ALTER TABLE outbox DROP COLUMN raw;"
            # and without the tables of later versions
            " DROP TABLE conversation_states; DROP TABLE state_changes;"
            " ALTER TABLE outbox DROP COLUMN worker; ALTER TABLE outbox DROP COLUMN lease_until;"
            " DROP TABLE leases; DROP TABLE named_values;"
            " DROP INDEX outbox_queued; DROP INDEX outbox_line;"
            " ALTER TABLE outbox DROP COLUMN queued; ALTER TABLE outbox DROP COLUMN order_key;"
        )
        conn.execute("PRAGMA user_version = 3")
    async with SQLiteStore(path) as store:
        assert await store.unhandled_events() == [event, plain]
        assert await store.get_message(message.ref) == message
        assert await store.get_outbox(item.key) == item
        assert await store.get_cursor("mastodon") == "c1"
    assert pragma(path, "user_version") == len(MIGRATIONS)
    assert payload_counts(path) == (1, 0)


async def test_failed_audit_write_keeps_the_status_unchanged(tmp_path: Path) -> None:
    """When the audit line given to update_outbox cannot be written, the item is not marked."""
    path = tmp_path / "helpdesk.db"
    action = Reply(network="mastodon", to=status("113020", "help"), text="On it!")
    item = OutboxItem.for_action(action, origin="handler:triage", now=T0)
    async with SQLiteStore(path) as store:
        await store.enqueue(item)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit"
            " BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
    line = AuditEntry(
        network="mastodon", action_type="reply", idempotency_key=item.key, actor="handler:triage"
    )
    async with SQLiteStore(path) as store:
        with pytest.raises(sqlite3.DatabaseError, match="audit refused"):
            await store.update_outbox(item.key, status="sent", audit=line)
        assert await store.get_outbox(item.key) == item
        assert await store.audit_log() == []


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer schema is refused, not silently misread."""
    path = tmp_path / "future.db"
    async with SQLiteStore(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = SQLiteStore(path)
    with pytest.raises(ConfigurationError, match="newer"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.seen("x")


async def test_unopenable_path_is_a_configuration_error(tmp_path: Path) -> None:
    """A path in a folder that does not exist raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="no-such-folder"):
        await SQLiteStore(tmp_path / "no-such-folder" / "x.db").open()


async def test_memory_database_vanishes_on_close() -> None:
    """``:memory:`` works, and its data is gone once the store is closed."""
    event = received(status("113002", "hello"))
    store = SQLiteStore(":memory:")
    async with store:
        assert await store.record_batch("mastodon", [event], cursor=None) == [event]
    async with store:
        assert not await store.seen(event.id)


async def test_other_connections_read_while_open(tmp_path: Path) -> None:
    """Committed events are visible to another connection while the store stays open."""
    path = tmp_path / "helpdesk.db"
    async with SQLiteStore(path) as store:
        await store.record_batch("mastodon", [received(status("113003", "hi"))], cursor="3")
        with closing(sqlite3.connect(path)) as reader:
            (count,) = reader.execute("SELECT count(*) FROM events").fetchone()
            (cursor,) = reader.execute("SELECT cursor FROM cursors").fetchone()
    assert (count, cursor) == (1, "3")


async def test_online_backup_opens_as_a_store(tmp_path: Path) -> None:
    """A backup taken with SQLite's backup API while the store runs is a working store."""
    path, copy = tmp_path / "helpdesk.db", tmp_path / "backup.db"
    msg = status("113004", "refund for order 5")
    async with SQLiteStore(path) as store:
        await store.record_batch("mastodon", [received(msg)], cursor="4")
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
    async with SQLiteStore(copy) as restored:
        assert await restored.search("refund") == [msg]
        assert await restored.get_cursor("mastodon") == "4"


async def test_search_index_stays_in_step_with_messages(tmp_path: Path) -> None:
    """After inserts, edits and deletions the FTS5 index passes its integrity check."""
    path = tmp_path / "helpdesk.db"
    async with SQLiteStore(path) as store:
        msgs = [status(f"1131{n:02d}", f"refund number {n}") for n in range(6)]
        await store.record_batch("mastodon", [received(m) for m in msgs], cursor=None)
        edited = msgs[0].model_copy(
            update={"text": "never mind", "edited_at": T0 + timedelta(hours=1)}
        )
        await store.save_messages([edited])
        gone = MessageDeleted(
            id=event_id("message.deleted", msgs[1].ref),
            network="mastodon",
            occurred_at=T0,
            message=msgs[1].ref,
        )
        await store.record_batch("mastodon", [gone], cursor=None)
        hits = await store.search("refund")
        assert {m.ref.id for m in hits} == {m.ref.id for m in msgs[2:]}
        assert await store.search("mind") == [edited]
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        (text,) = conn.execute(
            "SELECT text FROM messages WHERE id = ?", (msgs[1].ref.id,)
        ).fetchone()
    assert text == ""


@pytest.mark.parametrize(
    "snippet", re.findall(r"```python\n(.*?)```", HOW_TO.read_text(encoding="utf-8"), re.S)
)
def test_how_to_snippet_runs(
    snippet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Python snippet of the store how-to runs and prints what its ``#>`` lines say."""
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, str(HOW_TO), "exec"), {"__name__": "__main__"})  # noqa: S102
    expected = [line[3:] for line in snippet.splitlines() if line.startswith("#> ")]
    assert out.getvalue().splitlines() == expected


def test_unknown_synchronous_mode_is_refused() -> None:
    """Only the two documented durability modes are accepted."""
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteStore("x.db", synchronous="off")  # type: ignore[arg-type]


async def test_concurrent_writes_share_commits_and_fail_alone(tmp_path: Path) -> None:
    """Writes that arrive together are committed together; one that fails is undone alone."""
    drafts = [
        Draft(action=Reply(network="mastodon", to=status(f"1131{n:02}", "help"), text="Hi!"))
        for n in range(16)
    ]
    statements: list[str] = []
    failures: list[Exception] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.add_draft(drafts[3])
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]

        async def add(draft: Draft) -> None:
            try:
                await store.add_draft(draft)
            except ValueError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for draft in drafts:
                tg.start_soon(add, draft)
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        assert [str(exc) for exc in failures] == [f"draft {drafts[3].id} already exists"]
        stored = await store.list_drafts(limit=100)
    assert sorted(d.id for d in stored) == sorted(d.id for d in drafts)
    commits = statements.count("COMMIT")
    assert commits <= len(drafts) // 4, statements  # one per write would be 15


async def test_a_lookup_by_key_answers_from_what_is_committed_while_a_write_is_under_way(
    tmp_path: Path,
) -> None:
    """Reads by key go to a reading connection at once: they never wait behind a write.

    They see what is committed (write-ahead logging), not the write under way.
    """
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.put_value("s", "k", "old")
        async with store._lock:  # a write under way holds the store's connection
            conn = store._conn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE named_values SET value = 'new' WHERE scope = 's' AND key = 'k'")
            try:
                with anyio.fail_after(5):
                    during = await store.get_value("s", "k")
            finally:
                conn.execute("COMMIT")
        after = await store.get_value("s", "k")

    assert (during, after) == ("old", "new")


async def test_a_private_database_looks_up_on_its_one_connection() -> None:
    """``":memory:"`` has no second connection to read from: lookups see its writes."""
    async with SQLiteStore(":memory:") as store:
        await store.put_value("s", "k", "v")
        assert await store.get_value("s", "k") == "v"


async def test_an_outbox_item_read_again_shares_its_decoded_action(tmp_path: Path) -> None:
    """An item is read back after every write to it; its action is decoded once."""
    message = status("113200", "where is my parcel?").model_copy(
        update={"raw": {"id": "113200", "content": "<p>where is my parcel?</p>"}}
    )
    action = Reply(network="mastodon", to=message, text="On its way!")
    item = OutboxItem.for_action(action, origin="handler:test", now=T0)
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        queued = await store.enqueue(item)
        [claimed] = await store.claim_due(now=T0 + timedelta(seconds=1), worker="w")
        sent = await store.update_outbox(item.key, status="sent", worker="w")

    assert queued.action == action
    assert claimed.action is queued.action
    assert sent.action is queued.action
    assert (claimed.status, sent.status) == ("sending", "sent")


async def test_queuing_and_recording_an_outcome_run_one_statement_on_the_outbox_each(
    tmp_path: Path,
) -> None:
    """No look-up before the write: the insert and the claim check are the write itself.

    A key queued again still gets the stored item back, without storing the
    second action's payload; an outcome from a worker without the claim, or
    for no item, changes nothing and says which.
    """
    path = tmp_path / "helpdesk.db"
    message = raw_status("113300")
    item = OutboxItem.for_action(
        Reply(network="mastodon", to=message, text="On it!"), origin="handler:test", now=T0
    )
    again = OutboxItem.for_action(
        Reply(network="mastodon", to=raw_status("113301"), text="On it!",
              idempotency_key=item.key),
        origin="handler:test", now=T0,
    )
    seen: list[str] = []
    async with SQLiteStore(path) as store:
        store._conn.set_trace_callback(seen.append)  # type: ignore[union-attr]
        assert await store.enqueue(item) == item
        queued = [s for s in seen if "outbox" in s]
        assert "INSERT INTO outbox" in queued[0], queued
        assert await store.enqueue(again) == item
        [claimed] = await store.claim_due(now=T0 + timedelta(seconds=1), worker="w")
        with pytest.raises(StoreConflict):
            await store.update_outbox(item.key, status="sent", worker="other")
        with pytest.raises(RecordNotFound):
            await store.update_outbox("no such key", status="sent", worker="w")
        seen.clear()
        sent = await store.update_outbox(item.key, status="sent", worker="w")
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        assert sent.status == "sent"
        assert await store.get_outbox(item.key) == sent
    outcome = [s for s in seen if "outbox" in s]
    assert outcome[0].lstrip().startswith("UPDATE outbox"), outcome
    assert claimed.status == "sending"
    assert payload_counts(path) == (1, 0)


async def test_a_write_runs_its_statements_here_and_waits_for_the_disk_in_a_thread(
    tmp_path: Path,
) -> None:
    """Only the commit (the sync to disk) leaves the event loop's thread.

    In a thread each statement would wait for the interpreter's lock while the
    loop's thread works; the commit is the part that waits for the disk.
    """
    here = threading.get_ident()
    seen: list[tuple[bool, str]] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        store._conn.set_trace_callback(  # type: ignore[union-attr]
            lambda statement: seen.append((threading.get_ident() == here, statement))
        )
        await store.put_value("s", "k", "v")
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]

    assert [statement for in_loop, statement in seen if not in_loop] == ["COMMIT"]
    here_first = [statement for in_loop, statement in seen if in_loop][:2]
    assert here_first[0] == "BEGIN IMMEDIATE"
    assert "INSERT INTO named_values" in here_first[1]


async def test_a_group_with_no_failing_write_runs_no_savepoint(tmp_path: Path) -> None:
    """Writes that share a commit run one after another: no savepoint each when none raises."""
    statements: list[str] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(store.put_value, "s", f"k{n}", "v")
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        values = [await store.get_value("s", f"k{n}") for n in range(8)]

    assert values == ["v"] * 8
    assert not [statement for statement in statements if "SAVEPOINT" in statement], statements
    assert statements.count("BEGIN IMMEDIATE") == statements.count("COMMIT")


async def test_a_write_that_raises_in_a_group_leaves_the_others_applied_once(
    tmp_path: Path,
) -> None:
    """The group runs again with a savepoint each: the writes before and after apply once."""
    draft = Draft(action=Reply(network="mastodon", to=status("113301", "help"), text="Hi!"))
    failures: list[Exception] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.add_draft(draft)

        async def add_again() -> None:
            try:
                await store.add_draft(draft)
            except ValueError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(store.add_values, "spend", {"posts": Decimal(1)})
            tg.start_soon(add_again)
            for _ in range(3):
                tg.start_soon(store.add_values, "spend", {"posts": Decimal(1)})
        total = await store.get_value("spend", "posts")

    assert [str(exc) for exc in failures] == [f"draft {draft.id} already exists"]
    assert total is not None
    assert Decimal(total) == 6


async def test_events_marked_handled_together_are_one_statement_after_the_others(
    tmp_path: Path,
) -> None:
    """Marks made while a group gathers take one statement, run after the group's other writes.

    Each call returns once that group is committed; the events left are unhandled.
    """
    events = [received(status(f"1133{n:02}", f"where is parcel {n}?")) for n in range(12)]
    statements: list[str] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.record_batch("mastodon", events, cursor=None)
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            for event in events[:10]:
                tg.start_soon(store.mark_handled, event.id)
            tg.start_soon(store.put_value, "s", "k", "v")
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        left = await store.unhandled_events()

    assert [event.id for event in left] == [event.id for event in events[10:]]
    marks = [n for n, statement in enumerate(statements) if "SET handled" in statement]
    value = [n for n, statement in enumerate(statements) if "INTO named_values" in statement]
    assert len(marks) == 1, statements
    assert marks[0] > value[0]


async def test_a_cancelled_mark_leaves_its_event_unhandled_and_the_others_marked(
    tmp_path: Path,
) -> None:
    """A mark cancelled before its group runs is not made; marks waiting with it still are."""
    first, second, third = (received(status(f"11334{n}", "where?")) for n in range(3))
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.record_batch("mastodon", [first, second, third], cursor=None)
        cancelled = anyio.CancelScope()

        async def mark_second() -> None:
            with cancelled:
                await store.mark_handled(second.id)

        # A group under way holds the lock: the marks wait for the next one.
        async with anyio.create_task_group() as tg, store._lock:
            tg.start_soon(store.mark_handled, first.id)
            tg.start_soon(mark_second)
            await anyio.wait_all_tasks_blocked()
            cancelled.cancel()
            await anyio.wait_all_tasks_blocked()
        left = await store.unhandled_events()

    assert [event.id for event in left] == [second.id, third.id]


async def test_a_message_received_writes_its_author_once(tmp_path: Path) -> None:
    """The author, already written as the conversation's participant, is not written again."""
    msg = status("113350", "where is my parcel?")
    event = received(msg).model_copy(
        update={"conversation": Conversation(ref=msg.conversation, kind="thread",
                                             participants=(ANN,))}
    )
    statements: list[str] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        await store.record_batch("mastodon", [event], cursor=None)
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        stored = await store.get_conversation(msg.conversation)

    assert stored is not None
    assert stored.participants == (ANN,)
    assert len([s for s in statements if "INSERT INTO people" in s]) == 1, statements


async def test_an_event_seen_again_with_another_payload_stores_no_payload(
    tmp_path: Path,
) -> None:
    """Only a new event's native payload is stored: a repeat with changed fields adds none."""
    msg = status("113360", "where is my parcel?")
    first = received(msg.model_copy(update={"raw": {"id": "113360", "favourites_count": 0}}))
    again = received(msg.model_copy(update={"raw": {"id": "113360", "favourites_count": 3}}))
    path = tmp_path / "helpdesk.db"
    async with SQLiteStore(path) as store:
        assert await store.record_batch("mastodon", [first], cursor=None) == [first]
        assert await store.record_batch("mastodon", [again], cursor=None) == []
        stored = await store.get_message(msg.ref)

    assert stored is not None
    assert stored.raw == {"id": "113360", "favourites_count": 0}
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == 1


async def test_marks_without_json_functions_take_a_statement_each(tmp_path: Path) -> None:
    """A SQLite built without ``json_each`` still marks every id of a group."""
    events = [received(status(f"1133{n:02}", f"where is parcel {n}?")) for n in range(70, 75)]
    statements: list[str] = []
    async with SQLiteStore(tmp_path / "helpdesk.db") as store:
        await store.record_batch("mastodon", events, cursor=None)
        store._json_each = False  # as _has_json_each finds on such a build
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        async with anyio.create_task_group() as tg:
            for event in events[:4]:
                tg.start_soon(store.mark_handled, event.id)
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        left = await store.unhandled_events()

    assert [event.id for event in left] == [events[4].id]
    assert len([s for s in statements if "SET handled" in s]) == 4
    assert not [s for s in statements if "json_each" in s]
