"""A store on a PostgreSQL server (the ``omnichannel[postgres]`` extra).

The driver is psycopg 3 with its connection pool. psycopg's async mode runs on
asyncio only and omnichannel also runs on trio, so the store uses psycopg's
synchronous API in worker threads through anyio, as `SQLiteStore` does with
``sqlite3``: every call takes a pooled connection in a thread, runs its
statements (a write in one transaction) and gives the connection back.
psycopg is imported when the store opens, so this module imports without it.

Long because: one class plays every role of the store (see `omnichannel.store.roles`),
each method with its SQL, as `SQLiteStore` does; the roles share one pool, and some writes
span two roles in one transaction (an outcome and its audit line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread
from anyio.lowlevel import checkpoint_if_cancelled
from pydantic import TypeAdapter

from ..actions import Action, Sent
from ..errors import ConfigurationError, RecordNotFound, StoreConflict, StoreError
from ..events import Event, MessageDeleted, MessageReceived, MessageUpdated, parse_event
from ..model import Conversation, Message, Person, Ref
from ._postgres_schema import MIGRATIONS, TABLES
from ._postgres_states import get_state as _get_state
from ._postgres_states import list_states as _list_states
from ._postgres_states import put_state as _put_state
from ._postgres_states import state_changes as _state_changes
from ._rules import (
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

if TYPE_CHECKING:  # pragma: no cover - typing only
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresStore", "is_postgres_url"]

_T = TypeVar("_T")
_Row = dict[str, Any]
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)
_DRAFT_ACTION: TypeAdapter[DraftAction] = TypeAdapter(DraftAction)
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RETRIES = 5
"""How many times a transaction that lost a deadlock or serialization race is run again."""

# Ranked in a subquery that carries only each match's number, score and time, so a
# common word's thousands of matches are sorted without their rows; the JSON is read
# (by primary key) for the few that are returned.
_SEARCH = (
    "SELECT m.json FROM ("
    " SELECT seq, ts_rank(search, q) AS score, created_at AS at"
    " FROM messages, to_tsquery('simple', %s) AS q"
    " WHERE search @@ q AND NOT deleted AND (%s::text IS NULL OR network = %s)"
    " ORDER BY score DESC, at DESC LIMIT %s"
    ") AS top JOIN messages AS m ON m.seq = top.seq"
    " ORDER BY top.score DESC, top.at DESC"
)
_OUTBOX_COLUMNS = (
    "key, network, status, attempts, next_attempt_at, created_at, updated_at, origin,"
    " approved_by, recipient, text_digest, last_error, action, sent, worker, lease_until"
)
_DUE = (
    "(status IN ('pending', 'ambiguous') AND next_attempt_at <= %(now)s"
    " AND (lease_until IS NULL OR lease_until <= %(now)s))"
    " OR (status = 'sending' AND (lease_until IS NULL OR lease_until <= %(now)s))"
)
_FIRST_IN_LINE = (
    # No unfinished item of the same order key was queued before: one probe of
    # the partial index ``outbox_line``. An unfinished item stays unfinished in
    # every snapshot until its final outcome commits, so two claims at once
    # never pass a conversation's second item while its first is unfinished.
    "(order_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox AS earlier"
    " WHERE earlier.network = o.network AND earlier.order_key = o.order_key"
    " AND earlier.status IN ('pending', 'sending', 'ambiguous')"
    " AND earlier.order_key IS NOT NULL AND earlier.queued < o.queued))"
)
_HELD = "status IN ('sending', 'ambiguous') AND worker = %(worker)s AND lease_until IS NOT NULL"
_DRAFT_COLUMNS = (
    "id, status, event_id, action, created_at, decided_at, decided_by, reason, note, origin"
)


def is_postgres_url(target: str) -> bool:
    """Return whether ``target`` names a PostgreSQL database (``postgresql://`` or ``postgres://``).

    Example:
        ```python
        from omnichannel.store import is_postgres_url

        assert is_postgres_url("postgresql://bot@db.internal/helpdesk")
        assert not is_postgres_url("helpdesk.db")
        ```
    """
    return target.startswith(("postgresql://", "postgres://"))


def _redact(url: str) -> str:
    """The URL without its password (and without a query, which may carry one)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in credentials else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _outbox_item(row: _Row) -> OutboxItem:
    return OutboxItem(
        key=row["key"],
        network=row["network"],
        action=_ACTION.validate_json(row["action"]),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"].astimezone(UTC),
        last_error=row["last_error"],
        sent=None if row["sent"] is None else Sent.model_validate_json(row["sent"]),
        created_at=row["created_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
        origin=row["origin"],
        approved_by=row["approved_by"],
        recipient=row["recipient"],
        text_digest=row["text_digest"],
        worker=row["worker"],
        lease_until=_utc(row["lease_until"]),
    )


def _draft(row: _Row) -> Draft:
    return Draft(
        id=row["id"],
        action=_DRAFT_ACTION.validate_json(row["action"]),
        event_id=row["event_id"],
        status=row["status"],
        created_at=row["created_at"].astimezone(UTC),
        decided_at=_utc(row["decided_at"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        note=row["note"],
        origin=row["origin"],
    )


def _audit(row: _Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"].astimezone(UTC),
        network=row["network"],
        action_type=row["action_type"],
        idempotency_key=row["idempotency_key"],
        actor=row["actor"],
        approved_by=row["approved_by"],
        result_ref=row["result_ref"],
        detail=row["detail"],
    )


def _dead_letter(row: _Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        at=row["at"].astimezone(UTC),
        network=row["network"],
        reason=row["reason"],
        body=bytes(row["body"]),
        headers=json.loads(row["headers"]),
    )


def _failure(row: _Row) -> HandlerFailure:
    return HandlerFailure(
        id=row["id"],
        at=row["at"].astimezone(UTC),
        event_id=row["event_id"],
        handler=row["handler"],
        error=row["error"],
        traceback=row["traceback"],
    )


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a record (stable across processes)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _batch_lock_keys(events: Iterable[Event], messages: Iterable[Message]) -> list[int]:
    """The advisory locks a write of these events and messages takes, in one global order.

    Taking every lock a transaction needs first, sorted, means two concurrent
    batches touching the same events, messages, conversations or people wait
    for each other instead of deadlocking.
    """
    keys: set[int] = set()
    touched = list(messages)
    for event in events:
        keys.add(_lock_key("event", event.id))
        if isinstance(event, MessageReceived | MessageUpdated):
            touched.append(event.message)
        elif isinstance(event, MessageDeleted):
            keys.add(_lock_key("message", event.message.network, event.message.id))
    for message in touched:
        keys.add(_lock_key("message", message.ref.network, message.ref.id))
        keys.add(_lock_key("conversation", message.conversation.network, message.conversation.id))
    return sorted(keys)


def _tsquery(query: str) -> str | None:
    """A ``to_tsquery`` expression for ``query``: every phrase required, ``*`` a prefix.

    Words hold only letters and numbers (see `phrases`), each quoted, so no
    character of the user's text is read as query syntax.
    """
    parts = []
    for term in phrases(query):
        words = [f"'{word}'" for word in term.words]
        if term.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")")
    return " & ".join(parts) if parts else None


class PostgresStore(Store):
    """Keep everything in a PostgreSQL database, through a pool of connections.

    Install the extra (``pip install "omnichannel[postgres]"``: psycopg 3 and
    psycopg_pool). Calls run psycopg's synchronous API in worker threads, one
    pooled connection per call, so the store works the same on asyncio and
    trio. Each write is one transaction; a transaction that loses a deadlock
    or serialization race is run again. The schema is created and migrated
    on open, by versioned migrations run once even when several processes
    open at the same moment (they queue on a transaction-level advisory lock).

    Several workers (processes, or store objects in one) share one database.
    Outbox claims use ``FOR UPDATE SKIP LOCKED``, so two workers never claim
    the same item, and each claim is a lease: the worker's id and an expiry,
    renewed while it sends. Opening resets nothing; an item a worker left
    ``sending`` when it died is claimed again by another once its lease ran
    out, as ``ambiguous`` (the send may have landed, so it is looked up
    before any resend). Named leases (`acquire_lease`) are rows taken with
    one ``INSERT ... ON CONFLICT`` each, so two holders never hold one.

    A connection is checked when taken from the pool, so after the server
    restarts the next call opens a new one. Every statement runs under
    ``statement_timeout``. Errors from the server are raised as
    [`StoreError`][omnichannel.errors.StoreError], whose messages show the
    URL without its password.

    Args:
        url: A ``postgresql://`` URL (user, password, host, database).
        schema: Keep the tables in this schema (created if missing) instead
            of the connection's default one; lower-case letters, digits and
            ``_``. Several bots can share a database, one schema each.
        shared: Accepted for code written when one process at a time could
            open a store; every store now opens beside others.
        min_connections: Connections the pool keeps open.
        max_connections: The most connections (and worker threads) in use at once.
        statement_timeout: Seconds any statement may run before the server
            cancels it (then the call raises `StoreError`).
        connect_timeout: Seconds to wait for a connection.

    Example:
        ```python
        async with PostgresStore("postgresql://bot:secret@db.internal/helpdesk") as store:
            hits = await store.search("refund", network="mastodon")
        ```
    """

    multi_worker = True

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        shared: bool = False,
        min_connections: int = 1,
        max_connections: int = 4,
        statement_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        notify: bool = True,
    ) -> None:
        """Describe the store; nothing is opened until ``open()``.

        With ``notify`` (the default), queuing an outbox item sends a
        PostgreSQL notification, and an idle outbox worker waiting in
        `wait_for_work` wakes at once instead of at its next poll.

        Raises:
            ConfigurationError: ``url`` is not a PostgreSQL URL, ``schema`` is
                not a plain lower-case name, or a size or timeout is out of range.
        """
        if not is_postgres_url(url):
            raise ConfigurationError("a PostgreSQL store needs a postgresql:// URL")
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"schema must be lower-case letters, digits and _, not {schema!r}"
            )
        if not 0 <= min_connections <= max_connections or max_connections < 1:
            raise ConfigurationError("need 0 <= min_connections <= max_connections, max >= 1")
        if statement_timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("timeouts must be positive")
        self._url = url
        self.schema = schema
        self.shared = shared
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        self.schema_version: int | None = None
        """The schema version, once open."""
        self._pool: ConnectionPool[Any] | None = None
        self._limiter = anyio.CapacityLimiter(max_connections)
        self._lock = anyio.Lock()
        self.notify = notify
        self._listener: Any = None  # the connection that LISTENs, opened on first wait
        self._listening = anyio.CapacityLimiter(1)

    @property
    def url(self) -> str:
        """The database URL, without its password."""
        return _redact(self._url)

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        schema = f" schema={self.schema}" if self.schema else ""
        return f"<PostgresStore {self.url!r}{schema} {state}>"

    # plumbing

    def _error(self, exc: Exception, doing: str) -> StoreError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"cannot {doing} the PostgreSQL store at {self.url}: {detail}", path=self.url
        )

    def _options(self) -> str:
        timeout_ms = max(1, round(self.statement_timeout * 1000))
        options = f"-c TimeZone=UTC -c statement_timeout={timeout_ms}"
        if self.schema is not None:
            options += f" -c search_path={self.schema}"
        return options

    def _connect_kwargs(self) -> dict[str, Any]:
        from psycopg.rows import dict_row

        return {
            "autocommit": True,
            "row_factory": dict_row,
            "options": self._options(),
            "connect_timeout": max(1, round(self.connect_timeout)),
        }

    async def _call(self, work: Callable[[Any], _T], *, write: bool = False) -> _T:
        await checkpoint_if_cancelled()
        pool = self._pool
        if pool is None:
            raise RuntimeError("the store is not open")
        return await anyio.to_thread.run_sync(
            self._run, pool, work, write, limiter=self._limiter
        )

    def _run(self, pool: ConnectionPool[Any], work: Callable[[Any], _T], write: bool) -> _T:
        import psycopg
        from psycopg import errors as pg_errors
        from psycopg_pool import PoolTimeout

        try:
            with pool.connection(timeout=self.connect_timeout) as conn:
                if not write:
                    return work(conn)
                for attempt in range(_RETRIES):
                    try:
                        with conn.transaction():
                            return work(conn)
                    except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                        if attempt == _RETRIES - 1:
                            raise
                raise AssertionError("unreachable")  # pragma: no cover
        except PoolTimeout as exc:
            raise self._error(exc, "reach") from None
        except psycopg.Error as exc:
            raise self._error(exc, "use") from None

    # lifecycle

    def _open(self) -> tuple[ConnectionPool[Any], int]:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise ConfigurationError(
                'PostgresStore needs psycopg: pip install "omnichannel[postgres]"'
            ) from None
        pool: ConnectionPool[Any] | None = None
        try:
            kwargs = self._connect_kwargs()
            with psycopg.connect(self._url, **kwargs) as conn:
                version = self._migrate(conn)
            pool = ConnectionPool(
                self._url,
                min_size=self.min_connections,
                max_size=self.max_connections,
                kwargs=kwargs,
                check=ConnectionPool.check_connection,
                open=False,
                name="omnichannel",
            )
            pool.open(wait=self.min_connections > 0, timeout=self.connect_timeout)
        except BaseException as exc:
            if pool is not None:
                pool.close()
            if isinstance(exc, PoolTimeout | psycopg.Error):
                raise self._error(exc, "open") from None
            raise
        return pool, version

    def _migrate(self, conn: psycopg.Connection[Any]) -> int:
        """Apply the migrations this database has not had, once, under an advisory lock."""
        from psycopg import sql

        with conn.transaction():
            if self.schema is not None:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('omnichannel.migrate:'"
                " || current_schema(), 0))"
            )
            row = conn.execute(
                "SELECT to_regclass('omnichannel_migrations') IS NOT NULL AS ours"
            ).fetchone()
            if row is None or not row["ours"]:
                found = [
                    table for table in TABLES
                    if conn.execute(
                        "SELECT to_regclass(%s) IS NOT NULL AS present", (table,)
                    ).fetchone() == {"present": True}
                ]
                if found:
                    raise StoreError(
                        f"the database at {self.url} is not an omnichannel store: it has "
                        f"tables of another application ({', '.join(found[:5])}); "
                        "omnichannel does not write into it (name a schema of its own)",
                        path=self.url,
                    )
                conn.execute(
                    "CREATE TABLE omnichannel_migrations ("
                    " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
            version_row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) AS version FROM omnichannel_migrations"
            ).fetchone()
            version = 0 if version_row is None else int(version_row["version"])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self.url} has schema version {version}, newer than this "
                    f"omnichannel understands ({len(MIGRATIONS)}); upgrade omnichannel",
                    path=self.url,
                )
            for number, script in enumerate(MIGRATIONS, start=1):
                if number > version:
                    conn.execute(script.encode())
                    conn.execute(
                        "INSERT INTO omnichannel_migrations (version, applied_at)"
                        " VALUES (%s, %s)",
                        (number, utcnow()),
                    )
        return len(MIGRATIONS)

    async def open(self) -> None:
        """Connect, and create or migrate the schema.

        Nothing is reset: items other workers are sending stay theirs until
        their leases run out.

        Raises:
            StoreError: The server cannot be reached, the database holds another
                application's tables, or its schema is newer than this omnichannel.
            ConfigurationError: psycopg is not installed.
        """
        async with self._lock:
            if self._pool is None:
                pool, version = await anyio.to_thread.run_sync(self._open)
                self._pool, self.schema_version = pool, version

    async def aclose(self) -> None:
        """Close the pool; the store may be opened again."""
        async with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await anyio.to_thread.run_sync(pool.close)
            async with self._listening:  # after any wait under way has returned
                listener, self._listener = self._listener, None
                if listener is not None:
                    await anyio.to_thread.run_sync(listener.close)

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
        keys = _batch_lock_keys(batch, ())
        now = utcnow()

        def work(conn: Any) -> list[Event]:
            _lock_all(conn, keys)
            new: list[Event] = []
            for event in batch:
                inserted = conn.execute(
                    "INSERT INTO events (id, network, type, json, received_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (
                        event.id,
                        event.network,
                        event.type,
                        event.model_dump_json(),
                        as_utc(event.received_at, "received_at"),
                    ),
                ).rowcount
                if inserted == 1:
                    new.append(event)
                    _apply(conn, event)
            if cursor is not None:
                conn.execute(
                    "INSERT INTO cursors (network, stream, cursor, updated_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (network, stream)"
                    " DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (network, stream, cursor, now),
                )
            return new

        return await self._call(work, write=True)

    async def get_cursor(self, network: str, stream: str = "default") -> str | None:
        """Return the cursor saved by the last batch of ``network``/``stream``."""

        def work(conn: Any) -> str | None:
            row = conn.execute(
                "SELECT cursor FROM cursors WHERE network = %s AND stream = %s", (network, stream)
            ).fetchone()
            return None if row is None else str(row["cursor"])

        return await self._call(work)

    async def mark_handled(self, event_id: str) -> None:
        """Mark an event handled (an unknown id is ignored)."""
        await self._call(
            lambda conn: conn.execute(
                "UPDATE events SET handled = TRUE WHERE id = %s", (event_id,)
            ),
            write=True,
        )

    async def unhandled_events(self, network: str | None = None) -> list[Event]:
        """Return the events not yet handled, in the order they were recorded."""

        def work(conn: Any) -> list[Event]:
            rows = conn.execute(
                "SELECT json FROM events WHERE NOT handled"
                " AND (%s::text IS NULL OR network = %s) ORDER BY seq",
                (network, network),
            ).fetchall()
            return [parse_event(row["json"]) for row in rows]

        return await self._call(work)

    async def seen(self, event_id: str) -> bool:
        """Return whether an event with this id was recorded."""

        def work(conn: Any) -> bool:
            row = conn.execute("SELECT 1 AS one FROM events WHERE id = %s", (event_id,)).fetchone()
            return row is not None

        return await self._call(work)

    async def is_handled(self, event_id: str) -> bool:
        """Return whether the event was recorded and marked handled."""

        def work(conn: Any) -> bool:
            row = conn.execute("SELECT handled FROM events WHERE id = %s", (event_id,)).fetchone()
            return row is not None and bool(row["handled"])

        return await self._call(work)

    # messages

    async def get_message(self, ref: Ref) -> Message | None:
        """Return a stored message, or ``None`` (also when it was deleted)."""

        def work(conn: Any) -> Message | None:
            row = conn.execute(
                "SELECT json FROM messages WHERE network = %s AND id = %s AND NOT deleted",
                (ref.network, ref.id),
            ).fetchone()
            return None if row is None else Message.model_validate_json(row["json"])

        return await self._call(work)

    async def get_conversation(self, ref: Ref) -> Conversation | None:
        """Return a stored conversation, or ``None``."""
        return await self._call(lambda conn: _conversation(conn, ref))

    async def conversation_messages(self, ref: Ref, *, limit: int = 100) -> list[Message]:
        """Return the latest ``limit`` messages of a conversation, oldest first."""

        def work(conn: Any) -> list[Message]:
            rows = conn.execute(
                "SELECT json FROM messages"
                " WHERE network = %s AND conversation = %s AND NOT deleted"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (ref.network, ref.id, max(limit, 0)),
            ).fetchall()
            return [Message.model_validate_json(row["json"]) for row in reversed(rows)]

        return await self._call(work)

    async def list_conversations(
        self, *, network: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Return conversations, most recent activity first."""

        def work(conn: Any) -> list[Conversation]:
            rows = conn.execute(
                "SELECT json FROM conversations WHERE (%s::text IS NULL OR network = %s)"
                " ORDER BY last_activity_at DESC, id DESC LIMIT %s",
                (network, network, max(limit, 0)),
            ).fetchall()
            return [Conversation.model_validate_json(row["json"]) for row in rows]

        return await self._call(work)

    async def search(
        self, query: str, *, network: str | None = None, limit: int = 20
    ) -> list[Message]:
        """Return messages containing every word of ``query``, best match first.

        PostgreSQL's full-text search over the words of each message (case
        and accents folded as for SQLite's index), ranked by ``ts_rank``. A
        word ending in ``*`` matches as a prefix; any other punctuation is
        plain text.
        """
        expression = _tsquery(query)
        if expression is None:
            return []

        def work(conn: Any) -> list[Message]:
            rows = conn.execute(
                _SEARCH, (expression, network, network, max(limit, 0))
            ).fetchall()
            return [Message.model_validate_json(row["json"]) for row in rows]

        return await self._call(work)

    async def save_messages(self, messages: Sequence[Message]) -> None:
        """Upsert messages (our own sent replies, fetched history)."""
        batch = list(messages)
        keys = _batch_lock_keys((), batch)

        def work(conn: Any) -> None:
            _lock_all(conn, keys)
            for message in batch:
                _upsert_message(conn, message, None)

        await self._call(work, write=True)

    # outbox

    async def enqueue(self, item: OutboxItem) -> OutboxItem:
        """Add an item; when its key is already queued, return the stored one."""

        def work(conn: Any) -> OutboxItem:
            conn.execute(
                f"INSERT INTO outbox ({_OUTBOX_COLUMNS}, order_key)"  # noqa: S608 - a constant
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (
                    item.key,
                    item.network,
                    item.status,
                    item.attempts,
                    item.next_attempt_at,
                    item.created_at,
                    item.updated_at,
                    item.origin,
                    item.approved_by,
                    item.recipient,
                    item.text_digest,
                    item.last_error,
                    _ACTION.dump_json(item.action).decode(),
                    None if item.sent is None else item.sent.model_dump_json(),
                    item.worker,
                    item.lease_until,
                    item.order_key,
                ),
            )
            if self.notify:  # delivered on commit, to every worker listening
                conn.execute("SELECT pg_notify(%s, %s)", (self._channel, item.network))
            return _require_outbox(conn, item.key)

        return await self._call(work, write=True)

    @property
    def _channel(self) -> str:
        return f"omnichannel_outbox_{self.schema or 'public'}"

    async def wait_for_work(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for an outbox item queued by any worker; return whether one was.

        The outbox worker calls it while idle (``LISTEN`` on a connection of
        its own), so an item another process queues is delivered at once
        rather than at the next poll. Returns ``False`` after ``seconds``
        when nothing came, when ``notify`` is off, or when the listening
        connection failed (it is opened again on the next call).
        """
        if not self.notify or self._pool is None:
            await anyio.sleep(seconds)
            return False
        async with self._listening:
            return await anyio.to_thread.run_sync(self._wait_for_notification, seconds)

    def _wait_for_notification(self, timeout: float) -> bool:
        import psycopg

        try:
            if self._listener is None:
                listener = psycopg.connect(self._url, **self._connect_kwargs())
                listener.execute(f"LISTEN {self._channel}")
                self._listener = listener
            return any(True for _ in self._listener.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error:
            broken, self._listener = self._listener, None
            if broken is not None:
                with contextlib.suppress(psycopg.Error):
                    broken.close()
            time.sleep(min(timeout, 1.0))
            return False

    async def get_outbox(self, key: str) -> OutboxItem | None:
        """Return the item with this key, or ``None``."""
        return await self._call(lambda conn: _get_outbox(conn, key))

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int = 10,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[OutboxItem]:
        """Claim due items for ``worker``, oldest first (see `Store.claim_due`).

        The due rows are locked with ``FOR UPDATE SKIP LOCKED``: two stores
        claiming at the same moment take different items, never the same one.
        """
        at = as_utc(now, "now")
        values = {"now": at, "until": at + lease, "worker": worker, "limit": max(limit, 0)}

        def work(conn: Any) -> list[OutboxItem]:
            rows = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, updated_at = %(now)s,"  # noqa: S608 - constants only
                " worker = %(worker)s, lease_until = %(until)s,"
                " status = CASE WHEN status = 'pending' THEN 'sending' ELSE 'ambiguous' END"
                f" WHERE key IN (SELECT key FROM outbox AS o WHERE ({_DUE}) AND {_FIRST_IN_LINE}"
                "  ORDER BY created_at, key LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED)"
                f" RETURNING {_OUTBOX_COLUMNS}",
                values,
            ).fetchall()
            items = [_outbox_item(row) for row in rows]
            return sorted(items, key=lambda item: (item.created_at, item.key))

        return await self._call(work, write=True)

    async def renew_claims(
        self,
        keys: Sequence[str],
        *,
        worker: str,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[str]:
        """Extend ``worker``'s claims on ``keys``; return the keys renewed."""
        wanted = list(keys)
        values = {"until": as_utc(now, "now") + lease, "keys": wanted, "worker": worker}

        def work(conn: Any) -> list[str]:
            rows = conn.execute(
                "UPDATE outbox SET lease_until = %(until)s"  # noqa: S608 - constants only
                f" WHERE key = ANY(%(keys)s) AND {_HELD} RETURNING key",
                values,
            ).fetchall()
            renewed = {row["key"] for row in rows}
            return [key for key in wanted if key in renewed]

        return await self._call(work, write=True)

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
        due = None if next_attempt_at is None else as_utc(next_attempt_at, "next_attempt_at")
        sent_json = None if sent is None else sent.model_dump_json()
        now = utcnow()

        def work(conn: Any) -> OutboxItem:
            if worker is not None:
                held = conn.execute(
                    f"SELECT ({_HELD}) AS held"  # noqa: S608 - constants only
                    " FROM outbox WHERE key = %(key)s FOR UPDATE",
                    {"key": key, "worker": worker},
                ).fetchone()
                if held is None:
                    raise RecordNotFound("outbox item", key)
                if not held["held"]:
                    raise lease_lost(key, worker)
            row = conn.execute(
                "UPDATE outbox SET status = %s, updated_at = %s, lease_until = NULL,"  # noqa: S608 - constants only
                " next_attempt_at = COALESCE(%s, next_attempt_at),"
                " last_error = COALESCE(%s, last_error),"
                " sent = COALESCE(%s, sent)"
                f" WHERE key = %s RETURNING {_OUTBOX_COLUMNS}",
                (status, now, due, last_error, sent_json, key),
            ).fetchone()
            if row is None:
                raise RecordNotFound("outbox item", key)
            if audit is not None:
                _insert_audit(conn, audit)
            return _outbox_item(row)

        return await self._call(work, write=True)

    async def list_outbox(
        self, *, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Return items (all, or those with ``status``), oldest first."""

        def work(conn: Any) -> list[OutboxItem]:
            rows = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox"  # noqa: S608 - a constant
                " WHERE (%s::text IS NULL OR status = %s) ORDER BY created_at, key LIMIT %s",
                (status, status, max(limit, 0)),
            ).fetchall()
            return [_outbox_item(row) for row in rows]

        return await self._call(work)

    async def recent_recipients(
        self, *, network: str, text_digest: str, since: datetime
    ) -> list[str]:
        """Return who was sent this text since ``since`` (not failed or cancelled)."""
        start = as_utc(since, "since")

        def work(conn: Any) -> list[str]:
            rows = conn.execute(
                "SELECT recipient FROM outbox"
                " WHERE network = %s AND text_digest = %s AND created_at >= %s"
                " AND recipient IS NOT NULL AND status NOT IN ('failed', 'cancelled')"
                " ORDER BY created_at, key",
                (network, text_digest, start),
            ).fetchall()
            return list(dict.fromkeys(str(row["recipient"]) for row in rows))

        return await self._call(work)

    # named leases

    async def acquire_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Take the lease ``name`` for ``holder`` (see `Store.acquire_lease`)."""
        at = as_utc(now, "now")
        values = {"name": name, "holder": holder, "until": at + ttl, "now": at}

        def work(conn: Any) -> bool:
            row = conn.execute(
                "INSERT INTO leases (name, holder, expires_at)"
                " VALUES (%(name)s, %(holder)s, %(until)s)"
                " ON CONFLICT (name) DO UPDATE"
                " SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
                " WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= %(now)s"
                " RETURNING holder",
                values,
            ).fetchone()
            return row is not None

        return await self._call(work, write=True)

    async def renew_lease(
        self, name: str, *, holder: str, ttl: timedelta, now: datetime
    ) -> bool:
        """Extend ``holder``'s unexpired lease (see `Store.renew_lease`)."""
        at = as_utc(now, "now")

        def work(conn: Any) -> bool:
            row = conn.execute(
                "UPDATE leases SET expires_at = %s WHERE name = %s AND holder = %s"
                " AND expires_at > %s RETURNING name",
                (at + ttl, name, holder, at),
            ).fetchone()
            return row is not None

        return await self._call(work, write=True)

    async def release_lease(self, name: str, *, holder: str) -> bool:
        """Give the lease back if ``holder`` holds it."""

        def work(conn: Any) -> bool:
            row = conn.execute(
                "DELETE FROM leases WHERE name = %s AND holder = %s RETURNING name",
                (name, holder),
            ).fetchone()
            return row is not None

        return await self._call(work, write=True)

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Return who holds the lease ``name`` at ``now``, or ``None``."""
        at = as_utc(now, "now")

        def work(conn: Any) -> str | None:
            row = conn.execute(
                "SELECT holder FROM leases WHERE name = %s AND expires_at > %s", (name, at)
            ).fetchone()
            return None if row is None else str(row["holder"])

        return await self._call(work)

    # values

    async def get_value(self, scope: str, key: str) -> str | None:
        """Return the value of ``key`` in ``scope``, or ``None``."""
        def work(conn: Any) -> str | None:
            row = conn.execute("SELECT value FROM named_values WHERE scope = %s AND key = %s",
                               (scope, key)).fetchone()
            return None if row is None else str(row["value"])

        return await self._call(work)

    async def put_value(self, scope: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``scope`` (replacing any)."""
        await self._call(
            lambda conn: conn.execute(
                "INSERT INTO named_values (scope, key, value, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (scope, key) DO UPDATE SET"
                " value = excluded.value, updated_at = excluded.updated_at",
                (scope, key, value, utcnow()),
            ),
            write=True,
        )

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget ``key`` in ``scope``."""
        await self._call(
            lambda conn: conn.execute(
                "DELETE FROM named_values WHERE scope = %s AND key = %s", (scope, key)),
            write=True,
        )

    async def add_values(
        self,
        scope: str,
        amounts: Mapping[str, Decimal],
        *,
        limits: Mapping[str, Decimal] | None = None,
    ) -> dict[str, Decimal] | None:
        """Add each amount to its key's number, all or none, under row locks.

        The rows are created first (``0``) and locked in key order, so workers
        adding to the same keys at once wait for each other instead of
        losing an addition or deadlocking.
        """
        keys = sorted(amounts)
        at = utcnow()

        def work(conn: Any) -> dict[str, Decimal] | None:
            for key in keys:
                conn.execute(
                    "INSERT INTO named_values (scope, key, value, updated_at)"
                    " VALUES (%s, %s, '0', %s) ON CONFLICT (scope, key) DO NOTHING",
                    (scope, key, at),
                )
            rows = conn.execute(
                "SELECT key, value FROM named_values WHERE scope = %s AND key = ANY(%s)"
                " ORDER BY key FOR UPDATE", (scope, keys),
            ).fetchall()
            current: dict[str, str | None] = {str(row["key"]): str(row["value"]) for row in rows}
            totals = added_values(scope, current, amounts, limits)
            for key, total in (totals or {}).items():
                conn.execute(
                    "UPDATE named_values SET value = %s, updated_at = %s"
                    " WHERE scope = %s AND key = %s", (str(total), at, scope, key),
                )
            return totals

        return await self._call(work, write=True)

    # drafts

    async def add_draft(self, draft: Draft) -> None:
        """Store a new draft.

        Raises:
            StoreConflict: A draft with this id exists.
        """

        def work(conn: Any) -> None:
            inserted = conn.execute(
                f"INSERT INTO drafts ({_DRAFT_COLUMNS})"  # noqa: S608 - a constant
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (
                    draft.id,
                    draft.status,
                    draft.event_id,
                    _DRAFT_ACTION.dump_json(draft.action).decode(),
                    draft.created_at,
                    draft.decided_at,
                    draft.decided_by,
                    draft.reason,
                    draft.note,
                    draft.origin,
                ),
            ).rowcount
            if inserted != 1:
                raise StoreConflict(
                    f"draft {draft.id} already exists", record="draft", key=draft.id
                )

        await self._call(work, write=True)

    async def get_draft(self, draft_id: str) -> Draft | None:
        """Return a draft, or ``None``."""
        return await self._call(lambda conn: _get_draft(conn, draft_id))

    async def list_drafts(
        self, *, status: DraftStatus | None = "pending", limit: int = 100
    ) -> list[Draft]:
        """Return drafts (those with ``status``, or all with ``None``), oldest first."""

        def work(conn: Any) -> list[Draft]:
            rows = conn.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM drafts"  # noqa: S608 - a constant
                " WHERE (%s::text IS NULL OR status = %s) ORDER BY created_at, id LIMIT %s",
                (status, status, max(limit, 0)),
            ).fetchall()
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

        def work(conn: Any) -> Draft:
            draft = _get_draft(conn, draft_id, for_update=True)
            if draft is None:
                raise RecordNotFound("draft", draft_id)
            result = decided(draft, status=status, by=by, reason=reason, action=action, at=at)
            conn.execute(
                "UPDATE drafts SET status = %s, action = %s, decided_at = %s, decided_by = %s,"
                " reason = %s WHERE id = %s",
                (
                    result.status,
                    _DRAFT_ACTION.dump_json(result.action).decode(),
                    at,
                    result.decided_by,
                    result.reason,
                    draft_id,
                ),
            )
            return result

        return await self._call(work, write=True)

    # audit, dead letters, failures

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (its ``id`` is assigned)."""
        await self._call(lambda conn: _insert_audit(conn, entry), write=True)

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        return await self._newest("audit", _audit, limit)

    # conversation state ----------------------------------------------------

    async def get_state(self, conversation: Ref) -> ConversationState | None:
        """Return the stored state of ``conversation``, if any."""
        return await self._call(lambda conn: _get_state(conn, conversation))

    async def put_state(
        self, state: ConversationState, *, expected_version: int,
        changes: Sequence[StateChange] = (),
    ) -> ConversationState:
        """Write ``state`` if its stored version is ``expected_version`` (compare-and-set)."""
        return await self._call(
            lambda conn: _put_state(
                conn, state, expected_version=expected_version, changes=changes
            ),
            write=True,
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

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a body we could not use (its ``id`` is assigned)."""
        await self._call(
            lambda conn: conn.execute(
                "INSERT INTO dead_letters (at, network, reason, body, headers)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    as_utc(letter.at, "at"),
                    letter.network,
                    letter.reason,
                    letter.body,
                    json.dumps(letter.headers),
                ),
            ),
            write=True,
        )

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Return dead letters, newest first."""
        return await self._newest("dead_letters", _dead_letter, limit)

    async def add_failure(self, failure: HandlerFailure) -> None:
        """Record a handler failure (its ``id`` is assigned)."""
        await self._call(
            lambda conn: conn.execute(
                "INSERT INTO handler_failures (at, event_id, handler, error, traceback)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    as_utc(failure.at, "at"),
                    failure.event_id,
                    failure.handler,
                    failure.error,
                    failure.traceback,
                ),
            ),
            write=True,
        )

    async def failures(self, *, limit: int = 100) -> list[HandlerFailure]:
        """Return handler failures, newest first."""
        return await self._newest("handler_failures", _failure, limit)

    async def _newest(
        self,
        table: Literal["audit", "dead_letters", "handler_failures"],
        build: Callable[[_Row], _T],
        limit: int,
    ) -> list[_T]:
        statement = {
            "audit": "SELECT * FROM audit ORDER BY at DESC, id DESC LIMIT %s",
            "dead_letters": "SELECT * FROM dead_letters ORDER BY at DESC, id DESC LIMIT %s",
            "handler_failures":
                "SELECT * FROM handler_failures ORDER BY at DESC, id DESC LIMIT %s",
        }[table]

        def work(conn: Any) -> list[_T]:
            return [build(row) for row in conn.execute(statement, (max(limit, 0),)).fetchall()]

        return await self._call(work)


# Row helpers, run inside a worker thread with a connection.


def _lock_all(conn: Any, keys: list[int]) -> None:
    if keys:
        conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(k, n)"
            " ORDER BY n",
            (keys,),
        )


def _get_outbox(conn: Any, key: str) -> OutboxItem | None:
    row = conn.execute(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = %s", (key,)  # noqa: S608 - a constant
    ).fetchone()
    return None if row is None else _outbox_item(row)


def _require_outbox(conn: Any, key: str) -> OutboxItem:
    item = _get_outbox(conn, key)
    if item is None:
        raise RecordNotFound("outbox item", key)
    return item


def _insert_audit(conn: Any, entry: AuditEntry) -> None:
    conn.execute(
        "INSERT INTO audit (at, network, action_type, idempotency_key, actor, approved_by,"
        " result_ref, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            as_utc(entry.at, "at"),
            entry.network,
            entry.action_type,
            entry.idempotency_key,
            entry.actor,
            entry.approved_by,
            entry.result_ref,
            entry.detail,
        ),
    )


def _get_draft(conn: Any, draft_id: str, *, for_update: bool = False) -> Draft | None:
    statement = f"SELECT {_DRAFT_COLUMNS} FROM drafts WHERE id = %s"  # noqa: S608 - a constant
    row = conn.execute(statement + (" FOR UPDATE" if for_update else ""), (draft_id,)).fetchone()
    return None if row is None else _draft(row)


def _conversation(conn: Any, ref: Ref) -> Conversation | None:
    row = conn.execute(
        "SELECT json FROM conversations WHERE network = %s AND id = %s", (ref.network, ref.id)
    ).fetchone()
    return None if row is None else Conversation.model_validate_json(row["json"])


def _apply(conn: Any, event: Event) -> None:
    if isinstance(event, MessageReceived):
        _remember_people(conn, event.conversation.participants)
        _upsert_message(conn, event.message, event.conversation)
    elif isinstance(event, MessageUpdated):
        _upsert_message(conn, event.message, None)
    elif isinstance(event, MessageDeleted):
        conversation = None if event.conversation is None else event.conversation.id
        conn.execute(
            "INSERT INTO messages (network, id, conversation, text, words, deleted)"
            " VALUES (%s, %s, %s, '', '', TRUE) ON CONFLICT (network, id)"
            " DO UPDATE SET text = '', words = '', json = NULL, deleted = TRUE",
            (event.message.network, event.message.id, conversation),
        )


def _remember_people(conn: Any, people: Sequence[Person]) -> None:
    now = utcnow()
    for person in people:
        conn.execute(
            "INSERT INTO people (network, id, json, updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (network, id)"
            " DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at",
            (person.ref.network, person.ref.id, person.model_dump_json(), now),
        )


def _upsert_message(conn: Any, message: Message, conversation: Conversation | None) -> None:
    """Store a message unless a newer version is stored or it was deleted."""
    changed = conn.execute(
        "INSERT INTO messages"
        " (network, id, conversation, author, text, words, created_at, version_at, json)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (network, id) DO UPDATE SET"
        " conversation = excluded.conversation, author = excluded.author,"
        " text = excluded.text, words = excluded.words, created_at = excluded.created_at,"
        " version_at = excluded.version_at, json = excluded.json"
        " WHERE NOT messages.deleted AND messages.version_at <= excluded.version_at",
        (
            message.ref.network,
            message.ref.id,
            message.conversation.id,
            message.author.ref.id,
            message.text,
            " ".join(tokens(message.text)),
            as_utc(message.created_at, "created_at"),
            as_utc(version_at(message), "version_at"),
            message.model_dump_json(),
        ),
    ).rowcount
    if changed != 1:
        return
    _remember_people(conn, (message.author,))
    ref = message.conversation
    row = conn.execute(
        "SELECT json, last_activity_at FROM conversations WHERE network = %s AND id = %s",
        (ref.network, ref.id),
    ).fetchone()
    existing = None if row is None else Conversation.model_validate_json(row["json"])
    merged = merge_conversation(existing, conversation, message)
    last = as_utc(message.created_at, "created_at")
    if row is not None and row["last_activity_at"] > last:
        last = row["last_activity_at"]
    conn.execute(
        "INSERT INTO conversations (network, id, kind, json, last_activity_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (network, id) DO UPDATE SET"
        " kind = excluded.kind, json = excluded.json,"
        " last_activity_at = excluded.last_activity_at",
        (ref.network, ref.id, merged.kind, merged.model_dump_json(), last),
    )
