"""The Meta adapters: Facebook Pages and Instagram over the Graph API and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal

import anyio
import httpx
from pydantic import AwareDatetime, Field, SecretStr, ValidationError

from omnichannel._lazy import lazy_attribute
from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import (
    Adapter,
    AdapterSettings,
    Batch,
    Rejected,
    WebhookRequest,
    WebhookResponse,
    decode_json,
    newest_events,
)
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    ActionError,
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    ConfigurationError,
    NetworkError,
    NotFound,
    PayloadError,
    RequestRejected,
    WebhookSignatureError,
    WindowClosed,
)
from omnichannel.events import Event, MessageReceived
from omnichannel.http import ApiClient, RateLimitInfo, RetryPolicy, open_client
from omnichannel.model import Message, Person, Ref
from omnichannel.sources import PollSource, Source
from omnichannel.text import TextRule

from ._convert import UNKNOWN_AUTHOR, Converter, page_items, parse_time
from ._errors import MetaErrors
from ._ratelimit import parse_meta_headers
from ._setup import DEFAULT_FIELDS, Setup, WebhookSubscription, permissions_for
from ._tokens import SwappableBearer, TokenHealth, TokenHealthHook, deliver

__all__ = [
    "GRAPH_VERSION",
    "FacebookAdapter",
    "FacebookSettings",
    "InstagramAdapter",
    "InstagramSettings",
    "MetaAdapter",
    "MetaSettings",
]

logger = logging.getLogger("omnichannel.meta")

GRAPH_VERSION = "v25.0"
"""The Graph API version every request names, unless ``graph_version`` says otherwise."""

SIGNATURE_HEADER = "x-hub-signature-256"

_IG_COMMENT = "id,text,timestamp,from,username,parent_id"

STANDARD_WINDOW = timedelta(hours=24)
"""How long after the customer's last message anything may be sent (``RESPONSE``)."""
DM_REACTIONS: tuple[str, ...] = ("love",)
"""The reactions the Send API puts on a DM (``sender_action: react``): a heart."""

HUMAN_AGENT_WINDOW = timedelta(days=7)
"""How long a human agent may answer with the ``HUMAN_AGENT`` tag."""
PRIVATE_REPLY_WINDOW = timedelta(days=7)
"""How long after a comment its one private reply may be sent."""
BACKLOG_REACH = timedelta(days=7)
"""How far back a first run's backfill reads when it names no age."""



class MetaSettings(AdapterSettings):
    """What both Meta adapters need.

    Attributes:
        access_token: A long-lived Page access token (Facebook, and Instagram
            with Facebook Login) or an Instagram User token (Instagram Login).
        app_secret: The app secret: webhook deliveries are signed with it.
        verify_token: The string you typed in the app's webhook settings,
            echoed by Meta in the subscription handshake.
        graph_version: The Graph API version (default `GRAPH_VERSION`).
        base_url: The Graph host (``https://graph.facebook.com``;
            ``https://graph.instagram.com`` for Instagram Login).
        human_agent: Whether the app has the Human Agent permission (App
            Review): only then may a reply written or approved by a person go
            out after 24 hours, tagged ``HUMAN_AGENT``, up to 7 days.
        reconcile_posts: How many recent posts (or media) the reconciliation
            poll reads comments of.
        reconcile_conversations: How many recent conversations it reads.
        reconcile_lookback: How far back the first reconciliation poll looks.
        reconcile_max_pages: Most pages read from one listing in one poll.
        poll_interval: Seconds between reconciliation polls (default 300:
            webhooks are the primary inbound path).
        token_expires_at: When ``access_token`` expires, if it does (an
            Instagram Login token: 60 days after it was issued or refreshed).
            Unset, the token is taken as one that does not expire (a Page
            token from a long-lived user token).
        refresh_before: How long before ``token_expires_at`` an Instagram
            Login token is refreshed (on open and on each poll), or any other
            token reported ``"expiring"`` (see `TokenHealth`).
        automation_disclosure: A sentence telling the customer they are
            talking to an automated system, where the law requires it (Meta's
            policy names California and Germany). It goes out as its own
            message before an automated DM that starts a conversation (for
            this adapter), follows a lapse of ``disclosure_lapse`` or follows
            a person's reply; an automated private reply, which is a single
            message, starts with it. ``None`` (default): nothing is added.
        disclosure_lapse: How long after our last message a conversation
            counts as starting again.
    """

    access_token: SecretStr
    app_secret: SecretStr
    verify_token: SecretStr
    graph_version: str = Field(default=GRAPH_VERSION, pattern=r"^v\d+\.\d+$")
    base_url: str = "https://graph.facebook.com"
    human_agent: bool = False
    reconcile_posts: int = Field(default=10, ge=1, le=100)
    reconcile_conversations: int = Field(default=10, ge=1, le=100)
    reconcile_lookback: timedelta = timedelta(hours=24)
    reconcile_max_pages: int = Field(default=50, ge=1)
    poll_interval: float = Field(default=300.0, gt=0)
    token_expires_at: AwareDatetime | None = None
    refresh_before: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    automation_disclosure: str | None = Field(default=None, min_length=1)
    disclosure_lapse: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))


class FacebookSettings(MetaSettings):
    """How to reach one Facebook Page.

    Attributes:
        page_id: The Page's id.
    """

    page_id: str = Field(min_length=1)


class InstagramSettings(MetaSettings):
    """How to reach one Instagram professional account.

    Attributes:
        account_id: The Instagram professional account's id (the ``entry.id``
            of its webhook deliveries).
        login: ``"facebook"`` (Page token, ``graph.facebook.com``) or
            ``"instagram"`` (Instagram User token; set ``base_url`` to
            ``https://graph.instagram.com``).
        page_id: The linked Facebook Page (Facebook Login only): the app is
            installed on it to get the account's webhooks
            (`subscribe_webhooks`).
        private_replies_per_hour: Meta's limit on private replies per account
            and rolling hour (750); the adapter paces them to it.
    """

    account_id: str = Field(min_length=1)
    login: Literal["facebook", "instagram"] = "facebook"
    page_id: str | None = None
    private_replies_per_hour: int = Field(default=750, ge=1)


_REMEMBERED = 50  # unusable items the poll cursor remembers
_RETRY_REFRESH = timedelta(hours=1)  # after a failed refresh, the next try
_WARN_AGAIN = timedelta(hours=24)  # how often "expiring" is said again
_HOUR = timedelta(hours=1)
_PRIVATE_BUCKET = "private_replies"


def _digest(body: bytes) -> str:
    """A short digest naming an unusable item in the poll cursor."""
    return hashlib.sha256(body).hexdigest()[:16]


def _sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class MetaAdapter(Adapter):
    """What Facebook Pages and Instagram share: webhooks, messaging, comments.

    Not registered itself: use `FacebookAdapter` or `InstagramAdapter`.

    Inbound, webhook deliveries are verified (``X-Hub-Signature-256``) and
    parsed into events, an item that cannot be used rejected alone; ``poll``
    is a reconciliation pass over recent comments and conversations that
    gives the same event ids, so the core drops what a webhook already
    brought. Outbound: public replies to comments, one private reply per
    comment within 7 days, DMs inside the 24-hour window (``RESPONSE``) or,
    with the Human Agent permission, ``HUMAN_AGENT`` up to 7 days; hiding and
    deleting comments.

    Args:
        settings: The settings (or a mapping to validate).
        transport: An httpx transport to use instead of the network.
        retry: The HTTP retry policy (default: the HTTP layer's).
        clock: Returns the current aware time (windows are checked against it).
        on_token_health: Called with each `TokenHealth` (a refreshed token to
            persist, a token expiring, a failed refresh); it is also logged.
    """

    network: ClassVar[str]
    signature_headers: ClassVar[frozenset[str]] = frozenset({SIGNATURE_HEADER})
    settings: MetaSettings
    _comment_replies_edge: ClassVar[str] = "comments"
    _message_field: ClassVar[str] = "message"

    def __init__(
        self,
        settings: MetaSettings | Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        on_token_health: TokenHealthHook | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self._retry = retry
        self._clock = clock or (lambda: datetime.now(UTC))
        self._on_token_health = on_token_health
        self._auth = SwappableBearer(self.settings.access_token)
        self._expires_at = self.settings.token_expires_at
        self._next_token_check: datetime | None = None
        self._stack: AsyncExitStack | None = None
        self._client: ApiClient | None = None
        self._converter = Converter(network=self.network, account=self.account_id)
        self._private_replied: set[str] = set()
        self._private_sent: deque[datetime] = deque()
        # Per customer: when we last wrote, and whether a person wrote it.
        self._last_written: dict[str, tuple[datetime, bool]] = {}
        # The Human Agent window exists only when the app was granted it.
        vars(self)["capabilities"] = type(self).capabilities.model_copy(update={
            "human_agent_window": HUMAN_AGENT_WINDOW if self.settings.human_agent else None,
        })

    @property
    def account_id(self) -> str:
        """Our Page id (Facebook) or Instagram account id."""
        raise NotImplementedError

    @property
    def messaging_id(self) -> str:
        """The id whose ``/messages`` and ``/conversations`` edges we use."""
        return self.account_id

    # lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the client and read our account's name.

        Raises:
            AuthenticationError: The token is invalid, expired or revoked (190).
            PayloadError: The answer is not the Graph API's.
        """
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(open_client(
                network=self.network,
                base_url=f"{self.settings.base_url.rstrip('/')}/{self.settings.graph_version}",
                auth=self._auth,
                transport=self.transport,
                rate_limit_parser=parse_meta_headers,
                error_mapper=MetaErrors(self.network),
                retry=self._retry,
                default_bucket="account",
            ))
            me = await self._json("GET", "/{id}", path_params={"id": self.account_id},
                                  params={"fields": self._profile_fields})
        except BaseException:
            self._client = None
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        self._stack = stack
        if not isinstance(me, Mapping):
            raise PayloadError("expected an object", network=self.network, path="me")
        handle = me.get("username") or me.get("name")
        self.account = Person(
            ref=Ref(network=self.network, id=self.account_id),
            handle=handle if isinstance(handle, str) else None,
            display_name=me.get("name") if isinstance(me.get("name"), str) else None,
        )
        self._converter.handle = self.account.handle
        await self._check_token()

    _profile_fields: ClassVar[str] = "id,name"

    # token health -------------------------------------------------------------

    @property
    def token_expires_at(self) -> datetime | None:
        """When the token in use expires (moved on by each refresh), if known."""
        return self._expires_at

    def _refreshable(self) -> bool:
        """Whether this token can be refreshed by the adapter (Instagram Login)."""
        return False

    async def refresh_token(self) -> TokenHealth:
        """Refresh the access token now (Instagram Login only).

        Raises:
            ConfigurationError: The token is not an Instagram Login one.
        """
        raise ConfigurationError("only an Instagram Login token can be refreshed",
                                 network=self.network)

    async def _check_token(self) -> None:
        """Refresh a token near expiry (or say it is expiring); never raises for it."""
        if self._expires_at is None:
            return
        now = self._now()
        if self._expires_at - now > self.settings.refresh_before:
            return
        if self._next_token_check is not None and now < self._next_token_check:
            return
        if not self._refreshable():
            self._next_token_check = now + _WARN_AGAIN
            await self._token_health(TokenHealth(
                network=self.network, account_id=self.account_id, status="expiring",
                expires_at=self._expires_at,
            ))
            return
        try:
            await self.refresh_token()
        except (AuthenticationError, NetworkError, PayloadError) as exc:
            self._next_token_check = now + _RETRY_REFRESH
            await self._token_health(TokenHealth(
                network=self.network, account_id=self.account_id, status="refresh_failed",
                expires_at=self._expires_at, error=f"{type(exc).__name__}: {exc}",
            ))
        else:
            self._next_token_check = None

    async def _token_health(self, health: TokenHealth) -> None:
        """Log ``health``, hand it to ``on_token_health``, and report it to the hub."""
        await deliver(self._on_token_health, health)
        self.report_auth_health(health.status, health.error or "", expires_at=health.expires_at)

    async def aclose(self) -> None:
        """Close the HTTP client. Safe to call twice."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # plumbing ----------------------------------------------------------------

    @property
    def _api(self) -> ApiClient:
        if self._client is None:
            raise ConfigurationError("the adapter is not open", network=self.network)
        return self._client

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._api.request(method, path, **kwargs)
        if not response.content:
            return None
        return decode_json(response.content, network=self.network, path=path)

    # setup -------------------------------------------------------------------

    def _subscription_target(self) -> tuple[Setup, str]:
        """Which setup this is, and the object the app is installed on."""
        raise NotImplementedError

    async def subscribe_webhooks(
        self, *, fields: Sequence[str] | None = None
    ) -> WebhookSubscription:
        """Install the app on our account for webhook ``fields``; report what Meta then lists.

        ``POST /{id}/subscribed_apps`` with ``subscribed_fields`` (the Page for
        Facebook; the account for Instagram Login, its linked ``page_id`` for
        Facebook Login), then ``GET /{id}/subscribed_apps`` to read back the
        fields, and ``GET /me/permissions`` for what the token was granted.
        Run it once when connecting an account; it changes nothing when the
        app is already installed with those fields. The adapter must be open.

        Args:
            fields: The webhook fields (default `DEFAULT_FIELDS` for the setup).

        Raises:
            ConfigurationError: Instagram with Facebook Login and no ``page_id``.
            AuthenticationError: The token is invalid, expired or revoked.
            RequestRejected: Meta refused the subscription (a missing
                permission or Page task, an unknown field).
        """
        setup, target = self._subscription_target()
        wanted = tuple(fields) if fields else DEFAULT_FIELDS[setup]
        await self._json("POST", "/{id}/subscribed_apps", path_params={"id": target},
                         data={"subscribed_fields": ",".join(wanted)})
        listing = await self._json("GET", "/{id}/subscribed_apps", path_params={"id": target})
        subscribed: tuple[str, ...] = ()
        for app in page_items(listing, network=self.network, path="subscribed_apps"):
            found = app.get("subscribed_fields") if isinstance(app, Mapping) else None
            names = tuple(str(f) for f in found) if isinstance(found, list) else ()
            # The app whose fields cover most of those asked for is ours.
            if len(set(names) & set(wanted)) > len(set(subscribed) & set(wanted)):
                subscribed = names
        missing: tuple[str, ...] | None
        try:
            granted = await self._granted_permissions()
        except (RequestRejected, NotFound, PayloadError):
            logger.info("%s: the token cannot list its permissions; not checked", self.network)
            missing = None
        else:
            missing = tuple(p for p in permissions_for(setup, wanted) if p not in granted)
        report = WebhookSubscription(network=self.network, object_id=target, requested=wanted,
                                     subscribed=subscribed, missing_permissions=missing)
        if not report.ok:
            logger.warning("%s: webhooks for %s lack fields %s, permissions %s", self.network,
                           target, list(report.missing_fields), list(missing or ()))
        return report

    async def _granted_permissions(self) -> frozenset[str]:
        body = await self._json("GET", "/{id}/permissions", path_params={"id": "me"})
        granted = set()
        for item in page_items(body, network=self.network, path="permissions"):
            if isinstance(item, Mapping) and item.get("status") == "granted":
                granted.add(str(item.get("permission")))
        return frozenset(granted)

    # webhooks ----------------------------------------------------------------

    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Answer the subscription handshake, or check a delivery's signature.

        ``GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``
        answers the challenge when the token is ours. A ``POST`` must carry
        ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body
        under the app secret, compared in constant time.

        Raises:
            WebhookSignatureError: The token or signature is missing or wrong.
        """
        if request.method == "GET":
            mode = request.query.get("hub.mode")
            if mode is None:
                return None
            token = request.query.get("hub.verify_token")
            challenge = request.query.get("hub.challenge", "")
            if token is None:
                raise WebhookSignatureError("verify token missing", network=self.network,
                                            missing=True)
            expected = self.settings.verify_token.get_secret_value()
            good = hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))
            if mode != "subscribe" or not good:
                raise WebhookSignatureError("verify token wrong", network=self.network)
            return WebhookResponse(body=challenge.encode("utf-8"))
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookSignatureError("X-Hub-Signature-256 missing", network=self.network,
                                        missing=True)
        expected = _sign(self.settings.app_secret.get_secret_value(), request.body)
        if not hmac.compare_digest(given.strip().lower().encode("utf-8"),
                                   expected.encode("utf-8")):
            raise WebhookSignatureError(network=self.network)
        return None

    def parse(self, request: WebhookRequest) -> Batch:
        """Turn a verified delivery (many entries, changes and messaging items) into events.

        An item that cannot be used is reported in ``Batch.rejected`` (the
        webhook app keeps it as a dead letter) while the others are stored.
        Fields the adapter does not read (read receipts, deliveries, Page
        settings) give no event.

        Raises:
            PayloadError: The body is not JSON or has no ``entry`` list.
        """
        return self._converter.delivery(request.body)

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        """Turn a recorded webhook body or Graph API answer into events, without the network.

        A body with an ``entry`` list is a webhook delivery (``path`` is then
        ignored). Otherwise ``path`` names the Graph edge it answered:
        ``/{post-id}/comments`` or ``/{ig-comment-id}/replies`` (a page of
        comments; the id in the path is the thread), ``/{id}/messages`` (a page
        of conversation messages), or ``/{comment-id}``/``/{message-id}`` for
        one object (a ``message``/``text`` field tells which). ``/v25.0``-style
        version prefixes and hosts are ignored.

        Args:
            body: The raw body, as recorded.
            path: The edge it answered.
            account: Our Page or Instagram account id: what it wrote gets ``from_us``.

        Raises:
            PayloadError: The body is malformed (the first unusable item is named),
                or ``path`` is an edge the adapter does not read.
        """
        converter = Converter(network=cls.network, account=account)
        owner = account or "0"
        data = decode_json(body, network=cls.network)
        if isinstance(data, Mapping) and "entry" in data:
            batch = converter.delivery(body)
            if batch.rejected:
                first = batch.rejected[0]
                raise PayloadError(first.reason, network=cls.network, path=first.path)
            return list(batch.events)
        parts = [p for p in httpx.URL(path or "/").path.split("/") if p]
        if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
            parts = parts[1:]
        edge = parts[1] if len(parts) > 1 else None
        anchor = parts[0] if parts else None
        try:
            if edge in ("comments", "replies"):
                return [
                    cls._graph_comment(converter, item, anchor=anchor, account=owner,
                                       path=f"data.{i}")
                    for i, item in enumerate(page_items(data, network=cls.network, path="data"))
                ]
            if edge == "messages":
                return [
                    converter.graph_message(item, account=owner, path=f"data.{i}")
                    for i, item in enumerate(page_items(data, network=cls.network, path="data"))
                ]
            if edge is None and isinstance(data, Mapping):
                if "created_time" in data and ("from" in data or "to" in data) and "tags" in data:
                    return [converter.graph_message(data, account=owner, path="")]
                return [cls._graph_comment(converter, data, anchor=None, account=owner,
                                           path="")]
        except PayloadError:
            raise
        except ValidationError as exc:
            raise PayloadError.from_validation(exc, network=cls.network) from exc
        except Exception as exc:  # a shape no Graph answer has: refused, never a crash
            raise PayloadError(f"unreadable payload ({type(exc).__name__})",
                               network=cls.network, path=path or "") from exc
        raise PayloadError(f"cannot replay the {edge!r} edge", network=cls.network,
                           path=path or "")

    @classmethod
    def _graph_comment(
        cls, converter: Converter, raw: object, *, anchor: str | None, account: str, path: str
    ) -> Event:
        raise NotImplementedError

    # reconciliation poll -----------------------------------------------------

    async def poll(self, cursor: str | None) -> Batch:
        """Read recent comments and conversations: what a webhook outage may have dropped.

        The cursor is ``"<unix time>|<ids>|<digests>"``: items created at or
        after that second are read, except the event ids listed (those of that
        very second already returned) and the unusable items already reported
        (the latest 50, by a digest of their body), so a poll from a stored
        cursor repeats nothing. ``None`` reads from ``reconcile_lookback`` ago. Listings are
        followed page by page (``paging.cursors.after``) back to the cursor,
        at most ``reconcile_max_pages`` pages each: the Page's feed and the
        posts it is tagged in (Instagram: its media), the comments of those
        among the `reconcile_posts` most recent that changed since the cursor
        (or are newer), and the messages of the conversations updated since.
        Our own comments and messages are left out (the outbox recorded them).
        Event ids are those of webhook deliveries, so the hub drops what a
        webhook already brought.

        Raises:
            AuthenticationError: The token expired or was revoked.
            RateLimited: Meta throttles us (the cursor is not moved).
            PayloadError: A listing as a whole cannot be read.
        """
        await self._check_token()
        since, seen, reported = self._read_cursor(cursor)
        found: list[Event] = []
        rejected: list[Rejected] = []
        await self._poll_comments(since, found, rejected)
        await self._poll_conversations(since, found, rejected)
        events: dict[str, Event] = {}
        for event in found:
            if event.id not in seen:
                events.setdefault(event.id, event)
        ordered = sorted(events.values(), key=lambda e: e.occurred_at)
        newest = int(since.timestamp())
        if ordered:
            newest = max(newest, int(ordered[-1].occurred_at.timestamp()))
        at_newest = sorted(
            {*(i for i in seen if int(since.timestamp()) == newest),
             *(e.id for e in ordered if int(e.occurred_at.timestamp()) == newest)}
        )
        # An unusable item has no time to compare: the cursor remembers the
        # latest ones reported (by digest), so none is reported twice.
        digests = {_digest(item.body): item for item in rejected}
        fresh = [item for digest, item in digests.items() if digest not in reported]
        remembered = list(dict.fromkeys([*digests, *reported]))[:_REMEMBERED]
        next_cursor = f"{newest}|{','.join(at_newest)}|{','.join(remembered)}"
        return Batch(events=tuple(ordered), cursor=next_cursor, rejected=tuple(fresh))

    def sources(self) -> Sequence[Source]:
        """One ``reconcile`` source: ``poll`` every ``poll_interval`` seconds.

        Webhook deliveries come through the webhook app, not a source; the
        reconciliation poll reads what an outage of theirs dropped.
        """
        return (PollSource("reconcile", self.poll, interval=self.settings.poll_interval,
                           backlog=self.backlog),)

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        """A cursor stored before sources is the reconciliation poll's, unchanged."""
        return {"reconcile": cursor}

    async def backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        """Where the Page (or account) stands now, and the newest comments and messages before.

        The position is now (a poll from it reads what comes after). With a
        ``limit``, the history is read as a poll would, back to ``since`` or,
        without one, `BACKLOG_REACH` (7 days: nothing older can get a private
        reply or a DM answer anyway), and the newest ``limit`` events are
        returned.
        """
        now = int(self._clock().timestamp())
        if limit <= 0:
            # What was written earlier in this very second is before the position too.
            current = await self.poll(str(now))
            return Batch(cursor=current.cursor or f"{now}||")
        start = since or self._clock() - BACKLOG_REACH
        batch = await self.poll(str(int(start.timestamp())))
        stamp, _, rest = (batch.cursor or "").partition("|")
        digests = rest.partition("|")[2]
        cursor = batch.cursor if stamp.isdigit() and int(stamp) >= now else f"{now}||{digests}"
        kept = newest_events(batch.events, limit=limit, since=since)
        return Batch(events=kept, cursor=cursor, rejected=batch.rejected if kept else ())

    def _read_cursor(
        self, cursor: str | None
    ) -> tuple[datetime, frozenset[str], tuple[str, ...]]:
        if cursor:
            stamp, _, rest = cursor.partition("|")
            ids, _, digests = rest.partition("|")
            if stamp.isdigit():
                return (
                    datetime.fromtimestamp(int(stamp), UTC),
                    frozenset(i for i in ids.split(",") if i),
                    tuple(d for d in digests.split(",") if d),
                )
        start = self._clock() - self.settings.reconcile_lookback
        return datetime.fromtimestamp(int(start.timestamp()), UTC), frozenset(), ()

    async def _pages(
        self, path: str, *, path_params: Mapping[str, str], params: Mapping[str, Any],
        since: datetime, where: str, minimum: int = 0,
    ) -> list[tuple[str, object]]:
        """The items of a newest-first listing, page after page, back to ``since``.

        Stops when a page ends with an item older than ``since`` (and
        ``minimum`` items were read), when there is no next page, or after
        ``reconcile_max_pages`` pages. Each item comes with its path.
        """
        items: list[tuple[str, object]] = []
        after: str | None = None
        for _ in range(self.settings.reconcile_max_pages):
            query = dict(params)
            if after is not None:
                query["after"] = after
            body = await self._json("GET", path, path_params=path_params, params=query)
            data = page_items(body, network=self.network, path=where)
            base = len(items)
            items.extend((f"{where}.{base + i}", item) for i, item in enumerate(data))
            paging = body.get("paging") if isinstance(body, Mapping) else None
            cursors = paging.get("cursors") if isinstance(paging, Mapping) else None
            after = None
            if isinstance(paging, Mapping) and paging.get("next") and isinstance(cursors, Mapping):
                found = cursors.get("after")
                after = found if isinstance(found, str) and found else None
            if not data or after is None:
                break
            if len(items) >= minimum and self._older(data[-1], since):
                break
        return items

    def _older(self, item: object, since: datetime) -> bool:
        """Whether a listed item is older than ``since`` (an unreadable one is not)."""
        if not isinstance(item, Mapping):
            return False
        for key in ("updated_time", "created_time", "timestamp"):
            value = item.get(key)
            if value is not None:
                try:
                    return parse_time(value, network=self.network, path=key) < since
                except PayloadError:
                    return False
        return False

    def _changed(self, item: Mapping[str, Any], since: datetime) -> bool:
        """Whether a post or conversation may hold something new since ``since``."""
        return not self._older(item, since)

    async def _poll_comments(
        self, since: datetime, events: list[Event], rejected: list[Rejected]
    ) -> None:
        raise NotImplementedError

    async def _poll_conversations(
        self, since: datetime, events: list[Event], rejected: list[Rejected]
    ) -> None:
        params: dict[str, Any] = {
            "fields": "id,updated_time", "limit": self.settings.reconcile_conversations,
        }
        if self.network == "instagram":
            params["platform"] = "instagram"
        listing = await self._pages("/{id}/conversations", path_params={"id": self.messaging_id},
                                    params=params, since=since, where="conversations")
        for path, conversation in listing:
            if not isinstance(conversation, Mapping) or conversation.get("id") is None:
                rejected.append(Rejected.from_error(
                    PayloadError("expected a conversation with an id", network=self.network,
                                 path=path), conversation))
                continue
            if not self._changed(conversation, since):
                continue
            messages = await self._pages(
                "/{id}/messages", path_params={"id": str(conversation["id"])},
                params={"fields": "id,message,from,to,created_time", "limit": 25},
                since=since, where=f"{path}.messages",
            )
            for m_path, raw in messages:
                self._collect(
                    partial(self._converter.graph_message, raw, account=self.account_id,
                            path=m_path),
                    raw, since, events, rejected,
                )

    def _collect(
        self, make: Callable[[], Event], raw: object, since: datetime, events: list[Event],
        rejected: list[Rejected],
    ) -> None:
        try:
            event = make()
        except Exception as exc:  # one item never stops the rest
            rejected.append(self._converter.rejection(exc, raw, path=""))
            return
        # Our own comments and messages are not read back: the outbox recorded
        # what we sent (webhook echoes bring what was sent from elsewhere).
        ours = isinstance(event, MessageReceived) and event.message.from_us
        if event.occurred_at >= since and not ours:
            events.append(event)

    # outbound ----------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock()

    def _reply_target(self, to: Message) -> str:
        """Where a public reply goes: under the comment (or post) answered."""
        return to.ref.id

    def _replies_anchor(self, to: Message) -> str:
        """Whose replies a public reply to ``to`` is found among."""
        return self._reply_target(to)

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Reply publicly to a comment, privately to a comment, or in a DM.

        * `Reply` to a comment or post: ``POST /{comment-id}/comments``
          (Instagram: ``/{comment-id}/replies``), in the thread.
        * `PrivateReply` to a comment (or a `Reply` with ``visibility="private"``):
          ``POST /{id}/messages`` with ``recipient: {comment_id}``; once per
          comment, within 7 days.
        * `Reply` (or `PrivateReply`) to a DM: ``messaging_type: RESPONSE`` within
          24 hours of the message answered; after that, only with
          ``human_agent`` set in the settings, ``MESSAGE_TAG``/``HUMAN_AGENT``
          up to 7 days (the core refuses automated replies past 24 hours
          before they are queued).

        Raises:
            CapabilityNotSupported: A `Post` (publishing to the Page is not supported).
            WindowClosed: The window to answer has closed (before any request,
                or when Meta says so: ``10``/``2018278``).
            ActionError: A second private reply to one comment (before any request).
        """
        if isinstance(action, Post):
            raise CapabilityNotSupported("post", network=self.network)
        to = action.to
        if to.is_private:
            return await self._send_dm(action, to)
        private = isinstance(action, PrivateReply) or action.visibility == "private"
        if private:
            return await self._send_private_reply(action, to)
        path, params, form = self._public_reply(to, action.text)
        body = await self._json("POST", path, path_params=params, data=form)
        native = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(native, str) or not native:
            raise PayloadError("expected the new comment's id", network=self.network,
                               path="id")
        return Sent(
            idempotency_key=action.idempotency_key, ref=Ref(network=self.network, id=native),
            conversation=to.conversation, sent_at=self._now(), raw=dict(body),
        )

    def _public_reply(self, to: Message, text: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """The request of a public reply to ``to``: path, path parameters, form."""
        return ("/{id}/" + self._comment_replies_edge, {"id": self._reply_target(to)},
                {"message": text})

    def _dm_messaging(self, to: Message, *, by_human: bool) -> dict[str, str]:
        """``messaging_type`` (and ``tag``) for a DM answering ``to``, or ``WindowClosed``.

        ``HUMAN_AGENT`` only for a reply a person wrote or approved
        (``action.human_agent``, set when it was queued): a bot's reply that
        reaches the network after 24 hours is refused, never tagged.
        """
        now = self._now()
        age = now - to.created_at
        if age <= STANDARD_WINDOW:
            return {"messaging_type": "RESPONSE"}
        tagged = self.settings.human_agent and by_human
        if tagged and age <= HUMAN_AGENT_WINDOW:
            return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        closes = to.created_at + (HUMAN_AGENT_WINDOW if tagged else STANDARD_WINDOW)
        raise WindowClosed(
            f"the window to answer this message closed at {closes.isoformat()}",
            network=self.network, closed_at=closes,
        )

    async def _send_dm(self, action: Reply | PrivateReply, to: Message) -> Sent:
        messaging = self._dm_messaging(to, by_human=action.human_agent)
        customer = to.conversation.id
        disclosure = self.settings.automation_disclosure
        if disclosure is not None and self._discloses_before(action, customer):
            await self._json("POST", "/{id}/messages", path_params={"id": self.messaging_id},
                             json={"recipient": {"id": customer},
                                   "message": {"text": disclosure}, **messaging})
        payload: dict[str, Any] = {
            "recipient": {"id": customer},
            "message": self._message_payload(action),
            **messaging,
        }
        sent = await self._post_message(action, payload, fallback=customer)
        self._last_written[customer] = (self._now(), action.human_agent)
        return sent

    async def react(self, action: React) -> Sent:
        """React to a DM (``sender_action: react`` on the Send API, a ``"love"``).

        The ``conversation`` of the `React` names the customer (a Messenger
        PSID, an Instagram-scoped id); a reaction to a comment has none and
        is not supported here (Facebook likes comments, see
        `FacebookAdapter.react`).

        Raises:
            CapabilityNotSupported: No ``conversation``, or a reaction other
                than ``"love"``.
        """
        if action.conversation is None:
            raise CapabilityNotSupported("react", network=self.network)
        if action.reaction not in DM_REACTIONS:
            raise CapabilityNotSupported("dm_reactions", network=self.network,
                                         detail=f"reaction {action.reaction!r}")
        await self._json("POST", "/{id}/messages", path_params={"id": self.messaging_id},
                         json={"recipient": {"id": action.conversation.id},
                               "sender_action": "react",
                               "payload": {"message_id": action.target.id,
                                           "reaction": action.reaction}})
        return Sent(idempotency_key=action.idempotency_key, ref=action.target,
                    conversation=action.conversation, sent_at=self._now())

    def _discloses_before(self, action: Reply | PrivateReply, customer: str) -> bool:
        """Whether an automated DM to ``customer`` needs the disclosure first.

        At the start of a conversation (none written to this customer by this
        adapter), after a lapse, and after a person's reply (a switch back to
        the bot). A person's reply never carries it.
        """
        if action.human_agent:
            return False
        last = self._last_written.get(customer)
        if last is None:
            return True
        at, by_human = last
        return by_human or self._now() - at > self.settings.disclosure_lapse

    def outgoing_text(self, action: Reply | PrivateReply | Post) -> str:
        """The text sent: an automated private reply starts with ``automation_disclosure``."""
        disclosure = self.settings.automation_disclosure
        if (
            disclosure is not None and not isinstance(action, Post) and not action.human_agent
            and not action.to.is_private
            and (isinstance(action, PrivateReply) or action.visibility == "private")
        ):
            return f"{disclosure}\n\n{action.text}"
        return action.text

    def _message_payload(self, action: Reply | PrivateReply) -> dict[str, Any]:
        return {"text": self.outgoing_text(action)}

    async def _send_private_reply(self, action: Reply | PrivateReply, to: Message) -> Sent:
        if to.ref.id in self._private_replied:
            raise ActionError(
                "this comment already had its one private reply", network=self.network
            )
        closes = to.created_at + PRIVATE_REPLY_WINDOW
        if self._now() > closes:
            raise WindowClosed(
                f"the 7-day private-reply window closed at {closes.isoformat()}",
                network=self.network, closed_at=closes,
            )
        is_post = to.ref == to.conversation and self.network == "facebook"
        recipient = {"post_id" if is_post else "comment_id": to.ref.id}
        payload = {"recipient": recipient, "message": self._message_payload(action)}
        bucket = self._pace_private_replies()
        try:
            sent = await self._post_message(action, payload, fallback=None, bucket=bucket)
        except AmbiguousDelivery:
            self._private_sent.append(datetime.now(UTC))  # it may have landed: count it
            raise
        self._private_sent.append(datetime.now(UTC))
        self._private_replied.add(to.ref.id)
        if sent.conversation is not None:  # the DM conversation it opened
            self._last_written[sent.conversation.id] = (self._now(), action.human_agent)
        return sent

    def _private_reply_limit(self) -> int | None:
        """Private replies allowed per rolling hour, when Meta sets a figure of its own."""
        return None

    def _pace_private_replies(self) -> str | None:
        """The rate-limit bucket of the next private reply, with what is left of the hour in it.

        Meta allows so many private replies per hour (Instagram: 750 per
        account). The ones sent in the last hour are counted here and recorded
        as the bucket's budget, so the HTTP layer waits for the oldest to age
        out (or raises `RateLimited` with that time, for the outbox to
        reschedule) instead of letting Meta refuse the reply.
        """
        limit = self._private_reply_limit()
        if limit is None:
            return None
        now = datetime.now(UTC)  # the HTTP layer's clock: it does the waiting
        while self._private_sent and now - self._private_sent[0] >= _HOUR:
            self._private_sent.popleft()
        used = len(self._private_sent)
        reset = self._private_sent[0] + _HOUR if self._private_sent else None
        self._api.rate_limits.update(self.network, _PRIVATE_BUCKET, RateLimitInfo(
            limit=limit, remaining=max(0, limit - used), reset_at=reset,
            policy_window=_HOUR,
        ))
        return _PRIVATE_BUCKET

    async def _post_message(
        self, action: Reply | PrivateReply, payload: dict[str, Any], *, fallback: str | None,
        bucket: str | None = None,
    ) -> Sent:
        extra: dict[str, Any] = {"bucket": bucket} if bucket is not None else {}
        body = await self._json("POST", "/{id}/messages", path_params={"id": self.messaging_id},
                                json=payload, **extra)
        if not isinstance(body, Mapping) or not isinstance(body.get("message_id"), str):
            raise PayloadError("expected recipient_id and message_id", network=self.network,
                               path="message_id")
        recipient = body.get("recipient_id")
        customer = str(recipient) if recipient is not None else fallback
        return Sent(
            idempotency_key=action.idempotency_key,
            ref=Ref(network=self.network, id=body["message_id"]),
            conversation=Ref(network=self.network, id=customer) if customer else None,
            sent_at=self._now(), raw=dict(body),
        )

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look for what ``action`` may already have created (Meta has no idempotency key).

        A public reply is looked for among the replies of the comment it
        answers; a DM or private reply among the recent messages of our
        conversations (with that customer, for a DM). A match is ours, with
        the same text, written after the message answered.

        Raises:
            PayloadError: A listing cannot be read: whether it landed is unknown.
            AmbiguousDelivery: A private reply to a comment whose author is
                unknown and no conversation shows it: it cannot be told.
        """
        if isinstance(action, Post):
            return None
        to = action.to
        private = (
            to.is_private or isinstance(action, PrivateReply) or action.visibility == "private"
        )
        if not private:
            return await self._find_public(action, to)
        customer = to.conversation.id if to.is_private else None
        found = await self._find_in_conversations(action, customer=customer, since=to.created_at)
        if found is None and not to.is_private and to.author.ref.id == UNKNOWN_AUTHOR:
            raise AmbiguousDelivery(
                "cannot tell whether the private reply landed", network=self.network
            )
        if found is not None and not to.is_private:
            self._private_replied.add(to.ref.id)
        return found

    async def _find_public(self, action: Reply | PrivateReply, to: Message) -> Sent | None:
        if self._public_reply(to, action.text)[0] != "/{id}/" + self._comment_replies_edge:
            raise AmbiguousDelivery(
                "cannot tell whether the reply to a mention landed", network=self.network
            )
        target = self._replies_anchor(to)
        page = await self._json(
            "GET", "/{id}/" + self._comment_replies_edge, path_params={"id": target},
            params={"fields": self._reply_fields, "limit": 100},
        )
        for index, raw in enumerate(page_items(page, network=self.network, path="replies")):
            if not isinstance(raw, Mapping):
                raise PayloadError("expected an object", network=self.network,
                                   path=f"replies.{index}")
            author = raw.get("from")
            author_id = author.get("id") if isinstance(author, Mapping) else None
            ours = str(author_id) == self.account_id or (
                self.account is not None and raw.get("username") is not None
                and raw.get("username") == self.account.handle
            )
            if ours and raw.get(self._message_field) == action.text and raw.get("id"):
                return Sent(
                    idempotency_key=action.idempotency_key,
                    ref=Ref(network=self.network, id=str(raw["id"])),
                    conversation=to.conversation, sent_at=self._now(), raw=dict(raw),
                )
        return None

    _reply_fields: ClassVar[str] = "id,message,from,created_time"

    async def _find_in_conversations(
        self, action: Reply | PrivateReply, *, customer: str | None, since: datetime
    ) -> Sent | None:
        params: dict[str, Any] = {
            "fields": "id,messages.limit(25){id,message,from,to,created_time}",
            "limit": 1 if customer else self.settings.reconcile_conversations,
        }
        if customer:
            params["user_id"] = customer
        if self.network == "instagram":
            params["platform"] = "instagram"
        listing = await self._json("GET", "/{id}/conversations",
                                   path_params={"id": self.messaging_id}, params=params)
        for c_index, conversation in enumerate(
            page_items(listing, network=self.network, path="conversations")
        ):
            path = f"conversations.{c_index}.messages"
            messages = conversation.get("messages") if isinstance(conversation, Mapping) else None
            for m_index, raw in enumerate(page_items(messages, network=self.network, path=path)):
                event = self._converter.graph_message(
                    raw, account=self.account_id, path=f"{path}.{m_index}"
                )
                msg = event.message
                if (msg.from_us and msg.text == self.outgoing_text(action)
                        and msg.created_at >= since):
                    return Sent(
                        idempotency_key=action.idempotency_key, ref=msg.ref,
                        conversation=msg.conversation, sent_at=msg.created_at,
                        raw=dict(raw) if isinstance(raw, Mapping) else None,
                    )
        return None

    async def hide(self, action: Hide) -> Sent:
        """Hide (or unhide) a comment on our content."""
        await self._json("POST", "/{id}", path_params={"id": action.target.id},
                         **self._hide_request(action.hidden))
        return Sent(idempotency_key=action.idempotency_key, ref=action.target,
                    sent_at=self._now())

    def _hide_request(self, hidden: bool) -> dict[str, Any]:
        return {"data": {"is_hidden": "true" if hidden else "false"}}

    async def delete(self, action: Delete) -> Sent:
        """Delete a comment (ours, or one on our content)."""
        await self._json("DELETE", "/{id}", path_params={"id": action.target.id})
        return Sent(idempotency_key=action.idempotency_key, ref=action.target,
                    sent_at=self._now())


def _capabilities(text: int, dm_text: int, reactions: tuple[str, ...]) -> Capabilities:
    return Capabilities(
        text=TextRule.code_points(text), dm_text=TextRule.code_points(dm_text),
        reactions=reactions,
        dm_reactions=DM_REACTIONS,
        private_reply=True,
        private_reply_once=True,  # one per comment: the hub remembers it in the store
        private_reply_window=PRIVATE_REPLY_WINDOW,
        dm_window=STANDARD_WINDOW,
        human_agent_window=HUMAN_AGENT_WINDOW,
        hide=True,
        delete=True,
        post=False,
        inbound=frozenset({"webhook", "poll"}),
        native_idempotency=False,
    )


class FacebookAdapter(MetaAdapter):
    """A Facebook Page: feed comments and Messenger.

    ```python
    from omnichannel_meta import FacebookAdapter

    page = FacebookAdapter({
        "page_id": "1234567890321", "access_token": "EAA...",
        "app_secret": "...", "verify_token": "...",
    })
    ```
    """

    network = "facebook"
    capabilities = lazy_attribute(partial(_capabilities, 8000, 2000, ("like",)))
    settings_model = FacebookSettings
    settings: FacebookSettings

    @property
    def account_id(self) -> str:
        """Our Page id."""
        return self.settings.page_id

    def _subscription_target(self) -> tuple[Setup, str]:
        return "facebook", self.settings.page_id

    def _message_payload(self, action: Reply | PrivateReply) -> dict[str, Any]:
        # Messenger echoes carry metadata back: our outbox key, to match echoes exactly.
        return {"text": self.outgoing_text(action), "metadata": action.idempotency_key}

    @classmethod
    def _graph_comment(
        cls, converter: Converter, raw: object, *, anchor: str | None, account: str, path: str
    ) -> Event:
        post = anchor
        if post is None and isinstance(raw, Mapping):
            post = str(raw.get("id") or "") or None
        if post is None:
            raise PayloadError("expected an id", network=cls.network, path=f"{path}.id")
        return converter.fb_comment(raw, post=post, account=account, path=path)

    async def _poll_comments(
        self, since: datetime, events: list[Event], rejected: list[Rejected]
    ) -> None:
        for edge in ("feed", "tagged"):
            posts = await self._pages(
                "/{id}/" + edge, path_params={"id": self.account_id},
                params={"fields": "id,message,from,created_time,updated_time,message_tags",
                        "limit": self.settings.reconcile_posts},
                since=since, where=edge, minimum=self.settings.reconcile_posts,
            )
            for path, post in posts:
                if not isinstance(post, Mapping) or not isinstance(post.get("id"), str):
                    rejected.append(Rejected.from_error(PayloadError(
                        "expected a post with an id", network=self.network, path=path), post))
                    continue
                post_id = post["id"]
                author = post.get("from")
                if isinstance(author, Mapping) and str(author.get("id")) != self.account_id:
                    # A visitor's post, or a post that tags the Page: a message itself.
                    self._collect(
                        partial(self._converter.fb_comment, post, post=post_id,
                                account=self.account_id, path=path),
                        post, since, events, rejected,
                    )
                if not self._changed(post, since):
                    continue  # no comment since the cursor (updated_time follows comments)
                comments = await self._pages(
                    "/{id}/comments", path_params={"id": post_id},
                    params={"fields": "id,message,from,created_time,parent{id},message_tags",
                            "filter": "stream", "order": "reverse_chronological",
                            "limit": 100},
                    since=since, where=f"{path}.comments",
                )
                for c_path, raw in comments:
                    self._collect(
                        partial(self._converter.fb_comment, raw, post=post_id,
                                account=self.account_id, path=c_path),
                        raw, since, events, rejected,
                    )

    async def react(self, action: React) -> Sent:
        """Like a comment or post as the Page (``POST /{id}/likes``), or react to a DM.

        A `React` naming a ``conversation`` reacts to a Messenger message
        (`MetaAdapter.react`).

        Raises:
            CapabilityNotSupported: A reaction other than ``"like"`` on a comment.
        """
        if action.conversation is not None:
            return await super().react(action)
        if action.reaction != "like":
            raise CapabilityNotSupported("react", network=self.network,
                                         detail=f"reaction {action.reaction!r}")
        await self._json("POST", "/{id}/likes", path_params={"id": action.target.id},
                         idempotent=True)
        return Sent(idempotency_key=action.idempotency_key, ref=action.target,
                    sent_at=self._now())


class InstagramAdapter(MetaAdapter):
    """An Instagram professional account: comments, mentions and DMs.

    ```python
    from omnichannel_meta import InstagramAdapter

    account = InstagramAdapter({
        "account_id": "17841452691600098", "access_token": "EAA...",
        "app_secret": "...", "verify_token": "...",
    })
    ```
    """

    network = "instagram"
    capabilities = lazy_attribute(partial(_capabilities, 2200, 1000, ()))
    settings_model = InstagramSettings
    settings: InstagramSettings
    _comment_replies_edge = "replies"
    _message_field = "text"
    _profile_fields = "id,username,name"
    _reply_fields = "id,text,from,username,timestamp"

    @property
    def account_id(self) -> str:
        """Our Instagram professional account id."""
        return self.settings.account_id

    def _refreshable(self) -> bool:
        return self.settings.login == "instagram"

    def _private_reply_limit(self) -> int | None:
        return self.settings.private_replies_per_hour

    async def refresh_token(self) -> TokenHealth:
        """Refresh the Instagram Login token now; use the new one from the next request.

        ``GET /refresh_access_token?grant_type=ig_refresh_token`` (on the
        Instagram host, unversioned): Meta answers a token valid 60 days from
        now. The adapter calls this itself within ``refresh_before`` of
        ``token_expires_at``; the new token goes to ``on_token_health``
        (status ``"refreshed"``), which should persist it. The adapter must be open.

        Raises:
            ConfigurationError: The account uses Facebook Login (a Page token).
            AuthenticationError: The token already expired or was revoked: a
                person must log in again.
            PayloadError: Meta's answer has no token or lifetime.
        """
        if not self._refreshable():
            return await super().refresh_token()
        response = await self._api.request(
            "GET", f"{self.settings.base_url.rstrip('/')}/refresh_access_token",
            params={"grant_type": "ig_refresh_token",
                    "access_token": self._auth.token.get_secret_value()},
            authenticated=False, bucket="refresh_access_token",
        )
        body = decode_json(response.content, network=self.network, path="refresh_access_token")
        token = body.get("access_token") if isinstance(body, Mapping) else None
        lifetime = body.get("expires_in") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise PayloadError("expected a new token", network=self.network,
                               path="access_token")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise PayloadError("expected the token's lifetime", network=self.network,
                               path="expires_in")
        self._auth.token = SecretStr(token)
        self._expires_at = self._now() + timedelta(seconds=lifetime)
        health = TokenHealth(network=self.network, account_id=self.account_id,
                             status="refreshed", expires_at=self._expires_at,
                             access_token=SecretStr(token))
        await self._token_health(health)
        return health

    def _subscription_target(self) -> tuple[Setup, str]:
        if self.settings.login == "instagram":
            return "instagram", self.settings.account_id
        if not self.settings.page_id:
            raise ConfigurationError(
                "with Facebook Login the app is installed on the linked Page: set page_id",
                network=self.network,
            )
        return "instagram-facebook-login", self.settings.page_id

    def _replies_anchor(self, to: Message) -> str:
        # Instagram keeps replies one level deep: a reply to a reply is added
        # under the top-level comment (its parent_id), where it is looked for.
        parent = to.in_reply_to
        if parent is not None and parent != to.conversation:
            return parent.id
        return to.ref.id

    def _hide_request(self, hidden: bool) -> dict[str, Any]:
        return {"params": {"hide": "true" if hidden else "false"}}

    def _public_reply(self, to: Message, text: str) -> tuple[str, dict[str, str], dict[str, str]]:
        # A comment that mentions us sits on someone else's media: it is
        # answered through our mentions edge, naming the media and the comment.
        raw = to.raw or {}
        media, comment = raw.get("media_id"), raw.get("comment_id")
        if isinstance(media, str) and isinstance(comment, str):
            return ("/{id}/mentions", {"id": self.account_id},
                    {"media_id": media, "comment_id": comment, "message": text})
        if isinstance(media, str) and "id" not in raw:  # a caption that mentions us
            return ("/{id}/mentions", {"id": self.account_id},
                    {"media_id": media, "message": text})
        return super()._public_reply(to, text)

    @classmethod
    def _graph_comment(
        cls, converter: Converter, raw: object, *, anchor: str | None, account: str, path: str
    ) -> Event:
        if not isinstance(raw, Mapping):
            raise PayloadError("expected an object", network=cls.network, path=path)
        media = None if anchor is None else anchor
        message = converter.ig_comment(raw, account=account, path=path, media=media)
        return converter.received(message, account=account)

    async def _poll_comments(
        self, since: datetime, events: list[Event], rejected: list[Rejected]
    ) -> None:
        media = await self._pages(
            "/{id}/media", path_params={"id": self.account_id},
            params={"fields": "id,timestamp", "limit": self.settings.reconcile_posts},
            since=since, where="media", minimum=self.settings.reconcile_posts,
        )
        for m_path, item in media:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                rejected.append(Rejected.from_error(PayloadError(
                    "expected media with an id", network=self.network, path=m_path), item))
                continue
            media_id = item["id"]
            comments = await self._pages(
                "/{id}/comments", path_params={"id": media_id},
                params={"fields": f"{_IG_COMMENT},replies{{{_IG_COMMENT}}}", "limit": 50},
                since=since, where=f"{m_path}.comments",
            )
            for path, raw in comments:
                self._collect(
                    partial(self._graph_comment, self._converter, raw, anchor=media_id,
                            account=self.account_id, path=path),
                    raw, since, events, rejected,
                )
                # The comments edge lists top-level comments; their replies come nested.
                replies = raw.get("replies") if isinstance(raw, Mapping) else None
                if replies is None:
                    continue
                try:
                    nested = page_items(replies, network=self.network, path=f"{path}.replies")
                except PayloadError as exc:
                    rejected.append(Rejected.from_error(exc, replies))
                    continue
                parent = raw.get("id") if isinstance(raw, Mapping) else None
                for r_index, reply in enumerate(nested):
                    if isinstance(reply, Mapping) and "parent_id" not in reply:
                        reply = {**reply, "parent_id": parent}
                    self._collect(
                        partial(self._graph_comment, self._converter, reply, anchor=media_id,
                                account=self.account_id, path=f"{path}.replies.{r_index}"),
                        reply, since, events, rejected,
                    )

