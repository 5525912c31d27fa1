"""The X adapter: mentions and DMs in (polling, webhooks), posts and DMs out, 2026 rules."""

from __future__ import annotations

import base64
import functools
import inspect
import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import anyio
import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from omnichannel._lazy import lazy_attribute
from omnichannel.actions import Action, Delete, Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import (
    Adapter,
    AdapterSettings,
    Batch,
    Rejected,
    WebhookRequest,
    WebhookResponse,
    decode_json,
)
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    ConfigurationError,
    NetworkError,
    PayloadError,
    RequestRejected,
)
from omnichannel.events import Event
from omnichannel.http import (
    ApiClient,
    OAuth1Auth,
    RefreshingBearerAuth,
    RetryPolicy,
    open_client,
)
from omnichannel.model import Mention, Message, Ref
from omnichannel.sources import PollSource, Source, StreamSource
from omnichannel.text import TextRule

from ._convert import (
    NETWORK,
    Converter,
    RawIncludes,
    parse,
    person,
    raw_tweet,
    unescape,
    users_by_id,
)
from ._costs import Charge, CostLedger, Prices, has_url
from ._errors import NotSummoned, ReauthorizationRequired, error_for, is_not_summoned
from ._ratelimit import parse_x_headers
from ._replay import parse_payload
from ._text import XTextRule
from ._tokens import (
    AuthProblem,
    AuthProblemHook,
    AuthProblemKind,
    FileTokenStore,
    TokenStore,
    XTokens,
)
from ._wire import DmEvent, DmPage, Subscription, SubscriptionPage, Tweet, TweetPage, User
from .webhooks import SIGNATURE_HEADER, crc_response, verify_signature

__all__ = ["Tier", "XAdapter", "XSettings", "XTokens", "capabilities_for"]


logger = logging.getLogger("omnichannel.x")

Tier = Literal["pay_per_use", "basic", "pro", "enterprise"]
"""The account's X API access: self-serve pay-per-use, Basic, Pro, or Enterprise."""

SELF_SERVE: frozenset[str] = frozenset({"pay_per_use", "basic", "pro"})
"""Tiers under the 2026 self-serve rules: replies only when summoned, no likes."""

TWEET_FIELDS = "author_id,conversation_id,created_at,entities,in_reply_to_user_id,referenced_tweets"
EXPANSIONS = "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id"
USER_FIELDS = "name,username,profile_image_url,verified,protected,public_metrics"
DM_FIELDS = "id,text,event_type,created_at,dm_conversation_id,sender_id,entities"

# The cursor of an empty timeline: read everything there is (X keeps 800 mentions).
_BEGINNING = "0"
_LEADING_MENTIONS = re.compile(r"\A(?:@\w{1,15}\s+)+")


def capabilities_for(tier: Tier, *, webhooks: bool = False) -> Capabilities:
    """What X lets an app on ``tier`` do (see the how-to's table).

    Likes (and quote posts) left the self-serve tiers on 2026-04-20; only
    Enterprise declares the ``like`` reaction. Every tier can reply, send DMs,
    hide replies to our posts and delete our posts.

    Args:
        tier: The account's API tier.
        webhooks: Whether webhook deliveries are configured (a consumer
            secret to check them with): ``webhook`` joins ``poll`` in
            ``inbound``.
    """
    return Capabilities(
        text=XTextRule(),
        dm_text=TextRule.code_points(10_000),
        private_reply=True,
        reactions=("like",) if tier == "enterprise" else (),
        hide=True,
        delete=True,
        edit=False,
        inbound=frozenset({"poll", "webhook"} if webhooks else {"poll"}),
        native_idempotency=False,
    )


TokenSaver = Callable[[XTokens], Awaitable[None] | None]
"""Called with every new token pair right after a refresh (persist it there)."""


class XSettings(AdapterSettings):
    """How to reach one X account.

    Give either OAuth 2.0 user-context tokens (``access_token``, and
    ``refresh_token`` with ``client_id`` to refresh them) or the four OAuth
    1.0a user-context values.

    Attributes:
        base_url: The API host (``https://api.x.com``).
        tier: The account's API tier; it decides the declared capabilities and
            whether the 2026 reply rule applies (all tiers but ``enterprise``).
        access_token: OAuth 2.0 user access token (scopes ``tweet.read
            tweet.write users.read dm.read dm.write offline.access``).
        refresh_token: OAuth 2.0 refresh token (needs ``offline.access``).
        client_id: The app's OAuth 2.0 client id (to refresh).
        client_secret: The client secret of a confidential client (sent with
            HTTP Basic on refresh); ``None`` for a public client.
        token_url: Where tokens are refreshed (default ``{base_url}/2/oauth2/token``).
        consumer_key: OAuth 1.0a API key.
        consumer_secret: OAuth 1.0a API key secret.
        oauth1_token: OAuth 1.0a user access token.
        oauth1_token_secret: OAuth 1.0a user access token secret.
        thread_replies_summon: Whether a reply to one of our posts counts as
            summoning us when its author did not @mention us in the body. X's
            docs do not settle it; the default (``False``) refuses such replies.
        max_results: Posts per mentions page (5 to 100).
        max_pages: Pages one poll follows back to the cursor (X keeps 800 mentions).
        read_dms: Whether to poll ``GET /2/dm_events`` as well.
        activity_stream: Also run the ``activity`` source: the X Activity
            API's persistent stream (``GET /2/activity/stream``), caught up by
            the ``mentions`` source after each drop. Needs ``app_bearer_token``:
            X opens the stream with the app-only bearer token alone.
        read_replies: Also run the ``replies`` source: posts in the threads of
            our latest posts that the mentions timeline does not list (a
            reply to a reply under our post), by ``conversation_id`` search.
        replies_threads: How many of our latest threads the ``replies``
            source searches (1 to 20: the terms fit X's 512-character query).
        replies_poll_interval: Seconds between ``replies`` searches.
        dm_poll_interval: Seconds between DM polls at the least: X allows 15 DM
            reads per 15 minutes, so the default is 60.
        find_sent_depth: How many of our latest posts `find_sent` reads (5 to 100).
        prices: X's pay-per-use prices (the 2026 list by default).
        daily_budget: On ``pay_per_use``, the most to spend in a UTC day (USD);
            a request that would go over it raises `BudgetExceeded` first.
        monthly_budget: The same for a calendar month.
        webhook_secret: The app's consumer (API) secret, which signs X's CRC
            challenge and every webhook delivery. With OAuth 1.0a the
            ``consumer_secret`` serves when this is not given. Setting either
            declares ``webhook`` inbound.
        app_bearer_token: The app-only bearer token: it opens the activity
            stream (required there) and manages webhooks (``POST
            /2/webhooks/replay``; without it the user token is tried).
        ledger_file: A file keeping the cost ledger across restarts (JSON, mode
            0600, replaced atomically): the day's and month's spend, and what
            was billed today, so the budgets hold after a restart. From the
            environment: ``OMNICHANNEL_X_LEDGER_FILE``.
        token_file: A file keeping the OAuth 2.0 tokens across restarts (a
            `FileTokenStore`: mode 0600, replaced atomically). ``open`` reads
            it, and its pair wins over ``access_token``/``refresh_token``
            (those are only the first pair); every rotated pair is written to
            it at once. From the environment: ``OMNICHANNEL_X_TOKEN_FILE``.
        poll_interval: Seconds between polls when nothing new came (default 30).
    """

    base_url: str = "https://api.x.com"
    tier: Tier = "pay_per_use"
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_url: str | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    oauth1_token: str | None = None
    oauth1_token_secret: SecretStr | None = None
    thread_replies_summon: bool = False
    max_results: int = Field(default=100, ge=5, le=100)
    max_pages: int = Field(default=8, ge=1, le=50)
    read_dms: bool = True
    dm_poll_interval: float = Field(default=60.0, ge=0)
    read_replies: bool = False
    activity_stream: bool = False
    replies_threads: int = Field(default=10, ge=1, le=20)
    replies_poll_interval: float = Field(default=120.0, gt=0)
    find_sent_depth: int = Field(default=100, ge=5, le=100)
    prices: Prices = Prices.model_construct()  # no validator built at import
    daily_budget: Decimal | None = Field(default=None, ge=0)
    monthly_budget: Decimal | None = Field(default=None, ge=0)
    webhook_secret: SecretStr | None = None
    app_bearer_token: SecretStr | None = None
    token_file: Path | None = None
    ledger_file: Path | None = None

    @property
    def signing_secret(self) -> SecretStr | None:
        """The secret webhook deliveries are checked with, if any."""
        return self.webhook_secret or self.consumer_secret

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http(s) URL such as https://api.x.com")
        return str(url).rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> Self:
        oauth1 = (self.consumer_key, self.consumer_secret, self.oauth1_token,
                  self.oauth1_token_secret)
        has_oauth1 = any(value is not None for value in oauth1)
        if has_oauth1 and not all(value is not None for value in oauth1):
            raise ValueError("OAuth 1.0a needs consumer_key, consumer_secret, oauth1_token "
                             "and oauth1_token_secret")
        has_oauth2 = (self.access_token is not None or self.refresh_token is not None
                      or self.token_file is not None)
        if has_oauth1 == has_oauth2:
            raise ValueError("give either OAuth 2.0 tokens (access_token/refresh_token, or a "
                             "token_file) or the four OAuth 1.0a values")
        if self.refresh_token is not None and not self.client_id:
            raise ValueError("refreshing OAuth 2.0 tokens needs client_id")
        if self.activity_stream and self.app_bearer_token is None:
            raise ValueError("activity_stream needs app_bearer_token: X opens "
                             "GET /2/activity/stream with the app-only bearer token alone")
        return self


def _cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """``"m=<since id>;d=<last DM id>"`` into its two parts."""
    if not cursor:
        return None, None
    parts = dict(part.partition("=")[::2] for part in cursor.split(";") if "=" in part)
    return _usable_id(parts.get("m") or None), _usable_id(parts.get("d") or None)


def _comparable(text: str) -> str:
    """Text as X stores it, for comparing: NFC, URLs (t.co or not) as one placeholder."""
    countable = XTextRule().countable(unicodedata.normalize("NFC", text))
    return " ".join(countable.split())


_MAX_TOKEN = 512


def _usable_token(token: str | None) -> str | None:
    """A page's ``next_token`` when a URL can carry it back (short printable text), else ``None``.

    A token no URL can carry (a control character, a lone surrogate, a huge
    string) would fail every poll after it, so it is treated as the last page.
    """
    if not token or len(token) > _MAX_TOKEN or not token.isprintable():
        return None
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return token


def _mention_id(body: bytes, dotted: Callable[[str], str]) -> str | None:
    """The post id of a ``post.mention.create`` stream line, else ``None``."""
    try:
        data = json.loads(body).get("data") or {}
        if dotted(str(data.get("event_type", ""))) != "post.mention.create":
            return None
        return _usable_id(data.get("payload", {}).get("id"))
    except (ValueError, AttributeError):
        return None


def _usable_id(value: object) -> str | None:
    """A post or DM event id fit for the cursor and ``since_id``: X's ids are decimal."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 20:
        return None
    return value


def _newer(a: str, b: str | None) -> bool:
    """Whether snowflake ``a`` is after ``b`` (``None``: before everything)."""
    if b is None:
        return True
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a > b


def _order(event: Event) -> tuple[int, str]:
    ref = getattr(event, "message", None)
    native = ref.ref.id if isinstance(ref, Message) else event.id
    return (int(native) if native.isdigit() else 0, native)


class XAdapter(Adapter):
    """X through API v2, by polling, with the 2026 tiers and reply rule.

    Inbound, mentions (``GET /2/users/:id/mentions``, every page back to the
    cursor) and DMs (``GET /2/dm_events``, paced) become `MessageReceived`;
    what our own account wrote is left out (replay shows it ``from_us``).
    Outbound, replies go out with ``reply.in_reply_to_tweet_id``; private
    replies and replies to DMs as DMs.
    `check` refuses, before any request, a reply X's reply rule forbids.

    Args:
        settings: An `XSettings` (or a mapping to validate).
        transport: An httpx transport to use instead of the network.
        retry: The HTTP retry policy (default: the HTTP layer's).
        on_tokens: Called with each new `XTokens` right after a refresh (and
            after ``token_store`` saved them). An error it raises is logged,
            never the tokens.
        token_store: Where the OAuth 2.0 tokens live across restarts: read by
            ``open``, written right after every refresh (the refresh token
            rotates, and an unsaved one locks the account out). Default: a
            `FileTokenStore` on ``settings.token_file`` when it is set.
        on_auth_problem: Called with an `AuthProblem` when the account's
            authorization breaks: a refresh refused (``reauthorization_required``),
            the token refused (``revoked``), a rotated pair not saved
            (``not_persisted``). Each is also logged at error level, without
            tokens. Called again only after the state changed.

    Attributes:
        tokens: The current OAuth 2.0 tokens (``None`` with OAuth 1.0a).
        token_store: The `TokenStore` in use, or ``None``.
        auth_problem: The last `AuthProblem`, or ``None`` while all is well.
        costs: What this adapter spent, per UTC day (``pay_per_use`` only;
            on the subscription tiers nothing is charged per request): a
            `CostLedger` over ``spend``.
        spend: The core `SpendMeter` with the figures: the hub binds it to
            its store when it opens (shared by workers, kept across
            restarts, shown in ``hub.statistics()``); without a hub it lives
            in memory, or in ``settings.ledger_file`` when set.
    """

    network = NETWORK
    network_aliases = ("twitter",)
    capabilities = lazy_attribute(functools.partial(capabilities_for, "pay_per_use"))
    settings_model = XSettings
    settings: XSettings
    signature_headers: ClassVar[frozenset[str]] = frozenset({SIGNATURE_HEADER})

    @classmethod
    def status_lines(cls, settings: AdapterSettings, *, now: datetime) -> list[str]:
        """Today's and this month's spend from ``ledger_file``, against the budgets."""
        if not isinstance(settings, XSettings) or settings.ledger_file is None:
            return []
        if not settings.ledger_file.exists():
            return []
        ledger = CostLedger(settings.prices, daily_budget=settings.daily_budget,
                            monthly_budget=settings.monthly_budget, path=settings.ledger_file)
        today = now.astimezone(UTC).date()
        day = ledger.spent_on(today)
        month = ledger.spent_in_month(today.year, today.month)
        of_day = f" of {settings.daily_budget:.2f}" if settings.daily_budget is not None else ""
        of_month = (f" of {settings.monthly_budget:.2f}"
                    if settings.monthly_budget is not None else "")
        return [f"spent today {day:.2f} USD{of_day}; this month {month:.2f} USD{of_month}"]

    def __init__(
        self,
        settings: XSettings | Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        on_tokens: TokenSaver | None = None,
        token_store: TokenStore | None = None,
        on_auth_problem: AuthProblemHook | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self._retry = retry
        self._on_tokens = on_tokens
        self._on_auth_problem = on_auth_problem
        self.auth_problem: AuthProblem | None = None
        if token_store is None and self.settings.token_file is not None:
            token_store = FileTokenStore(self.settings.token_file)
        self.token_store = token_store
        self._stack: AsyncExitStack | None = None
        self._client: ApiClient | None = None
        self._converter = Converter()
        self._dm_due = 0.0
        self.costs = CostLedger(self.settings.prices, daily_budget=self.settings.daily_budget,
                                monthly_budget=self.settings.monthly_budget,
                                path=self.settings.ledger_file)
        self.spend = self.costs.meter
        self.tokens: XTokens | None = None
        if self.settings.access_token is not None or self.settings.refresh_token is not None:
            self.tokens = XTokens(
                access_token=self.settings.access_token or SecretStr(""),
                refresh_token=self.settings.refresh_token,
            )
        # The tier, and whether webhooks are configured, decide what it declares.
        vars(self)["capabilities"] = capabilities_for(
            self.settings.tier, webhooks=self.settings.signing_secret is not None)

    # lifecycle ---------------------------------------------------------------

    def _auth(self) -> httpx.Auth:
        s = self.settings
        if s.consumer_key is not None:
            assert s.consumer_secret is not None  # noqa: S101 - the validator ensures it
            assert s.oauth1_token is not None  # noqa: S101
            assert s.oauth1_token_secret is not None  # noqa: S101
            return OAuth1Auth(
                consumer_key=s.consumer_key, consumer_secret=s.consumer_secret,
                token=s.oauth1_token, token_secret=s.oauth1_token_secret,
            )
        access = self.tokens.access_token if self.tokens is not None else None
        if access is not None and not access.get_secret_value():
            access = None  # only a refresh token: refresh before the first request
        return RefreshingBearerAuth(access, refresh=self._refresh, network=NETWORK)

    async def open(self) -> None:
        """Open the client and resolve our account with ``GET /2/users/me``.

        Raises:
            AuthenticationError: The token is invalid or revoked (401).
            ReauthorizationRequired: The token expired and refreshing it failed.
            PayloadError: The answer is not X's.
        """
        if self._client is not None:
            return
        if self.token_store is not None and self.settings.consumer_key is None:
            stored = await self.token_store.load()
            if stored is not None:
                self.tokens = stored
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(open_client(
                network=self.network,
                base_url=self.settings.base_url,
                auth=self._auth(),
                transport=self.transport,
                rate_limit_parser=parse_x_headers,
                error_mapper=error_for,
                retry=self._retry,
            ))
            body = await self._json("GET", "/2/users/me", params={"user.fields": USER_FIELDS})
            me = parse(User, body.get("data") if isinstance(body, dict) else None, path="data")
        except BaseException:
            self._client = None
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        self._stack = stack
        self._auth_ok()
        self.account = person(me)
        self._converter.our_id = me.id
        self._charge_reads("user_read", [me.id])
        await self._keep_costs()
        await self._refresh_costs()

    async def aclose(self) -> None:
        """Close the HTTP client. Safe to call twice."""
        with anyio.CancelScope(shield=True):
            await self._keep_costs()
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _refresh(self) -> SecretStr:
        """Trade the refresh token for a new pair; save it and hand it to ``on_tokens`` at once.

        Raises:
            ReauthorizationRequired: There is no refresh token, or X refused it
                (reported as an `AuthProblem` first).
        """
        try:
            tokens = await self._exchange()
        except ReauthorizationRequired as exc:
            await self._auth_failed("reauthorization_required", str(exc))
            raise
        self.tokens = tokens
        await self._save(tokens)
        return tokens.access_token

    async def _exchange(self) -> XTokens:
        s = self.settings
        current = self.tokens.refresh_token if self.tokens is not None else None
        if current is None or not s.client_id:
            raise ReauthorizationRequired("the access token expired and there is no refresh token")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": current.get_secret_value(),
            "client_id": s.client_id,
        }
        headers: dict[str, str] = {}
        if s.client_secret is not None:
            pair = f"{s.client_id}:{s.client_secret.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        try:
            response = await self._api.request(
                "POST", s.token_url or "/2/oauth2/token", data=form, headers=headers,
                authenticated=False, idempotent=False, bucket="oauth2/token",
            )
        except (AuthenticationError, RequestRejected) as exc:
            raise ReauthorizationRequired(
                f"X refused the refresh token (HTTP {getattr(exc, 'status', None) or 401})"
            ) from None
        except NetworkError as exc:
            raise ReauthorizationRequired(f"refreshing failed ({type(exc).__name__})") from None
        body = self._decode(response, "oauth2/token")
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise ReauthorizationRequired("the token answer carries no access_token")
        rotated = body.get("refresh_token")
        expires = body.get("expires_in")
        return XTokens(
            access_token=SecretStr(access),
            refresh_token=SecretStr(rotated) if isinstance(rotated, str) and rotated else current,
            expires_at=(
                datetime.now(UTC) + timedelta(seconds=expires)
                if isinstance(expires, int) else None
            ),
        )

    async def _save(self, tokens: XTokens) -> None:
        """Persist a new pair through the token store, then the ``on_tokens`` hook."""
        if self.token_store is None and self._on_tokens is None:
            logger.warning("x tokens were refreshed but neither a token store nor an "
                           "on_tokens hook persists them", extra={"network": NETWORK})
            self._auth_ok()
            return
        failed: str | None = None
        saved = False
        if self.token_store is not None:
            try:
                await self.token_store.save(tokens)
                saved = True
            except Exception as exc:
                failed = type(exc).__name__
                # Not logger.exception: the message or traceback may quote the tokens.
                logger.error("saving the refreshed x tokens failed (%s)",  # noqa: TRY400
                             failed, extra={"network": NETWORK, "error": failed})
        if self._on_tokens is not None:
            try:
                result = self._on_tokens(tokens)
                if inspect.isawaitable(result):
                    await result
                saved = True
            except Exception as exc:
                failed = type(exc).__name__
                logger.error("persisting the refreshed x tokens failed (%s)",  # noqa: TRY400
                             failed, extra={"network": NETWORK, "error": failed})
        if saved and failed is None:
            self._auth_ok()
        elif not saved:
            await self._auth_failed(
                "not_persisted", f"the new refresh token was not saved ({failed}); "
                "it lives only in this process")

    # auth health -------------------------------------------------------------

    def _auth_ok(self) -> None:
        if self.auth_problem is not None:
            logger.info("x auth: working again", extra={"network": NETWORK, "auth_health": "ok"})
        self.auth_problem = None

    async def _auth_failed(self, kind: AuthProblemKind, detail: str) -> None:
        """Report an `AuthProblem` (log line and hook), once per change of state."""
        if self.auth_problem is not None and self.auth_problem.kind == kind:
            return
        problem = AuthProblem(kind=kind, detail=detail)
        self.auth_problem = problem
        logger.error("x auth: %s (%s)", kind.replace("_", " "), detail,
                     extra={"network": NETWORK, "auth_health": kind})
        self.report_auth_health(kind, detail)
        if self._on_auth_problem is None:
            return
        try:
            result = self._on_auth_problem(problem)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            logger.error("the x on_auth_problem hook failed (%s)",  # noqa: TRY400
                         type(exc).__name__, extra={"network": NETWORK})

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

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._api.request(method, path, **kwargs)
        except ReauthorizationRequired:
            raise  # reported by _refresh
        except AuthenticationError as exc:
            await self._auth_failed(
                "revoked", f"X refused the token (HTTP {getattr(exc, 'status', None) or 401})")
            raise
        problem = self.auth_problem
        if (problem is not None and problem.kind != "not_persisted"
                and kwargs.get("authenticated", True)):
            self._auth_ok()  # the account's token works again
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        return self._decode(response, path)

    def _decode(self, response: httpx.Response, path: str) -> Any:
        return decode_json(response.content, network=self.network, path=path)

    # inbound -----------------------------------------------------------------

    async def poll(self, cursor: str | None) -> Batch:
        """Fetch the mentions and DMs after ``cursor``, oldest first.

        The cursor is ``m=<newest mention id>;d=<newest DM event id>``. Every
        mentions page back to the cursor is read in one poll (X pages from the
        newest down), so a burst bigger than a page is delivered whole. DMs are
        read at most every ``dm_poll_interval`` seconds (X allows 15 reads per
        15 minutes). Our own posts and DMs (echoes of what we sent) are left
        out. A post or DM that cannot make a message is reported in
        ``Batch.rejected``; the cursor still moves past it.

        Raises:
            AuthenticationError: The token was revoked (or could not be refreshed).
            PayloadError: A page as a whole is not what X sends.
        """
        since, dm_since = _cursor(cursor)
        await self._budget_left()
        events: list[Event] = []
        rejected: list[Rejected] = []
        newest = await self._poll_mentions(since, events, rejected)
        dm_newest = dm_since
        if self.settings.read_dms and anyio.current_time() >= self._dm_due:
            dm_newest = await self._poll_dms(dm_since, events, rejected)
            self._dm_due = anyio.current_time() + self.settings.dm_poll_interval
        events.sort(key=_order)
        await self._keep_costs()
        parts = [f"m={newest or since or _BEGINNING}"]
        if self.settings.read_dms:
            parts.append(f"d={dm_newest or _BEGINNING}")
        return Batch(events=tuple(events), cursor=";".join(parts), rejected=tuple(rejected))

    def sources(self) -> Sequence[Source]:
        """``mentions`` every ``poll_interval`` seconds; ``dms`` every ``dm_poll_interval``.

        Each has its own cursor (the newest id read), so a DM read never
        waits for a mentions page and the other way round.
        """
        settings = self.settings
        found: list[Source] = [PollSource("mentions", self._mentions,
                                          interval=settings.poll_interval)]
        if settings.activity_stream:
            found.append(StreamSource("activity", self._activity_stream, catch_up="mentions"))
        if settings.read_replies:
            found.append(PollSource("replies", self._replies,
                                    interval=settings.replies_poll_interval))
        if settings.read_dms:
            found.append(PollSource("dms", self._dms,
                                    interval=settings.dm_poll_interval or settings.poll_interval))
        return found

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        """``m=<id>;d=<id>`` (a ``poll`` cursor) into the ``mentions`` and ``dms`` cursors."""
        mentions, dms = _cursor(cursor)
        return {name: part for name, part in (("mentions", mentions), ("dms", dms)) if part}

    async def _mentions(self, cursor: str | None) -> Batch:
        """The mentions after ``cursor`` (a post id; the ``mentions`` source)."""
        await self._budget_left()
        events: list[Event] = []
        rejected: list[Rejected] = []
        newest = await self._poll_mentions(cursor, events, rejected)
        events.sort(key=_order)
        return Batch(events=tuple(events), cursor=newest or cursor or _BEGINNING,
                     rejected=tuple(rejected))

    async def _activity_stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        """One connection to ``GET /2/activity/stream`` (the ``activity`` source).

        Each line is an X Activity event, read as a webhook delivery is (the
        same event ids, so a message read by both is stored once). The
        cursor is shared with ``mentions``: only a ``post.mention.create``
        moves it, so a catch-up after a drop reads the mentions the gap hid.
        The app-only bearer token opens it (the settings require it with
        ``activity_stream``). Each event delivered is billed (``post_event``,
        ``dm_event``). Reconnection is the hub's.
        """
        from ._activity import dotted, parse_delivery  # only stream and webhook apps need it

        await self._budget_left()
        token = self.settings.app_bearer_token
        if token is None:  # pragma: no cover - the settings validator requires it
            raise ConfigurationError("activity_stream needs app_bearer_token", network=NETWORK)
        # App-only: X's OpenAPI spec gives GET /2/activity/stream the security
        # scheme BearerToken alone (xdevplatform/xdk latest-openapi.json, v2.159,
        # operationId activityStream), where POST /2/activity/subscriptions also
        # takes OAuth2UserToken; a user token there is refused.
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        async with self._api.open_stream(
            "GET", "/2/activity/stream", headers=headers, authenticated=False,
        ) as response:
            yield Batch()  # connected: the hub catches up now
            async for line in response.aiter_lines():
                body = line.strip().encode()
                if not body:
                    continue  # keep-alive
                self._charge_delivery(body)  # X bills stream events as webhook ones
                await self._keep_costs()
                try:
                    batch = parse_delivery(body, self._converter)
                except PayloadError as exc:
                    yield Batch(rejected=(Rejected.from_error(exc, line),))
                    continue
                yield Batch(events=batch.events, rejected=batch.rejected,
                            cursor=_mention_id(body, dotted))

    async def _replies(self, cursor: str | None) -> Batch:
        """Posts in our threads after ``cursor`` (a post id; the ``replies`` source).

        Reads our latest posts (``GET /2/users/:id/tweets``, an owned read),
        then searches the recent posts of their threads
        (``GET /2/tweets/search/recent`` with ``conversation_id:`` terms,
        without our own): a reply that does not @mention us, which the
        mentions timeline does not list, is read here. Every page back to the
        cursor is read, as for mentions, so a burst bigger than
        ``max_results`` is delivered whole. Whether it may be answered is
        still the summoned rule's decision.
        """
        await self._budget_left()
        ours = await self._json(
            "GET", "/2/users/{id}/tweets", path_params={"id": self._our_id},
            params={"max_results": max(5, self.settings.replies_threads),
                    "tweet.fields": "conversation_id"})
        own = parse(TweetPage, ours, path="tweets")
        self._charge_page(own, "owned_read")
        threads: list[str] = []
        for tweet in own.data:
            thread = tweet.get("conversation_id") if isinstance(tweet, dict) else None
            if isinstance(thread, str) and thread.isdigit() and thread not in threads:
                threads.append(thread)
        threads = threads[: self.settings.replies_threads]
        events: list[Event] = []
        rejected: list[Rejected] = []
        if not threads:
            return Batch(cursor=cursor or _BEGINNING)
        terms = " OR ".join(f"conversation_id:{thread}" for thread in threads)
        params: dict[str, Any] = {
            "query": f"({terms}) -from:{self._our_id}",
            "max_results": max(10, self.settings.max_results),
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }
        if cursor is not None and cursor != _BEGINNING:
            params["since_id"] = cursor
        newest = await self._read_pages(
            "/2/tweets/search/recent", params, {}, "post_read", cursor, events, rejected,
            path="search")
        events.sort(key=_order)
        await self._keep_costs()
        return Batch(events=tuple(events), cursor=newest or cursor or _BEGINNING,
                     rejected=tuple(rejected))

    async def _dms(self, cursor: str | None) -> Batch:
        """The DMs after ``cursor`` (a DM event id; the ``dms`` source)."""
        await self._budget_left()
        events: list[Event] = []
        rejected: list[Rejected] = []
        newest = await self._poll_dms(cursor, events, rejected)
        events.sort(key=_order)
        return Batch(events=tuple(events), cursor=newest or _BEGINNING,
                     rejected=tuple(rejected))

    async def _poll_mentions(
        self, since: str | None, events: list[Event], rejected: list[Rejected]
    ) -> str | None:
        params: dict[str, Any] = {
            "max_results": self.settings.max_results,
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }
        if since is not None and since != _BEGINNING:
            params["since_id"] = since
        return await self._read_pages(
            "/2/users/{id}/mentions", params, {"id": self._our_id}, "owned_read",
            since, events, rejected, path="mentions")

    async def _read_pages(
        self, endpoint: str, params: dict[str, Any], path_params: dict[str, str],
        charge: Charge, since: str | None, events: list[Event], rejected: list[Rejected],
        *, path: str,
    ) -> str | None:
        """Read pages of posts newest first, back to ``since`` (``since_id`` in ``params``).

        A burst bigger than a page is read whole, up to ``max_pages`` pages;
        the first poll (no ``since``) reads the newest page only. Returns the
        newest post id read.
        """
        newest: str | None = None
        token: str | None = None
        for number in range(self.settings.max_pages):
            if token is not None:
                params["pagination_token"] = token
            body = await self._json("GET", endpoint, path_params=path_params, params=params)
            page = parse(TweetPage, body, path=path)
            self._charge_page(page, charge)
            if number == 0:
                newest = _usable_id(page.meta.newest_id)
            self._page_events(page, body, events, rejected, path=path)
            token = _usable_token(page.meta.next_token)
            if token is None or since is None:
                break  # the first poll starts from the newest page
        else:
            logger.warning("x %s: more than %d pages since the cursor; older ones are "
                           "left behind", path, self.settings.max_pages,
                           extra={"network": NETWORK})
        return newest

    def _page_events(
        self, page: TweetPage, body: Mapping[str, Any], events: list[Event],
        rejected: list[Rejected], *, path: str,
    ) -> None:
        users = users_by_id(page.includes.users)
        includes = RawIncludes(body.get("includes"))
        for index, raw in enumerate(page.data):
            where = f"{path}.data.{index}"
            try:
                tweet = parse(Tweet, raw, path=where)
                event = self._converter.tweet_event(
                    tweet, users, raw=raw_tweet(raw, includes), path=where)
                if not event.message.from_us:  # our own post: nothing to answer
                    events.append(event)
            except PayloadError as exc:
                rejected.append(Rejected.from_error(exc, raw))
            except ValueError as exc:  # the core model refused what the wire model took
                error = PayloadError(str(exc).splitlines()[0], network=NETWORK, path=where)
                rejected.append(Rejected.from_error(error, raw))

    async def _poll_dms(
        self, since: str | None, events: list[Event], rejected: list[Rejected]
    ) -> str | None:
        params: dict[str, Any] = {
            "max_results": 100,
            "event_types": "MessageCreate",
            "dm_event.fields": DM_FIELDS,
            "expansions": "sender_id",
            "user.fields": USER_FIELDS,
        }
        newest: str | None = None
        token: str | None = None
        for _page in range(self.settings.max_pages):
            if token is not None:
                params["pagination_token"] = token
            body = await self._json("GET", "/2/dm_events", params=params)
            page = parse(DmPage, body, path="dm_events")
            self._charge_reads("dm_event_read", _ids(page.data))
            self._charge_reads("user_read", [u.id for u in page.includes.users])
            users = users_by_id(page.includes.users)
            reached = False
            for index, raw in enumerate(page.data):
                where = f"dm_events.data.{index}"
                found = _usable_id(raw.get("id") if isinstance(raw, dict) else None)
                if isinstance(found, str) and not _newer(found, since):
                    reached = True
                    continue
                if isinstance(found, str) and (newest is None or _newer(found, newest)):
                    newest = found
                try:
                    event = parse(DmEvent, raw, path=where)
                    if event.event_type != "MessageCreate" or event.sender_id == self._our_id:
                        continue  # not a message, or our own echoed back
                    events.append(self._converter.dm_event(event, users, raw=raw, path=where))
                except PayloadError as exc:
                    rejected.append(Rejected.from_error(exc, raw))
                except ValueError as exc:
                    error = PayloadError(str(exc).splitlines()[0], network=NETWORK, path=where)
                    rejected.append(Rejected.from_error(error, raw))
            token = _usable_token(page.meta.next_token)
            if reached or token is None or since is None:
                break  # the first poll reads the newest page, as for mentions
        return newest or since

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        """Turn a recorded X answer into events, without the network.

        ``path`` is one of ``/2/users/:id/mentions``, ``/2/users/:id/tweets``,
        ``/2/tweets/search/recent`` or ``/2/tweets`` (pages of posts),
        ``/2/tweets/:id`` (one post), ``/2/dm_events`` or
        ``/2/dm_conversations/.../dm_events`` (DM events). Without ``path``,
        a body whose items carry ``event_type`` is DM events, else posts.
        Posts without ``author_id`` (asked for without expansions) are refused
        one by one with a `PayloadError`: the message needs its author.

        Args:
            body: The raw body, as recorded.
            path: The endpoint it answered (host and query string ignored).
            account: Our user id: what it wrote gets ``from_us``.

        Raises:
            PayloadError: The body is malformed, or ``path`` is another endpoint.
        """
        return parse_payload(body, path=path, account=account)

    # webhooks ----------------------------------------------------------------

    def _signing_secret(self) -> SecretStr:
        secret = self.settings.signing_secret
        if secret is None:
            raise CapabilityNotSupported(
                "webhook", network=self.network,
                detail="no webhook_secret (the app's consumer secret) is configured",
            )
        return secret

    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Answer X's CRC challenge, or check a delivery's signature in constant time.

        ``GET ?crc_token=...`` is answered with ``{"response_token":
        "sha256=<base64 HMAC-SHA256 of the token>"}`` under the consumer
        secret (X sends it on registration and then periodically; a wrong
        answer marks the webhook invalid). A ``POST`` must carry
        ``x-twitter-webhooks-signature``, the same HMAC of the raw body.

        Raises:
            WebhookSignatureError: The signature (or the CRC token) is missing or wrong.
            CapabilityNotSupported: No webhook secret is configured.
        """
        secret = self._signing_secret()
        if request.method == "GET":
            return crc_response(request.query.get("crc_token", ""), secret)
        verify_signature(request.body, request.header(SIGNATURE_HEADER), secret)
        await self._keep_costs()  # what earlier deliveries cost goes to the store now
        return None

    def parse(self, request: WebhookRequest) -> Batch:
        """Turn a verified delivery (X Activity API or Account Activity API) into events.

        Posts that mention, quote or answer us (``post.mention.create``,
        ``post.reply.create``; ``tweet_create_events``) and DMs received
        (``dm.received``; ``direct_message_events``) become `MessageReceived`
        with the event ids polling gives, so the hub keeps each once. Old
        PascalCase event types read as the dotted ones. Our own posts and
        DMs, typing and read events, likes, follows and profile events give
        nothing. An item that cannot be used is reported in ``Batch.rejected``.

        Raises:
            PayloadError: The body is not JSON or not an X delivery.
            CapabilityNotSupported: No webhook secret is configured.
        """
        self._signing_secret()
        from ._activity import parse_delivery  # only webhook apps need it

        batch = parse_delivery(request.body, self._converter)
        self._charge_delivery(request.body)
        return batch

    async def _manage(self, method: str, path: str, *, app: bool = False,
                      **kwargs: Any) -> Any:
        """A webhook or subscription management request (app-only bearer when ``app``)."""
        token = self.settings.app_bearer_token
        if app and token is not None:
            headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
            response = await self._request(method, path, headers=headers,
                                           authenticated=False, **kwargs)
        else:
            response = await self._request(method, path, **kwargs)
        if not response.content:
            return None
        return self._decode(response, path)

    async def create_subscription(
        self, event_type: str, *, webhook_id: str | None = None, tag: str | None = None,
        user_id: str | None = None,
    ) -> Subscription:
        """Subscribe to an X Activity event for our account (``POST /2/activity/subscriptions``).

        Private events (``post.mention.create``, ``dm.received``...) need the
        user's OAuth 2.0 token, which the adapter holds. Self-serve apps may
        hold 1,500 subscriptions.

        Args:
            event_type: The event, dotted (``post.mention.create``) or PascalCase.
            webhook_id: The registered webhook to deliver to; without one the
                events go to the stream ``GET /2/activity/stream``.
            tag: A label X puts on every delivery of the subscription.
            user_id: Whose events (default: our account, once open).

        Raises:
            RequestRejected: X refused the subscription (a duplicate, a cap).
            PayloadError: The answer carries no subscription.
        """
        body: dict[str, Any] = {
            "event_type": event_type,
            "filter": {"user_id": user_id or self._our_id},
        }
        if webhook_id is not None:
            body["webhook_id"] = webhook_id
        if tag is not None:
            body["tag"] = tag
        answer = await self._manage("POST", "/2/activity/subscriptions", json=body,
                                    bucket="activity/subscriptions")
        data = answer.get("data") if isinstance(answer, dict) else None
        item = data.get("subscription", data) if isinstance(data, dict) else None
        return parse(Subscription, item, path="activity.subscriptions.data.subscription")

    async def list_subscriptions(self) -> list[Subscription]:
        """Our X Activity subscriptions (``GET /2/activity/subscriptions``, every page).

        With the ``app_bearer_token`` when configured (X's spec names the
        app-only token alone for it), else the account's token.

        Raises:
            PayloadError: The listing cannot be read.
        """
        found: list[Subscription] = []
        params: dict[str, Any] = {"max_results": 1000}
        for _page in range(self.settings.max_pages):
            answer = await self._manage("GET", "/2/activity/subscriptions", app=True,
                                        params=params,
                                        bucket="activity/subscriptions")
            page = parse(SubscriptionPage, answer if answer is not None else {},
                         path="activity.subscriptions")
            found += page.data
            token = page.meta.next_token
            if token is None:
                break
            params["pagination_token"] = token
        return found

    async def delete_subscription(self, subscription_id: str) -> None:
        """End a subscription (``DELETE /2/activity/subscriptions/:id``).

        With the ``app_bearer_token`` when configured (X's spec names the
        app-only token alone for it), else the account's token.

        Raises:
            NotFound: There is no such subscription.
        """
        await self._manage("DELETE", "/2/activity/subscriptions/{id}", app=True,
                           path_params={"id": subscription_id}, idempotent=True,
                           bucket="activity/subscriptions")

    async def replay(self, webhook_id: str, since: datetime, until: datetime) -> str:
        """Ask X to deliver again what a webhook missed (``POST /2/webhooks/replay``).

        X counts the range in whole minutes (``yyyymmddhhmm``, UTC); the
        replayed deliveries arrive at the webhook like new ones, signed, and the
        hub drops those it already stored (same event ids). Returns the
        replay job's id. Uses the ``app_bearer_token`` when configured.

        Raises:
            ValueError: ``until`` is before ``since``, or either is naive.
            RequestRejected: X refused the range (too old, a job running).
        """
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("since and until must be aware datetimes")
        if until < since:
            raise ValueError("until is before since")
        form = "%Y%m%d%H%M"
        body = {
            "webhook_id": webhook_id,
            "from_date": since.astimezone(UTC).strftime(form),
            "to_date": until.astimezone(UTC).strftime(form),
        }
        answer = await self._manage("POST", "/2/webhooks/replay", app=True, json=body,
                                    bucket="webhooks/replay")
        data = answer.get("data", answer) if isinstance(answer, dict) else None
        job = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job, str) or not job:
            raise PayloadError("no job_id in the answer", network=self.network,
                               path="webhooks.replay")
        return job

    # outbound ----------------------------------------------------------------

    def _reply_rule_applies(self) -> bool:
        return self.settings.tier in SELF_SERVE

    def summoned(self, message: Message) -> bool:
        """Whether replying publicly to ``message`` is allowed under X's 2026 reply rule.

        Allowed: our own posts; a post whose author @mentions us in its body or
        quotes one of our posts; a reply to one of our posts only when
        ``thread_replies_summon`` is set (X's docs leave it open). The
        ``@mentions`` X puts in front of a reply do not count as a summons.
        """
        if message.from_us:
            return True
        our_id = self._converter.our_id
        handle = self.account.handle if self.account is not None else None
        tweet = _tweet_of(message)
        replying_to_us = tweet is not None and tweet.get("in_reply_to_user_id") == our_id
        lead = _LEADING_MENTIONS.match(message.text) if message.in_reply_to is not None else None
        body_start = lead.end() if lead else 0
        for entity in message.entities:
            if not isinstance(entity, Mention):
                continue
            ours = (entity.person is not None and entity.person.id == our_id) or (
                handle is not None and entity.handle.lower() == handle.lower()
            )
            if ours and entity.start >= body_start:
                return True
        if _quotes_us(message, our_id):
            return True
        return replying_to_us and self.settings.thread_replies_summon

    def check(
        self, action: Action, *, now: datetime | None = None, human_agent: bool = False
    ) -> None:
        """Check ``action`` against the tier's capabilities and X's reply rule, before any request.

        Raises:
            CapabilityNotSupported: The tier cannot do this (likes on self-serve...).
            TextTooLong: Over 280 weighted characters (or 10,000 in a DM).
            NotSummoned: A public reply the 2026 rule forbids on this tier.
        """
        super().check(action, now=now, human_agent=human_agent)
        if (
            isinstance(action, Reply)
            and not action.to.is_private
            and (action.visibility or "public") != "private"
            and self._reply_rule_applies()
            and not self.summoned(action.to)
        ):
            raise NotSummoned(action.to.ref.id, reason=f"tier {self.settings.tier}")
        if isinstance(action, Reply | PrivateReply | Post | Delete):
            self._guard(self.price_of(action), at=now)

    # costs -------------------------------------------------------------------

    @property
    def _charging(self) -> bool:
        return self.settings.tier == "pay_per_use"

    def price_of(self, action: Action) -> Decimal:
        """What ``action`` costs on pay-per-use (0 on the other tiers), by X's 2026 list.

        A post or reply with a URL costs ``post_create_url`` (0.20 USD, 15 times a
        plain post), a reply to a post that summoned us ``summoned_reply``, a DM
        ``dm_create``, a deletion ``interaction_delete``; hiding and reacting
        have no listed price.
        """
        what = self._charge_for(action)
        if not self._charging or what is None:
            return Decimal(0)
        price: Decimal = getattr(self.settings.prices, what)
        return price

    def _charge_for(self, action: Action) -> Charge | None:
        match action:
            case PrivateReply():
                return "dm_create"
            case Reply() if self._is_dm(action):
                return "dm_create"
            case Reply() | Post() if has_url(action.text):
                return "post_create_url"
            case Reply() if self.account is not None and self.summoned(action.to):
                return "summoned_reply"
            case Reply() | Post():
                return "post_create"
            case Delete():
                return "interaction_delete"
            case _:
                return None

    def _guard(self, price: Decimal, *, at: datetime | None = None) -> None:
        """Refuse ``price`` over a budget by the figures last read (``check``: no I/O)."""
        if self._charging:
            self.costs.guard(price, at=at or datetime.now(UTC))

    async def _reserve(self, what: Charge | None, price: Decimal) -> None:
        """Check a write's price against the shared budgets and count it, before the request."""
        if self._charging and what is not None:
            await self._keep_costs()
            await self.costs.reserve(what, price, at=datetime.now(UTC))

    def _refund(self, what: Charge | None, price: Decimal) -> None:
        """Give back a reserved price: the request did not happen (sent at the next flush)."""
        if self._charging and what is not None and price:
            self.costs.meter.charge(what, -price, at=datetime.now(UTC))

    async def _budget_left(self) -> None:
        """Refuse a read once a budget is spent, by the shared figures (a read is priced after)."""
        if self._charging:
            await self._keep_costs()
            await self.costs.reserve(None, Decimal(0), at=datetime.now(UTC))

    async def _refresh_costs(self) -> None:
        """Read today's and this month's spend back from the store (after a restart, say)."""
        if not self._charging:
            return
        try:
            await self.costs.meter.refresh(datetime.now(UTC))
        except Exception as exc:
            logger.error("reading the x spend from the store failed (%s)",  # noqa: TRY400
                         type(exc).__name__, extra={"network": NETWORK})

    def _charge_delivery(self, body: bytes) -> None:
        """Charge an X Activity event delivered (webhook or stream), once per event."""
        if not self._charging:
            return
        from ._activity import delivery_charge

        charge = delivery_charge(body)
        if charge is not None:
            self._charge_reads(charge[0], [charge[1]])

    def _charge_reads(self, what: Charge, ids: list[str]) -> None:
        if self._charging and ids:
            self.costs.charge_reads(what, ids, at=datetime.now(UTC))

    async def _keep_costs(self) -> None:
        """Add what was charged to the store, or write the ledger file (never fails the request)."""
        try:
            await self.costs.meter.flush()
        except Exception as exc:
            logger.error("keeping the x spend in the store failed (%s)",  # noqa: TRY400
                         type(exc).__name__, extra={"network": NETWORK})
        if self.costs.path is None or not self.costs.dirty or self.costs.meter.store is not None:
            return
        today = datetime.now(UTC).date()
        try:
            await anyio.to_thread.run_sync(functools.partial(self.costs.save, today=today))
        except OSError as exc:
            logger.error("saving the x cost ledger failed (%s)",  # noqa: TRY400
                         type(exc).__name__, extra={"network": NETWORK})

    def _charge_page(self, page: TweetPage, what: Charge) -> None:
        self._charge_reads(what, _ids(page.data))
        self._charge_reads("user_read", [u.id for u in page.includes.users])
        self._charge_reads("post_read", _ids(page.includes.tweets))

    def _is_dm(self, action: Reply | PrivateReply | Post) -> bool:
        return isinstance(action, PrivateReply) or (
            isinstance(action, Reply)
            and (action.to.is_private or action.visibility == "private")
        )

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Publish a post, a reply (``reply.in_reply_to_tweet_id``) or a DM.

        A reply to a DM, and a private reply, go as DMs: into the DM's
        conversation, or to the post's author
        (``POST /2/dm_conversations/with/:participant_id/messages``).

        Raises:
            TextTooLong: Over the limit, counted X's way.
            NotSummoned: X refused the reply under its reply rule.
            DuplicateContent: X refused the post as a duplicate.
            DirectMessageRefused: The customer does not accept our DMs.
            AmbiguousDelivery: The request may have landed without an answer.
            UsageCapped: The app's usage cap or credits are spent.
        """
        rule = self.capabilities.rule_for(action)
        rule.check(action.text, network=self.network)
        what, price = self._charge_for(action), self.price_of(action)
        await self._reserve(what, price)
        try:
            sent = await (self._send_dm(action) if self._is_dm(action) else self._post(action))
        except AmbiguousDelivery:
            raise  # it may have landed and been billed: the price stays counted
        except BaseException:
            self._refund(what, price)
            raise
        await self._keep_costs()
        return sent

    async def _post(self, action: Reply | PrivateReply | Post) -> Sent:
        payload: dict[str, Any] = {"text": action.text}
        if isinstance(action, Reply):
            payload["reply"] = {"in_reply_to_tweet_id": action.to.ref.id}
        try:
            body = await self._json("POST", "/2/tweets", json=payload)
        except RequestRejected as exc:
            if is_not_summoned(exc) and isinstance(action, Reply):
                raise NotSummoned(action.to.ref.id, reason="refused by X") from exc
            raise
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise PayloadError("no data.id in the answer", network=self.network, path="tweets")
        tweet_id: str = data["id"]
        conversation = action.to.conversation if isinstance(action, Reply) else Ref(
            network=NETWORK, id=tweet_id)
        return Sent(
            idempotency_key=action.idempotency_key,
            ref=Ref(network=NETWORK, id=tweet_id),
            conversation=conversation,
            raw=body,
        )

    async def _send_dm(self, action: Reply | PrivateReply | Post) -> Sent:
        if isinstance(action, Post):  # pragma: no cover - _is_dm excludes posts
            raise CapabilityNotSupported("post", network=self.network, detail="as a DM")
        if action.to.is_private:
            path = "/2/dm_conversations/{id}/messages"
            params = {"id": action.to.conversation.id}
        else:
            path = "/2/dm_conversations/with/{id}/messages"
            params = {"id": action.to.author.ref.id}
        body = await self._json("POST", path, path_params=params, json={"text": action.text})
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("dm_event_id"), str):
            raise PayloadError("no data.dm_event_id in the answer", network=self.network,
                               path="dm_conversations")
        convo = data.get("dm_conversation_id")
        return Sent(
            idempotency_key=action.idempotency_key,
            ref=Ref(network=NETWORK, id=data["dm_event_id"]),
            conversation=Ref(network=NETWORK, id=convo) if isinstance(convo, str) else None,
            raw=body,
        )

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look through our latest posts (or the DM conversation) for what ``action`` created.

        X has no idempotency key. A post matches when it answers the same post
        and its text is the action's as X stores it (NFC, links as t.co: every
        link is compared as a placeholder). A DM matches when we sent it in the
        conversation with the same text. An item that cannot be read is passed
        over; if nothing matched, it might have been the one, so the lookup
        proves nothing and raises.

        Raises:
            PayloadError: The listing, or an item of it while nothing matched,
                cannot be read: whether it landed cannot be told.
        """
        if self._is_dm(action):
            return await self._find_dm(action)
        wanted = _comparable(action.text)
        parent = action.to.ref.id if isinstance(action, Reply) else None
        body = await self._json(
            "GET", "/2/users/{id}/tweets", path_params={"id": self._our_id},
            params={"max_results": self.settings.find_sent_depth,
                    "tweet.fields": TWEET_FIELDS, "exclude": "retweets"},
        )
        page = parse(TweetPage, body, path="tweets")
        self._charge_page(page, "owned_read")
        await self._keep_costs()
        unreadable: PayloadError | None = None
        for index, raw in enumerate(page.data):
            try:
                tweet = parse(Tweet, raw, path=f"tweets.data.{index}")
            except PayloadError as exc:
                unreadable = unreadable or exc
                continue
            if tweet.referenced("replied_to") != parent:
                continue
            if _comparable(unescape(tweet.text)) == wanted:
                conversation = action.to.conversation if isinstance(action, Reply) else Ref(
                    network=NETWORK, id=tweet.conversation_id or tweet.id)
                return Sent(
                    idempotency_key=action.idempotency_key,
                    ref=Ref(network=NETWORK, id=tweet.id),
                    conversation=conversation,
                    sent_at=tweet.created_at or datetime.now(UTC),
                    raw=raw if isinstance(raw, dict) else None,
                )
        if unreadable is not None:  # "absent" would invite a second post
            raise unreadable
        return None

    async def _find_dm(self, action: Reply | PrivateReply | Post) -> Sent | None:
        if isinstance(action, Post):  # pragma: no cover - _is_dm excludes posts
            return None
        if action.to.is_private:
            path, params = "/2/dm_conversations/{id}/dm_events", {"id": action.to.conversation.id}
        else:
            path = "/2/dm_conversations/with/{id}/dm_events"
            params = {"id": action.to.author.ref.id}
        body = await self._json("GET", path, path_params=params, params={
            "max_results": 50, "event_types": "MessageCreate", "dm_event.fields": DM_FIELDS,
        })
        page = parse(DmPage, body, path="dm_events")
        self._charge_reads("dm_event_read", _ids(page.data))
        await self._keep_costs()
        wanted = _comparable(action.text)
        unreadable: PayloadError | None = None
        for index, raw in enumerate(page.data):
            try:
                event = parse(DmEvent, raw, path=f"dm_events.data.{index}")
            except PayloadError as exc:
                unreadable = unreadable or exc
                continue
            if event.sender_id != self._our_id or event.text is None:
                continue
            if _comparable(unescape(event.text)) == wanted:
                convo = event.dm_conversation_id
                return Sent(
                    idempotency_key=action.idempotency_key,
                    ref=Ref(network=NETWORK, id=event.id),
                    conversation=Ref(network=NETWORK, id=convo) if convo else None,
                    sent_at=event.created_at or datetime.now(UTC),
                    raw=raw if isinstance(raw, dict) else None,
                )
        if unreadable is not None:
            raise unreadable
        return None

    async def react(self, action: React) -> Sent:
        """Like a post (``POST /2/users/:id/likes``); only the Enterprise tier has likes.

        Raises:
            CapabilityNotSupported: The tier has no likes, or a reaction other than ``like``.
        """
        if action.reaction not in self.capabilities.reactions:
            raise CapabilityNotSupported(
                "react", network=self.network,
                detail=f"reaction {action.reaction!r} on tier {self.settings.tier}",
            )
        body = await self._json(
            "POST", "/2/users/{id}/likes", path_params={"id": self._our_id},
            json={"tweet_id": action.target.id}, idempotent=True,
        )
        return Sent(idempotency_key=action.idempotency_key, ref=action.target,
                    raw=body if isinstance(body, dict) else None)

    async def hide(self, action: Hide) -> Sent:
        """Hide or unhide a reply to one of our posts (``PUT /2/tweets/:id/hidden``).

        Raises:
            RequestRejected: The post is not a reply in a conversation we started.
        """
        body = await self._json(
            "PUT", "/2/tweets/{id}/hidden", path_params={"id": action.target.id},
            json={"hidden": action.hidden},
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("hidden") is not action.hidden:
            raise PayloadError("the answer does not confirm the hidden state",
                               network=self.network, path="hidden")
        return Sent(idempotency_key=action.idempotency_key, ref=action.target, raw=body)

    async def delete(self, action: Delete) -> Sent:
        """Delete one of our posts (``DELETE /2/tweets/:id``).

        Raises:
            NotFound: There is no such post.
            RequestRejected: It is not ours.
        """
        price = self.price_of(action)
        await self._reserve("interaction_delete", price)
        try:
            body = await self._json("DELETE", "/2/tweets/{id}",
                                    path_params={"id": action.target.id})
        except AmbiguousDelivery:
            raise
        except BaseException:
            self._refund("interaction_delete", price)
            raise
        await self._keep_costs()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("deleted") is not True:
            raise PayloadError("the answer does not confirm the deletion",
                               network=self.network, path="tweets")
        return Sent(idempotency_key=action.idempotency_key, ref=action.target, raw=body)


def _tweet_of(message: Message) -> dict[str, Any] | None:
    raw = message.raw
    if not isinstance(raw, dict):
        return None
    data = raw.get("data", raw)
    return data if isinstance(data, dict) else None


def _quotes_us(message: Message, our_id: str | None) -> bool:
    """Whether the post quotes one of ours (its quoted post's author, from the includes)."""
    tweet = _tweet_of(message)
    raw = message.raw
    if tweet is None or our_id is None or not isinstance(raw, dict):
        return False
    quoted = {
        r.get("id") for r in tweet.get("referenced_tweets") or ()
        if isinstance(r, dict) and r.get("type") == "quoted"
    }
    includes = raw.get("includes")
    tweets = includes.get("tweets") if isinstance(includes, dict) else None
    if not isinstance(tweets, list):
        return False
    return any(
        isinstance(t, dict) and t.get("id") in quoted and t.get("author_id") == our_id
        for t in tweets
    )


def _ids(items: Sequence[object]) -> list[str]:
    """The ``id`` of each decoded item that has one."""
    return [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]

