"""The embedded default store: one SQLite file, WAL mode, full-text search.

Long because: one class plays every role of the store (see `omnichannel.store.roles`) in
SQL, with its lock, checks and migrations; the roles share one connection and its group
commit, and some writes span two roles in one transaction (an outcome and its audit line).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from textwrap import shorten
from typing import Literal, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
from pydantic import ConfigDict, JsonValue, TypeAdapter

from ..actions import Action, PrivateReply, Reply, Sent
from ..errors import (
    ConfigurationError,
    RecordNotFound,
    StoreConflict,
    StoreDamaged,
    StoreError,
    StoreLocked,
)
from ..events import Event, MessageDeleted, MessageReceived, MessageUpdated, parse_event
from ..model import Conversation, Message, Person, Ref
from ._filelock import FileLock, LockHeld, lock_path
from ._rules import (
    added_values,
    as_utc,
    decided,
    fts_match,
    lease_lost,
    merge_conversation,
    phrases,
    utcnow,
    version_at,
)
from ._sqlite_schema import (
    DATA_MIGRATIONS,
    MIGRATIONS,
    payload_digest,
    payload_json,
    store_payload,
)
from ._sqlite_states import get_state as _get_state
from ._sqlite_states import list_states as _list_states
from ._sqlite_states import put_state as _put_state
from ._sqlite_states import state_changes as _state_changes
from .base import (
    AuditEntry,
    DeadLetter,
    Draft,
    DraftAction,
    DraftStatus,
    HandlerFailure,
    OutboxItem,
    OutboxStatus,
)
from .roles import DEFAULT_LEASE, Store
from .states import ConversationState, ConversationStatus, StateChange

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")
_DEFERRED = ConfigDict(defer_build=True)
"""Adapters build their validators on first use, not at import."""
_ACTION: TypeAdapter[Action] = TypeAdapter(Action, config=_DEFERRED)
_DRAFT_ACTION: TypeAdapter[DraftAction] = TypeAdapter(DraftAction, config=_DEFERRED)

# Every data statement is a literal (no SQL is assembled from values at run time)
# and sticks to standard SQL (INSERT ... ON CONFLICT, COALESCE, CASE) that
# PostgreSQL shares. The SQLite-only parts are the FTS5 search, BEGIN IMMEDIATE
# and ordering events by rowid (a PostgreSQL store would use an identity column).
_INSERT_OUTBOX = """
    INSERT INTO outbox (key, network, status, attempts, next_attempt_at, created_at, updated_at,
                        origin, approved_by, recipient, text_digest, last_error, action, sent,
                        raw, worker, lease_until, order_key, queued)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
            (SELECT COALESCE(MAX(queued), 0) + 1 FROM outbox))
    ON CONFLICT (key) DO NOTHING
"""
_OUTBOX_COLUMNS = """
    SELECT o.key, o.network, o.status, o.attempts, o.next_attempt_at, o.created_at,
           o.updated_at, o.origin, o.approved_by, o.recipient, o.text_digest, o.last_error,
           o.action, o.sent, o.worker, o.lease_until, p.raw AS payload
    FROM outbox AS o LEFT JOIN payloads AS p ON p.digest = o.raw
"""
_SELECT_OUTBOX = _OUTBOX_COLUMNS + "WHERE o.key = ?"
_INSERT_EVENT = """
    INSERT INTO events (id, network, type, json, handled, received_at, raw)
    VALUES (?, ?, ?, ?, 0, ?, ?)
    ON CONFLICT (id) DO NOTHING
"""
# Ranked in a subquery that carries only each match's number, score and time, so a
# common word's thousands of matches are sorted without their rows; the JSON and
# payload are read for the few that are returned.
_SEARCH = """
    SELECT m.json, p.raw AS payload FROM (
        SELECT m.seq AS seq, bm25(messages_fts) AS score, m.created_at AS at
        FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid
        WHERE messages_fts MATCH ? AND m.deleted = 0 AND (? IS NULL OR m.network = ?)
        ORDER BY score, at DESC LIMIT ?
    ) AS top
    JOIN messages AS m ON m.seq = top.seq
    LEFT JOIN payloads AS p ON p.digest = m.raw
    ORDER BY top.score, top.at DESC
"""
_GET_VALUE = "SELECT value FROM named_values WHERE scope = ? AND key = ?"
_PUT_VALUE = """
    INSERT INTO named_values (scope, key, value, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""
# An item waits while an unfinished item of its order key was queued before it:
# the NOT EXISTS is one probe of the partial index ``outbox_line``.
_SELECT_DUE = """
    SELECT key FROM outbox AS o
    WHERE ((status IN ('pending', 'ambiguous') AND next_attempt_at <= :now
            AND (lease_until IS NULL OR lease_until <= :now))
           OR (status = 'sending' AND (lease_until IS NULL OR lease_until <= :now)))
      AND (order_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM outbox AS earlier
          WHERE earlier.network = o.network AND earlier.order_key = o.order_key
            AND earlier.status IN ('pending', 'sending', 'ambiguous')
            AND earlier.order_key IS NOT NULL AND earlier.queued < o.queued))
    ORDER BY created_at, key LIMIT :limit
"""
_CLAIM = """
    UPDATE outbox SET attempts = attempts + 1, updated_at = :now, worker = :worker,
        lease_until = :until,
        status = CASE WHEN status = 'pending' THEN 'sending' ELSE 'ambiguous' END
    WHERE key = :key
"""
_HELD = "status IN ('sending', 'ambiguous') AND worker = ? AND lease_until IS NOT NULL"
_UPDATE_OUTBOX = """
    UPDATE outbox SET status = ?, updated_at = ?, lease_until = NULL,
        next_attempt_at = COALESCE(?, next_attempt_at), last_error = COALESCE(?, last_error),
        sent = COALESCE(?, sent)
    WHERE key = ?
"""
_UPDATE_HELD_OUTBOX = _UPDATE_OUTBOX + " AND " + _HELD
_TAKE_LEASE = """
    INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at <= :now
"""
_LIST_OUTBOX = _OUTBOX_COLUMNS + """
    WHERE (? IS NULL OR o.status = ?)
    ORDER BY o.created_at, o.key LIMIT ?
"""
_MESSAGE_COLUMNS = """
    SELECT m.json, p.raw AS payload FROM messages AS m LEFT JOIN payloads AS p ON p.digest = m.raw
"""
_INSERT_DRAFT = """
    INSERT INTO drafts (id, status, event_id, action, created_at, decided_at, decided_by,
                        reason, note, origin)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING
"""
_SELECT_DRAFT = """
    SELECT id, status, event_id, action, created_at, decided_at, decided_by, reason, note,
           origin
    FROM drafts WHERE id = ?
"""
_LIST_DRAFTS = """
    SELECT id, status, event_id, action, created_at, decided_at, decided_by, reason, note,
           origin
    FROM drafts WHERE (? IS NULL OR status = ?)
    ORDER BY created_at, id LIMIT ?
"""
_INSERT_AUDIT = """
    INSERT INTO audit (at, network, action_type, idempotency_key, actor, approved_by,
                       result_ref, detail)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_NEWEST = {
    "audit": "SELECT * FROM audit ORDER BY at DESC, id DESC LIMIT ?",
    "dead_letters": "SELECT * FROM dead_letters ORDER BY at DESC, id DESC LIMIT ?",
    "handler_failures": "SELECT * FROM handler_failures ORDER BY at DESC, id DESC LIMIT ?",
}


def _ts(value: datetime) -> str:
    """A fixed-width UTC timestamp, so text order is time order."""
    return as_utc(value, "time").isoformat(timespec="microseconds")


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _opt_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class _Payloads:
    """Native payloads of one transaction: each encoded once, stored once; their digests."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._encoded: dict[int, tuple[object, bytes, bytes]] = {}
        """By ``id(raw)``: the payload (kept, so the id stays its own), digest, JSON bytes."""
        self._stored: set[bytes] = set()

    def _encode(self, raw: dict[str, JsonValue]) -> tuple[bytes, bytes]:
        known = self._encoded.get(id(raw))
        if known is None or known[0] is not raw:
            known = self._encoded[id(raw)] = (raw, *payload_digest(raw))
        return known[1], known[2]

    def digest(self, raw: dict[str, JsonValue]) -> bytes:
        """The digest ``raw`` is stored under, without storing it (see `put`)."""
        return self._encode(raw)[0]

    def put(self, raw: dict[str, JsonValue] | None) -> bytes | None:
        """Store ``raw`` (unless stored already) and return its digest."""
        if raw is None:
            return None
        encoded = self._encode(raw)
        if encoded[0] not in self._stored:
            store_payload(self._conn, raw, encoded)
            self._stored.add(encoded[0])
        return encoded[0]


def _packed(text: str | bytes) -> bytes:
    """JSON text as stored in ``events.json`` and ``outbox.action``: zlib-compressed.

    These rows repeat a whole message (the one received, the one answered);
    compressed they take about half the space. Rows written before stay text.
    """
    return zlib.compress(text.encode() if isinstance(text, str) else text)


def _unpacked(stored: str | bytes) -> str | bytes:
    return zlib.decompress(stored) if isinstance(stored, bytes) else stored


def _with_payload(message: Message, payload: bytes | None) -> Message:
    """``message`` with its native payload put back (stored apart from its JSON)."""
    if payload is None:
        return message
    return message.model_copy(update={"raw": json.loads(payload_json(payload))})


def _with_payload_event(event: Event, payload: bytes | None) -> Event:
    if payload is None or not isinstance(event, MessageReceived | MessageUpdated):
        return event
    return event.model_copy(update={"message": _with_payload(event.message, payload)})


def _with_payload_action(action: Action, payload: bytes | None) -> Action:
    if payload is None or not isinstance(action, Reply | PrivateReply):
        return action
    return action.model_copy(update={"to": _with_payload(action.to, payload)})


def _message_from(row: sqlite3.Row) -> Message:
    return _with_payload(Message.model_validate_json(row["json"]), row["payload"])


def _answered_raw(action: Action) -> dict[str, JsonValue] | None:
    """The native payload of the message ``action`` answers, if it carries one."""
    return action.to.raw if isinstance(action, Reply | PrivateReply) else None


def _action_json(action: Action, payloads: _Payloads) -> tuple[bytes, bytes | None]:
    """An action's JSON without the native payload of the message it answers, and its digest.

    The payload is not stored here: `_Payloads.put` does it (reusing the digest's work).
    """
    raw = _answered_raw(action)
    if raw is not None:
        text = _ACTION.dump_json(action, exclude={"to": {"raw"}})
        return _packed(text), payloads.digest(raw)
    return _packed(_ACTION.dump_json(action)), None


def _event_json(event: Event) -> tuple[bytes, dict[str, JsonValue] | None]:
    """An event's stored JSON without its message's native payload, and that payload."""
    if isinstance(event, MessageReceived | MessageUpdated) and event.message.raw is not None:
        text = event.model_dump_json(exclude={"message": {"raw"}})
        return _packed(text), event.message.raw
    return _packed(event.model_dump_json()), None


@functools.lru_cache(maxsize=256)
def _stored_action(stored: str | bytes, payload: bytes | None) -> Action:
    """The action of an outbox row (with its message's payload put back), decoded once.

    An item is read back after each write to it (queued, claimed, its outcome),
    and decoding its action (zlib, JSON, the payload's JSON, validation) is
    most of that work. Actions are immutable, so rows with the same stored
    bytes share one decoded action (its payload dict is shared too, as copies
    of a model share it).
    """
    return _with_payload_action(_ACTION.validate_json(_unpacked(stored)), payload)


def _outbox_item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        key=row["key"],
        network=row["network"],
        action=_stored_action(row["action"], row["payload"]),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        last_error=row["last_error"],
        sent=None if row["sent"] is None else Sent.model_validate_json(row["sent"]),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        origin=row["origin"],
        approved_by=row["approved_by"],
        recipient=row["recipient"],
        text_digest=row["text_digest"],
        worker=row["worker"],
        lease_until=_opt_dt(row["lease_until"]),
    )


def _draft(row: sqlite3.Row) -> Draft:
    return Draft(
        id=row["id"],
        action=_DRAFT_ACTION.validate_json(row["action"]),
        event_id=row["event_id"],
        status=row["status"],
        created_at=_dt(row["created_at"]),
        decided_at=_opt_dt(row["decided_at"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        note=row["note"],
        origin=row["origin"],
    )


def _audit(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=_dt(row["at"]),
        network=row["network"],
        action_type=row["action_type"],
        idempotency_key=row["idempotency_key"],
        actor=row["actor"],
        approved_by=row["approved_by"],
        result_ref=row["result_ref"],
        detail=row["detail"],
    )


def _dead_letter(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        at=_dt(row["at"]),
        network=row["network"],
        reason=row["reason"],
        body=bytes(row["body"]),
        headers=json.loads(row["headers"]),
    )


def _failure(row: sqlite3.Row) -> HandlerFailure:
    return HandlerFailure(
        id=row["id"],
        at=_dt(row["at"]),
        event_id=row["event_id"],
        handler=row["handler"],
        error=row["error"],
        traceback=row["traceback"],
    )


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``work`` in one write transaction, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class _Job:
    """One write waiting for, or done in, a group commit."""

    __slots__ = ("error", "result", "taken", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], object]) -> None:
        self.work = work
        self.taken = False
        self.result: object = None
        self.error: BaseException | None = None

    def outcome(self) -> object:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result


# The ids come as one JSON array, so any number of them is one statement (one probe
# of the primary key each). A SQLite built without its JSON functions (they are
# built in from 3.38) runs the one-id statement once per id instead.
_MARK_HANDLED = "UPDATE events SET handled = 1 WHERE id IN (SELECT value FROM json_each(?))"
_MARK_ONE_HANDLED = "UPDATE events SET handled = 1 WHERE id = ?"


def _has_json_each(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT value FROM json_each('[]')").fetchall()
    except sqlite3.OperationalError:
        return False
    return True


class _Marks(_Job):
    """Events marked handled while a group gathers: one statement for all of them.

    Every `SQLiteStore.mark_handled` call waiting for the same group adds its
    id here and waits for this one job; it runs after the group's other writes.
    """

    __slots__ = ("ids", "json_each")

    def __init__(self, *, json_each: bool) -> None:
        super().__init__(self._mark)
        self.ids: list[str] = []
        self.json_each = json_each

    def _mark(self, conn: sqlite3.Connection) -> None:
        if self.json_each:
            conn.execute(_MARK_HANDLED, (json.dumps(self.ids),))
        else:
            conn.executemany(_MARK_ONE_HANDLED, [(event_id,) for event_id in self.ids])

    def outcome(self) -> object:
        """Raise the group's error to every caller waiting on this job (it is shared)."""
        if self.error is not None:
            raise self.error
        return None


def _run_group(conn: sqlite3.Connection, jobs: list[_Job]) -> None:
    """Open a write transaction and run ``jobs`` in it; `_commit` ends it.

    The jobs run one after another, with no savepoint each: two statements a
    job are a good part of a small write, and most groups have no job that
    raises. When one raises, the transaction is rolled back and the group runs
    again with each job in a savepoint (`_run_apart`), so the one that raises
    is undone alone and keeps its error while the others go on. A job's work
    only reads and writes the database, so running it again gives what it
    would have given the first time.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job in jobs:
            job.result = job.work(conn)
    except Exception:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except BaseException as exc:
            _failed(conn, jobs, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _run_apart(conn, jobs)
    except BaseException as exc:
        _failed(conn, jobs, exc)
        raise


def _run_apart(conn: sqlite3.Connection, jobs: list[_Job]) -> None:
    """Open a write transaction and run ``jobs`` in it, each in a savepoint.

    A job that raises is rolled back to its savepoint and keeps its error;
    the others go on.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job in jobs:
            job.result = None
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.work(conn)
            except Exception as exc:  # the caller gets it; the others go on
                conn.execute("ROLLBACK TO job")
                job.error = exc
            conn.execute("RELEASE job")
    except BaseException as exc:
        _failed(conn, jobs, exc)
        if not isinstance(exc, Exception):
            raise


def _commit(conn: sqlite3.Connection, jobs: list[_Job]) -> None:
    """Commit the transaction `_run_group` opened; when that fails every job gets the error."""
    if not conn.in_transaction:  # the group failed as a whole: already rolled back
        return
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        _failed(conn, jobs, exc)
        if not isinstance(exc, Exception):
            raise


def _failed(conn: sqlite3.Connection, jobs: list[_Job], exc: BaseException) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    for job in jobs:
        if job.error is None:
            job.error = exc
            job.result = None


_APPLICATION_ID = 0x4F4D4E49
"""``PRAGMA application_id`` of an omnichannel store ("OMNI"): how a file says it is one."""

_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _is_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


def _store_error(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    """The project's error for what SQLite raised while ``doing`` something with ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_NOTADB:
        return StoreDamaged(
            f"{path!r} is not an omnichannel store: the file is not a SQLite database "
            "(damaged, or another kind of file)", path=path,
        )
    if _is_damage(exc):
        return StoreDamaged(
            f"the store at {path!r} is damaged ({exc}); restore it from a backup", path=path
        )
    return StoreError(f"cannot {doing} the store at {path!r}: {exc}", path=path)


@functools.cache
def _tables_at(version: int) -> frozenset[str]:
    """The tables an omnichannel store has at schema ``version``."""
    with closing(sqlite3.connect(":memory:")) as conn:
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        return frozenset(_tables(conn))


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]


def _identify(conn: sqlite3.Connection, path: str) -> int:
    """Return the schema version of the omnichannel store in ``conn`` (``0``: an empty file).

    Reads the header and the list of tables; changes nothing.

    Raises:
        StoreError: The file is another application's SQLite database.
        StoreDamaged: The file is not a SQLite database.
        sqlite3.Error: The file cannot be read.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    tables = _tables(conn)
    if application_id == _APPLICATION_ID:
        return int(version)
    if application_id != 0:
        raise StoreError(
            f"{path!r} is not an omnichannel store: it is another application's SQLite "
            f"database (application_id {application_id:#010x}); omnichannel does not write "
            "into it",
            path=path,
        )
    # Written before stores carried the marker, or not a store at all.
    if version == 0 and not tables:
        return 0
    if 0 < version <= len(MIGRATIONS) and _tables_at(version) <= set(tables):
        return int(version)
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    raise StoreError(
        f"{path!r} is not an omnichannel store: it is another application's SQLite "
        f"database (tables: {shown or 'none'}, schema version {version}); omnichannel "
        "does not write into it",
        path=path,
    )


def _quick_check(conn: sqlite3.Connection, path: str) -> None:
    """Check every page of the file (SQLite's ``quick_check``); raise if any is damaged.

    Raises:
        StoreDamaged: The check found damage; the message gives its first finding.
    """
    (first,) = conn.execute("PRAGMA quick_check(1)").fetchone()
    if first != "ok":
        raise StoreDamaged(
            f"the store at {path!r} is damaged ({shorten(str(first), 120)}); restore it "
            "from a backup", path=path,
        )


def _check_schema(conn: sqlite3.Connection, path: str) -> None:
    """Check, without changing anything, that the file is a sound store of this code's schema.

    Raises:
        StoreError: The file is not a store, or its schema is older or newer
            than this version of omnichannel.
        StoreDamaged: The file is not a database, or is damaged.
    """
    try:
        version = _identify(conn, path)
    except sqlite3.Error as exc:
        raise _store_error(exc, path, "read") from exc
    current = len(MIGRATIONS)
    if version == 0:
        raise StoreError(
            f"{path!r} holds no omnichannel store (schema version 0): a bot creates it "
            "on its first run", path=path,
        )
    if version < current:
        raise StoreError(
            f"the store at {path!r} has schema version {version}, older than this "
            f"omnichannel's ({current}): open it read-write once (start the bot with this "
            "version) to migrate it", path=path,
        )
    if version > current:
        raise StoreError(
            f"the store at {path!r} has schema version {version}, newer than this omnichannel "
            f"understands ({current}); upgrade omnichannel", path=path,
        )
    try:
        _quick_check(conn, path)
    except sqlite3.Error as exc:
        raise _store_error(exc, path, "read") from exc


def _migrate(conn: sqlite3.Connection, version: int, path: str) -> None:
    """Apply the migrations this database has not had, each in its own transaction.

    Each transaction also stamps the file as an omnichannel store
    (``application_id``); a store from before the stamp gets it here.

    Raises:
        StoreError: The database was written by a newer schema.
    """
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the store at {path!r} has schema version {version}, newer than this omnichannel "
            f"understands ({len(MIGRATIONS)}); upgrade omnichannel", path=path,
        )
    (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    if application_id != _APPLICATION_ID and version == len(MIGRATIONS):
        conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        data_step = DATA_MIGRATIONS.get(number)
        try:
            if data_step is None:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\n"
                    f"PRAGMA application_id = {_APPLICATION_ID};\nCOMMIT;"
                )
            else:
                # executescript would commit an open transaction first: the
                # data step and the version stamp go through execute().
                conn.executescript(f"BEGIN IMMEDIATE;\n{script}")
                data_step(conn)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class SQLiteStore(Store):
    """Keep everything in one SQLite database file.

    The embedded default: durable, searchable (FTS5) and safe for one process
    with many tasks. Writes, and reads of many rows, run in a worker thread over
    one connection, one at a time (writes that arrive together share a commit);
    reads by key run at once on a second, read-only connection. The database
    uses write-ahead logging, so those reads, and other processes (a backup, a
    report), read what is committed while the hub writes. The schema is created
    on first open and migrated forward on later opens. One process at a time
    opens a file read-write: a second one gets
    [`StoreLocked`][omnichannel.errors.StoreLocked]. A file that is not a
    store, or is damaged, is refused at open, before anything in it changes
    ([`StoreError`][omnichannel.errors.StoreError],
    [`StoreDamaged`][omnichannel.errors.StoreDamaged]).

    Opened with ``read_only=True`` it only reads: the file is opened in
    SQLite's read-only mode, its schema must be exactly this version's (no
    migration runs), nothing is recovered, and every method that writes
    raises ``RuntimeError`` (naming the file). That is how a report or
    ``omnichannel inbox`` looks at the database of a bot that is running.

    Args:
        path: The database file, created if missing (its folder must exist).
            ``":memory:"`` gives a private database that vanishes on close,
            which suits a quick test but not a hub.
        synchronous: ``"full"`` (default) syncs every commit to disk, so an
            acknowledged webhook survives a power cut; ``"normal"`` is faster
            and still never corrupts the file, but may lose the last commits
            on power loss (not on a process crash).
        read_only: Open an existing file for reading only (see above).

    Example:
        ```python
        async with SQLiteStore("helpdesk.db") as store:
            hits = await store.search("refund", network="mastodon")
        ```
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["normal", "full"] = "full",
        read_only: bool = False,
    ) -> None:
        """Describe the store; nothing is opened until ``open()``.

        Raises:
            ConfigurationError: ``synchronous`` is not ``"normal"`` or ``"full"``,
                or ``read_only`` is asked of a private ``":memory:"`` database.
        """
        if synchronous not in ("normal", "full"):
            raise ConfigurationError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self.path = os.fspath(path)
        if read_only and self.path in ("", ":memory:"):
            raise ConfigurationError("a read-only store needs a database file, not ':memory:'")
        self.synchronous = synchronous
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._file_lock: FileLock | None = None
        self._lock = anyio.Lock()
        self._pending: list[_Job] = []
        self._marks: _Marks | None = None
        """The ids to mark handled in the next group (a job in ``_pending``), if any."""
        self._json_each = True
        """Whether this SQLite has ``json_each`` (see `_Marks`); checked at open."""

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        mode = " read-only" if self.read_only else ""
        return f"<SQLiteStore {self.path!r}{mode} {state}>"

    # plumbing

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("the store is not open")
            try:
                return await anyio.to_thread.run_sync(work, conn)
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):  # damaged while in use: say so, naming the file
                    raise _store_error(exc, self.path, "use") from exc
                raise

    async def _lookup(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read by key (or a narrow index range) at once, in the calling thread.

        Such a read takes tens of microseconds, much less than a hop to the
        store's thread, which waits behind every write under way (and, on a
        busy machine, for the thread to be scheduled). It runs on a second,
        read-only connection: with write-ahead logging it sees what is
        committed and never waits for the writer. A private ``":memory:"``
        database, and a read-only store, have one connection: there the read
        goes to the thread as others do.
        """
        reader = self._reader
        if reader is None:
            return await self._call(work)
        await anyio.lowlevel.checkpoint()
        try:
            return work(reader)
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):  # damaged while in use: say so, naming the file
                raise _store_error(exc, self.path, "use") from exc
            raise

    async def _write(self, work: Callable[[sqlite3.Connection], _T], *, operation: str) -> _T:
        """Run ``work`` in a write transaction; return once it is committed.

        Writes that arrive while another is under way share one transaction
        (a group commit: one sync to disk for all of them), and so do those of
        tasks ready to run when the transaction starts: before taking its
        group, the writer lets them run (two turns of the event loop, since
        trio may run a round of ready tasks in either order). A write that
        raises is undone alone and raises to its caller (see `_run_group`);
        none returns before the transaction holding it is committed.
        The statements run in the event loop's thread (one process writes the
        file, so ``BEGIN IMMEDIATE`` finds no other writer to wait for); only
        the commit, which waits for the disk, runs in a worker thread.
        """
        self._writable(operation)
        job = _Job(work)
        self._pending.append(job)
        try:
            await self._run_pending(job)
        finally:
            if not job.taken:  # cancelled (or not open) before anyone ran it: it never happens
                self._pending.remove(job)
        return cast("_T", self._outcome(job))

    def _writable(self, operation: str) -> None:
        if self.read_only:
            raise RuntimeError(
                f"the store at {self.path!r} is open read-only: {operation}() would write"
            )

    async def _run_pending(self, job: _Job) -> None:
        """Return once ``job`` (queued in ``_pending``) is done: run the group holding it."""
        async with self._lock:
            if not job.taken:
                await anyio.lowlevel.checkpoint()
                await anyio.lowlevel.checkpoint()
                conn = self._conn
                if conn is None:
                    raise RuntimeError("the store is not open")
                batch, self._pending = self._pending, []
                if self._marks is not None:  # marked handled after the group's other writes
                    batch.remove(self._marks)
                    batch.append(self._marks)
                    self._marks = None
                for queued in batch:
                    queued.taken = True
                # The statements run here, in the event loop's thread: a
                # thread would wait for the interpreter's lock around each
                # one while this thread works. The commit, which waits for
                # the disk, runs in a thread.
                _run_group(conn, batch)
                await anyio.to_thread.run_sync(_commit, conn, batch)

    def _outcome(self, job: _Job) -> object:
        try:
            return job.outcome()
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):  # damaged while in use: say so, naming the file
                raise _store_error(exc, self.path, "use") from exc
            raise

    # lifecycle

    def _take_file_lock(self) -> FileLock | None:
        """Lock the store's file against a second writer; ``None`` for a private database."""
        if self.path in ("", ":memory:"):
            return None
        lock = FileLock(lock_path(self.path))
        try:
            lock.acquire()
        except LockHeld as held:
            by = f" (pid {held.pid})" if held.pid else ""
            raise StoreLocked(
                f"the store at {self.path!r} is open read-write in another process{by}: one "
                "process writes a SQLite store at a time. Stop that process first; for "
                "several workers use a multi-worker store (PostgreSQL); to read "
                "beside a running bot open it with read_only=True (as `omnichannel inbox` "
                "does)", path=self.path, pid=held.pid,
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot open the store at {self.path!r}: {exc.strerror or exc}", path=self.path
            ) from None
        return lock

    def _connect(
        self,
    ) -> tuple[sqlite3.Connection, sqlite3.Connection | None, FileLock | None]:
        """The connection, the reading one (see `_lookup`) and the file lock."""
        if self.read_only:
            return self._connect_read_only(), None, None
        lock = self._take_file_lock()
        try:
            conn = self._connect_read_write()
            try:
                reader = self._connect_reader()
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return conn, reader, lock

    def _connect_reader(self) -> sqlite3.Connection | None:
        """A second connection for lookups; ``None`` for a private database (it has one)."""
        if self.path in ("", ":memory:"):
            return None
        try:
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "open") from exc
        try:
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA busy_timeout = 5000")
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            reader.close()
            raise _store_error(exc, self.path, "open") from exc
        return reader

    def _connect_read_write(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "open") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            version = _identify(conn, self.path)
            if version:
                _quick_check(conn, self.path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, version, self.path)
            self._json_each = _has_json_each(conn)
            # Crash recovery. The file lock proves every other writer gone, so
            # their leases end now: a send that was under way may have landed.
            _in_transaction(conn, _recover)
        except sqlite3.Error as exc:
            conn.close()
            raise _store_error(exc, self.path, "open") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        # SQLite's read-only mode: the connection never writes the file (a
        # live writer's WAL is still read, so what is committed is seen).
        uri = Path(self.path).resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store at {self.path!r} read-only: {exc}", path=self.path
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            _check_schema(conn, self.path)
        except sqlite3.Error as exc:
            conn.close()
            raise _store_error(exc, self.path, "read") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Open the database, check it, create or migrate its schema, recover from a crash.

        A read-write store first takes an exclusive lock (the file
        ``<path>-lock`` beside the database), held until `aclose` or the
        process ends: a second process (or a second store object) opening
        the same file read-write is refused. Then the file is identified and
        checked (SQLite's ``quick_check``, which reads every page), before
        anything in it changes. The lock proves that whoever wrote the store
        before is gone, so their leases end: outbox items left ``sending``
        become ``ambiguous`` (to be reconciled), and named leases are freed.

        A ``read_only`` store takes no lock, so it opens beside a running
        bot: it opens the file for reading, checks it and checks that its
        schema is this version's; nothing is migrated or recovered.

        Raises:
            StoreLocked: Another process has the store open read-write.
            StoreDamaged: The file is not a SQLite database, or is damaged.
            StoreError: The file cannot be opened, belongs to another
                application, or its schema is newer than this version of
                omnichannel (for a ``read_only`` store: missing, empty, or
                of another schema version).
        """
        async with self._lock:
            if self._conn is None:
                self._conn, self._reader, self._file_lock = await anyio.to_thread.run_sync(
                    self._connect
                )

    async def aclose(self) -> None:
        """Close the database and give the lock back; the store may be opened again."""
        async with self._lock:
            conn, self._conn = self._conn, None
            reader, self._reader = self._reader, None
            lock, self._file_lock = self._file_lock, None
            try:
                if reader is not None:
                    reader.close()
                if conn is not None:
                    await anyio.to_thread.run_sync(conn.close)
            finally:
                if lock is not None:
                    lock.release()

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
        batch = list(events)
        now = _ts(utcnow())

        def work(conn: sqlite3.Connection) -> list[Event]:
            new: list[Event] = []
            payloads = _Payloads(conn)
            for event in batch:
                # One statement both checks and inserts; the payload is stored
                # only for an event that is new.
                text, raw = _event_json(event)
                digest = None if raw is None else payloads.digest(raw)
                if not conn.execute(_INSERT_EVENT, (
                    event.id, event.network, event.type, text, _ts(event.received_at), digest,
                )).rowcount:
                    continue
                if raw is not None:
                    payloads.put(raw)
                new.append(event)
                _apply(conn, event, payloads, now)
            if cursor is not None:
                conn.execute(
                    "INSERT INTO cursors (network, stream, cursor, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (network, stream)"
                    " DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (network, stream, cursor, now),
                )
            return new

        return await self._write(work, operation="record_batch")

    async def get_cursor(self, network: str, stream: str = "default") -> str | None:
        """Return the cursor saved by the last batch of ``network``/``stream``."""

        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT cursor FROM cursors WHERE network = ? AND stream = ?", (network, stream)
            ).fetchone()
            return None if row is None else str(row["cursor"])

        return await self._lookup(work)

    async def mark_handled(self, event_id: str) -> None:
        """Mark an event handled (an unknown id is ignored).

        Marks made while a group of writes gathers are written together, by
        one statement at the end of that group, and each call returns once
        that group is committed.
        """
        self._writable("mark_handled")
        job = self._marks
        if job is None:
            job = self._marks = _Marks(json_each=self._json_each)
            self._pending.append(job)
        job.ids.append(event_id)
        try:
            await self._run_pending(job)
        finally:
            if not job.taken:  # cancelled (or not open) before anyone ran it: never marked
                job.ids.remove(event_id)
                if not job.ids:
                    self._pending.remove(job)
                    self._marks = None
        self._outcome(job)

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        """Return the events not yet handled, in the order they were recorded."""

        def work(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT e.json, p.raw AS payload FROM events AS e"
                " LEFT JOIN payloads AS p ON p.digest = e.raw"
                " WHERE e.handled = 0 AND (? IS NULL OR e.network = ?) ORDER BY e.rowid",
                (network, network),
            ).fetchall()
            return [
                _with_payload_event(parse_event(_unpacked(row["json"])), row["payload"])
                for row in rows
            ]

        return await self._call(work)

    async def seen(self, event_id: str) -> bool:
        """Return whether an event with this id was recorded."""

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
            return row is not None

        return await self._lookup(work)

    async def is_handled(self, event_id: str) -> bool:
        """Return whether the event was recorded and marked handled."""

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT handled FROM events WHERE id = ?", (event_id,)).fetchone()
            return row is not None and bool(row["handled"])

        return await self._lookup(work)

    # messages

    async def get_message(self, ref: Ref) -> Message | None:
        """Return a stored message, or ``None`` (also when it was deleted)."""

        def work(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute(
                _MESSAGE_COLUMNS + "WHERE m.network = ? AND m.id = ? AND m.deleted = 0",
                (ref.network, ref.id),
            ).fetchone()
            return None if row is None else _message_from(row)

        return await self._lookup(work)

    async def get_conversation(self, ref: Ref) -> Conversation | None:
        """Return a stored conversation, or ``None``."""

        def work(conn: sqlite3.Connection) -> Conversation | None:
            return _conversation(conn, ref)

        return await self._call(work)

    async def conversation_messages(self, ref: Ref, *, limit: int = 100) -> list[Message]:
        """Return the latest ``limit`` messages of a conversation, oldest first."""

        def work(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(
                _MESSAGE_COLUMNS
                + "WHERE m.network = ? AND m.conversation = ? AND m.deleted = 0"
                " ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                (ref.network, ref.id, max(limit, 0)),
            ).fetchall()
            return [_message_from(row) for row in reversed(rows)]

        return await self._call(work)

    async def list_conversations(
        self, *, network: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Return conversations, most recent activity first."""

        def work(conn: sqlite3.Connection) -> list[Conversation]:
            rows = conn.execute(
                "SELECT json FROM conversations WHERE (? IS NULL OR network = ?)"
                " ORDER BY last_activity_at DESC, id DESC LIMIT ?",
                (network, network, max(limit, 0)),
            ).fetchall()
            return [Conversation.model_validate_json(row["json"]) for row in rows]

        return await self._call(work)

    async def search(
        self, query: str, *, network: str | None = None, limit: int = 20
    ) -> list[Message]:
        """Return messages containing every word of ``query``, best match first.

        Ranked by BM25. A word ending in ``*`` matches as a prefix; quotes,
        apostrophes and other FTS5 operators in ``query`` are plain text.
        """
        terms = phrases(query)
        if not terms:
            return []
        match = fts_match(terms)

        def work(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(_SEARCH, (match, network, network, max(limit, 0))).fetchall()
            return [_message_from(row) for row in rows]

        return await self._call(work)

    async def save_messages(self, messages: Sequence[Message]) -> None:
        """Upsert messages (our own sent replies, fetched history)."""
        batch = list(messages)
        now = _ts(utcnow())

        def work(conn: sqlite3.Connection) -> None:
            payloads = _Payloads(conn)
            for message in batch:
                _upsert_message(conn, message, None, payloads, now)

        await self._write(work, operation="save_messages")

    # outbox

    async def enqueue(self, item: OutboxItem) -> OutboxItem:
        """Add an item; when its key is already queued, return the stored one."""

        def work(conn: sqlite3.Connection) -> OutboxItem:
            # Inserted first: a key already queued adds nothing (ON CONFLICT) and
            # is read back as stored; the payload is stored only for a new row.
            payloads = _Payloads(conn)
            action, digest = _action_json(item.action, payloads)
            added = conn.execute(
                _INSERT_OUTBOX,
                (
                    item.key,
                    item.network,
                    item.status,
                    item.attempts,
                    _ts(item.next_attempt_at),
                    _ts(item.created_at),
                    _ts(item.updated_at),
                    item.origin,
                    item.approved_by,
                    item.recipient,
                    item.text_digest,
                    item.last_error,
                    action,
                    None if item.sent is None else item.sent.model_dump_json(),
                    digest,
                    item.worker,
                    None if item.lease_until is None else _ts(item.lease_until),
                    item.order_key,
                ),
            ).rowcount
            if added and digest is not None:
                payloads.put(_answered_raw(item.action))
            return _require_outbox(conn, item.key)

        return await self._write(work, operation="enqueue")

    async def get_outbox(self, key: str) -> OutboxItem | None:
        """Return the item with this key, or ``None``."""
        return await self._lookup(lambda conn: _get_outbox(conn, key))

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int = 10,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[OutboxItem]:
        """Claim due items for ``worker``, oldest first (see `Store.claim_due`)."""
        at = _ts(now)
        until = _ts(now + lease)

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(_SELECT_DUE, {"now": at, "limit": max(limit, 0)}).fetchall()
            claimed: list[OutboxItem] = []
            for row in rows:
                conn.execute(
                    _CLAIM, {"now": at, "worker": worker, "until": until, "key": row["key"]}
                )
                claimed.append(_require_outbox(conn, row["key"]))
            return claimed

        return await self._write(work, operation="claim_due")

    async def renew_claims(
        self,
        keys: Sequence[str],
        *,
        worker: str,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[str]:
        """Extend ``worker``'s claims on ``keys``; return the keys renewed."""
        until = _ts(now + lease)
        wanted = list(keys)

        def work(conn: sqlite3.Connection) -> list[str]:
            return [
                key for key in wanted
                if conn.execute(
                    f"UPDATE outbox SET lease_until = ? WHERE key = ? AND {_HELD}",  # noqa: S608 - constants only
                    (until, key, worker),
                ).rowcount == 1
            ]

        return await self._write(work, operation="renew_claims")

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
        """Set an item's status, adding ``audit`` (if given) in the same transaction.

        Other arguments left ``None`` keep their value; the claim on the item ends.

        Raises:
            RecordNotFound: No item has this key (nothing is changed or added).
            StoreConflict: ``worker`` no longer holds the item.
        """
        due = None if next_attempt_at is None else _ts(next_attempt_at)
        sent_json = None if sent is None else sent.model_dump_json()
        now = _ts(utcnow())

        def work(conn: sqlite3.Connection) -> OutboxItem:
            # One statement checks the claim and writes: nothing is changed
            # unless ``worker`` still holds the item.
            changed = conn.execute(
                _UPDATE_OUTBOX if worker is None else _UPDATE_HELD_OUTBOX,
                (status, now, due, last_error, sent_json, key)
                + (() if worker is None else (worker,)),
            ).rowcount
            if changed != 1:
                if worker is None or _get_outbox(conn, key) is None:
                    raise RecordNotFound("outbox item", key)
                raise lease_lost(key, worker)
            if audit is not None:
                _insert_audit(conn, audit)
            return _require_outbox(conn, key)

        return await self._write(work, operation="update_outbox")

    async def list_outbox(
        self, *, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Return items (all, or those with ``status``), oldest first."""

        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(_LIST_OUTBOX, (status, status, max(limit, 0))).fetchall()
            return [_outbox_item(row) for row in rows]

        return await self._call(work)

    async def recent_recipients(
        self, *, network: str, text_digest: str, since: datetime
    ) -> list[str]:
        """Return who was sent this text since ``since`` (not failed or cancelled)."""
        start = _ts(since)

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT recipient FROM outbox"
                " WHERE network = ? AND text_digest = ? AND created_at >= ?"
                " AND recipient IS NOT NULL AND status NOT IN ('failed', 'cancelled')"
                " ORDER BY created_at, key",
                (network, text_digest, start),
            ).fetchall()
            return list(dict.fromkeys(str(row["recipient"]) for row in rows))

        return await self._lookup(work)

    # named leases

    async def acquire_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take the lease ``name`` for ``holder`` (see `Store.acquire_lease`)."""
        values = {"name": name, "holder": holder, "until": _ts(now + ttl), "now": _ts(now)}

        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(_TAKE_LEASE, values).rowcount == 1

        return await self._write(work, operation="acquire_lease")

    async def renew_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Extend ``holder``'s unexpired lease (see `Store.renew_lease`)."""
        values = (_ts(now + ttl), name, holder, _ts(now))

        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?"
                " AND expires_at > ?",
                values,
            ).rowcount == 1

        return await self._write(work, operation="renew_lease")

    async def release_lease(self, name: str, *, holder: str) -> bool:
        """Give the lease back if ``holder`` holds it."""

        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)
            ).rowcount == 1

        return await self._write(work, operation="release_lease")

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Return who holds the lease ``name`` at ``now``, or ``None``."""
        at = _ts(now)

        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, at)
            ).fetchone()
            return None if row is None else str(row["holder"])

        return await self._lookup(work)

    # values

    async def get_value(self, scope: str, key: str) -> str | None:
        """Return the value of ``key`` in ``scope``, or ``None``."""
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(_GET_VALUE, (scope, key)).fetchone()
            return None if row is None else str(row["value"])

        return await self._lookup(work)

    async def put_value(self, scope: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``scope`` (replacing any)."""
        await self._write(
            lambda conn: conn.execute(_PUT_VALUE, (scope, key, value, _ts(utcnow()))),
            operation="put_value",
        )

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget ``key`` in ``scope``."""
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM named_values WHERE scope = ? AND key = ?", (scope, key)),
            operation="delete_value",
        )

    async def add_values(
        self,
        scope: str,
        amounts: Mapping[str, Decimal],
        *,
        limits: Mapping[str, Decimal] | None = None,
    ) -> dict[str, Decimal] | None:
        """Add each amount to its key's number, all or none, in one write transaction."""
        at = _ts(utcnow())

        def work(conn: sqlite3.Connection) -> dict[str, Decimal] | None:
            current: dict[str, str | None] = {}
            for key in amounts:
                row = conn.execute(_GET_VALUE, (scope, key)).fetchone()
                current[key] = None if row is None else str(row["value"])
            totals = added_values(scope, current, amounts, limits)
            for key, total in (totals or {}).items():
                conn.execute(_PUT_VALUE, (scope, key, str(total), at))
            return totals

        return await self._write(work, operation="add_values")

    # drafts

    async def add_draft(self, draft: Draft) -> None:
        """Store a new draft.

        Raises:
            StoreConflict: A draft with this id exists.
        """

        def work(conn: sqlite3.Connection) -> None:
            inserted = conn.execute(_INSERT_DRAFT, _draft_values(draft)).rowcount
            if inserted != 1:
                raise StoreConflict(
                    f"draft {draft.id} already exists", record="draft", key=draft.id
                )

        await self._write(work, operation="add_draft")

    async def get_draft(self, draft_id: str) -> Draft | None:
        """Return a draft, or ``None``."""
        return await self._lookup(lambda conn: _get_draft(conn, draft_id))

    async def list_drafts(
        self, *, status: DraftStatus | None = "pending", limit: int = 100
    ) -> list[Draft]:
        """Return drafts (those with ``status``, or all with ``None``), oldest first."""

        def work(conn: sqlite3.Connection) -> list[Draft]:
            rows = conn.execute(_LIST_DRAFTS, (status, status, max(limit, 0))).fetchall()
            return [_draft(row) for row in rows]

        return await self._call(work)

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
        at = utcnow()

        def work(conn: sqlite3.Connection) -> Draft:
            draft = _get_draft(conn, draft_id)
            if draft is None:
                raise RecordNotFound("draft", draft_id)
            result = decided(draft, status=status, by=by, reason=reason, action=action, at=at)
            conn.execute(
                "UPDATE drafts SET status = ?, action = ?, decided_at = ?, decided_by = ?,"
                " reason = ? WHERE id = ?",
                (
                    result.status,
                    _DRAFT_ACTION.dump_json(result.action).decode(),
                    _ts(at),
                    result.decided_by,
                    result.reason,
                    draft_id,
                ),
            )
            return result

        return await self._write(work, operation="decide_draft")

    # audit, dead letters, failures

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (its ``id`` is assigned)."""
        await self._write(lambda conn: _insert_audit(conn, entry), operation="add_audit")

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        return await self._newest("audit", _audit, limit)

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a body we could not use (its ``id`` is assigned)."""
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO dead_letters (at, network, reason, body, headers)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    _ts(letter.at),
                    letter.network,
                    letter.reason,
                    letter.body,
                    json.dumps(letter.headers),
                ),
            ),
            operation="add_dead_letter",
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Return dead letters, newest first."""
        return await self._newest("dead_letters", _dead_letter, limit)

    async def add_failure(self, failure: HandlerFailure) -> None:
        """Record a handler failure (its ``id`` is assigned)."""
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO handler_failures (at, event_id, handler, error, traceback)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    _ts(failure.at),
                    failure.event_id,
                    failure.handler,
                    failure.error,
                    failure.traceback,
                ),
            ),
            operation="add_failure",
        )

    async def failures(self, *, limit: int = 100) -> list[HandlerFailure]:
        """Return handler failures, newest first."""
        return await self._newest("handler_failures", _failure, limit)

    # conversation state ----------------------------------------------------

    async def get_state(self, conversation: Ref) -> ConversationState | None:
        """Return the stored state of ``conversation``, if any."""
        return await self._call(lambda conn: _get_state(conn, conversation))

    async def put_state(
        self, state: ConversationState, *, expected_version: int,
        changes: Sequence[StateChange] = (),
    ) -> ConversationState:
        """Write ``state`` if its stored version is ``expected_version`` (compare-and-set)."""
        return await self._write(
            lambda conn: _put_state(
                conn, state, expected_version=expected_version, changes=changes
            ),
            operation="put_state",
        )

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
        return await self._call(lambda conn: _list_states(
            conn, status=status, assignee=assignee, queue=queue, network=network,
            due_before=due_before, limit=limit,
        ))

    async def state_changes(self, conversation: Ref, *, limit: int = 100) -> list[StateChange]:
        """Return the changes of ``conversation``, oldest first (the last ``limit``)."""
        return await self._call(
            lambda conn: _state_changes(conn, conversation, limit=limit)
        )

    async def _newest(
        self,
        table: Literal["audit", "dead_letters", "handler_failures"],
        build: Callable[[sqlite3.Row], _T],
        limit: int,
    ) -> list[_T]:
        def work(conn: sqlite3.Connection) -> list[_T]:
            rows = conn.execute(_NEWEST[table], (max(limit, 0),)).fetchall()
            return [build(row) for row in rows]

        return await self._call(work)


# Row helpers, run inside a worker thread with the connection held.


def _recover(conn: sqlite3.Connection) -> None:
    """End the leases of a store's earlier writers (who are gone), at open."""
    conn.execute(
        "UPDATE outbox SET status = 'ambiguous', updated_at = ?, lease_until = NULL"
        " WHERE status = 'sending'",
        (_ts(utcnow()),),
    )
    conn.execute("UPDATE outbox SET lease_until = NULL WHERE lease_until IS NOT NULL")
    conn.execute("DELETE FROM leases")


def _get_outbox(conn: sqlite3.Connection, key: str) -> OutboxItem | None:
    row = conn.execute(_SELECT_OUTBOX, (key,)).fetchone()
    return None if row is None else _outbox_item(row)


def _require_outbox(conn: sqlite3.Connection, key: str) -> OutboxItem:
    item = _get_outbox(conn, key)
    if item is None:
        raise RecordNotFound("outbox item", key)
    return item


def _insert_audit(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    conn.execute(
        _INSERT_AUDIT,
        (
            _ts(entry.at),
            entry.network,
            entry.action_type,
            entry.idempotency_key,
            entry.actor,
            entry.approved_by,
            entry.result_ref,
            entry.detail,
        ),
    )


def _get_draft(conn: sqlite3.Connection, draft_id: str) -> Draft | None:
    row = conn.execute(_SELECT_DRAFT, (draft_id,)).fetchone()
    return None if row is None else _draft(row)


def _draft_values(draft: Draft) -> tuple[str | None, ...]:
    return (
        draft.id,
        draft.status,
        draft.event_id,
        _DRAFT_ACTION.dump_json(draft.action).decode(),
        _ts(draft.created_at),
        None if draft.decided_at is None else _ts(draft.decided_at),
        draft.decided_by,
        draft.reason,
        draft.note,
        draft.origin,
    )


def _conversation(conn: sqlite3.Connection, ref: Ref) -> Conversation | None:
    row = conn.execute(
        "SELECT json FROM conversations WHERE network = ? AND id = ?", (ref.network, ref.id)
    ).fetchone()
    return None if row is None else Conversation.model_validate_json(row["json"])


def _apply(conn: sqlite3.Connection, event: Event, payloads: _Payloads, now: str) -> None:
    if isinstance(event, MessageReceived):
        participants = event.conversation.participants
        _remember_people(conn, participants, now)
        _upsert_message(conn, event.message, event.conversation, payloads, now, participants)
    elif isinstance(event, MessageUpdated):
        _upsert_message(conn, event.message, None, payloads, now)
    elif isinstance(event, MessageDeleted):
        conversation = None if event.conversation is None else event.conversation.id
        conn.execute(
            "INSERT INTO messages (network, id, conversation, text, deleted)"
            " VALUES (?, ?, ?, '', 1) ON CONFLICT (network, id)"
            " DO UPDATE SET text = '', json = NULL, raw = NULL, deleted = 1",
            (event.message.network, event.message.id, conversation),
        )


def _remember_people(conn: sqlite3.Connection, people: Sequence[Person], now: str) -> None:
    for person in people:
        conn.execute(
            "INSERT INTO people (network, id, json, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (network, id)"
            " DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at",
            (person.ref.network, person.ref.id, person.model_dump_json(), now),
        )


def _upsert_message(
    conn: sqlite3.Connection,
    message: Message,
    conversation: Conversation | None,
    payloads: _Payloads,
    now: str,
    remembered: Sequence[Person] = (),
) -> None:
    """Store a message unless a newer version is stored or it was deleted.

    Its author is remembered too, unless ``remembered`` (people just written,
    at ``now``) has them as they are.
    """
    created = _ts(message.created_at)
    changed = conn.execute(
        "INSERT INTO messages"
        " (network, id, conversation, author, text, created_at, version_at, json, deleted, raw)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (network, id) DO UPDATE SET"
        " conversation = excluded.conversation, author = excluded.author,"
        " text = excluded.text, created_at = excluded.created_at,"
        " version_at = excluded.version_at, json = excluded.json, raw = excluded.raw"
        " WHERE messages.deleted = 0 AND messages.version_at <= excluded.version_at",
        (
            message.ref.network,
            message.ref.id,
            message.conversation.id,
            message.author.ref.id,
            message.text,
            created,
            _ts(version_at(message)),
            message.model_dump_json(exclude={"raw"}),
            payloads.put(message.raw),
        ),
    ).rowcount
    if changed != 1:
        return
    if message.author not in remembered:
        _remember_people(conn, (message.author,), now)
    ref = message.conversation
    row = conn.execute(
        "SELECT json, last_activity_at FROM conversations WHERE network = ? AND id = ?",
        (ref.network, ref.id),
    ).fetchone()
    existing = None if row is None else Conversation.model_validate_json(row["json"])
    merged = merge_conversation(existing, conversation, message)
    last = created
    if row is not None and row["last_activity_at"] > last:
        last = row["last_activity_at"]
    conn.execute(
        "INSERT INTO conversations (network, id, kind, json, last_activity_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (network, id) DO UPDATE SET"
        " kind = excluded.kind, json = excluded.json,"
        " last_activity_at = excluded.last_activity_at",
        (ref.network, ref.id, merged.kind, merged.model_dump_json(), last),
    )
