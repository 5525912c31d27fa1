"""Fixtures for the Meta adapters' tests: recorded payloads and a scripted Graph API."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors"

APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"
PAGE_ID = "1234567890321"
IG_ID = "17841452691600098"


def vector(name: str) -> bytes:
    """The raw bytes of a recorded payload (``"facebook/restfb__webhooks__feed-...json"``)."""
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(f"recorded vector not found: {path}")
    return path.read_bytes()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """The headers of a delivery of ``body`` signed as Meta signs it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": f"sha256={digest}"}


def fb_settings(**extra: Any) -> dict[str, Any]:
    """Facebook settings for tests."""
    return {"page_id": PAGE_ID, "access_token": "EAA-test-token", "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN, **extra}


def ig_settings(**extra: Any) -> dict[str, Any]:
    """Instagram settings for tests."""
    return {"account_id": IG_ID, "access_token": "EAA-test-token", "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN, **extra}


Handler = Callable[[httpx.Request], httpx.Response]


class Graph:
    """A scripted Graph API: answers by ``"METHOD /path"`` and records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler | Any] = {}
        self.requests: list[httpx.Request] = []

    def on(self, route: str, answer: Handler | Any) -> None:
        """Answer ``route`` (``"GET /v25.0/123"``) with JSON, or a function of the request."""
        self.routes[route] = answer

    def transport(self) -> httpx.MockTransport:
        """The transport to give the adapter."""
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        answer = self.routes.get(route)
        if answer is None:
            return httpx.Response(404, json={"error": {"message": f"no route {route}",
                                                       "code": 803}})
        if callable(answer):
            result: httpx.Response = answer(request)
            return result
        return httpx.Response(200, json=answer)

    def sent(self, route: str) -> list[httpx.Request]:
        """The requests made to ``route``."""
        return [r for r in self.requests if f"{r.method} {r.url.path}" == route]

    @staticmethod
    def body(request: httpx.Request) -> Any:
        """A request's JSON body."""
        return json.loads(request.content)


@pytest.fixture
def graph() -> Graph:
    """A scripted Graph API answering the profile lookups of both adapters."""
    g = Graph()
    g.on(f"GET /v25.0/{PAGE_ID}", {"id": PAGE_ID, "name": "Test Page"})
    g.on(f"GET /v25.0/{IG_ID}", {"id": IG_ID, "username": "testshop", "name": "Test Shop"})
    return g


class Kit:
    """The helpers of these tests, as one fixture: vectors, signing, settings."""

    page_id = PAGE_ID
    ig_id = IG_ID
    app_secret = APP_SECRET
    verify_token = VERIFY_TOKEN
    vector = staticmethod(vector)
    signed = staticmethod(signed)
    fb_settings = staticmethod(fb_settings)
    ig_settings = staticmethod(ig_settings)


@pytest.fixture
def kit() -> Kit:
    """Recorded vectors, signing and settings for the Meta tests."""
    return Kit()


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on ``$OMNICHANNEL_TEST_BACKEND`` (asyncio unless CI asks for trio)."""
    backend = os.environ.get("OMNICHANNEL_TEST_BACKEND", "asyncio")
    if backend not in ("asyncio", "trio"):
        raise pytest.UsageError(
            f"OMNICHANNEL_TEST_BACKEND must be asyncio or trio, not {backend!r}"
        )
    return backend
