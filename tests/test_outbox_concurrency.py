"""Concurrent delivery: conversations overlap, one conversation never does, limits hold.

A gate in front of the fake network holds every send until ``wave`` sends are
in flight at once, and counts what is in flight per conversation. Nothing is
timed: a delivery that never reaches ``wave`` sends in flight trips the safety
limit, and a second send of one conversation while the first is out shows in
the counts (the gate lets every runnable task reach it before opening).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from pydantic import SecretStr
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    RuntimeSettings,
    eventually,
    received,
)

from omnichannel.actions import Reply
from omnichannel.errors import ConfigurationError, RateLimited
from omnichannel.http import open_client, parse_mastodon_headers
from omnichannel.outbox import DEFAULT_MAX_IN_FLIGHT, Outbox
from omnichannel.store import MemoryStore, OutboxItem

SAFETY = 10.0  # seconds before a gate that never opens fails the test


class Gate(httpx.AsyncBaseTransport):
    """Holds each ``POST /messages`` until ``wave`` of them are in flight together."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, wave: int) -> None:
        self._inner = inner
        self.wave = wave
        self.in_flight: Counter[str] = Counter()
        self.most_per_conversation: Counter[str] = Counter()
        self.most_in_flight = 0
        self.waves = 0
        self._open = anyio.Event()
        self._arrived = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/messages":
            return await self._inner.handle_async_request(request)
        conversation = str(json.loads(request.content)["conversation"])
        self.in_flight[conversation] += 1
        self.most_per_conversation[conversation] = max(
            self.most_per_conversation[conversation], self.in_flight[conversation]
        )
        self.most_in_flight = max(self.most_in_flight, self.in_flight.total())
        try:
            gate = self._open
            self._arrived += 1
            if self._arrived == self.wave:
                # Let every task that can run reach the gate before it opens, so
                # a send that should have waited is seen in flight.
                await anyio.wait_all_tasks_blocked()
                self.most_in_flight = max(self.most_in_flight, self.in_flight.total())
                self.waves += 1
                self._arrived = 0
                self._open = anyio.Event()
                gate.set()
            with anyio.fail_after(SAFETY):
                await gate.wait()
            return await self._inner.handle_async_request(request)
        finally:
            self.in_flight[conversation] -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def gated(
    wave: int, **outbox_options: object
) -> AsyncIterator[tuple[FakeNetwork, RuntimeAdapter, Gate, Outbox]]:
    fake = FakeNetwork()
    gate = Gate(fake.transport(), wave=wave)
    adapter = RuntimeAdapter(
        RuntimeSettings(webhook_secret=SecretStr(fake.secret),
                        verify_token=SecretStr(fake.verify_token)),
        transport=gate,
    )
    store = MemoryStore()
    async with adapter, store:
        outbox = Outbox(store, {"testnet": adapter}, clock=FakeClock(),
                        **outbox_options)  # type: ignore[arg-type]
        yield fake, adapter, gate, outbox


async def queue_replies(
    fake: FakeNetwork, adapter: RuntimeAdapter, outbox: Outbox, *,
    conversations: int, each: int,
) -> dict[str, list[str]]:
    """Queue ``each`` replies in each of ``conversations`` threads, interleaved.

    The clock moves a second per reply: queue order is creation time.
    """
    clock = outbox.clock
    assert isinstance(clock, FakeClock)
    customers = [received(fake, adapter, f"help {c}") for c in range(conversations)]
    expected: dict[str, list[str]] = {m.conversation.id: [] for m in customers}
    for n in range(each):
        for message in customers:
            text = f"answer {n} in {message.conversation.id}"
            await outbox.submit(Reply(network="testnet", to=message, text=text), origin="test")
            clock.advance(1)
            expected[message.conversation.id].append(text)
    return expected


def delivered(fake: FakeNetwork) -> dict[str, list[str]]:
    """The texts the fake network received, per conversation, in arrival order."""
    found: dict[str, list[str]] = {}
    for record in fake.posted:
        found.setdefault(record["conversation"], []).append(record["text"])
    return found


async def test_conversations_overlap_and_one_conversation_never_does() -> None:
    """Three threads go out three at a time; each thread's replies one by one, in order."""
    async with gated(wave=3, max_in_flight=8) as (fake, adapter, gate, outbox):
        expected = await queue_replies(fake, adapter, outbox, conversations=3, each=3)
        with anyio.fail_after(SAFETY):
            claimed = await outbox.run_once()
        items = await outbox.store.list_outbox()

    assert claimed == 9
    assert gate.waves == 3  # every wave had three sends out at once
    assert gate.most_in_flight == 3
    assert set(gate.most_per_conversation.values()) == {1}
    assert delivered(fake) == expected
    assert set(fake.created.values()) == {1}
    assert {item.status for item in items} == {"sent"}


async def test_the_worker_keeps_to_the_network_limit() -> None:
    """Four threads and a limit of two: two sends out at a time, never more."""
    async with gated(wave=2, max_in_flight=2, batch_size=3) as (fake, adapter, gate, outbox):
        expected = await queue_replies(fake, adapter, outbox, conversations=4, each=2)
        async with anyio.create_task_group() as tg:
            await tg.start(outbox.run)

            async def all_sent() -> bool:
                items = await outbox.store.list_outbox()
                return [item.status for item in items] == ["sent"] * 8

            await eventually(all_sent, limit=SAFETY)
            tg.cancel_scope.cancel()

    assert gate.waves == 4
    assert gate.most_in_flight == 2
    assert set(gate.most_per_conversation.values()) == {1}
    assert delivered(fake) == expected
    assert set(fake.created.values()) == {1}


async def test_a_limit_of_one_sends_one_action_at_a_time() -> None:
    """``max_in_flight=1`` delivers in queue order, one send at a time."""
    async with gated(wave=1, max_in_flight={"testnet": 1}) as (fake, adapter, gate, outbox):
        expected = await queue_replies(fake, adapter, outbox, conversations=3, each=2)
        with anyio.fail_after(SAFETY):
            await outbox.run_once()

    assert gate.most_in_flight == 1
    assert [record["text"] for record in fake.posted] == [
        f"answer {n} in {conversation}" for n in range(2) for conversation in expected
    ]


async def test_the_limit_is_checked_and_defaults_per_network() -> None:
    """A limit below one is refused; a mapping falls back to the default for other networks."""
    store = MemoryStore()
    adapter = RuntimeAdapter()
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        Outbox(store, {"testnet": adapter}, max_in_flight=0)
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        Outbox(store, {"testnet": adapter}, max_in_flight={"testnet": 0})
    assert Outbox(store, {"testnet": adapter}, max_in_flight={}).max_in_flight == {
        "testnet": DEFAULT_MAX_IN_FLIGHT
    }
    assert Outbox(store, {"testnet": adapter}, max_in_flight=4).max_in_flight == {"testnet": 4}


async def test_a_failing_store_in_one_lane_does_not_hide_the_error() -> None:
    """``run_once`` raises what a lane's delivery raised, like a sequential run did."""
    async with gated(wave=1, max_in_flight=4) as (fake, adapter, _gate, outbox):
        await queue_replies(fake, adapter, outbox, conversations=1, each=1)

        async def broken(key: str, **changes: object) -> OutboxItem:
            raise OSError("disk full")

        outbox.store.update_outbox = broken  # type: ignore[method-assign]
        with pytest.raises(OSError, match="disk full"):
            await outbox.run_once()


# the HTTP client: requests in flight count against the known budget ----------


async def test_concurrent_requests_never_start_past_the_known_budget() -> None:
    """With 3 requests left, 8 concurrent ones send 3 and the rest wait: no 429."""
    left = 4
    answered_429 = 0
    in_flight = 0
    most_in_flight = 0
    release = anyio.Event()
    reset = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    async def network(request: httpx.Request) -> httpx.Response:
        nonlocal left, answered_429, in_flight, most_in_flight
        if left == 0:
            answered_429 += 1
            return httpx.Response(429, headers={"x-ratelimit-remaining": "0",
                                                "x-ratelimit-reset": reset})
        left -= 1
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if request.url.path != "/first":
            await release.wait()
        in_flight -= 1
        return httpx.Response(200, json={}, headers={
            "x-ratelimit-limit": "300", "x-ratelimit-remaining": str(left),
            "x-ratelimit-reset": reset,
        })

    outcomes: list[str] = []
    async with open_client(
        network="mastodon", base_url="https://masto.test",
        transport=httpx.MockTransport(network), rate_limit_parser=parse_mastodon_headers,
        default_bucket="account",
    ) as client:
        await client.request("GET", "/first")  # learns: 3 left

        async def one() -> None:
            try:
                await client.request("GET", "/next")
            except RateLimited:
                outcomes.append("waits for the reset")
            else:
                outcomes.append("sent")

        with anyio.fail_after(SAFETY):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)
                await anyio.wait_all_tasks_blocked()
                held = in_flight
                release.set()

    assert held == 3
    assert most_in_flight == 3
    assert answered_429 == 0
    assert sorted(outcomes) == ["sent"] * 3 + ["waits for the reset"] * 5


class HoldLookups(httpx.AsyncBaseTransport):
    """Holds every ``GET /messages`` (the ``find_sent`` lookup) until ``release`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.lookups = 0
        self.release = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/messages":
            self.lookups += 1
            with anyio.fail_after(SAFETY):
                await self.release.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_an_item_being_reconciled_is_not_claimed_and_delivered_again() -> None:
    """While the worker looks an ambiguous item up, later claims do not deliver it twice."""
    fake = FakeNetwork()
    hold = HoldLookups(fake.transport())
    adapter = RuntimeAdapter(
        RuntimeSettings(webhook_secret=SecretStr(fake.secret),
                        verify_token=SecretStr(fake.verify_token)),
        transport=hold,
    )
    clock = FakeClock()
    async with adapter, MemoryStore() as store:
        outbox = Outbox(store, {"testnet": adapter}, clock=clock,
                        ambiguous_delay=timedelta(seconds=1))
        fake.faults.append("lose")
        first = await outbox.submit(
            Reply(network="testnet", to=received(fake, adapter), text="first"), origin="test"
        )
        await outbox.run_once()  # the response is lost: ambiguous
        clock.advance(2)
        async with anyio.create_task_group() as tg:
            await tg.start(outbox.run)
            await eventually(lambda: hold.lookups == 1, limit=SAFETY)
            for n in range(3):  # each submit makes the worker claim again
                clock.advance(120)
                await outbox.submit(
                    Reply(network="testnet", to=received(fake, adapter), text=f"more {n}"),
                    origin="test",
                )
                await anyio.wait_all_tasks_blocked()
            lookups_while_held = hold.lookups
            hold.release.set()

            async def all_sent() -> bool:
                return [i.status for i in await store.list_outbox()] == ["sent"] * 4

            await eventually(all_sent, limit=SAFETY)
            tg.cancel_scope.cancel()
        audited = [e for e in await store.audit_log() if e.idempotency_key == first.key]

    assert lookups_while_held == 1
    assert hold.lookups == 1
    assert len(audited) == 1
    assert fake.created[first.key] == 1
    assert set(fake.created.values()) == {1}
