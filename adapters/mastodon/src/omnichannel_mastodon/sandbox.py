"""A stateful fake Mastodon server for tests and demos.

It answers in the shapes of the payloads Mastodon.py recorded against a real
Mastodon 4 server (``tests/vectors/mastodon/``): HTML ``content`` with
``h-card`` mentions, hashtag anchors and shortened links, ``Link`` pagination
headers, ``X-RateLimit-*`` headers with an ISO-8601 reset, ``{"error": ...}``
bodies, and server-sent events on the streaming endpoints.

```python
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox

sandbox = MastodonSandbox(seed=7)
sandbox.customer_mention("my order never came")
async with MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as m:
    batch = await m.poll(None)
```

Served endpoints: ``verify_credentials``, ``/api/v2/instance``,
``/api/v1/notifications`` (+ ``/:id``), ``POST/GET/DELETE /api/v1/statuses``,
``/api/v1/statuses/:id/context``, ``favourite``/``unfavourite``,
``/api/v1/accounts/:id/statuses``, ``/api/v1/conversations`` and the SSE
streams ``/api/v1/streaming/user`` and ``/api/v1/streaming/user/notification``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import anyio
import httpx

from omnichannel.testing import (
    Account,
    HandlerResult,
    Notification,
    Post,
    RateLimitWindow,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    route,
)
from omnichannel.testing.sandbox import AuthFailure, PostVisibility, RecordKind
from omnichannel.text import mastodon_length

__all__ = ["MastodonSandbox"]

_VISIBILITY_OUT: dict[str, str] = {
    "public": "public", "unlisted": "unlisted", "followers": "private", "direct": "direct",
}
_VISIBILITY_IN: dict[str, PostVisibility] = {
    "public": "public", "unlisted": "unlisted", "private": "followers", "direct": "direct",
}
_NOTIFICATION_TYPES = {"mention": "mention", "reply": "mention", "like": "favourite"}
_LINK_PREFIX = re.compile(r"\Ahttps?://(?:www\.)?")
_PARAGRAPHS = re.compile(r"\n\n+")
_SERIAL_KINDS = frozenset({"notification", "conversation", "like"})


def _iso(moment: datetime) -> str:
    """Mastodon's timestamps: UTC, milliseconds, ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("'", "&#39;")
    )


def _plain(text: str) -> str:
    """Escaped text with paragraphs and line breaks as Mastodon writes them."""
    return "</p><p>".join(
        _escape(part).replace("\n", "<br />") for part in _PARAGRAPHS.split(text)
    )


class MastodonSandbox(Sandbox):
    """A fake Mastodon 4 instance with our bot account ``@shop``.

    Direct messages are ``direct`` statuses that mention us, as on Mastodon.
    A customer's reply to one of our statuses notifies us as a ``mention``
    even when its text leaves our @mention out (Mastodon's clients put it in;
    tests often do not). Ids are snowflake-like decimal strings (notification
    and conversation ids are small serials, as on a real server).

    Args:
        seed: Seeds fault injection (same seed, same faults).
        clock: The virtual clock stamping records.
        our_handle: Our account's username (default ``shop``).
        base_url: The URL the in-process transport answers for.

    Attributes:
        stream_lifetime: Seconds a streaming connection stays open before the
            server closes it (clients reconnect and catch up).
        stream_interval: Seconds between looks for new stream events.
    """

    network = "mastodon"
    our_handle = "shop"
    text_limit = 500
    default_rate_limit = (300, 300.0)
    create_routes = ("POST /api/v1/statuses",)
    characters_reserved_per_url: ClassVar[int] = 23
    stream_lifetime: ClassVar[float] = 1.0
    stream_interval: ClassVar[float] = 0.02

    def setup(self) -> None:
        """Prepare the conversation ids and the stream controls."""
        self._conversation_ids: dict[str, str] = {}
        self._stream_generation = 0

    # ids, text and errors, Mastodon's way ---------------------------------------

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """Snowflake-like ids (milliseconds << 16 + a sequence); serials for notifications."""
        with self._lock:
            if kind in _SERIAL_KINDS:
                serial = getattr(self, "_serial", 0) + 1
                self._serial = serial
                return str(serial)
            millis = int(self.clock.peek().timestamp() * 1000)
            candidate = (millis << 16) + 1
            last = getattr(self, "_last_snowflake", 0)
            value = max(candidate, last + 1)
            self._last_snowflake = value
            return str(value)

    def count_text(self, text: str, *, private: bool = False) -> int:
        """Count as Mastodon does: graphemes, URLs as 23, remote mentions as local."""
        return mastodon_length(text, url_length=self.characters_reserved_per_url)

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """Mastodon's 401 (recorded): ``{"error": "The access token is invalid"}``."""
        return SandboxResponse.json(
            {"error": "The access token is invalid"}, status=401,
            headers={"WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token",'
                     ' error_description="The access token is invalid"'},
        )

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """``X-RateLimit-*`` with the reset as ISO-8601, e.g. ``2026-08-01T15:00:00.754511Z``."""
        reset = window.reset_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining),
            "X-RateLimit-Reset": reset,
        }

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """Mastodon's 429: ``{"error": "Too many requests"}`` and the rate-limit headers."""
        return SandboxResponse.json(
            {"error": "Too many requests"}, status=429, headers=self.rate_limit_headers(window)
        )

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """A server error in Mastodon's error shape."""
        return SandboxResponse.json(
            {"error": "We're sorry, but something went wrong on our end."}, status=status
        )

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """Mastodon's 404: ``{"error": "Record not found"}``."""
        return SandboxResponse.json({"error": "Record not found"}, status=404)

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """A validation failure: ``{"error": "Validation failed: ..."}``."""
        return SandboxResponse.json({"error": message}, status=status)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """Mastodon's 422 for an over-long status (English wording)."""
        return self.bad_request(
            request, f"Validation failed: Text character limit of {limit} exceeded", status=422
        )

    # the customer side, as Mastodon clients write it ------------------------------

    def customer_dm(self, text: str, *, author: Account | None = None) -> Post:
        """A customer sends us a direct message: a ``direct`` status mentioning us."""
        ours = self.mention_of(self.our_account)
        if ours not in text:
            text = f"{ours} {text}".rstrip()
        return self.world.add_post(author or self.customer(), text, visibility="direct")

    def drop_streams(self) -> None:
        """Break every open streaming connection (clients see the connection drop)."""
        with self._lock:
            self._stream_generation += 1

    # rendering ---------------------------------------------------------------------

    def _origin(self) -> str:
        return self.base_url.rstrip("/")

    def _account_url(self, account: Account) -> str:
        username, _, domain = account.handle.partition("@")
        if domain:
            return f"https://{domain}/@{username}"
        return f"{self._origin()}/@{username}"

    def render_account(self, account: Account) -> dict[str, Any]:
        """An account in Mastodon's shape (as in the recorded ``verify_credentials``)."""
        username = account.handle.partition("@")[0]
        statuses = [p for p in self.world.posts.values()
                    if p.author_id == account.id and not p.deleted]
        return {
            "id": account.id,
            "username": username,
            "acct": account.handle,
            "display_name": account.display_name,
            "locked": False,
            "bot": account.id == self.our_account.id,
            "discoverable": True,
            "group": False,
            "created_at": _iso(account.created_at),
            "note": "",
            "url": self._account_url(account),
            "uri": f"{self._origin()}/users/{username}",
            "avatar": f"{self._origin()}/avatars/original/missing.png",
            "avatar_static": f"{self._origin()}/avatars/original/missing.png",
            "header": f"{self._origin()}/headers/original/missing.png",
            "header_static": f"{self._origin()}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": len(statuses),
            "last_status_at": None,
            "emojis": [],
            "fields": [],
        }

    def _link_html(self, url: str) -> str:
        prefix_match = _LINK_PREFIX.match(url)
        prefix = prefix_match.group(0) if prefix_match else ""
        rest = url[len(prefix):]
        shown, hidden = rest[:30], rest[30:]
        return (
            f'<a href="{_escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
            f'<span class="invisible">{_escape(prefix)}</span>'
            f'<span class="{"ellipsis" if hidden else ""}">{_escape(shown)}</span>'
            f'<span class="invisible">{_escape(hidden)}</span></a>'
        )

    def render_content(self, post: Post) -> str:
        """The HTML ``content`` of a status, as Mastodon's formatter writes it."""
        pieces: list[str] = []
        pos = 0
        for facet in sorted(post.facets, key=lambda f: f.start):
            if facet.start < pos:
                continue
            pieces.append(_plain(post.text[pos:facet.start]))
            shown = post.text[facet.start:facet.end]
            if facet.kind == "link":
                pieces.append(self._link_html(facet.value))
            elif facet.kind == "hashtag":
                tag = shown[1:]
                pieces.append(
                    f'<a href="{self._origin()}/tags/{_escape(tag.lower())}" '
                    f'class="mention hashtag" rel="tag">#<span>{_escape(tag)}</span></a>'
                )
            elif facet.account_id is not None and facet.account_id in self.world.accounts:
                account = self.world.account(facet.account_id)
                pieces.append(
                    '<span class="h-card" translate="no">'
                    f'<a href="{_escape(self._account_url(account))}" class="u-url mention">'
                    f'@<span>{_escape(account.handle.partition("@")[0])}</span></a></span>'
                )
            else:  # an unknown account stays plain text, as on Mastodon
                pieces.append(_plain(shown))
            pos = facet.end
        pieces.append(_plain(post.text[pos:]))
        return "<p>" + "".join(pieces) + "</p>"

    def render_status(self, post: Post, *, viewer: Account | None = None) -> dict[str, Any]:
        """A status in Mastodon's shape (as in the recorded ``POST /api/v1/statuses``)."""
        viewer = viewer or self.our_account
        author = self.world.account(post.author_id)
        parent = self.world.posts.get(post.in_reply_to) if post.in_reply_to else None
        likes = [like for like in self.world.likes if like.post_id == post.id]
        mentions = []
        for account_id in post.mentions:
            account = self.world.accounts.get(account_id)
            if account is not None:
                mentions.append({
                    "id": account.id, "username": account.handle.partition("@")[0],
                    "url": self._account_url(account), "acct": account.handle,
                })
        tags = [
            {"name": f.value.lower(), "url": f"{self._origin()}/tags/{f.value.lower()}"}
            for f in post.facets if f.kind == "hashtag"
        ]
        username = author.handle.partition("@")[0]
        return {
            "id": post.id,
            "created_at": _iso(post.created_at),
            "in_reply_to_id": post.in_reply_to,
            "in_reply_to_account_id": parent.author_id if parent else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": _VISIBILITY_OUT[post.visibility],
            "language": "en",
            "uri": f"{self._origin()}/users/{username}/statuses/{post.id}",
            "url": f"{self._account_url(author)}/{post.id}",
            "replies_count": len(self.world.replies_to(post.id)),
            "reblogs_count": 0,
            "favourites_count": len(likes),
            "quotes_count": 0,
            "edited_at": _iso(post.edited_at) if post.edited_at else None,
            "favourited": any(like.account_id == viewer.id for like in likes),
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": self.render_content(post),
            "filtered": [],
            "reblog": None,
            "application": {"name": "omnichannel sandbox", "website": None},
            "account": self.render_account(author),
            "media_attachments": [],
            "mentions": mentions,
            "tags": tags,
            "emojis": [],
            "quote": None,
            "card": None,
            "poll": None,
        }

    def render_notification(self, notification: Notification) -> dict[str, Any] | None:
        """A notification in Mastodon's shape, or ``None`` for kinds Mastodon has not."""
        kind = _NOTIFICATION_TYPES.get(notification.kind)
        post = self.world.posts.get(notification.subject_id)
        if kind is None or post is None or post.deleted:
            return None
        return {
            "id": notification.id,
            "type": kind,
            "created_at": _iso(notification.created_at),
            "group_key": f"ungrouped-{notification.id}",
            "account": self.render_account(self.world.account(notification.actor_id)),
            "status": self.render_status(post),
        }

    def render_instance(self, request: SandboxRequest) -> dict[str, Any]:
        """``/api/v2/instance``: limits and the streaming host (recorded shape)."""
        origin = self._origin()
        host = request.headers.get("host") or urlsplit(origin).netloc
        in_process = host == urlsplit(origin).netloc
        streaming = f"{'wss' if in_process else 'ws'}://{host}"
        return {
            "domain": urlsplit(origin).netloc,
            "title": "Mastodon sandbox",
            "version": "4.5.0",
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "",
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": streaming, "status": None},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": {
                    "max_characters": self.text_limit,
                    "max_media_attachments": 4,
                    "characters_reserved_per_url": self.characters_reserved_per_url,
                },
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": True, "message": None},
            "contact": {"email": "", "account": None},
            "rules": [],
        }

    # pagination, Mastodon's way -------------------------------------------------------

    def _seq_of(self, item_id: str) -> int | None:
        post = self.world.posts.get(item_id)
        if post is not None:
            return post.seq
        for notification in self.world.notifications:
            if notification.id == item_id:
                return notification.seq
        return None

    def _page(
        self,
        request: SandboxRequest,
        items: Sequence[tuple[str, int, dict[str, Any]]],
        *,
        default_limit: int,
        max_limit: int,
    ) -> SandboxResponse:
        """Answer one page of ``(id, seq, payload)`` items (oldest first), newest first.

        ``max_id``/``since_id``/``min_id`` work as on Mastodon, and the ``Link``
        header gives ``rel="next"`` (older) and ``rel="prev"`` (newer) pages.
        """
        query = request.query
        try:
            limit = int(query.get("limit", default_limit))
        except ValueError:
            limit = default_limit
        limit = max(1, min(limit, max_limit))

        def bound(name: str) -> int | None:
            value = query.get(name)
            if not value:
                return None
            seq = self._seq_of(value)
            if seq is not None or not value.isdigit():
                return seq if seq is not None else 0
            # An id we never made: place it among ours by number.
            older = [s for i, s, _ in items if i.isdigit() and int(i) <= int(value)]
            return max(older, default=0)

        pool = list(items)
        if (max_seq := bound("max_id")) is not None:
            pool = [i for i in pool if i[1] < max_seq]
        if (since_seq := bound("since_id")) is not None:
            pool = [i for i in pool if i[1] > since_seq]
        if (min_seq := bound("min_id")) is not None:
            pool = [i for i in pool if i[1] > min_seq]
            page = pool[:limit]
        else:
            page = pool[-limit:]
        page.reverse()
        headers: dict[str, str] = {}
        if page:
            keep = [(k, v) for k, v in query.multi_items()
                    if k not in ("max_id", "min_id", "since_id")]
            base = f"{self._origin()}{request.path}"
            older = httpx.URL(base, params=[("max_id", page[-1][0]), *keep])
            newer = httpx.URL(base, params=[("min_id", page[0][0]), *keep])
            headers["Link"] = f'<{older}>; rel="next", <{newer}>; rel="prev"'
        return SandboxResponse.json([payload for _, _, payload in page], headers=headers)

    # who sees what --------------------------------------------------------------------

    def _visible(self, post: Post, viewer: Account) -> bool:
        if post.deleted:
            return False
        if post.visibility != "direct":
            return True
        return post.author_id == viewer.id or viewer.id in post.mentions

    def _involves(self, post: Post, account: Account) -> bool:
        parent = self.world.posts.get(post.in_reply_to) if post.in_reply_to else None
        return (
            post.author_id == account.id
            or account.id in post.mentions
            or (parent is not None and parent.author_id == account.id)
        )

    # routes ---------------------------------------------------------------------------

    @route("GET", "/api/v1/accounts/verify_credentials")
    def verify_credentials(self, request: SandboxRequest) -> HandlerResult:
        """Our account, with its ``source`` settings."""
        if request.account is None:  # pragma: no cover - auth=True guarantees it
            raise SandboxAbort(self.auth_error(request, "missing"))
        body = self.render_account(request.account)
        body["source"] = {"privacy": "public", "sensitive": False, "language": "en", "note": ""}
        return body

    @route("GET", "/api/v2/instance", auth=False)
    def instance(self, request: SandboxRequest) -> HandlerResult:
        """The instance's limits and streaming host."""
        return self.render_instance(request)

    @route("GET", "/api/v1/notifications")
    def notifications(self, request: SandboxRequest) -> HandlerResult:
        """Our notifications, newest first, filtered by ``types[]``/``exclude_types[]``."""
        me = self._me(request)
        wanted = set(request.query.get_list("types[]"))
        unwanted = set(request.query.get_list("exclude_types[]"))
        items: list[tuple[str, int, dict[str, Any]]] = []
        for notification in self.world.notifications_for(me):
            rendered = self.render_notification(notification)
            if rendered is None:
                continue
            if (wanted and rendered["type"] not in wanted) or rendered["type"] in unwanted:
                continue
            items.append((notification.id, notification.seq, rendered))
        return self._page(request, items, default_limit=40, max_limit=80)

    @route("GET", "/api/v1/notifications/{id}")
    def notification(self, request: SandboxRequest) -> HandlerResult:
        """One of our notifications."""
        me = self._me(request)
        for notification in self.world.notifications_for(me):
            if notification.id == request.params["id"]:
                rendered = self.render_notification(notification)
                if rendered is not None:
                    return rendered
        raise SandboxAbort(self.not_found(request))

    @route("POST", "/api/v1/statuses")
    def create_status(self, request: SandboxRequest) -> HandlerResult:
        """Publish a status; an ``Idempotency-Key`` seen before returns the first one."""
        me = self._me(request)
        text = request.field("status") or ""
        if not text.strip():
            raise SandboxAbort(self.bad_request(
                request, "Validation failed: Text can't be blank", status=422))
        visibility = _VISIBILITY_IN.get(request.field("visibility") or "public")
        if visibility is None:
            raise SandboxAbort(self.bad_request(
                request, "Validation failed: Visibility is not included in the list",
                status=422))
        key = request.headers.get("idempotency-key")
        if key:
            earlier = self.world.find_post(author=me, idempotency_key=key)
            if earlier is not None:
                return self.render_status(earlier, viewer=me)
        parent_id = request.field("in_reply_to_id") or None
        if parent_id is not None:
            parent = self.world.posts.get(parent_id)
            if parent is None or not self._visible(parent, me):
                raise SandboxAbort(self.not_found(request))
        self.check_text(request, text, private=visibility == "direct")
        post = self.world.add_post(
            me, text, in_reply_to=parent_id, visibility=visibility, idempotency_key=key or None
        )
        return self.render_status(post, viewer=me)

    @route("GET", "/api/v1/statuses/{id}")
    def get_status(self, request: SandboxRequest) -> HandlerResult:
        """One status we can see."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        if not self._visible(post, me):
            raise SandboxAbort(self.not_found(request))
        return self.render_status(post, viewer=me)

    @route("DELETE", "/api/v1/statuses/{id}")
    def delete_status(self, request: SandboxRequest) -> HandlerResult:
        """Delete one of our statuses; answers it with its source ``text``."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        if post.author_id != me.id:
            raise SandboxAbort(SandboxResponse.json(
                {"error": "This action is not allowed"}, status=403))
        body = self.render_status(post, viewer=me)
        self.world.delete_post(post.id)
        body["text"] = post.text
        return body

    @route("GET", "/api/v1/statuses/{id}/context")
    def context(self, request: SandboxRequest) -> HandlerResult:
        """The ancestors and descendants of a status that we can see."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        if not self._visible(post, me):
            raise SandboxAbort(self.not_found(request))
        ancestors: list[Post] = []
        parent_id = post.in_reply_to
        while parent_id is not None:
            parent = self.world.posts.get(parent_id)
            if parent is None or not self._visible(parent, me):
                break
            ancestors.append(parent)
            parent_id = parent.in_reply_to
        descendants: list[Post] = []
        frontier = [post.id]
        while frontier:
            current = frontier.pop(0)
            for child in self.world.replies_to(current):
                if self._visible(child, me):
                    descendants.append(child)
                    frontier.append(child.id)
        descendants.sort(key=lambda p: p.seq)
        return {
            "ancestors": [self.render_status(p, viewer=me) for p in reversed(ancestors)],
            "descendants": [self.render_status(p, viewer=me) for p in descendants],
        }

    @route("POST", "/api/v1/statuses/{id}/favourite")
    def favourite(self, request: SandboxRequest) -> HandlerResult:
        """Favourite a status (favouriting twice is harmless)."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        if not self._visible(post, me):
            raise SandboxAbort(self.not_found(request))
        self.world.like(me, post.id)
        return self.render_status(post, viewer=me)

    @route("POST", "/api/v1/statuses/{id}/unfavourite")
    def unfavourite(self, request: SandboxRequest) -> HandlerResult:
        """Take a favourite back."""
        me = self._me(request)
        post = self.post_or_404(request, request.params["id"])
        self.world.unlike(me, post.id)
        return self.render_status(post, viewer=me)

    @route("GET", "/api/v1/accounts/{id}/statuses")
    def account_statuses(self, request: SandboxRequest) -> HandlerResult:
        """An account's statuses, newest first (all of them for its owner)."""
        me = self._me(request)
        account = self.world.accounts.get(request.params["id"])
        if account is None:
            raise SandboxAbort(self.not_found(request))
        items = [
            (p.id, p.seq, self.render_status(p, viewer=me))
            for p in self.world.posts_by(account)
            if self._visible(p, me) and (account.id == me.id or p.visibility != "direct")
        ]
        return self._page(request, items, default_limit=20, max_limit=40)

    @route("GET", "/api/v1/conversations")
    def conversations(self, request: SandboxRequest) -> HandlerResult:
        """Our direct conversations (direct statuses grouped by thread), newest first."""
        me = self._me(request)
        threads: dict[str, list[Post]] = {}
        for post in sorted(self.world.posts.values(), key=lambda p: p.seq):
            if post.visibility == "direct" and self._visible(post, me):
                threads.setdefault(post.root, []).append(post)
        items: list[tuple[str, int, dict[str, Any]]] = []
        for root, posts in threads.items():
            convo_id = self._conversation_ids.get(root)
            if convo_id is None:
                convo_id = self.new_id("conversation", None)
                self._conversation_ids[root] = convo_id
            people: dict[str, Account] = {}
            for post in posts:
                for account_id in (post.author_id, *post.mentions):
                    if account_id != me.id and account_id in self.world.accounts:
                        people.setdefault(account_id, self.world.account(account_id))
            last = posts[-1]
            items.append((convo_id, last.seq, {
                "id": convo_id,
                "unread": last.author_id != me.id,
                "accounts": [self.render_account(a) for a in people.values()],
                "last_status": self.render_status(last, viewer=me),
            }))
        items.sort(key=lambda item: item[1])
        return self._page(request, items, default_limit=20, max_limit=40)

    @route("GET", "/api/v1/streaming/user", rate_limit=None)
    def stream_user(self, request: SandboxRequest) -> HandlerResult:
        """SSE: notifications, our new statuses, edits and deletions that concern us."""
        return self._stream(request, notifications_only=False)

    @route("GET", "/api/v1/streaming/user/notification", rate_limit=None)
    def stream_notifications(self, request: SandboxRequest) -> HandlerResult:
        """SSE: notifications only."""
        return self._stream(request, notifications_only=True)

    @route("GET", "/api/v1/streaming/health", auth=False, rate_limit=None)
    def stream_health(self, request: SandboxRequest) -> HandlerResult:
        """The streaming server's health check."""
        return SandboxResponse.text("OK")

    # streaming --------------------------------------------------------------------------

    def _me(self, request: SandboxRequest) -> Account:
        if request.account is None:  # pragma: no cover - auth=True guarantees it
            raise SandboxAbort(self.auth_error(request, "missing"))
        return request.account

    def _stream(self, request: SandboxRequest, *, notifications_only: bool) -> SandboxResponse:
        me = self._me(request)
        start = self.world.last_seq
        generation = self._stream_generation
        return SandboxResponse(
            status=200,
            headers={"content-type": "text/event-stream", "cache-control": "private, no-store"},
            stream=self._events(me, start, generation, notifications_only=notifications_only),
        )

    def _stream_chunks(self, me: Account, after: int, *, notifications_only: bool) -> list[bytes]:
        out: list[tuple[int, bytes]] = []

        def event(seq: int, name: str, data: str) -> None:
            out.append((seq, f"event: {name}\ndata: {data}\n\n".encode()))

        def dumps(value: object) -> str:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

        for notification in self.world.notifications_for(me, after_seq=after):
            rendered = self.render_notification(notification)
            if rendered is not None:
                event(notification.seq, "notification", dumps(rendered))
        if not notifications_only:
            for change in self.world.changes:
                if change.seq <= after:
                    continue
                post = self.world.posts.get(change.subject_id)
                if post is None or not self._involves(post, me):
                    continue
                if change.kind == "post.created" and post.author_id == me.id and not post.deleted:
                    event(change.seq, "update", dumps(self.render_status(post, viewer=me)))
                elif change.kind == "post.edited" and not post.deleted:
                    event(change.seq, "status.update", dumps(self.render_status(post, viewer=me)))
                elif change.kind == "post.deleted":
                    event(change.seq, "delete", post.id)
        out.sort(key=lambda item: item[0])
        return [chunk for _, chunk in out]

    def _events(
        self, me: Account, start: int, generation: int, *, notifications_only: bool
    ) -> Callable[[], AsyncIterator[bytes]]:
        async def stream() -> AsyncIterator[bytes]:
            seen = start
            yield b":)\n"
            ends = time.monotonic() + self.stream_lifetime
            beat = time.monotonic()
            while time.monotonic() < ends:
                if self._stream_generation != generation:
                    raise httpx.RemoteProtocolError("the streaming connection dropped")
                with self.world.lock:
                    chunks = self._stream_chunks(
                        me, seen, notifications_only=notifications_only
                    )
                    seen = self.world.last_seq
                for chunk in chunks:
                    yield chunk
                if time.monotonic() - beat > 1.0:
                    beat = time.monotonic()
                    yield b":thump\n"
                await anyio.sleep(self.stream_interval)

        return stream
