"""The Bluesky adapter: sessions, polling, Jetstream listening and outbound records."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

from omnichannel._lazy import lazy_attribute
from omnichannel.actions import Delete, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import (
    Adapter,
    AdapterSettings,
    Batch,
    Rejected,
    convert_item,
    decode_json,
    newest_events,
)
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    ConfigurationError,
    NetworkError,
    NotFound,
    PayloadError,
    RequestRejected,
    TokenExpired,
    TransientError,
)
from omnichannel.events import Event, MessageDeleted, MessageReceived, MessageUpdated
from omnichannel.http import (
    ApiClient,
    RefreshingBearerAuth,
    RetryPolicy,
    open_client,
    parse_bluesky_headers,
)
from omnichannel.model import Message, Person, Ref
from omnichannel.sources import PollSource, Source, StreamSource
from omnichannel.text import TextRule

from ._convert import (
    NETWORK,
    PageItem,
    chat_event,
    chat_message,
    chat_page_events,
    jetstream_deleted,
    jetstream_event,
    jetstream_updated,
    load,
    log_entry,
    notification_page,
    post_ref,
    thread_messages,
    usable_cursor,
)
from ._errors import DUPLICATE_RECORD_ERRORS, is_expired_token, map_error
from ._facets import detect, facets_for
from ._jetstream import Deleted, JetstreamFilter, JetstreamItem, KnownPosts, read_jetstream
from ._replay import parse_payload
from ._wire import (
    LIKE,
    POST,
    REASONS,
    ConvoOutput,
    ConvoView,
    CreateRecordOutput,
    GetLogOutput,
    GetMessagesOutput,
    GetRecordOutput,
    LogEntry,
    MessageView,
    PostThreadOutput,
    ProfileView,
    ResolveHandleOutput,
    Session,
)

__all__ = ["BlueskyAdapter", "BlueskySettings", "record_key"]

logger = logging.getLogger("omnichannel.bluesky")

CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Record keys derived from idempotency keys carry a timestamp between
# 2023-11-14 and 2026-02 (2**46 microseconds later): plausible TIDs that are
# never in the future, and the same key always gives the same record key.
_TID_EPOCH_US = 1_700_000_000_000_000
_TID_SPAN_BITS = 46
_REMEMBERED = 1000
_CLOCK_SKEW = timedelta(minutes=10)
_EPOCH = "1970-01-01T00:00:00Z"
_EPOCH_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_NOTIFICATIONS = "app.bsky.notification.listNotifications"
_CHAT_LOG = "chat.bsky.convo.getLog"


def record_key(idempotency_key: str) -> str:
    """Derive a record key (a TID) from an action's idempotency key.

    The same idempotency key always gives the same key, so a retried
    ``createRecord`` names the record the first try may have created. The
    result is a syntactically valid TID (13 characters of base32-sortable,
    top bit clear), which is what ``app.bsky.feed.post`` and
    ``app.bsky.feed.like`` records are keyed by.

    Args:
        idempotency_key: The action's idempotency key.

    Returns:
        The record key.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    timestamp = _TID_EPOCH_US + (int.from_bytes(digest[:6], "big") >> (48 - _TID_SPAN_BITS))
    clock_id = int.from_bytes(digest[6:8], "big") & 0x3FF
    value = (timestamp << 10) | clock_id
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class BlueskySettings(AdapterSettings):
    """Settings of the Bluesky adapter.

    Attributes:
        identifier: Our account's handle (``shop.example.com``) or DID.
        app_password: An app password (Settings > Privacy and security > App
            passwords); tick "Allow access to your direct messages" to use DMs.
        service: The PDS or entryway to log in to (``https://bsky.social``).
        chat_proxy: The ``atproto-proxy`` value chat calls are routed with.
        direct_messages: Poll chat conversations and answer privately.
        reasons: Notification reasons to poll: ``mention``, ``reply`` and
            ``quote`` become messages, ``like`` (of our posts) reactions.
        page_size: Notifications per page (1-100).
        listening: Listening mode: the hub also reads Jetstream for posts
            that mention us or match ``keywords`` (every post of the network
            passes through: see the how-to for its cost).
        jetstream_url: The Jetstream ``/subscribe`` endpoint for listening mode.
        keywords: Words that make a post interesting in listening mode, matched
            case-insensitively, besides mentions of and replies to our account.
        stream_reconnects: Jetstream drops in a row (without an event in
            between) before ``stream()`` gives up (the hub's ``jetstream``
            source reconnects with the hub's backoff instead).
        poll_interval: Seconds between polls when nothing new came (default 30).
    """

    identifier: str = Field(min_length=1)
    app_password: SecretStr
    service: str = "https://bsky.social"
    chat_proxy: str = CHAT_PROXY
    direct_messages: bool = True
    reasons: tuple[str, ...] = ("mention", "reply", "quote", "like")
    page_size: int = Field(default=50, ge=1, le=100)
    listening: bool = False
    jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    keywords: tuple[str, ...] = ()
    stream_reconnects: int = Field(default=5, ge=0)

    @field_validator("reasons")
    @classmethod
    def _known_reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - REASONS)
        if unknown or not value:
            raise ValueError(
                f"reasons must be among mention, reply, quote, like (got {unknown})")
        return value


@dataclass(frozen=True)
class _Cursor:
    """Where inbound reading stands, shared by ``poll`` and ``stream``.

    ``n`` is the newest notification time seen and ``u`` the URIs seen at that
    time; ``b`` the ``listNotifications`` cursors of the pages still to
    deliver, oldest first, while a backlog of more than one page is read
    back (see `BlueskyAdapter.poll`); ``c`` is the chat log cursor; ``t`` the
    last Jetstream ``time_us``; ``l`` says Jetstream starts live until it has
    a ``t`` (a first run's position: the time of the newest notification
    would replay posts). Serialized as compact JSON, so a cursor stored
    from either path resumes the other. A bare integer is read as a
    ``time_us``.
    """

    seen_at: str | None = None
    uris: tuple[str, ...] = ()
    chat: str | None = None
    time_us: int | None = None
    live: bool = False
    back: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> _Cursor:
        if not raw:
            return cls()
        if raw.isdigit():
            return cls(time_us=int(raw))
        try:
            data = json.loads(raw)
        except ValueError:
            raise ConfigurationError("not a Bluesky cursor", network=NETWORK) from None
        if not isinstance(data, dict):
            raise ConfigurationError("not a Bluesky cursor", network=NETWORK)
        uris = data.get("u") or []
        back = data.get("b") or []
        time_us = data.get("t")
        return cls(
            seen_at=data.get("n") if isinstance(data.get("n"), str) else None,
            uris=tuple(u for u in uris if isinstance(u, str)) if isinstance(uris, list) else (),
            chat=data.get("c") if isinstance(data.get("c"), str) else None,
            time_us=time_us if isinstance(time_us, int) and time_us >= 0 else None,
            live=data.get("l") is True,
            back=tuple(b for b in back if isinstance(b, str)) if isinstance(back, list) else (),
        )

    def stream_start(self) -> int | None:
        """The ``time_us`` to resume Jetstream at: the last one, else the newest notification."""
        if self.time_us is not None:
            return self.time_us
        if self.live:
            return None
        if self.seen_at and self.seen_at != _EPOCH:
            seen = _iso(self.seen_at)
            if seen is not None:
                return int(seen.timestamp() * 1_000_000)
        return None  # nothing seen yet: live from now

    def dump(self) -> str:
        data: dict[str, Any] = {}
        if self.seen_at:
            data["n"] = self.seen_at
            data["u"] = list(self.uris)
        if self.back:
            data["b"] = list(self.back)
        if self.chat:
            data["c"] = self.chat
        if self.time_us is not None:
            data["t"] = self.time_us
        elif self.live:
            data["l"] = True
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _iso(raw: str) -> datetime | None:
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _message_view(item: object) -> MessageView:
    return load(MessageView, item)


def _convo_view(item: object) -> ConvoView:
    return load(ConvoView, item)


def _messages_page(body: bytes) -> GetMessagesOutput:
    return load(GetMessagesOutput, body)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` into its three parts."""
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigurationError(f"not a record URI: {uri!r}", network=NETWORK)
    return parts[0], parts[1], parts[2]


class BlueskyAdapter(Adapter):
    """Bluesky through XRPC: notifications and chat in, records and chat messages out.

    Inbound, ``poll`` reads mention, reply and quote notifications (messages),
    like notifications (reactions to our posts) and the chat log; ``stream`` is
    listening mode, a Jetstream subscription that keeps posts mentioning our
    account or matching ``settings.keywords``, and edits and deletions of the
    posts delivered before. Outbound, replies are ``app.bsky.feed.post``
    records with root and parent strong refs and exact facets, keyed by a
    record key derived from the action's idempotency key, so a retry can never
    post twice.

    Args:
        settings: A ``BlueskySettings`` (or a mapping to validate).
        transport: An httpx transport instead of the network (a sandbox's);
            it also carries the Jetstream WebSocket.
        retry: The HTTP retry policy (default: the core's).
    """

    network = NETWORK
    capabilities = lazy_attribute(lambda: Capabilities(  # built on first use, not at import
        text=TextRule.bluesky_post(),
        dm_text=TextRule.bluesky_dm(),
        private_reply=True,
        reactions=("like",),
        hide=False,
        delete=True,
        inbound=frozenset({"poll", "stream"}),
        native_idempotency=True,
        inbound_edits=True,
        inbound_deletes=True,
    ))
    settings_model = BlueskySettings
    settings: BlueskySettings

    def __init__(
        self,
        settings: BlueskySettings | Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self._retry = retry
        self._stack: AsyncExitStack | None = None
        self._client: ApiClient | None = None
        self._auth: RefreshingBearerAuth | None = None
        self._refresh_jwt: SecretStr | None = None
        self._did: str | None = None
        self._handle: str | None = None
        self._chat_start: str | None = None
        self._chat_ok = True
        self._dids: dict[str, str] = {}
        self._profiles: dict[str, ProfileView] = {}
        self._sent_chat: dict[str, Sent] = {}
        self._chat_unsure: set[str] = set()
        self._known = KnownPosts()

    # lifecycle -------------------------------------------------------------------

    @property
    def did(self) -> str:
        """Our account's DID (after ``open``).

        Raises:
            ConfigurationError: The adapter is not open.
        """
        if self._did is None:
            raise ConfigurationError("the adapter is not open", network=NETWORK)
        return self._did

    @property
    def client(self) -> ApiClient:
        """The HTTP client (after ``open``).

        Raises:
            ConfigurationError: The adapter is not open.
        """
        if self._client is None:
            raise ConfigurationError("the adapter is not open", network=NETWORK)
        return self._client

    async def open(self) -> None:
        """Log in with the app password and resolve our account.

        Raises:
            AuthenticationError: The identifier or app password was refused.
        """
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(open_client(
                network=NETWORK,
                base_url=self.settings.service,
                transport=self.transport,
                rate_limit_parser=parse_bluesky_headers,
                error_mapper=map_error,
                retry=self._retry,
                default_bucket="account",
            ))
            session = await self._create_session()
            self._auth = RefreshingBearerAuth(
                session.access_jwt, refresh=self._refresh, is_expired=is_expired_token,
                network=NETWORK,
            )
            self._client.http.auth = self._auth
            if self.settings.direct_messages:
                self._chat_start = await self._chat_cursor_now()
        except BaseException:
            self._client = None
            await stack.aclose()
            raise
        self._stack = stack

    async def aclose(self) -> None:
        """Close the HTTP client. Safe to call twice."""
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    async def _create_session(self) -> Session:
        response = await self.client.request(
            "POST", "/xrpc/com.atproto.server.createSession",
            json={
                "identifier": self.settings.identifier,
                "password": self.settings.app_password.get_secret_value(),
            },
            authenticated=False, idempotent=True, bucket="session",
        )
        session = load(Session, response.content)
        self._adopt(session)
        return session

    def _adopt(self, session: Session) -> None:
        self._did = session.did
        self._handle = session.handle
        self._refresh_jwt = SecretStr(session.refresh_jwt)
        self.account = Person(
            ref=Ref(network=NETWORK, id=session.did),
            handle=session.handle,
            profile_url=f"https://bsky.app/profile/{session.handle}",
        )

    async def _refresh(self) -> SecretStr:
        """Trade the refresh token for new tokens (called by the auth on expiry)."""
        refresh = self._refresh_jwt
        if refresh is None:
            raise TokenExpired("no refresh token", network=NETWORK)
        try:
            response = await self.client.request(
                "POST", "/xrpc/com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {refresh.get_secret_value()}"},
                authenticated=False, idempotent=True, bucket="session",
            )
        except (AuthenticationError, RequestRejected, NotFound) as exc:
            code = exc.code if isinstance(exc, NetworkError) else None
            raise TokenExpired(
                f"the session could not be refreshed ({code or type(exc).__name__})",
                network=NETWORK,
            ) from None
        session = load(Session, response.content)
        self._adopt(session)
        return SecretStr(session.access_jwt)

    # inbound ---------------------------------------------------------------------

    async def _xrpc(
        self, method: str, nsid: str, *, params: Mapping[str, Any] | None = None,
        json_body: Any = None, chat: bool = False, idempotent: bool | None = None,
    ) -> httpx.Response:
        headers = {"atproto-proxy": self.settings.chat_proxy} if chat else None
        return await self.client.request(
            method, f"/xrpc/{nsid}", params=params, json=json_body, headers=headers,
            idempotent=idempotent,
        )

    async def poll(self, cursor: str | None) -> Batch:
        """Fetch mentions, replies, quotes and likes since ``cursor``, and new chat messages.

        The first poll (``cursor=None``) reads the newest page of notifications,
        the unread messages of every chat conversation, and the chat messages
        since ``open``. A notification or chat entry that is not what Bluesky
        sends is skipped and reported in ``Batch.rejected``; the cursor still
        moves past it.

        Nothing is dropped however many notifications came since ``cursor``:
        when they fill more than one page, the poll follows the pages back to
        the cursor and delivers the oldest page; its cursor names the pages
        still to deliver (``more`` is set), and each following poll delivers
        the next newer one. The hub stores the cursor after every page, so
        memory stays at one page and a restart resumes where it stopped.

        Raises:
            PayloadError: An answer as a whole is not what Bluesky sends (not
                JSON, no list of notifications or log entries).
            NetworkError: The network refused or failed a request.
        """
        state = _Cursor.parse(cursor)
        rejected: list[Rejected] = []
        events, read, more = await self._poll_notifications(state, rejected)
        chat = state.chat or self._chat_start
        if self.settings.direct_messages and self._chat_ok:
            try:
                if state.chat is None:
                    events.extend(await self._unread_messages(rejected))
                chat_events, chat, chat_more = await self._poll_chat(chat, rejected)
                more = more or chat_more
            except AuthenticationError as exc:
                if not self._chat_unavailable(exc):
                    raise
            else:
                events.extend(chat_events)
        unique = list({event.id: event for event in events}.values())
        unique.sort(key=lambda event: event.occurred_at)
        self._remember_posts(unique)
        next_cursor = replace(read, chat=chat).dump()
        return Batch(events=tuple(unique), cursor=next_cursor, more=more,
                     rejected=tuple(rejected))

    async def backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        """Read the newest notification (the position), and for a backfill what ``poll(None)`` does.

        Without a backfill this is one ``listNotifications`` request; the chat
        log's position was read by ``open``, and Jetstream (listening mode)
        starts live. A backfill reads the newest page of notifications
        (``page_size``, so at most that many) and every conversation's unread
        messages, as the first ``poll`` does.

        Raises:
            PayloadError: The answer is not a list of notifications at all.
            NetworkError: The network refused or failed a request.
        """
        if limit > 0:
            batch = await self.poll(None)
            position = replace(_Cursor.parse(batch.cursor), live=True)
            return Batch(events=newest_events(batch.events, limit=limit, since=since),
                         cursor=position.dump(), rejected=batch.rejected)
        _, read, _ = await self._poll_notifications(_Cursor(), [])
        position = _Cursor(seen_at=read.seen_at, uris=read.uris, chat=self._chat_start, live=True)
        return Batch(cursor=position.dump())

    def _decode(self, response: httpx.Response, nsid: str) -> Any:
        return decode_json(response.content, network=NETWORK, path=nsid)

    def _chat_unavailable(self, exc: AuthenticationError) -> bool:
        """Whether a chat refusal means "no DM access" (the session itself is fine)."""
        if isinstance(exc, TokenExpired):
            return False
        self._chat_ok = False
        logger.warning("bluesky: chat refused this app password (%s); direct messages are "
                       "not polled. Create an app password that allows direct messages.",
                       exc)
        return True

    async def _notification_page(self, token: str | None) -> tuple[list[PageItem], str | None]:
        """One page of notifications (newest first) before ``token``, and the next token."""
        params: dict[str, Any] = {
            "limit": self.settings.page_size, "reasons": list(self.settings.reasons),
        }
        if token:
            params["cursor"] = token
        response = await self._xrpc("GET", _NOTIFICATIONS, params=params)
        return notification_page(
            self._decode(response, _NOTIFICATIONS), our_did=self._did, strict=False)

    async def _poll_notifications(
        self, state: _Cursor, rejected: list[Rejected]
    ) -> tuple[list[Event], _Cursor, bool]:
        """The notifications of one page after ``state``, oldest first, where to go on, more.

        Pages come newest first and only go back in time, so a backlog of
        several pages is read back to the cursor first (keeping only each
        page's token), then delivered one page per poll, oldest first: each
        poll's cursor names the pages left (``back``) and the newest time
        delivered, so a restart at any stored cursor loses and repeats nothing.
        """
        since = _iso(state.seen_at) if state.seen_at else None
        # A malformed notification with no time of its own, on a page with none
        # either, is placed at the cursor: reported once, then seen.
        fallback = since or _EPOCH_TIME
        known = set(state.uris)

        def fresh(items: list[PageItem]) -> tuple[list[tuple[datetime, PageItem]], bool]:
            found, reached = [], False
            for item in items:
                when = item.indexed_at or fallback
                if since is not None and (when < since or (when == since and item.uri in known)):
                    reached = True
                    continue
                found.append((when, item))
            return found, reached

        back = state.back
        if back:  # delivering a backlog: the oldest page not delivered yet
            items, _ = await self._notification_page(back[0])
            collected, _ = fresh(items)
            back, more = back[1:], True
        else:
            tokens: list[str | None] = []  # the pages read past, newest first
            token: str | None = None
            newer: list[tuple[datetime, PageItem]] = []
            while True:
                items, next_page = await self._notification_page(token)
                collected, reached = fresh(items)
                if reached or since is None or not next_page or next_page in tokens or (
                    next_page == token  # a server naming a page twice: it ends there
                ):
                    break
                tokens.append(token)
                token, newer = next_page, collected
            if not collected and tokens:
                # The cursor sat at this page's top: the page before is the oldest.
                tokens.pop()
                collected = newer
            # This poll delivers the oldest page; the pages between it and the
            # newest one follow, oldest first. The newest page is read again by
            # the poll after them, with whatever came in the meantime.
            back = tuple(t for t in reversed(tokens) if t is not None)
            more = bool(tokens)
            if tokens:
                logger.info("bluesky: %d pages of notifications since the cursor; delivering "
                            "them oldest first, one page per poll", len(tokens) + 1)
        if not collected:
            # Nothing new: from now on every notification is new (and paged back to).
            return [], replace(state, seen_at=state.seen_at or _EPOCH, back=back), more
        newest = max(when for when, _ in collected)
        newest_uris = {item.uri for when, item in collected if when == newest}
        if since is not None and newest == since:
            newest_uris |= known
        mark = newest.isoformat().replace("+00:00", "Z")
        # Pages come newest first; events go out oldest first.
        events: list[Event] = []
        for _, item in reversed(collected):
            if item.event is not None:
                events.append(item.event)
            if item.rejected is not None:
                rejected.append(item.rejected)
        read = replace(state, seen_at=mark, uris=tuple(sorted(newest_uris)), back=back)
        return events, read, more

    async def _chat_cursor_now(self) -> str | None:
        try:
            response = await self._xrpc("GET", "chat.bsky.convo.getLog", chat=True)
        except AuthenticationError as exc:
            if not self._chat_unavailable(exc):
                raise
            return None
        return load(GetLogOutput, response.content).cursor

    async def _poll_chat(
        self, cursor: str | None, rejected: list[Rejected]
    ) -> tuple[list[Event], str | None, bool]:
        params = {"cursor": cursor} if cursor else None
        response = await self._xrpc("GET", _CHAT_LOG, params=params, chat=True)
        page = load(GetLogOutput, self._decode(response, _CHAT_LOG))
        events: list[Event] = []
        for index, raw in enumerate(page.logs):
            path = f"logs.{index}"
            entry = convert_item(log_entry, raw, network=NETWORK, path=path)
            if isinstance(entry, Rejected):
                rejected.append(entry)
                continue
            profile = await self._sender_profile(entry)
            if profile is not None:
                entry = entry.model_copy(update={"related_profiles": (profile,)})

            def convert(raw: dict[str, Any], entry: LogEntry = entry) -> MessageReceived | None:
                return chat_event(entry, our_did=self._did, raw=raw)

            event = convert_item(convert, raw, network=NETWORK, path=path)
            if isinstance(event, Rejected):
                rejected.append(event)
            elif event is not None:
                events.append(event)
        if not usable_cursor(page.cursor):  # stay, and wait for the next poll
            return events, cursor, False
        return events, page.cursor, bool(page.logs)

    async def _sender_profile(self, entry: LogEntry) -> ProfileView | None:
        """The profile of a new message's sender, when the entry does not carry it."""
        if entry.message is None or entry.related_profiles:
            return None
        sender = entry.message.get("sender")
        did = sender.get("did") if isinstance(sender, dict) else None
        if not isinstance(did, str) or did == self._did:
            return None
        return await self._chat_profile(entry.convo_id, did)

    async def _chat_profile(self, convo_id: str, did: str) -> ProfileView | None:
        """A chat member's profile (handle, name), from ``getConvo``, cached."""
        if did not in self._profiles:
            response = await self._xrpc("GET", "chat.bsky.convo.getConvo",
                                        params={"convoId": convo_id}, chat=True)
            for member in load(ConvoOutput, response.content).convo.members:
                self._profiles[member.did] = member
        return self._profiles.get(did)

    async def _unread_messages(self, rejected: list[Rejected]) -> list[Event]:
        """Unread messages from others in every conversation (the first poll's catch-up)."""
        response = await self._xrpc("GET", "chat.bsky.convo.listConvos",
                                    params={"limit": 100}, chat=True)
        events: list[Event] = []
        data = self._decode(response, "chat.bsky.convo.listConvos")
        convos = data.get("convos") if isinstance(data, dict) else None
        if not isinstance(convos, list):
            raise PayloadError("no convos list", network=NETWORK, path="convos")
        for index, raw in enumerate(convos):
            # One unreadable conversation must not block the first poll (and so
            # every poll after it): it is rejected, the others are caught up on.
            convo = convert_item(_convo_view, raw, network=NETWORK, path=f"convos.{index}")
            if isinstance(convo, Rejected):
                rejected.append(convo)
                continue
            for member in convo.members:
                self._profiles[member.did] = member
            if convo.unread_count <= 0:
                continue
            page = await self._xrpc(
                "GET", "chat.bsky.convo.getMessages",
                params={"convoId": convo.id, "limit": min(convo.unread_count, 100)}, chat=True,
            )
            messages = convert_item(_messages_page, page.content, network=NETWORK,
                                    path=f"convos.{index}.messages")
            if isinstance(messages, Rejected):
                rejected.append(messages)
                continue
            events.extend(chat_page_events(
                messages, convo_id=convo.id, our_did=self._did,
                profiles=self._profiles, rejected=rejected,
            ))
        return events

    async def stream(self, cursor: str | None) -> AsyncGenerator[Batch, None]:
        """Listening mode: yield Jetstream posts about us, resuming after ``cursor``.

        The cursor is this adapter's (from ``poll`` or ``stream``; it carries
        the last Jetstream ``time_us``) or a bare ``time_us``. A poll cursor
        resumes at its newest notification's time; with nothing seen yet the
        stream starts live. Each batch holds one event, or none (a checkpoint,
        so the cursor keeps up with the stream): a matching post as
        `MessageReceived`; an edit of a post delivered before, or of a post
        that matches, as `MessageUpdated`; a deletion of a post delivered
        before as `MessageDeleted`. A post event that cannot be read comes in
        ``Batch.rejected``. After a dropped connection the stream reconnects
        at the last ``time_us``, backing off with the HTTP retry policy; it
        gives up after ``settings.stream_reconnects`` drops in a row without
        an event in between.

        Raises:
            TransientError: The Jetstream connection kept failing.
            ConfigurationError: ``cursor`` is not a Bluesky cursor.
        """
        state = _Cursor.parse(cursor)
        async with aclosing(self._jetstream(state.stream_start())) as found:
            async for batch, time_us in found:
                if time_us is not None:
                    state = replace(state, time_us=time_us)
                if batch.events or batch.rejected or time_us is not None:
                    yield batch.model_copy(update={"cursor": state.dump()})

    async def _jetstream(
        self, position: int | None
    ) -> AsyncGenerator[tuple[Batch, int | None], None]:
        """What Jetstream brings, as batches (no cursor) with their ``time_us``.

        Reconnects after a clean close at once, and after a drop at the pace
        of the client's `Reconnects`.
        """
        api = self.client
        reconnects = api.reconnects(limit=self.settings.stream_reconnects,
                                    what="the Jetstream connection")
        while True:
            reader = read_jetstream(api, self.settings.jetstream_url, cursor=position,
                                    keep=self._jetstream_filter())
            try:
                async with aclosing(reader) as found:
                    async for item, time_us in found:
                        if time_us is not None:
                            reconnects.connected()  # an event came: the connection works
                            position = time_us
                        yield self._jetstream_batch(item), time_us
            except TransientError as exc:
                await reconnects.wait(exc)  # raises once it dropped too often in a row
            else:
                await reconnects.wait()  # the server closed it (a restart): reconnect

    def _jetstream_batch(self, item: JetstreamItem) -> Batch:
        """The batch of one thing Jetstream brought (empty for a checkpoint)."""
        if item is None:
            return Batch()
        if isinstance(item, Rejected):
            return Batch(rejected=(item,))
        if isinstance(item, Deleted):
            deleted = item

            def gone(line: str) -> MessageDeleted:
                return jetstream_deleted(
                    deleted.uri, time_us=deleted.time_us, our_did=self._did,
                    conversation=self._known.conversation(deleted.uri))

            found: Event | Rejected = convert_item(gone, item.line, network=NETWORK)
            if not isinstance(found, Rejected):
                self._known.forget(item.uri)
        else:
            matched = item

            def convert(line: str) -> MessageReceived | MessageUpdated:
                raw = decode_json(line, network=NETWORK)
                if matched.operation == "update":
                    return jetstream_updated(matched.event, our_did=self._did, raw=raw)
                return jetstream_event(matched.event, our_did=self._did, raw=raw)

            found = convert_item(convert, item.line, network=NETWORK)
            if isinstance(found, MessageReceived | MessageUpdated):
                self._known.add(found.message.ref.id, found.message.conversation)
        if isinstance(found, Rejected):
            return Batch(rejected=(found,))
        return Batch(events=(found,))

    # sources -------------------------------------------------------------------

    def sources(self) -> Sequence[Source]:
        """Notifications, chat (``direct_messages``) and Jetstream (``listening``), each apart.

        ``notifications`` and ``chat`` are polled every ``poll_interval``
        seconds, each with its own cursor; ``jetstream`` (listening mode)
        reads one Jetstream connection from its last ``time_us``, and when it
        drops the hub reconnects it there (Jetstream replays what came since).
        """
        interval = self.settings.poll_interval
        found: list[Source] = [PollSource(
            "notifications", self._notifications, interval=interval,
            backlog=self._notifications_backlog,
        )]
        if self.settings.direct_messages:
            found.append(PollSource("chat", self._chat, interval=interval,
                                    backlog=self._chat_backlog))
        if self.settings.listening:
            # Jetstream resumes at its own time_us: no poll catches up for it.
            found.append(StreamSource("jetstream", self._jetstream_connection))
        return found

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        """Split a cursor of ``poll`` or ``listen`` into the sources' cursors.

        Notifications keep the newest time and URIs seen (and the pages
        still to deliver), chat its log cursor, Jetstream its ``time_us``
        (or, with none, the newest notification's time, where ``stream``
        would have resumed).

        Raises:
            ConfigurationError: ``cursor`` is not a Bluesky cursor.
        """
        state = _Cursor.parse(cursor)
        parts: dict[str, str] = {}
        if state.seen_at or state.back:
            parts["notifications"] = _Cursor(
                seen_at=state.seen_at, uris=state.uris, back=state.back).dump()
        if state.chat:
            parts["chat"] = state.chat
        start = state.stream_start()
        if start is not None:
            parts["jetstream"] = str(start)
        return parts

    async def _notifications(self, cursor: str | None) -> Batch:
        """One page of notifications after ``cursor`` (the ``notifications`` source)."""
        state = _Cursor.parse(cursor)
        rejected: list[Rejected] = []
        events, read, more = await self._poll_notifications(
            _Cursor(seen_at=state.seen_at, uris=state.uris, back=state.back), rejected)
        self._remember_posts(events)
        return Batch(events=tuple(events), cursor=read.dump(), more=more,
                     rejected=tuple(rejected))

    async def _notifications_backlog(
        self, *, limit: int = 0, since: datetime | None = None
    ) -> Batch:
        """The newest notification (the position), and for a backfill the newest page."""
        rejected: list[Rejected] = []
        events, read, _ = await self._poll_notifications(_Cursor(), rejected)
        if limit <= 0:
            return Batch(cursor=read.dump())
        self._remember_posts(events)
        return Batch(events=newest_events(events, limit=limit, since=since),
                     cursor=read.dump(), rejected=tuple(rejected))

    async def _chat(self, cursor: str | None) -> Batch:
        """The chat log after ``cursor`` (the ``chat`` source); ``None``: unread ones too."""
        if not self._chat_ok:
            return Batch()
        rejected: list[Rejected] = []
        events: list[Event] = []
        try:
            if cursor is None:
                events.extend(await self._unread_messages(rejected))
            logged, after, more = await self._poll_chat(cursor or self._chat_start, rejected)
        except AuthenticationError as exc:
            if not self._chat_unavailable(exc):
                raise
            return Batch()
        events.extend(logged)
        unique = sorted({event.id: event for event in events}.values(),
                        key=lambda event: event.occurred_at)
        return Batch(events=tuple(unique), cursor=after, more=more, rejected=tuple(rejected))

    async def _chat_backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        """The chat log's position (read by ``open``), and for a backfill the unread messages."""
        if limit <= 0 or not self._chat_ok:
            return Batch(cursor=self._chat_start)
        rejected: list[Rejected] = []
        try:
            unread = await self._unread_messages(rejected)
        except AuthenticationError as exc:
            if not self._chat_unavailable(exc):
                raise
            return Batch(cursor=self._chat_start)
        return Batch(events=newest_events(unread, limit=limit, since=since),
                     cursor=self._chat_start, rejected=tuple(rejected))

    async def _jetstream_connection(self, cursor: str | None) -> AsyncGenerator[Batch, None]:
        """One Jetstream connection from ``cursor`` (a ``time_us``; the ``jetstream`` source).

        Each batch's cursor is the last ``time_us`` read; it ends when the
        server closes the connection and raises `TransientError` when it drops.
        """
        position = _Cursor.parse(cursor).stream_start()
        reader = read_jetstream(self.client, self.settings.jetstream_url, cursor=position,
                                keep=self._jetstream_filter())
        async with aclosing(reader) as found:
            async for item, time_us in found:
                batch = self._jetstream_batch(item)
                if batch.events or batch.rejected or time_us is not None:
                    yield batch.model_copy(
                        update={"cursor": str(time_us) if time_us is not None else None})

    def _jetstream_filter(self) -> JetstreamFilter:
        return JetstreamFilter(did=self._did, handle=self._handle,
                               keywords=self.settings.keywords, known=self._known)

    def _remember_posts(self, events: Sequence[Event]) -> None:
        """Keep our public threads' posts, so Jetstream can tell their edits and deletions."""
        for event in events:
            if isinstance(event, MessageReceived) and not event.message.is_private:
                self._known.add(event.message.ref.id, event.message.conversation)

    def listen(
        self, cursor: str | None, *, use_stream: bool | None = None
    ) -> AsyncGenerator[Batch, None]:
        """Yield batches forever from one place: Jetstream in listening mode, else polling.

        ``use_stream=None`` follows ``settings.listening``. For a script
        reading the adapter alone; the hub runs ``sources()`` instead, which
        reads notifications, chat and Jetstream side by side.
        """
        streaming = self.settings.listening if use_stream is None else use_stream
        return super().listen(cursor, use_stream=streaming)

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        """Turn a recorded Bluesky answer or Jetstream lines into events, without the network.

        ``path`` names the endpoint, as ``/xrpc/<nsid>``, the bare NSID or a
        full URL: ``app.bsky.notification.listNotifications`` (mentions,
        replies, quotes and likes, as `poll` gives them),
        ``app.bsky.feed.getPostThread`` (every post of the thread),
        ``chat.bsky.convo.getLog`` (new messages from others, as `poll` gives
        them), ``chat.bsky.convo.getMessages`` (messages from others; its
        query must carry ``convoId``, which the answer does not), or a
        Jetstream ``/subscribe`` URL for JSON lines (every post creation,
        edit and deletion, unfiltered). Chat authors are known by DID only
        unless the log entry has ``relatedProfiles`` (no ``getConvo`` lookup).
        Without ``path``, an XRPC answer is recognised by its top-level key and
        a body that is not one JSON document is read as Jetstream lines.

        Args:
            body: The raw body, as recorded.
            path: The endpoint it answered, query allowed.
            account: Our DID: our posts get ``from_us``, our chat messages are left out.

        Returns:
            The events, oldest first.

        Raises:
            PayloadError: The body is malformed, or ``path`` is another endpoint.
        """
        return parse_payload(body, path=path, account=account)

    async def fetch_conversation(self, ref: Ref, *, limit: int = 50) -> Sequence[Message]:
        """Fetch a thread (``ref`` is a post URI) or a chat conversation, oldest first.

        Raises:
            NotFound: The thread or conversation is gone or hidden from us.
        """
        if ref.id.startswith("at://"):
            response = await self._xrpc(
                "GET", "app.bsky.feed.getPostThread",
                params={"uri": ref.id, "depth": 10, "parentHeight": 80},
            )
            thread = load(PostThreadOutput, response.content).thread
            return thread_messages(thread, our_did=self._did)[-limit:]
        response = await self._xrpc(
            "GET", "chat.bsky.convo.getMessages",
            params={"convoId": ref.id, "limit": min(max(limit, 1), 100)}, chat=True,
        )
        page = load(GetMessagesOutput, response.content)
        messages = []
        for item in page.messages:
            if item.get("$type", "chat.bsky.convo.defs#messageView").endswith("#messageView"):
                view = load(MessageView, item, path="messages")
                messages.append(chat_message(view, convo_id=ref.id, our_did=self._did))
        messages.sort(key=lambda message: message.created_at)
        return messages

    # outbound --------------------------------------------------------------------

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Post a reply or a post, or send a chat message.

        Raises:
            TextTooLong: Over 300 graphemes / 3000 bytes (1000 graphemes in chat).
            AmbiguousDelivery: A chat message may have been sent.
            NetworkError: The network refused it.
        """
        self.capabilities.rule_for(action).check(action.text, network=NETWORK)
        if isinstance(action, PrivateReply):
            return await self._send_chat(action, await self._convo_with(action.to.author.ref.id))
        if isinstance(action, Reply):
            convo = await self._chat_target(action)
            if convo is not None:
                return await self._send_chat(action, convo)
        if (action.visibility or "public") != "public":
            raise CapabilityNotSupported(
                "visibility", network=NETWORK,
                detail=f"Bluesky posts are public (asked: {action.visibility}); "
                "answer privately with PrivateReply or visibility='private'",
            )
        return await self._create_post(action)

    async def _chat_target(self, action: Reply | PrivateReply) -> str | None:
        """The chat conversation an answer goes to, or ``None`` for a public reply.

        A reply to a chat message stays in its conversation; a private reply,
        or a reply asked to be private, goes to the author's conversation with us.
        """
        if isinstance(action, Reply) and action.to.is_private:
            return action.to.conversation.id
        if isinstance(action, PrivateReply) or action.visibility == "private":
            return await self._convo_with(action.to.author.ref.id)
        return None

    async def _create_post(self, action: Reply | Post) -> Sent:
        record: dict[str, Any] = {"$type": POST, "text": action.text, "createdAt": _now_iso()}
        facets = await self._facets(action.text)
        if facets:
            record["facets"] = facets
        root: Ref | None = None
        if isinstance(action, Reply):
            parent = await self._strong_ref(action.to.ref)
            root = await self._strong_ref(action.to.conversation)
            record["reply"] = {
                "root": {"uri": root.id, "cid": root.extra["cid"]},
                "parent": {"uri": parent.id, "cid": parent.extra["cid"]},
            }
        rkey = record_key(action.idempotency_key)
        created = await self._create_record(POST, rkey, record, action.text)
        ref = post_ref(created.uri, created.cid)
        return Sent(
            idempotency_key=action.idempotency_key,
            ref=ref,
            conversation=root if root is not None else ref,
            raw={"uri": created.uri, "cid": created.cid},
        )

    async def _create_record(
        self, collection: str, rkey: str, record: dict[str, Any], text: str | None
    ) -> CreateRecordOutput:
        body = {"repo": self.did, "collection": collection, "rkey": rkey, "record": record}
        try:
            response = await self._xrpc("POST", "com.atproto.repo.createRecord",
                                        json_body=body, idempotent=False)
        except (AmbiguousDelivery, TransientError, RequestRejected) as exc:
            # No answer at all: the outbox reconciles (find_sent) before any retry.
            # An answer naming a taken key, or a server error (what the reference
            # PDS answers for a taken key), is checked against the record now.
            if exc.status is None or (isinstance(exc, RequestRejected) and not (
                exc.code in DUPLICATE_RECORD_ERRORS or exc.status == 409
            )):
                raise
            existing = await self._own_record(collection, rkey)
            if existing is None:
                raise
            if text is not None and existing.value.get("text") != text:
                raise RequestRejected(
                    "the record key of this action already holds a different record",
                    network=NETWORK, status=exc.status, code=exc.code,
                ) from None
            logger.info("bluesky: %s/%s already existed; the first try had landed",
                        collection, rkey)
            return CreateRecordOutput(uri=existing.uri, cid=existing.cid or "")
        return load(CreateRecordOutput, response.content)

    async def _own_record(self, collection: str, rkey: str) -> GetRecordOutput | None:
        try:
            response = await self._xrpc(
                "GET", "com.atproto.repo.getRecord",
                params={"repo": self.did, "collection": collection, "rkey": rkey},
            )
        except NotFound:
            return None
        except RequestRejected as exc:
            if exc.code == "RecordNotFound":
                return None
            raise
        return load(GetRecordOutput, response.content)

    async def _strong_ref(self, ref: Ref) -> Ref:
        if ref.extra.get("cid"):
            return ref
        repo, collection, rkey = _split_uri(ref.id)
        response = await self._xrpc(
            "GET", "com.atproto.repo.getRecord",
            params={"repo": repo, "collection": collection, "rkey": rkey},
        )
        found = load(GetRecordOutput, response.content)
        if not found.cid:
            raise NotFound(f"no CID for {ref.id}", network=NETWORK)
        return post_ref(found.uri, found.cid)

    async def _facets(self, text: str) -> list[dict[str, Any]]:
        detected = detect(text)
        handles = sorted({item.value.lower() for item in detected if item.kind == "mention"})
        for handle in handles:
            if handle not in self._dids:
                did = await self._resolve(handle)
                if did is not None:
                    self._dids[handle] = did
        return facets_for(text, detected, self._dids)

    async def _resolve(self, handle: str) -> str | None:
        try:
            response = await self._xrpc("GET", "com.atproto.identity.resolveHandle",
                                        params={"handle": handle})
        except (NotFound, RequestRejected):
            return None
        return load(ResolveHandleOutput, response.content).did

    async def _convo_with(self, did: str) -> str:
        response = await self._xrpc(
            "GET", "chat.bsky.convo.getConvoForMembers",
            params={"members": [self.did, did]}, chat=True,
        )
        return load(ConvoOutput, response.content).convo.id

    async def _send_chat(self, action: Reply | PrivateReply, convo_id: str) -> Sent:
        # Chat has no record keys: a send whose answer was lost is looked up
        # before it is sent again, and a delivered key is never sent twice.
        key = action.idempotency_key
        if key in self._sent_chat:
            return self._sent_chat[key]
        if key in self._chat_unsure:
            found = await self._find_chat(action, convo_id)
            if found is not None:
                return found
        message: dict[str, Any] = {"text": action.text}
        facets = await self._facets(action.text)
        if facets:
            message["facets"] = facets
        try:
            response = await self._xrpc(
                "POST", "chat.bsky.convo.sendMessage",
                json_body={"convoId": convo_id, "message": message}, chat=True,
                idempotent=False,
            )
        except AmbiguousDelivery:
            self._chat_unsure.add(key)
            raise
        view = load(MessageView, response.content)
        return self._remember(self._chat_sent(action, view, convo_id))

    def _remember(self, sent: Sent) -> Sent:
        self._chat_unsure.discard(sent.idempotency_key)
        self._sent_chat[sent.idempotency_key] = sent
        while len(self._sent_chat) > _REMEMBERED:
            self._sent_chat.pop(next(iter(self._sent_chat)))
        return sent

    async def _find_chat(self, action: Reply | PrivateReply, convo_id: str) -> Sent | None:
        """The message ``action`` sent in the conversation, if it landed.

        Chat messages have no key of ours, so the message is found by what
        identifies it: sent by us, with the action's exact text, after the
        message it answers, and not already known as another action's. The
        conversation is read back, newest first, to the answered message
        (a chat message: by its id; a post answered privately: by its time,
        less ``_CLOCK_SKEW`` as ``createdAt`` is the author's clock), so
        messages of ours sent since, by this or another action, never hide
        it. Of several matches the oldest wins: it came first.
        """
        bound = action.to.created_at
        answered: str | None = None
        if action.to.is_private and action.to.conversation.id == convo_id:
            answered = action.to.ref.id  # in this conversation: stop at it, times may tie
        else:
            bound -= _CLOCK_SKEW
        claimed = {sent.ref.id for key, sent in self._sent_chat.items()
                   if key != action.idempotency_key}
        found: MessageView | None = None
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"convoId": convo_id, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = await self._xrpc("GET", "chat.bsky.convo.getMessages",
                                        params=params, chat=True)
            page = load(GetMessagesOutput, response.content)
            reached = False
            for item in page.messages:  # newest first
                if answered is not None and item.get("id") == answered:
                    reached = True  # the message answered: ours came after it
                    break
                if not str(item.get("$type", "#messageView")).endswith("#messageView"):
                    continue
                view = convert_item(_message_view, item, network=NETWORK, path="messages")
                if isinstance(view, Rejected):
                    continue
                sent_at = _iso(view.sent_at)
                if sent_at is None:
                    continue
                if sent_at < bound:
                    reached = True
                    break
                if (view.sender.did == self.did and view.text == action.text
                        and view.id not in claimed):
                    found = view
            if reached or not page.cursor or not page.messages:
                break
            cursor = page.cursor
        if found is None:
            return None
        return self._remember(self._chat_sent(action, found, convo_id))

    def _chat_sent(
        self, action: Reply | PrivateReply | Post, view: MessageView, convo_id: str
    ) -> Sent:
        sent_at = _iso(view.sent_at) or datetime.now(UTC)
        return Sent(
            idempotency_key=action.idempotency_key,
            ref=Ref(network=NETWORK, id=view.id, extra={"convo": convo_id}),
            conversation=Ref(network=NETWORK, id=convo_id),
            sent_at=sent_at,
            raw=view.model_dump(by_alias=True, mode="json"),
        )

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look for what ``action`` may already have created.

        A post or public reply is looked up by its record key, which is exact.
        A chat message has no key: it is the message of ours with the
        action's text sent after the message answered (see `_find_chat`),
        wherever it sits among later messages.
        """
        if action.idempotency_key in self._sent_chat:
            return self._sent_chat[action.idempotency_key]
        convo_id = None if isinstance(action, Post) else await self._chat_target(action)
        if convo_id is None or isinstance(action, Post):
            existing = await self._own_record(POST, record_key(action.idempotency_key))
            if existing is None or existing.value.get("text") != action.text:
                return None
            ref = post_ref(existing.uri, existing.cid or "")
            reply = existing.value.get("reply")
            root = ref
            if isinstance(reply, dict) and isinstance(reply.get("root"), dict):
                root = post_ref(str(reply["root"].get("uri")), str(reply["root"].get("cid")))
            return Sent(idempotency_key=action.idempotency_key, ref=ref, conversation=root,
                        raw={"uri": existing.uri, "cid": existing.cid})
        return await self._find_chat(action, convo_id)

    async def react(self, action: React) -> Sent:
        """Like a post (an ``app.bsky.feed.like`` record), or a chat message (❤️).

        Raises:
            CapabilityNotSupported: A reaction other than ``"like"``.
            NetworkError: The network refused it.
        """
        if action.reaction != "like":
            raise CapabilityNotSupported("react", network=NETWORK,
                                         detail=f"reaction {action.reaction!r}")
        target = action.target
        if not target.id.startswith("at://"):
            convo = target.extra.get("convo")
            if not convo:
                raise ConfigurationError("a chat message ref needs extra['convo']",
                                         network=NETWORK)
            await self._xrpc(
                "POST", "chat.bsky.convo.addReaction",
                json_body={"convoId": convo, "messageId": target.id, "value": "❤️"},
                chat=True, idempotent=True,
            )
            return Sent(idempotency_key=action.idempotency_key, ref=target,
                        conversation=Ref(network=NETWORK, id=convo))
        subject = await self._strong_ref(target)
        record = {
            "$type": LIKE,
            "subject": {"uri": subject.id, "cid": subject.extra["cid"]},
            "createdAt": _now_iso(),
        }
        created = await self._create_record(LIKE, record_key(action.idempotency_key),
                                            record, None)
        return Sent(idempotency_key=action.idempotency_key, ref=subject,
                    raw={"uri": created.uri, "cid": created.cid})

    async def delete(self, action: Delete) -> Sent:
        """Delete one of our posts or likes (by ``at://`` URI), or a chat message for us.

        Raises:
            RequestRejected: The record is not ours.
            NetworkError: The network refused it.
        """
        target = action.target
        if target.id.startswith("at://"):
            repo, collection, rkey = _split_uri(target.id)
            if repo != self.did:
                raise RequestRejected("only our own records can be deleted", network=NETWORK)
            await self._xrpc(
                "POST", "com.atproto.repo.deleteRecord",
                json_body={"repo": repo, "collection": collection, "rkey": rkey},
                idempotent=True,
            )
            return Sent(idempotency_key=action.idempotency_key, ref=target)
        convo = target.extra.get("convo")
        if not convo:
            raise ConfigurationError("a chat message ref needs extra['convo']", network=NETWORK)
        await self._xrpc(
            "POST", "chat.bsky.convo.deleteMessageForSelf",
            json_body={"convoId": convo, "messageId": target.id}, chat=True, idempotent=True,
        )
        return Sent(idempotency_key=action.idempotency_key, ref=target,
                    conversation=Ref(network=NETWORK, id=convo))

