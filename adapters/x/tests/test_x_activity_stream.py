"""The ``activity`` source: the X Activity API's persistent stream, caught up by ``mentions``."""

from __future__ import annotations

import anyio
import httpx
import pytest
from pydantic import ValidationError

from omnichannel import Context, Hub, MemoryStore, MessageReceived
from omnichannel.adapter import Batch
from omnichannel.sources import PollSource, StreamSource
from omnichannel_x import XAdapter
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


async def test_one_connection_yields_the_events_and_mentions_move_the_cursor() -> None:
    sandbox = XSandbox()
    mention = sandbox.customer_mention("@shop where is my parcel?")
    sandbox.customer_dm("and my refund?")
    settings = {**sandbox.adapter_settings(), "activity_stream": True}
    async with XAdapter(settings, transport=sandbox.transport()) as adapter:
        sources = {source.name: source for source in adapter.sources()}
        stream = sources["activity"]
        assert isinstance(stream, StreamSource)
        assert stream.catch_up == "mentions"
        assert isinstance(sources["mentions"], PollSource)
        batches: list[Batch] = [batch async for batch in stream.stream(None)]
    assert batches[0] == Batch()
    texts = [e.message.text for b in batches for e in b.events if isinstance(e, MessageReceived)]
    assert texts == ["@shop where is my parcel?", "and my refund?"]
    assert [b.cursor for b in batches[1:]] == [mention.id, None]
    assert sandbox.stream_connections == 1


async def test_the_hub_catches_up_what_a_dropped_stream_missed() -> None:
    sandbox = XSandbox()
    settings = {**sandbox.adapter_settings(), "activity_stream": True, "read_dms": False}
    hub = Hub(adapters=[XAdapter(settings, transport=sandbox.transport())],
              store=MemoryStore(), listener_backoff=(0.01, 0.05))
    seen: list[str] = []
    first, both = anyio.Event(), anyio.Event()

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)
        (first if len(seen) == 1 else both).set()

    async with hub, anyio.create_task_group() as tasks:
        await tasks.start(hub.run)
        sandbox.customer_mention("@shop first")
        with anyio.fail_after(10):
            await first.wait()
        assert seen == ["@shop first"]
        connections = sandbox.stream_connections
        sandbox.customer_mention("@shop second")
        sandbox.miss_stream()  # sent by X while the stream was down: only polling finds it
        with anyio.fail_after(10):
            await both.wait()
        assert seen == ["@shop first", "@shop second"]
        # the catch-up after the drop may read it before the stream is back: then it comes back
        with anyio.fail_after(10):
            while True:  # the sandbox reports nothing to wait on: look again shortly
                if sandbox.stream_connections > connections:
                    break
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()


async def test_the_stream_is_opened_with_the_app_only_bearer_token_alone() -> None:
    """X's spec gives ``GET /2/activity/stream`` the app-only scheme alone: no user token."""
    sandbox = XSandbox()
    sandbox.customer_mention("@shop hi")
    settings = {**sandbox.adapter_settings(), "activity_stream": True}
    with pytest.raises(ValidationError, match="app_bearer_token"):
        XAdapter({**settings, "app_bearer_token": None})
    async with XAdapter(settings, transport=sandbox.transport()) as adapter:
        stream = {s.name: s for s in adapter.sources()}["activity"]
        assert isinstance(stream, StreamSource)
        batches = [batch async for batch in stream.stream(None)]
    assert [e.message.text for b in batches for e in b.events] == ["@shop hi"]
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as http:
        user = await http.get("/2/activity/stream",
                              headers={"Authorization": f"Bearer {sandbox.token}"})
    assert user.status_code == 403
    assert user.json()["title"] == "Unsupported Authentication"
