"""`Hub.wait_idle` covers the outbox: it returns once the replies handlers queued went out."""

from __future__ import annotations

import anyio
from tests.runtime_adapter import FakeNetwork, adapter_for, running

from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.outbox import Outbox
from omnichannel.policy import AutoSend
from omnichannel.store import MemoryStore


def _answering_hub(fake: FakeNetwork) -> Hub:
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), policy=AutoSend())

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply(f"Thanks, {event.message.author.handle}!")

    return hub


async def _ingest_page(hub: Hub) -> None:
    batch = await hub.adapters["testnet"].poll(None)
    await hub.ingest("testnet", batch.events, cursor=batch.cursor)


async def test_wait_idle_returns_after_the_replies_are_delivered() -> None:
    """A slow network still has the replies once wait_idle returns: it waits for the outbox."""
    fake = FakeNetwork(latency=0.2, seed=0)  # each send sleeps, so handlers finish first
    hub = _answering_hub(fake)
    fake.customer_says("hello", author="alice")
    fake.customer_says("hi there", author="bob")
    async with running(hub, listen=False):
        await _ingest_page(hub)
        with anyio.fail_after(10):  # a safety limit, nothing is timed
            await hub.wait_idle()
        delivered = sorted(post["text"] for post in fake.posted)
        statuses = [item.status for item in await hub.store.list_outbox()]

    assert delivered == ["Thanks, alice!", "Thanks, bob!"]
    assert statuses == ["sent", "sent"]


async def test_wait_idle_does_not_wait_for_a_retry_scheduled_later() -> None:
    """A reply put back by a rate limit waits for its retry; wait_idle returns without it."""
    fake = FakeNetwork()
    hub = _answering_hub(fake)
    fake.faults.append("429")  # rate limited for an hour
    fake.customer_says("hello", author="alice")
    async with running(hub, listen=False):
        await _ingest_page(hub)
        with anyio.fail_after(10):
            await hub.wait_idle()
        [item] = await hub.store.list_outbox()

    assert item.status == "pending"
    assert item.attempts == 1
    assert fake.posted == []


async def test_wait_idle_returns_at_once_without_a_worker() -> None:
    """Not running, or running without delivery: nothing is waited for, nothing hangs."""
    fake = FakeNetwork()
    hub = _answering_hub(fake)
    with anyio.fail_after(10):
        await hub.wait_idle()
    fake.customer_says("hello", author="alice")
    async with running(hub, listen=False, deliver=False):
        await _ingest_page(hub)
        with anyio.fail_after(10):
            await hub.wait_idle()
        [item] = await hub.store.list_outbox()
    assert item.status == "pending"

    outbox = Outbox(MemoryStore(), {})
    with anyio.fail_after(10):
        await outbox.wait_drained()


def _blocked_hub(fake: FakeNetwork, gate: anyio.Event, *, max_pending: int = 1000) -> Hub:
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), policy=AutoSend(),
              max_pending=max_pending)

    @hub.on(MessageReceived)
    async def wait_for_the_gate(event: MessageReceived, ctx: Context) -> None:
        await gate.wait()

    return hub


async def test_several_callers_waiting_for_idle_all_return() -> None:
    """Callers waiting at the same moment all wake when the work ends, not just the last one."""
    fake = FakeNetwork()
    gate = anyio.Event()
    hub = _blocked_hub(fake, gate)
    fake.customer_says("hello", author="alice")
    returned: list[int] = []

    async def waiter(number: int) -> None:
        await hub.wait_idle()
        returned.append(number)

    async with running(hub, listen=False):
        await _ingest_page(hub)
        with anyio.fail_after(10):  # a safety limit, nothing is timed
            async with anyio.create_task_group() as tg:
                for number in range(4):
                    tg.start_soon(waiter, number)
                await anyio.wait_all_tasks_blocked()
                assert returned == []  # the handler still runs: nobody is idle yet
                gate.set()

    assert sorted(returned) == [0, 1, 2, 3]


async def test_several_callers_waiting_for_room_all_return() -> None:
    """Listeners of several networks waiting for room at once all go on when room frees up."""
    fake = FakeNetwork()
    gate = anyio.Event()
    hub = _blocked_hub(fake, gate, max_pending=1)
    fake.customer_says("hello", author="alice")
    returned: list[int] = []

    async def waiter(number: int) -> None:
        await hub.wait_for_room()
        returned.append(number)

    async with running(hub, listen=False):
        await _ingest_page(hub)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for number in range(3):
                    tg.start_soon(waiter, number)
                await anyio.wait_all_tasks_blocked()
                assert returned == []  # one event pending fills the hub
                gate.set()

    assert sorted(returned) == [0, 1, 2]
