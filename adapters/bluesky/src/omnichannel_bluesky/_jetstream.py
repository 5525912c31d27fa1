"""Listening mode: a Jetstream WebSocket client that keeps posts about us.

Jetstream (``bluesky-social/jetstream``) re-encodes the network's firehose as
JSON. We subscribe to ``wantedCollections=app.bsky.feed.post`` and keep the
posts that mention our account (a mention facet with our DID, ``@our.handle``
in the text, a reply to or quote of one of our posts) or contain one of the
configured keywords. Every event carries ``time_us``; reconnecting with
``cursor=<last time_us>`` replays what was missed.

Edits and deletions: an ``update`` is kept when the post is one we know (we
delivered it: `KnownPosts`) or when the edited post passes the filter; a
``delete`` names the record only, so it is kept for posts we know and no
others.

Filtering is the hot path (the full network is hundreds of posts a second):
a line is parsed only when it can match. The text-level test is exact: a
post can match only if its line contains our DID, our handle or a keyword
(case-insensitively), unless the line holds a JSON ``\\u`` escape or one of
the few characters whose case fold is ASCII (``FOLDS_TO_ASCII``); such lines,
and all lines when a keyword is not plain ASCII, are parsed. An update or a
deletion is parsed when its record key is one of a known post's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import httpx
from pydantic import ValidationError

from omnichannel.adapter import Rejected, convert_item
from omnichannel.errors import PayloadError, TransientError
from omnichannel.http import ApiClient
from omnichannel.model import Ref

from ._wire import MENTION, POST, JetstreamEvent, JetstreamPostEvent

if TYPE_CHECKING:
    # httpcore (with its sync and trio pieces) and wsproto are imported once
    # listening, not with the adapter: httpx loads httpcore only when it sends.
    import httpcore

__all__ = [
    "Deleted",
    "JetstreamFilter",
    "JetstreamItem",
    "KnownPosts",
    "Matched",
    "deleted_post",
    "jetstream_url",
    "post_event",
    "read_jetstream",
]

logger = logging.getLogger("omnichannel.bluesky")

NETWORK = "bluesky"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_READ_SIZE = 65536
_COLLECTION = '"app.bsky.feed.post"'
_CLEAN_CLOSE = frozenset({1000, 1001})  # normal closure, going away (a restart)
FOLDS_TO_ASCII = re.compile(
    "[\u00df\u0130\u0149\u017f\u01f0\u1e96-\u1e9a\u1e9e\u212a\ufb00-\ufb06]"
)
"""Characters outside ASCII whose case fold or lower case holds ASCII letters.

(ß, İ, ŉ, ſ, ǰ, ẖ-ẚ, ẞ, the Kelvin sign, the ﬀ-ﬆ ligatures.) A line without
them and without JSON escapes matches an ASCII keyword case-insensitively
only if its lower-cased text contains the keyword: the byte test is exact.
"""


class KnownPosts:
    """A bounded memory of the posts we delivered, with their conversations.

    Listening mode lets an edit or a deletion through for the posts in it.
    Polling and listening both add what they deliver; the oldest are
    forgotten first. It lives in memory: after a restart, deletions of posts
    seen before it are not recognised.

    Args:
        size: How many posts to remember.
    """

    def __init__(self, *, size: int = 10_000) -> None:
        self._size = size
        self._posts: OrderedDict[str, Ref | None] = OrderedDict()
        self._rkeys: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._posts)

    def __contains__(self, uri: object) -> bool:
        return uri in self._posts

    def __repr__(self) -> str:
        return f"KnownPosts({len(self._posts)} of {self._size})"

    def add(self, uri: str, conversation: Ref | None = None) -> None:
        """Remember the post ``uri`` and the conversation it belongs to."""
        if uri not in self._posts:
            rkey = _rkey(uri)
            self._rkeys[rkey] = self._rkeys.get(rkey, 0) + 1
        self._posts[uri] = conversation
        self._posts.move_to_end(uri)
        while len(self._posts) > self._size:
            self._drop(next(iter(self._posts)))

    def conversation(self, uri: str) -> Ref | None:
        """The conversation of a known post, when known."""
        return self._posts.get(uri)

    def forget(self, uri: str) -> Ref | None:
        """Forget the post ``uri``; return its conversation."""
        if uri not in self._posts:
            return None
        return self._drop(uri)

    def may_hold(self, rkey: str) -> bool:
        """Cheap test: whether a known post has this record key."""
        return rkey in self._rkeys

    def _drop(self, uri: str) -> Ref | None:
        conversation = self._posts.pop(uri)
        rkey = _rkey(uri)
        left = self._rkeys.get(rkey, 1) - 1
        if left > 0:
            self._rkeys[rkey] = left
        else:
            self._rkeys.pop(rkey, None)
        return conversation


def _rkey(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _string_field(line: str, name: str) -> str | None:
    """The first ``"name":"value"`` string of a JSON line, read without parsing it."""
    marker = f'"{name}":'
    at = line.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    while start < len(line) and line[start] == " ":
        start += 1
    if start >= len(line) or line[start] != '"':
        return None
    end = line.find('"', start + 1)
    return line[start + 1 : end] if end > start else None


class Matched:
    """A post creation or update that passed the filter, with the raw line it came from."""

    __slots__ = ("event", "line")

    def __init__(self, event: JetstreamPostEvent, line: str) -> None:
        self.event = event
        self.line = line

    def __repr__(self) -> str:
        return f"Matched({self.operation} {self.uri})"

    @property
    def operation(self) -> Literal["create", "update"]:
        """``create`` or ``update``."""
        return self.event.commit.operation

    @property
    def uri(self) -> str:
        """The post's ``at://`` URI."""
        commit = self.event.commit
        return f"at://{self.event.did}/{commit.collection}/{commit.rkey}"


class Deleted:
    """The deletion of a post the filter knows."""

    __slots__ = ("line", "time_us", "uri")

    def __init__(self, uri: str, time_us: int, line: str) -> None:
        self.uri = uri
        self.time_us = time_us
        self.line = line

    def __repr__(self) -> str:
        return f"Deleted({self.uri})"


class JetstreamFilter:
    """Decides which Jetstream posts concern us.

    Args:
        did: Our account's DID.
        handle: Our handle (``@handle`` in a text counts as a mention).
        keywords: Words or phrases that make a post interesting, matched
            case-insensitively anywhere in the text.
        include_own: Keep posts written by our own account.
        known: Posts we delivered: their edits and deletions are kept.
    """

    def __init__(
        self,
        *,
        did: str | None,
        handle: str | None = None,
        keywords: Sequence[str] = (),
        include_own: bool = False,
        known: KnownPosts | None = None,
    ) -> None:
        self.did = did
        self.handle = handle.lower() if handle else None
        self.keywords = tuple(k.casefold() for k in keywords if k.strip())
        self.include_own = include_own
        self.known = known if known is not None else KnownPosts()
        self._uri_prefix = f"at://{did}/" if did else None
        needles = [*self.keywords]
        if did:
            needles.append(did.lower())
        if self.handle:
            needles.append(self.handle)
        # A needle that is not plain lower-case ASCII could match through a
        # case fold or an escape the byte test cannot see: parse every line then.
        self._needles = tuple(needles)
        self._byte_test = all(n.isascii() and n == n.lower() for n in needles)

    def __repr__(self) -> str:
        return (f"JetstreamFilter(did={self.did!r}, keywords={len(self.keywords)}, "
                f"known={len(self.known)})")

    def could_match(self, line: str) -> bool:
        """Cheap test: whether ``line`` may hold a post that concerns us."""
        if _COLLECTION not in line:
            return False
        if not self._needles:
            return False
        if self._byte_test and "\\u" not in line and (
            line.isascii() or FOLDS_TO_ASCII.search(line) is None
        ):
            lowered = line.lower()
            return any(needle in lowered for needle in self._needles)
        return True

    def matches(self, event: JetstreamPostEvent) -> bool:
        """Whether a parsed post concerns us (mention, reply, quote or keyword)."""
        if event.did == self.did and not self.include_own:
            return False
        record = event.commit.record
        if self.did is not None:
            for facet in record.facets:
                for feature in facet.features:
                    if feature.type == MENTION and feature.did == self.did:
                        return True
            prefix = self._uri_prefix
            if prefix is not None:
                reply = record.reply
                if reply is not None and (
                    reply.parent.uri.startswith(prefix) or reply.root.uri.startswith(prefix)
                ):
                    return True
                if _quotes(record.embed, prefix):
                    return True
        if not (self.handle or self.keywords):
            return False
        folded = record.text.casefold()
        if self.handle and f"@{self.handle}" in folded:
            return True
        return any(keyword in folded for keyword in self.keywords)

    def match_line(self, line: str | bytes) -> Matched | Deleted | None:
        """Parse and filter one Jetstream line; ``None`` when it is not for us.

        A creation is kept when the post concerns us (`matches`); an update
        when the post is known or the edited post concerns us; a deletion
        when the post is known.

        Raises:
            PayloadError: The line is a post event that does not parse.
        """
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        if _COLLECTION not in text:
            return None
        if self.known and self._may_be_known(text):
            found = self._known_change(text)
            if found is not None:
                return found
        if not self.could_match(text):
            return None
        event = post_event(text)
        if event is None or not self.matches(event):
            return None
        return Matched(event, text)

    def _may_be_known(self, line: str) -> bool:
        if _string_field(line, "operation") not in ("update", "delete"):
            return False
        rkey = _string_field(line, "rkey")
        return rkey is not None and self.known.may_hold(rkey)

    def _known_change(self, line: str) -> Matched | Deleted | None:
        """An update or deletion of a known post; ``None`` when it is not one."""
        try:
            general = JetstreamEvent.model_validate_json(line)
        except ValidationError as exc:
            raise PayloadError.from_validation(exc, network=NETWORK) from exc
        commit = general.commit
        if commit is None or commit.collection != POST:
            return None
        uri = f"at://{general.did}/{commit.collection}/{commit.rkey}"
        if uri not in self.known:
            return None
        if commit.operation == "delete":
            return Deleted(uri, general.time_us, line)
        event = post_event(line)
        return Matched(event, line) if event is not None else None


def post_event(line: str, *, path: str = "") -> JetstreamPostEvent | None:
    """Parse one Jetstream line as a post creation or update; ``None`` for any other event.

    Deletions, other collections, identity and account events give ``None``.

    Args:
        line: The JSON line.
        path: Where the line sits, put before the bad field's path in an error.

    Raises:
        PayloadError: The line is not a Jetstream event, or a post event that does not parse.
    """
    try:
        return JetstreamPostEvent.model_validate_json(line)
    except ValidationError as exc:
        try:
            general = JetstreamEvent.model_validate_json(line)
        except ValidationError:
            general = None
        commit = general.commit if general is not None else None
        if commit is not None and (commit.collection != POST or commit.operation == "delete"):
            return None  # a deletion, or another collection naming posts
        if general is not None and commit is None:
            return None  # an identity or account event
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc


def deleted_post(line: str, *, path: str = "") -> tuple[str, int] | None:
    """The URI and ``time_us`` of a post deletion; ``None`` for any other event.

    Raises:
        PayloadError: The line is not a Jetstream event.
    """
    try:
        general = JetstreamEvent.model_validate_json(line)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc
    commit = general.commit
    if commit is None or commit.collection != POST or commit.operation != "delete":
        return None
    return f"at://{general.did}/{commit.collection}/{commit.rkey}", general.time_us


def _quotes(embed: dict[str, Any] | None, prefix: str) -> bool:
    if not isinstance(embed, dict):
        return False
    inner = embed.get("record")
    if isinstance(inner, dict) and isinstance(inner.get("record"), dict):
        inner = inner["record"]  # recordWithMedia: {"record": {"record": strongRef}}
    return isinstance(inner, dict) and str(inner.get("uri", "")).startswith(prefix)


def jetstream_url(base: str, *, cursor: int | None) -> str:
    """The subscribe URL: posts only, resuming at ``cursor`` (``time_us``) when given."""
    url = httpx.URL(base)
    params: dict[str, str] = {"wantedCollections": "app.bsky.feed.post"}
    if cursor is not None:
        params["cursor"] = str(cursor)
    return str(url.copy_merge_params(params))


class _WebSocket:
    """A client WebSocket read on demand: wsproto frames over httpx's upgraded stream.

    Nothing runs in the background (no task group, no cancel scope held between
    calls), so it is safe to read from inside an async generator that its
    consumer may abandon at any ``yield``.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        # wsproto is needed only once listening: imported here, not with the adapter.
        from wsproto.connection import Connection, ConnectionType

        self._stream = stream
        self._conn = Connection(ConnectionType.CLIENT)
        self._parts: list[str] = []
        self._closed = False

    async def receive_text(self, *, wait: float | None = None) -> str | None:
        """The next text message; ``None`` when the server closed the connection cleanly.

        Args:
            wait: Seconds to wait for data before giving up with ``TimeoutError``
                (``None``: no limit). Nothing is lost: the next call goes on.

        Raises:
            TransientError: The connection dropped without a close frame, or
                the server closed it with an error code (1011, ...).
            TimeoutError: No data came within ``wait`` seconds.
        """
        import httpcore
        from wsproto.connection import ConnectionState
        from wsproto.events import CloseConnection, Ping, TextMessage

        while True:
            for event in self._conn.events():
                if isinstance(event, TextMessage):
                    self._parts.append(event.data)
                    if event.message_finished:
                        text = "".join(self._parts)
                        self._parts.clear()
                        return text
                elif isinstance(event, Ping):
                    await self._send(self._conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if self._conn.state is ConnectionState.REMOTE_CLOSING:
                        await self._send(self._conn.send(event.response()))
                    self._closed = True
                    if event.code not in _CLEAN_CLOSE:
                        raise TransientError(
                            f"Jetstream closed the connection (code {event.code})",
                            network=NETWORK,
                        )
                    return None
            try:
                with anyio.fail_after(wait):
                    data = await self._stream.read(_READ_SIZE)
            except httpcore.ReadError:
                data = b""
            if not data:
                raise TransientError("the Jetstream connection dropped", network=NETWORK)
            self._conn.receive_data(data)

    async def _send(self, data: bytes) -> None:
        import httpcore

        try:
            await self._stream.write(data)
        except httpcore.WriteError:
            self._closed = True

    async def close(self) -> None:
        """Say goodbye (a close frame) unless the connection is already closed."""
        from wsproto.connection import ConnectionState
        from wsproto.events import CloseConnection

        if not self._closed and self._conn.state is ConnectionState.OPEN:
            self._closed = True
            await self._send(self._conn.send(CloseConnection(code=1000)))


def _handshake_headers() -> tuple[dict[str, str], str]:
    key = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
    digest = hashlib.sha1((key + _WS_GUID).encode("ascii")).digest()  # noqa: S324 - RFC 6455
    expected = base64.b64encode(digest).decode("ascii")
    headers = {"Connection": "Upgrade", "Upgrade": "websocket",
               "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    return headers, expected


JetstreamItem = Matched | Deleted | Rejected | None
"""What `read_jetstream` yields besides ``time_us``: a kept post or deletion, an
event that could not be read, or ``None`` for a checkpoint."""


async def read_jetstream(
    api: ApiClient,
    base_url: str,
    *,
    cursor: int | None,
    keep: JetstreamFilter,
    checkpoint_every: int = 5000,
) -> AsyncGenerator[tuple[JetstreamItem, int | None], None]:
    """Yield ``(item, time_us)`` per kept post or deletion, ``(None, time_us)`` checkpoints.

    The first event of the connection comes as a checkpoint (the connection
    works), then one comes every ``checkpoint_every`` events that did not
    match, so the caller can store how far it read. A ``time_us`` that is not
    ``None`` means the connection works. A post event that
    does not parse comes as a `Rejected`, never stopping the stream. The
    iterator ends when the server closes the connection normally. The
    connection is opened through ``api`` (logged, errors mapped) but without
    its credentials: Jetstream is public, and our token stays home.

    Raises:
        TransientError: The connection failed or dropped.
        OmnichannelError: Jetstream refused the connection (a 4xx answer).
    """
    last = cursor
    skipped = 0
    started = False
    headers, expected = _handshake_headers()
    try:
        async with api.open_stream(
            "GET", jetstream_url(base_url, cursor=cursor), headers=headers,
            authenticated=False, bucket="jetstream",
        ) as response:
            if response.status_code != 101:
                raise TransientError(
                    f"Jetstream refused the WebSocket (HTTP {response.status_code})",
                    network=NETWORK, status=response.status_code)
            accept = response.headers.get("sec-websocket-accept")
            if accept is not None and accept != expected:
                raise TransientError("Jetstream answered a wrong WebSocket handshake",
                                     network=NETWORK)
            socket = _WebSocket(response.extensions["network_stream"])
            try:
                while True:
                    line = await socket.receive_text()
                    if line is None:
                        break
                    if not line:
                        continue
                    time_us = _time_us(line)
                    if time_us is not None:
                        last = time_us
                        if not started:
                            started = True
                            yield None, last
                    found: JetstreamItem = convert_item(keep.match_line, line, network=NETWORK)
                    if found is not None:
                        skipped = 0
                        yield found, last
                    elif last is not None:
                        skipped += 1
                        if skipped >= checkpoint_every:
                            skipped = 0
                            yield None, last
            finally:
                with anyio.CancelScope(shield=True):
                    await socket.close()
    except httpx.TransportError as exc:
        raise TransientError(
            f"the Jetstream connection failed ({type(exc).__name__})", network=NETWORK
        ) from None


def _time_us(line: str) -> int | None:
    marker = line.find('"time_us":')
    if marker < 0:
        return None
    start = marker + len('"time_us":')
    end = start
    while end < len(line) and (line[end].isdigit() or line[end] == " "):
        end += 1
    digits = line[start:end].strip()
    # A time_us is microseconds since 1970: 16 digits today, never more than 19.
    return int(digits) if digits.isdigit() and len(digits) <= 19 else None
