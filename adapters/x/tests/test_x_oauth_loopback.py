"""The PKCE flow's loopback redirect listener, reached with httpx as a browser would."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest

from omnichannel.errors import AuthenticationError, ConfigurationError
from omnichannel_x.oauth import (
    code_from_redirect,
    exchange_code,
    main,
    receive_redirect,
    start_authorization,
)
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_listener_takes_the_redirect_then_closes() -> None:
    sandbox = XSandbox(seed=5)
    port = _free_port()
    request = start_authorization(sandbox.client_id, f"http://127.0.0.1:{port}/callback")
    redirected = sandbox.authorize(request.authorize_url)
    received: list[str] = []

    async def listen(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        received.append(await receive_redirect(request, within=10, task_status=task_status))

    async with anyio.create_task_group() as tasks, httpx.AsyncClient() as browser:
        await tasks.start(listen)
        stray = await browser.get(f"http://127.0.0.1:{port}/favicon.ico")
        assert stray.status_code == 404
        page = await browser.get(redirected)
        assert page.status_code == 200
        assert "Authorization received" in page.text
    assert received == [redirected]
    async with httpx.AsyncClient() as browser:
        with pytest.raises(httpx.ConnectError):
            await browser.get(redirected)  # closed after the one redirect
    tokens = await exchange_code(
        request, code_from_redirect(request, received[0]), client_id=sandbox.client_id,
        token_url=f"{sandbox.base_url}/2/oauth2/token", transport=sandbox.transport())
    assert tokens.access_token.get_secret_value() == sandbox.token


async def test_the_listener_refuses_a_redirect_off_the_loopback() -> None:
    request = start_authorization("client", "https://shop.example/callback")
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1"):
        await receive_redirect(request)


async def test_the_listener_gives_up_after_its_timeout() -> None:
    request = start_authorization("client", f"http://127.0.0.1:{_free_port()}/cb")
    with pytest.raises(AuthenticationError, match="no redirect"):
        await receive_redirect(request, within=0.05)


def test_the_cli_listens_instead_of_reading_a_pasted_url(tmp_path: Path) -> None:
    sandbox = XSandbox(seed=6)
    port = _free_port()
    out = tmp_path / "tokens.json"
    printed = io.StringIO()
    status: list[int] = []
    cli = threading.Thread(target=lambda: status.append(main(
        ["--client-id", sandbox.client_id, "--redirect-uri", f"http://127.0.0.1:{port}/cb",
         "--out", str(out), "--listen", "--timeout", "10",
         "--token-url", f"{sandbox.base_url}/2/oauth2/token"],
        stdin=io.StringIO(""), stdout=printed, transport=sandbox.transport())))
    cli.start()
    deadline = time.monotonic() + 10
    answer: httpx.Response | None = None
    while answer is None and time.monotonic() < deadline:
        urls = [line for line in printed.getvalue().splitlines() if line.startswith("https://")]
        try:
            answer = httpx.get(sandbox.authorize(urls[0])) if urls else None
        except httpx.ConnectError:
            answer = None  # not listening yet
        if answer is None:
            time.sleep(0.01)
    cli.join(10)
    assert answer is not None
    assert answer.status_code == 200
    assert status == [0]
    assert json.loads(out.read_text("utf-8"))["access_token"] == sandbox.token
    assert sandbox.token not in printed.getvalue()
