"""The conversation-state role of the SQLite store, as functions on a connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from ..errors import StoreConflict
from ..model import Ref
from ._rules import as_utc
from ._state_rules import earliest_warning
from .states import ConversationState, ConversationStatus, StateChange

__all__ = ["get_state", "list_states", "put_state", "state_changes"]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value, "time").isoformat(timespec="microseconds")


def get_state(conn: sqlite3.Connection, conversation: Ref) -> ConversationState | None:
    row = conn.execute(
        "SELECT json FROM conversation_states WHERE network = ? AND id = ?",
        (conversation.network, conversation.id),
    ).fetchone()
    return None if row is None else ConversationState.model_validate_json(row[0])


def put_state(
    conn: sqlite3.Connection, state: ConversationState, *, expected_version: int,
    changes: Sequence[StateChange],
) -> ConversationState:
    ref = state.conversation
    written = state.model_copy(update={"version": expected_version + 1})
    values = (
        written.version, written.status, written.assignee, written.queue,
        _ts(written.next_due()), _ts(earliest_warning(written)), _ts(written.updated_at),
        written.model_dump_json(),
    )
    if expected_version == 0:
        cursor = conn.execute(
            "INSERT INTO conversation_states (version, status, assignee, queue, next_due,"
            " first_alert, updated_at, json, network, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (network, id) DO NOTHING",
            (*values, ref.network, ref.id),
        )
    else:
        cursor = conn.execute(
            "UPDATE conversation_states SET version = ?, status = ?, assignee = ?, queue = ?,"
            " next_due = ?, first_alert = ?, updated_at = ?, json = ?"
            " WHERE network = ? AND id = ? AND version = ?",
            (*values, ref.network, ref.id, expected_version),
        )
    if cursor.rowcount != 1:
        raise StoreConflict(
            f"conversation {ref.network}:{ref.id} changed (expected version {expected_version})",
            record="conversation state", key=f"{ref.network}:{ref.id}",
        )
    conn.executemany(
        "INSERT INTO state_changes (network, id, json) VALUES (?, ?, ?)",
        [
            (ref.network, ref.id,
             change.model_copy(update={"version": written.version}).model_dump_json())
            for change in changes
        ],
    )
    return written


def list_states(
    conn: sqlite3.Connection,
    *,
    status: Sequence[ConversationStatus] | None,
    assignee: str | None,
    queue: str | None,
    network: str | None,
    due_before: datetime | None,
    limit: int,
) -> list[ConversationState]:
    where: list[str] = []
    params: list[object] = []
    if status is not None:
        if not status:
            return []
        where.append(f"status IN ({', '.join('?' for _ in status)})")
        params.extend(status)
    for column, value in (("assignee", assignee), ("queue", queue), ("network", network)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if due_before is not None:
        where.append("first_alert < ?")
        params.append(_ts(due_before))
    sql = "SELECT json FROM conversation_states"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY next_due IS NULL, next_due, updated_at DESC LIMIT ?"
    params.append(max(limit, 0))
    return [ConversationState.model_validate_json(row[0]) for row in conn.execute(sql, params)]


def state_changes(conn: sqlite3.Connection, conversation: Ref, *, limit: int) -> list[StateChange]:
    rows = conn.execute(
        "SELECT json FROM (SELECT seq, json FROM state_changes WHERE network = ? AND id = ?"
        " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (conversation.network, conversation.id, max(limit, 0)),
    ).fetchall()
    return [StateChange.model_validate_json(row[0]) for row in rows]
