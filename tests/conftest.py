"""Shared fixtures for the core test suite."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"

BACKENDS = ("asyncio", "trio")
BACKEND = os.environ.get("OMNICHANNEL_TEST_BACKEND", "asyncio")
"""The anyio backend of async tests: ``OMNICHANNEL_TEST_BACKEND`` (CI runs ``trio`` once)."""


def pytest_configure(config: pytest.Config) -> None:
    """Check ``OMNICHANNEL_TEST_BACKEND`` and register ``asyncio_only``."""
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(
            f"OMNICHANNEL_TEST_BACKEND must be one of {BACKENDS}, not {BACKEND!r}"
        )
    config.addinivalue_line(
        "markers",
        "asyncio_only(reason): the test cannot run on trio; the trio job skips it, saying why",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``asyncio_only(reason)`` when the backend is not asyncio."""
    marker = item.get_closest_marker("asyncio_only")
    if marker is not None and BACKEND != "asyncio":
        pytest.skip(f"asyncio only: {marker.args[0]}")


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on ``$OMNICHANNEL_TEST_BACKEND`` (asyncio unless CI asks for trio)."""
    return BACKEND


@pytest.fixture
def vectors() -> Path:
    """The folder of real recorded network payloads."""
    if not VECTORS.is_dir():
        pytest.fail(f"recorded vectors not found at {VECTORS}")
    return VECTORS


class PostgresServer:
    """The PostgreSQL server of a test session: its URL, and a restart when the tests own it."""

    def __init__(self, url: str, restart: Callable[[], None] | None = None) -> None:
        self.url = url
        self.restart = restart


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session.

    ``OMNICHANNEL_TEST_POSTGRES_URL`` when set; otherwise a throwaway server from the
    ``pgserver`` package (in the ``test`` extra), stopped and deleted at the end. As root,
    pgserver runs the server as a system user of its own (``pgserver``).
    """
    url = os.environ.get("OMNICHANNEL_TEST_POSTGRES_URL")
    if url:
        yield PostgresServer(url)
        return
    try:
        import psycopg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
            import pgserver
            from pgserver._commands import pg_ctl
    except ImportError as exc:
        pytest.skip(
            f"no PostgreSQL for the tests ({exc.name} is not installed): install the test "
            'extra (pip install -e ".[test]") or set OMNICHANNEL_TEST_POSTGRES_URL'
        )
    # Not under pytest's temporary folder: as root the server runs as another user, and
    # pytest makes its folder private again (0700) whenever a pytest run starts.
    pgdata = Path(tempfile.mkdtemp(prefix="omnichannel-test-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="delete")
        except Exception as exc:
            shutil.rmtree(pgdata, ignore_errors=True)
            pytest.skip(
                f"could not start a throwaway PostgreSQL with pgserver ({exc!r}): set "
                "OMNICHANNEL_TEST_POSTGRES_URL to a server the tests may create schemas in"
            )

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        # A throwaway server: no need to outlive a power cut, so commits skip the disk sync.
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")

    def restart() -> None:
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=server.system_user)

    try:
        yield PostgresServer(server.get_uri(), restart)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Stopped here first: after a restart the server runs under a new process id,
            # which pgserver's cleanup does not know, so it would delete the folder under a
            # running server (and fail on the files that server still writes).
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
            with contextlib.suppress(OSError):
                server.cleanup()
            shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def postgres_schema(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty schema on the session's server, dropped after the test."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(scope="session")
def _postgres_migrated_schema(postgres_server: PostgresServer) -> Iterator[str]:
    """One schema migrated once for the session (emptied before each test that uses it)."""
    import anyio
    import psycopg

    from omnichannel.store import PostgresStore

    name = f"test_shared_{uuid.uuid4().hex[:12]}"

    async def migrate() -> None:
        async with PostgresStore(postgres_server.url, schema=name, shared=True):
            pass

    anyio.run(migrate)
    try:
        yield name
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def postgres_empty_schema(postgres_server: PostgresServer, _postgres_migrated_schema: str) -> str:
    """A migrated schema with every table emptied.

    As good as a fresh schema for tests that do not test migrations (identity
    columns go on counting), and much quicker to give: no tables to create, and
    DELETE on a few rows costs milliseconds where TRUNCATE costs a file per table.
    """
    import psycopg

    from omnichannel.store._postgres_schema import TABLES

    with psycopg.connect(postgres_server.url) as conn:  # one transaction
        for table in TABLES:
            conn.execute(f"DELETE FROM {_postgres_migrated_schema}.{table}")  # noqa: S608 - our own names
    return _postgres_migrated_schema
