"""omnichannel.otel: the metrics and spans a hub run against a sandbox records."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.runtime_adapter import FakeClock, FakeNetwork, adapter_for, eventually, received

from omnichannel import Context, Hub, MemoryStore, MessageReceived
from omnichannel.actions import Reply
from omnichannel.otel import OpenTelemetry
from omnichannel.policy import AutoSend
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


class Telemetry:
    """An SDK meter and tracer provider that keep everything in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.consumer = OpenTelemetry(
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            tracer_provider=tracer_provider,
        )

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric ``name``."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def counts(self, name: str, *keys: str) -> dict[tuple[Any, ...], int]:
        """A counter's totals, by the named attributes (a missing one is ``None``)."""
        totals: dict[tuple[Any, ...], int] = {}
        for point in self.points(name):
            key = tuple(point.attributes.get(key) for key in keys)
            totals[key] = totals.get(key, 0) + point.value
        return totals

    def finished(self, prefix: str = "") -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name.startswith(prefix)]


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


async def test_a_hub_run_records_events_handlers_deliveries_and_http_attempts(
    telemetry: Telemetry,
) -> None:
    sandbox = MastodonSandbox(seed=1)
    # The first reply's request answers 503 once; the HTTP layer tries it again.
    sandbox.faults.fail("POST /api/v1/statuses", 503, times=1, retry_after=0)
    hub = Hub(
        adapters=[MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport())],
        store=MemoryStore(), policy=AutoSend(), instrumentation=[telemetry.consumer],
    )

    @hub.on(MessageReceived)
    async def thank(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("Thanks for writing, we are on it!")

    @hub.on(MessageReceived)
    async def fragile(event: MessageReceived, ctx: Context) -> None:
        raise ValueError("a bug in a handler")

    async with hub, anyio.create_task_group() as tg:
        await tg.start(hub.run)
        sandbox.customer_dm("my parcel never arrived", author=sandbox.customer("alice"))
        await eventually(lambda: hub.statistics().total.actions_sent == 1, limit=10)
        await hub.wait_idle()
        hub.stop()

    assert telemetry.counts("omnichannel.events.received", "omnichannel.network",
                            "omnichannel.event.type") == {("mastodon", "message.received"): 1}

    durations = {
        (point.attributes["omnichannel.handler"].rsplit(".", 1)[-1],
         point.attributes["omnichannel.outcome"], point.attributes.get("error.type")): point
        for point in telemetry.points("omnichannel.handler.duration")
    }
    assert set(durations) == {("thank", "done", None), ("fragile", "failed", "ValueError")}
    assert all(point.count == 1 and point.sum >= 0 for point in durations.values())

    assert telemetry.counts("omnichannel.outbox.outcomes", "omnichannel.action.type",
                            "omnichannel.outcome") == {("reply", "sent"): 1}

    posts = {
        key[1:]: value
        for key, value in telemetry.counts(
            "omnichannel.http.attempts", "http.request.method", "http.response.status_code",
            "omnichannel.outcome", "url.template",
        ).items()
        if key[0] == "POST" and key[3] == "/api/v1/statuses"
    }
    assert posts == {(503, "retry", "/api/v1/statuses"): 1, (200, "ok", "/api/v1/statuses"): 1}
    polls = telemetry.counts("omnichannel.http.attempts", "http.request.method")
    assert polls[("GET",)] >= 1  # the listener's polls (and the adapter's check on opening)
    [attempt_time] = [
        point for point in telemetry.points("omnichannel.http.attempt.duration")
        if point.attributes.get("http.response.status_code") == 503
    ]
    assert attempt_time.count == 1

    [first] = telemetry.points("omnichannel.first_response.delay")
    assert first.count == 1
    assert first.attributes == {"omnichannel.network": "mastodon"}
    assert first.sum >= 0

    # Spans: one per handler run, one per delivery attempt, one per HTTP attempt.
    handlers = {span.name.rsplit(".", 1)[-1]: span for span in telemetry.finished("handle ")}
    assert set(handlers) == {"thank", "fragile"}
    failed = handlers["fragile"]
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert failed.events[0].attributes is not None
    assert failed.events[0].attributes["exception.type"] == "ValueError"
    assert handlers["thank"].status.status_code is StatusCode.UNSET
    for span in handlers.values():
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.start_time <= span.end_time
        assert span.attributes is not None
        assert span.attributes["omnichannel.event.type"] == "message.received"

    [delivery] = telemetry.finished("deliver ")
    assert delivery.name == "deliver reply"
    assert delivery.attributes is not None
    assert delivery.attributes["omnichannel.outcome"] == "sent"
    assert delivery.attributes["omnichannel.attempt"] == 1
    assert delivery.attributes["omnichannel.origin"].startswith("handler:")
    assert delivery.attributes["omnichannel.sent.id"]

    requests = [span for span in telemetry.finished("POST /api/v1/statuses")]
    assert [(span.kind, span.status.status_code,
             (span.attributes or {}).get("http.response.status_code"),
             (span.attributes or {}).get("http.request.resend_count"))
            for span in requests] == [
        (SpanKind.CLIENT, StatusCode.ERROR, 503, None),
        (SpanKind.CLIENT, StatusCode.UNSET, 200, 1),
    ]
    # The delivery span covers its requests: it starts with the first and ends after the last.
    assert delivery.start_time == requests[0].start_time
    assert delivery.end_time is not None
    assert requests[1].end_time is not None
    assert delivery.end_time >= requests[1].end_time


async def test_each_outbox_outcome_is_counted_by_kind(telemetry: Telemetry) -> None:
    """A lost answer: ambiguous, then reconciled; a refusal: failed; a delivery span each."""
    fake = FakeNetwork()
    clock = FakeClock()
    adapter = adapter_for(fake)
    hub = Hub(adapters=[adapter], store=MemoryStore(), clock=clock,
              instrumentation=[telemetry.consumer])
    message = received(fake, adapter, "hello", author="carol")
    fake.faults.extend(["lose", "422"])
    async with hub:
        await hub.send(Reply(network="testnet", to=message, text="First answer"), by="agent:a")
        await hub.outbox.run_once()
        await hub.send(Reply(network="testnet", to=message, text="Second answer"), by="agent:a")
        clock.advance(5)
        await hub.outbox.run_once()

    assert telemetry.counts("omnichannel.outbox.outcomes", "omnichannel.outcome",
                            "error.type") == {
        ("ambiguous", "AmbiguousDelivery"): 1, ("reconciled", None): 1,
        ("failed", "RequestRejected"): 1,
    }
    spans = {
        (span.attributes or {})["omnichannel.outcome"]: span
        for span in telemetry.finished("deliver ")
    }
    assert set(spans) == {"ambiguous", "reconciled", "failed"}
    assert spans["failed"].status.status_code is StatusCode.ERROR
    assert (spans["ambiguous"].attributes or {})["omnichannel.retry_at"]
    assert spans["reconciled"].status.status_code is StatusCode.UNSET


def test_import_omnichannel_imports_no_opentelemetry() -> None:
    """OpenTelemetry is loaded only by ``omnichannel.otel``, when it is imported."""
    code = (
        "import sys, omnichannel, omnichannel.hub, omnichannel.instrumentation\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'loaded'\n"
        "import omnichannel.otel\n"
        "assert 'opentelemetry.metrics' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_helpdesk_first_answers_and_resolutions_are_a_histogram() -> None:
    """The workflow's first answer and resolution times, by metric, priority and agent."""
    from datetime import UTC, datetime, timedelta

    from omnichannel.helpdesk import Triage, TriageRule, Workflow
    from omnichannel.model import Message, Person, Ref

    telemetry = Telemetry()
    now = [datetime(2026, 12, 4, 9, 0, tzinfo=UTC)]
    workflow = Workflow(
        MemoryStore(), clock=lambda: now[0], instrumentation=[telemetry.consumer],
        triage=Triage([TriageRule(name="upset", signs=["🙄"], priority="high")]),
    )
    thread = Ref(network="mastodon", id="t1")
    async with workflow.store:  # type: ignore[attr-defined]
        await workflow.customer_wrote(Message(
            ref=Ref(network="mastodon", id="m1"), conversation=thread,
            author=Person(ref=Ref(network="mastodon", id="u1")), text="late again 🙄",
            created_at=now[0]))
        now[0] += timedelta(minutes=12)
        await workflow.we_answered(thread, by="agent:anna")
        await workflow.we_answered(thread, by="agent:anna")  # not a first answer
        now[0] += timedelta(hours=2)
        await workflow.resolve(thread, by="agent:anna")
        await workflow.resolve(thread, by="agent:anna")  # resolved already
    points = {(p.attributes["omnichannel.helpdesk.metric"],
               p.attributes["omnichannel.helpdesk.priority"],
               p.attributes["omnichannel.helpdesk.agent"]): (p.count, p.sum)
              for p in telemetry.points("omnichannel.helpdesk.duration")}
    assert points == {
        ("first_response", "high", "agent:anna"): (1, 12 * 60.0),
        ("resolution", "high", "agent:anna"): (1, (2 * 60 + 12) * 60.0),
    }
