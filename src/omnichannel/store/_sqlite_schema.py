"""The SQLite schema, as forward migrations applied in order.

``PRAGMA user_version`` holds how many migrations a database has had. Never edit
a migration that shipped: append a new one. Tables use standard SQL types so a
PostgreSQL schema can mirror them; only the search index (FTS5) is SQLite's own.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Callable
from typing import Any

__all__ = ["DATA_MIGRATIONS", "MIGRATIONS", "payload_json", "store_payload"]

_V1_CORE = """
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    type TEXT NOT NULL,
    json TEXT NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0,
    received_at TEXT NOT NULL
);
CREATE INDEX events_unhandled ON events (handled, network);

CREATE TABLE cursors (
    network TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (network, stream)
);

CREATE TABLE people (
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (network, id)
);

CREATE TABLE conversations (
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    json TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    PRIMARY KEY (network, id)
);
CREATE INDEX conversations_activity ON conversations (last_activity_at);

CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    conversation TEXT,
    author TEXT,
    text TEXT NOT NULL DEFAULT '',
    created_at TEXT,
    version_at TEXT,
    json TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (network, id)
);
CREATE INDEX messages_conversation ON messages (network, conversation, created_at);

CREATE TABLE outbox (
    key TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    origin TEXT NOT NULL,
    approved_by TEXT,
    recipient TEXT,
    text_digest TEXT,
    last_error TEXT,
    action TEXT NOT NULL,
    sent TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_digest ON outbox (network, text_digest, created_at);

CREATE TABLE drafts (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    event_id TEXT,
    action TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    reason TEXT,
    note TEXT
);
CREATE INDEX drafts_status ON drafts (status, created_at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    network TEXT NOT NULL,
    action_type TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    actor TEXT NOT NULL,
    approved_by TEXT,
    result_ref TEXT,
    detail TEXT
);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    network TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL
);

CREATE TABLE handler_failures (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    error TEXT NOT NULL,
    traceback TEXT NOT NULL
);
"""

# Full-text search over message text. The index points at messages.seq (an
# INTEGER PRIMARY KEY, so VACUUM never renumbers it) and triggers keep it in step.
_V2_SEARCH = """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    content='messages',
    content_rowid='seq',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
"""

# Who or what wrote a draft ("handler:<name>", "agent:<id>"); NULL for drafts
# stored before this column existed.
_V3_DRAFT_ORIGIN = """
ALTER TABLE drafts ADD COLUMN origin TEXT;
"""

# A message's native payload (``Message.raw``) is stored once, in ``payloads``,
# as its JSON text compressed with zlib (native JSON repeats its keys and
# shrinks 2-4x), keyed by a digest of that text; the event, the message and the outbox
# action that carry it hold the digest in their ``raw`` column and their JSON
# leaves ``raw`` out. Rows written before keep ``raw`` inside their JSON until
# the data step below moves it out.
_V4_PAYLOADS = """
CREATE TABLE payloads (
    digest BLOB PRIMARY KEY,
    raw BLOB NOT NULL
);
ALTER TABLE events ADD COLUMN raw BLOB;
ALTER TABLE messages ADD COLUMN raw BLOB;
ALTER TABLE outbox ADD COLUMN raw BLOB;
"""

# The helpdesk's conversation states (compare-and-set on ``version``) and their
# audited changes. ``next_due`` and ``first_alert`` are the earliest SLA due and
# warning-or-due times, kept beside the JSON so the queue is ordered and
# filtered in SQL.
_V5_STATES = """
CREATE TABLE conversation_states (
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    queue TEXT,
    next_due TEXT,
    first_alert TEXT,
    updated_at TEXT,
    json TEXT NOT NULL,
    PRIMARY KEY (network, id)
);
CREATE INDEX conversation_states_queue ON conversation_states (status, next_due);
CREATE TABLE state_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX state_changes_conversation ON state_changes (network, id, seq);
"""


# Leases, so several workers can share a store's data: who claimed an outbox
# item and until when (NULL: nobody holds it), and named leases (one holder at a
# time, each with an expiry). Items left ``sending`` before this have no lease:
# the next claim may take them, as ``ambiguous``.
_V6_LEASES = """
ALTER TABLE outbox ADD COLUMN worker TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TEXT;
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""

# Small named values kept across restarts (an adapter's rotated tokens, say).
_V7_VALUES = """
CREATE TABLE named_values (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""

# One conversation's outbox items go out in the order they were queued: each
# item keeps its place in the queue (``queued``, counted up at enqueue) and what
# it is ordered within (``order_key``: ``conversation:<id>``, ``target:<id>``,
# NULL for posts). The partial index holds the unfinished items only, so the
# claim finds what an item waits for in one index lookup. Items queued before
# keep the queue's order (their rowid) and get their order key in the data step.
_V8_ORDER = """
ALTER TABLE outbox ADD COLUMN queued INTEGER;
ALTER TABLE outbox ADD COLUMN order_key TEXT;
UPDATE outbox SET queued = rowid;
CREATE UNIQUE INDEX outbox_queued ON outbox (queued);
CREATE INDEX outbox_line ON outbox (network, order_key, queued)
    WHERE status IN ('pending', 'sending', 'ambiguous') AND order_key IS NOT NULL;
"""


def action_order_key(action: dict[str, Any]) -> str | None:
    """The order key of an action's JSON (as ``OutboxItem.order_key`` gives it)."""
    kind = action.get("type")
    if kind in ("reply", "private_reply"):
        return f"conversation:{action['to']['conversation']['id']}"
    if kind in ("react", "hide", "delete"):
        return f"target:{action['target']['id']}"
    return None


def _order_unfinished(conn: sqlite3.Connection) -> None:
    """Give every unfinished outbox item queued before migration 8 its order key."""
    rows = conn.execute(
        "SELECT key, action FROM outbox WHERE status IN ('pending', 'sending', 'ambiguous')"
    ).fetchall()
    for key, stored in rows:
        text = zlib.decompress(stored) if isinstance(stored, bytes) else stored
        order = action_order_key(json.loads(text))
        if order is not None:
            conn.execute("UPDATE outbox SET order_key = ? WHERE key = ?", (order, key))


def _json_text(value: object) -> tuple[str, bytes]:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text, text.encode()
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        text = json.dumps(value, separators=(",", ":"))
        return text, text.encode()


def payload_digest(raw: dict[str, Any]) -> tuple[bytes, bytes]:
    """Return the digest under which a native payload is stored, and its JSON text (UTF-8)."""
    data = _json_text(raw)[1]
    return hashlib.blake2b(data, digest_size=16).digest(), data


def store_payload(
    conn: sqlite3.Connection, raw: dict[str, Any], encoded: tuple[bytes, bytes] | None = None
) -> bytes:
    """Store a native payload unless stored already; return its digest.

    ``encoded`` is what `payload_digest` gave for ``raw``, when the caller has it.
    """
    digest, data = payload_digest(raw) if encoded is None else encoded
    if conn.execute("SELECT 1 FROM payloads WHERE digest = ?", (digest,)).fetchone() is None:
        conn.execute(
            "INSERT INTO payloads (digest, raw) VALUES (?, ?)", (digest, zlib.compress(data))
        )
    return digest


def payload_json(stored: bytes) -> str:
    """The JSON text of a stored native payload."""
    return zlib.decompress(stored).decode()


def _move_payloads(conn: sqlite3.Connection) -> None:
    """Move every native payload stored inside a row's JSON into ``payloads``."""
    # Literal statements, one pair per table (no SQL assembled from names).
    targets: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        (
            "SELECT id, json FROM events WHERE instr(json, '\"raw\":{') > 0",
            "UPDATE events SET json = ?, raw = ? WHERE id = ?",
            ("message",),
        ),
        (
            "SELECT seq, json FROM messages WHERE instr(json, '\"raw\":{') > 0",
            "UPDATE messages SET json = ?, raw = ? WHERE seq = ?",
            (),
        ),
        (
            "SELECT key, action FROM outbox WHERE instr(action, '\"raw\":{') > 0",
            "UPDATE outbox SET action = ?, raw = ? WHERE key = ?",
            ("to",),
        ),
    )
    for select, update, path in targets:
        for row_key, text in conn.execute(select).fetchall():
            document = json.loads(text)
            holder = document
            for step in path:
                holder = holder.get(step) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or not isinstance(holder.get("raw"), dict):
                continue
            digest = store_payload(conn, holder.pop("raw"))
            conn.execute(update, (_json_text(document)[0], digest, row_key))


MIGRATIONS: tuple[str, ...] = (
    _V1_CORE, _V2_SEARCH, _V3_DRAFT_ORIGIN, _V4_PAYLOADS, _V5_STATES, _V6_LEASES, _V7_VALUES,
    _V8_ORDER,
)
"""Migration ``n`` (1-based) brings a database from ``user_version`` ``n - 1`` to ``n``."""

DATA_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    4: _move_payloads, 8: _order_unfinished,
}
"""Steps run after migration ``n``'s script, in the same transaction."""
