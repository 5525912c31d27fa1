"""Instrumentation hooks: what the pipeline reports, and that a broken consumer stops nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, eventually, received, running

from omnichannel.actions import Reply, Sent
from omnichannel.events import Event, MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.instrumentation import DeliveryOutcome, Instrumentation, _reporting
from omnichannel.model import Ref
from omnichannel.policy import hold_when
from omnichannel.store import Draft, MemoryStore, OutboxItem


class Recorder(Instrumentation):
    """Remembers every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.durations: list[float] = []

    def event_received(self, event: Event) -> None:
        self.calls.append(("event_received", event.type))

    def handler_finished(
        self, event: Event, handler: str, *, duration: float, error: BaseException | None
    ) -> None:
        self.durations.append(duration)
        outcome = "done" if error is None else f"failed: {error}"
        self.calls.append(("handler_finished", handler.rsplit(".", 1)[-1], outcome))

    def draft_held(self, draft: Draft) -> None:
        self.calls.append(("draft_held", draft.action.text))

    def delivery_outcome(
        self,
        item: OutboxItem,
        outcome: DeliveryOutcome,
        *,
        sent: Sent | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        self.calls.append(("delivery_outcome", outcome, str(sent is not None)))


class Broken(Instrumentation):
    def event_received(self, event: Event) -> None:
        raise RuntimeError("a metrics backend is down")

    def delivery_outcome(self, item: OutboxItem, outcome: DeliveryOutcome, **_: object) -> None:
        raise RuntimeError("a metrics backend is down")


async def test_every_hook_reports_what_happened_and_a_broken_consumer_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake = FakeNetwork()
    recorder = Recorder()
    hub = Hub(
        adapters=[adapter_for(fake)], store=MemoryStore(),
        policy=hold_when(lambda event, action: "refund" in action.text),
        instrumentation=[Broken(), recorder],
    )

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        if "refund" in event.message.text:
            await ctx.reply("About your refund: a teammate will write.")
        else:
            await ctx.reply("Thanks!")

    @hub.on(MessageReceived)
    async def fragile(event: MessageReceived, ctx: Context) -> None:
        raise ValueError("a bug")

    async with running(hub):
        fake.customer_says("hello", visibility="private")
        await eventually(lambda: len(fake.posted) == 1)
        await hub.wait_idle()
        fake.customer_says("a refund please", visibility="private")
        await eventually(lambda: ("draft_held", "About your refund: a teammate will write.")
                         in recorder.calls)
        await hub.wait_idle()

    # The outbox delivers concurrently with the handlers: its reports are checked apart.
    deliveries = [call for call in recorder.calls if call[0] == "delivery_outcome"]
    assert deliveries == [("delivery_outcome", "sent", "True")]
    assert [call for call in recorder.calls if call[0] != "delivery_outcome"] == [
        ("event_received", "message.received"),
        ("handler_finished", "answer", "done"),
        ("handler_finished", "fragile", "failed: a bug"),
        ("event_received", "message.received"),
        ("draft_held", "About your refund: a teammate will write."),
        ("handler_finished", "answer", "done"),
        ("handler_finished", "fragile", "failed: a bug"),
    ]
    assert all(duration >= 0 for duration in recorder.durations)
    # The log lines are a consumer too, and the broken consumer is reported, not fatal.
    kinds = [getattr(record, "omnichannel_event", None) for record in caplog.records]
    assert kinds.count("message.received") == 2
    assert kinds.count("reply.sent") == 1
    assert "the event_received hook of" in caplog.text


class FirstResponses(Instrumentation):
    def __init__(self) -> None:
        self.reported: list[tuple[str, str]] = []

    def first_response(self, network: str, conversation: Ref, *, delay: timedelta) -> None:
        self.reported.append((network, str(conversation)))


async def test_only_the_first_reply_of_a_conversation_is_reported_as_its_first_response() -> None:
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    first = FirstResponses()
    assert first.wants("first_response")
    assert not Instrumentation().wants("first_response")
    hub = Hub(adapters=[adapter], store=MemoryStore(), instrumentation=[first])
    message = received(fake, adapter, "hello", visibility="private")
    async with running(hub, listen=False):
        await hub.store.save_messages([message])
        for text in ("Hello!", "Anything else?"):
            await hub.queue_as_agent(Reply(network="testnet", to=message, text=text), by="a")
            await hub.wait_idle()
        await eventually(lambda: len(fake.posted) == 2)
        other = received(fake, adapter, "hi there")  # a public thread: another conversation
        await hub.store.save_messages([other])
        await hub.queue_as_agent(Reply(network="testnet", to=other, text="Hi!"), by="a")
        await eventually(lambda: len(fake.posted) == 3)
        await hub.wait_idle()

    assert first.reported == [
        ("testnet", str(message.conversation)), ("testnet", str(other.conversation))
    ]


class HttpAttempts(Instrumentation):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, int | None, str]] = []

    def http_attempt(
        self,
        network: str,
        *,
        method: str,
        endpoint: str,
        status: int | None,
        attempt: int,
        elapsed: float,
        outcome: str,
        error: str | None = None,
    ) -> None:
        self.attempts.append((network, method, status, outcome))


async def test_the_adapters_http_clients_report_each_attempt_to_the_hub() -> None:
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    http = HttpAttempts()
    hub = Hub(adapters=[adapter], store=MemoryStore(), instrumentation=[http])
    message = received(fake, adapter, "hello", visibility="private")
    async with running(hub, listen=False):
        await hub.queue_as_agent(Reply(network="testnet", to=message, text="Hi!"), by="a")
        await eventually(lambda: len(fake.posted) == 1)
        await hub.wait_idle()
    assert http.attempts == [("testnet", "GET", 200, "ok"), ("testnet", "POST", 201, "ok")]
    assert _reporting() is None  # only clients opened by the hub report to it
