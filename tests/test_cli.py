"""The ``omnichannel`` command line: adapters, replay, inbox, serve, settings."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from omnichannel.actions import Post, PrivateReply, Reply, Sent
from omnichannel.adapter import Adapter, Batch, WebhookRequest
from omnichannel.capabilities import Capabilities
from omnichannel.cli import Bot, adapters_from_settings, env_name, main
from omnichannel.cli import _commands as commands
from omnichannel.cli._settings import Config
from omnichannel.errors import (
    AuthenticationError,
    CapabilityNotSupported,
    ConfigurationError,
    PayloadError,
    TransientError,
    UnknownNetwork,
)
from omnichannel.events import Event, MessageReceived, event_id
from omnichannel.hub import Hub
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.store import Draft, OutboxItem, SQLiteStore
from omnichannel.text import TextRule
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox

REPO = Path(__file__).resolve().parent.parent
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}


@pytest.fixture(autouse=True)
def _keep_log_levels() -> Iterator[None]:
    """The command sets logger levels; give the next test the levels it had."""
    import logging

    names = ["", "omnichannel", "omnichannel.http", "httpx", "httpcore", "hpack", "websockets",
             "uvicorn.access"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def run(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the command line in-process; return its status, stdout and stderr."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# adapters --------------------------------------------------------------------------


def test_adapters_lists_installed_networks_with_capabilities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`omnichannel adapters` shows each installed adapter and its declared text rule."""
    status, out, _ = run(["adapters"], capsys)
    assert status == 0
    assert "omnichannel-mastodon" in out
    assert "omnichannel-bluesky" in out
    assert "500 graphemes, URLs count 23" in out
    assert "300 graphemes, at most 3000 UTF-8 bytes" in out
    header = next(line for line in out.splitlines() if line.startswith("capability"))
    assert header.split() == ["capability", "bluesky", "facebook", "instagram", "mastodon", "x"]


def test_adapters_json_carries_the_capabilities(capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel adapters --json` is machine-readable and complete."""
    status, out, _ = run(["adapters", "--json"], capsys)
    assert status == 0
    data = {entry["network"]: entry for entry in json.loads(out)}
    assert data["mastodon"]["ok"] is True
    assert data["mastodon"]["capabilities"]["private_reply"] is True
    assert data["bluesky"]["capabilities"]["dm_text"]["limit"] == 1000


def test_python_dash_m_runs_the_same_command() -> None:
    """`python -m omnichannel` is the command line (help lists every subcommand)."""
    done = subprocess.run(
        [sys.executable, "-m", "omnichannel", "--help"], capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0
    for command in ("adapters", "demo", "serve", "inbox", "replay"):
        assert command in done.stdout


# settings --------------------------------------------------------------------------


def test_missing_setting_is_named_with_where_to_set_it(tmp_path: Path) -> None:
    """A missing credential gives one message naming its variable, not a traceback."""
    env = {env_name("mastodon", "base_url"): "https://mastodon.example"}
    with pytest.raises(ConfigurationError) as info:
        adapters_from_settings(environ=env, config=None)
    message = str(info.value)
    assert "missing setting access_token" in message
    assert "OMNICHANNEL_MASTODON_ACCESS_TOKEN" in message


def test_wrong_setting_is_named_and_its_secret_never_shown() -> None:
    """An invalid value is named with the reason; the token given alongside never appears."""
    env = {
        env_name("mastodon", "base_url"): "https://mastodon.example",
        env_name("mastodon", "access_token"): "sekrit-token-123",
        env_name("mastodon", "page_size"): "500",
    }
    with pytest.raises(ConfigurationError) as info:
        adapters_from_settings(environ=env)
    message = str(info.value)
    assert "setting page_size is invalid" in message
    assert "sekrit" not in message


def test_refused_token_names_the_setting_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot whose token the network refuses stops with one line naming access_token; exit 1."""
    for name in [n for n in os.environ if n.startswith("OMNICHANNEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    sandbox = MastodonSandbox()
    with sandbox.serve_in_thread() as url:
        monkeypatch.setenv(env_name("mastodon", "base_url"), url)
        monkeypatch.setenv(env_name("mastodon", "access_token"), "sekrit-but-wrong")
        status = Bot("quickbot").main(["--until-idle", "--store", str(tmp_path / "bot.db")])
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("quickbot: error:")]
    assert status == 1
    assert "check access_token: set OMNICHANNEL_MASTODON_ACCESS_TOKEN" in line
    assert "sekrit" not in err


def test_unreachable_network_hint_names_the_url_settings_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network that cannot be reached points at the URL settings given, not at the others."""
    monkeypatch.chdir(tmp_path)  # no omnichannel.toml here
    config = Config.load(environ={
        env_name("mastodon", "base_url"): "https://mastodon.example",
        env_name("mastodon", "access_token"): "t",
    })
    unreachable = TransientError("could not reach the network", network="mastodon")
    hint = config.hint(MastodonAdapter, unreachable)
    assert hint == (
        "check base_url: set OMNICHANNEL_MASTODON_BASE_URL, or `base_url = ...` under "
        "[mastodon] in omnichannel.toml"
    )
    refused = AuthenticationError("Invalid identifier or password", network="bluesky")
    assert config.hint(BlueskyAdapter, refused) == (
        "check app_password: set OMNICHANNEL_BLUESKY_APP_PASSWORD, or `app_password = ...` "
        "under [bluesky] in omnichannel.toml"
    )
    assert config.hint(BlueskyAdapter, TransientError("down", network="bluesky")) is None


def test_unknown_variable_is_reported() -> None:
    """A misspelt variable is reported by name with the known ones."""
    env = {
        env_name("mastodon", "base_url"): "https://mastodon.example",
        "OMNICHANNEL_MASTODON_ACESS_TOKEN": "x",
    }
    with pytest.raises(ConfigurationError, match="OMNICHANNEL_MASTODON_ACESS_TOKEN"):
        adapters_from_settings(environ=env)


def test_config_file_and_environment_build_adapters(tmp_path: Path) -> None:
    """A TOML section builds the adapter; an environment variable wins over the file."""
    config = tmp_path / "omnichannel.toml"
    config.write_text(
        '[mastodon]\nbase_url = "https://file.example"\naccess_token = "from-file"\n'
        "page_size = 10\n",
        encoding="utf-8",
    )
    env = {env_name("mastodon", "page_size"): "20"}
    [adapter] = adapters_from_settings(config=config, environ=env)
    assert adapter.network == "mastodon"
    assert adapter.settings.model_dump()["page_size"] == 20
    assert "from-file" not in repr(adapter.settings)


def test_nothing_configured_points_at_the_sandbox(tmp_path: Path) -> None:
    """With no settings at all the message says how to configure, or to try --sandbox."""
    with pytest.raises(ConfigurationError, match="--sandbox"):
        adapters_from_settings(environ={}, config=None)


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    """A config file given by name that does not exist is a clear error."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        adapters_from_settings(config=tmp_path / "nope.toml", environ={})


def test_unknown_network_lists_the_installed_networks() -> None:
    """Asking for a network with no adapter lists what is installed and invents no package."""
    with pytest.raises(UnknownNetwork) as info:
        adapters_from_settings(networks=["myspace"], environ={})
    assert "(installed: bluesky, facebook, instagram, mastodon, x)" in str(info.value)
    assert "omnichannel-myspace" not in str(info.value)
    assert info.value.package is None


# replay ----------------------------------------------------------------------------


def _message(text: str, *, network: str = "chirp") -> Message:
    author = Person(ref=Ref(network=network, id="u1"), handle="alice", display_name="Alice")
    return Message(
        ref=Ref(network=network, id=f"m-{len(text)}"), conversation=Ref(network=network, id="c1"),
        author=author, text=text, created_at=datetime(2025, 1, 6, 9, tzinfo=UTC),
    )


def _received(message: Message) -> MessageReceived:
    return MessageReceived(
        id=event_id("message.received", message.ref), network=message.network,
        occurred_at=message.created_at, message=message,
        conversation=Conversation(ref=message.conversation, kind="thread"),
    )


class _Base(Adapter):
    capabilities = Capabilities(text=TextRule.code_points(280))

    async def open(self) -> None:
        return None

    async def poll(self, cursor: str | None) -> Batch:
        return Batch()

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        raise NotImplementedError

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        return None


class ChirpAdapter(_Base):
    """A polling adapter with the replay hook: a body is a JSON list of texts."""

    network = "chirp"
    seen_paths: ClassVar[list[str | None]] = []
    seen_accounts: ClassVar[list[str | None]] = []

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        cls.seen_paths.append(path)
        cls.seen_accounts.append(account)
        data = json.loads(body)
        if not isinstance(data, list):
            raise PayloadError("expected a list", network=cls.network, path="notifications")
        return [_received(_message(text)) for text in data]


class HookAdapter(_Base):
    """A webhook adapter: the body is one text."""

    network = "hook"
    capabilities = Capabilities(text=TextRule.code_points(280), inbound=frozenset({"webhook"}))

    def parse(self, request: WebhookRequest) -> Sequence[Event]:
        assert request.header("X-Signature") == "sha256=abc"
        return [_received(_message(request.body.decode(), network="hook"))]


class SilentAdapter(_Base):
    """A polling adapter without the replay hook."""

    network = "silent"


@pytest.fixture
def fake_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `replay` find the fake adapters above by network name."""
    table: dict[str, type[Adapter]] = {
        "chirp": ChirpAdapter, "hook": HookAdapter, "silent": SilentAdapter,
    }
    monkeypatch.setattr(commands, "load_adapter", table.__getitem__)


@pytest.mark.usefixtures("fake_networks")
def test_replay_prints_normalized_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recorded body goes through the adapter's hook; events print with their entities."""
    body = tmp_path / "page.json"
    body.write_text(json.dumps(["hi 👋 there", "thanks!"]), encoding="utf-8")
    status, out, _ = run(["replay", "chirp", str(body), "--path", "/notifications"], capsys)
    assert status == 0
    assert "1. message.received" in out
    assert '"hi 👋 there"' in out
    assert "from @alice (Alice)" in out
    assert "2 events from 1 payload" in out
    assert ChirpAdapter.seen_paths[-1] == "/notifications"


@pytest.mark.usefixtures("fake_networks")
def test_replay_walks_a_decoded_cassette(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each interaction of a decoded cassette is replayed with its endpoint path."""
    cassette = {"interactions": [
        {"method": "GET", "uri": "http://x.test/api/notifications?limit=2", "status": 200,
         "response_body": ["one", "two"]},
        {"method": "GET", "uri": "http://x.test/api/other", "status": 200,
         "response_body": {"not": "a list"}},
    ]}
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps(cassette), encoding="utf-8")
    status, out, _ = run(["replay", "chirp", str(path)], capsys)
    assert status == 0
    assert "== interaction 1: GET http://x.test/api/notifications?limit=2 -> 200" in out
    assert "not parsed: chirp: bad payload at notifications: expected a list" in out
    assert "2 events from 1 payload; 1 not parsed" in out
    assert ChirpAdapter.seen_paths[-2:] == ["/api/notifications?limit=2", "/api/other"]


@pytest.mark.usefixtures("fake_networks")
def test_replay_skips_writes_and_errors_of_a_cassette(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cassette's POST answers and error answers are skipped unless --interaction names one."""
    cassette = {"interactions": [
        {"method": "POST", "uri": "http://x.test/api/statuses", "status": 200,
         "response_body": ["posted"]},
        {"method": "GET", "uri": "http://x.test/api/home", "status": 401,
         "response_body": ["refused"]},
        {"method": "GET", "uri": "http://x.test/api/notifications", "status": 200,
         "response_body": ["read"]},
    ]}
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps(cassette), encoding="utf-8")
    status, out, _ = run(["replay", "chirp", str(path)], capsys)
    assert status == 0
    assert "skipped: a POST answer" in out
    assert "skipped: an error answer (HTTP 401)" in out
    assert '"read"' in out
    assert '"posted"' not in out
    assert "1 event from 1 payload; 2 skipped" in out
    status, out, _ = run(["replay", "chirp", str(path), "--interaction", "1"], capsys)
    assert status == 0
    assert '"posted"' in out


@pytest.mark.usefixtures("fake_networks")
def test_replay_of_a_cassette_with_nothing_to_read_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cassette holding only writes is a usage error pointing at --interaction."""
    cassette = {"interactions": [
        {"method": "DELETE", "uri": "http://x.test/api/statuses/1", "status": 200,
         "response_body": {}},
    ]}
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps(cassette), encoding="utf-8")
    status, out, err = run(["replay", "chirp", str(path)], capsys)
    assert status == 2
    assert "--interaction N" in err
    assert out == ""


@pytest.mark.usefixtures("fake_networks")
def test_replay_passes_our_account_to_the_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--account reaches parse_payload, so the adapter can tell our messages apart."""
    body = tmp_path / "page.json"
    body.write_text(json.dumps(["hi"]), encoding="utf-8")
    status, _, _ = run(["replay", "chirp", str(body), "--account", "u-us"], capsys)
    assert status == 0
    assert ChirpAdapter.seen_accounts[-1] == "u-us"


@pytest.mark.usefixtures("fake_networks")
def test_replay_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one parseable event per line."""
    body = tmp_path / "page.json"
    body.write_text(json.dumps(["hello"]), encoding="utf-8")
    status, out, err = run(["replay", "chirp", str(body), "--json"], capsys)
    assert status == 0
    [line] = out.splitlines()
    assert json.loads(line)["message"]["text"] == "hello"
    assert "1 event from 1 payload" in err


@pytest.mark.usefixtures("fake_networks")
def test_replay_uses_parse_for_webhook_adapters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A webhook network's body goes through adapter.parse with the given headers."""
    body = tmp_path / "delivery.txt"
    body.write_text("a webhook text", encoding="utf-8")
    status, out, _ = run(
        ["replay", "hook", str(body), "--header", "X-Signature: sha256=abc"], capsys
    )
    assert status == 0
    assert '"a webhook text"' in out


@pytest.mark.usefixtures("fake_networks")
def test_replay_without_a_hook_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An adapter with neither webhooks nor parse_payload gets a clear message, exit 2."""
    body = tmp_path / "page.json"
    body.write_text("[]", encoding="utf-8")
    status, _, err = run(["replay", "silent", str(body)], capsys)
    assert status == 2
    assert err.startswith("omnichannel: error: silent: this adapter cannot replay payloads")
    assert "Adapter.parse_payload" in err
    assert "Traceback" not in err


def test_the_default_replay_hook_says_replay_is_not_supported() -> None:
    """Adapter.parse_payload is optional: its default raises CapabilityNotSupported("replay")."""
    with pytest.raises(CapabilityNotSupported) as info:
        SilentAdapter.parse_payload(b"[]", path="/notifications")
    assert (info.value.capability, info.value.network) == ("replay", "silent")


@pytest.mark.usefixtures("fake_networks")
def test_replay_webhook_flag_needs_a_webhook_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--webhook on a network without webhooks is a usage error, not a crash."""
    body = tmp_path / "page.json"
    body.write_text("[]", encoding="utf-8")
    status, _, err = run(["replay", "chirp", str(body), "--webhook"], capsys)
    assert status == 2
    assert "chirp: this network has no webhooks: drop --webhook" in err


@pytest.mark.usefixtures("fake_networks")
def test_replay_of_an_unparseable_body_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body the adapter rejects is reported with the network and path, exit 1."""
    body = tmp_path / "page.json"
    body.write_text('{"oops": 1}', encoding="utf-8")
    status, out, _ = run(["replay", "chirp", str(body)], capsys)
    assert status == 1
    assert "not parsed: chirp: bad payload at notifications: expected a list" in out


def test_replay_of_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist is a usage error naming it."""
    status, _, err = run(["replay", "mastodon", "/nonexistent/payload.json"], capsys)
    assert status == 2
    assert "no such file: /nonexistent/payload.json" in err


# inbox -----------------------------------------------------------------------------


async def _fill(path: Path) -> None:
    message = _message("@shop my order #4411 is late 😡", network="mastodon")
    other = _message("thanks!", network="mastodon").model_copy(
        update={"ref": Ref(network="mastodon", id="m2"),
                "conversation": Ref(network="mastodon", id="c2")}
    )
    async with SQLiteStore(path) as store:
        await store.record_batch("mastodon", [_received(message), _received(other)], cursor="1")
        action = Reply(network="mastodon", to=message, text="So sorry, Alice! Checking now.")
        await store.add_draft(Draft(action=action, note="complaint"))


def test_inbox_shows_conversations_drafts_and_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`omnichannel inbox` lists conversations and the pending draft from a SQLite store."""
    import anyio

    path = tmp_path / "bot.db"
    anyio.run(_fill, path)
    status, out, _ = run(["inbox", "--store", str(path)], capsys)
    assert status == 0
    assert "Conversations (2, most recent first)" in out
    assert "my order #4411 is late 😡" in out
    assert "Pending drafts (1, oldest first)" in out
    assert "So sorry, Alice! Checking now." in out
    assert "complaint" in out
    assert "Outbox: empty" in out


def test_inbox_without_a_store_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store file that does not exist is not created; the message says what to do."""
    missing = tmp_path / "none.db"
    status, _, err = run(["inbox", "--store", str(missing)], capsys)
    assert status == 2
    assert "run a bot first" in err
    assert not missing.exists()


async def _claim_one(path: Path) -> None:
    """Queue a reply and claim it, as a bot does just before sending."""
    message = _message("@shop where is my parcel?", network="mastodon")
    async with SQLiteStore(path) as store:
        await store.record_batch("mastodon", [_received(message)], cursor="1")
        action = Reply(network="mastodon", to=message, text="Checking now.")
        await store.enqueue(OutboxItem.for_action(action, origin="handler:triage"))
        await store.claim_due(now=datetime.now(UTC))


def test_inbox_reads_next_to_a_bot_that_is_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a bot holds the write lock, inbox reads at once and recovers nothing."""
    import sqlite3
    from contextlib import closing

    import anyio

    path = tmp_path / "bot.db"
    anyio.run(_claim_one, path)
    with closing(sqlite3.connect(path, isolation_level=None)) as bot:
        bot.execute("BEGIN IMMEDIATE")  # the bot is in the middle of a write
        bot.execute("UPDATE cursors SET cursor = '2'")
        status, out, err = run(["inbox", "--store", str(path)], capsys)
        bot.execute("COMMIT")
        (state,) = bot.execute("SELECT status FROM outbox").fetchone()
    assert (status, err) == (0, "")
    assert "where is my parcel?" in out
    assert "Outbox: 1 sending" in out  # not turned into "ambiguous": that is the bot's job
    assert state == "sending"


def test_inbox_refuses_a_store_of_another_schema_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store written by an older version is named in the error and left unmigrated."""
    import sqlite3
    from contextlib import closing

    from omnichannel.store._sqlite_schema import MIGRATIONS

    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
    status, _, err = run(["inbox", "--store", str(path)], capsys)
    with closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    assert status == 2
    assert str(path) in err
    assert "older" in err
    assert version == 1


# serve -----------------------------------------------------------------------------


def test_serve_rejects_a_malformed_target(capsys: pytest.CaptureFixture[str]) -> None:
    """APP must be module:attribute; anything else is a usage error."""
    status, _, err = run(["serve", "no_colon_here"], capsys)
    assert status == 2
    assert "module:attribute" in err


def test_serve_reports_a_missing_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module without the named attribute is reported by name."""
    (tmp_path / "myhelpdesk_empty.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status, _, err = run(["serve", "myhelpdesk_empty:hub"], capsys)
    assert status == 2
    assert "has no attribute 'hub'" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_a_hub_and_its_webhook_app(tmp_path: Path) -> None:
    """`omnichannel serve module:hub` answers on its webhook routes and stops cleanly on SIGTERM."""
    (tmp_path / "myhelpdesk.py").write_text(
        "from omnichannel.hub import Hub\nfrom omnichannel.store import MemoryStore\n"
        "hub = Hub(store=MemoryStore())\n",
        encoding="utf-8",
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "omnichannel", "serve", "myhelpdesk:hub", "--port", str(port)],
        cwd=tmp_path, env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "hub running; webhooks at (no adapters)" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/nowhere", content=b"{}")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 404
        assert response.text == "unknown network"
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
    # The hub is stopped and closed, not killed by the signal uvicorn passes on.
    assert process.returncode == 0, err
    assert "omnichannel: stopped on SIGTERM" in out


# the command itself ----------------------------------------------------------------


def test_no_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel` alone lists the commands instead of an argparse error."""
    status, out, _ = run([], capsys)
    assert status == 0
    assert out.startswith("usage: omnichannel")
    for command in ("adapters", "demo", "serve", "inbox", "drafts", "replay"):
        assert command in out


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel --version` names the installed version."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"omnichannel {version('omnichannel')}"


@pytest.mark.parametrize(
    ("argv", "level"),
    [(["demo", "-v"], 1), (["-v", "demo"], 1), (["-v", "demo", "-v"], 2), (["demo"], 0),
     (["inbox", "-vv"], 2)],
)
def test_verbose_counts_before_and_after_the_command(argv: list[str], level: int) -> None:
    """-v works after the command too (`omnichannel demo -v`, as the demo page shows)."""
    from omnichannel.cli._main import build_parser

    args = build_parser().parse_args(argv)
    assert args.verbose + getattr(args, "verbose_after", 0) == level


@pytest.mark.parametrize(
    "argv",
    [["demo", "--network", "myspace"], ["drafts", "list", "--network", "myspace"],
     ["inbox", "--network", "myspace"]],
)
def test_unknown_network_lists_the_installed_ones(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown network is a usage error naming the installed networks, not empty output."""
    import anyio

    path = tmp_path / "bot.db"
    anyio.run(_fill, path)
    extra = [] if argv[0] == "demo" else ["--store", str(path)]
    status, out, err = run([*argv, *extra], capsys)
    assert status == 2
    assert out == ""
    assert (
        "no adapter for network 'myspace' is installed "
        "(installed: bluesky, facebook, instagram, mastodon, x)"
    ) in err
    assert "pip install" not in err  # nothing to install: no such adapter ships


def test_quickbot_sandbox_on_an_unknown_network_lists_the_installed_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The quick bot does not suggest installing adapters that are installed."""
    from omnichannel._demo import load_quickbot

    status = load_quickbot().main(["--sandbox", "--network", "myspace"])
    err = capsys.readouterr().err
    assert status == 2
    assert "(installed: bluesky, facebook, instagram, mastodon, x)" in err
    assert "pip install" not in err


def test_serve_advertises_webhook_urls_only_for_webhook_networks() -> None:
    """A polling or streaming network gets no webhook URL; a webhook network gets one."""
    from omnichannel.store import MemoryStore

    sandbox = MastodonSandbox(seed=1)
    mastodon = MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    assert "webhook" not in mastodon.capabilities.inbound
    polling = commands._webhook_summary(Hub(adapters=[mastodon], store=MemoryStore()),
                                        "127.0.0.1", 8000)
    assert polling == "no webhooks for mastodon (polled or streamed)"
    hook = HookAdapter(HookAdapter.settings_model())
    both = commands._webhook_summary(Hub(adapters=[mastodon, hook], store=MemoryStore()),
                                     "127.0.0.1", 8000)
    assert both == ("webhooks at http://127.0.0.1:8000/hook; "
                    "no webhooks for mastodon (polled or streamed)")


# install hints ---------------------------------------------------------------------


def test_no_hint_names_an_unpublished_package() -> None:
    """Until the distributions are published, every hint installs from a clone."""
    offenders = []
    for root in ("src", "docs", "adapters"):
        for path in (REPO / root).rglob("*"):
            if path.suffix not in {".py", ".md", ".toml"} or ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if "pip install omnichannel-" in text or "pip install 'omnichannel[" in text:
                offenders.append(str(path.relative_to(REPO)))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install omnichannel-" not in readme
    assert offenders == []


def test_no_adapters_installed_says_how_to_install_from_a_clone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`omnichannel adapters` with nothing installed points at the repository's folders."""
    monkeypatch.setenv("OMNICHANNEL_ADAPTERS", "nothing-at-all")
    status, out, _ = run(["adapters"], capsys)
    assert status == 0
    assert "pip install -e ./adapters/mastodon -e ./adapters/bluesky" in out
    assert "pip install omnichannel-" not in out


# the quick bot: stopping and reporting ---------------------------------------------

QUICKBOT = REPO / "examples" / "quickbot.py"


def test_sigterm_stops_the_quick_bot_cleanly(tmp_path: Path) -> None:
    """SIGTERM (systemd, docker stop) cancels the run, closes the store, reports, exits 0."""
    import signal

    store = tmp_path / "bot.db"
    process = subprocess.Popen(
        [sys.executable, str(QUICKBOT), "--sandbox", "--network", "mastodon",
         "--store", str(store)],
        cwd=tmp_path, env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert "running on the mastodon sandbox" in process.stdout.readline()
        deadline = time.monotonic() + 30
        while not store.is_file():  # the hub has opened its store
            assert time.monotonic() < deadline, "the bot never opened its store"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "quickbot: stopped on SIGTERM; this run: " in out
    # SQLite removes the write-ahead log when the last connection closes cleanly.
    assert store.is_file()
    assert not Path(f"{store}-wal").exists()


_SLOW_BOT = """
import sys
import anyio
from omnichannel import MessageReceived
from omnichannel.cli import Bot
from omnichannel.policy import AutoSend

bot = Bot("slowbot", policy=AutoSend())

@bot.on(MessageReceived, when=lambda event: event.message.author.handle == "alice")
async def answer(event, ctx):
    print("handling", flush=True)
    await anyio.sleep(1.0)  # SIGTERM arrives now
    await ctx.reply("Thanks Alice, that took a moment.")

raise SystemExit(bot.main())
"""


def test_sigterm_lets_a_running_handler_finish(tmp_path: Path) -> None:
    """A handler in the middle of its work when SIGTERM comes finishes, and its reply is sent."""
    import signal

    (tmp_path / "slowbot.py").write_text(_SLOW_BOT, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "slowbot.py", "--sandbox", "--network", "mastodon"],
        cwd=tmp_path, env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert "running on the mastodon sandbox" in process.stdout.readline()
        assert process.stdout.readline() == "handling\n"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert '-> replied publicly: "Thanks Alice, that took a moment."' in out
    assert "slowbot: stopped on SIGTERM; this run: 4 events received, 0 already seen, 1 sent" in out


def test_a_rerun_on_the_same_store_reports_only_what_it_did(tmp_path: Path) -> None:
    """The second run on one SQLite store claims none of the first run's replies."""
    import io

    from omnichannel._demo import load_quickbot

    store = tmp_path / "bot.db"
    argv = ["--sandbox", "--until-idle", "--network", "mastodon", "--store", str(store)]
    first, second = io.StringIO(), io.StringIO()
    assert load_quickbot().main(argv, out=first) == 0
    assert load_quickbot().main(argv, out=second) == 0
    assert "-> replied publicly: \"You're welcome, Alice!" in first.getvalue()
    assert "this run: 4 events received, 0 already seen, 3 sent, 1 held as drafts" in (
        first.getvalue())
    # The sandbox is new, the store is not. Its customers write once the bot listens;
    # the new sandbox numbers its notifications from 1 again, so whether they come
    # depends on whether the stream was connected (polling resumes after the stored
    # id). Either way the report claims none of the first run's replies, and what did
    # come is held by the guardrail (the same answers went to other people).
    assert "replied" not in second.getvalue()
    assert re.search(r"this run: (0|4) events received, 0 already seen, 0 sent, \1 held as "
                     r"drafts", second.getvalue())


# logging ---------------------------------------------------------------------------

_LOG_PROBE = """
import logging, sys
from omnichannel.cli._logging import configure_logging
configure_logging(int(sys.argv[1]), config=sys.argv[2] or None)
logging.getLogger("omnichannel.hub").info("mastodon: reply sent", extra={"network": "mastodon"})
logging.getLogger("omnichannel.http").debug("mastodon GET /api/v1/notifications -> 200")
logging.getLogger("omnichannel.outbox").debug("a debug detail")
logging.getLogger("httpx").info("HTTP Request: GET https://x.example/?access_token=abc")
"""


def _log_probe(verbose: int, config: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-c", _LOG_PROBE, str(verbose), config], env=CLEAN_ENV,
        capture_output=True, text=True, timeout=60, check=True,
    )
    return done.stderr


def test_log_levels_follow_verbose() -> None:
    """INFO event lines by default, -v adds the HTTP lines, httpx's own lines never show."""
    quiet, verbose, debug = _log_probe(0), _log_probe(1), _log_probe(2)
    assert "INFO omnichannel.hub: mastodon: reply sent" in quiet
    assert "omnichannel.http" not in quiet
    assert "DEBUG omnichannel.http: mastodon GET /api/v1/notifications -> 200" in verbose
    assert "a debug detail" not in verbose
    assert "a debug detail" in debug
    for text in (quiet, verbose, debug):
        assert "access_token" not in text
        assert "HTTP Request" not in text


def test_a_logging_config_file_plugs_in_a_json_formatter(tmp_path: Path) -> None:
    """--log-config takes a dictConfig: here a JSON formatter that keeps the extra fields."""
    (tmp_path / "jsonlog.py").write_text(
        "import json, logging\n"
        "class JsonFormatter(logging.Formatter):\n"
        "    def format(self, record):\n"
        "        return json.dumps({'logger': record.name, 'message': record.getMessage(),\n"
        "                           'network': getattr(record, 'network', None)})\n",
        encoding="utf-8",
    )
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "formatters": {"json": {"()": "jsonlog.JsonFormatter"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {"omnichannel": {"level": "INFO"}},
        "root": {"handlers": ["err"], "level": "WARNING"},
    }), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _LOG_PROBE, "0", str(config)],
        env={**CLEAN_ENV, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=60, check=True,
    )
    assert [json.loads(line) for line in done.stderr.splitlines()] == [
        {"logger": "omnichannel.hub", "message": "mastodon: reply sent", "network": "mastodon"},
    ]


def test_a_bad_logging_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A logging config that does not parse is named; nothing runs."""
    config = tmp_path / "logging.json"
    config.write_text("{not json", encoding="utf-8")
    status, _, err = run(["adapters", "--log-config", str(config)], capsys)
    assert status == 2
    assert f"logging config {config} is not valid JSON" in err


def test_verbose_quick_bot_shows_http_lines_and_never_its_token(tmp_path: Path) -> None:
    """-v on a sandbox run: the event lines, one line per HTTP request, no header or token."""
    done = subprocess.run(
        [sys.executable, str(QUICKBOT), "--sandbox", "--until-idle", "--network", "mastodon",
         "-v"],
        cwd=tmp_path, env=CLEAN_ENV, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "INFO omnichannel.hub: mastodon: message received from alice" in done.stderr
    assert "DEBUG omnichannel.http: mastodon POST /api/v1/statuses -> 200" in done.stderr
    assert "DEBUG omnichannel.hub" not in done.stderr  # -vv would add those
    printed = done.stderr + done.stdout
    for secret_sign in ("Bearer", "Authorization", "access_token"):
        assert secret_sign not in printed


# drafts ----------------------------------------------------------------------------


async def _bot_session(
    path: Path, sandbox: MastodonSandbox, *, until: str, write: Callable[[], object] = list
) -> None:
    """Run a hold-public hub on ``path`` until it drafted 3 replies or delivered its outbox.

    ``write`` has the customers write once the hub listens (what came before is history).
    """
    import anyio

    from omnichannel.hub import Context

    adapter = MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    hub = Hub(adapters=[adapter], store=SQLiteStore(path))  # policy: HoldPublic()

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("Sorry about that, we are on it.")

    async with hub, anyio.create_task_group() as tg:
        await tg.start(hub.run)
        write()
        with anyio.fail_after(15):
            while True:
                if until == "drafted" and len(await hub.drafts.pending()) == 3:
                    break
                if until == "delivered" and not await hub.store.list_outbox(
                    status="pending", limit=1
                ) and await hub.store.list_outbox(status="sent", limit=1):
                    break
                await anyio.sleep(0.05)
        hub.stop()


def test_drafts_are_listed_approved_edited_and_rejected_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """List, approve with new text, reject; the guardrail still applies; a bot then delivers."""
    import anyio

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("OMNICHANNEL_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "bot.db"
    sandbox = MastodonSandbox(seed=4)

    def customers_write() -> None:
        for who in ("alice", "bob", "carol"):
            sandbox.customer_mention(f"my order is late, {who} here",
                                     author=sandbox.customer(who))

    anyio.run(lambda: _bot_session(path, sandbox, until="drafted", write=customers_write))

    status, out, _ = run(["drafts", "list", "--store", str(path)], capsys)
    assert status == 0
    assert "Pending drafts (3, oldest first)" in out
    ids = {line.split()[3]: line.split()[0] for line in out.splitlines()[3:]}
    assert set(ids) == {"@alice", "@bob", "@carol"}

    edited = "So sorry, Alice! Your parcel leaves today."
    status, out, err = run(["drafts", "approve", ids["@alice"][:8], "--text", edited,
                            "--by", "agent:anna", "--store", str(path)], capsys)
    assert (status, err) == (0, "")
    assert f"approved draft {ids['@alice']} (edited): queued for mastodon" in out
    # The copy-paste guardrail holds for approvals from the command line too.
    status, _, err = run(["drafts", "approve", ids["@carol"], "--text", edited,
                          "--store", str(path)], capsys)
    assert status == 1
    assert "was already sent to another customer" in err
    assert "--allow-duplicate approves it anyway" in err
    status, out, _ = run(["drafts", "reject", ids["@bob"], "--reason", "handled by phone",
                          "--store", str(path)], capsys)
    assert status == 0
    assert f"rejected draft {ids['@bob']}" in out
    status, _, err = run(["drafts", "reject", ids["@bob"], "--store", str(path)], capsys)
    assert status == 1
    assert "draft is already rejected" in err
    status, out, _ = run(["drafts", "list", "--status", "all", "--store", str(path)], capsys)
    assert [line.split()[1] for line in out.splitlines()[3:]].count("pending") == 1

    assert sandbox.sent() == []  # approving queues; the running bot sends
    anyio.run(lambda: _bot_session(path, sandbox, until="delivered"))
    assert [sent.text for sent in sandbox.sent()] == [f"@alice {edited}"]

    async def audit() -> list[tuple[str | None, str | None]]:
        async with SQLiteStore(path, read_only=True) as store:
            return [(e.approved_by, e.detail) for e in await store.audit_log()]

    approved, rejected = anyio.run(audit)
    assert approved == ("agent:anna", None)
    assert rejected[0] is None
    assert re.fullmatch(f"draft {ids['@bob']}[0-9a-f]* rejected: handled by phone",
                        rejected[1] or "")


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"interactions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"interactions": [{"method": "GET", "uri": "https://m.example/api/v1/notifications",'
    b' "status": 200, "response_body": "[\\"\\ud800\\"]"}]}',
])
def test_replay_of_deep_nesting_or_lone_surrogates_is_not_parsed_not_a_crash(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nesting too deep for Python, or a lone surrogate, is reported as not parsed, exit 1."""
    path = tmp_path / "page.json"
    path.write_bytes(body)
    status, out, _ = run(["replay", "mastodon", str(path), "--path", "/api/v1/notifications"],
                         capsys)
    assert status == 1
    assert "not parsed: mastodon: bad payload" in out
