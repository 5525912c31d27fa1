"""Several hubs (workers) on one store: the copy-paste guardrail holds across them."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import FakeClock, FakeNetwork, adapter_for, received

from omnichannel.actions import Reply
from omnichannel.errors import DuplicateReply
from omnichannel.hub import Hub
from omnichannel.store import MemoryStore, SQLiteStore, Store

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
