"""Account health reports: what adapters say about their credentials, into the hub's inbound path.

An adapter calls [`Adapter.report_auth_health`][omnichannel.adapter.Adapter.report_auth_health]
from wherever it notices (a refresh, a refused token). The hub gives every
adapter a sink that keeps the report until its reporter task hands it to
``Hub.ingest`` (persisted, de-duplicated per kind and day, dispatched to
``@hub.on(AuthHealth)`` handlers) and writes an audit line, which
``omnichannel inbox`` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio
import anyio.abc

from .adapter import Adapter
from .events import AuthHealth, Event
from .store import AuditEntry, Store

__all__ = ["AUDIT_TYPE", "AuthReports"]

AUDIT_TYPE = "auth.health"
"""The audit log's ``action_type`` of an account-health report."""

logger = logging.getLogger("omnichannel.hub")


class AuthReports:
    """Reports waiting for the hub, and the task that hands them over."""

    def __init__(self, adapters: Iterable[Adapter]) -> None:
        """Become the sink of every adapter in ``adapters``."""
        self._waiting: list[AuthHealth] = []
        self._wake: anyio.Event | None = None
        for adapter in adapters:
            adapter.auth_health_sink = self.sink

    def sink(self, report: AuthHealth) -> None:
        """Keep ``report`` for the reporter (called by adapters, in the event loop)."""
        self._waiting.append(report)
        if self._wake is not None:
            self._wake.set()

    async def run(
        self,
        ingest: Callable[[str, Sequence[Event]], Awaitable[list[Event]]],
        store: Store,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Hand reports to ``ingest`` as they come (forever); audit each new one."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            while self._waiting:
                report = self._waiting.pop(0)
                try:
                    new = await ingest(report.network, [report])
                    if new:
                        await store.add_audit(AuditEntry(
                            at=report.occurred_at, network=report.network,
                            action_type=AUDIT_TYPE, idempotency_key=report.id,
                            actor="network", detail=f"{report.kind}: {report.detail}",
                        ))
                except Exception:
                    logger.exception("could not record an account health report; kept")
                    self._waiting.insert(0, report)
                    await anyio.sleep(1.0)
            await self._wake.wait()
