"""Webhook refusals: any failure of verify is a 401/403, and dead letters keep no credentials."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.runtime_adapter import SIGNATURE_HEADER, FakeNetwork, RuntimeAdapter, adapter_for

from omnichannel.adapter import WebhookRequest, WebhookResponse
from omnichannel.errors import WebhookSignatureError
from omnichannel.hub import Hub
from omnichannel.store import MemoryStore

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel_chirp import ChirpAdapter  # noqa: E402
from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402

SECRET_IN_MESSAGE = "whsec-visible-in-the-message"


class CrashingVerifyAdapter(RuntimeAdapter):
    """The testnet adapter with a verify that fails in an unexpected way."""

    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Fail with an error whose message quotes a secret."""
        raise RuntimeError(f"comparing with {SECRET_IN_MESSAGE}")


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client for an ASGI app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


def chirp_hub() -> tuple[ChirpSandbox, Hub]:
    """A hub with the tutorial's Chirp adapter over its sandbox."""
    sandbox = ChirpSandbox(seed=1)
    adapter = ChirpAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    return sandbox, Hub(adapters=[adapter], store=MemoryStore())


async def test_a_non_ascii_signature_is_refused_by_the_tutorial_adapter() -> None:
    """A Chirp-Signature with non-ASCII characters is answered 403, not 500; none is 401."""
    _, hub = chirp_hub()
    body = b'{"type": "mention", "data": {}}'
    async with hub, client(hub.asgi) as c:
        odd = await c.post("/chirp", content=body,
                           headers={b"chirp-signature": "t=1,v1=\u00e9t\u00e9".encode()})
        garbled = await c.post("/chirp", content=body,
                               headers={b"chirp-signature": b"t=\xff,v1=ab"})
        missing = await c.post("/chirp", content=body)
        malformed = await c.post("/chirp", content=body, headers={"chirp-signature": "nonsense"})
        stored = await hub.store.unhandled_events()
    assert [r.status_code for r in (odd, garbled, missing, malformed)] == [403, 403, 401, 403]
    assert stored == []


async def test_the_tutorial_verify_compares_any_characters() -> None:
    """The tutorial verify raises WebhookSignatureError for any header, lone surrogates too."""
    sandbox, _ = chirp_hub()
    adapter = ChirpAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    for value in ("t=1,v1=\u00e9", "t=\u00e9,v1=00", "t=1,v1=\ud800", "\U0001f600"):
        request = WebhookRequest(method="POST", headers={"chirp-signature": value}, body=b"{}")
        with pytest.raises(WebhookSignatureError) as info:
            await adapter.verify(request)
        assert not info.value.missing
    with pytest.raises(WebhookSignatureError) as info:
        await adapter.verify(WebhookRequest(method="POST", body=b"{}"))
    assert info.value.missing


async def test_any_failure_of_verify_is_a_refusal_logged_without_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected error in verify is a 403 (401 unsigned), logged by type, nothing stored."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake, CrashingVerifyAdapter)], store=MemoryStore())
    body = fake.webhook_body([fake.message_item("hello")])
    caplog.set_level(logging.INFO)
    async with hub, client(hub.asgi) as c:
        signed = await c.post("/testnet", content=body, headers=fake.signed(body))
        unsigned = await c.post("/testnet", content=body)
        stored = await hub.store.unhandled_events()
    assert (signed.status_code, unsigned.status_code) == (403, 401)
    assert stored == []
    refusals = [r for r in caplog.records if r.name == "omnichannel.webhooks"]
    assert len(refusals) == 2
    assert "RuntimeError" in refusals[0].getMessage()
    assert SECRET_IN_MESSAGE not in caplog.text
    assert all(r.exc_info is None for r in refusals)


async def test_dead_letters_keep_only_allowed_headers() -> None:
    """A dead-lettered delivery keeps content type, user agent, delivery id and signature only."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    body = b'{"events": [{"type": "message"}]}'
    secrets = {
        "x-api-key": "key-123",
        "api-key": "key-456",
        "x-auth-token": "tok-789",
        "x-access-token": "tok-abc",
        "x-amz-security-token": "aws-def",
        "authorization": "Bearer secret-token",
        "proxy-authorization": "Basic dXNlcjpwYXNz",
        "cookie": "session=abc",
        "x-forwarded-for": "203.0.113.7",
        "x-custom-secret": "shh",
    }
    headers = fake.signed(body) | secrets | {"x-request-id": "req-1", "user-agent": "testnet/1"}
    async with hub, client(hub.asgi) as c:
        answer = await c.post("/testnet", content=body, headers=headers)
        [letter] = await hub.store.dead_letters()
    assert answer.status_code == 400
    assert letter.headers == {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "user-agent": "testnet/1",
        "x-request-id": "req-1",
        SIGNATURE_HEADER: headers[SIGNATURE_HEADER],
    }
    stored = repr(letter) + str(letter.headers)
    assert not any(value in stored for value in secrets.values())


def test_adapters_declare_their_signature_headers() -> None:
    """The contract's default declares no signature header; the tutorial's declares its own."""
    assert RuntimeAdapter.signature_headers == frozenset({SIGNATURE_HEADER})
    assert ChirpAdapter.signature_headers == frozenset({"chirp-signature"})
