"""SQLiteStore refuses, at open, a file it must not use: foreign, damaged, or held by a writer."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from omnichannel.actions import Reply
from omnichannel.cli import main as cli_main
from omnichannel.errors import ConfigurationError, StoreDamaged, StoreError, StoreLocked
from omnichannel.model import Message, Person, Ref
from omnichannel.store import OutboxItem, SQLiteStore
from omnichannel.store._sqlite_schema import MIGRATIONS

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 11, 5, 14, 3, 7, tzinfo=UTC)
ANN = Person(ref=Ref(network="mastodon", id="110245"), handle="ann@mastodon.social")
PAGE = 4096


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Opening runs in a worker thread on both anyio backends."""
    return str(request.param)


def status(id_: str, text: str) -> Message:
    """A Mastodon status by Ann, the root of its own thread."""
    ref = Ref(network="mastodon", id=id_)
    return Message(ref=ref, conversation=ref, author=ANN, text=text, created_at=T0)


def digest(path: Path) -> str:
    """The file's bytes and whether SQLite's side files exist."""
    side = [Path(f"{path}{s}").exists() for s in ("-wal", "-shm", "-journal")]
    return hashlib.sha256(path.read_bytes()).hexdigest() + repr(side)


def foreign_database(path: Path, *, user_version: int = 0, application_id: int = 0) -> None:
    """Another application's SQLite file: its own tables, maybe its own version numbers."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.execute(f"PRAGMA application_id = {application_id}")


def file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# foreign files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_version", "application_id"),
    [(0, 0), (len(MIGRATIONS), 0), (1, 0x12345678)],
    ids=["plain", "own-user-version", "own-application-id"],
)
@pytest.mark.parametrize("read_only", [False, True], ids=["read-write", "read-only"])
async def test_another_applications_database_is_refused_untouched(
    tmp_path: Path, user_version: int, application_id: int, read_only: bool
) -> None:
    """A SQLite file with tables of its own is refused, naming it; no table of ours is added."""
    path = tmp_path / "accounting.db"
    foreign_database(path, user_version=user_version, application_id=application_id)
    before = digest(path)
    with pytest.raises(StoreError) as info:
        await SQLiteStore(path, read_only=read_only).open()
    message = str(info.value)
    assert "accounting.db" in message
    assert "not an omnichannel store" in message
    assert "another application's SQLite database" in message
    assert "\n" not in message
    assert info.value.path == str(path)
    assert isinstance(info.value, ConfigurationError)
    assert not isinstance(info.value, StoreDamaged | StoreLocked)
    assert tables(path) == {"invoices"}
    assert digest(path) == before


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    """A text file named as the store is refused read-write too, and left as it was."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"shopping list: milk, eggs, bread\n" * 200)
    before = digest(path)
    with pytest.raises(StoreDamaged, match=r"notes\.db.*not a SQLite database"):
        await SQLiteStore(path).open()
    assert digest(path) == before


async def test_a_store_from_before_the_marker_opens_and_is_marked(tmp_path: Path) -> None:
    """A store written without the application id is recognised by its tables and stamped."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        for script in MIGRATIONS:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    async with SQLiteStore(path) as store:
        await store.save_messages([status("1", "refund please")])
    with closing(sqlite3.connect(path)) as conn:
        (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    assert application_id == int.from_bytes(b"OMNI", "big")
    async with SQLiteStore(path, read_only=True) as reader:
        assert [m.ref.id for m in await reader.search("refund")] == ["1"]


# damaged files ----------------------------------------------------------------------------


async def _store_with_messages(path: Path, count: int = 400) -> None:
    async with SQLiteStore(path) as store:
        await store.save_messages(
            [status(str(n), f"message {n} about order #{n} " + "lorem ipsum " * 30)
             for n in range(count)]
        )


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _overwrite_middle_pages(path: Path) -> None:
    pages = path.stat().st_size // PAGE
    noise = random.Random(11)  # noqa: S311 - test data
    with path.open("r+b") as f:
        for page in range(pages // 2 - 2, pages // 2 + 2):
            f.seek(page * PAGE)
            f.write(bytes(noise.getrandbits(8) for _ in range(PAGE)))


def _overwrite_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"\x00" * 100)


DAMAGE = {"truncated": _truncate, "middle-pages": _overwrite_middle_pages,
          "header": _overwrite_header}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A store of 400 messages, then damaged one way."""
    path = tmp_path / "bot.db"
    anyio.run(_store_with_messages, path)
    assert not Path(f"{path}-wal").exists()  # closed cleanly: everything is in the file
    DAMAGE[request.param](path)
    return path


@pytest.mark.parametrize("read_only", [False, True], ids=["read-write", "read-only"])
async def test_a_damaged_store_is_refused_at_open(damaged: Path, read_only: bool) -> None:
    """Truncated, with pages overwritten, or without its header: one typed error naming it."""
    before = file_bytes(damaged)
    store = SQLiteStore(damaged, read_only=read_only)
    with pytest.raises(StoreDamaged) as info:
        await store.open()
    assert str(damaged) in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.path == str(damaged)
    assert file_bytes(damaged) == before
    with pytest.raises(RuntimeError, match="not open"):
        await store.seen("x")


async def test_damage_found_while_open_is_a_typed_error(tmp_path: Path) -> None:
    """Pages damaged under an open store: the call that meets them raises StoreDamaged."""
    path = tmp_path / "bot.db"
    await _store_with_messages(path)
    async with SQLiteStore(path) as store:
        assert len(await store.search("lorem", limit=5)) == 5
        await anyio.to_thread.run_sync(_overwrite_middle_pages, path)
        with closing(sqlite3.connect(path)) as other:  # a write elsewhere: caches are dropped
            other.execute("PRAGMA user_version = 3")
        with pytest.raises(StoreDamaged, match=r"bot\.db.*malformed.*backup"):
            await store.search("lorem", limit=500)


def test_inbox_on_a_damaged_store_fails_with_one_line(
    damaged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`omnichannel inbox` prints no partial table: one line naming the file, exit 2."""
    status_code = cli_main(["inbox", "--store", str(damaged)])
    out, err = capsys.readouterr()
    assert status_code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("omnichannel: error: ")
    assert str(damaged) in err


@pytest.mark.parametrize("kind", ["foreign", "not-sqlite"])
def test_inbox_and_the_quick_bot_refuse_a_foreign_file_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    """No traceback from either command; the file is left as it was."""
    path = tmp_path / "other.db"
    if kind == "foreign":
        foreign_database(path)
    else:
        path.write_bytes(b"GIF89a" + bytes(range(256)) * 8)
    before = digest(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    commands = [[sys.executable, "-m", "omnichannel", "inbox", "--store", str(path)]]
    if kind == "foreign":  # exit 2 is what the systemd unit's RestartPreventExitStatus expects
        commands.append([sys.executable, str(REPO / "examples" / "quickbot.py"), "--sandbox",
                         "--until-idle", "--store", str(path), "--network", "mastodon"])
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env,
                              cwd=tmp_path, check=False)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "error: " in lines[0]
        assert "other.db" in lines[0]
        assert "not an omnichannel store" in lines[0]
    assert digest(path) == before


# one writer at a time ---------------------------------------------------------------------

# A bot that claimed a reply (status "sending") and is in the middle of sending it.
_HOLDER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    import anyio
    from omnichannel.actions import Post
    from omnichannel.store import OutboxItem, SQLiteStore

    async def main() -> None:
        async with SQLiteStore(sys.argv[1]) as store:
            action = Post(network="mastodon", text="Our shop opens at 9 today.")
            await store.enqueue(OutboxItem.for_action(action, origin="handler:news"))
            await store.claim_due(now=datetime.now(UTC))
            print("sending", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)

    anyio.run(main)
""")

# A second bot starting on the same file.
_SECOND = textwrap.dedent("""
    import sys
    import anyio
    from omnichannel.errors import StoreLocked
    from omnichannel.store import SQLiteStore

    async def main() -> None:
        try:
            async with SQLiteStore(sys.argv[1]) as store:
                print("opened", [i.status for i in await store.list_outbox()], flush=True)
        except StoreLocked as exc:
            print("locked", exc.pid, flush=True)
            print(exc, file=sys.stderr)
            raise SystemExit(3) from None

    anyio.run(main)
""")


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, check=False)


def _statuses(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM outbox")]


def test_a_second_process_is_refused_while_the_first_sends(tmp_path: Path) -> None:
    """The second writer is refused and recovers nothing; readers still read; death unlocks."""
    path = tmp_path / "bot.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "sending"

        second = _python(_SECOND, str(path))
        assert second.returncode == 3, second.stdout + second.stderr
        assert second.stdout.split() == ["locked", str(holder.pid)]
        assert "bot.db" in second.stderr
        assert "multi-worker store" in second.stderr
        assert "read_only=True" in second.stderr
        assert _statuses(path) == ["sending"]  # not turned "ambiguous" under the live sender

        inbox = subprocess.run(
            [sys.executable, "-m", "omnichannel", "inbox", "--store", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert inbox.returncode == 0, inbox.stderr
        assert "Outbox: 1 sending" in inbox.stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)

    # The operating system released the lock with the process: the next bot opens and
    # recovers the send that was under way.
    third = _python(_SECOND, str(path))
    assert third.returncode == 0, third.stderr
    assert third.stdout.strip() == "opened ['ambiguous']"


async def test_one_writer_per_file_within_a_process_too(tmp_path: Path) -> None:
    """A second read-write store object on the same file is refused until the first closes."""
    path = tmp_path / "bot.db"
    first = SQLiteStore(path)
    await first.open()
    second = SQLiteStore(tmp_path / ".." / tmp_path.name / "bot.db")  # same file, other spelling
    with pytest.raises(StoreLocked, match=r"bot\.db.*another process") as info:
        await second.open()
    assert info.value.pid == os.getpid()
    async with SQLiteStore(path, read_only=True) as reader:
        assert await reader.list_outbox() == []
    await first.aclose()
    async with second:
        item = await second.enqueue(OutboxItem.for_action(
            Reply(network="mastodon", to=status("1", "hi"), text="Hello!"), origin="test",
        ))
        assert item.status == "pending"
    async with SQLiteStore(path):  # and again after the second one closed
        pass
