"""The sandbox over uvicorn on loopback answers exactly as the in-process transport does."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from omnichannel.testing import RateLimits

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402

_VOLATILE = {"date", "server", "content-length"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Serve under both event loops: the server runs in its own thread."""
    return str(request.param)


def fixed_sandbox() -> ChirpSandbox:
    """A Chirp sandbox with a still rate-limit clock, so headers compare equal."""
    sandbox = ChirpSandbox(seed=3)
    sandbox.rate_limits = RateLimits(limit=6, window=60.0, now=lambda: 1_800_000_000.0)
    return sandbox


async def script(http: httpx.AsyncClient, sandbox: ChirpSandbox) -> list[tuple[object, ...]]:
    """A conversation's worth of requests; return what each answered."""
    alice = sandbox.customer("alice")
    mention = sandbox.customer_mention("hi 👋 https://example.com #help", author=alice)
    calls = [
        ("GET", "/me", None),
        ("GET", "/mentions?limit=5", None),
        ("POST", "/posts", {"text": "Hello @alice 🎉", "reply_to": mention.id}),
        ("POST", "/posts", {"text": "x" * 281}),
        ("GET", f"/posts/{mention.id}", None),
        ("GET", "/posts/nope", None),
        ("PUT", "/me", None),
        ("GET", "/me", None),
    ]
    answers: list[tuple[object, ...]] = []
    for method, url, body in calls:
        response = await http.request(method, url, json=body)
        headers = {k: v for k, v in response.headers.items() if k not in _VOLATILE}
        answers.append((response.status_code, response.json(), headers))
    return answers


async def test_loopback_answers_like_in_process() -> None:
    """The same requests get the same statuses, bodies and headers both ways."""
    local = fixed_sandbox()
    async with local.client() as http:
        expected = await script(http, local)
    served = fixed_sandbox()
    async with served.serve() as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url, headers=dict(served.auth_headers())) as http:
            got = await script(http, served)
    assert got == expected
    assert [a[0] for a in got] == [200, 200, 201, 422, 200, 404, 405, 429]


async def test_lost_response_over_loopback_drops_the_connection() -> None:
    """Over real HTTP a lost response closes the socket after the write was applied."""
    sandbox = ChirpSandbox()
    sandbox.faults.lose_response("POST /posts", times=1)
    async with sandbox.serve() as url, httpx.AsyncClient(
        base_url=url, headers=dict(sandbox.auth_headers())
    ) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/posts", json={"text": "lost?"})
        assert (await http.get("/me")).status_code == 200
    assert [r.text for r in sandbox.sent()] == ["lost?"]


def test_serve_in_thread_from_sync_code() -> None:
    """serve_in_thread gives a URL a plain synchronous client can use."""
    sandbox = ChirpSandbox()
    with sandbox.serve_in_thread() as url:
        response = httpx.get(f"{url}/me", headers=dict(sandbox.auth_headers()))
    assert response.json()["handle"] == "shop"
