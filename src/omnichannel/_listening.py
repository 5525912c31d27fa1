"""The listen loop: each source of each listening adapter, fed into ``hub.ingest``.

One task per source (`Adapter.sources`). It resumes from the source's stored
cursor (or, on a first run, from the network's current position, with an
optional backfill), hands every batch to the hub's one inbound path, waits
while the dispatcher is full, and restarts with a growing delay after a
failure. A stream that ends or drops is opened again the same way, and the
poll source it names to catch up is woken at once. Nothing here iterates a
generator inside a task group: each task only awaits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Protocol

import anyio
import anyio.abc

from .adapter import Adapter, Batch, Rejected, newest_events, poll_backlog
from .errors import ConfigurationError, OmnichannelError
from .events import Event
from .sources import (
    DEFAULT_SOURCE,
    PollSource,
    Source,
    SourceLease,
    StreamSource,
    check_sources,
)
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


class _Wake:
    """Wakes a waiting poll source early (its stream dropped): a resettable event."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Return after ``seconds``, or sooner once ``set`` is called."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
        self._event = anyio.Event()


@asynccontextmanager
async def _no_lease(network: str, source: str) -> AsyncIterator[None]:
    yield


async def start_listeners(
    tg: anyio.abc.TaskGroup, adapters: Sequence[Adapter], *, inbound: Inbound,
    backoff: tuple[float, float], lease: SourceLease | None = None,
) -> None:
    """Start a listener per adapter in ``tg``; return once each knows where it starts."""
    for adapter in adapters:
        await tg.start(
            partial(run_listener, adapter, inbound=inbound, backoff=backoff, lease=lease),
            name=f"omnichannel {adapter.network} listener",
        )


async def run_listener(
    adapter: Adapter,
    *,
    inbound: Inbound,
    backoff: tuple[float, float],
    lease: SourceLease | None = None,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run every source of ``adapter`` in its own task until cancelled.

    Each source resumes from its own stored cursor; with none, it starts
    with a first run. A cursor an earlier version stored under ``"default"``
    is split once into the sources' cursors (`Adapter.split_cursor`).
    ``lease(network, source)``, when given, is held around each source's
    run (see [`SourceLease`][omnichannel.sources.SourceLease]).
    ``task_status`` is started once every source knows where it starts (or
    failed to find out and retries).
    """
    sources = tuple(adapter.sources())
    check_sources(adapter.network, sources)
    try:
        await split_default_cursor(adapter, sources, inbound=inbound)
    except Exception as exc:
        logger.warning(
            "%s: the cursor stored before sources could not be split (%s: %s); "
            "each source starts with a first run", adapter.network, type(exc).__name__, exc,
            extra={"network": adapter.network},
        )
    wakes = {source.name: _Wake() for source in sources if isinstance(source, PollSource)}
    hold = lease or _no_lease
    async with anyio.create_task_group() as tg:
        for source in sources:
            runner = SourceRunner(adapter, source, inbound=inbound, backoff=backoff, wakes=wakes)
            await tg.start(partial(_held, runner, hold),
                           name=f"omnichannel {adapter.network} {source.name} source")
        task_status.started()


async def _held(
    runner: SourceRunner, lease: SourceLease,
    *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    async with lease(runner.network, runner.source.name):
        await runner.run(task_status=task_status)


async def split_default_cursor(
    adapter: Adapter, sources: Sequence[Source], *, inbound: Inbound
) -> None:
    """Store the per-source parts of a cursor stored under ``"default"``, once.

    Only when no source has a cursor yet (so it happens on the first start
    after an upgrade, never again), and only for an adapter whose sources do
    not include ``"default"`` itself.
    """
    names = {source.name for source in sources}
    if DEFAULT_SOURCE in names:
        return
    store, network = inbound.store, adapter.network
    for name in names:
        if await store.get_cursor(network, name) is not None:
            return
    packed = await store.get_cursor(network, DEFAULT_SOURCE)
    if packed is None:
        return
    parts = {name: cursor for name, cursor in adapter.split_cursor(packed).items()
             if name in names and cursor}
    for name, cursor in sorted(parts.items()):
        await inbound.ingest(network, (), cursor=cursor, stream=name)
    logger.info(
        "%s: the cursor stored before sources now resumes %s",
        network, ", ".join(sorted(parts)) or "no source", extra={"network": network},
    )


class SourceRunner:
    """Runs one source: first run or stored cursor, batches into the hub, restarts."""

    def __init__(
        self, adapter: Adapter, source: Source, *, inbound: Inbound,
        backoff: tuple[float, float], wakes: Mapping[str, _Wake],
    ) -> None:
        self.adapter = adapter
        self.network = adapter.network
        self.source = source
        self.inbound = inbound
        self.initial, self.longest = backoff
        self.delay = self.initial
        self.wakes = wakes

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled; a failure is logged and retried after a growing delay."""
        starting = True
        while True:
            try:
                cursor = await self.inbound.store.get_cursor(self.network, self.source.name)
                if cursor is None:
                    cursor = await self.first_run()
                if starting:
                    starting = False
                    task_status.started()
                if isinstance(self.source, PollSource):
                    await self._poll(self.source, cursor)
                else:
                    await self._stream(self.source, cursor)
            except Exception as exc:
                logger.warning(
                    "the %s %s source failed (%s: %s); retrying in %.1f s",
                    self.network, self.source.name, type(exc).__name__, exc, self.delay,
                    exc_info=not isinstance(exc, OmnichannelError),
                    extra={"network": self.network, "source": self.source.name},
                )
            else:
                logger.info(
                    "the %s %s stream ended; resuming from its stored cursor",
                    self.network, self.source.name,
                    extra={"network": self.network, "source": self.source.name},
                )
            if isinstance(self.source, StreamSource):
                self._wake_catch_up(self.source)  # what the gap hides is polled now
            if starting:  # the network is down: the hub runs, this source retries
                starting = False
                task_status.started()
            await anyio.sleep(self.delay)
            self.delay = min(self.longest, self.delay * 2)

    async def _ingest(self, batch: Batch) -> None:
        await self.inbound.ingest(
            self.network, batch.events, cursor=batch.cursor, stream=self.source.name,
            rejected=batch.rejected,
        )
        self.delay = self.initial
        await self.inbound.wait_for_room()

    async def _poll(self, source: PollSource, cursor: str | None) -> None:
        wake = self.wakes[source.name]
        while True:
            for _ in range(source.max_pages):
                batch = await source.poll(cursor)
                if batch.cursor is not None:
                    cursor = batch.cursor
                await self._ingest(batch)
                if not batch.more:
                    break
            await wake.wait(source.interval)

    async def _stream(self, source: StreamSource, cursor: str | None) -> None:
        self._wake_catch_up(source)
        batches = source.stream(cursor)
        try:
            async for batch in batches:
                await self._ingest(batch)
        finally:
            closer = getattr(batches, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True):
                    await closer()

    def _wake_catch_up(self, source: StreamSource) -> None:
        if source.catch_up is not None:
            self.wakes[source.catch_up].set()

    async def first_run(self) -> str | None:
        """Start a source with no stored cursor: from now, or with a backfill.

        Reads the source's current position and stores it as its cursor.
        Older events are not handled (and not stored) unless the adapter's
        settings ask for a backfill; backfilled events are marked so.
        """
        network, source = self.network, self.source
        limit, since = self.adapter.settings.backfill_plan(self.inbound.clock())
        if source.backlog is not None:
            batch = await source.backlog(limit=limit, since=since)
        elif isinstance(source, PollSource):
            batch = await poll_backlog(source.poll, limit=limit, since=since, network=network)
        else:
            return None  # a stream with no backlog starts live
        events = [
            event.model_copy(update={"backfilled": True})
            for event in newest_events(batch.events, limit=limit, since=since)
        ]
        extra = {"network": network, "source": source.name}
        if batch.cursor is None:
            logger.warning(
                "%s: the %s source gave no current position; listening from its own start",
                network, source.name, extra=extra,
            )
        if limit:
            logger.info(
                "%s: first run of %s: backfilling %d events from before now (replies to "
                "them are held as drafts by the default policies)", network, source.name,
                len(events), extra={**extra, "backfilled": len(events)},
            )
        else:
            logger.info(
                "%s: first run of %s: listening from now; older events are not handled "
                "(set backfill in the adapter's settings to handle some)", network,
                source.name, extra=extra,
            )
        await self.inbound.ingest(network, events, cursor=batch.cursor, stream=source.name,
                                  rejected=batch.rejected)
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
