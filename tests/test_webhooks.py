"""The webhook receiver (hub.asgi): signatures, handshakes, dead letters, limits, real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from tests.runtime_adapter import (
    SIGNATURE_HEADER,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    running,
    serve_in_thread,
)

from omnichannel.adapter import Batch, Rejected, WebhookRequest
from omnichannel.errors import PayloadError
from omnichannel.events import Event, MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.store import MemoryStore


def make_hub(fake: FakeNetwork, **options: Any) -> Hub:
    """A hub over a memory store and one testnet adapter, with a recording handler."""
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), **options)
    hub.seen = []  # type: ignore[attr-defined]

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        hub.seen.append(event.message.text)  # type: ignore[attr-defined]

    return hub


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client for an ASGI app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


async def test_signed_delivery_is_stored_before_the_200_and_then_handled() -> None:
    """A good delivery is persisted before it is acknowledged, then handled by the running hub."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    item = fake.message_item("my order is late")
    body = fake.webhook_body([item])
    async with running(hub, listen=False), client(hub.asgi) as c:
        response = await c.post("/testnet", content=body, headers=fake.signed(body))
        assert await hub.store.seen(f"testnet:message.received:{item['id']}")
        await eventually(lambda: hub.seen == ["my order is late"])  # type: ignore[attr-defined]
    assert (response.status_code, response.text) == (200, "ok")


async def test_bad_signatures_are_refused_and_nothing_is_stored() -> None:
    """A missing signature is answered 401, a wrong one (or a tampered body) 403."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    body = fake.webhook_body([fake.message_item("hello")])
    async with hub, client(hub.asgi) as c:
        missing = await c.post("/testnet", content=body)
        wrong = await c.post("/testnet", content=body, headers=fake.signed(body, secret="nope"))
        tampered = await c.post(
            "/testnet", content=body.replace(b"hello", b"HELLO"), headers=fake.signed(body)
        )
        stored = await hub.store.unhandled_events()
        letters = await hub.store.dead_letters()
    assert [r.status_code for r in (missing, wrong, tampered)] == [401, 403, 403]
    assert stored == []
    assert letters == []


async def test_signature_is_checked_before_the_body_is_parsed() -> None:
    """An unparseable body with a wrong signature is refused 403, never parsed or dead-lettered."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    garbage = b"\xff not json at all"
    async with hub, client(hub.asgi) as c:
        refused = await c.post("/testnet", content=garbage, headers=fake.signed(b"{}"))
        letters = await hub.store.dead_letters()
    assert refused.status_code == 403
    assert letters == []


async def test_handshakes_are_answered_by_the_adapter() -> None:
    """GET with the right verify token echoes the challenge; a wrong or missing token is refused."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    async with hub, client(hub.asgi) as c:
        good = await c.get("/testnet", params={"challenge": "1158201444", "token": "verify-me"})
        wrong = await c.get("/testnet", params={"challenge": "1", "token": "guess"})
        missing = await c.get("/testnet", params={"challenge": "1"})
        plain = await c.get("/testnet")
    assert (good.status_code, good.text) == (200, "1158201444")
    assert [wrong.status_code, missing.status_code, plain.status_code] == [403, 401, 400]


async def test_malformed_body_is_dead_lettered_with_its_raw_bytes() -> None:
    """A signed body the adapter cannot parse gets a short 400 and is kept byte for byte."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    bodies = [b'{"events": [{"type": "message"}]}', b"\xff not json"]
    async with hub, client(hub.asgi) as c:
        answers = []
        for body in bodies:
            headers = fake.signed(body) | {"authorization": "Bearer secret-token"}
            answers.append(await c.post("/testnet", content=body, headers=headers))
        letters = await hub.store.dead_letters()
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].text == "events.0: bad item (KeyError)"
    assert answers[1].text == "body is not JSON"
    assert sorted(letter.body for letter in letters) == sorted(bodies)
    for letter in letters:
        assert letter.network == "testnet"
        assert SIGNATURE_HEADER in letter.headers
        assert "authorization" not in letter.headers


# httpx's ASGITransport never closes the request stream the app stopped reading (its
# async generator); trio warns when that generator is collected. The 413 is what matters.
@pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx._content.AsyncIteratorByteStream.__aiter__':ResourceWarning"
)
async def test_oversize_bodies_are_refused_with_413() -> None:
    """A body over max_body_bytes is refused, whether its length is declared or streamed."""
    fake = FakeNetwork()
    hub = make_hub(fake, max_body_bytes=1000)
    big = fake.webhook_body([fake.message_item("x" * 2000)])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    async with hub, client(hub.asgi) as c:
        declared = await c.post("/testnet", content=big, headers=fake.signed(big))
        streamed = await c.post("/testnet", content=chunks(), headers=fake.signed(big))
        assert await hub.store.unhandled_events() == []
    assert [declared.status_code, streamed.status_code] == [413, 413]


async def test_routing_answers_404_405_and_503() -> None:
    """Unknown networks are 404, other methods 405, and a hub that is not entered 503."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    body = fake.webhook_body([fake.message_item("hi")])
    async with client(hub.asgi) as c:
        closed = await c.post("/testnet", content=body, headers=fake.signed(body))
        async with hub:
            unknown = await c.post("/myspace", content=body)
            nested = await c.post("/testnet/extra", content=body)
            put = await c.put("/testnet", content=body)
    assert [closed.status_code, unknown.status_code, nested.status_code] == [503, 404, 404]
    assert (put.status_code, put.headers["allow"]) == (405, "GET, POST")


async def test_the_app_works_when_mounted_under_a_prefix() -> None:
    """Mounted under /webhooks (root_path set, as Starlette's Mount does), routing still works."""
    fake = FakeNetwork()
    hub = make_hub(fake)

    async def mount(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhooks/"):
            await hub.asgi({**scope, "root_path": "/webhooks"}, receive, send)
            return
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    body = fake.webhook_body([fake.message_item("mounted")])
    async with running(hub, listen=False), client(mount) as c:
        response = await c.post("/webhooks/testnet", content=body, headers=fake.signed(body))
        other = await c.get("/")
        await eventually(lambda: hub.seen == ["mounted"])  # type: ignore[attr-defined]
    assert (response.status_code, other.status_code) == (200, 418)


@pytest.mark.asyncio_only("uvicorn serves hub.asgi from its own asyncio loop in a thread")
async def test_webhooks_over_a_real_http_server() -> None:
    """Through uvicorn on loopback: a signed delivery is acknowledged and handled, bad ones not."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    good = fake.webhook_body([fake.message_item("over real http")])
    bad = b"{not json"
    async with running(hub, listen=False):
        with serve_in_thread(hub.asgi) as url:
            async with httpx.AsyncClient(base_url=url) as c:
                handshake = await c.get(
                    "/testnet", params={"challenge": "c1", "token": "verify-me"}
                )
                ok = await c.post("/testnet", content=good, headers=fake.signed(good))
                refused = await c.post("/testnet", content=good, headers=fake.signed(b"other"))
                malformed = await c.post("/testnet", content=bad, headers=fake.signed(bad))
        await eventually(lambda: hub.seen == ["over real http"])  # type: ignore[attr-defined]
        letters = await hub.store.dead_letters()
    assert (handshake.status_code, handshake.text) == (200, "c1")
    assert [ok.status_code, refused.status_code, malformed.status_code] == [200, 403, 400]
    assert [letter.body for letter in letters] == [bad]


@pytest.mark.asyncio_only("run(serve_webhooks=...) runs uvicorn, which needs asyncio")
async def test_hub_run_can_serve_the_webhooks_itself() -> None:
    """run(serve_webhooks=...) serves hub.asgi with uvicorn and reports the bound address."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    body = fake.webhook_body([fake.message_item("served by the hub")])
    async with running(hub, listen=False, serve_webhooks=("127.0.0.1", 0)):
        assert hub.webhook_address is not None
        host, port = hub.webhook_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as c:
            response = await c.post("/testnet", content=body, headers=fake.signed(body))
        await eventually(lambda: hub.seen == ["served by the hub"])  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert hub.webhook_address is None


async def test_lifespan_runs_the_hub_for_a_standalone_server() -> None:
    """Served alone, the app's lifespan enters and runs the hub, and closes it on shutdown."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    hub = Hub(adapters=[adapter], store=MemoryStore())
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    inbound = anyio.create_memory_object_stream[dict[str, Any]](4)
    send_in, receive_in = inbound
    outbound: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        outbound.append(dict(message))

    async with send_in, receive_in, anyio.create_task_group() as tg:
        tg.start_soon(hub.asgi, {"type": "lifespan"}, receive_in.receive, send)
        await send_in.send({"type": "lifespan.startup"})
        await eventually(lambda: len(outbound) == 1)  # started: the listener knows "now"
        fake.customer_says("polled while served")
        await eventually(lambda: seen == ["polled while served"])
        assert hub.is_running
        await send_in.send({"type": "lifespan.shutdown"})
        await eventually(lambda: len(outbound) == 2)
    assert [m["type"] for m in outbound] == [
        "lifespan.startup.complete", "lifespan.shutdown.complete"
    ]
    assert (adapter.opened, adapter.closed) == (1, 1)
    assert not hub.is_open


def test_runtime_adapter_signs_with_hmac_sha256() -> None:
    """The test adapter's signature header is the hex HMAC-SHA256 of the body."""
    import hashlib
    import hmac

    fake = FakeNetwork(secret="k")
    expected = hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
    assert fake.signed(b"body")[SIGNATURE_HEADER] == expected
    assert RuntimeAdapter.capabilities.inbound >= {"webhook"}


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_webhook_app_runs_on_trio() -> None:
    """The ASGI app persists and dispatches on the trio backend too."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    body = fake.webhook_body([fake.message_item("trio webhook")])
    async with running(hub, listen=False), client(hub.asgi) as c:
        response = await c.post("/testnet", content=body, headers=fake.signed(body))
        await eventually(lambda: hub.seen == ["trio webhook"])  # type: ignore[attr-defined]
    assert response.status_code == 200


class _PerItemAdapter(RuntimeAdapter):
    """A testnet adapter whose ``parse`` reports a bad item instead of failing the body."""

    def parse(self, request: WebhookRequest) -> Batch:
        data = json.loads(request.body)
        events: list[Event] = []
        rejected: list[Rejected] = []
        for index, item in enumerate(data["events"]):
            try:
                events.append(self._event(item, f"events.{index}"))
            except PayloadError as exc:
                rejected.append(Rejected.from_error(exc, item))
        return Batch(events=tuple(events), rejected=tuple(rejected))


async def test_a_bad_item_is_dead_lettered_alone_and_the_others_are_stored() -> None:
    """parse() returning a Batch: the good items are stored (200), the bad one kept alone."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake, _PerItemAdapter)], store=MemoryStore())
    first, last = fake.message_item("first"), fake.message_item("last")
    broken = {"type": "message", "id": "m-broken"}
    body = fake.webhook_body([first, broken, last])
    async with hub, client(hub.asgi) as c:
        response = await c.post("/testnet", content=body, headers=fake.signed(body))
        stored = await hub.store.unhandled_events()
        letters = await hub.store.dead_letters()
    assert response.status_code == 200
    assert [e.message.text for e in stored if isinstance(e, MessageReceived)] == ["first", "last"]
    assert len(letters) == 1
    assert json.loads(letters[0].body) == broken
    assert letters[0].reason.startswith("events.1: ")
