"""A stateful fake of Bluesky for tests and demos: PDS, chat proxy and Jetstream.

[`BlueskySandbox`][omnichannel_bluesky.sandbox.BlueskySandbox] serves the XRPC
methods the adapter uses, in the shapes recorded from ``bsky.social``
(``tests/vectors/bluesky/``): app-password sessions with expiring access
tokens and a refresh token, notifications, records, threads, handle
resolution, the chat service behind ``atproto-proxy``, and a Jetstream
``/subscribe`` WebSocket that sends the world's new, edited and deleted posts
(and any recorded events a test replays) as Jetstream v1 JSON. A customer's
like of our post (``customer_like``) is a ``like`` notification in the
recorded shape.

```python
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky.sandbox import BlueskySandbox

sandbox = BlueskySandbox(seed=7)
sandbox.customer_mention("my order 🚚 never came #help")
async with BlueskyAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as bsky:
    batch = await bsky.poll(None)
```

Where Bluesky's reference PDS has a quirk, the sandbox keeps it: a
``createRecord`` whose record key is taken answers ``500 InternalServerError``
(bluesky-social/atproto issues #3718 and #4725), which is why the adapter
checks for the existing record after a server error.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import re
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import httpcore
import httpx
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, TextMessage

from omnichannel.errors import PayloadError
from omnichannel.testing import (
    Account,
    DirectMessage,
    Facet,
    HandlerResult,
    Post,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    VirtualClock,
    route,
)
from omnichannel.testing.sandbox import AuthFailure, RateLimitWindow, RecordKind, SandboxASGI
from omnichannel.text import OffsetMap, count_graphemes, count_utf8_bytes

__all__ = ["BlueskySandbox"]

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_RKEY = re.compile(r"[A-Za-z0-9._:~-]{1,512}")
_POST = "app.bsky.feed.post"
_LIKE = "app.bsky.feed.like"
_CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_FEED_POLL = 0.01
_OPERATIONS = {"post.created": "create", "post.edited": "update", "post.deleted": "delete"}


def _tid(value: int) -> str:
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _untid(text: str) -> int | None:
    if len(text) != 13 or any(ch not in _TID_ALPHABET for ch in text):
        return None
    value = 0
    for ch in text:
        value = value * 32 + _TID_ALPHABET.index(ch)
    return value


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cid(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    encoded = base64.b32encode(digest).decode("ascii").lower().rstrip("=")
    return f"bafyrei{encoded[:52]}"


def _xrpc_error(name: str, message: str, status: int = 400) -> SandboxResponse:
    return SandboxResponse.json({"error": name, "message": message}, status=status)


class _Jetstream:
    """The events the sandbox's Jetstream sends: replayed lines, then the world's posts.

    Posts created, edited and deleted in the world go out as ``create``,
    ``update`` and ``delete`` commits, in the order they happened (direct
    posts are not on Jetstream).

    Attributes:
        drop_after: Drop the next connection after this many events (without
            a close frame in-process, with close code 1011 over loopback).
        close_after: Close the next connection cleanly (code 1000, as a server
            restart does) after this many events.
        drop_connections: Drop this many of the next connections at once,
            before any event.
        connections: WebSocket connections opened so far.
        handshakes: The headers of each connection's opening request
            (lower-case names), to check what a client sends.
    """

    def __init__(self, sandbox: BlueskySandbox) -> None:
        self._sandbox = sandbox
        self._entries: list[tuple[int, str]] = []
        self._seen_changes = 0
        self._checked = -1
        self._last_us = 0
        self._lock = threading.Lock()
        self.drop_after: int | None = None
        self.close_after: int | None = None
        self.drop_connections = 0
        self.connections = 0
        self.handshakes: list[dict[str, str]] = []

    def replay(self, lines: Sequence[str]) -> None:
        """Queue recorded Jetstream lines, sent as they are (their ``time_us`` included)."""
        with self._lock:
            for line in lines:
                if not line.strip():
                    continue
                time_us = _time_us_of(line)
                self._entries.append((time_us, line))
                self._last_us = max(self._last_us, time_us)

    def refresh(self) -> None:
        """Render the world's changes not yet on the feed (each record as it is now)."""
        sandbox = self._sandbox
        world = sandbox.world
        with world.lock, self._lock:
            if world.last_seq == self._checked:
                return
            self._checked = world.last_seq
            fresh = world.changes[self._seen_changes :]
            self._seen_changes = len(world.changes)
            for change in fresh:
                operation = _OPERATIONS.get(change.kind)
                post = world.posts.get(change.subject_id)
                if operation is None or post is None or post.visibility == "direct":
                    continue
                stamp = int(change.at.timestamp() * 1_000_000)
                self._last_us = max(self._last_us + 1, stamp)
                line = sandbox.render_jetstream(post, self._last_us, operation=operation)
                self._entries.append((self._last_us, line))

    def opened(self, headers: dict[str, str]) -> bool:
        """Count a new connection; whether it is to be dropped at once."""
        with self._lock:
            self.connections += 1
            self.handshakes.append(headers)
            if self.drop_connections > 0:
                self.drop_connections -= 1
                return True
            return False

    def take_drop(self, sent: int) -> bool:
        """Whether the connection that sent ``sent`` events drops now (once)."""
        with self._lock:
            if self.drop_after is not None and sent >= self.drop_after:
                self.drop_after = None
                return True
            return False

    def take_close(self, sent: int) -> bool:
        """Whether the connection that sent ``sent`` events closes cleanly now (once)."""
        with self._lock:
            if self.close_after is not None and sent >= self.close_after:
                self.close_after = None
                return True
            return False

    def entry(self, index: int) -> tuple[int, str] | None:
        """The ``index``-th event sent on every connection, if there is one yet."""
        self.refresh()
        with self._lock:
            return self._entries[index] if index < len(self._entries) else None


def _time_us_of(line: str) -> int:
    marker = line.find('"time_us":')
    if marker < 0:
        return 0
    digits = ""
    for ch in line[marker + len('"time_us":') :].lstrip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else 0


class _FeedStream(httpcore.AsyncNetworkStream):
    """The server end of an in-process Jetstream WebSocket, fed from the sandbox.

    Nothing runs in the background: each ``read`` waits until the feed has a
    new event and returns it as a WebSocket frame.
    """

    def __init__(self, feed: _Jetstream, cursor: int | None, *, drop: bool = False) -> None:
        self._feed = feed
        self._cursor = cursor
        self._index = 0
        self._conn = Connection(ConnectionType.SERVER)
        self._out = bytearray()
        self._sent = 0
        self._closed = False
        self._drop = drop

    async def read(
        self, max_bytes: int, timeout: float | None = None  # noqa: ASYNC109 - httpcore's API
    ) -> bytes:
        while not self._out:
            if self._closed:
                return b""
            if self._drop or self._feed.take_drop(self._sent):
                self._closed = True
                return b""  # the connection drops
            if self._feed.take_close(self._sent):
                self._closed = True  # nothing after the close frame
                self._out += self._conn.send(CloseConnection(code=1000))
                break
            entry = self._feed.entry(self._index)
            if entry is None:
                await anyio.sleep(_FEED_POLL)
                continue
            self._index += 1
            time_us, line = entry
            if self._cursor is not None and time_us <= self._cursor:
                continue
            self._sent += 1
            self._out += self._conn.send(TextMessage(line))
        data = bytes(self._out[:max_bytes])
        del self._out[:max_bytes]
        return data

    async def write(
        self, buffer: bytes, timeout: float | None = None  # noqa: ASYNC109 - httpcore's API
    ) -> None:
        self._conn.receive_data(buffer)
        for event in self._conn.events():
            if isinstance(event, Ping):
                self._out += self._conn.send(event.response())
            elif isinstance(event, CloseConnection):
                with contextlib.suppress(Exception):
                    self._out += self._conn.send(event.response())
                self._closed = True

    async def aclose(self) -> None:
        self._closed = True


class _BlueskyTransport(httpx.AsyncBaseTransport):
    """The sandbox's XRPC transport, plus in-process WebSockets for ``/subscribe``."""

    def __init__(self, sandbox: BlueskySandbox, http: httpx.AsyncBaseTransport) -> None:
        self._sandbox = sandbox
        self._http = http

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        upgrade = request.headers.get("upgrade", "").lower() == "websocket"
        if upgrade or request.url.scheme in ("ws", "wss"):
            return self._sandbox.open_jetstream(request)
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


class _BlueskyASGI:
    """The sandbox's ASGI app: XRPC over HTTP, Jetstream over WebSocket."""

    def __init__(self, sandbox: BlueskySandbox) -> None:
        self._sandbox = sandbox
        self._http = SandboxASGI(sandbox)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self._http(scope, receive, send)
            return
        await receive()  # websocket.connect
        if scope.get("path") != "/subscribe":
            await send({"type": "websocket.close", "code": 1008})
            return
        query = httpx.QueryParams(scope.get("query_string", b"").decode("latin-1"))
        cursor = query.get("cursor")
        feed = self._sandbox.jetstream
        drop = feed.opened({name.decode("latin-1").lower(): value.decode("latin-1")
                            for name, value in scope.get("headers", [])})
        await send({"type": "websocket.accept"})
        if drop:
            await send({"type": "websocket.close", "code": 1011})
            return
        index = 0
        last = int(cursor) if cursor and cursor.isdigit() else None
        sent = 0
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "websocket.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            while True:
                for ends, code in ((feed.take_drop, 1011), (feed.take_close, 1000)):
                    if ends(sent):
                        await send({"type": "websocket.close", "code": code})
                        tg.cancel_scope.cancel()
                        return
                entry = feed.entry(index)
                if entry is None:
                    await anyio.sleep(_FEED_POLL)
                    continue
                index += 1
                time_us, line = entry
                if last is not None and time_us <= last:
                    continue
                await send({"type": "websocket.send", "text": line})
                sent += 1


class BlueskySandbox(Sandbox):
    """Bluesky's PDS, chat service and Jetstream, in memory.

    Accounts have ``did:plc:`` ids and ``<name>.bsky.social`` handles; a post's
    id is its ``at://`` URI and its CID is in ``Post.extra["cid"]``. Facets the
    client sends are stored as it sent them (converted to ``str`` spans).

    Args:
        seed: Seeds ids, the app password and fault injection.
        clock: The virtual clock (a fresh one by default).
        our_handle: Our account's short name (default ``shop``: ``shop.bsky.social``).
        base_url: The URL adapters use in-process.

    Attributes:
        app_password: Our account's app password (``adapter_settings`` uses it).
        app_password_revoked: Set by ``revoke_credentials``: logging in fails.
        jetstream: The Jetstream feed: the world's post creations, edits and
            deletions as ``create``/``update``/``delete`` commits, after any
            recorded events ``replay(lines)`` queued. ``drop_after = n`` drops
            the next connection after ``n`` events, ``close_after = n`` closes
            it cleanly, ``drop_connections = n`` drops the next ``n`` at once;
            ``handshakes`` keeps each connection's request headers.
        chat_allowed: ``False`` answers chat calls as for an app password
            without direct-message access (``401 InvalidToken``, "Bad token scope").
    """

    network: ClassVar[str] = "bluesky"
    our_handle: ClassVar[str] = "shop"
    text_limit: ClassVar[int | None] = 300
    dm_text_limit: ClassVar[int | None] = 1000
    default_rate_limit: ClassVar[tuple[int, float]] = (3000, 300.0)
    create_routes: ClassVar[tuple[str, ...]] = (
        "POST /xrpc/com.atproto.repo.createRecord",
        "POST /xrpc/chat.bsky.convo.sendMessage",
    )
    access_lifetime: ClassVar[timedelta] = timedelta(hours=2)
    refresh_lifetime: ClassVar[timedelta] = timedelta(days=90)

    def __init__(
        self, *, seed: int = 0, clock: VirtualClock | None = None,
        our_handle: str | None = None, base_url: str | None = None,
    ) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self._tid_seq = 0
        self._tid_base = 0
        self.app_password = "-".join(
            "".join(self._random.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(4))
            for _ in range(4)
        )
        self.app_password_revoked = False
        self._sessions: list[tuple[str, str]] = []
        self._read_marks: dict[str, int] = {}
        self.jetstream = _Jetstream(self)
        self.chat_allowed = True
        super().__init__(seed=seed, clock=clock, our_handle=our_handle, base_url=base_url)

    def setup(self) -> None:
        """Give session calls their own rate-limit bucket (30 per 5 minutes)."""
        self.rate_limits.configure("session", limit=30, window=300.0)

    # identity and ids -------------------------------------------------------------

    def make_handle(self, name: str) -> str:
        """``alice`` becomes ``alice.bsky.social``; a name with a dot is kept."""
        return name if "." in name else f"{name}.bsky.social"

    def new_tid(self) -> str:
        """A fresh, increasing TID (record keys, chat ids, revs)."""
        with self._lock:
            if not self._tid_base:
                self._tid_base = int(self.clock.peek().timestamp() * 1_000_000)
            self._tid_seq += 1
            return _tid(((self._tid_base + self._tid_seq) << 10) | 7)

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """DIDs for accounts, ``at://`` URIs for posts and likes, TIDs otherwise."""
        if kind == "account":
            with self._lock:
                tail = "".join(self._random.choice(_B32) for _ in range(24))
            return f"did:plc:{tail}"
        if kind in ("post", "like") and author is not None:
            collection = _POST if kind == "post" else _LIKE
            return f"at://{author.id}/{collection}/{self.new_tid()}"
        return self.new_tid()

    def cid_of(self, post: Post) -> str:
        """The post's CID (kept in ``extra["cid"]``; changes when the text is edited)."""
        stamp = _iso(post.edited_at or post.created_at)
        cid = _cid(post.id, post.text, stamp)
        if post.extra.get("cid_of") != (post.text, stamp):
            post.extra["cid"] = cid
            post.extra["cid_of"] = (post.text, stamp)
        return str(post.extra["cid"])

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """Settings for ``BlueskyAdapter``: our handle, app password, service and Jetstream URL."""
        service = base_url or self.base_url
        url = httpx.URL(service)
        scheme = "wss" if url.scheme == "https" else "ws"
        return {
            "identifier": self.our_account.handle,
            "app_password": self.app_password,
            "service": service,
            "jetstream_url": str(url.copy_with(scheme=scheme, path="/subscribe")),
            # Offline and free to ask: poll often, so what a test writes comes at once.
            "poll_interval": 0.1,
        }

    # sessions and auth ------------------------------------------------------------

    def _issue_session(self, account: Account) -> tuple[str, str]:
        now = self.clock.peek()
        access = self.tokens.issue(account.id, expires_at=now + self.access_lifetime)
        refresh = self.tokens.issue(account.id, expires_at=now + self.refresh_lifetime,
                                    kind="refresh")
        with self._lock:
            self._sessions.append((access, refresh))
        if account.id == self.our_account.id:
            self.token = access
        return access, refresh

    def _render_session(self, account: Account, access: str, refresh: str) -> dict[str, object]:
        return {
            "did": account.id,
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": account.id,
                "alsoKnownAs": [f"at://{account.handle}"],
                "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                             "serviceEndpoint": self.base_url}],
            },
            "handle": account.handle,
            "emailConfirmed": True,
            "emailAuthFactor": False,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
        }

    def expire_token(self, token: str | None = None) -> None:
        """Expire a token; by default every access token of our account."""
        if token is not None:
            self.tokens.expire(token)
            return
        for access, _ in list(self._sessions):
            info = self.tokens.lookup(access)
            if info is not None and info.account_id == self.our_account.id:
                self.tokens.expire(access)
        self.tokens.expire(self.token)

    def revoke_credentials(self) -> None:
        """Revoke the app password and every session: logging in and refreshing fail."""
        self.app_password_revoked = True
        for access, refresh in list(self._sessions):
            self.tokens.revoke(access)
            self.tokens.revoke(refresh)
        self.tokens.revoke(self.token)

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """The PDS's answers: ``400 ExpiredToken``, ``401 AuthMissing`` or ``401 InvalidToken``."""
        if reason == "expired":
            return _xrpc_error("ExpiredToken", "Token has expired")
        if reason == "missing":
            return _xrpc_error("AuthMissing", "Authentication Required", 401)
        return _xrpc_error("InvalidToken", "Token could not be verified", 401)

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """``RateLimit-*`` headers, the reset in epoch seconds (as recorded)."""
        return {
            "RateLimit-Limit": str(window.limit),
            "RateLimit-Remaining": str(window.remaining),
            "RateLimit-Reset": str(window.reset_epoch),
            "RateLimit-Policy": f"{window.limit};w={round(window.window)}",
        }

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """``429 RateLimitExceeded`` with the ``RateLimit-*`` headers."""
        return SandboxResponse.json(
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, status=429,
            headers=self.rate_limit_headers(window),
        )

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """An XRPC ``InternalServerError`` (or the status's name)."""
        name = {502: "UpstreamFailure", 503: "NotEnoughResources", 504: "UpstreamTimeout"}
        return _xrpc_error(name.get(status, "InternalServerError"), "Internal Server Error",
                           status)

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """``501 MethodNotImplemented`` for an unknown XRPC method, as a PDS answers."""
        return _xrpc_error("MethodNotImplemented", "Method Not Implemented", 501)

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """``400 InvalidRequest`` with the message."""
        return _xrpc_error("InvalidRequest", message, status)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """The recorded refusal: ``Record/text must not be longer than 300 graphemes``."""
        if "chat.bsky" in request.path:
            return _xrpc_error(
                "InvalidRequest",
                f"Input/message/text must not be longer than {limit} graphemes")
        return _xrpc_error(
            "InvalidRequest",
            f"Invalid app.bsky.feed.post record: Record/text must not be longer than "
            f"{limit} graphemes")

    def count_text(self, text: str, *, private: bool = False) -> int:
        """Graphemes, as the lexicons' ``maxGraphemes`` counts."""
        return count_graphemes(text)

    def _check_bytes(self, text: str, *, private: bool) -> None:
        limit = 10000 if private else 3000
        if count_utf8_bytes(text) > limit:
            where = "Input/message/text" if private else "Record/text"
            raise SandboxAbort(_xrpc_error(
                "InvalidRequest", f"{where} must not be longer than {limit} characters"))

    # renderers ------------------------------------------------------------------------

    def render_profile(self, account: Account) -> dict[str, object]:
        """``app.bsky.actor.defs#profileViewBasic`` of an account."""
        return {
            "did": account.id,
            "handle": account.handle,
            "displayName": account.display_name,
            "avatar": f"https://cdn.bsky.app/img/avatar/plain/{account.id}/"
                      f"{_cid('avatar', account.id)}@jpeg",
            "associated": {"chat": {"allowIncoming": "all"}},
            "viewer": {"muted": False, "blockedBy": False},
            "labels": [],
            "createdAt": _iso(account.created_at),
        }

    def wire_facets(self, text: str, facets: Sequence[Facet]) -> list[dict[str, object]]:
        """``str``-span facets as ``app.bsky.richtext.facet`` objects (UTF-8 byte offsets)."""
        offsets = OffsetMap(text)
        out: list[dict[str, object]] = []
        for facet in facets:
            feature: dict[str, object]
            if facet.kind == "mention":
                if not facet.account_id:
                    continue
                feature = {"$type": "app.bsky.richtext.facet#mention", "did": facet.account_id}
            elif facet.kind == "link":
                feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
            else:
                feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
            out.append({
                "$type": "app.bsky.richtext.facet",
                "index": {"byteStart": offsets.index_to_utf8(facet.start),
                          "byteEnd": offsets.index_to_utf8(facet.end)},
                "features": [feature],
            })
        return out

    def render_record(self, post: Post) -> dict[str, object]:
        """The ``app.bsky.feed.post`` record of a post."""
        record: dict[str, object] = {
            "$type": _POST,
            "createdAt": _iso(post.created_at),
            "langs": ["en"],
            "text": post.text,
        }
        sent = post.extra.get("facets")
        facets = sent if isinstance(sent, list) else self.wire_facets(post.text, post.facets)
        if facets:
            record["facets"] = facets
        if post.in_reply_to is not None:
            parent = self.world.post(post.in_reply_to)
            root = self.world.post(post.root)
            record["reply"] = {
                "root": {"cid": self.cid_of(root), "uri": root.id},
                "parent": {"cid": self.cid_of(parent), "uri": parent.id},
            }
        return record

    def render_post_view(self, post: Post) -> dict[str, object]:
        """``app.bsky.feed.defs#postView`` of a post."""
        return {
            "uri": post.id,
            "cid": self.cid_of(post),
            "author": self.render_profile(self.world.account(post.author_id)),
            "record": self.render_record(post),
            "replyCount": len(self.world.replies_to(post.id)),
            "repostCount": 0,
            "likeCount": sum(1 for like in self.world.likes if like.post_id == post.id),
            "quoteCount": 0,
            "indexedAt": _iso(post.created_at),
            "labels": [],
        }

    def render_jetstream(self, post: Post, time_us: int, *, operation: str = "create") -> str:
        """A Jetstream v1 ``commit`` event creating, updating or deleting ``post``.

        A deletion carries no record and no cid, as recorded.
        """
        did, collection, rkey = post.id.removeprefix("at://").split("/")
        commit: dict[str, object] = {
            "rev": self.new_tid(),
            "operation": operation,
            "collection": collection,
            "rkey": rkey,
        }
        if operation != "delete":
            commit["record"] = self.render_record(post)
            commit["cid"] = self.cid_of(post)
        event = {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"))

    def _rev(self, seq: int) -> str:
        return _tid(seq)

    def render_message(self, message: DirectMessage) -> dict[str, object]:
        """``chat.bsky.convo.defs#messageView`` (or ``#deletedMessageView``)."""
        if message.deleted:
            return {
                "$type": "chat.bsky.convo.defs#deletedMessageView",
                "id": message.id, "rev": self._rev(message.seq),
                "sender": {"did": message.sender_id}, "sentAt": _iso(message.created_at),
            }
        view: dict[str, object] = {
            "$type": "chat.bsky.convo.defs#messageView",
            "id": message.id,
            "rev": self._rev(message.seq),
            "sender": {"did": message.sender_id},
            "text": message.text,
            "reactions": list(message.extra.get("reactions", [])),  # type: ignore[call-overload]
            "sentAt": _iso(message.created_at),
        }
        sent = message.extra.get("facets")
        facets = sent if isinstance(sent, list) else self.wire_facets(message.text,
                                                                       message.facets)
        if facets:
            view["facets"] = facets
        return view

    def render_convo(self, convo_id: str) -> dict[str, object]:
        """``chat.bsky.convo.defs#convoView`` as our account sees it."""
        convo = self.world.conversations[convo_id]
        us = self.our_account.id
        read = self._read_marks.get(convo.id, 0)
        unread = sum(1 for m in convo.messages
                     if m.sender_id != us and m.seq > read and not m.deleted)
        view: dict[str, object] = {
            "id": convo.id,
            "rev": self._rev(max([m.seq for m in convo.messages], default=0)),
            "members": [self.render_profile(self.world.account(m)) for m in convo.members],
            "muted": False,
            "status": "accepted",
            "unreadCount": unread,
        }
        if convo.messages:
            view["lastMessage"] = self.render_message(convo.messages[-1])
        return view

    # XRPC: server and identity ----------------------------------------------------------

    @route("POST", "/xrpc/com.atproto.server.createSession", auth=False, rate_limit="session")
    def create_session(self, request: SandboxRequest) -> HandlerResult:
        """Log in with a handle or DID and an app password."""
        identifier = self.require(request, "identifier")
        password = self.require(request, "password")
        account = (self.world.accounts.get(identifier)
                   or self.world.account_by_handle(identifier, exact=True))
        if (account is None or account.id != self.our_account.id
                or password != self.app_password or self.app_password_revoked):
            return _xrpc_error("AuthenticationRequired", "Invalid identifier or password", 401)
        access, refresh = self._issue_session(account)
        return self._render_session(account, access, refresh)

    @route("POST", "/xrpc/com.atproto.server.refreshSession", auth=False, rate_limit="session")
    def refresh_session(self, request: SandboxRequest) -> HandlerResult:
        """Trade a refresh token for new tokens (the old refresh token stops working)."""
        state, info = self.tokens.check(request.bearer(), kind="refresh")
        if state == "expired":
            return _xrpc_error("ExpiredToken", "Token has expired")
        if state != "valid" or info is None:
            return _xrpc_error("InvalidToken", "Token could not be verified", 401)
        self.tokens.revoke(info.token)
        account = self.world.account(info.account_id)
        access, refresh = self._issue_session(account)
        return self._render_session(account, access, refresh)

    @route("GET", "/xrpc/com.atproto.identity.resolveHandle", auth=False)
    def resolve_handle(self, request: SandboxRequest) -> HandlerResult:
        """Resolve a handle to its DID."""
        handle = self.require(request, "handle")
        account = self.world.account_by_handle(handle, exact=True)
        if account is None:
            return _xrpc_error("InvalidRequest", "Unable to resolve handle")
        return {"did": account.id}

    # XRPC: notifications, threads ------------------------------------------------------

    @route("GET", "/xrpc/app.bsky.notification.listNotifications")
    def list_notifications(self, request: SandboxRequest) -> HandlerResult:
        """Our notifications, newest first, paged by an opaque cursor."""
        assert request.account is not None  # noqa: S101 - auth=True
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        reasons = set(request.query.get_list("reasons")) or {"mention", "reply", "like"}
        cursor = request.query.get("cursor")
        before = int(cursor) if cursor and cursor.isdigit() else None
        items = [
            n for n in reversed(self.world.notifications_for(request.account))
            if n.kind in reasons and (before is None or n.seq < before)
        ]
        page, rest = items[:limit], items[limit:]
        out = []
        for n in page:
            rendered = self._render_notification(n.kind, n.actor_id, n.subject_id,
                                                 n.created_at, n.read)
            if rendered is not None:
                out.append(rendered)
        body: dict[str, object] = {"notifications": out, "priority": False}
        if rest and page:
            body["cursor"] = str(page[-1].seq)
        return body

    def _render_notification(
        self, kind: str, actor_id: str, subject_id: str, when: datetime, read: bool
    ) -> dict[str, object] | None:
        actor = self.render_profile(self.world.account(actor_id))
        base: dict[str, object] = {"author": actor, "reason": kind, "isRead": read,
                                   "indexedAt": _iso(when), "labels": []}
        if kind in ("mention", "reply"):
            post = self.world.posts.get(subject_id)
            if post is None or post.deleted:
                return None
            base.update(uri=post.id, cid=self.cid_of(post), record=self.render_record(post))
            if kind == "reply" and post.in_reply_to:
                base["reasonSubject"] = post.in_reply_to
            return base
        if kind == "like":
            like = next((lk for lk in self.world.likes
                         if lk.post_id == subject_id and lk.account_id == actor_id), None)
            if like is None:
                return None
            post = self.world.post(subject_id)
            base.update(
                uri=like.id, cid=_cid(like.id), reasonSubject=post.id,
                record={"$type": _LIKE, "createdAt": _iso(like.created_at),
                        "subject": {"cid": self.cid_of(post), "uri": post.id}},
            )
            return base
        return None

    @route("GET", "/xrpc/app.bsky.feed.getPostThread")
    def get_post_thread(self, request: SandboxRequest) -> HandlerResult:
        """A post with its parents and nested replies."""
        uri = self.require(request, "uri")
        post = self.world.posts.get(uri)
        if post is None or post.deleted:
            return _xrpc_error("NotFound", f"Post not found: {uri}")
        return {"thread": self._thread_node(post, up=True, down=True)}

    def _thread_node(self, post: Post, *, up: bool, down: bool) -> dict[str, object]:
        node: dict[str, object] = {"$type": "app.bsky.feed.defs#threadViewPost",
                                   "post": self.render_post_view(post)}
        if up and post.in_reply_to:
            parent = self.world.post(post.in_reply_to)
            node["parent"] = (
                {"$type": "app.bsky.feed.defs#notFoundPost", "uri": parent.id, "notFound": True}
                if parent.deleted else self._thread_node(parent, up=True, down=False)
            )
        if down:
            node["replies"] = [self._thread_node(r, up=False, down=True)
                               for r in self.world.replies_to(post.id) if not r.deleted]
        return node

    # XRPC: records ----------------------------------------------------------------------

    def _our_repo(self, request: SandboxRequest, repo: str | None) -> Account:
        assert request.account is not None  # noqa: S101 - auth=True
        if repo not in (request.account.id, request.account.handle):
            raise SandboxAbort(_xrpc_error("AuthenticationRequired", "Authentication Required",
                                           401))
        return request.account

    @route("POST", "/xrpc/com.atproto.repo.createRecord")
    def create_record(self, request: SandboxRequest) -> HandlerResult:
        """Create a post or a like; a taken record key answers 500, as the reference PDS does."""
        body = request.data()
        account = self._our_repo(request, request.field("repo"))
        collection = self.require(request, "collection")
        record = body.get("record")
        if not isinstance(record, dict):
            return _xrpc_error("InvalidRequest", "Input must have the property \"record\"")
        rkey = request.field("rkey") or self.new_tid()
        if not _RKEY.fullmatch(rkey) or rkey in (".", ".."):
            return _xrpc_error("InvalidRequest", f"Invalid record key: {rkey}")
        uri = f"at://{account.id}/{collection}/{rkey}"
        taken = uri in self.world.posts or any(like.id == uri for like in self.world.likes)
        if taken:
            return _xrpc_error("InternalServerError", "Internal Server Error", 500)
        if collection == _POST:
            cid = self._create_post(request, account, uri, record)
        elif collection == _LIKE:
            cid = self._create_like(account, uri, record)
        else:
            return _xrpc_error("InvalidRequest", f"Unsupported collection: {collection}")
        return {"uri": uri, "cid": cid,
                "commit": {"cid": _cid("commit", uri), "rev": self.new_tid()},
                "validationStatus": "valid"}

    def _create_post(
        self, request: SandboxRequest, account: Account, uri: str, record: dict[str, Any]
    ) -> str:
        text = record.get("text")
        if not isinstance(text, str) or not isinstance(record.get("createdAt"), str):
            raise SandboxAbort(_xrpc_error(
                "InvalidRequest", "Invalid app.bsky.feed.post record: Record must have the "
                "properties \"text\" and \"createdAt\""))
        self.check_text(request, text)
        self._check_bytes(text, private=False)
        facets = self._facets_from_wire(text, record.get("facets"))
        parent: str | None = None
        reply = record.get("reply")
        if isinstance(reply, dict):
            ref = reply.get("parent")
            parent = ref.get("uri") if isinstance(ref, dict) else None
            if not isinstance(parent, str) or parent not in self.world.posts:
                raise SandboxAbort(_xrpc_error("InvalidRequest",
                                               f"Could not locate record: {parent}"))
        post = self.world.add_post(
            account, text, in_reply_to=parent, id=uri, facets=facets,
            extra={"facets": record.get("facets") or []},
        )
        return self.cid_of(post)

    def _create_like(self, account: Account, uri: str, record: dict[str, Any]) -> str:
        subject = record.get("subject")
        target = subject.get("uri") if isinstance(subject, dict) else None
        if not isinstance(target, str) or target not in self.world.posts:
            raise SandboxAbort(_xrpc_error("InvalidRequest",
                                           f"Could not locate record: {target}"))
        like = self.world.like(account, target, id=uri)
        return _cid(like.id)

    def _facets_from_wire(self, text: str, facets: object) -> tuple[Facet, ...]:
        if not isinstance(facets, list):
            return ()
        offsets = OffsetMap(text)
        out: list[Facet] = []
        for facet in facets:
            try:
                index = facet["index"]
                start = offsets.utf8_to_index(int(index["byteStart"]))
                end = offsets.utf8_to_index(int(index["byteEnd"]))
                feature = facet["features"][0]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise SandboxAbort(_xrpc_error(
                    "InvalidRequest", f"Invalid facet ({type(exc).__name__})")) from None
            except PayloadError:
                raise SandboxAbort(_xrpc_error(
                    "InvalidRequest", "Invalid facet: offsets split a character")) from None
            kind = str(feature.get("$type", ""))
            if kind.endswith("#mention"):
                did = str(feature.get("did"))
                shown = text[start:end].lstrip("@")
                out.append(Facet("mention", start, end, shown, did))
            elif kind.endswith("#link"):
                out.append(Facet("link", start, end, str(feature.get("uri"))))
            elif kind.endswith("#tag"):
                out.append(Facet("hashtag", start, end, str(feature.get("tag"))))
        return tuple(out)

    @route("GET", "/xrpc/com.atproto.repo.getRecord")
    def get_record(self, request: SandboxRequest) -> HandlerResult:
        """A post or like record by repo, collection and record key."""
        repo = self.require(request, "repo")
        collection = self.require(request, "collection")
        rkey = self.require(request, "rkey")
        account = self.world.accounts.get(repo) or self.world.account_by_handle(repo,
                                                                                  exact=True)
        uri = f"at://{account.id if account else repo}/{collection}/{rkey}"
        post = self.world.posts.get(uri)
        if post is not None and not post.deleted:
            return {"uri": uri, "cid": self.cid_of(post), "value": self.render_record(post)}
        like = next((lk for lk in self.world.likes if lk.id == uri), None)
        if like is not None:
            target = self.world.post(like.post_id)
            return {"uri": uri, "cid": _cid(like.id), "value": {
                "$type": _LIKE, "createdAt": _iso(like.created_at),
                "subject": {"uri": target.id, "cid": self.cid_of(target)}}}
        return _xrpc_error("RecordNotFound", f"Could not locate record: {uri}")

    @route("POST", "/xrpc/com.atproto.repo.deleteRecord")
    def delete_record(self, request: SandboxRequest) -> HandlerResult:
        """Delete one of our posts or likes (succeeds when it is already gone)."""
        account = self._our_repo(request, request.field("repo"))
        collection = self.require(request, "collection")
        rkey = self.require(request, "rkey")
        uri = f"at://{account.id}/{collection}/{rkey}"
        if uri in self.world.posts:
            self.world.delete_post(uri)
        like = next((lk for lk in self.world.likes if lk.id == uri), None)
        if like is not None:
            self.world.unlike(account, like.post_id, reaction=like.reaction)
        return {"commit": {"cid": _cid("commit", uri, "delete"), "rev": self.new_tid()}}

    # chat ------------------------------------------------------------------------------

    def _chat(self, request: SandboxRequest) -> Account:
        if not self.chat_allowed:
            raise SandboxAbort(_xrpc_error("InvalidToken", "Bad token scope", 401))
        if request.headers.get("atproto-proxy") != _CHAT_PROXY:
            raise SandboxAbort(_xrpc_error(
                "InvalidRequest", "chat.bsky.* methods need the header "
                f"atproto-proxy: {_CHAT_PROXY}"))
        assert request.account is not None  # noqa: S101 - auth=True
        return request.account

    def _convo(self, request: SandboxRequest, account: Account) -> str:
        convo_id = self.require(request, "convoId")
        convo = self.world.conversations.get(convo_id)
        if convo is None or account.id not in convo.members:
            raise SandboxAbort(_xrpc_error("InvalidConvo", "Convo not found"))
        return convo_id

    def _my_messages(self, account: Account) -> list[DirectMessage]:
        return sorted(
            (m for c in self.world.conversations.values() if account.id in c.members
             for m in c.messages),
            key=lambda m: m.seq,
        )

    @route("GET", "/xrpc/chat.bsky.convo.getLog")
    def get_log(self, request: SandboxRequest) -> HandlerResult:
        """Chat events after the cursor; without one, no events and the current cursor."""
        account = self._chat(request)
        cursor = request.query.get("cursor")
        now = self._rev(self.world.last_seq)
        if not cursor:
            return {"cursor": now, "logs": []}
        after = _untid(cursor) or 0
        logs: list[dict[str, object]] = []
        for change in self.world.changes:
            if change.seq <= after or change.kind not in ("message.created", "message.deleted"):
                continue
            try:
                message = self.world.message(change.subject_id)
            except KeyError:
                continue
            if account.id not in self.world.conversations[message.conversation_id].members:
                continue
            kind = "logCreateMessage" if change.kind == "message.created" else "logDeleteMessage"
            entry: dict[str, object] = {
                "$type": f"chat.bsky.convo.defs#{kind}",
                "rev": self._rev(change.seq),
                "convoId": message.conversation_id,
                "message": self.render_message(message),
            }
            if kind == "logCreateMessage":
                entry["relatedProfiles"] = [
                    self.render_profile(self.world.account(message.sender_id))]
            logs.append(entry)
            if len(logs) >= 100:
                return {"cursor": self._rev(change.seq), "logs": logs}
        return {"cursor": now, "logs": logs}

    @route("GET", "/xrpc/chat.bsky.convo.listConvos")
    def list_convos(self, request: SandboxRequest) -> HandlerResult:
        """Our conversations, most recent first."""
        account = self._chat(request)
        convos = [c for c in self.world.conversations.values() if account.id in c.members]
        convos.sort(key=lambda c: max([m.seq for m in c.messages], default=0), reverse=True)
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        return {"convos": [self.render_convo(c.id) for c in convos[:limit]]}

    @route("GET", "/xrpc/chat.bsky.convo.getConvo")
    def get_convo(self, request: SandboxRequest) -> HandlerResult:
        """One conversation."""
        account = self._chat(request)
        return {"convo": self.render_convo(self._convo(request, account))}

    @route("GET", "/xrpc/chat.bsky.convo.getConvoForMembers")
    def get_convo_for_members(self, request: SandboxRequest) -> HandlerResult:
        """The conversation between these members, created when there is none."""
        account = self._chat(request)
        members = request.query.get_list("members")
        if account.id not in members:
            members.append(account.id)
        for member in members:
            if member not in self.world.accounts:
                return _xrpc_error("InvalidRequest", f"Unknown member: {member}")
        convo = self.world.conversation_between(*members, id=self.new_tid())
        assert convo is not None  # noqa: S101 - create=True
        return {"convo": self.render_convo(convo.id)}

    @route("GET", "/xrpc/chat.bsky.convo.getMessages")
    def get_messages(self, request: SandboxRequest) -> HandlerResult:
        """A conversation's messages, newest first."""
        account = self._chat(request)
        convo = self.world.conversations[self._convo(request, account)]
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        cursor = request.query.get("cursor")
        before = _untid(cursor) if cursor else None
        items = [m for m in reversed(convo.messages) if before is None or m.seq < before]
        page = items[:limit]
        body: dict[str, object] = {"messages": [self.render_message(m) for m in page]}
        if len(items) > limit:
            body["cursor"] = self._rev(page[-1].seq)
        return body

    @route("POST", "/xrpc/chat.bsky.convo.sendMessage")
    def send_message(self, request: SandboxRequest) -> HandlerResult:
        """Send a message (1000 graphemes, 10000 bytes)."""
        account = self._chat(request)
        convo_id = self._convo(request, account)
        message = request.data().get("message")
        text = message.get("text") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not isinstance(text, str):
            return _xrpc_error("InvalidRequest", "Input/message must have the property \"text\"")
        self.check_text(request, text, private=True)
        self._check_bytes(text, private=True)
        facets = self._facets_from_wire(text, message.get("facets"))
        sent = self.world.add_message(account, convo_id, text, facets=facets,
                                      extra={"facets": message.get("facets") or []})
        view = self.render_message(sent)
        view.pop("$type", None)
        return view

    @route("POST", "/xrpc/chat.bsky.convo.addReaction")
    def add_reaction(self, request: SandboxRequest) -> HandlerResult:
        """React to a message with an emoji."""
        account = self._chat(request)
        self._convo(request, account)
        message_id = self.require(request, "messageId")
        value = self.require(request, "value")
        try:
            message = self.world.message(message_id)
        except KeyError:
            return _xrpc_error("InvalidRequest", "Message not found")
        reactions = message.extra.setdefault("reactions", [])
        assert isinstance(reactions, list)  # noqa: S101 - only we write it
        if not any(r["value"] == value and r["sender"]["did"] == account.id for r in reactions):
            reactions.append({"createdAt": _iso(self.clock.now()), "value": value,
                              "sender": {"did": account.id}})
        return {"message": self.render_message(message)}

    @route("POST", "/xrpc/chat.bsky.convo.deleteMessageForSelf")
    def delete_message_for_self(self, request: SandboxRequest) -> HandlerResult:
        """Delete a message (for everyone, in this sandbox)."""
        account = self._chat(request)
        self._convo(request, account)
        message_id = self.require(request, "messageId")
        try:
            message = self.world.delete_message(message_id)
        except KeyError:
            return _xrpc_error("InvalidRequest", "Message not found")
        return self.render_message(message)

    @route("POST", "/xrpc/chat.bsky.convo.updateRead")
    def update_read(self, request: SandboxRequest) -> HandlerResult:
        """Mark a conversation read."""
        account = self._chat(request)
        convo_id = self._convo(request, account)
        self._read_marks[convo_id] = self.world.last_seq
        return {"convo": self.render_convo(convo_id)}

    # Jetstream and exposure ---------------------------------------------------------------

    def open_jetstream(self, request: httpx.Request) -> httpx.Response:
        """Answer a WebSocket upgrade to ``/subscribe`` in-process (the transport calls it)."""
        if request.url.path != "/subscribe":
            return httpx.Response(404, request=request)
        cursor = request.url.params.get("cursor")
        key = request.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(
            hashlib.sha1((key + _WS_GUID).encode("ascii")).digest()  # noqa: S324 - RFC 6455
        ).decode("ascii")
        drop = self.jetstream.opened({name.lower(): value
                                      for name, value in request.headers.items()})
        stream = _FeedStream(self.jetstream, int(cursor) if cursor and cursor.isdigit() else None,
                             drop=drop)
        return httpx.Response(
            101,
            headers={"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Accept": accept},
            extensions={"network_stream": stream},
            request=request,
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport answering XRPC and Jetstream WebSockets in-process."""
        return _BlueskyTransport(self, super().transport())

    @property
    def asgi(self) -> Any:
        """The sandbox as an ASGI app: XRPC over HTTP and ``/subscribe`` over WebSocket.

        ``serve()`` and ``serve_in_thread()`` serve it (uvicorn, WebSockets on).
        """
        return _BlueskyASGI(self)

    # customer side ----------------------------------------------------------------------

    def customer_edit(self, record: Post | DirectMessage | str, text: str) -> Post:
        """A customer edits a post: Jetstream sends the creation as it was, then the update.

        Raises:
            KeyError: No such post.
        """
        self.jetstream.refresh()  # a creation not rendered yet keeps its first text
        return super().customer_edit(record, text)

    def customer_dm(self, text: str, *, author: Account | None = None) -> DirectMessage:
        """A customer writes to us in chat."""
        who = author or self.customer()
        convo = self.world.conversation_between(who, self.our_account, id=self.new_tid())
        assert convo is not None  # noqa: S101 - create=True
        return self.world.add_message(who, convo.id, text)
