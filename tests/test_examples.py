"""Every program in examples/ runs against the sandboxes of the installed adapters."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from omnichannel.adapter import Adapter
from omnichannel.store import MemoryStore
from omnichannel.testing import Sandbox

pytest.importorskip("fastapi")  # the test extra installs it

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}

# Each entry of examples/ and what runs it: a test in this file, or another test file.
RUNNERS = {
    "quickbot.py": "test_quickbot_answers_the_sandbox_customers",
    "helpdesk_fastapi": "test_helpdesk_agents_approve_and_reject_drafts",
    "agent_inbox": "tests/test_agent_inbox.py",
    "adapter_tutorial": "tests/test_conformance_tutorial.py",
    "service": "tests/test_service.py",
}


def test_every_example_is_run_by_a_test() -> None:
    """A new entry in examples/ needs a test that runs it, here or in a named test file."""
    entries = {
        p.name for p in EXAMPLES.iterdir()
        if not p.name.startswith((".", "_")) and p.name != "README.md"
    }
    assert entries == set(RUNNERS)
    for entry, runner in RUNNERS.items():
        if runner.endswith(".py"):
            assert entry in (REPO / runner).read_text(encoding="utf-8"), runner
        else:
            assert callable(globals()[runner]), runner


def _quickbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "quickbot.py"), *args], cwd=cwd, env=env or CLEAN_ENV,
        capture_output=True, text=True, timeout=120, check=False,
    )


def _sections(transcript: str) -> dict[str, str]:
    """Split the bot's transcript into its per-network sections."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in transcript.splitlines():
        if line and not line.startswith(" ") and ":" not in line:
            current = found.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def test_quickbot_answers_the_sandbox_customers(tmp_path: Path) -> None:
    """--sandbox: thanks in public, a drafted complaint, a question moved private, a DM answered."""
    done = _quickbot("--sandbox", "--until-idle", "--max-seconds", "60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sections = _sections(done.stdout)
    assert set(sections) >= {"mastodon", "bluesky"}
    expected = [
            '-> replied publicly: "You\'re welcome, {Alice}! Glad we could help 💙"',
            '.. drafted for a human (complaint): "{Bob}, we\'re so sorry.',
            '-> replied privately: "Hi {Carol}, let\'s sort this out here in private."',
            '-> replied privately: "Hi {Dave}, thanks for writing!',
    ]
    for network, text in sections.items():
        # Instagram's comments and messages name people by username only: the
        # bot greets them by it.
        names = {n: n.lower() if network == "instagram" else n
                 for n in ("Alice", "Bob", "Carol", "Dave")}
        for line in expected:
            assert line.format(**names) in text, (network, line)
        assert "(no answer)" not in text, network
    assert not list(tmp_path.iterdir()), "the sandbox run leaves no store behind"


def test_quickbot_without_settings_says_what_to_set(tmp_path: Path) -> None:
    """Run for real with nothing configured: one clear message, exit 2, no traceback."""
    done = _quickbot("--until-idle", cwd=tmp_path)
    assert done.returncode == 2
    assert "quickbot: error: no network is configured" in done.stderr
    assert "--sandbox" in done.stderr
    assert "Traceback" not in done.stderr


def test_quickbot_names_the_missing_setting(tmp_path: Path) -> None:
    """A half-configured network names the setting that is missing."""
    env = {**CLEAN_ENV, "OMNICHANNEL_MASTODON_BASE_URL": "https://mastodon.example"}
    done = _quickbot("--until-idle", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "missing setting access_token" in done.stderr
    assert "OMNICHANNEL_MASTODON_ACCESS_TOKEN" in done.stderr


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def _eventually(check: Callable[[], Any], *, seconds: float = 15.0) -> Any:
    """Call ``check`` until it returns something truthy."""
    with anyio.fail_after(seconds):
        while True:
            result = await check()
            if result:
                return result
            await anyio.sleep(0.05)


def _sandbox_adapters() -> list[tuple[Sandbox, Adapter]]:
    from omnichannel_bluesky import BlueskyAdapter
    from omnichannel_bluesky.sandbox import BlueskySandbox
    from omnichannel_mastodon import MastodonAdapter
    from omnichannel_mastodon.sandbox import MastodonSandbox

    pairs: list[tuple[Sandbox, Adapter]] = []
    mastodon = MastodonSandbox(seed=3)
    pairs.append((mastodon, MastodonAdapter(
        {**mastodon.adapter_settings(), "poll_interval": 0.05}, transport=mastodon.transport()
    )))
    bluesky = BlueskySandbox(seed=3)
    pairs.append((bluesky, BlueskyAdapter(
        {**bluesky.adapter_settings(), "poll_interval": 0.05}, transport=bluesky.transport()
    )))
    return pairs


@pytest.fixture
async def helpdesk() -> AsyncIterator[tuple[httpx.AsyncClient, list[Sandbox]]]:
    """The helpdesk app on the sandboxes, its lifespan running, an HTTP client on it."""
    module = _load(EXAMPLES / "helpdesk_fastapi" / "app.py", "helpdesk_fastapi_app")
    pairs = _sandbox_adapters()
    hub = module.build_hub([adapter for _, adapter in pairs], MemoryStore())
    app = module.create_app(hub)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://helpdesk.test") as http:
            yield http, [sandbox for sandbox, _ in pairs]


async def test_helpdesk_agents_approve_and_reject_drafts(
    helpdesk: tuple[httpx.AsyncClient, list[Sandbox]],
) -> None:
    """Agents see drafts, approve one edited and reject one: only the approved one lands."""
    client, sandboxes = helpdesk
    posts = {}
    for sandbox in sandboxes:
        alice = sandbox.customer("alice", display_name="Alice")
        bob = sandbox.customer("bob", display_name="Bob")
        posts[sandbox.network] = (
            sandbox.customer_mention("where is my parcel? 📦", author=alice),
            sandbox.customer_mention("wrong colour arrived", author=bob),
        )

    async def two_drafts_each() -> list[dict[str, Any]] | None:
        drafts: list[dict[str, Any]] = (await client.get("/api/drafts")).json()
        counts = {s.network: sum(d["network"] == s.network for d in drafts) for s in sandboxes}
        return drafts if all(n == 2 for n in counts.values()) else None

    drafts = await _eventually(two_drafts_each)
    assert {d["note"] for d in drafts} == {"suggested answer"}

    for sandbox in sandboxes:
        alice_post, bob_post = posts[sandbox.network]
        mine = [d for d in drafts if d["network"] == sandbox.network]
        to_alice = next(d for d in mine if d["answering"]["id"] == alice_post.id)
        to_bob = next(d for d in mine if d["answering"]["id"] == bob_post.id)
        edited = f"Hi Alice, your parcel left our {sandbox.network} warehouse today 🚚"
        approved = await client.post(f"/api/drafts/{to_alice['id']}/approve",
                                      json={"agent": "anna", "text": edited})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "pending"
        rejected = await client.post(f"/api/drafts/{to_bob['id']}/reject",
                                     json={"agent": "anna", "reason": "needs a refund check"})
        assert rejected.status_code == 200
        again = await client.post(f"/api/drafts/{to_bob['id']}/approve", json={"agent": "bo"})
        assert again.status_code == 409

        async def delivered(sandbox: Sandbox = sandbox, text: str = edited) -> bool:
            return any(r.text.endswith(text) for r in sandbox.sent())

        await _eventually(delivered)
        sent = sandbox.sent()
        assert [r.in_reply_to for r in sent] == [alice_post.id]
        assert not any("Let me check that for you" in r.text for r in sent)

    assert (await client.get("/api/drafts")).json() == []
    conversations = (await client.get("/api/conversations")).json()
    assert {c["network"] for c in conversations} == {s.network for s in sandboxes}
    first = conversations[0]
    thread = await client.get(f"/api/conversations/{first['network']}/{first['id']}/messages")
    assert thread.status_code == 200
    assert any(m["from_us"] for m in thread.json()) or any(not m["from_us"] for m in thread.json())


async def test_helpdesk_sandbox_factory_runs_offline() -> None:
    """`helpdesk_fastapi.app:sandbox`: customers write on both sandboxes, an agent approves."""
    module = _load(EXAMPLES / "helpdesk_fastapi" / "app.py", "helpdesk_fastapi_sandbox")
    app = module.sandbox()
    sandboxes: list[Sandbox] = app.state.sandboxes
    assert {s.network for s in sandboxes} == {"mastodon", "bluesky"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base = "http://helpdesk.test"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:

            async def three_drafts_each() -> list[dict[str, Any]] | None:
                drafts: list[dict[str, Any]] = (await client.get("/api/drafts")).json()
                counts = [sum(d["network"] == s.network for d in drafts) for s in sandboxes]
                return drafts if counts == [3, 3] else None

            drafts = await _eventually(three_drafts_each)
            for sandbox in sandboxes:
                parcel = next(d for d in drafts if d["network"] == sandbox.network
                              and "parcel" in d["answering"]["text"])
                approved = await client.post(f"/api/drafts/{parcel['id']}/approve",
                                             json={"agent": "anna"})
                assert approved.status_code == 200, approved.text

                async def delivered(sandbox: Sandbox = sandbox) -> bool:
                    return any("Hi Alice" in r.text for r in sandbox.sent())

                await _eventually(delivered)
                assert len(sandbox.sent()) == 1
            assert len((await client.get("/api/drafts")).json()) == 4


def test_helpdesk_main_uses_the_configured_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`main()` opens the store `store =` names, OMNICHANNEL_STORE first, else helpdesk.db."""
    module = _load(EXAMPLES / "helpdesk_fastapi" / "app.py", "helpdesk_fastapi_main")
    for name in [n for n in os.environ if n.startswith("OMNICHANNEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    account = '[mastodon]\nbase_url = "https://mastodon.example"\naccess_token = "t0ken"\n'
    (tmp_path / "omnichannel.toml").write_text(account, encoding="utf-8")
    assert module.main().state.hub.store.path == "helpdesk.db"
    (tmp_path / "omnichannel.toml").write_text('store = "desk.db"\n' + account, encoding="utf-8")
    assert module.main().state.hub.store.path == "desk.db"
    monkeypatch.setenv("OMNICHANNEL_STORE", str(tmp_path / "env.db"))
    assert module.main().state.hub.store.path == str(tmp_path / "env.db")
    assert not list(tmp_path.glob("*.db"))  # nothing is opened before the app starts


def test_helpdesk_extra_installs_what_it_imports() -> None:
    """`pip install 'omnichannel[fastapi]'` brings every third-party module the app imports."""
    import ast
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = {re.split(r"[<>=\[ ]", r)[0] for r in project["optional-dependencies"]["fastapi"]}
    core = {re.split(r"[<>=\[ ]", r)[0] for r in project["dependencies"]}
    assert {"fastapi", "uvicorn"} <= extra  # `omnichannel serve` runs it with uvicorn
    tree = ast.parse((EXAMPLES / "helpdesk_fastapi" / "app.py").read_text(encoding="utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names if not (isinstance(node, ast.ImportFrom) and node.level)
    }
    third_party = imported - set(sys.stdlib_module_names) - {"omnichannel"}
    adapters = {"omnichannel_mastodon", "omnichannel_bluesky"}  # installed from ./adapters
    assert third_party - adapters <= extra | core, third_party
    readme = (EXAMPLES / "helpdesk_fastapi" / "app.py").read_text(encoding="utf-8")
    assert "pip install -e '.[fastapi]' -e ./adapters/mastodon -e ./adapters/bluesky" in readme


async def test_helpdesk_errors_and_webhook_mount(
    helpdesk: tuple[httpx.AsyncClient, list[Sandbox]],
) -> None:
    """Unknown drafts are 404; /webhooks is the hub's own webhook app."""
    client, _ = helpdesk
    missing = await client.post("/api/drafts/nope/approve", json={"agent": "anna"})
    assert missing.status_code == 404
    unknown = await client.post("/webhooks/myspace", content=b"{}")
    assert unknown.status_code == 404
    assert unknown.text == "unknown network"  # answered by hub.asgi, not by FastAPI
    assert (await client.get("/api/conversations/mastodon/none/messages")).status_code == 404
