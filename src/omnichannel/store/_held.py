"""Holding a named lease around a piece of work: take it, renew it, give it back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio

from .roles import LeaseStore

__all__ = ["held_lease"]

logger = logging.getLogger("omnichannel.store")


@asynccontextmanager
async def held_lease(
    store: LeaseStore,
    name: str,
    *,
    holder: str,
    ttl: timedelta,
    clock: Callable[[], datetime],
    retry: float = 0.05,
    renew_every: float | None = None,
) -> AsyncIterator[None]:
    """Hold the lease ``name`` while the block runs: one holder at a time across workers.

    Entering waits (trying again every ``retry`` seconds) until ``holder``
    has the lease; while the block runs, the lease is renewed every
    ``renew_every`` seconds (a third of ``ttl`` unless told); leaving gives
    it back. When a renewal finds the lease lost (it ran out: this worker
    stalled longer than ``ttl``), the block is cancelled and the ``async
    with`` ends there, for another holder has the lease by now. An error the
    block raises comes out as it is.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        import anyio

        from omnichannel.store import MemoryStore, held_lease


        async def main() -> None:
            async with MemoryStore() as store:
                now = lambda: datetime(2024, 11, 5, tzinfo=UTC)
                async with held_lease(store, "listener:mastodon:109301", holder="w1",
                                      ttl=timedelta(seconds=30), clock=now):
                    print(await store.lease_holder("listener:mastodon:109301", now=now()))
                print(await store.lease_holder("listener:mastodon:109301", now=now()))


        anyio.run(main)
        #> w1
        #> None
        ```
    """
    period = renew_every if renew_every is not None else ttl.total_seconds() / 3
    while True:
        if await store.acquire_lease(name, holder=holder, ttl=ttl, now=clock()):
            break
        await anyio.sleep(retry)
    try:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_keep, store, name, holder, ttl, clock, period, tg.cancel_scope)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # the block's own error, alone in the group
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.release_lease(name, holder=holder)
            except Exception:  # it runs out on its own
                logger.exception("could not give back the lease %s", name)


async def _keep(
    store: LeaseStore,
    name: str,
    holder: str,
    ttl: timedelta,
    clock: Callable[[], datetime],
    period: float,
    scope: anyio.CancelScope,
) -> None:
    while True:
        await anyio.sleep(period)
        try:
            held = await store.renew_lease(name, holder=holder, ttl=ttl, now=clock())
        except Exception:
            logger.exception("could not renew the lease %s; trying again", name)
            continue
        if not held:
            logger.warning("%s lost the lease %s: what it guarded stops", holder, name)
            scope.cancel()
            return
