"""Several hubs (workers) on one store: the guardrail and conversation order hold across them."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import FakeClock, FakeNetwork, adapter_for, eventually, received

from omnichannel.actions import Reply
from omnichannel.errors import DuplicateReply
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.store import MemoryStore, SQLiteStore, Store
from omnichannel.testing.store_conformance import NET, T0, message
from omnichannel.testing.store_conformance import received as received_event

_SECOND = timedelta(seconds=1)

TEXT = "Thanks for reaching out, we will look into it and come back to you."


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_two_workers_never_both_send_one_text_to_two_customers(
    kind: str, tmp_path: Path
) -> None:
    """Two hubs queuing one text to two customers at once: one is queued, one refused."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    clock = FakeClock()
    store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "shared.db")
    one = Hub(adapters=[adapter], store=store, clock=clock, worker="w1")
    two = Hub(adapters=[adapter], store=store, clock=clock, worker="w2")
    alice = received(fake, adapter, "my order", author="alice")
    bob = received(fake, adapter, "my parcel", author="bob")
    outcomes: list[str] = []

    async def answer(hub: Hub, to_: str, reply: Reply) -> None:
        try:
            await hub.queue_as_agent(reply, by="agent:anna")
            outcomes.append(f"{to_} queued")
        except DuplicateReply:
            outcomes.append(f"{to_} refused")

    async with store:
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, one, "alice", Reply(network="testnet", to=alice, text=TEXT))
            tg.start_soon(answer, two, "bob", Reply(network="testnet", to=bob, text=TEXT))
        queued = await store.list_outbox()
        guard_left = await store.lease_holder(f"guardrail:testnet:{queued[0].text_digest}",
                                              now=clock())

    assert sorted(outcomes) in (["alice queued", "bob refused"], ["alice refused", "bob queued"])
    assert len(queued) == 1
    assert guard_left is None  # released once queued


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_two_workers_never_handle_one_conversation_at_once(
    kind: str, tmp_path: Path
) -> None:
    """Events of one conversation ingested by two hubs are handled one at a time, others not."""
    store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "shared.db")
    one = Hub(store=store, worker="w1")
    two = Hub(store=store, worker="w2")
    spans: dict[str, tuple[float, float]] = {}
    for hub in (one, two):

        @hub.on(MessageReceived)
        async def slow(event: MessageReceived, ctx: Context) -> None:
            started = time.monotonic()
            await anyio.sleep(0.3)
            spans[event.message.text] = (started, time.monotonic())

    first = received_event(message("118000", "first"))
    second = received_event(message("118001", "second", thread="118000", at=T0 + _SECOND))
    elsewhere = received_event(message("118100", "elsewhere"))

    async def all_handled() -> bool:
        return not await store.unhandled_events()

    async with one, two, anyio.create_task_group() as tg:
        await tg.start(partial(one.run, listen=False, deliver=False))
        await tg.start(partial(two.run, listen=False, deliver=False))
        await one.ingest(NET, [first])
        await two.ingest(NET, [second, elsewhere])
        await eventually(all_handled)
        tg.cancel_scope.cancel()

    earlier, later = sorted([spans["first"], spans["second"]])
    assert earlier[1] <= later[0]  # one after the other, never overlapping
    assert spans["elsewhere"][0] < later[0]  # another conversation did not wait for this one
