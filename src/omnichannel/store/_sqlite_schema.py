"""The SQLite schema, as forward migrations applied in order.

``PRAGMA user_version`` holds how many migrations a database has had. Never edit
a migration that shipped: append a new one. Tables use standard SQL types so a
PostgreSQL schema can mirror them; only the search index (FTS5) is SQLite's own.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

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

MIGRATIONS: tuple[str, ...] = (_V1_CORE, _V2_SEARCH, _V3_DRAFT_ORIGIN)
"""Migration ``n`` (1-based) brings a database from ``user_version`` ``n - 1`` to ``n``."""
