"""Instrumentation: hooks the pipeline calls as it works, for logs, metrics or traces.

Subclass [`Instrumentation`][omnichannel.instrumentation.Instrumentation],
override the hooks you need (the others do nothing) and pass it to the hub:

```python
class Timings(Instrumentation):
    def handler_finished(
        self, event: Event, handler: str, *, duration: float, error: BaseException | None
    ) -> None:
        print(f"{handler}: {'failed' if error else 'done'}")

hub = Hub(store=MemoryStore(), instrumentation=[Timings()])
```

The hub's readable log lines are one such consumer, always present;
[`omnichannel.otel`][omnichannel.otel] is another, for OpenTelemetry metrics
and traces (the ``otel`` extra). The statistics behind ``hub.statistics()``
are kept apart and need none. Hooks run inline, in the task doing the work:
keep them quick and never block. A hook that raises is logged and ignored; it
never stops the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Literal

from .actions import Sent
from .events import Event
from .model import Ref
from .store import Draft, OutboxItem

__all__ = ["DeliveryOutcome", "Instrumentation"]

logger = logging.getLogger("omnichannel.instrumentation")

DeliveryOutcome = Literal["sent", "reconciled", "retried", "ambiguous", "failed"]
"""What became of one delivery attempt.

``sent``: the network accepted it. ``reconciled``: a send that may have
landed was found on the network, and not sent again. ``retried``: put back
for a later attempt (a transient error, a rate limit). ``ambiguous``: put back
to be looked up first (the send may have landed). ``failed``: given up.
"""


class Instrumentation:
    """Hooks called as events come in, handlers run, and actions are delivered.

    Every hook of this base class does nothing; override the ones you need.
    """

    def event_received(self, event: Event) -> None:
        """A new event was recorded (a duplicate is not reported)."""

    def handler_finished(
        self, event: Event, handler: str, *, duration: float, error: BaseException | None
    ) -> None:
        """A handler returned (``error`` is ``None``) or raised, after ``duration`` seconds."""

    def draft_held(self, draft: Draft) -> None:
        """A reply was held as a draft for a human."""

    def delivery_outcome(
        self,
        item: OutboxItem,
        outcome: DeliveryOutcome,
        *,
        sent: Sent | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """The outbox tried ``item`` once; ``item`` is the item as it was claimed.

        Args:
            item: The outbox item (``attempts`` counts this attempt).
            outcome: What became of the attempt.
            sent: What the network created, when it says (``sent``, ``reconciled``).
            error: The error, for ``retried``, ``ambiguous`` and ``failed``.
            retry_at: When the next attempt is due (``retried``, ``ambiguous``).
        """

    def first_response(self, network: str, conversation: Ref, *, delay: timedelta) -> None:
        """Our first reply in a conversation was delivered, ``delay`` after the customer wrote.

        ``delay`` runs from the conversation's first stored message from a
        customer to the delivery. Reported only when some consumer overrides
        this hook (it costs one store read per reply), and only when the
        stored conversation is short enough to tell (its last 200 messages).
        """

    def helpdesk_timing(
        self, conversation: Ref, metric: Literal["first_response", "resolution"], *,
        duration: timedelta, priority: str, agent: str | None,
    ) -> None:
        """An agent answered a conversation for the first time, or resolved it.

        Reported by the helpdesk [`Workflow`][omnichannel.helpdesk.Workflow]
        given this consumer: ``duration`` runs from the customer's first
        message; ``agent`` is who answered or resolved (``"agent:anna"``).
        """

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
        """One HTTP request of an adapter got an answer (``status``) or failed (``error``).

        Args:
            network: The network the request went to.
            method: ``GET``, ``POST``...
            endpoint: The path template (``/api/v1/statuses``), never a full URL.
            status: The HTTP status, or ``None`` when no answer came.
            attempt: Which attempt of the request this was (``1`` first).
            elapsed: Seconds the attempt took.
            outcome: ``"ok"``, or why it did not succeed (``"retry"``,
                ``"rate limited"``...), as in the HTTP log line.
            error: The exception's type name when no answer came.
        """

    def wants(self, hook: str) -> bool:
        """Whether ``hook`` does anything here (is overridden), to skip costly reports."""
        return getattr(type(self), hook) is not getattr(Instrumentation, hook)


class _Fanout(Instrumentation):
    """Calls each hook of several consumers; a consumer that raises is logged and skipped."""

    def __init__(self, consumers: Sequence[Instrumentation]) -> None:
        self.consumers = tuple(consumers)

    def wants(self, hook: str) -> bool:
        return any(consumer.wants(hook) for consumer in self.consumers)

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
        for consumer in self.consumers:
            try:
                consumer.http_attempt(
                    network, method=method, endpoint=endpoint, status=status,
                    attempt=attempt, elapsed=elapsed, outcome=outcome, error=error,
                )
            except Exception:
                logger.exception("the http_attempt hook of %r failed", consumer)

    def first_response(self, network: str, conversation: Ref, *, delay: timedelta) -> None:
        for consumer in self.consumers:
            try:
                consumer.first_response(network, conversation, delay=delay)
            except Exception:
                logger.exception("the first_response hook of %r failed", consumer)

    def helpdesk_timing(
        self, conversation: Ref, metric: Literal["first_response", "resolution"], *,
        duration: timedelta, priority: str, agent: str | None,
    ) -> None:
        for consumer in self.consumers:
            try:
                consumer.helpdesk_timing(conversation, metric, duration=duration,
                                         priority=priority, agent=agent)
            except Exception:
                logger.exception("the helpdesk_timing hook of %r failed", consumer)

    def event_received(self, event: Event) -> None:
        for consumer in self.consumers:
            try:
                consumer.event_received(event)
            except Exception:
                logger.exception("the event_received hook of %r failed", consumer)

    def handler_finished(
        self, event: Event, handler: str, *, duration: float, error: BaseException | None
    ) -> None:
        for consumer in self.consumers:
            try:
                consumer.handler_finished(event, handler, duration=duration, error=error)
            except Exception:
                logger.exception("the handler_finished hook of %r failed", consumer)

    def draft_held(self, draft: Draft) -> None:
        for consumer in self.consumers:
            try:
                consumer.draft_held(draft)
            except Exception:
                logger.exception("the draft_held hook of %r failed", consumer)

    def delivery_outcome(
        self,
        item: OutboxItem,
        outcome: DeliveryOutcome,
        *,
        sent: Sent | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        for consumer in self.consumers:
            try:
                consumer.delivery_outcome(
                    item, outcome, sent=sent, error=error, retry_at=retry_at
                )
            except Exception:
                logger.exception("the delivery_outcome hook of %r failed", consumer)


_current: ContextVar[Instrumentation | None] = ContextVar(
    "omnichannel_instrumentation", default=None
)


@contextmanager
def _reporting_to(instrumentation: Instrumentation) -> Iterator[None]:
    """HTTP clients opened inside (by adapters, as the hub opens them) report to it."""
    token = _current.set(instrumentation)
    try:
        yield
    finally:
        _current.reset(token)


def _reporting() -> Instrumentation | None:
    """The instrumentation HTTP clients opened now report to, if any."""
    return _current.get()
