"""PostgresStore on a real server: the conformance suite, then what only PostgreSQL has.

The server is the session's (tests/conftest.py: ``OMNICHANNEL_TEST_POSTGRES_URL``, else a
throwaway ``pgserver``); every test gets a fresh schema of its own.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest
from tests.conftest import PostgresServer

from omnichannel.actions import Reply
from omnichannel.cli import main
from omnichannel.errors import ConfigurationError, StoreError
from omnichannel.store import (
    Draft,
    PostgresStore,
    SQLiteStore,
    Store,
    is_postgres_url,
    store_for,
)
from omnichannel.store._postgres_schema import MIGRATIONS
from omnichannel.testing.store_conformance import (
    NET,
    T0,
    StoreConformance,
    StoreFactory,
    message,
    received,
    reply_item,
)

psycopg = pytest.importorskip(
    "psycopg", reason='psycopg is not installed: pip install -e ".[test]" (or ".[postgres]")'
)

Opener = Callable[..., PostgresStore]


class TestPostgresStore(StoreConformance):
    """PostgresStore passes every scenario the other stores pass."""

    @pytest.fixture
    def store_factory(
        self, postgres_server: PostgresServer, postgres_empty_schema: str
    ) -> StoreFactory:
        """A new PostgresStore over an emptied schema."""
        return lambda: PostgresStore(postgres_server.url, schema=postgres_empty_schema)


@pytest.fixture
def opener(postgres_server: PostgresServer, postgres_schema: str) -> Opener:
    """Build stores over the test's schema."""

    def make(**options: Any) -> PostgresStore:
        return PostgresStore(postgres_server.url, schema=postgres_schema, **options)

    return make


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[PostgresStore]:
    """An open store over the test's schema."""
    async with opener() as opened:
        yield opened


def _rows(url: str, schema: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        cursor = conn.execute(statement)
        return list(cursor.fetchall()) if cursor.description is not None else []


async def test_concurrent_opens_migrate_once(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """Workers starting together queue on the advisory lock: each migration is applied once."""
    stores = [opener(shared=True) for _ in range(6)]
    async with anyio.create_task_group() as tg:
        for each in stores:
            tg.start_soon(each.open)
    try:
        assert {each.schema_version for each in stores} == {len(MIGRATIONS)}
        assert await stores[0].list_outbox() == []
    finally:
        for each in stores:
            await each.aclose()
    rows = _rows(postgres_server.url, postgres_schema, "SELECT version FROM omnichannel_migrations")
    assert rows == [(n,) for n in range(1, len(MIGRATIONS) + 1)]


async def test_three_stores_claiming_at_once_finish_each_conversation_in_queue_order(
    opener: Opener,
) -> None:
    """Three stores, three claimers each, outcomes at random (sent, failed, or put back due
    at once as pending or ambiguous): each conversation's items finish in queue order and
    no two of one conversation are ever held at once."""
    rng = random.Random(7)  # noqa: S311 - outcomes, not secrets
    now = T0 + timedelta(hours=1)
    async with (opener(shared=True) as one, opener(shared=True) as two,
                opener(shared=True) as three):
        queued: dict[str, list[str]] = {}
        for n in range(5):
            for thread in range(8):
                to = message(f"1301{thread:02}", "help")
                item = await one.enqueue(reply_item(to, f"answer {n}", at=T0))
                queued.setdefault(to.conversation.id, []).append(item.key)
        thread_of = {key: thread for thread, keys in queued.items() for key in keys}
        finished: dict[str, list[str]] = {thread: [] for thread in queued}
        held: dict[str, str] = {}
        overlaps: list[str] = []

        async def claimer(worker: str, store: Store) -> None:
            idle = 0
            while idle < 20:
                batch = await store.claim_due(now=now, worker=worker, limit=2)
                if not batch:
                    idle += 1
                    await anyio.sleep(0.005)
                    continue
                idle = 0
                for item in batch:
                    thread = thread_of[item.key]
                    if thread in held:
                        overlaps.append(thread)
                    held[thread] = item.key
                await anyio.sleep(rng.uniform(0, 0.003))
                for item in batch:
                    outcome = rng.choice(["sent", "sent", "failed", "pending", "ambiguous"])
                    del held[thread_of[item.key]]
                    await store.update_outbox(item.key, status=outcome, next_attempt_at=now,
                                              worker=worker)
                    if outcome in ("sent", "failed"):
                        finished[thread_of[item.key]].append(item.key)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for name, store in (("one", one), ("two", two), ("three", three)):
                    for n in range(3):
                        tg.start_soon(claimer, f"{name}.{n}", store)
    assert overlaps == []
    assert finished == queued


async def test_two_stores_claiming_together_never_take_the_same_item(opener: Opener) -> None:
    """Claims use FOR UPDATE SKIP LOCKED: two stores on one database split the due items."""
    async with opener(shared=True) as one, opener(shared=True) as two:
        for n in range(60):
            to = message(f"1300{n:02}", "help")  # a conversation each: none waits for another
            await one.enqueue(reply_item(to, f"answer {n}", at=T0 + timedelta(seconds=n)))
        claimed: dict[str, list[str]] = {"one": [], "two": []}

        async def claim(name: str, store: Store) -> None:
            while batch := await store.claim_due(now=T0 + timedelta(hours=1), limit=3):
                claimed[name].extend(item.key for item in batch)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(claim, "one", one)
                tg.start_soon(claim, "two", two)
        every = claimed["one"] + claimed["two"]
        assert len(every) == 60
        assert len(set(every)) == 60
        assert all(item.attempts == 1 for item in await one.list_outbox())


async def test_a_second_worker_opens_and_takes_over_only_an_expired_lease(
    opener: Opener,
) -> None:
    """Several workers open one store; opening resets nothing, only a lease run out is reclaimed."""
    async with opener() as first:
        item = await first.enqueue(reply_item(message("130100", "help"), "On it!"))
        [claimed] = await first.claim_due(now=T0, worker="w1", lease=timedelta(seconds=30))
        async with opener() as second:
            still = await second.get_outbox(item.key)
            assert still is not None
            assert (still.status, still.worker) == ("sending", "w1")  # opening reset nothing
            assert await second.claim_due(now=T0 + timedelta(seconds=29), worker="w2") == []
            [taken] = await second.claim_due(now=T0 + timedelta(seconds=30), worker="w2")
            assert (taken.status, taken.worker, taken.attempts) == ("ambiguous", "w2", 2)
        assert claimed.lease_until == T0 + timedelta(seconds=30)


async def test_version_1_schema_gains_leases(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """A version 1 database migrates forward; an item a worker left sending is reclaimable."""
    item = reply_item(message("130200", "help"), "On it!")
    _rows(postgres_server.url, postgres_schema, MIGRATIONS[0])
    _rows(
        postgres_server.url, postgres_schema,
        "CREATE TABLE omnichannel_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TIMESTAMPTZ NOT NULL); INSERT INTO omnichannel_migrations VALUES (1, now())",
    )
    with psycopg.connect(
        postgres_server.url, autocommit=True, options=f"-c search_path={postgres_schema}"
    ) as conn:
        conn.execute(
            "INSERT INTO outbox (key, network, status, attempts, next_attempt_at, created_at,"
            " updated_at, origin, action) VALUES (%s, %s, 'sending', 1, %s, %s, %s, %s, %s)",
            (item.key, item.network, T0, T0, T0, item.origin, item.action.model_dump_json()),
        )
    async with opener() as store:
        assert store.schema_version == len(MIGRATIONS)
        stored = await store.get_outbox(item.key)
        assert stored is not None
        assert (stored.status, stored.worker, stored.lease_until) == ("sending", None, None)
        [taken] = await store.claim_due(now=T0, worker="w2")
        assert (taken.status, taken.worker) == ("ambiguous", "w2")
        assert await store.acquire_lease("x", holder="w2", ttl=timedelta(seconds=5), now=T0)
    rows = _rows(postgres_server.url, postgres_schema, "SELECT version FROM omnichannel_migrations")
    assert rows == [(n,) for n in range(1, len(MIGRATIONS) + 1)]


async def test_version_4_schema_orders_the_items_it_had_queued(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """The unfinished items of a version 4 database keep their queue order per conversation:
    a conversation's second reply waits for its first, left ``sending`` by a worker."""
    to = message("130250", "help")
    first = reply_item(to, "first", at=T0)
    second = reply_item(to, "second", at=T0 + timedelta(seconds=1))
    elsewhere = reply_item(message("130251", "help"), "elsewhere", at=T0)
    for script in MIGRATIONS[:4]:
        _rows(postgres_server.url, postgres_schema, script)
    _rows(
        postgres_server.url, postgres_schema,
        "CREATE TABLE omnichannel_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TIMESTAMPTZ NOT NULL);"
        " INSERT INTO omnichannel_migrations SELECT n, now() FROM generate_series(1, 4) AS n",
    )
    with psycopg.connect(
        postgres_server.url, autocommit=True, options=f"-c search_path={postgres_schema}"
    ) as conn:
        for item, state in ((second, "pending"), (first, "sending"), (elsewhere, "pending")):
            conn.execute(
                "INSERT INTO outbox (key, network, status, attempts, next_attempt_at, created_at,"
                " updated_at, origin, action) VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s)",
                (item.key, item.network, state, item.next_attempt_at, item.created_at,
                 item.updated_at, item.origin, item.action.model_dump_json()),
            )
    async with opener() as store:
        assert store.schema_version == len(MIGRATIONS)
        now = T0 + timedelta(minutes=1)
        claimed = await store.claim_due(now=now, worker="w2")
        assert sorted(i.key for i in claimed) == sorted([first.key, elsewhere.key])
        await store.update_outbox(first.key, status="sent", worker="w2")
        assert [i.key for i in await store.claim_due(now=now, worker="w2")] == [second.key]


async def test_connections_killed_by_the_server_are_replaced(
    postgres_server: PostgresServer, store: PostgresStore
) -> None:
    """Every pooled connection dropped server-side: the next call opens a new one and works."""
    event = received(message("130200", "before"))
    assert await store.record_batch(NET, [event], cursor="a") == [event]
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = '' AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend') AS t"
        ).fetchone()
    assert killed is not None
    assert killed[0] >= 1
    assert await store.seen(event.id)
    assert await store.get_cursor(NET) == "a"


async def test_next_call_works_after_the_server_restarts(
    postgres_server: PostgresServer, store: PostgresStore
) -> None:
    """The server restarts mid-run; the next call reconnects and nothing committed is lost."""
    if postgres_server.restart is None:
        pytest.skip("the server is OMNICHANNEL_TEST_POSTGRES_URL's: the tests cannot restart it")
    first = received(message("130300", "before the restart"))
    await store.record_batch(NET, [first], cursor="1")
    await anyio.to_thread.run_sync(postgres_server.restart)
    second = received(message("130301", "after the restart"))
    assert await store.record_batch(NET, [second], cursor="2") == [second]
    assert await store.unhandled_events() == [first, second]
    assert sorted(m.ref.id for m in await store.search("restart")) == ["130300", "130301"]


async def test_statement_timeout_raises_a_store_error(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """A statement blocked past statement_timeout is cancelled and raised as StoreError."""
    async with opener(statement_timeout=0.2) as store:
        item = await store.enqueue(reply_item(message("130400", "help"), "On it!"))
        with psycopg.connect(
            postgres_server.url, options=f"-c search_path={postgres_schema}"
        ) as blocker:
            blocker.execute("SELECT 1 FROM outbox WHERE key = %s FOR UPDATE", (item.key,))
            with pytest.raises(StoreError, match="statement timeout"):
                await store.update_outbox(item.key, status="sent")
            blocker.rollback()
        assert (await store.update_outbox(item.key, status="sent")).status == "sent"


async def test_another_applications_tables_are_refused(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """A schema holding tables named like ours but not made by omnichannel is left alone."""
    _rows(postgres_server.url, postgres_schema, "CREATE TABLE events (id int)")
    with pytest.raises(StoreError, match="another application"):
        await opener().open()


async def test_a_newer_schema_is_refused(
    postgres_server: PostgresServer, postgres_schema: str, opener: Opener
) -> None:
    """A database migrated by a newer omnichannel is refused, not written."""
    async with opener():
        pass
    _rows(
        postgres_server.url, postgres_schema,
        "INSERT INTO omnichannel_migrations VALUES (99, now())",
    )
    with pytest.raises(StoreError, match="newer"):
        await opener().open()


async def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    """Nothing listens: StoreError, and neither message nor repr shows the password."""
    store = PostgresStore(
        "postgresql://bot:hunter2-secret@127.0.0.1:9/helpdesk", connect_timeout=2
    )
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(store)
    assert caught.value.path == "postgresql://bot:***@127.0.0.1:9/helpdesk"


def test_settings_are_checked() -> None:
    """A non-PostgreSQL URL, an odd schema name and bad sizes are refused at once."""
    with pytest.raises(ConfigurationError):
        PostgresStore("helpdesk.db")
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore("postgresql://h/db", schema="Bad-Name")
    with pytest.raises(ConfigurationError):
        PostgresStore("postgresql://h/db", min_connections=5, max_connections=2)
    with pytest.raises(ConfigurationError):
        PostgresStore("postgresql://h/db", statement_timeout=0)


def test_store_for_picks_the_backend_from_the_target() -> None:
    """A postgresql:// URL is a PostgresStore (shared when read-only); a path is SQLite."""
    assert is_postgres_url("postgres://h/db")
    reader = store_for("postgresql://bot@h/db", read_only=True)
    assert isinstance(reader, PostgresStore)
    assert reader.shared
    assert isinstance(store_for("helpdesk.db"), SQLiteStore)


# the command line on PostgreSQL


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database on the session's server, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(postgres_server.url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_cli_store_migrate_creates_the_schema_once(
    postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`omnichannel store migrate --store postgresql://…` migrates, and again is a no-op."""
    for _ in range(2):
        assert main(["store", "migrate", "--store", postgres_database]) == 0
        assert capsys.readouterr().out.endswith(f"schema version {len(MIGRATIONS)}\n")
    with psycopg.connect(postgres_database) as conn:
        assert conn.execute("SELECT version FROM omnichannel_migrations").fetchall() == [
            (n,) for n in range(1, len(MIGRATIONS) + 1)
        ]


def test_cli_inbox_and_drafts_read_a_postgres_store_from_the_environment(
    postgres_database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OMNICHANNEL_STORE may be a URL: `inbox` and `drafts list` read it beside a worker."""
    monkeypatch.setenv("OMNICHANNEL_STORE", postgres_database)
    to = message("130500", "my parcel is late 😡")

    async def fill() -> None:
        async with PostgresStore(postgres_database) as store:
            await store.record_batch(NET, [received(to)], cursor="1")
            await store.add_draft(Draft(action=Reply(network=NET, to=to, text="So sorry!")))

    anyio.run(fill)
    assert main(["inbox"]) == 0
    out = capsys.readouterr().out
    assert "my parcel is late 😡" in out
    assert "Pending drafts (1, oldest first)" in out
    assert main(["drafts", "list"]) == 0
    assert "So sorry!" in capsys.readouterr().out


def test_quick_bot_answers_its_sandbox_customers_on_postgres(
    postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quick bot runs end to end with `--store postgresql://…`: every reply is sent."""
    from omnichannel._demo import load_quickbot

    argv = ["--sandbox", "--network", "mastodon", "--until-idle", "--store", postgres_database]
    assert load_quickbot().main(argv) == 0
    out = capsys.readouterr().out
    assert "4 events received, 0 already seen, 3 sent, 1 held as drafts" in out

    async def outcome() -> tuple[list[str], int]:
        async with PostgresStore(postgres_database, shared=True) as store:
            statuses = [item.status for item in await store.list_outbox()]
            return statuses, len(await store.unhandled_events())

    statuses, unhandled = anyio.run(outcome)
    assert statuses == ["sent"] * 3
    assert unhandled == 0


async def test_an_idle_worker_wakes_when_another_process_queues(opener: Opener) -> None:
    """LISTEN/NOTIFY: an item queued through another store object is sent long before a poll."""
    from tests.runtime_adapter import FakeNetwork, adapter_for, eventually, received

    from omnichannel.actions import Reply
    from omnichannel.outbox import Outbox

    fake = FakeNetwork()
    async with opener() as worker_store, opener() as other, adapter_for(fake) as adapter:
        outbox = Outbox(worker_store, {"testnet": adapter}, poll_interval=60.0, worker="w1")
        async with anyio.create_task_group() as tg:
            await tg.start(outbox.run)
            await anyio.sleep(0.3)  # the worker found nothing and is waiting
            queuer = Outbox(other, {"testnet": adapter}, worker="w2")
            item = await queuer.submit(
                Reply(network="testnet", to=received(fake, adapter), text="On it!"),
                origin="handler:test")

            async def sent() -> bool:
                stored = await other.get_outbox(item.key)
                return stored is not None and stored.status == "sent"

            await eventually(sent, limit=10)  # its poll would come after 60 s
            tg.cancel_scope.cancel()
    assert fake.created[item.key] == 1
