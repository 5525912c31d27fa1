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
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from operator import attrgetter

from pydantic import BaseModel, ConfigDict

from .adapter import Adapter
from .capabilities import Capabilities
from .errors import UnknownNetwork

__all__ = [
    "BUNDLED_ADAPTERS", "ENTRY_POINT_GROUP", "AdapterInfo", "adapters", "check_networks",
    "install_hint", "load_adapter", "unknown_network",
]

ENTRY_POINT_GROUP = "omnichannel.adapters"
"""The entry-point group adapters register under; the name is the network id."""

BUNDLED_ADAPTERS: dict[str, str] = {
    "mastodon": "adapters/mastodon",
    "bluesky": "adapters/bluesky",
    "facebook": "adapters/meta",
    "instagram": "adapters/meta",
    "x": "adapters/x",
}
"""The adapters developed in the omnichannel repository: network id -> folder in a clone.

Their distributions (``omnichannel-<folder>``: ``omnichannel-meta`` serves both
``facebook`` and ``instagram``) are not published on a package index yet:
install them from a clone of the repository.
"""

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


def install_hint(*networks: str) -> str:
    """Say how to install the adapters of ``networks`` (all bundled ones when none is given).

    The distributions are not published yet, so the hint installs them from a
    clone of the repository, run from its root; a network whose adapter does
    not ship with omnichannel gets no install command (a package name would
    be a guess that anyone could register).

    Examples:
        >>> install_hint("mastodon")
        'pip install -e ./adapters/mastodon'
    """
    wanted = networks or tuple(BUNDLED_ADAPTERS)
    folders = list(dict.fromkeys(BUNDLED_ADAPTERS[n] for n in wanted if n in BUNDLED_ADAPTERS))
    unknown = [n for n in wanted if n not in BUNDLED_ADAPTERS]
    parts = []
    if folders:
        parts.append("pip install " + " ".join(f"-e ./{folder}" for folder in folders))
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        bundled = ", ".join(BUNDLED_ADAPTERS)
        parts.append(
            f"no adapter for {names} ships with omnichannel (it ships adapters for {bundled})"
        )
    return "; ".join(parts)


def unknown_network(network: str, *, installed: Iterable[str] | None = None) -> UnknownNetwork:
    """The error for a network name that no installed adapter serves.

    The message lists the installed networks and, for an adapter that ships
    with omnichannel, how to install it from a clone.

    Args:
        network: The name asked for.
        installed: The installed networks (default: those loaded from the
            entry points).
    """
    have = tuple(sorted(installed if installed is not None
                        else (info.network for info in adapters() if info.ok)))
    if network in BUNDLED_ADAPTERS:
        hint = f"install it from a clone of the repository: {install_hint(network)}"
        package: str | None = f"omnichannel-{BUNDLED_ADAPTERS[network].rsplit('/', 1)[-1]}"
    else:
        hint = install_hint(network)
        package = None
    return UnknownNetwork(network, installed=have, package=package, hint=hint)


def check_networks(names: Iterable[str] | None) -> None:
    """Raise [`UnknownNetwork`][omnichannel.errors.UnknownNetwork] for the first name not installed.

    Args:
        names: Network names a user gave (``None``: nothing to check).
    """
    if not names:
        return
    have = [info.network for info in adapters() if info.ok]
    for name in names:
        if name not in have:
            raise unknown_network(name, installed=have)


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
            lists the installed ones and, for an adapter that ships with
            omnichannel, how to install it), or it failed to import (the
            message says why).
    """
    eps = _entry_points()
    for ep in eps:
        if ep.name == network:
            info = _load(ep)
            if info.adapter is None:
                raise UnknownNetwork(network, installed=(), reason=info.error)
            return info.adapter
    raise unknown_network(network)  # lists networks, not their aliases
