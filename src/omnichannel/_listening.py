"""The listen loop: each adapter that polls or streams, fed into ``hub.ingest``.

One task per listening adapter. It resumes from the stored cursor (or, on a
first run, from the network's current position, with an optional backfill),
hands every batch to the hub's one inbound path, waits while the dispatcher is
full, and restarts with a growing delay after a failure.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import anyio
import anyio.abc

from .adapter import Adapter, Batch, Rejected, newest_events
from .errors import ConfigurationError, OmnichannelError
from .events import Event
from .store import DeadLetter, Store

logger = logging.getLogger("omnichannel.hub")


class Inbound(Protocol):
    """What a listener needs from the hub: where to put batches, and when to wait."""

    @property
    def store(self) -> Store:
        """The store holding the cursors."""
        ...

    def clock(self) -> datetime:
        """Return the current aware time."""
        ...

    def ingest(
        self,
        network: str,
        events: Sequence[Event],
        *,
        cursor: str | None = None,
        stream: str = "default",
        rejected: Sequence[Rejected] = (),
    ) -> Awaitable[list[Event]]:
        """Persist a batch and dispatch its new events."""
        ...

    def wait_for_room(self) -> Awaitable[None]:
        """Return once the dispatcher can take more events."""
        ...


async def run_listener(
    adapter: Adapter,
    *,
    inbound: Inbound,
    backoff: tuple[float, float],
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen to ``adapter`` until cancelled, ingesting each batch; restart after failures.

    Resumes from the stored cursor; with none, starts with ``first_run``.
    A failure (network down, adapter error) is logged and the listener starts
    again after a wait that doubles from ``backoff[0]`` up to ``backoff[1]``.
    ``task_status`` is started once the listener knows where it starts (or
    failed to find out and retries).
    """
    initial, longest = backoff
    delay = initial
    starting = True
    while True:
        batches: AsyncIterator[Batch] | None = None
        try:
            cursor = await inbound.store.get_cursor(adapter.network)
            if cursor is None:
                cursor = await first_run(adapter, inbound=inbound)
            if starting:
                starting = False
                task_status.started()
            batches = adapter.listen(cursor)
            async for batch in batches:
                await inbound.ingest(
                    adapter.network, batch.events, cursor=batch.cursor,
                    rejected=batch.rejected,
                )
                delay = initial
                await inbound.wait_for_room()
        except Exception as exc:
            logger.warning(
                "the %s listener failed (%s: %s); retrying in %.1f s",
                adapter.network, type(exc).__name__, exc, delay,
                exc_info=not isinstance(exc, OmnichannelError),
            )
        else:
            logger.info("the %s stream ended; resuming from the stored cursor", adapter.network)
        finally:
            closer = getattr(batches, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True):
                    await closer()
        if starting:  # the network is down: the hub runs, this listener retries
            starting = False
            task_status.started()
        await anyio.sleep(delay)
        delay = min(longest, delay * 2)

async def first_run(adapter: Adapter, *, inbound: Inbound) -> str | None:
    """Start listening to a network with no stored cursor: from now, or with a backfill.

    Reads the network's current position and stores it as the cursor.
    Older events are not handled (and not stored) unless the adapter's
    settings ask for a backfill; backfilled events are marked so.
    """
    network = adapter.network
    limit, since = adapter.settings.backfill_plan(inbound.clock())
    batch = await adapter.backlog(limit=limit, since=since)
    events = [
        event.model_copy(update={"backfilled": True})
        for event in newest_events(batch.events, limit=limit, since=since)
    ]
    if batch.cursor is None:
        logger.warning(
            "%s: the adapter gave no current position; listening from its own start",
            network, extra={"network": network},
        )
    if limit:
        logger.info(
            "%s: first run: backfilling %d events from before now (replies to them are "
            "held as drafts by the default policies)", network, len(events),
            extra={"network": network, "backfilled": len(events)},
        )
    else:
        logger.info(
            "%s: first run: listening from now; older events are not handled "
            "(set backfill in the adapter's settings to handle some)", network,
            extra={"network": network},
        )
    await inbound.ingest(network, events, cursor=batch.cursor, rejected=batch.rejected)
    return batch.cursor


def listeners(adapters: Mapping[str, Adapter], listen: bool | Collection[str]) -> list[Adapter]:
    """The adapters to listen to: every one that polls or streams, or those of ``listen``.

    Raises:
        ConfigurationError: ``listen`` names a network with no adapter.
    """
    if listen is False:
        return []
    chosen = [
        adapter for adapter in adapters.values()
        if adapter.capabilities.inbound & {"poll", "stream"}
    ]
    if listen is True:
        return chosen
    unknown = set(listen) - set(adapters)
    if unknown:
        raise ConfigurationError(f"no adapter for networks {sorted(unknown)} to listen to")
    return [adapter for adapter in chosen if adapter.network in listen]


def rejected_letter(network: str, item: Rejected, *, at: datetime) -> DeadLetter:
    """Log an inbound item the adapter could not use, and return it as a dead letter."""
    reason = f"{item.path}: {item.reason}" if item.path else item.reason
    logger.warning(
        "%s: skipped an inbound item the adapter could not use (%s); kept as a dead letter",
        network, reason, extra={"network": network, "path": item.path},
    )
    return DeadLetter(at=at, network=network, reason=reason, body=item.body)
