"""The PostgreSQL schema, as forward migrations applied in order.

Table ``omnichannel_migrations`` holds one row per migration a database has
had. Never edit a migration that shipped: append a new one. The tables mirror
the SQLite schema with PostgreSQL's own types: ``timestamptz`` times, identity
columns for the order of events, messages and log lines, ``bytea`` bodies and a
generated ``tsvector`` column for search. Ids compared for order use the ``C``
collation, so rows come back in the same order as from SQLite, whatever the
database's locale.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "TABLES"]

_V1_CORE = """
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    network TEXT NOT NULL,
    type TEXT NOT NULL,
    json TEXT NOT NULL,
    handled BOOLEAN NOT NULL DEFAULT FALSE,
    received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_unhandled ON events (network, seq) WHERE NOT handled;

CREATE TABLE cursors (
    network TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (network, stream)
);

CREATE TABLE people (
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    json TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (network, id)
);

CREATE TABLE conversations (
    network TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    json TEXT NOT NULL,
    last_activity_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (network, id)
);
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);

CREATE TABLE messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    network TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    conversation TEXT,
    author TEXT,
    text TEXT NOT NULL DEFAULT '',
    words TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ,
    version_at TIMESTAMPTZ,
    json TEXT,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    search TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', words)) STORED,
    UNIQUE (network, id)
);
CREATE INDEX messages_conversation ON messages (network, conversation, created_at);
CREATE INDEX messages_search ON messages USING GIN (search);

CREATE TABLE outbox (
    key TEXT COLLATE "C" PRIMARY KEY,
    network TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
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
    id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL,
    event_id TEXT,
    action TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ,
    decided_by TEXT,
    reason TEXT,
    note TEXT,
    origin TEXT
);
CREATE INDEX drafts_status ON drafts (status, created_at);

CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    network TEXT NOT NULL,
    reason TEXT NOT NULL,
    body BYTEA NOT NULL,
    headers TEXT NOT NULL
);

CREATE TABLE handler_failures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    event_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    error TEXT NOT NULL,
    traceback TEXT NOT NULL
);
"""

# The helpdesk's conversation states (compare-and-set on ``version``) and their
# audited changes; ``next_due``/``first_alert`` order and filter the queue in SQL.
_V2_STATES = """
CREATE TABLE conversation_states (
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    queue TEXT,
    next_due TIMESTAMPTZ,
    first_alert TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    json JSONB NOT NULL,
    PRIMARY KEY (network, id)
);
CREATE INDEX conversation_states_queue ON conversation_states (status, next_due);
CREATE TABLE state_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    network TEXT NOT NULL,
    id TEXT NOT NULL,
    json JSONB NOT NULL
);
CREATE INDEX state_changes_conversation ON state_changes (network, id, seq);
"""

# Leases, so several workers share one database: who claimed an outbox item
# and until when (NULL: nobody holds it), and named leases (one holder at a
# time, each with an expiry). Items left ``sending`` before this have no lease:
# the next claim may take them, as ``ambiguous``.
_V3_LEASES = """
ALTER TABLE outbox ADD COLUMN worker TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TIMESTAMPTZ;
CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"""

# Small named values kept across restarts (an adapter's rotated tokens, say).
_V4_VALUES = """
CREATE TABLE named_values (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
"""

# One conversation's outbox items go out in the order they were queued: each
# item keeps its place in the queue (``queued``, an identity) and what it is
# ordered within (``order_key``: ``conversation:<id>``, ``target:<id>``, NULL
# for posts). The partial index holds the unfinished items only, so a claim
# finds what an item waits for in one index lookup. Items queued before keep
# their creation order, and the unfinished ones get their order key.
_V5_ORDER = """
ALTER TABLE outbox ADD COLUMN queued BIGINT GENERATED BY DEFAULT AS IDENTITY;
UPDATE outbox SET queued = numbered.n
FROM (SELECT key, row_number() OVER (ORDER BY created_at, key) AS n FROM outbox) AS numbered
WHERE outbox.key = numbered.key;
ALTER TABLE outbox ALTER COLUMN queued SET NOT NULL;
ALTER TABLE outbox ADD COLUMN order_key TEXT COLLATE "C";
UPDATE outbox SET order_key = CASE
    WHEN action::jsonb ->> 'type' IN ('reply', 'private_reply')
        THEN 'conversation:' || (action::jsonb #>> '{to,conversation,id}')
    WHEN action::jsonb ->> 'type' IN ('react', 'hide', 'delete')
        THEN 'target:' || (action::jsonb #>> '{target,id}')
    END
WHERE status IN ('pending', 'sending', 'ambiguous');
CREATE UNIQUE INDEX outbox_queued ON outbox (queued);
CREATE INDEX outbox_line ON outbox (network, order_key, queued)
    WHERE status IN ('pending', 'sending', 'ambiguous') AND order_key IS NOT NULL;
"""

MIGRATIONS: tuple[str, ...] = (_V1_CORE, _V2_STATES, _V3_LEASES, _V4_VALUES, _V5_ORDER)
"""Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``."""

TABLES: tuple[str, ...] = (
    "events", "cursors", "people", "conversations", "messages", "outbox", "drafts", "audit",
    "dead_letters", "handler_failures", "conversation_states", "state_changes", "leases",
    "named_values",
)
"""The tables of the schema: a database holding one of them without the migrations
table belongs to another application."""
