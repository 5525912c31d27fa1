"""The conversation-state role of the PostgreSQL store, as functions on a connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..errors import StoreConflict
from ..model import Ref
from ._state_rules import earliest_warning
from .states import ConversationState, ConversationStatus, StateChange

__all__ = ["get_state", "list_states", "put_state", "state_changes"]


def _state(row: dict[str, Any]) -> ConversationState:
    return ConversationState.model_validate(row["json"])


def get_state(conn: Any, conversation: Ref) -> ConversationState | None:
    row = conn.execute(
        "SELECT json FROM conversation_states WHERE network = %s AND id = %s",
        (conversation.network, conversation.id),
    ).fetchone()
    return None if row is None else _state(row)


def put_state(
    conn: Any, state: ConversationState, *, expected_version: int,
    changes: Sequence[StateChange],
) -> ConversationState:
    ref = state.conversation
    written = state.model_copy(update={"version": expected_version + 1})
    values = (
        written.version, written.status, written.assignee, written.queue, written.next_due(),
        earliest_warning(written), written.updated_at, written.model_dump_json(),
    )
    if expected_version == 0:
        cursor = conn.execute(
            "INSERT INTO conversation_states (version, status, assignee, queue, next_due,"
            " first_alert, updated_at, json, network, id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
            " ON CONFLICT (network, id) DO NOTHING",
            (*values, ref.network, ref.id),
        )
    else:
        cursor = conn.execute(
            "UPDATE conversation_states SET version = %s, status = %s, assignee = %s,"
            " queue = %s, next_due = %s, first_alert = %s, updated_at = %s, json = %s::jsonb"
            " WHERE network = %s AND id = %s AND version = %s",
            (*values, ref.network, ref.id, expected_version),
        )
    if cursor.rowcount != 1:
        raise StoreConflict(
            f"conversation {ref.network}:{ref.id} changed (expected version {expected_version})",
            record="conversation state", key=f"{ref.network}:{ref.id}",
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO state_changes (network, id, json) VALUES (%s, %s, %s::jsonb)",
            [
                (ref.network, ref.id,
                 change.model_copy(update={"version": written.version}).model_dump_json())
                for change in changes
            ],
        )
    return written


def list_states(
    conn: Any,
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
        where.append("status = ANY(%s)")
        params.append(list(status))
    for column, value in (("assignee", assignee), ("queue", queue), ("network", network)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if due_before is not None:
        where.append("first_alert < %s")
        params.append(due_before)
    sql = "SELECT json FROM conversation_states"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY next_due ASC NULLS LAST, updated_at DESC NULLS LAST LIMIT %s"
    params.append(max(limit, 0))
    return [_state(row) for row in conn.execute(sql, params).fetchall()]


def state_changes(conn: Any, conversation: Ref, *, limit: int) -> list[StateChange]:
    rows = conn.execute(
        "SELECT json FROM (SELECT seq, json FROM state_changes WHERE network = %s AND id = %s"
        " ORDER BY seq DESC LIMIT %s) AS recent ORDER BY seq",
        (conversation.network, conversation.id, max(limit, 0)),
    ).fetchall()
    return [StateChange.model_validate(row["json"]) for row in rows]
