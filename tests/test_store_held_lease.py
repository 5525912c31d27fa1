"""held_lease: one holder at a time around a block, renewed while it runs, cancelled once lost."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
from tests.runtime_adapter import FakeClock

from omnichannel.store import MemoryStore, held_lease

TTL = timedelta(seconds=30)


async def test_a_second_holder_waits_until_the_first_leaves() -> None:
    """Two blocks under one lease never overlap; each gives the lease back on leaving."""
    clock = FakeClock()
    order: list[str] = []
    async with MemoryStore() as store:

        async def hold(holder: str) -> None:
            async with held_lease(store, "source:testnet:mentions", holder=holder, ttl=TTL,
                                  clock=clock, retry=0.01):
                order.append(f"{holder} in")
                await anyio.sleep(0.1)
                order.append(f"{holder} out")

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold, "w1")
            await anyio.sleep(0.02)
            tg.start_soon(hold, "w2")
        left = await store.lease_holder("source:testnet:mentions", now=clock())

    assert order == ["w1 in", "w1 out", "w2 in", "w2 out"]
    assert left is None


async def test_the_lease_is_renewed_while_the_block_runs() -> None:
    """A block running past the first expiry keeps its lease: nobody else can take it."""
    clock = FakeClock()
    store = MemoryStore()
    async with store, held_lease(store, "x", holder="w1", ttl=TTL, clock=clock,
                                 renew_every=0.01):
        clock.advance(20)
        await anyio.sleep(0.05)  # renewed at the new time
        clock.advance(20)  # past the first expiry
        taken = await store.acquire_lease("x", holder="w2", ttl=TTL, now=clock())
        holder = await store.lease_holder("x", now=clock())
    assert (taken, holder) == (False, "w1")


async def test_a_lost_lease_cancels_the_block() -> None:
    """Once the lease ran out (the worker stalled), the block stops: another may hold it."""
    clock = FakeClock()
    reached = []
    async with MemoryStore() as store:
        with anyio.fail_after(5):
            async with held_lease(store, "x", holder="w1", ttl=TTL, clock=clock,
                                  renew_every=0.01):
                clock.advance(31)  # the lease ran out before the next renewal
                await anyio.sleep(10)
                reached.append("end of block")
        assert await store.acquire_lease("x", holder="w2", ttl=TTL, now=clock())
    assert reached == []


async def test_an_error_in_the_block_comes_out_as_it_is() -> None:
    """The block's own exception is raised unchanged, and the lease is given back."""
    clock = FakeClock()
    async with MemoryStore() as store:
        with pytest.raises(KeyError, match="order"):
            async with held_lease(store, "x", holder="w1", ttl=TTL, clock=clock):
                raise KeyError("order")
        assert await store.lease_holder("x", now=clock()) is None
