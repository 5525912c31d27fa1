"""OpenTelemetry metrics and traces from the pipeline's instrumentation hooks.

Install the extra (``pip install -e ".[otel]"``, which brings
``opentelemetry-api`` only) and give the hub an
[`OpenTelemetry`][omnichannel.otel.OpenTelemetry] consumer:

```python
hub = Hub(store=MemoryStore(), instrumentation=[OpenTelemetry()])
```

It records through the API's global meter and tracer providers, or through
the ones you pass; configuring the SDK and an exporter is your application's
part. ``import omnichannel`` never imports this module nor OpenTelemetry.

Metrics, each with the attribute ``omnichannel.network``:

- ``omnichannel.events.received`` (counter): new events, by
  ``omnichannel.event.type``.
- ``omnichannel.handler.duration`` (histogram, s): each handler run, by
  ``omnichannel.handler``, ``omnichannel.event.type``, ``omnichannel.outcome``
  (``done``, ``failed``) and ``error.type``.
- ``omnichannel.drafts.held`` (counter): by ``omnichannel.action.type``.
- ``omnichannel.outbox.outcomes`` (counter): delivery attempts, by
  ``omnichannel.action.type`` and ``omnichannel.outcome`` (``sent``,
  ``reconciled``, ``retried``, ``ambiguous``, ``failed``).
- ``omnichannel.http.attempts`` (counter) and
  ``omnichannel.http.attempt.duration`` (histogram, s): the adapters' HTTP
  attempts, by ``http.request.method``, ``url.template`` (a path template,
  never a full URL), ``http.response.status_code``, ``omnichannel.outcome``
  (``ok``, ``retry``, ``rate_limited``...) and ``error.type``.
- ``omnichannel.first_response.delay`` (histogram, s): from a conversation's
  first customer message to our first reply delivered in it.

Spans: one per handler run (`handle <handler>`), one per delivery attempt of
the outbox (`deliver <action type>`) and one per HTTP attempt of an adapter
(`<METHOD> <endpoint>`, kind client). The hooks report when the work is done,
so each span is written at its end with the start it had: a handler's from its
measured duration, an HTTP attempt's from its elapsed time, a delivery's from
the start of its first HTTP attempt (a delivery that made no request, such as
one paused by a rate limit, is a span of no length).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Literal

import anyio

try:
    from opentelemetry import metrics, trace
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        'omnichannel.otel needs the OpenTelemetry API: pip install -e ".[otel]"'
    ) from exc

from ._version import __version__
from .actions import Sent
from .events import Event
from .instrumentation import DeliveryOutcome, Instrumentation
from .model import Ref
from .store import Draft, OutboxItem

__all__ = ["OpenTelemetry"]

_SCOPE = "omnichannel"
# Attribute names: OpenTelemetry's own where one exists, ours under ``omnichannel.``.
_NETWORK = "omnichannel.network"
_EVENT_TYPE = "omnichannel.event.type"
_EVENT_ID = "omnichannel.event.id"
_HANDLER = "omnichannel.handler"
_OUTCOME = "omnichannel.outcome"
_ACTION_TYPE = "omnichannel.action.type"
_ACTION_KEY = "omnichannel.action.key"
_ATTEMPT = "omnichannel.attempt"
_ORIGIN = "omnichannel.origin"
_SENT_ID = "omnichannel.sent.id"
_RETRY_AT = "omnichannel.retry_at"
_ERROR_TYPE = "error.type"
_HTTP_METHOD = "http.request.method"
_HTTP_STATUS = "http.response.status_code"
_HTTP_RESEND = "http.request.resend_count"
_URL_TEMPLATE = "url.template"


def _error_type(description: str) -> str:
    """``"Type"`` of a ``"Type: message"`` description (the outbox's ``error``)."""
    return description.split(":", 1)[0].strip() or "Error"


class OpenTelemetry(Instrumentation):
    """Records the pipeline's hooks as OpenTelemetry metrics and spans.

    Hooks run inline and only record (no I/O of their own): the SDK's
    exporters send in the background. It overrides ``first_response``, so
    the outbox reads a conversation's stored messages once per reply it
    delivers, to tell a first answer.

    Args:
        meter_provider: Where metrics go; the API's global one by default.
        tracer_provider: Where spans go; the API's global one by default.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        self._events = meter.create_counter(
            "omnichannel.events.received", unit="{event}",
            description="New events recorded (duplicates are not counted).",
        )
        self._handler_duration = meter.create_histogram(
            "omnichannel.handler.duration", unit="s",
            description="How long each handler ran on an event, done or failed.",
        )
        self._drafts = meter.create_counter(
            "omnichannel.drafts.held", unit="{draft}",
            description="Replies held as drafts for a human.",
        )
        self._outcomes = meter.create_counter(
            "omnichannel.outbox.outcomes", unit="{attempt}",
            description="Delivery attempts of the outbox, by what became of them.",
        )
        self._http_attempts = meter.create_counter(
            "omnichannel.http.attempts", unit="{attempt}",
            description="HTTP attempts of the adapters, by status and outcome.",
        )
        self._http_duration = meter.create_histogram(
            "omnichannel.http.attempt.duration", unit="s",
            description="How long each HTTP attempt of an adapter took.",
        )
        self._first_response = meter.create_histogram(
            "omnichannel.first_response.delay", unit="s",
            description="From a conversation's first customer message to our first reply.",
        )
        self._helpdesk = meter.create_histogram(
            "omnichannel.helpdesk.duration", unit="s",
            description="From a conversation's first customer message to an agent's first "
                        "answer (metric first_response) or its resolution (resolution).",
        )
        # Per task: (task id, start in ns) of the first HTTP attempt since the
        # last delivery outcome reported in that task. A child task inherits
        # its parent's value; the task id tells it is not its own.
        self._first_request: ContextVar[tuple[int, int] | None] = ContextVar(
            f"omnichannel_otel_first_request_{id(self)}", default=None
        )

    def __repr__(self) -> str:
        return "OpenTelemetry()"

    # inbound ---------------------------------------------------------------

    def event_received(self, event: Event) -> None:
        self._events.add(1, {_NETWORK: event.network, _EVENT_TYPE: event.type})

    def handler_finished(
        self, event: Event, handler: str, *, duration: float, error: BaseException | None
    ) -> None:
        attributes: dict[str, AttributeValue] = {
            _NETWORK: event.network, _EVENT_TYPE: event.type, _HANDLER: handler,
            _OUTCOME: "done" if error is None else "failed",
        }
        if error is not None:
            attributes[_ERROR_TYPE] = type(error).__qualname__
        self._handler_duration.record(duration, attributes)
        end = time.time_ns()
        span = self._tracer.start_span(
            f"handle {handler}", start_time=end - _ns(duration),
            attributes={**attributes, _EVENT_ID: event.id},
        )
        if error is not None:
            span.record_exception(error, timestamp=end)
            span.set_status(trace.StatusCode.ERROR, f"{type(error).__qualname__}: {error}")
        span.end(end_time=end)

    def draft_held(self, draft: Draft) -> None:
        self._drafts.add(1, {_NETWORK: draft.action.network, _ACTION_TYPE: draft.action.type})

    # outbound --------------------------------------------------------------

    def delivery_outcome(
        self,
        item: OutboxItem,
        outcome: DeliveryOutcome,
        *,
        sent: Sent | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        attributes: dict[str, AttributeValue] = {
            _NETWORK: item.network, _ACTION_TYPE: item.action.type, _OUTCOME: outcome,
        }
        if error is not None:
            attributes[_ERROR_TYPE] = _error_type(error)
        self._outcomes.add(1, attributes)
        end = time.time_ns()
        start = self._take_first_request()
        span_attributes: dict[str, AttributeValue] = {
            **attributes, _ACTION_KEY: item.key, _ATTEMPT: item.attempts, _ORIGIN: item.origin,
        }
        if sent is not None:
            span_attributes[_SENT_ID] = sent.ref.id
        if retry_at is not None:
            span_attributes[_RETRY_AT] = retry_at.isoformat()
        span = self._tracer.start_span(
            f"deliver {item.action.type}", start_time=min(start or end, end),
            attributes=span_attributes,
        )
        if outcome == "failed":
            span.set_status(trace.StatusCode.ERROR, error)
        span.end(end_time=end)

    def first_response(self, network: str, conversation: Ref, *, delay: timedelta) -> None:
        self._first_response.record(delay.total_seconds(), {_NETWORK: network})

    def helpdesk_timing(
        self, conversation: Ref, metric: Literal["first_response", "resolution"], *,
        duration: timedelta, priority: str, agent: str | None,
    ) -> None:
        attributes: dict[str, AttributeValue] = {
            _NETWORK: conversation.network, "omnichannel.helpdesk.metric": metric,
            "omnichannel.helpdesk.priority": priority,
        }
        if agent is not None:
            attributes["omnichannel.helpdesk.agent"] = agent
        self._helpdesk.record(duration.total_seconds(), attributes)

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
        attributes: dict[str, AttributeValue] = {
            _NETWORK: network, _HTTP_METHOD: method, _URL_TEMPLATE: endpoint, _OUTCOME: outcome,
        }
        if status is not None:
            attributes[_HTTP_STATUS] = status
        if error is not None:
            attributes[_ERROR_TYPE] = error
        elif status is not None and status >= 400:
            attributes[_ERROR_TYPE] = str(status)
        self._http_attempts.add(1, attributes)
        self._http_duration.record(elapsed, attributes)
        end = time.time_ns()
        start = end - _ns(elapsed)
        self._note_request(start)
        span_attributes = dict(attributes)
        if attempt > 1:
            span_attributes[_HTTP_RESEND] = attempt - 1
        span = self._tracer.start_span(
            f"{method} {endpoint}", kind=trace.SpanKind.CLIENT, start_time=start,
            attributes=span_attributes,
        )
        if outcome != "ok":
            span.set_status(trace.StatusCode.ERROR, outcome)
        span.end(end_time=end)

    # the start of a delivery --------------------------------------------------

    def _note_request(self, start: int) -> None:
        task = _task_id()
        if task is None:
            return
        current = self._first_request.get()
        if current is None or current[0] != task:
            self._first_request.set((task, start))

    def _take_first_request(self) -> int | None:
        task = _task_id()
        current = self._first_request.get()
        if current is None or task is None or current[0] != task:
            return None
        self._first_request.set(None)
        return current[1]


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


def _task_id() -> int | None:
    try:
        return anyio.get_current_task().id
    except RuntimeError:  # not in an event loop anyio knows (a hook called from a thread)
        return None
