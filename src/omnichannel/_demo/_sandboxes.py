"""Find each installed adapter's sandbox and build adapters that talk to it."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..adapter import Adapter
from ..http import RetryPolicy
from ..hub import Hub
from ..registry import AdapterInfo, adapters
from ..testing import Sandbox, VirtualClock

__all__ = [
    "SandboxNetwork", "StepRun", "find_demo_steps", "find_sandbox_class", "open_sandbox_networks",
    "uvicorn_available",
]


@dataclass(frozen=True)
class StepRun:
    """What a network's own scripted step gets: the hub, its adapter, progress and checks."""

    hub: Hub
    adapter: Adapter
    line: Callable[[str, str], None]
    check: Callable[[str, bool, str], None]


DemoStep = Callable[[StepRun], Awaitable[None]]


def find_demo_steps(adapter: type[Adapter], sandbox: Sandbox) -> tuple[DemoStep, ...]:
    """The network's own demo steps: ``demo_steps(sandbox)`` in its ``sandbox`` module.

    A network with rules the common script cannot show (Meta's 24-hour window
    and its human-agent tag) offers them there; it is called before the
    adapter is built, so it may set up the sandbox (grant a permission).
    """
    package = adapter.__module__.split(".")[0]
    try:
        module = importlib.import_module(f"{package}.sandbox")
    except ImportError:
        return ()
    hook = getattr(module, "demo_steps", None)
    return tuple(hook(sandbox)) if callable(hook) else ()


def find_sandbox_class(adapter: type[Adapter]) -> type[Sandbox] | None:
    """Return the adapter distribution's sandbox class, or ``None`` when it ships none.

    The convention (the house style): an adapter package ``omnichannel_<network>``
    has a public ``sandbox`` module with a ``Sandbox`` subclass for the same network.
    """
    package = adapter.__module__.split(".")[0]
    try:
        module = importlib.import_module(f"{package}.sandbox")
    except ImportError:
        return None
    for value in vars(module).values():
        if (
            isinstance(value, type) and issubclass(value, Sandbox) and value is not Sandbox
            and value.network == adapter.network
        ):
            return value
    return None


def uvicorn_available() -> bool:
    """Whether uvicorn can be imported (sandboxes are then served on loopback)."""
    try:
        importlib.import_module("uvicorn")
    except ImportError:
        return False
    return True


@dataclass
class SandboxNetwork:
    """One network of a sandbox run: its sandbox, the adapter pointed at it, where it is served.

    Attributes:
        network: The network id.
        info: The registry entry of the adapter.
        sandbox: The running sandbox.
        adapter: An adapter (not opened) talking to it.
        url: The loopback URL when served over HTTP, else ``None`` (in-process).
        http_attempts: How many times the adapter's HTTP layer tries a request.
        steps: The network's own scripted steps (`find_demo_steps`).
    """

    network: str
    info: AdapterInfo
    sandbox: Sandbox
    adapter: Adapter
    url: str | None = None
    http_attempts: int = field(default_factory=lambda: RetryPolicy().attempts)
    steps: tuple[DemoStep, ...] = ()

    def new_adapter(self) -> Adapter:
        """Build another adapter for the same sandbox (a second worker, say)."""
        adapter, _ = _build(
            self.info, self.sandbox, self.url, poll_interval=_poll_interval(self.adapter)
        )
        return adapter


def _poll_interval(adapter: Adapter) -> float:
    return float(getattr(adapter.settings, "poll_interval", 0.2))


_QUICK_RETRY = RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.2, wait_jitter=0.05)


def _build(
    info: AdapterInfo, sandbox: Sandbox, url: str | None, *, poll_interval: float
) -> tuple[Adapter, int]:
    """Build an adapter for ``sandbox``; return it and its HTTP attempts per request."""
    cls = info.adapter
    if cls is None:  # pragma: no cover - callers pass loaded adapters only
        raise ValueError(f"{info.network} did not load")
    settings: dict[str, Any] = dict(sandbox.adapter_settings(base_url=url))
    if "poll_interval" in cls.settings_model.model_fields:
        settings["poll_interval"] = poll_interval
    kwargs: dict[str, Any] = {}
    if url is None:
        kwargs["transport"] = sandbox.transport()
    attempts = RetryPolicy().attempts
    if "retry" in inspect.signature(cls).parameters:
        kwargs["retry"] = _QUICK_RETRY
        attempts = _QUICK_RETRY.attempts
    return cls(settings, **kwargs), attempts


@contextlib.asynccontextmanager
async def open_sandbox_networks(
    *,
    networks: Sequence[str] | None = None,
    seed: int = 7,
    loopback: bool = True,
    poll_interval: float = 0.2,
) -> AsyncIterator[list[SandboxNetwork]]:
    """Start the sandbox of every installed adapter that has one; yield the networks.

    Sandboxes are served on 127.0.0.1 with uvicorn when ``loopback`` is true
    and uvicorn is installed, else answered in-process. Records are stamped
    with the wall clock's time at start (the sandbox clock is then moved on
    by the caller as customers write).

    Args:
        networks: Only these networks (default: all with a sandbox).
        seed: Seeds each sandbox (ids, faults).
        loopback: Serve over real HTTP when possible.
        poll_interval: The adapters' seconds between polls.
    """
    serve = loopback and uvicorn_available()
    found: list[SandboxNetwork] = []
    async with contextlib.AsyncExitStack() as stack:
        for info in adapters():
            if info.adapter is None or (networks is not None and info.network not in networks):
                continue
            sandbox_cls = find_sandbox_class(info.adapter)
            if sandbox_cls is None:
                continue
            sandbox = sandbox_cls(seed=seed, clock=VirtualClock(datetime.now(UTC)))
            steps = find_demo_steps(info.adapter, sandbox)
            url = await stack.enter_async_context(sandbox.serve()) if serve else None
            adapter, attempts = _build(info, sandbox, url, poll_interval=poll_interval)
            found.append(
                SandboxNetwork(info.network, info, sandbox, adapter, url, attempts, steps)
            )
        yield found
