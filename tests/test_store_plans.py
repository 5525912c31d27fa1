"""The store work of every event finds its rows by index: none of it scans a table that grows.

A small hub-like sequence (an event recorded, its conversation read, the guardrail's
recent recipients, the reply queued, claimed, marked sent with its audit line, our
reply saved, the event marked handled and looked up, a search) runs on a store while
every statement it executes is recorded; each is then planned again (SQLite's
``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN``) and must reach the tables that grow
with the store (events, messages, outbox, payloads, conversations, people, audit)
through an index. Dropping one of the indexes the path relies on must show as a scan:
the check can fail.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.conftest import PostgresServer

from omnichannel.actions import Sent
from omnichannel.store import AuditEntry, PostgresStore, SQLiteStore, Store
from omnichannel.testing.store_conformance import NET, T0, message, received, reply_item

_T = TypeVar("_T")

GROWING = frozenset(
    {"events", "messages", "outbox", "payloads", "conversations", "people", "audit"}
)
"""Tables with rows per message or per event: a scan of one costs in proportion to the store."""


async def per_event(store: Store, first: int, count: int) -> None:
    """The store calls of a hub answering ``count`` customer messages, one at a time."""
    for n in range(first, first + count):
        at = T0 + timedelta(minutes=n)
        incoming = message(f"plan-{n}", f"where is parcel {n}", thread=f"plan-t{n % 7}", at=at)
        incoming = incoming.model_copy(update={"raw": {"id": str(n), "content": incoming.text}})
        event = received(incoming)
        await store.record_batch(NET, [event], cursor=str(n))
        await store.conversation_messages(incoming.conversation, limit=20)
        await store.recent_recipients(network=NET, text_digest="sorry",
                                      since=at - timedelta(hours=1))
        await store.enqueue(reply_item(incoming, "Sorry! Checking.", at=at,
                                       recipient=incoming.author.ref.id, digest="sorry"))
        for item in await store.claim_due(now=at, limit=20):
            ours = incoming.model_copy(update={
                "ref": incoming.ref.model_copy(update={"id": f"plan-{n}-answer"}),
                "text": "Sorry! Checking.", "created_at": at + timedelta(seconds=1)})
            await store.update_outbox(
                item.key, status="sent",
                sent=Sent(idempotency_key=item.key, ref=ours.ref, sent_at=at),
                audit=AuditEntry(at=at, network=NET, action_type="reply",
                                 idempotency_key=item.key, actor="handler:plan",
                                 result_ref=f"{NET}:{ours.ref.id}"))
            await store.save_messages([ours])
        await store.mark_handled(event.id)
        await store.is_handled(event.id)
        await store.search(f"parcel {n}", network=NET)


# SQLite

_PLANNED = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE")
# FTS5 keeps a one-row configuration table; its own index is reached by MATCH ("M").
# ``json_each`` walks a list the statement was given (the ids marked handled); ``top`` is
# search's ranked subquery, the few matches it returns (at most its limit).
_SQLITE_FINE = re.compile(
    r"SCAN (main\.)?messages_fts VIRTUAL TABLE INDEX \d+:M|SCAN (main\.)?messages_fts_config$"
    r"|SCAN json_each VIRTUAL TABLE|SCAN top$"
)


_SEARCH = re.compile(r"SEARCH \S+ USING .*\((?P<terms>[^)]*)\)")
_BROAD = frozenset({"network"})
"""Columns that alone select a whole network's rows: a search on them only is a scan."""


def sqlite_scans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Every scan in the plans of ``statements``, but the search index's own lookups.

    A ``SCAN ... USING (COVERING) INDEX`` walks a whole index, and a ``SEARCH`` by
    ``network`` alone walks a whole network's rows: both count as scans.
    """
    found = []
    for statement in dict.fromkeys(statements):
        if not statement.lstrip().upper().startswith(_PLANNED):
            continue  # BEGIN, SAVEPOINT, PRAGMA, and "--" lines of trigger bodies
        for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + statement):
            search = _SEARCH.match(detail)
            broad = search is not None and set(
                re.findall(r"(\w+)\s*[=<>]", search["terms"])) <= _BROAD
            if broad or (detail.startswith("SCAN ") and not _SQLITE_FINE.match(detail)):
                found.append(f"{detail}  <-  {' '.join(statement.split())[:160]}")
    return found


async def sqlite_statements(path: Path, drop: str | None = None) -> tuple[list[str], list[str]]:
    """Run the sequence on a store at ``path`` (without index ``drop``); its statements, scans."""
    async with SQLiteStore(path) as store:
        conn = store._conn
        assert conn is not None
        # Reads by key go to a second, read-only connection: trace both.
        connections = [c for c in (conn, store._reader) if c is not None]
        await per_event(store, 0, 3)  # rows of earlier messages, in each table
        if drop is not None:
            conn.execute(f"DROP INDEX {drop}")
        statements: list[str] = []
        for each in connections:
            each.set_trace_callback(statements.append)
        try:
            await per_event(store, 3, 3)
        finally:
            for each in connections:
                each.set_trace_callback(None)
        return statements, sqlite_scans(conn, statements)


async def test_sqlite_per_event_statements_scan_nothing(tmp_path: Path) -> None:
    """Every statement of the per-event path on SQLite searches by key or index."""
    statements, scans = await sqlite_statements(tmp_path / "store.db")
    tables = {t for s in statements for t in re.findall(r"\b(?:FROM|INTO|UPDATE) (\w+)", s)}
    assert tables >= GROWING  # the sequence reached every growing table
    assert scans == []


@pytest.mark.parametrize(
    ("index", "table"),
    [("messages_conversation", "m"), ("outbox_due", "o"), ("outbox_digest", "outbox"),
     ("outbox_line", "earlier")],
)
async def test_sqlite_a_dropped_index_shows_as_a_scan(
    tmp_path: Path, index: str, table: str
) -> None:
    """Without one of the indexes the path relies on, the check finds the scan it causes."""
    _, scans = await sqlite_statements(tmp_path / "store.db", drop=index)
    assert any(scan.startswith((f"SCAN {table} ", f"SEARCH {table} ")) for scan in scans), scans


# PostgreSQL

class _Recorder:
    """A connection that notes each statement and its parameters before running it."""

    def __init__(self, conn: Any, seen: list[tuple[Any, Any]]) -> None:
        self._conn = conn
        self._seen = seen

    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        self._seen.append((query, params))
        return self._conn.execute(query, params, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _RecordingStore(PostgresStore):
    """A `PostgresStore` whose statements are noted (``statements``) while they run."""

    statements: list[tuple[Any, Any]]

    async def _call(self, work: Callable[[Any], _T], *, write: bool = False) -> _T:
        seen = self.__dict__.setdefault("statements", [])
        return await super()._call(lambda conn: work(_Recorder(conn, seen)), write=write)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


_INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


def postgres_scans(conn: Any, statements: list[tuple[Any, Any]]) -> list[str]:
    """Every reach into a growing table, in the plans of ``statements``, not narrowed by index.

    Planned with sequential scans disabled, so on a small table the planner still
    takes an index wherever one applies: a ``Seq Scan`` left in a plan means none
    does. Every growing table must be reached through an index node, and every
    index node must have a condition on more than ``network`` (an index walked
    whole, or by network alone, reads in proportion to the store).
    """
    from psycopg import sql

    found = []
    conn.execute("SET enable_seqscan = off")
    for query, params in statements:
        text = query if isinstance(query, str) else query.as_string(conn)
        if not text.lstrip().upper().startswith(_PLANNED):
            continue
        [[plans]] = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(text),
            params,
        ).fetchall()
        shown = " ".join(text.split())[:160]
        for node in (n for top in plans for n in _nodes(top["Plan"])):
            kind, relation = node["Node Type"], node.get("Relation Name")
            if kind in _INDEX_NODES:
                condition = node.get("Index Cond", "")
                columns = set(re.findall(r"(\w+) (?:=|<|>|<=|>=|@@) ", condition))
                if columns <= _BROAD:
                    found.append(f"{kind} on {node['Index Name']} by {sorted(columns)}"
                                 f"  <-  {shown}")
            elif kind == "Seq Scan" or (
                relation in GROWING and kind not in ("ModifyTable", "Bitmap Heap Scan")
            ):
                found.append(f"{kind} on {relation}  <-  {shown}")
    return found


_POSTGRES_INDEXES = (
    ("messages_conversation", "messages"), ("outbox_due", "outbox"),
    ("outbox_digest", "outbox"), ("messages_search", "messages"),
)
"""Indexes of the per-event path, and the table each serves."""


async def _postgres_run(url: str, schema: str, *, drops: bool = False) -> dict[str, list[str]]:
    """Scans of the sequence as the schema is (``""``), and without each index (``drops``)."""
    import psycopg

    found: dict[str, list[str]] = {}
    async with _RecordingStore(url, schema=schema) as store:
        # Rows in every table, enough that the planner's statistics favour indexes
        # as a store's would: 1,000 handled messages with our answers, 20 answered.
        earlier = [message(f"old-{n}", f"my order {n} is late", thread=f"old-t{n % 100}",
                           at=T0 - timedelta(days=1, minutes=n)) for n in range(1000)]
        await store.record_batch(NET, [received(m) for m in earlier], cursor="old")
        await store.save_messages([m.model_copy(update={
            "ref": m.ref.model_copy(update={"id": f"{m.ref.id}-answer"}), "text": "On it!"})
            for m in earlier])
        await per_event(store, 0, 20)
        with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
            conn.execute("ANALYZE")
            for n, (index, _) in enumerate((("", ""), *(_POSTGRES_INDEXES if drops else ()))):
                definition = conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                    (schema, index)).fetchone()
                if index:
                    assert definition is not None, index
                    conn.execute(f"DROP INDEX {index}")
                store.statements.clear()
                await per_event(store, 20 + 2 * n, 2)
                found[index] = postgres_scans(conn, store.statements)
                if definition is not None:
                    conn.execute(definition[0])
    return found


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session's PostgreSQL server, or a skip when psycopg is missing."""
    pytest.importorskip(
        "psycopg", reason='psycopg is not installed: pip install -e ".[test]" (or ".[postgres]")'
    )
    return postgres_server.url


async def test_postgres_per_event_statements_use_indexes(
    postgres_url: str, postgres_schema: str
) -> None:
    """Every statement of the per-event path on PostgreSQL reaches growing tables by index."""
    assert await _postgres_run(postgres_url, postgres_schema) == {"": []}


async def test_postgres_a_dropped_index_shows_as_a_scan(
    postgres_url: str, postgres_schema: str
) -> None:
    """Without each index the path relies on, the check finds the scan it causes."""
    found = await _postgres_run(postgres_url, postgres_schema, drops=True)
    assert found[""] == []
    for index, table in _POSTGRES_INDEXES:
        assert any(re.search(rf"\b{table}\b", scan) for scan in found[index]), (index, found)


async def test_postgres_search_carries_json_only_for_the_matches_returned(
    postgres_url: str, postgres_schema: str
) -> None:
    """Search ranks its matches without their JSON: no node carries more JSON than it returns.

    300 messages hold the word searched; 5 are asked for. Each node of the plan
    (run and analysed) that outputs the JSON column must have produced at most 5
    rows over all its loops; ranking all 300 with their JSON shows as a node of 300.
    """
    import psycopg

    async with _RecordingStore(postgres_url, schema=postgres_schema) as store:
        await store.save_messages([
            message(f"m-{n}", f"parcel {n}" + " late" * (n % 4), thread=f"t{n % 9}",
                    at=T0 + timedelta(minutes=n))
            for n in range(300)])
        with psycopg.connect(postgres_url, autocommit=True,
                             options=f"-c search_path={postgres_schema}") as conn:
            conn.execute("ANALYZE")
            store.statements.clear()
            found = await store.search("late", limit=5)
            assert [m.ref.id for m in found] == [f"m-{n}" for n in (299, 295, 291, 287, 283)]
            [(query, params)] = store.statements
            [[[plan]]] = conn.execute(
                "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) " + query, params).fetchall()
    heavy = [(kind, rows) for node in _nodes(plan["Plan"])
             if any(re.search(r"\bjson\b", column) for column in node.get("Output", []))
             for kind, rows in [(node["Node Type"], node["Actual Rows"] * node["Actual Loops"])]]
    assert heavy, plan  # the JSON is read somewhere
    assert all(rows <= 5 for _, rows in heavy), heavy
