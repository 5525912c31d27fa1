"""Find installed adapters through the ``omnichannel.adapters`` entry-point group.

A plugin distribution declares, in its ``pyproject.toml``:

```toml
[project.entry-points."omnichannel.adapters"]
mastodon = "omnichannel_mastodon:MastodonAdapter"
```

An adapter may also register under an old name of its network: it lists the
name in a ``network_aliases`` class attribute (the X adapter is found as
``x`` and as ``twitter``; its events still say ``x``).

Set ``OMNICHANNEL_ADAPTERS=mastodon,bluesky`` to load only those networks.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import EntryPoint, entry_points
from operator import attrgetter

from pydantic import BaseModel, ConfigDict

from .adapter import Adapter
from .capabilities import Capabilities
from .errors import UnknownNetwork

__all__ = ["ENTRY_POINT_GROUP", "AdapterInfo", "adapters", "load_adapter"]

ENTRY_POINT_GROUP = "omnichannel.adapters"
"""The entry-point group adapters register under; the name is the network id."""

_log = logging.getLogger("omnichannel.registry")


class AdapterInfo(BaseModel):
    """One installed adapter, loaded or not.

    Attributes:
        network: The network id (the entry point's name).
        distribution: The distribution that provides it, e.g. ``omnichannel-mastodon``.
        version: That distribution's version.
        adapter: The adapter class, or ``None`` when it failed to load.
        error: Why it failed to load, or ``None``.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    network: str
    distribution: str | None
    version: str | None
    adapter: type[Adapter] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the adapter loaded."""
        return self.adapter is not None

    @property
    def capabilities(self) -> Capabilities | None:
        """The adapter's declared capabilities, when it loaded."""
        return self.adapter.capabilities if self.adapter is not None else None


def _allowed() -> set[str] | None:
    raw = os.environ.get("OMNICHANNEL_ADAPTERS", "").strip()
    if not raw:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _entry_points() -> list[EntryPoint]:
    allowed = _allowed()
    return [
        ep for ep in entry_points(group=ENTRY_POINT_GROUP)
        if allowed is None or ep.name in allowed
    ]


def _load(ep: EntryPoint) -> AdapterInfo:
    dist = ep.dist
    name, version = (dist.name, dist.version) if dist is not None else (None, None)
    try:
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise TypeError(f"{ep.value} is not an omnichannel Adapter subclass")  # noqa: TRY301
        if cls.network != ep.name and ep.name not in getattr(cls, "network_aliases", ()):
            raise TypeError(  # noqa: TRY301
                f"{ep.value} declares network {cls.network!r} but is registered as {ep.name!r}"
            )
    except Exception as exc:  # one broken plugin never hides the others
        _log.warning("adapter %r from %s failed to load: %s", ep.name, name, exc)
        return AdapterInfo(
            network=ep.name, distribution=name, version=version,
            error=f"{type(exc).__name__}: {exc}",
        )
    return AdapterInfo(network=ep.name, distribution=name, version=version, adapter=cls)


def adapters() -> list[AdapterInfo]:
    """List installed adapters sorted by network; broken ones carry their error.

    A network is listed once: entry points registered under one of its
    adapter's ``network_aliases`` are left out (`load_adapter` still finds them).
    """
    infos = (_load(ep) for ep in _entry_points())
    return sorted(
        (i for i in infos if i.adapter is None or i.adapter.network == i.network),
        key=attrgetter("network"),
    )


def load_adapter(network: str) -> type[Adapter]:
    """Return the adapter class for ``network``.

    Raises:
        UnknownNetwork: No adapter for that network is installed (the message
            names the package to install), or it failed to import (the message
            says why).
    """
    eps = _entry_points()
    for ep in eps:
        if ep.name == network:
            info = _load(ep)
            if info.adapter is None:
                raise UnknownNetwork(network, installed=(), reason=info.error)
            return info.adapter
    raise UnknownNetwork(network, installed=tuple(sorted({ep.name for ep in eps})))
