"""Opening and closing what the hub holds: the store, then each adapter."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import anyio

from .adapter import Adapter
from .errors import ConfigurationError
from .store import Store

logger = logging.getLogger("omnichannel.hub")


async def open_all(store: Store, adapters: Iterable[Adapter]) -> None:
    """Open ``store``, then each adapter; on a failure close what was opened and re-raise.

    An adapter's spend meter without a store of its own is bound to ``store`` first.

    Raises:
        ConfigurationError: The store was opened read-only (the hub writes to
            it), or an adapter's settings cannot work.
        AuthenticationError: An adapter's credentials were refused.
    """
    if getattr(store, "read_only", False) is True:
        raise ConfigurationError(f"the hub writes to its store: open {store!r} without read_only")
    await store.open()
    opened: list[Adapter] = []
    try:
        for adapter in adapters:
            if adapter.spend is not None and adapter.spend.store is None:
                adapter.spend.bind(store)  # the spend is kept where the hub keeps the rest
            await adapter.open()
            opened.append(adapter)
    except BaseException:
        await close_all(store, opened)
        raise


async def close_all(store: Store, adapters: Iterable[Adapter]) -> None:
    """Close each adapter (last opened first), then ``store``, shielded from cancellation."""
    with anyio.CancelScope(shield=True):
        for adapter in reversed(list(adapters)):
            try:
                await adapter.aclose()
            except Exception:
                logger.exception("closing the %s adapter failed", adapter.network)
        await store.aclose()
