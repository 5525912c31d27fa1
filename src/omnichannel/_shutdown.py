"""Stopping a running hub on SIGINT or SIGTERM: what ``Bot`` and ``omnichannel serve`` share."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from .hub import Hub


DRAIN_SECONDS = 5.0
"""How long a signalled bot lets running handlers and sends finish before cancelling them."""


async def drain(hub: Hub) -> None:
    """Return once no handler is running and no delivery is on its way to a network."""
    await hub.wait_idle()
    while True:
        if not await hub.store.list_outbox(status="sending", limit=1):
            return
        await anyio.sleep(0.05)


async def stop_on_signal(
    signals: Any, hub: Hub, scope: anyio.CancelScope, stopped_by: list[signal.Signals]
) -> None:
    """On SIGINT or SIGTERM, drain for a few seconds, then cancel ``scope``.

    Handlers still running and sends in flight get up to ``DRAIN_SECONDS``
    to finish; a second signal cuts that short. What is cancelled is not
    lost: an unhandled event is handled again at the next start, and a send
    cut mid-way is looked up on the network before any resend.
    """
    async for signum in signals:
        stopped_by.append(signal.Signals(signum))
        break
    else:  # pragma: no cover - the receiver never ends on its own
        return
    async with anyio.create_task_group() as tg:

        async def second_signal() -> None:
            async for _ in signals:
                tg.cancel_scope.cancel()
                return

        tg.start_soon(second_signal)
        with anyio.move_on_after(DRAIN_SECONDS):
            await drain(hub)
        tg.cancel_scope.cancel()
    scope.cancel()


def signal_receiver(stack: ExitStack) -> Any:
    """Receive SIGINT and SIGTERM (only the main thread can; elsewhere ``None``)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
