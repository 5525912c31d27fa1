"""Server-sent events as Mastodon's streaming API writes them.

```text
:)
event: notification
data: {"id":"14","type":"mention",...}

event: delete
data: 117024236332527350
```

Lines starting with ``:`` are comments (Mastodon's heartbeat); a blank line ends
an event; several ``data:`` lines join with a newline.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerEvent", "aiter_events", "iter_events"]


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event of the stream: its name and its data."""

    event: str
    data: str


class SSEDecoder:
    """Turns lines into events, one line at a time."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """Take one line (without its end of line); return an event when one ends."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerEvent(event=event, data="\n".join(data))


def iter_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The events in ``lines`` (an event left open at the end is dropped)."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event


async def aiter_events(lines: AsyncIterable[str]) -> AsyncGenerator[ServerEvent, None]:
    """The events in an async stream of lines, as they complete.

    Closing this iterator (``contextlib.aclosing``) closes ``lines`` too when
    it can be closed, so no generator is left for the garbage collector.
    """
    decoder = SSEDecoder()
    try:
        async for line in lines:
            event = decoder.feed(line)
            if event is not None:
                yield event
    finally:
        close = getattr(lines, "aclose", None)
        if close is not None:
            await close()
