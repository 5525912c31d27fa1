"""The Mastodon adapter: notifications in (polled or streamed), statuses out."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any, Literal

import anyio
import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator

from omnichannel._lazy import lazy_attribute
from omnichannel.actions import Delete, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import Adapter, AdapterSettings, Batch, Rejected, convert_item, decode_json
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    CapabilityNotSupported,
    ConfigurationError,
    NotFound,
    PayloadError,
    RequestRejected,
    TextTooLong,
    TransientError,
)
from omnichannel.events import Event, MessageDeleted
from omnichannel.http import ApiClient, BearerAuth, RetryPolicy, open_client, parse_mastodon_headers
from omnichannel.model import Mention, Message, Ref, Visibility
from omnichannel.sources import PollSource, Source, StreamSource
from omnichannel.text import TextRule

from ._convert import (
    NETWORK,
    Converter,
    ThreadRoots,
    parse,
    parse_notification,
    parse_status,
    person,
    status_text,
    to_mastodon_visibility,
    with_decoded_raw,
)
from ._errors import MastodonErrors, is_too_long
from ._replay import parse_payload
from ._stream import ServerEvent, aiter_events
from ._wire import (
    CONVERSATIONS,
    Account,
    Context,
    Instance,
    InstanceV1,
    Status,
)

__all__ = ["MastodonAdapter", "MastodonSettings"]

logger = logging.getLogger("omnichannel.mastodon")

_STREAM_PATHS = {
    "user": "/api/v1/streaming/user",
    "user:notification": "/api/v1/streaming/user/notification",
}
# The cursor of an empty inbox: every notification id is after it.
_BEGINNING = "0"
# A mention in text we compare: @user or @user@domain.
_ANY_MENTION = re.compile(r"(?<![\w@])@[\w.-]+(?:@[\w-]+(?:\.[\w-]+)+)?")


class MastodonSettings(AdapterSettings):
    """How to reach one Mastodon account.

    Attributes:
        base_url: The instance, e.g. ``https://mastodon.social``.
        access_token: A user access token of the bot account (scopes, see the
            how-to: ``read:accounts read:notifications read:statuses
            write:statuses write:favourites``).
        notification_types: Notification kinds to read: ``mention`` (messages
            and DMs), ``favourite`` (likes on our statuses), ``update`` (edits
            of statuses we interacted with).
        page_size: Notifications per poll (Mastodon allows up to 80).
        stream: Which streaming timeline to follow: ``user`` (notifications,
            edits and deletions) or ``user:notification`` (notifications only).
        streaming_url: The streaming host, when it must differ from what the
            instance announces in ``configuration.urls.streaming``.
        stream_read_timeout: Seconds without a byte (Mastodon sends a
            heartbeat every few seconds) before the stream counts as dropped.
        stream_reconnects: Reconnections in a row before ``stream`` gives up.
        resolve_threads: Look up the thread root of replies whose root is not
            known yet (one ``/context`` request each), so every status of a
            thread lands in the same conversation.
        poll_interval: Seconds between polls when nothing new came (default 30).
    """

    base_url: str
    access_token: SecretStr
    notification_types: tuple[str, ...] = ("mention", "favourite", "update")
    page_size: int = Field(default=40, ge=1, le=80)
    stream: Literal["user", "user:notification"] = "user"
    streaming_url: str | None = None
    stream_read_timeout: float = Field(default=90.0, gt=0)
    stream_reconnects: int = Field(default=5, ge=0)
    resolve_threads: bool = True

    @field_validator("base_url", "streaming_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_base(value)


def _http_base(value: str) -> str:
    """An http(s) base URL without a trailing slash (``ws``/``wss`` read as ``http``/``https``).

    Raises:
        ValueError: ``value`` is not an http(s) or ws(s) URL with a host.
    """
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if url.scheme in ("ws", "wss"):
        url = url.copy_with(scheme="http" if url.scheme == "ws" else "https")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http(s) URL such as https://mastodon.example")
    return str(url).rstrip("/")


_MAX_ID = 256

def _comparable(text: str) -> str:
    """Text with mentions dropped and whitespace folded, to compare what we sent."""
    return " ".join(_ANY_MENTION.sub(" ", text).split())


def _mentions(text: str, handle: str) -> bool:
    """Whether ``text`` @mentions ``handle`` (any case), not as part of a longer name."""
    if text.isascii() and handle.isascii():
        return _mentions_ascii(text, handle)
    return _mention_pattern(handle).search(text) is not None


@lru_cache(maxsize=256)
def _mention_pattern(handle: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@])@{re.escape(handle)}(?![\w@]|\.\w)", re.IGNORECASE)


def _word(char: str) -> bool:
    """``\\w`` for one ASCII character."""
    return char.isalnum() or char == "_"


def _mentions_ascii(text: str, handle: str) -> bool:
    """`_mentions` for ASCII text and handle, without compiling a pattern per handle.

    In ASCII, ignoring case is comparing lower case, and a word character is a
    letter, a digit or ``_``: the same test as the pattern's, found by ``find``.
    """
    lowered, wanted = text.lower(), "@" + handle.lower()
    at = lowered.find(wanted)
    while at >= 0:
        end = at + len(wanted)
        after = text[end : end + 2]
        if not (at > 0 and (_word(text[at - 1]) or text[at - 1] == "@")) and not (
            after[:1] == "@" or (after and _word(after[0]))
            or (after[:1] == "." and len(after) == 2 and _word(after[1]))
        ):
            return True
        at = lowered.find(wanted, at + 1)
    return False


def _raw_id(item: object) -> str | None:
    """The ``id`` of a decoded notification, when it can be a cursor.

    It goes into the next request's URL (``min_id``): an id no URL can carry
    (a control character, a lone surrogate, thousands of characters) would
    fail every poll after it.
    """
    if isinstance(item, Mapping):
        found = item.get("id")
        if (isinstance(found, str) and found and len(found) <= _MAX_ID
                and found.isprintable() and found.isascii()):
            return found
    return None


def _min_id(response: httpx.Response) -> str | None:
    """The forward cursor of Mastodon's ``Link: <...?min_id=...>; rel="prev"`` header."""
    prev = response.links.get("prev")
    if not prev or not prev.get("url"):
        return None
    params = httpx.URL(prev["url"]).params
    found: str | None = params.get("min_id") or params.get("since_id")
    return found


class MastodonAdapter(Adapter):
    """Mastodon through its REST and streaming APIs.

    Inbound, mention notifications (DMs are direct statuses that mention us)
    become `MessageReceived`, favourites `ReactionAdded`, edits
    `MessageUpdated` and streamed deletions `MessageDeleted`. Event ids name
    the status, so polling and streaming agree. Outbound, replies go in the
    thread with the customer's @mention, private replies as direct statuses,
    each with an ``Idempotency-Key``.

    After `open`, ``capabilities.text`` follows the instance's
    ``max_characters`` and ``characters_reserved_per_url``.

    Args:
        settings: A `MastodonSettings` (or a mapping to validate).
        transport: An httpx transport to use instead of the network.
        retry: The HTTP retry policy (default: the HTTP layer's).

    Attributes:
        instance: What ``/api/v2/instance`` said, after `open`.
    """

    network = NETWORK
    capabilities = lazy_attribute(lambda: Capabilities(  # built on first use, not at import
        text=TextRule.mastodon(limit=500, url_length=23),
        private_reply=True,
        reactions=("like",),
        hide=False,
        delete=True,
        edit=False,
        inbound=frozenset({"poll", "stream"}),
        native_idempotency=True,
        inbound_edits=True,
        inbound_deletes=True,
    ))
    settings_model = MastodonSettings
    settings: MastodonSettings

    def __init__(
        self,
        settings: MastodonSettings | Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self.instance: Instance | None = None
        self._retry = retry
        self._stack: AsyncExitStack | None = None
        self._client: ApiClient | None = None
        self._errors = MastodonErrors()
        self._roots = ThreadRoots()
        self._converter = Converter(our_id=None, roots=self._roots)

    # lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the client, resolve our account and read the instance's limits.

        Raises:
            AuthenticationError: The token is invalid or revoked (401).
            ConfigurationError: The base URL cannot be reached as configured.
            PayloadError: The server's answers are not Mastodon's.
        """
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(open_client(
                network=self.network,
                base_url=self.settings.base_url,
                auth=BearerAuth(self.settings.access_token),
                transport=self.transport,
                rate_limit_parser=parse_mastodon_headers,
                error_mapper=self._errors,
                retry=self._retry,
                default_bucket="account",
            ))
            me = parse(
                Account, await self._json("GET", "/api/v1/accounts/verify_credentials"),
                path="verify_credentials",
            )
            self.instance = await self._read_instance()
        except BaseException:
            self._client = None
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        self._stack = stack
        self.account = person(me)
        self._converter.our_id = me.id
        limits = self.instance.configuration.statuses
        self._errors.max_characters = limits.max_characters
        rule = TextRule.mastodon(
            limit=limits.max_characters, url_length=limits.characters_reserved_per_url
        )
        # The instance's own limits replace the class default for this adapter.
        vars(self)["capabilities"] = type(self).capabilities.model_copy(update={"text": rule})

    async def aclose(self) -> None:
        """Close the HTTP client. Safe to call twice."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _read_instance(self) -> Instance:
        try:
            body = await self._json("GET", "/api/v2/instance")
        except NotFound:  # servers before 4.0
            old = parse(
                InstanceV1, await self._json("GET", "/api/v1/instance"), path="instance"
            )
            return old.as_v2()
        return parse(Instance, body, path="instance")

    # plumbing ----------------------------------------------------------------

    @property
    def _api(self) -> ApiClient:
        if self._client is None:
            raise ConfigurationError("the adapter is not open", network=self.network)
        return self._client

    @property
    def _our_id(self) -> str:
        if self._converter.our_id is None:
            raise ConfigurationError("the adapter is not open", network=self.network)
        return self._converter.our_id

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._api.request(method, path, **kwargs)
        return self._decode(response, path)

    def _decode(self, response: httpx.Response, path: str) -> Any:
        return decode_json(response.content, network=self.network, path=path)

    # inbound -----------------------------------------------------------------

    async def poll(self, cursor: str | None) -> Batch:
        """Fetch the notifications after ``cursor`` (a notification id), oldest first.

        ``None`` reads the newest page. The next cursor comes from the
        ``Link: rel="prev"`` header (``min_id``); ids are never compared. An
        empty inbox gives the cursor ``"0"``, before every notification.
        A notification that is not what Mastodon sends is skipped and reported
        in ``Batch.rejected``; the cursor still moves past it.

        Raises:
            AuthenticationError: The token was revoked.
            PayloadError: The answer is not a list of notifications at all.
        """
        size = self.settings.page_size
        params: dict[str, Any] = {
            "types[]": list(self.settings.notification_types), "limit": size,
        }
        if cursor is not None:
            params["min_id"] = cursor
        response = await self._api.request("GET", "/api/v1/notifications", params=params)
        page = self._decode(response, "notifications")
        if not isinstance(page, list):
            raise PayloadError("expected a list", network=self.network, path="notifications")
        events: list[Event] = []
        rejected: list[Rejected] = []
        # Mastodon lists the newest first; events go out oldest first. A bad
        # notification is reported and skipped: the rest of the page goes on.
        for index in reversed(range(len(page))):
            found = await self._notification_events(page[index], path=f"notifications.{index}")
            if isinstance(found, Rejected):
                rejected.append(found)
            else:
                events.extend(found)
        newest = next((found for found in map(_raw_id, page) if found is not None), None)
        next_cursor = _min_id(response) or newest
        if next_cursor is None and cursor is None:
            # Nothing yet: resume from the very first notification, so a burst
            # bigger than a page before the next poll is not cut short.
            next_cursor = _BEGINNING
        return Batch(
            events=tuple(events), cursor=next_cursor,
            more=cursor is not None and len(page) >= size, rejected=tuple(rejected),
        )

    async def backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        """Read the newest notification's id (the position) and, for a backfill, the newest page.

        Without a backfill this is one request for one notification (nothing
        is converted, no thread is looked up). A backfill reads the newest
        page (``page_size`` notifications, so at most that many events) the
        way ``poll(None)`` does, thread lookups included.

        Raises:
            AuthenticationError: The token was revoked.
            PayloadError: The answer is not a list of notifications at all.
        """
        if limit > 0:
            return await super().backlog(limit=limit, since=since)
        params: dict[str, Any] = {"types[]": list(self.settings.notification_types), "limit": 1}
        response = await self._api.request("GET", "/api/v1/notifications", params=params)
        page = self._decode(response, "notifications")
        if not isinstance(page, list):
            raise PayloadError("expected a list", network=self.network, path="notifications")
        newest = next((found for found in map(_raw_id, page) if found is not None), None)
        return Batch(cursor=_min_id(response) or newest or _BEGINNING)

    async def _notification_events(self, raw: object, *, path: str) -> list[Event] | Rejected:
        """The events of one notification, as decoded JSON, or its `Rejected`.

        Whatever reading it raises (it is not a notification, its status
        cannot make a message, or anything unforeseen) rejects it alone; a
        failed request while resolving its thread is raised.
        """
        notification = convert_item(parse_notification, raw, network=self.network, path=path)
        if isinstance(notification, Rejected):
            return notification
        if notification.type not in self.settings.notification_types:
            return []
        if notification.status is not None and notification.type != "favourite":
            await self._resolve_root(notification.status)

        def convert(raw: object) -> list[Event]:
            return self._converter.notification_events(
                notification, raw=raw if isinstance(raw, Mapping) else None)

        return convert_item(convert, raw, network=self.network, path=path)

    async def _resolve_root(self, status: Status) -> None:
        """Learn the thread root of a reply whose root we do not know yet."""
        if (
            not self.settings.resolve_threads
            or status.visibility == "direct"
            or self._roots.root_of(status) is not None
        ):
            return
        try:
            body = await self._json(
                "GET", "/api/v1/statuses/{id}/context", path_params={"id": status.id}
            )
        except NotFound:  # gone, or hidden from us: file it under its parent
            return
        context = convert_item(partial(parse, Context), body, network=self.network,
                               path="context")
        if isinstance(context, Rejected):  # the root is a nicety: file it under its parent
            logger.warning(
                "mastodon: the context of a status is unreadable (%s); filed under its parent",
                context.path, extra={"network": self.network},
            )
            return
        if context.ancestors:
            root = context.ancestors[0].id
            for ancestor in context.ancestors:
                self._roots.put(ancestor.id, root)
            self._roots.put(status.id, root)

    def _stream_url(self) -> str:
        host = self.settings.streaming_url
        if host is None and self.instance is not None:
            announced = self.instance.configuration.urls.streaming
            if announced:
                try:
                    host = _http_base(announced)
                except ValueError:
                    host = None
        return (host or self.settings.base_url) + _STREAM_PATHS[self.settings.stream]

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        """Follow the streaming API, catching up by polling after every (re)connect.

        Each connection first polls from the last cursor until nothing is left
        (what happened while disconnected), then yields streamed events as they
        come. A dropped connection reconnects with the HTTP retry policy's
        backoff, up to ``settings.stream_reconnects`` times in a row.

        Raises:
            AuthenticationError: The token was revoked.
            TransientError: The stream kept dropping.
        """
        api = self._api
        reconnects = api.reconnects(limit=self.settings.stream_reconnects)
        while True:
            try:
                async with api.open_stream(
                    "GET", self._stream_url(), headers={"Accept": "text/event-stream"},
                    read_timeout=self.settings.stream_read_timeout, bucket="streaming",
                ) as response:
                    while True:  # catch up on what the gap hid
                        batch = await self.poll(cursor)
                        cursor = batch.cursor or cursor
                        if batch.events or batch.rejected or batch.cursor is not None:
                            yield batch
                        if not batch.more:
                            break
                    reconnects.connected()
                    async with aclosing(aiter_events(response.aiter_lines())) as events:
                        async for sse in events:
                            streamed = await self._stream_batch(sse)
                            if streamed is not None:
                                cursor = streamed.cursor or cursor
                                yield streamed
            except TransientError as exc:
                await reconnects.wait(exc)  # raises once it dropped too often in a row
            else:
                await reconnects.wait()  # the server ended it (a restart, an idle proxy)

    # sources -------------------------------------------------------------------

    def sources(self) -> Sequence[Source]:
        """The ``stream``, caught up by polling ``notifications``, on one cursor.

        The stream is one connection to the streaming API at a time. The
        streaming API cannot resume, so the hub polls notifications from the
        shared cursor (a notification id) once each connection is up and
        after each drop: what a gap hid is read, and nothing else twice.
        """
        return (
            PollSource("notifications", self.poll, interval=self.settings.poll_interval,
                       backlog=self.backlog),
            StreamSource("stream", self._stream_connection, catch_up="notifications"),
        )

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        """A cursor stored before sources is a notification id: the notifications' cursor."""
        return {"notifications": cursor}

    async def _stream_connection(self, cursor: str | None) -> AsyncIterator[Batch]:
        """One connection to the streaming API (the ``stream`` source), read until it ends.

        An empty batch comes first, once connected, so the hub catches up
        then; a notification's batch carries its id as the cursor, which the
        stream shares with ``notifications``.

        Raises:
            AuthenticationError: The token was revoked.
            TransientError: The connection failed or dropped.
        """
        async with self._api.open_stream(
            "GET", self._stream_url(), headers={"Accept": "text/event-stream"},
            read_timeout=self.settings.stream_read_timeout, bucket="streaming",
        ) as response, aclosing(aiter_events(response.aiter_lines())) as events:
            yield Batch()
            async for sse in events:
                streamed = await self._stream_batch(sse)
                if streamed is not None:
                    yield streamed

    async def _stream_batch(self, sse: ServerEvent) -> Batch | None:
        """The batch one streamed event stands for, or ``None`` to skip it.

        A bad event never stops the stream: it comes back in ``Batch.rejected``.
        """
        if sse.event not in ("notification", "status.update", "delete"):
            return None
        if sse.event == "delete":
            status_id = sse.data.strip()
            if not status_id:
                return None

            def gone(status_id: str) -> MessageDeleted:
                return self._converter.deleted(status_id, occurred_at=datetime.now(UTC))

            deleted = convert_item(gone, status_id, network=self.network, path=sse.event)
            if isinstance(deleted, Rejected):
                return Batch(rejected=(deleted,))
            return Batch(events=(deleted,))
        try:
            raw = self._decode_event(sse)
        except PayloadError as exc:
            return Batch(rejected=(Rejected.from_error(exc, sse.data),))
        cursor = _raw_id(raw) if sse.event == "notification" else None  # notification ids only
        if sse.event == "notification":
            found = await self._notification_events(raw, path="notification")
        else:
            status = convert_item(partial(parse_status, path=""), raw, network=self.network,
                                  path="status.update")
            if isinstance(status, Rejected):
                found = status
            elif not self._converter.involves_us(status):
                return None
            else:
                await self._resolve_root(status)
                updated = status

                def convert(raw: Mapping[str, Any]) -> list[Event]:
                    return [self._converter.updated(updated, raw=raw)]

                found = convert_item(convert, raw, network=self.network, path="status.update")
        if isinstance(found, Rejected):
            body = found.model_copy(update={"body": sse.data.encode("utf-8", "backslashreplace")})
            return Batch(rejected=(body,), cursor=cursor)
        return Batch(events=tuple(found), cursor=cursor)

    def _decode_event(self, sse: ServerEvent) -> Mapping[str, Any]:
        raw = decode_json(sse.data, network=self.network, path=sse.event)
        if not isinstance(raw, Mapping):
            raise PayloadError("expected an object", network=self.network, path=sse.event)
        return raw

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        """Turn a recorded Mastodon answer or stream body into events, without the network.

        ``path`` is one of ``/api/v1/notifications`` (a page),
        ``/api/v1/notifications/:id``, ``/api/v1/statuses/:id`` (a status,
        received), ``/api/v1/statuses/:id/context`` (the statuses around it,
        received, filed under the thread root), ``/api/v1/accounts/:id/statuses``
        or ``/api/v1/timelines/...`` (each status of the list, received),
        ``/api/v1/conversations`` (each last status, received) or
        ``/api/v1/streaming/...`` (server-sent events). Notifications and
        stream frames give the events `poll` and `stream` give; a reply whose
        thread root is unknown is filed under the status it answers (no
        ``/context`` lookup). Without ``path``, a JSON list is a page of
        notifications and a body that is not JSON is server-sent events.

        Args:
            body: The raw body, as recorded.
            path: The endpoint it answered (a host or query string is ignored).
            account: Our account id: our statuses get ``from_us``, and we are
                left out of direct conversation ids.

        Returns:
            The events, oldest first.

        Raises:
            PayloadError: The body is malformed, or ``path`` is another endpoint.
        """
        return parse_payload(body, path=path, account=account)

    async def fetch_conversation(self, ref: Ref, *, limit: int = 50) -> Sequence[Message]:
        """Fetch a thread (or a direct conversation), oldest first, at most ``limit``.

        A thread is its root's context; a ``direct:`` conversation is found in
        ``/api/v1/conversations`` by its participants.

        Raises:
            NotFound: The thread root is gone or hidden from us.
        """
        anchor = ref.id
        if ref.id.startswith("direct:"):
            found = await self._find_direct(ref)
            if found is None:
                return []
            anchor = found
        status = parse(
            Status,
            await self._json("GET", "/api/v1/statuses/{id}", path_params={"id": anchor}),
            path="status",
        )
        context = parse(
            Context,
            await self._json("GET", "/api/v1/statuses/{id}/context", path_params={"id": anchor}),
            path="context",
        )
        thread = [*context.ancestors, status, *context.descendants]
        if context.ancestors:
            root = context.ancestors[0].id
            for item in thread:
                self._roots.put(item.id, root)
        # A thread's context also holds direct replies, which are conversations of their own.
        messages = [m for m in map(self._converter.message, thread) if m.conversation == ref]
        return messages[-limit:] if limit > 0 else []

    async def _find_direct(self, ref: Ref) -> str | None:
        body = await self._json("GET", "/api/v1/conversations", params={"limit": 40})
        try:
            conversations = CONVERSATIONS.validate_python(body)
        except ValidationError as exc:
            raise PayloadError.from_validation(
                exc, network=self.network, path="conversations"
            ) from exc
        for conversation in conversations:
            if conversation.last_status is None:
                continue
            if self._converter.direct_conversation(conversation).ref == ref:
                return conversation.last_status.id
        return None

    # outbound ----------------------------------------------------------------

    def _addressed(self, to: Message, text: str, *, direct: bool) -> str:
        """``text`` with the @mentions Mastodon needs to deliver it put in front.

        A reply names the author it answers; a direct reply also everyone else
        the direct message was addressed to, so nobody drops out of it.
        """
        handles: list[str] = []
        if not to.from_us and to.author.handle:
            handles.append(to.author.handle)
        if direct:
            for entity in to.entities:
                if (
                    isinstance(entity, Mention)
                    and entity.person is not None
                    and entity.person.id != self._converter.our_id
                    and entity.handle not in handles
                ):
                    handles.append(entity.handle)
        missing = [h for h in handles if not _mentions(text, h)]
        if not missing:
            return text
        return " ".join(f"@{h}" for h in missing) + " " + text

    def _outgoing(self, action: Reply | PrivateReply | Post) -> tuple[str, str, str | None]:
        """The status text, Mastodon visibility and parent of an action."""
        match action:
            case Reply():
                wanted: Visibility = action.visibility or action.to.visibility
                visibility = to_mastodon_visibility(wanted)
                text = self._addressed(action.to, action.text, direct=visibility == "direct")
                return text, visibility, action.to.ref.id
            case PrivateReply():
                return self._addressed(action.to, action.text, direct=False), "direct", (
                    action.to.ref.id
                )
            case Post():
                return action.text, to_mastodon_visibility(action.visibility), None

    def outgoing_text(self, action: Reply | PrivateReply | Post) -> str:
        """The status text `send` publishes for ``action``.

        Mastodon notifies (and, for a direct status, shows it to) only the
        accounts a status mentions, so a reply starts with the @mention of the
        author it answers (and, for a direct reply, of everyone else in the DM)
        unless the text already names them. The instance's limit applies to
        this text, mentions included.
        """
        return self._outgoing(action)[0]

    def _rule(self) -> TextRule:
        return self.capabilities.text

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Publish a status: a threaded reply, a direct status, or a new post.

        The text gets the @mention of whom it answers when it lacks one, is
        checked against the instance's limit, and goes out with the action's
        ``Idempotency-Key`` (Mastodon keeps keys for an hour).

        Raises:
            TextTooLong: Over the instance's limit, before or at sending.
            AmbiguousDelivery: The request may have landed without an answer.
            AuthenticationError: The token was revoked.
            NotFound: The status answered is gone.
            RequestRejected: Mastodon refused the status (422...).
        """
        text, visibility, parent = self._outgoing(action)
        rule = self._rule()
        rule.check(text, network=self.network)
        form = {"status": text}
        if parent is not None:
            form["in_reply_to_id"] = parent
        form["visibility"] = visibility
        try:
            response = await self._api.request(
                "POST", "/api/v1/statuses", data=form,
                headers={"Idempotency-Key": action.idempotency_key},
            )
        except RequestRejected as exc:
            if is_too_long(exc):
                raise TextTooLong(
                    length=rule.count(text), limit=rule.limit, unit=rule.unit,
                    network=self.network,
                ) from exc
            raise
        raw = self._decode(response, "statuses")
        return self._sent(action, parse_status(raw, path="statuses"), raw)

    def _sent(
        self, action: Reply | PrivateReply | Post, status: Status, raw: Mapping[str, Any]
    ) -> Sent:
        if isinstance(action, Reply | PrivateReply) and status.visibility != "direct":
            root = action.to.conversation.id
            if not root.startswith("direct:"):
                self._roots.put(action.to.ref.id, root)
                self._roots.put(status.id, root)
        sent = Sent(
            idempotency_key=action.idempotency_key,
            ref=Ref(network=self.network, id=status.id),
            conversation=self._converter.conversation_ref(status),
            sent_at=status.created_at,
            raw=None,
        )
        return with_decoded_raw(sent, raw)

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look through our latest statuses for one this action created.

        A status matches when it answers the same status, with the same
        visibility and the same text (mentions aside, as Mastodon renders them).
        A status that cannot be read is passed over; if nothing matched, it
        might have been the one, so the lookup proves nothing and raises.

        Raises:
            AuthenticationError: The token was revoked.
            PayloadError: The listing, or a status in it while nothing matched,
                is not what Mastodon sends.
        """
        text, visibility, parent = self._outgoing(action)
        wanted = _comparable(text)
        body = await self._json(
            "GET", "/api/v1/accounts/{id}/statuses", path_params={"id": self._our_id},
            params={"limit": 40, "exclude_reblogs": "true"},
        )
        if not isinstance(body, list):
            raise PayloadError("expected a list", network=self.network, path="statuses")
        unreadable: PayloadError | None = None
        for index, raw in enumerate(body):
            try:
                status = parse_status(raw, path=f"statuses.{index}")
                if status.in_reply_to_id != parent or status.visibility != visibility:
                    continue
                shown, _ = status_text(status)
            except PayloadError as exc:
                unreadable = unreadable or exc
                continue
            if _comparable(shown) == wanted:
                return self._sent(action, status, raw)
        if unreadable is not None:  # "absent" would invite a second post
            raise unreadable
        return None

    async def react(self, action: React) -> Sent:
        """Favourite a status (the only reaction Mastodon has).

        Raises:
            CapabilityNotSupported: A reaction other than ``"like"``.
            NotFound: The status is gone.
        """
        if action.reaction != "like":
            raise CapabilityNotSupported(
                "react", network=self.network, detail=f"reaction {action.reaction!r}"
            )
        body = await self._json(
            "POST", "/api/v1/statuses/{id}/favourite", path_params={"id": action.target.id},
            idempotent=True,
        )
        return Sent(
            idempotency_key=action.idempotency_key, ref=action.target,
            raw=body if isinstance(body, dict) else None,
        )

    async def delete(self, action: Delete) -> Sent:
        """Delete one of our statuses.

        Raises:
            NotFound: The status does not exist (or was already deleted).
            RequestRejected: It is not ours.
        """
        body = await self._json(
            "DELETE", "/api/v1/statuses/{id}", path_params={"id": action.target.id}
        )
        root = self._roots.get(action.target.id)
        return Sent(
            idempotency_key=action.idempotency_key, ref=action.target,
            conversation=Ref(network=self.network, id=root) if root else None,
            raw=body if isinstance(body, dict) else None,
        )
