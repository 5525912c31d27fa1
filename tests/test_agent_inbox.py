"""examples/agent_inbox over HTTP (no browser): login, CSRF, escaping, counts, collisions."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

pytest.importorskip("jinja2", reason="install the inbox or test extra")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from examples.agent_inbox.app import Inbox, create_app, sandbox_inbox  # noqa: E402
from examples.agent_inbox.auth import Sessions, check_password, hash_password  # noqa: E402

from omnichannel.model import Ref  # noqa: E402

Client = tuple[httpx.AsyncClient, Inbox, list[Any]]


async def _eventually(check: Callable[[], Any], *, seconds: float = 15.0) -> Any:
    with anyio.fail_after(seconds):
        while True:
            result = await check()
            if result:
                return result
            await anyio.sleep(0.05)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, html
    return found.group(1)


DEMO = "demo"  # the sandbox agents' password


async def _sign_in(
    client: httpx.AsyncClient, agent: str, password: str = DEMO
) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"csrf": _csrf(page.text), "agent": agent,
                                             "password": password})


@pytest.fixture
async def inbox() -> AsyncIterator[Client]:
    state, sandboxes = sandbox_inbox()
    app = create_app(state)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inbox.test") as client:
            yield client, state, sandboxes


def test_passwords_are_scrypt_hashes_and_sessions_are_signed() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert check_password("correct horse", stored)
    assert not check_password("wrong horse", stored)
    assert not check_password("correct horse", "plain")
    sessions = Sessions()
    cookie = sessions.issue("anna")
    assert sessions.agent(cookie) == "anna"
    assert sessions.agent(cookie.replace("anna", "ben", 1)) is None
    assert sessions.agent(Sessions().issue("anna")) is None  # another server's key
    assert sessions.csrf_ok(cookie, sessions.csrf(cookie))
    assert not sessions.csrf_ok(cookie, sessions.csrf(Sessions().issue("anna")))


async def test_login_needs_the_password_and_the_form_token(inbox: Client) -> None:
    client, _, _ = inbox
    assert (await client.get("/")).headers["location"] == "/login"
    wrong = await _sign_in(client, "anna", "guess")
    assert wrong.status_code == 401
    assert "wrong password" in wrong.text
    forged = await client.post("/login", data={"csrf": "0" * 64, "agent": "anna",
                                               "password": "demo"})
    assert forged.status_code == 403
    assert (await _sign_in(client, "anna")).status_code == 303
    page = await client.get("/")
    assert page.status_code == 200
    assert "Signed in as <strong>anna</strong>" in page.text
    assert "scrypt$" not in page.text  # no secrets in pages
    no_token = await client.post("/logout")
    assert no_token.status_code == 403


async def test_customer_markup_is_escaped_and_sends_need_the_token(inbox: Client) -> None:
    client, state, (mastodon, _) = inbox
    await _sign_in(client, "anna")
    post = mastodon.customer_mention("<script>alert(1)</script><img src=x onerror=alert(2)>",
                                     author=mastodon.customer("mallory"))

    async def listed() -> Any:
        return await state.hub.store.get_message(Ref(network="mastodon", id=post.id))

    message = await _eventually(listed)
    path = f"/c/mastodon/{quote(message.conversation.id, safe='')}"
    page = await client.get(path)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page.text
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    reply = f"/reply/mastodon/{quote(message.conversation.id, safe='')}"
    refused = await client.post(reply, data={"text": "hi", "mode": "public"})
    assert refused.status_code == 403
    assert await state.hub.store.list_outbox() == []


async def test_counter_uses_the_networks_unit_and_limit(inbox: Client) -> None:
    client, _, _ = inbox
    await _sign_in(client, "anna")
    token = _csrf((await client.get("/")).text)
    headers = {"x-csrf-token": token}
    text = "family 👨‍👩‍👧 é"
    counted = {}
    for network in ("mastodon", "bluesky"):
        answer = await client.post("/count", data={"network": network, "text": text},
                                   headers=headers)
        counted[network] = answer.json()
    assert counted["bluesky"] == {"count": 10, "limit": 300, "unit": "graphemes"}
    assert counted["mastodon"]["limit"] == 500


async def test_a_colleagues_claim_refuses_the_send_and_names_them(inbox: Client) -> None:
    client, state, (mastodon, _) = inbox
    await _sign_in(client, "anna")
    post = mastodon.customer_mention("where is my parcel?", author=mastodon.customer("alice"))

    async def stored() -> Any:
        return await state.hub.store.get_message(Ref(network="mastodon", id=post.id))

    message = await _eventually(stored)
    await state.workflow.claim(message.conversation, "ben", activity="typing")
    cid = quote(message.conversation.id, safe="")
    page = await client.get(f"/c/mastodon/{cid}")
    assert "<strong>ben</strong> is typing in this conversation" in page.text
    sent = await client.post(f"/reply/mastodon/{cid}", follow_redirects=True,
                             data={"csrf": _csrf(page.text), "text": "on its way",
                                   "mode": "public"})
    assert "Not sent: ben is working on this conversation." in sent.text
    assert not [i for i in await state.hub.store.list_outbox() if i.origin == "agent:anna"]
    claimed = await client.post(f"/claim/mastodon/{cid}", data={"csrf": _csrf(page.text)})
    assert claimed.status_code == 409
    assert claimed.json() == {"holder": "ben", "mine": False}


async def test_canned_replies_take_the_networks_variant(inbox: Client) -> None:
    client, _, _ = inbox
    await _sign_in(client, "anna")
    bluesky = await client.get("/canned", params={"name": "parcel", "network": "bluesky",
                                                   "customer": "Bob"})
    mastodon = await client.get("/canned", params={"name": "parcel", "network": "mastodon",
                                                    "customer": "Bob"})
    assert bluesky.text == "Hi Bob, sorry for the wait! Your parcel is on its way 📦"
    assert mastodon.text.startswith("Hi Bob, sorry for the wait! Your parcel is on its way; ")


def test_one_command_starts_it_on_the_sandboxes() -> None:
    """``python -m examples.agent_inbox --sandbox`` serves the login page, customers writing."""
    import socket
    import subprocess

    pytest.importorskip("uvicorn")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHANNEL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.agent_inbox", "--sandbox", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    with process:
        _wait_for_login(process, port)


def _wait_for_login(process: Any, port: int) -> None:
    import time

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the inbox did not start"
                time.sleep(0.2)
        assert page.status_code == 200
        assert 'name="csrf"' in page.text
    finally:
        process.terminate()
        process.communicate(timeout=10)
