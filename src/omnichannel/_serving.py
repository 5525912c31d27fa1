"""Serving the webhook app with uvicorn, for ``hub.run(serve_webhooks=...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from .errors import ConfigurationError


async def serve_asgi(
    app: Any,
    host: str,
    port: int,
    *,
    on_started: Callable[[tuple[str, int]], None],
    on_exit: Callable[[], None],
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    """Serve ``app`` with uvicorn until cancelled (or until the server stops on its own).

    ``on_started`` gets the bound address; ``on_exit`` is called when the
    server stopped by itself (a signal), to stop what it serves too.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "serving webhooks needs uvicorn: pip install uvicorn"
        ) from exc
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    finished = anyio.Event()

    async def serve() -> None:
        try:
            with anyio.CancelScope(shield=True):
                await server.serve()
        finally:
            finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            while not server.started:
                if finished.is_set():
                    raise ConfigurationError(
                        f"the webhook server could not start on {host}:{port}"
                    )
                await anyio.sleep(0.01)
            sockname = server.servers[0].sockets[0].getsockname()
            on_started((str(sockname[0]), int(sockname[1])))
            task_status.started()
            await finished.wait()
            on_exit()  # the server stopped on its own (a signal): stop the hub too
        finally:
            server.should_exit = True


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (uvicorn runs on nothing else)."""
    import asyncio  # only asked, never used to run anything

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
