"""Inbound sources: the named places an adapter reads events from.

An adapter that reads from several places (notifications and a chat log, a
REST listing and a push stream) declares each one as a source in
[`Adapter.sources`][omnichannel.adapter.Adapter.sources]. The hub runs every
source in its own task (a stream's catch-up source in the stream's), with its
own cursor stored under the source's name,
so one slow or failing place never holds up the others, and a cursor is
never a packed record of several. A source is either

- a [`PollSource`][omnichannel.sources.PollSource]: an async function from a
  cursor to one [`Batch`][omnichannel.adapter.Batch], called again after its
  ``interval`` when nothing new came, or at once while ``Batch.more`` says
  another page is ready (at most ``max_pages`` pages in a row); or
- a [`StreamSource`][omnichannel.sources.StreamSource]: a function from a
  cursor to an async iterator of batches, one connection's worth. When it
  ends or fails, the hub opens it again from the last stored cursor after a
  growing delay. A stream that names a ``catch_up`` poll source shares that
  source's cursor, and the hub polls it once each connection is up and after
  each drop, so what the gap hid is read by polling.

Reconnection, backoff, catch-up and first runs live in the hub, once: an
adapter's source functions do one page or one connection and never sleep.

```python
from omnichannel.adapter import Batch
from omnichannel.sources import PollSource, StreamSource

async def mentions(cursor: str | None) -> Batch:
    return Batch(cursor=cursor or "0")

async def live(cursor: str | None):
    yield Batch(cursor="42")

sources = (
    PollSource("mentions", mentions, interval=30.0),
    StreamSource("live", live, catch_up="mentions"),
)
assert [source.name for source in sources] == ["mentions", "live"]
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .adapter import Batch

__all__ = [
    "DEFAULT_SOURCE",
    "Backlog",
    "PollSource",
    "Source",
    "SourceLease",
    "StreamSource",
    "check_sources",
]

DEFAULT_SOURCE = "default"
"""The name of the one source an adapter gets from its ``poll`` or ``stream``.

It is also the name cursors were stored under before adapters declared
sources, so a stored cursor keeps working."""


class Backlog(Protocol):
    """Reads where a source stands now, and the newest events before it (a first run).

    Called with the backfill plan of the adapter's settings (see
    [`Adapter.backlog`][omnichannel.adapter.Adapter.backlog] for the contract:
    ``Batch.cursor`` is the current position, ``Batch.events`` at most
    ``limit`` of the newest events before it, none older than ``since``).
    """

    def __call__(self, *, limit: int = 0, since: datetime | None = None) -> Awaitable[Batch]:
        """Return the position, and up to ``limit`` events from before it."""
        ...


@dataclass(frozen=True, slots=True)
class PollSource:
    """A place read page by page: the hub calls ``poll`` from the stored cursor.

    Attributes:
        name: The source's name, unique in its adapter; its cursor is stored
            under ``(network, name)``.
        poll: Returns one page after the cursor (``None``: from now or the
            newest page), with the cursor to resume at.
        interval: Seconds to wait after a page with no ``more`` (unused
            while the source is a stream's ``catch_up``: the stream runs it).
        max_pages: The most pages read in a row (``Batch.more``) before the
            source waits ``interval``, so one backlog cannot hold the
            account's rate budget.
        backlog: Reads the position (and the backfill) on a first run (no
            stored cursor); ``None`` polls from ``None`` while ``more`` says
            another page is ready.
    """

    name: str
    poll: Callable[[str | None], Awaitable[Batch]]
    interval: float
    max_pages: int = 100
    backlog: Backlog | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a source needs a name")
        if self.interval <= 0 or self.max_pages < 1:
            raise ConfigurationError(
                f"source {self.name!r}: interval must be > 0 and max_pages >= 1")


@dataclass(frozen=True, slots=True)
class StreamSource:
    """A push stream: the hub iterates ``stream`` from the stored cursor.

    One call is one connection: the iterator ends (or raises) when the
    connection does, and the hub opens it again from the last stored cursor
    after a delay that grows while nothing comes. Yield an empty ``Batch()``
    once connected when nothing else comes at once: the hub catches up then.

    A stream whose network cannot resume it (Mastodon's streaming API) names
    the poll source that can read what it missed as ``catch_up``. The two
    then share one cursor, stored under the poll source's name, in the
    stream's format and the poll's alike (a notification id), and the hub
    runs the poll source in the stream's task instead of on its own: once
    each connection is up (its first batch) and after each drop or failed
    connection, it polls from the shared cursor until no page is ready. So
    a gap loses nothing, a catch-up reads only what the stream missed, and
    a stream that cannot connect at all is still read, by polling, at the
    pace of the reconnections.

    Attributes:
        name: The source's name, unique in its adapter; its cursor is stored
            under ``(network, name)``, or under ``catch_up``'s when it has one.
        stream: Yields batches as the network pushes them; a batch's cursor
            (when not ``None``) is where the stream resumes.
        catch_up: The poll source (of the same adapter) that reads what a gap
            in the stream hid, sharing its cursor; ``None``: the stream
            resumes from its own cursor by itself (Jetstream's ``time_us``).
        backlog: Reads the position (and the backfill) on a first run;
            ``None`` starts the stream from ``None`` (live). With a
            ``catch_up``, that source's first run is used instead.
    """

    name: str
    stream: Callable[[str | None], AsyncIterator[Batch]]
    catch_up: str | None = None
    backlog: Backlog | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a source needs a name")


Source = PollSource | StreamSource
"""Either kind of source."""

SourceLease = Callable[[str, str], AbstractAsyncContextManager[object]]
"""Holds one source of one network for this worker while it runs.

Called as ``lease(network, source_name)``; the hub enters the context
manager before it reads the source's cursor and leaves it when the source
stops. A lease shared through the store keeps two workers from reading the
same account's source at once (``Hub(source_lease=...)``). ``hub.run``
reports started once every source holds its lease and knows where it starts,
so entering should return once the lease is held; a lease lost while running
should cancel what it wraps."""


def check_sources(network: str, sources: Sequence[Source]) -> None:
    """Refuse sources that cannot run together.

    Raises:
        ConfigurationError: Two sources share a name, a stream's ``catch_up``
            names no poll source of the adapter, or two streams name the same.
    """
    names = [source.name for source in sources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(f"sources named twice: {twice}", network=network)
    polled = {source.name for source in sources if isinstance(source, PollSource)}
    owned: set[str] = set()
    for source in sources:
        if not isinstance(source, StreamSource) or source.catch_up is None:
            continue
        if source.catch_up not in polled:
            raise ConfigurationError(
                f"stream source {source.name!r} catches up with {source.catch_up!r}, "
                "which is not a poll source of the adapter", network=network,
            )
        if source.catch_up in owned:
            raise ConfigurationError(
                f"two stream sources catch up with {source.catch_up!r}", network=network)
        owned.add(source.catch_up)
