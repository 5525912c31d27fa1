"""The ``activity`` source: the X Activity API's persistent stream, caught up by ``mentions``."""

from __future__ import annotations

import anyio
import pytest

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
        assert sandbox.stream_connections > connections
        tasks.cancel_scope.cancel()
