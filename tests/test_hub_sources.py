"""The hub runs each inbound source of an adapter in its own task, with its own cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from tests.runtime_adapter import eventually, running

from omnichannel.actions import Post, PrivateReply, Reply, Sent
from omnichannel.adapter import Adapter, AdapterSettings, Batch
from omnichannel.capabilities import Capabilities
from omnichannel.errors import ConfigurationError, TransientError
from omnichannel.events import MessageReceived, event_id
from omnichannel.hub import Context, Hub
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.sources import PollSource, Source, StreamSource, check_sources
from omnichannel.store import MemoryStore, Store
from omnichannel.text import TextRule

NETWORK = "places"
_HOUR = 3600.0


def _event(native: str, text: str, *, at: datetime | None = None) -> MessageReceived:
    ref = Ref(network=NETWORK, id=native)
    message = Message(
        ref=ref, conversation=ref, author=Person(ref=Ref(network=NETWORK, id="u-alice")),
        text=text, created_at=at or datetime.now(UTC), visibility="public",
    )
    return MessageReceived(
        id=event_id("message.received", ref), network=NETWORK,
        occurred_at=message.created_at, message=message,
        conversation=Conversation(ref=ref, kind="thread"),
    )


class Place:
    """One inbound place: a list of events read by position (the cursor is a count)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[MessageReceived] = []
        self.polled_from: list[str | None] = []
        self.failing = False

    def add(self, text: str, *, at: datetime | None = None) -> MessageReceived:
        event = _event(f"{self.name}-{len(self.events)}", text, at=at)
        self.events.append(event)
        return event

    async def poll(self, cursor: str | None) -> Batch:
        self.polled_from.append(cursor)
        if self.failing:
            raise TransientError(f"{self.name} is down", network=NETWORK)
        start = int(cursor) if cursor is not None else len(self.events)
        page = self.events[start:start + 2]
        return Batch(events=tuple(page), cursor=str(start + len(page)),
                     more=start + len(page) < len(self.events))

    async def backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        kept = [e for e in self.events if since is None or e.occurred_at >= since]
        return Batch(events=tuple(kept[-limit:] if limit else ()),
                     cursor=str(len(self.events)))


class Live:
    """A push stream over ``place``: the first connection delivers what is pushed, then drops.

    Pushed events are added to ``place`` too, with its count as the cursor: the
    stream and the place's poll share one cursor. Later connections hang.
    """

    def __init__(self, place: Place) -> None:
        self.place = place
        self.connections: list[str | None] = []
        self.pushed: list[MessageReceived | None] = []

    def push(self, text: str | None) -> None:
        """Add ``text`` to the place and send it down the connection; ``None`` drops it."""
        self.pushed.append(self.place.add(text) if text is not None else None)

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        self.connections.append(cursor)
        if len(self.connections) > 1:
            await anyio.sleep_forever()
        yield Batch()  # connected
        while True:
            await eventually(lambda: bool(self.pushed), limit=60.0)
            event = self.pushed.pop(0)
            if event is None:
                raise TransientError("the connection dropped", network=NETWORK)
            yield Batch(events=(event,), cursor=str(self.place.events.index(event) + 1))


class Places(Adapter):
    """An adapter over two polled places and a stream, declared as sources."""

    network = NETWORK
    capabilities = Capabilities(text=TextRule.code_points(500),
                                inbound=frozenset({"poll", "stream"}))

    def __init__(self, *, stream: bool = False, **settings: object) -> None:
        super().__init__(AdapterSettings.model_validate(settings))
        self.mentions = Place("mentions")
        self.dms = Place("dms")
        self.live = Live(self.dms)
        self.with_stream = stream
        self.split: list[str] = []

    def sources(self) -> Sequence[Source]:
        found: list[Source] = [
            PollSource("mentions", self.mentions.poll, interval=0.01,
                       backlog=self.mentions.backlog),
            PollSource("dms", self.dms.poll, interval=0.01, backlog=self.dms.backlog),
        ]
        if self.with_stream:
            found.append(StreamSource("live", self.live.stream, catch_up="dms"))
        return found

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        self.split.append(cursor)
        parts = dict(part.split("=", 1) for part in cursor.split(";"))
        return {"mentions": parts["m"], "dms": parts["d"]}

    async def open(self) -> None:
        return None

    async def poll(self, cursor: str | None) -> Batch:
        return await self.mentions.poll(cursor)

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        raise NotImplementedError

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        return None


def _hub(adapter: Adapter, store: Store | None = None, **options: object) -> tuple[
    Hub, list[str]
]:
    hub = Hub(adapters=[adapter], store=store or MemoryStore(),
              listener_backoff=(0.01, 0.05), **options)  # type: ignore[arg-type]
    seen: list[str] = []

    @hub.on(MessageReceived)
    async def record(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message.text)

    return hub, seen


async def test_each_source_keeps_its_own_cursor() -> None:
    """Mentions and DMs are read by two sources, each resuming from its own stored cursor."""
    adapter = Places()
    adapter.mentions.add("old mention")
    hub, seen = _hub(adapter)
    async with running(hub):
        assert await hub.store.get_cursor(NETWORK, "mentions") == "1"
        assert await hub.store.get_cursor(NETWORK, "dms") == "0"
        for n in range(3):
            adapter.mentions.add(f"mention {n}")
        adapter.dms.add("dm 0")
        await eventually(lambda: len(seen) == 4)
        assert await hub.store.get_cursor(NETWORK, "mentions") == "4"
        assert await hub.store.get_cursor(NETWORK, "dms") == "1"
        assert await hub.store.get_cursor(NETWORK) is None  # nothing packed under "default"
    assert sorted(seen) == ["dm 0", "mention 0", "mention 1", "mention 2"]


async def test_a_failing_source_does_not_hold_up_the_others() -> None:
    """DMs fail on every poll; mentions keep coming, and DMs retry with backoff."""
    adapter = Places()
    hub, seen = _hub(adapter)
    async with running(hub):
        adapter.dms.failing = True
        adapter.mentions.add("still here")
        await eventually(lambda: seen == ["still here"])
        await eventually(lambda: adapter.dms.polled_from.count("0") >= 3)
        adapter.dms.failing = False
        adapter.dms.add("back")
        await eventually(lambda: "back" in seen)


async def test_a_stream_is_caught_up_by_its_poll_source_on_one_cursor() -> None:
    """The catch-up source polls when the stream connects and after it drops, nowhere else."""
    adapter = Places(stream=True)
    adapter.dms.add("written before the first run")
    hub, seen = _hub(adapter)
    async with running(hub):
        assert await hub.store.get_cursor(NETWORK, "dms") == "1"  # the catch-up's first run
        await eventually(lambda: adapter.dms.polled_from == ["1"])  # caught up on connecting
        adapter.live.push("streamed")
        await eventually(lambda: "streamed" in seen)
        assert await hub.store.get_cursor(NETWORK, "dms") == "2"  # the stream's cursor
        assert await hub.store.get_cursor(NETWORK, "live") is None
        adapter.dms.add("written while the stream is down")
        adapter.live.push(None)  # the connection drops
        await eventually(lambda: "written while the stream is down" in seen)
        await eventually(lambda: len(adapter.live.connections) == 2)
        await anyio.sleep(0.05)  # the dms interval is 0.01 s: it would have polled by now
    assert adapter.live.connections == ["1", "3"], "the stream resumes at the shared cursor"
    # Polled once after connecting (from "1") and once after the drop (from "2"):
    # the catch-up reads only what the stream missed, and never on an interval.
    assert adapter.dms.polled_from == ["1", "2"]
    assert seen == ["streamed", "written while the stream is down"]


async def test_a_stream_that_ends_is_opened_again_from_its_stored_cursor() -> None:
    """The hub reopens an ended stream with the last cursor it stored for it."""
    opened: list[str | None] = []

    async def stream(cursor: str | None) -> AsyncIterator[Batch]:
        opened.append(cursor)
        n = len(opened)
        yield Batch(events=(_event(f"s{n}", f"connection {n}"),), cursor=f"c{n}")

    class Streaming(Places):
        def sources(self) -> Sequence[Source]:
            return (StreamSource("live", stream),)

    hub, seen = _hub(Streaming())
    async with running(hub):
        await eventually(lambda: len(opened) >= 3)
    assert opened[:3] == [None, "c1", "c2"]
    assert seen[:2] == ["connection 1", "connection 2"]


async def test_a_packed_cursor_is_split_once_into_the_sources() -> None:
    """A cursor stored under "default" resumes each source where it stood; only once."""
    store = MemoryStore()
    async with store:
        await store.record_batch(NETWORK, [], cursor="m=2;d=1", stream="default")
    adapter = Places()
    for n in range(4):
        adapter.mentions.add(f"mention {n}")
    for n in range(2):
        adapter.dms.add(f"dm {n}")
    hub, seen = _hub(adapter, store)
    async with running(hub):
        await eventually(lambda: len(seen) == 3)
        assert adapter.mentions.polled_from[0] == "2"
        assert adapter.dms.polled_from[0] == "1"
    assert sorted(seen) == ["dm 1", "mention 2", "mention 3"]
    assert adapter.split == ["m=2;d=1"]

    again = Places()
    hub, _ = _hub(again, hub.store)
    async with running(hub):
        await eventually(lambda: bool(again.dms.polled_from and again.mentions.polled_from))
    assert again.split == [], "the packed cursor was split a second time"
    assert again.mentions.polled_from[0] == "4"


async def test_a_packed_cursor_that_cannot_be_split_leaves_first_runs() -> None:
    """A stored cursor the adapter refuses to split is logged; each source starts from now."""

    class Refusing(Places):
        def split_cursor(self, cursor: str) -> Mapping[str, str]:
            raise ConfigurationError("not a places cursor", network=NETWORK)

    store = MemoryStore()
    async with store:
        await store.record_batch(NETWORK, [], cursor="garbage", stream="default")
    adapter = Refusing()
    adapter.mentions.add("old")
    hub, seen = _hub(adapter, store)
    async with running(hub):
        assert await hub.store.get_cursor(NETWORK, "mentions") == "1"
        adapter.mentions.add("new")
        await eventually(lambda: seen == ["new"])


async def test_a_first_run_reads_each_sources_position_and_backfill() -> None:
    """Each source with no cursor starts from its own position, backfilling per source."""
    adapter = Places(backfill=1)
    old = datetime.now(UTC) - timedelta(days=1)
    for n in range(3):
        adapter.mentions.add(f"old mention {n}", at=old)
    adapter.dms.add("old dm", at=old)
    hub, seen = _hub(adapter)
    backfilled: list[bool] = []

    @hub.on(MessageReceived)
    async def mark(event: MessageReceived, ctx: Context) -> None:
        backfilled.append(event.backfilled)

    async with running(hub):
        await eventually(lambda: len(seen) == 2)
        assert await hub.store.get_cursor(NETWORK, "mentions") == "3"
        assert await hub.store.get_cursor(NETWORK, "dms") == "1"
        await hub.wait_idle()
    assert sorted(seen) == ["old dm", "old mention 2"]
    assert backfilled == [True, True]


async def test_a_poll_source_reads_at_most_max_pages_in_a_row() -> None:
    """A source whose pages never end reads ``max_pages`` of them, then waits its interval."""
    calls: list[str | None] = []

    async def endless(cursor: str | None) -> Batch:
        calls.append(cursor)
        return Batch(cursor=str(len(calls)), more=True)

    class Endless(Places):
        def sources(self) -> Sequence[Source]:
            return (PollSource("endless", endless, interval=_HOUR, max_pages=3),)

    hub, _ = _hub(Endless())
    async with running(hub):
        await eventually(lambda: len(calls) >= 4)  # the first run's reads, then 3 pages
        first = len(calls)
        await anyio.sleep(0.1)
        assert len(calls) == first


async def test_the_source_lease_is_held_around_each_source() -> None:
    """``Hub(source_lease=...)`` is entered per source before it reads its cursor."""
    held: list[tuple[str, str]] = []
    released: list[tuple[str, str]] = []

    @asynccontextmanager
    async def lease(network: str, source: str) -> AsyncIterator[None]:
        held.append((network, source))
        try:
            yield
        finally:
            released.append((network, source))

    adapter = Places()
    hub, _ = _hub(adapter, source_lease=lease)
    async with running(hub):
        assert sorted(held) == [(NETWORK, "dms"), (NETWORK, "mentions")]
        assert released == []
    assert sorted(released) == sorted(held)


async def test_an_adapter_without_sources_reads_its_poll_under_default() -> None:
    """The default source polls ``poll`` and keeps the cursor name used before sources."""

    class Plain(Places):
        capabilities = Capabilities(text=TextRule.code_points(500), inbound=frozenset({"poll"}))
        sources = Adapter.sources

    adapter = Plain(poll_interval=0.01)
    [source] = adapter.sources()
    assert isinstance(source, PollSource)
    assert (source.name, source.interval) == ("default", 0.01)
    hub, seen = _hub(adapter)
    async with running(hub):
        adapter.mentions.add("hello")
        await eventually(lambda: seen == ["hello"])
        assert await hub.store.get_cursor(NETWORK) == "1"


def test_sources_that_cannot_run_together_are_refused() -> None:
    """One name twice, a catch-up that is no poll source or is shared: configuration errors."""

    async def poll(cursor: str | None) -> Batch:
        return Batch()

    async def stream(cursor: str | None) -> AsyncIterator[Batch]:
        yield Batch()

    with pytest.raises(ConfigurationError, match="named twice"):
        check_sources(NETWORK, [PollSource("a", poll, interval=1), StreamSource("a", stream)])
    with pytest.raises(ConfigurationError, match="catches up"):
        check_sources(NETWORK, [StreamSource("s", stream, catch_up="nope")])
    with pytest.raises(ConfigurationError, match="two stream sources"):
        check_sources(NETWORK, [PollSource("p", poll, interval=1),
                                StreamSource("s", stream, catch_up="p"),
                                StreamSource("t", stream, catch_up="p")])
    with pytest.raises(ConfigurationError):
        PollSource("a", poll, interval=0)
