"""The listen loop: each source of each listening adapter, fed into ``hub.ingest``.

One task per source (`Adapter.sources`). It resumes from the source's stored
cursor (or, on a first run, from the network's current position, with an
optional backfill), hands every batch to the hub's one inbound path, waits
while the dispatcher is full, and restarts with a growing delay after a
failure. A stream that ends or drops is opened again the same way; the poll
source it names to catch up runs in the stream's task, on the same cursor,
once each connection is up and after each drop. Nothing here iterates a
generator inside a task group: each task only awaits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
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
from .store import DEFAULT_LEASE, DeadLetter, LeaseStore, Store, held_lease

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

    def _dispatch_unhandled(self, network: str | None = None) -> Awaitable[int]:
        """Queue the stored events of ``network`` not yet handled (another worker's, say)."""
        ...


@asynccontextmanager
async def _no_lease(network: str, source: str) -> AsyncIterator[None]:
    yield


def store_source_lease(
    store: LeaseStore, *, holder: str, clock: Callable[[], datetime],
    ttl: timedelta = DEFAULT_LEASE,
) -> SourceLease:
    """The lease a hub on a multi-worker store holds around each source: one reader each.

    Named ``source:<network>:<source>`` in the store, held by ``holder``
    (the worker id) and renewed while the source runs; another worker's hub
    stands by and takes the source over once the lease runs out.
    """

    def lease(network: str, source: str) -> AbstractAsyncContextManager[None]:
        return held_lease(store, f"source:{network}:{source}", holder=holder, ttl=ttl,
                          clock=clock, retry=min(1.0, ttl.total_seconds() / 4))

    return lease


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
    polled = {source.name: source for source in sources if isinstance(source, PollSource)}
    catch_ups = {source.name: polled[source.catch_up] for source in sources
                 if isinstance(source, StreamSource) and source.catch_up is not None}
    owned = {catch_up.name for catch_up in catch_ups.values()}
    hold = lease or _no_lease
    async with anyio.create_task_group() as tg:
        for source in sources:
            if source.name in owned:
                continue  # run by the stream it catches up for
            runner = SourceRunner(adapter, source, inbound=inbound, backoff=backoff,
                                  catch_up=catch_ups.get(source.name))
            await tg.start(partial(_held, runner, hold),
                           name=f"omnichannel {adapter.network} {source.name} source")
        task_status.started()


_STANDBY_AFTER = 2.0
"""Seconds a source waits for its lease before its worker counts as started (on standby)."""


class _Started:
    """A ``TaskStatus`` that only notes that the task started."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def started(self, value: object = None) -> None:
        self.event.set()


async def _held(
    runner: SourceRunner, lease: SourceLease,
    *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``runner`` while holding its lease; on standby while another worker holds it.

    Started once the source knows where it starts, or after `_STANDBY_AFTER`
    seconds without the lease (another worker reads this source; this one
    takes over when that lease runs out), so a standby worker's hub runs.
    """
    if lease is _no_lease:
        await runner.run(task_status=task_status)
        return
    started = _Started()
    stood_by = False

    async def hold() -> None:
        async with lease(runner.network, runner.source.name):
            if stood_by:
                # Taken over: the worker that read here may have died between
                # recording a batch and handling it. Its events go first, before
                # anything read next of their conversations. (At start the hub
                # has just queued every unhandled event: nothing to read again.)
                try:
                    await runner.inbound._dispatch_unhandled(runner.network)
                except Exception:  # the next start or sweep takes them up
                    logger.exception("%s: could not read the events left unhandled",
                                     runner.network, extra={"network": runner.network})
            await runner.run(task_status=started)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        with anyio.move_on_after(_STANDBY_AFTER):
            await started.event.wait()
        if not started.event.is_set():
            stood_by = True
            logger.info("%s: source %s is read by another worker; this one stands by",
                        runner.network, runner.source.name, extra={"network": runner.network})
        task_status.started()


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
    """Runs one source: first run or stored cursor, batches into the hub, restarts.

    A stream source with a ``catch_up`` poll source runs that source too, in
    the same task: they share the poll source's cursor, so a catch-up reads
    only what the stream missed, and the two never store it out of order.
    """

    def __init__(
        self, adapter: Adapter, source: Source, *, inbound: Inbound,
        backoff: tuple[float, float], catch_up: PollSource | None = None,
    ) -> None:
        self.adapter = adapter
        self.network = adapter.network
        self.source = source
        self.catch_up = catch_up
        self.cursor_name = catch_up.name if catch_up is not None else source.name
        self.inbound = inbound
        self.initial, self.longest = backoff
        self.delay = self.initial
        self.cursor: str | None = None
        """The cursor last stored."""
        self.known = False
        """Whether the source knows where it starts (a catch-up needs that)."""

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled; a failure is logged and retried after a growing delay."""
        starting = True
        while True:
            try:
                cursor = await self.inbound.store.get_cursor(self.network, self.cursor_name)
                if cursor is None:
                    cursor = await self.first_run()
                self.cursor, self.known = cursor, True
                if starting:
                    starting = False
                    task_status.started()
                if isinstance(self.source, PollSource):
                    await self._poll(self.source, cursor)
                else:
                    await self._stream(self.source, cursor)
            except Exception as exc:
                self._failed(self.source.name, exc)
            else:
                logger.info(
                    "the %s %s stream ended; resuming from its stored cursor",
                    self.network, self.source.name,
                    extra={"network": self.network, "source": self.source.name},
                )
            if starting:  # the network is down: the hub runs, this source retries
                starting = False
                task_status.started()
            await self._catch_up()  # what the gap hides, before waiting to reconnect
            await anyio.sleep(self.delay)
            self.delay = min(self.longest, self.delay * 2)

    def _failed(self, name: str, exc: Exception) -> None:
        logger.warning(
            "the %s %s source failed (%s: %s); retrying in %.1f s",
            self.network, name, type(exc).__name__, exc, self.delay,
            exc_info=not isinstance(exc, OmnichannelError),
            extra={"network": self.network, "source": name},
        )

    async def _ingest(self, batch: Batch, *, working: bool = True) -> None:
        """Hand ``batch`` to the hub; ``working``: it shows the source works (resets the delay)."""
        await self.inbound.ingest(
            self.network, batch.events, cursor=batch.cursor, stream=self.cursor_name,
            rejected=batch.rejected,
        )
        if batch.cursor is not None:
            self.cursor = batch.cursor
        if working:
            self.delay = self.initial
        await self.inbound.wait_for_room()

    async def _pages(
        self, source: PollSource, cursor: str | None, *, working: bool
    ) -> str | None:
        """Poll from ``cursor`` while a page is ready (``max_pages`` at most); the cursor."""
        for _ in range(source.max_pages):
            batch = await source.poll(cursor)
            if batch.cursor is not None:
                cursor = batch.cursor
            await self._ingest(batch, working=working)
            if not batch.more:
                break
        return cursor

    async def _poll(self, source: PollSource, cursor: str | None) -> None:
        while True:
            cursor = await self._pages(source, cursor, working=True)
            await anyio.sleep(source.interval)

    async def _stream(self, source: StreamSource, cursor: str | None) -> None:
        batches = source.stream(cursor)
        connected = False
        try:
            async for batch in batches:
                if batch.events or batch.rejected or batch.cursor is not None:
                    await self._ingest(batch)
                else:  # a checkpoint: nothing to store, but the connection works
                    self.delay = self.initial
                if not connected:  # the connection is up: read what the gap hid
                    connected = True
                    await self._catch_up(raise_errors=True)
        finally:
            closer = getattr(batches, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True):
                    await closer()

    async def _catch_up(self, *, raise_errors: bool = False) -> None:
        """Poll the catch-up source from the shared cursor until no page is ready."""
        if self.catch_up is None or not self.known:
            return
        try:
            await self._pages(self.catch_up, self.cursor, working=False)
        except Exception as exc:
            if raise_errors:
                raise
            self._failed(self.catch_up.name, exc)

    async def first_run(self) -> str | None:
        """Start a source with no stored cursor: from now, or with a backfill.

        Reads the source's current position and stores it as its cursor.
        Older events are not handled (and not stored) unless the adapter's
        settings ask for a backfill; backfilled events are marked so.
        """
        network = self.network
        source: Source = self.catch_up or self.source
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
