"""A stateful fake X API v2 for tests and demos.

It answers in the shapes of the recorded answers under ``tests/vectors/twitter/``
and of the X OpenAPI specification: posts with ``author_id``,
``conversation_id``, ``referenced_tweets`` and ``entities`` (code-point
offsets), ``includes.users``/``includes.tweets``, ``meta`` with
``newest_id``/``oldest_id``/``next_token``, DM events, RFC 7807 Problem
bodies, and ``x-rate-limit-*`` headers with the reset in epoch seconds.

```python
from omnichannel_x import XAdapter
from omnichannel_x.sandbox import XSandbox

sandbox = XSandbox(seed=7)
sandbox.customer_mention("my order never came")
async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
    batch = await x.poll(None)
```

What it models of X: snowflake ids; links shown as ``t.co`` URLs with their
``expanded_url``; ``&``, ``<`` and ``>`` escaped in post text; the 2026 reply
rule on self-serve tiers (``tier``; whether a reply to our post summons us is
``thread_replies_summon``); duplicate posts refused with a 403; hidden
replies only in conversations we started; likes only on Enterprise; DMs to
customers who closed them refused; OAuth 2.0 refresh tokens that rotate on
every refresh (the old one stops working).

Served endpoints: ``GET /2/users/me``, ``GET /2/users/:id/mentions``,
``GET /2/users/:id/tweets``, ``GET /2/tweets/search/recent`` (``conversation_id:``
terms and ``-from:``), ``GET/DELETE /2/tweets/:id``, ``POST /2/tweets``,
``PUT /2/tweets/:id/hidden``, ``POST/DELETE /2/users/:id/likes``,
``GET /2/dm_events``, ``GET /2/dm_conversations/[with/]:id/dm_events``,
``POST /2/dm_conversations/[with/]:id/messages``, ``GET /2/activity/stream``
(`XSandbox.miss_stream` drops what it has not sent), ``POST /2/oauth2/token``
(refresh, and the authorization code of `XSandbox.authorize`),
``POST/GET /2/activity/subscriptions``, ``DELETE /2/activity/subscriptions/:id``
and ``POST /2/webhooks/replay``.

Webhooks: `XSandbox.render_webhook` renders a mention, a reply or a DM to us as
the X Activity API delivery (``post.mention.create``, ``post.reply.create``,
``dm.received``) signed with ``x-twitter-webhooks-signature`` under
``webhook_secret`` (the consumer secret); `XSandbox.crc_challenge` is the
``GET ?crc_token=`` X sends; `XSandbox.replay_deliveries` what a replay job
delivers again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio

from omnichannel.testing import (
    Account,
    HandlerResult,
    Post,
    RateLimitWindow,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    WebhookDelivery,
    route,
)
from omnichannel.testing.sandbox import (
    AuthFailure,
    DirectMessage,
    Facet,
    Notification,
    RecordKind,
)

from ._text import x_weighted_length

__all__ = ["XSandbox"]

_EPOCH_MS = 1288834974657
_PROBLEMS = "https://api.twitter.com/2/problems/"
_LEADING_MENTIONS = re.compile(r"\A(?:@\w{1,15}\s+)+")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SELF_SERVE = frozenset({"pay_per_use", "basic", "pro"})
SCOPES = "tweet.read tweet.write users.read dm.read dm.write offline.access"


def _iso(moment: datetime) -> str:
    """X's timestamps: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _dotted(kind: str) -> str:
    """``DmReceived`` -> ``dm.received``; dotted types as they are."""
    if "." in kind:
        return kind
    return ".".join(word.lower() for word in re.findall(r"[A-Z][a-z]*", kind))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> SandboxResponse:
    return SandboxResponse.json(
        {"title": title, "detail": detail, "type": kind, "status": status}, status=status
    )


_CONVERSATION_TERM = re.compile(r"conversation_id:(\d+)")
_NOT_FROM_TERM = re.compile(r"-from:(\d+)")


class XSandbox(Sandbox):
    """A fake X with our account ``@shop``, OAuth 2.0 tokens and a tier.

    Args:
        seed: Seeds fault injection (same seed, same faults).
        clock: The virtual clock stamping records.
        our_handle: Our account's username (default ``shop``).
        base_url: The URL the in-process transport answers for.

    Attributes:
        tier: The app's tier (``pay_per_use`` by default): the reply rule
            applies on every tier but ``enterprise``, and only Enterprise likes.
        thread_replies_summon: Whether X lets us answer a reply to one of our
            posts that does not @mention us (X's docs leave it open).
        client_id: The OAuth 2.0 client id refreshes must name.
        refresh_token: Our current refresh token (rotated by every refresh).
        app_bearer_token: The app-only bearer token (the activity stream takes
            no other; replay and listing or deleting subscriptions take it too).
        app_requests: ``"METHOD /path"`` of each request made with it.
        stream_lifetime: Seconds a ``GET /2/activity/stream`` connection stays
            open sending new events, from the first connection on (``0``: it
            sends what happened since the previous connection and closes).
        refreshes: How many refreshes succeeded.
    """

    network = "x"
    our_handle = "shop"
    text_limit = 280
    dm_text_limit = 10_000
    default_rate_limit = (300, 900.0)
    create_routes = ("POST /2/tweets", "POST /2/dm_conversations/*")
    tier: str = "pay_per_use"
    thread_replies_summon: bool = True
    client_id: ClassVar[str] = "sandbox-client"
    stream_lifetime: float = 0.0
    stream_interval: float = 0.02
    access_lifetime: ClassVar[float] = 7200.0

    def setup(self) -> None:
        """Issue our refresh token and prepare the t.co table."""
        self.refresh_token = self.tokens.issue(self.our_account.id, kind="refresh")
        self.refreshes = 0
        self._codes: dict[str, tuple[str, str, str]] = {}
        self._short: dict[str, str] = {}
        self.webhook_id = "1146654567674912769"
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.replay_jobs: dict[str, tuple[datetime, datetime, str]] = {}
        self.stream_seq = 0
        self.stream_connections = 0
        self.app_bearer_token = "app-" + secrets.token_urlsafe(24)
        self.app_requests: list[str] = []

    # ids, text and errors, X's way -------------------------------------------------

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """Snowflakes: milliseconds since X's epoch above 22 bits of sequence."""
        with self._lock:
            millis = int(self.clock.peek().timestamp() * 1000) - _EPOCH_MS
            candidate = max(millis, 1) << 22
            value = max(candidate, getattr(self, "_last_snowflake", 0) + 1)
            self._last_snowflake = value
            return str(value)

    def count_text(self, text: str, *, private: bool = False) -> int:
        """Weighted length for posts (twitter-text v3), code points for DMs."""
        return len(text) if private else x_weighted_length(text)

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """OAuth 2.0 tokens, the tier, and no DM pacing (tests poll often)."""
        return {
            "base_url": base_url or self.base_url,
            "access_token": self.token,
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "tier": self.tier,
            "thread_replies_summon": self.thread_replies_summon,
            "dm_poll_interval": 0,
            "webhook_secret": self.webhook_secret,
            "app_bearer_token": self.app_bearer_token,
        }

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """X's 401 Problem."""
        return _problem(401, "Unauthorized", "Unauthorized")

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """``x-rate-limit-limit/-remaining/-reset`` (reset in epoch seconds)."""
        return {
            "x-rate-limit-limit": str(window.limit),
            "x-rate-limit-remaining": str(window.remaining),
            "x-rate-limit-reset": str(window.reset_epoch),
        }

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """X's 429: a Problem and the rate-limit headers, no ``Retry-After``."""
        response = _problem(429, "Too Many Requests", "Too Many Requests")
        response.headers.update(self.rate_limit_headers(window))
        return response

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """A server error Problem."""
        return _problem(status, "Service Unavailable", "Service Unavailable")

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """A ``resource-not-found`` Problem."""
        return _problem(404, "Not Found Error", "Could not find the requested resource.",
                        _PROBLEMS + "resource-not-found")

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """An ``invalid-request`` Problem with the message in ``errors``."""
        return SandboxResponse.json({
            "errors": [{"message": message}], "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": _PROBLEMS + "invalid-request",
        }, status=status)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """X's refusal of an over-long post."""
        return self.bad_request(request, f"Your Tweet text is too long ({length} > {limit}).")

    def revoke_credentials(self) -> None:
        """Revoke our access token and our refresh token."""
        self.tokens.revoke(self.token)
        self.tokens.revoke(self.refresh_token)

    # the customer side ---------------------------------------------------------------

    def dm_conversation_id(self, a: Account | str, b: Account | str) -> str:
        """X's id of a one-to-one DM conversation: the two user ids, lower first."""
        ids = sorted((x if isinstance(x, str) else x.id for x in (a, b)), key=int)
        return f"{ids[0]}-{ids[1]}"

    def customer_dm(self, text: str, *, author: Account | None = None) -> DirectMessage:
        """A customer sends us a DM, in X's one-to-one conversation."""
        who = author or self.customer()
        convo = self.world.conversation_between(
            who, self.our_account, id=self.dm_conversation_id(who, self.our_account))
        if convo is None:  # pragma: no cover - create=True always returns one
            raise RuntimeError("no conversation")
        return self.world.add_message(who, convo.id, text)

    def customer_quote(self, quoted: Post | str, text: str, *,
                       author: Account | None = None) -> Post:
        """A customer quotes a post (one of ours summons us)."""
        post_id = quoted if isinstance(quoted, str) else quoted.id
        self.world.post(post_id)
        return self.world.add_post(author or self.customer(), text,
                                   extra={"quoted": post_id})

    def close_dms(self, account: Account) -> None:
        """The customer stops accepting DMs from us: X refuses our next DM to them."""
        account.extra["dm_closed"] = True

    # rendering -------------------------------------------------------------------------

    def short_url(self, url: str) -> str:
        """The ``t.co`` link X shows for ``url`` (stable per URL)."""
        found = self._short.get(url)
        if found is None:
            digest = int.from_bytes(hashlib.sha256(url.encode()).digest()[:8], "big")
            code = ""
            for _ in range(10):
                digest, rest = divmod(digest, 62)
                code += _BASE62[rest]
            found = f"https://t.co/{code}"
            self._short[url] = found
        return found

    def render_user(self, account: Account) -> dict[str, Any]:
        """A user object with the fields the adapter asks for."""
        return {
            "id": account.id, "name": account.display_name, "username": account.handle,
            "protected": False, "verified": False,
            "profile_image_url": "https://pbs.twimg.com/profile_images/default_normal.png",
            "public_metrics": {"followers_count": 0, "following_count": 0, "tweet_count": len(
                self.world.posts_by(account)), "listed_count": 0},
        }

    def render_text(self, text: str, facets: Iterable[Facet]) -> tuple[str, dict[str, Any]]:
        """The text as X shows it (links as t.co, ``&<>`` escaped) and its entities."""
        pieces: list[str] = []
        entities: dict[str, list[dict[str, Any]]] = {}
        pos = 0
        length = 0
        for facet in sorted(facets, key=lambda f: f.start):
            if facet.start < pos:
                continue
            before = text[pos:facet.start]
            pieces.append(before)
            length += len(before)
            shown = text[facet.start:facet.end]
            if facet.kind == "link":
                shown = self.short_url(facet.value)
                display = facet.value.split("://", 1)[-1]
                entities.setdefault("urls", []).append({
                    "start": length, "end": length + len(shown), "url": shown,
                    "expanded_url": facet.value,
                    "display_url": display if len(display) <= 25 else display[:24] + "…",
                })
            elif facet.kind == "hashtag":
                entities.setdefault("hashtags", []).append(
                    {"start": length, "end": length + len(shown), "tag": facet.value})
            else:
                item: dict[str, Any] = {"start": length, "end": length + len(shown),
                                        "username": shown[1:]}
                if facet.account_id is not None and facet.account_id in self.world.accounts:
                    item["id"] = facet.account_id
                    item["username"] = self.world.account(facet.account_id).handle
                entities.setdefault("mentions", []).append(item)
            pieces.append(shown)
            length += len(shown)
            pos = facet.end
        pieces.append(text[pos:])
        return _escape("".join(pieces)), entities

    def render_tweet(self, post: Post) -> dict[str, Any]:
        """A post with the fields the adapter asks for."""
        text, entities = self.render_text(post.text, post.facets)
        body: dict[str, Any] = {
            "id": post.id, "text": text, "author_id": post.author_id,
            "conversation_id": post.root, "created_at": _iso(post.created_at),
            "edit_history_tweet_ids": [post.id],
        }
        referenced = []
        if post.in_reply_to is not None:
            referenced.append({"type": "replied_to", "id": post.in_reply_to})
            parent = self.world.posts.get(post.in_reply_to)
            if parent is not None:
                body["in_reply_to_user_id"] = parent.author_id
        quoted = post.extra.get("quoted")
        if isinstance(quoted, str):
            referenced.append({"type": "quoted", "id": quoted})
        if referenced:
            body["referenced_tweets"] = referenced
        if entities:
            body["entities"] = entities
        return body

    def render_includes(self, posts: Iterable[Post]) -> dict[str, Any]:
        """``includes``: the authors, mentioned and answered users, referenced posts."""
        users: dict[str, Account] = {}
        tweets: dict[str, Post] = {}
        for post in posts:
            for ref in (post.in_reply_to, post.extra.get("quoted")):
                if isinstance(ref, str) and ref in self.world.posts:
                    tweets[ref] = self.world.posts[ref]
        for post in [*posts, *tweets.values()]:
            for account_id in (post.author_id, *post.mentions):
                if account_id in self.world.accounts:
                    users[account_id] = self.world.account(account_id)
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = [self.render_user(u) for u in users.values()]
        if tweets:
            includes["tweets"] = [self.render_tweet(t) for t in tweets.values()]
        return includes

    def render_dm(self, message: DirectMessage) -> dict[str, Any]:
        """A ``MessageCreate`` DM event."""
        return {
            "id": message.id, "event_type": "MessageCreate", "text": message.text,
            "sender_id": message.sender_id, "dm_conversation_id": message.conversation_id,
            "created_at": _iso(message.created_at),
        }

    # webhooks (X Activity API) ---------------------------------------------------------

    def render_webhook(self, notification: Notification) -> WebhookDelivery | None:
        """A mention, reply or DM to us as the signed X Activity API delivery."""
        event = self.activity_event(notification)
        return None if event is None else self.sign({"data": event})

    def activity_event(
        self, notification: Notification, *, pascal_case: bool = False
    ) -> dict[str, Any] | None:
        """The XAA event (``data`` of a delivery) for a notification, or ``None``.

        Args:
            notification: A notification to our account.
            pascal_case: Spell the event type as before 2026-03-18 (``PostMentionCreate``).
        """
        if notification.recipient_id != self.our_account.id:
            return None
        if notification.kind == "dm":
            message = self.world.message(notification.subject_id)
            kind = "dm.received"
            payload = self.render_dm(message)
            includes = {"users": [self.render_user(self.world.account(message.sender_id))]}
        elif notification.kind in ("mention", "reply"):
            post = self.world.post(notification.subject_id)
            parent = self.world.posts.get(post.in_reply_to) if post.in_reply_to else None
            answers_us = parent is not None and parent.author_id == self.our_account.id
            mentions_us = self.our_account.id in post.mentions
            kind = "post.reply.create" if answers_us and not mentions_us else (
                "post.mention.create")
            payload = self.render_tweet(post)
            includes = self.render_includes([post])
        else:
            return None
        if pascal_case:
            kind = "".join(word.capitalize() for word in kind.split("."))
        return {
            "event_uuid": self.new_id("post", None), "filter": {"user_id": self.our_account.id},
            "event_type": kind, "tag": "omnichannel", "payload": payload, "includes": includes,
        }

    def sign(self, payload: dict[str, Any]) -> WebhookDelivery:
        """A delivery of ``payload`` signed as X signs (``x-twitter-webhooks-signature``)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).digest()
        return WebhookDelivery(
            method="POST", path=f"/{self.network}", body=body,
            headers={"Content-Type": "application/json",
                     "x-twitter-webhooks-signature":
                         "sha256=" + base64.b64encode(digest).decode("ascii")},
        )

    def crc_challenge(self, token: str | None = None) -> WebhookDelivery:
        """The CRC ``GET`` X sends to a webhook URL (at registration, then periodically)."""
        return WebhookDelivery(method="GET", path=f"/{self.network}",
                               query={"crc_token": token or f"crc-{self.seed}-challenge"})

    def crc_answer(self, token: str) -> str:
        """The ``response_token`` X expects for ``token``."""
        digest = hmac.new(self.webhook_secret.encode(), token.encode(), hashlib.sha256).digest()
        return "sha256=" + base64.b64encode(digest).decode("ascii")

    def replay_deliveries(self, job_id: str) -> list[WebhookDelivery]:
        """What a replay job delivers again: every delivery in its minutes, oldest first.

        Raises:
            KeyError: No such job.
        """
        since, until, _webhook = self.replay_jobs[job_id]
        out: list[WebhookDelivery] = []
        for notification in self.world.notifications_for(self.our_account):
            if since <= notification.created_at < until:
                delivery = self.render_webhook(notification)
                if delivery is not None:
                    out.append(delivery)
        return out

    # paging ------------------------------------------------------------------------------

    def _page(
        self, request: SandboxRequest, items: list[tuple[str, dict[str, Any]]], *,
        default: int, low: int, high: int, extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Newest first, with ``since_id``, ``until_id``, ``max_results`` and page tokens."""
        raw_max = request.query.get("max_results")
        size = default
        if raw_max is not None:
            if not raw_max.isdigit() or not low <= int(raw_max) <= high:
                raise SandboxAbort(self.bad_request(
                    request, f"The `max_results` query parameter value [{raw_max}] is not "
                    f"between {low} and {high}"))
            size = int(raw_max)
        pool = sorted(items, key=lambda item: int(item[0]), reverse=True)
        for name in ("since_id", "until_id"):
            value = request.query.get(name)
            if value is None:
                continue
            if not value.isdigit():
                raise SandboxAbort(self.bad_request(request, f"invalid {name}"))
            bound = int(value)
            pool = [item for item in pool
                    if (int(item[0]) > bound if name == "since_id" else int(item[0]) < bound)]
        token = request.query.get("pagination_token")
        if token is not None:
            if not token.startswith("p") or not token[1:].isdigit():
                raise SandboxAbort(self.bad_request(request, "invalid pagination_token"))
            pool = [item for item in pool if int(item[0]) < int(token[1:])]
        page, rest = pool[:size], pool[size:]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"] = page[0][0]
            meta["oldest_id"] = page[-1][0]
        if rest and page:
            meta["next_token"] = "p" + page[-1][0]
        body: dict[str, Any] = {}
        if page:
            body["data"] = [payload for _, payload in page]
        body.update(extra or {})
        body["meta"] = meta
        return body

    # routes ------------------------------------------------------------------------------

    def _me(self, request: SandboxRequest) -> Account:
        if request.account is None:  # pragma: no cover - auth=True guarantees it
            raise SandboxAbort(self.auth_error(request, "missing"))
        return request.account

    def _ours(self, request: SandboxRequest) -> Account:
        me = self._me(request)
        if request.params.get("id") != me.id:
            raise SandboxAbort(_problem(
                403, "Forbidden", "You are not permitted to perform this action for this user.",
                _PROBLEMS + "client-forbidden"))
        return me

    @route("GET", "/2/users/me")
    def users_me(self, request: SandboxRequest) -> HandlerResult:
        """Our user."""
        return {"data": self.render_user(self._me(request))}

    def _mentions_us(self, post: Post, me: Account) -> bool:
        parent = self.world.posts.get(post.in_reply_to) if post.in_reply_to else None
        return me.id in post.mentions or (parent is not None and parent.author_id == me.id)

    def _page_of_posts(
        self, request: SandboxRequest, posts: list[Post], *, default: int
    ) -> dict[str, Any]:
        items = [(p.id, self.render_tweet(p)) for p in posts]
        body = self._page(request, items, default=default, low=5, high=100)
        shown = {item["id"] for item in body.get("data", ())}
        if shown and request.query.get("expansions"):
            includes = self.render_includes([p for p in posts if p.id in shown])
            if includes:
                body = {"data": body["data"], "includes": includes, "meta": body["meta"]}
        return body

    @route("GET", "/2/users/{id}/mentions", rate_limit="mentions")
    def mentions(self, request: SandboxRequest) -> HandlerResult:
        """Posts that @mention us or answer our posts (X's implicit mention), newest first."""
        me = self._ours(request)
        posts = [
            p for p in self.world.posts.values()
            if not p.deleted and p.visibility != "direct" and p.author_id != me.id
            and self._mentions_us(p, me)
        ]
        return self._page_of_posts(request, posts, default=10)

    @route("GET", "/2/users/{id}/tweets", rate_limit="timeline")
    def user_tweets(self, request: SandboxRequest) -> HandlerResult:
        """A user's posts, newest first."""
        self._me(request)
        author = self.world.accounts.get(request.params["id"])
        if author is None:
            raise SandboxAbort(self.not_found(request))
        posts = [p for p in self.world.posts_by(author) if p.visibility != "direct"]
        return self._page_of_posts(request, posts, default=10)

    def miss_stream(self) -> None:
        """Lose what happened so far for ``GET /2/activity/stream`` (a connection drop)."""
        found = self.world.notifications_for(self.our_account, after_seq=self.stream_seq)
        if found:
            self.stream_seq = max(n.seq for n in found)

    def _is_app(self, request: SandboxRequest) -> bool:
        """Whether the request carries the app-only bearer token (kept in ``app_requests``)."""
        token = request.bearer()
        if token is None or not hmac.compare_digest(token, self.app_bearer_token):
            return False
        self.app_requests.append(f"{request.method} {request.path}")
        return True

    def _app_only(self, request: SandboxRequest) -> None:
        """Refuse all but the app-only bearer token, as X does (403 unsupported-authentication)."""
        if not self._is_app(request):
            raise SandboxAbort(_problem(
                403, "Unsupported Authentication",
                "Authenticating with OAuth 2.0 User Context is forbidden for this endpoint.  "
                "Supported authentication types are [OAuth 2.0 Application-Only].",
                _PROBLEMS + "unsupported-authentication"))

    @route("GET", "/2/activity/stream", auth=False, rate_limit="activity_stream")
    def activity_stream(self, request: SandboxRequest) -> HandlerResult:
        """One connection: every X Activity event since the last one, a line each, then closed.

        Opened with the app-only bearer token only (X's OpenAPI spec: ``BearerToken``).
        With ``stream_lifetime`` above 0 the connection stays open that many
        seconds, sending each new event as it happens, and the first
        connection starts live, as X's does (no history). With ``0``, a test
        convenience, a connection sends what happened since the previous one
        (since the start for the first) and closes.
        """
        self._app_only(request)
        if self.stream_lifetime > 0 and self.stream_connections == 0:
            with self.world.lock:
                self.stream_seq = max(self.stream_seq, self.world.last_seq)
        self.stream_connections += 1
        headers = {"Content-Type": "application/json"}
        if self.stream_lifetime <= 0:
            return SandboxResponse(body=b"\r\n" + b"".join(self._stream_lines()),
                                   headers=headers)

        async def stream() -> AsyncIterator[bytes]:
            yield b"\r\n"  # a keep-alive first
            ends = time.monotonic() + self.stream_lifetime
            while time.monotonic() < ends:
                for line in self._stream_lines():
                    yield line
                await anyio.sleep(self.stream_interval)

        return SandboxResponse(headers=headers, stream=stream)

    def _stream_lines(self) -> list[bytes]:
        """The X Activity events since the stream's last one, a JSON line each."""
        lines: list[bytes] = []
        with self.world.lock:
            found = self.world.notifications_for(self.our_account, after_seq=self.stream_seq)
        for notification in found:
            self.stream_seq = max(self.stream_seq, notification.seq)
            event = self.activity_event(notification)
            if event is not None:
                lines.append(json.dumps({"data": event}, separators=(",", ":")).encode() + b"\r\n")
        return lines

    @route("GET", "/2/tweets/search/recent", rate_limit="search")
    def search_recent(self, request: SandboxRequest) -> HandlerResult:
        """Posts in the threads the query names (``conversation_id:`` terms, ``-from:``)."""
        self._me(request)
        query = request.query.get("query", "")
        threads = set(_CONVERSATION_TERM.findall(query))
        left_out = set(_NOT_FROM_TERM.findall(query))
        posts = [
            p for p in self.world.posts.values()
            if not p.deleted and p.visibility != "direct" and p.root in threads
            and p.id != p.root and p.author_id not in left_out
        ]
        return self._page_of_posts(request, posts, default=10)

    @route("GET", "/2/tweets/{id}", rate_limit="lookup")
    def get_tweet(self, request: SandboxRequest) -> HandlerResult:
        """One post, with its includes."""
        post = self.post_or_404(request, request.params["id"])
        body: dict[str, Any] = {"data": self.render_tweet(post)}
        includes = self.render_includes([post])
        if includes:
            body["includes"] = includes
        return body

    def _summoned(self, parent: Post, me: Account) -> bool:
        if parent.author_id == me.id:
            return True
        grandparent = self.world.posts.get(parent.in_reply_to) if parent.in_reply_to else None
        to_us = grandparent is not None and grandparent.author_id == me.id
        lead = _LEADING_MENTIONS.match(parent.text) if to_us else None
        body_start = lead.end() if lead else 0
        if any(f.kind == "mention" and f.account_id == me.id and f.start >= body_start
               for f in parent.facets):
            return True
        quoted = parent.extra.get("quoted")
        if isinstance(quoted, str) and quoted in self.world.posts and (
                self.world.posts[quoted].author_id == me.id):
            return True
        return to_us and self.thread_replies_summon

    @route("POST", "/2/tweets", rate_limit="tweets")
    def create_tweet(self, request: SandboxRequest) -> HandlerResult:
        """Publish a post or a reply; the reply rule, duplicates and the limit apply."""
        me = self._me(request)
        body = request.json()
        if not isinstance(body, dict):
            raise SandboxAbort(self.bad_request(request, "the body must be a JSON object"))
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise SandboxAbort(self.bad_request(request, "text is required"))
        reply = body.get("reply")
        parent_id: str | None = None
        if reply is not None:
            target = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
            if not isinstance(target, str):
                raise SandboxAbort(self.bad_request(
                    request, "reply.in_reply_to_tweet_id is required"))
            parent = self.post_or_404(request, target)
            if self.tier in _SELF_SERVE and not self._summoned(parent, me):
                raise SandboxAbort(_problem(
                    403, "Forbidden",
                    "Reply to this conversation is not allowed because you have not been "
                    "mentioned or otherwise engaged by the author of the post you are "
                    "replying to."))
            parent_id = parent.id
        self.check_text(request, text)
        if any(p.text == text for p in self.world.posts_by(me)):
            raise SandboxAbort(_problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."))
        post = self.world.add_post(me, text, in_reply_to=parent_id)
        rendered = self.render_tweet(post)
        return SandboxResponse.json(
            {"data": {"edit_history_tweet_ids": [post.id], "id": post.id,
                      "text": rendered["text"]}},
            status=201, headers={"location": f"{self.base_url}/2/tweets/{post.id}"},
        )

    @route("DELETE", "/2/tweets/{id}", rate_limit="delete")
    def delete_tweet(self, request: SandboxRequest) -> HandlerResult:
        """Delete one of our posts."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        if post.author_id != me.id:
            raise SandboxAbort(_problem(
                403, "Forbidden", "You are not authorized to delete this Tweet."))
        self.world.delete_post(post.id)
        return {"data": {"deleted": True}}

    @route("PUT", "/2/tweets/{id}/hidden", rate_limit="hidden")
    def hide_reply(self, request: SandboxRequest) -> HandlerResult:
        """Hide or unhide a reply in a conversation we started."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        root = self.world.posts.get(post.root)
        if post.in_reply_to is None or root is None or root.author_id != me.id:
            raise SandboxAbort(_problem(
                403, "Forbidden", "You can only hide or unhide replies to conversations you "
                "authored."))
        body = request.json()
        hidden = body.get("hidden") if isinstance(body, dict) else None
        if not isinstance(hidden, bool):
            raise SandboxAbort(self.bad_request(request, "hidden must be true or false"))
        self.world.set_hidden(post.id, hidden, by=me.id)
        return {"data": {"hidden": hidden}}

    @route("POST", "/2/users/{id}/likes", rate_limit="likes")
    def like(self, request: SandboxRequest) -> HandlerResult:
        """Like a post (Enterprise only since 2026-04-20)."""
        me = self._ours(request)
        self._likes_allowed()
        body = request.json()
        target = body.get("tweet_id") if isinstance(body, dict) else None
        if not isinstance(target, str):
            raise SandboxAbort(self.bad_request(request, "tweet_id is required"))
        self.post_or_404(request, target)
        self.world.like(me, target)
        return {"data": {"liked": True}}

    @route("DELETE", "/2/users/{id}/likes/{tweet_id}", rate_limit="likes")
    def unlike(self, request: SandboxRequest) -> HandlerResult:
        """Take a like back."""
        me = self._ours(request)
        self._likes_allowed()
        self.world.unlike(me, request.params["tweet_id"])
        return {"data": {"liked": False}}

    def _likes_allowed(self) -> None:
        if self.tier in _SELF_SERVE:
            raise SandboxAbort(_problem(
                403, "Client Forbidden",
                "This endpoint is not available on your app's access tier.",
                _PROBLEMS + "client-forbidden"))

    def _dm_events(
        self, request: SandboxRequest, messages: Iterable[DirectMessage]
    ) -> dict[str, Any]:
        kept = [m for m in messages if not m.deleted]
        items = [(m.id, self.render_dm(m)) for m in kept]
        body = self._page(request, items, default=100, low=1, high=100)
        shown = {item["id"] for item in body.get("data", ())}
        if shown and "sender_id" in (request.query.get("expansions") or ""):
            senders = {m.sender_id for m in kept if m.id in shown}
            body = {"data": body["data"], "includes": {"users": [
                self.render_user(self.world.account(s)) for s in sorted(senders)]},
                "meta": body["meta"]}
        return body

    @route("GET", "/2/dm_events", rate_limit="dm_read")
    def dm_events(self, request: SandboxRequest) -> HandlerResult:
        """Every DM event of ours, newest first."""
        me = self._me(request)
        return self._dm_events(request, [
            m for c in self.world.conversations.values() if me.id in c.members
            for m in c.messages
        ])

    @route("GET", "/2/dm_conversations/{id}/dm_events", rate_limit="dm_read")
    def conversation_events(self, request: SandboxRequest) -> HandlerResult:
        """The DM events of one of our conversations."""
        me = self._me(request)
        convo = self.world.conversations.get(request.params["id"])
        if convo is None or me.id not in convo.members:
            raise SandboxAbort(self.not_found(request))
        return self._dm_events(request, convo.messages)

    @route("GET", "/2/dm_conversations/with/{id}/dm_events", rate_limit="dm_read")
    def conversation_with_events(self, request: SandboxRequest) -> HandlerResult:
        """The DM events of our one-to-one conversation with a user."""
        me = self._me(request)
        convo = self.world.conversation_between(me, request.params["id"], create=False)
        return self._dm_events(request, convo.messages if convo is not None else [])

    def _send_dm(self, request: SandboxRequest, me: Account, conversation_id: str) -> HandlerResult:
        body = request.json()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            raise SandboxAbort(self.bad_request(request, "text is required"))
        convo = self.world.conversations[conversation_id]
        if any(self.world.account(o).extra.get("dm_closed") for o in convo.others(me.id)):
            raise SandboxAbort(_problem(
                403, "Forbidden", "You cannot send messages to this user."))
        self.check_text(request, text, private=True)
        message = self.world.add_message(me, conversation_id, text)
        return SandboxResponse.json(
            {"data": {"dm_conversation_id": conversation_id, "dm_event_id": message.id}},
            status=201)

    @route("POST", "/2/dm_conversations/with/{id}/messages", rate_limit="dm_send")
    def dm_with(self, request: SandboxRequest) -> HandlerResult:
        """Send a DM to a user, in our one-to-one conversation with them."""
        me = self._me(request)
        other = self.world.accounts.get(request.params["id"])
        if other is None:
            raise SandboxAbort(self.not_found(request))
        convo = self.world.conversation_between(
            me, other, id=self.dm_conversation_id(me, other))
        if convo is None:  # pragma: no cover - create=True always returns one
            raise SandboxAbort(self.not_found(request))
        return self._send_dm(request, me, convo.id)

    @route("POST", "/2/dm_conversations/{id}/messages", rate_limit="dm_send")
    def dm_into(self, request: SandboxRequest) -> HandlerResult:
        """Send a DM into one of our conversations."""
        me = self._me(request)
        convo = self.world.conversations.get(request.params["id"])
        if convo is None or me.id not in convo.members:
            raise SandboxAbort(self.not_found(request))
        return self._send_dm(request, me, convo.id)

    @route("POST", "/2/oauth2/token", auth=False, rate_limit=None)
    def oauth2_token(self, request: SandboxRequest) -> HandlerResult:
        """Refresh: a new access token and a new refresh token; the old refresh token dies."""
        client_id = request.field("client_id")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode("utf-8", "replace")
            client_id = decoded.partition(":")[0]
        invalid = SandboxResponse.json({
            "error": "invalid_request",
            "error_description": "Value passed for the token was invalid.",
        }, status=400)
        grant = request.field("grant_type")
        if client_id != self.client_id:
            raise SandboxAbort(invalid)
        if grant == "authorization_code":
            account_id = self._redeem(request)
            if account_id is None:
                raise SandboxAbort(invalid)
        elif grant == "refresh_token":
            state, info = self.tokens.check(request.field("refresh_token"), kind="refresh")
            if state != "valid" or info is None:
                raise SandboxAbort(invalid)
            self.tokens.revoke(info.token)
            account_id = info.account_id
        else:
            raise SandboxAbort(invalid)
        expires = self.clock.peek() + timedelta(seconds=self.access_lifetime)
        access = self.tokens.issue(account_id, expires_at=expires)
        refresh = self.tokens.issue(account_id, kind="refresh")
        if account_id == self.our_account.id:
            self.token, self.refresh_token = access, refresh
            self.refreshes += 1
        return {"token_type": "bearer", "expires_in": int(self.access_lifetime),
                "access_token": access, "scope": SCOPES, "refresh_token": refresh}

    # X Activity API management ------------------------------------------------------------

    _EVENT_TYPES: ClassVar[frozenset[str]] = frozenset({
        "post.mention.create", "post.reply.create", "post.quote.create", "post.create",
        "dm.received", "dm.sent", "dm.read", "dm.indicate_typing", "chat.received",
        "chat.sent", "profile.update.bio", "follow.follow", "follow.unfollow",
    })

    @route("POST", "/2/activity/subscriptions", rate_limit="activity")
    def create_subscription(self, request: SandboxRequest) -> HandlerResult:
        """Subscribe to an event type for a user; a duplicate is refused."""
        self._me(request)
        body = request.json() if request.body else None
        if not isinstance(body, dict):
            raise SandboxAbort(self.bad_request(request, "a JSON body is required"))
        kind, where = body.get("event_type"), body.get("filter")
        if not isinstance(kind, str) or not isinstance(where, dict):
            raise SandboxAbort(self.bad_request(request, "event_type and filter are required"))
        if _dotted(kind) not in self._EVENT_TYPES:
            raise SandboxAbort(self.bad_request(request, f"unknown event_type {kind}"))
        key = (_dotted(kind), where.get("user_id"), body.get("webhook_id"))
        if any((_dotted(s["event_type"]), s["filter"].get("user_id"), s.get("webhook_id")) == key
               for s in self.subscriptions.values()):
            raise SandboxAbort(_problem(409, "Conflict", "DuplicateSubscription",
                                        _PROBLEMS + "resource-conflict"))
        sub_id = self.new_id("post", None)
        now = _iso(self.clock.peek())
        item: dict[str, Any] = {"subscription_id": sub_id, "event_type": kind,
                                "filter": dict(where), "created_at": now, "updated_at": now}
        for name in ("webhook_id", "tag"):
            value = body.get(name)
            if isinstance(value, str):
                item[name] = value
        self.subscriptions[sub_id] = item
        return SandboxResponse.json({
            "data": {"subscription": item,
                     "total_subscriptions_for_instance_id": len(self.subscriptions)},
            "meta": {"total_subscriptions": len(self.subscriptions)},
        }, status=201)

    def _app_or_user(self, request: SandboxRequest) -> None:
        """Take the app-only bearer token, or (leniently) a valid user token."""
        if not self._is_app(request):
            self.authenticate(request)

    @route("GET", "/2/activity/subscriptions", auth=False, rate_limit="activity")
    def get_subscriptions(self, request: SandboxRequest) -> HandlerResult:
        """The app's subscriptions, pages of ``max_results``."""
        self._app_or_user(request)
        items = [(sid, item) for sid, item in self.subscriptions.items()]
        return self._page(request, items, default=1000, low=1, high=1000)

    @route("DELETE", "/2/activity/subscriptions/{id}", auth=False, rate_limit="activity")
    def delete_subscription(self, request: SandboxRequest) -> HandlerResult:
        """End a subscription."""
        self._app_or_user(request)
        if self.subscriptions.pop(request.params["id"], None) is None:
            raise SandboxAbort(self.not_found(request))
        return {"data": {"deleted": True}}

    @route("POST", "/2/webhooks/replay", auth=False, rate_limit="replay")
    def replay(self, request: SandboxRequest) -> HandlerResult:
        """A replay job for ``from_date``..``to_date`` (``yyyymmddhhmm``, UTC, whole minutes).

        The app-only bearer token opens it; so does a valid user token, as it
        did before X's spec named the app-only one alone.
        """
        self._app_or_user(request)
        body = request.json() if request.body else None
        if not isinstance(body, dict):
            raise SandboxAbort(self.bad_request(request, "a JSON body is required"))
        try:
            since = datetime.strptime(str(body.get("from_date")), "%Y%m%d%H%M").replace(tzinfo=UTC)
            until = datetime.strptime(str(body.get("to_date")), "%Y%m%d%H%M").replace(tzinfo=UTC)
        except ValueError:
            raise SandboxAbort(self.bad_request(request, "dates are yyyymmddhhmm")) from None
        if body.get("webhook_id") != self.webhook_id or until < since:
            raise SandboxAbort(self.bad_request(request, "unknown webhook or empty range"))
        job = self.new_id("post", None)
        self.replay_jobs[job] = (since, until + timedelta(minutes=1), self.webhook_id)
        return {"created_at": _iso(self.clock.peek()), "job_id": job}

    # the authorize step -------------------------------------------------------------------

    def authorize(self, authorize_url: str, *, approve: bool = True) -> str:
        """Our account's owner opens the authorize URL and approves (or declines) the app.

        Returns:
            The URL X redirects the browser to: ``redirect_uri`` with ``code``
            and ``state`` (or ``error=access_denied``).

        Raises:
            ValueError: The URL lacks what X requires (S256 challenge, client id...).
        """
        query = parse_qs(urlsplit(authorize_url).query)

        def one(name: str) -> str:
            values = query.get(name)
            if not values or not values[0]:
                raise ValueError(f"the authorize URL has no {name}")
            return values[0]

        if one("response_type") != "code" or one("code_challenge_method") != "S256":
            raise ValueError("X needs response_type=code and code_challenge_method=S256")
        if one("client_id") != self.client_id:
            raise ValueError("unknown client_id")
        redirect, state = one("redirect_uri"), one("state")
        if not approve:
            return f"{redirect}?{urlencode({'error': 'access_denied', 'state': state})}"
        code = secrets.token_urlsafe(32)
        self._codes[code] = (one("code_challenge"), redirect, self.our_account.id)
        return f"{redirect}?{urlencode({'state': state, 'code': code})}"

    def _redeem(self, request: SandboxRequest) -> str | None:
        """The account a code was issued for, once its verifier and redirect match; one use."""
        found = self._codes.pop(request.field("code") or "", None)
        verifier = request.field("code_verifier") or ""
        if found is None or not verifier:
            return None
        challenge, redirect, account_id = found
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
        if computed != challenge or request.field("redirect_uri") != redirect:
            return None
        return account_id
