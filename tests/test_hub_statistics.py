"""``Hub.statistics()``: counts kept by the real pipeline, per network and in total."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from pydantic import ValidationError
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
    running,
)

import omnichannel
from omnichannel.actions import Reply
from omnichannel.adapter import WebhookRequest
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub, HubStatistics, NetworkStatistics
from omnichannel.policy import AutoSend
from omnichannel.store import MemoryStore


class OtherAdapter(RuntimeAdapter):
    """The test adapter under a second network id."""

    network: ClassVar[str] = "othernet"


def _counts(stats: NetworkStatistics) -> dict[str, int]:
    """The non-zero figures of one network."""
    return {name: value for name, value in stats.model_dump().items() if value}


async def test_figures_follow_what_the_pipeline_did_on_each_network() -> None:
    """Recorded, handled, failed, dead-lettered, queued, sent, drafted: counted per network."""
    one, two = FakeNetwork(), FakeNetwork()
    hub = Hub(
        adapters=[adapter_for(one), adapter_for(two, OtherAdapter)], store=MemoryStore(),
        policy=AutoSend(),
    )

    @hub.on(MessageReceived)
    async def triage(event: MessageReceived, ctx: Context) -> None:
        text = event.message.text
        if "boom" in text:
            raise RuntimeError("the handler broke")
        if "refund" in text:
            await ctx.draft("A teammate will look at your refund.")
        else:
            await ctx.reply(f"Thanks for writing on {ctx.network}.")

    before = hub.statistics()
    assert set(before.networks) == {"testnet", "othernet"}
    assert _counts(before.total) == {}

    async with running(hub) as hub:
        one.customer_says("hello")
        one.customer_says("I want a refund")
        one.customer_says("boom")
        broken = one.customer_says("no author")
        del broken["author"]
        two.customer_says("hi from the other network")
        await eventually(lambda: hub.statistics().total.actions_sent == 2
                         and hub.statistics().total.events_handled == 4)
        await hub.wait_idle()
        stats = hub.statistics()
        failures = await hub.store.failures()
        letters = await hub.store.dead_letters()

    assert _counts(stats.networks["testnet"]) == {
        "events_recorded": 3, "events_handled": 3, "handler_failures": 1, "dead_letters": 1,
        "actions_queued": 1, "actions_sent": 1, "drafts_held": 1,
    }
    assert _counts(stats.networks["othernet"]) == {
        "events_recorded": 1, "events_handled": 1, "actions_queued": 1, "actions_sent": 1,
    }
    assert _counts(stats.total) == {
        "events_recorded": 4, "events_handled": 4, "handler_failures": 1, "dead_letters": 1,
        "actions_queued": 2, "actions_sent": 2, "drafts_held": 1,
    }
    assert stats.events_pending == 0
    assert len(failures) == 1
    assert len(letters) == 1


async def test_a_duplicate_delivery_counts_as_dropped_not_recorded() -> None:
    """The same webhook delivered twice and polled once is recorded once, dropped twice."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    handled: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        handled.append(event.id)

    item = fake.message_item("is my order lost?")
    body = fake.webhook_body([item])
    async with running(hub, listen=False):
        transport = httpx.ASGITransport(app=hub.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            first = await client.post("/testnet", content=body, headers=fake.signed(body))
            assert first.status_code == 200
            after_first = hub.statistics().networks["testnet"]
            again = await client.post("/testnet", content=body, headers=fake.signed(body))
            assert again.status_code == 200
        fake.publish(item)
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()
        stats = hub.statistics().networks["testnet"]

    assert (after_first.events_recorded, after_first.duplicates_dropped) == (1, 0)
    assert (stats.events_recorded, stats.duplicates_dropped) == (1, 2)
    assert stats.events_handled == 1
    assert len(handled) == 1


async def test_a_webhook_body_that_cannot_be_parsed_counts_as_a_dead_letter() -> None:
    """A signed webhook body the adapter refuses is kept as a dead letter and counted."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    body = b'{"not": "events"}'
    async with running(hub, listen=False):
        transport = httpx.ASGITransport(app=hub.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            response = await client.post("/testnet", content=body, headers=fake.signed(body))
        stats = hub.statistics().networks["testnet"]
        letters = await hub.store.dead_letters()

    assert response.status_code == 400
    assert [letter.body for letter in letters] == [body]
    assert (stats.dead_letters, stats.events_recorded) == (1, 0)


async def test_a_transient_failure_counts_as_a_retry_then_the_send() -> None:
    """A 503 that outlasts the client's retries is one retry; the next attempt is one send."""
    fake = FakeNetwork()
    clock = FakeClock()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), policy=AutoSend(), clock=clock)

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("We are on it.")

    async with running(hub, listen=False, deliver=False):
        adapter = hub.adapters["testnet"]
        item = fake.message_item("help")
        events = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
        await hub.ingest("testnet", events)
        await hub.wait_idle()
        queued = hub.statistics().networks["testnet"]

        fake.faults.extend(["503", "503"])  # both tries of the client's first attempt
        assert await hub.outbox.run_once() == 1
        failed_once = hub.statistics().networks["testnet"]

        clock.advance(3600)
        assert await hub.outbox.run_once() == 1
        delivered = hub.statistics().networks["testnet"]

    assert (queued.actions_queued, queued.actions_retried, queued.actions_sent) == (1, 0, 0)
    assert (failed_once.actions_retried, failed_once.actions_sent) == (1, 0)
    assert (delivered.actions_retried, delivered.actions_sent) == (1, 1)
    assert delivered.actions_failed == 0
    assert len(fake.posted) == 1


async def test_a_refusal_counts_as_failed_and_requeuing_a_key_counts_once() -> None:
    """A 422 fails the action (counted once); sending the same action again queues nothing."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), clock=FakeClock())
    async with hub:
        message = received(fake, hub.adapters["testnet"])  # type: ignore[arg-type]
        action = Reply(network="testnet", to=message, text="Sorry about that.")
        first = await hub.send(action, by="agent:anna")
        again = await hub.send(action, by="agent:anna")
        fake.faults.append("422")
        assert await hub.outbox.run_once() == 1
        stats = hub.statistics().networks["testnet"]
        stored = await hub.store.get_outbox(first.key)

    assert again == first
    assert stored is not None
    assert stored.status == "failed"
    assert _counts(stats) == {"actions_queued": 1, "actions_failed": 1}


async def test_statistics_are_a_frozen_snapshot() -> None:
    """The returned model cannot be changed, and later work does not change an earlier snapshot."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    snapshot = hub.statistics()
    async with hub:
        item = fake.message_item("hello")
        events = hub.adapters["testnet"].parse(
            WebhookRequest(method="POST", body=fake.webhook_body([item]))
        )
        await hub.ingest("testnet", events)

    with pytest.raises(ValidationError):
        snapshot.total.events_recorded = 5  # type: ignore[misc]
    assert snapshot.networks["testnet"].events_recorded == 0
    assert hub.statistics().networks["testnet"].events_recorded == 1
    assert isinstance(snapshot, HubStatistics)


def test_statistics_models_are_exported_with_the_hub() -> None:
    """HubStatistics and NetworkStatistics are importable from omnichannel, like Hub."""
    assert omnichannel.HubStatistics is HubStatistics
    assert omnichannel.NetworkStatistics is NetworkStatistics
    assert {"Hub", "HubStatistics", "NetworkStatistics"} <= set(omnichannel.__all__)
