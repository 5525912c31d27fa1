"""A sandbox of Chirp, the made-up network of the "write an adapter" tutorial.

Chirp is a tiny JSON API, small enough to read in one sitting:

| endpoint | does |
|---|---|
| ``GET /me`` | our account: ``{"id", "handle", "name"}`` |
| ``GET /mentions?since=&limit=`` | posts that mention us or answer our posts, oldest first |
| ``GET /dms?since=&limit=`` | messages of our direct conversations (both ways), oldest first |
| ``POST /posts`` | ``{"text", "reply_to"?, "entities"?, "client_ref"?}`` -> 201 post |
| ``GET /posts/{id}``, ``DELETE /posts/{id}`` | read or delete a post |
| ``POST /posts/{id}/like``, ``DELETE /posts/{id}/like`` | like, unlike |
| ``POST /posts/{id}/hide`` | ``{"hidden": bool}`` on a reply under our own post |
| ``POST /dms`` | ``{"to", "text", "reply_to"?, "entities"?, "client_ref"?}`` -> 201 message |
| ``GET /me/posts?client_ref=``, ``GET /me/dms?client_ref=`` | what we sent, newest first |

Entity offsets are UTF-16 code units (as in JavaScript). Errors look like
``{"error": {"code": "...", "message": "..."}}``. Rate limits come in
``Chirp-RateLimit-Limit/-Remaining/-Reset`` (epoch seconds). Webhooks POST
``{"type": "mention"|"reply"|"dm", "data": ...}`` signed in ``Chirp-Signature:
t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import ClassVar

from omnichannel.errors import PayloadError
from omnichannel.testing import (
    Account,
    Facet,
    HandlerResult,
    Notification,
    Post,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    WebhookDelivery,
    route,
)
from omnichannel.testing.sandbox import AuthFailure, DirectMessage, FacetKind, RateLimitWindow
from omnichannel.text import OffsetMap

__all__ = ["ChirpSandbox", "sign"]

_PAGE_MAX = 50

Feed = Callable[[], dict[str, object]]
"""Renders one item of a feed when its page is served."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``Chirp-Signature`` header value for a webhook body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# --8<-- [start:sandbox-class]
class ChirpSandbox(Sandbox):
    """Chirp in memory: the network the tutorial's adapter is tested against."""

    network = "chirp"
    text_limit = 280
    dm_text_limit = 1000
    default_rate_limit = (120, 60.0)
    create_routes: ClassVar[tuple[str, ...]] = ("POST /posts", "POST /dms")

    # Chirp counts code points (``len``), not graphemes.
    def count_text(self, text: str, *, private: bool = False) -> int:
        """Count ``text`` as Chirp does: code points."""
        return len(text)

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """Settings for ``ChirpAdapter`` pointed at this sandbox."""
        return {
            "base_url": base_url or self.base_url,
            "access_token": self.token,
            "webhook_secret": self.webhook_secret,
        }
# --8<-- [end:sandbox-class]

    # errors, in Chirp's shape ---------------------------------------------

    # --8<-- [start:sandbox-errors]
    @staticmethod
    def error(status: int, code: str, message: str, **headers: str) -> SandboxResponse:
        """Build a Chirp error response."""
        body = {"error": {"code": code, "message": message}}
        return SandboxResponse.json(body, status=status, headers=headers)

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """401 ``token_missing``/``token_invalid``/``token_expired``/``token_revoked``."""
        return self.error(401, f"token_{reason}", f"The access token is {reason}.")
    # --8<-- [end:sandbox-errors]

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """Chirp's ``Chirp-RateLimit-*`` headers (reset in epoch seconds)."""
        return {
            "Chirp-RateLimit-Limit": str(window.limit),
            "Chirp-RateLimit-Remaining": str(window.remaining),
            "Chirp-RateLimit-Reset": str(window.reset_epoch),
        }

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """429 ``rate_limited`` with ``Retry-After``."""
        wait = max(1, round(window.retry_after() + 0.49))
        answer = self.error(429, "rate_limited", "Slow down.", **{"Retry-After": str(wait)})
        answer.headers.update(self.rate_limit_headers(window))
        return answer

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """5xx ``server_error``."""
        return self.error(status, "server_error", "Something went wrong on our side.")

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """404 ``not_found``."""
        return self.error(404, "not_found", "No such thing.")

    def method_not_allowed(self, request: SandboxRequest, allowed: list[str]) -> SandboxResponse:
        """405 ``method_not_allowed``."""
        return self.error(405, "method_not_allowed", "Wrong method.", Allow=", ".join(allowed))

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """400/422 ``invalid``."""
        return self.error(status, "invalid", message)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """422 ``text_too_long``."""
        message = f"Text is {length} characters; the limit is {limit}."
        return self.error(422, "text_too_long", message)

    # rendering the world as Chirp JSON ------------------------------------

    def render_user(self, account: Account) -> dict[str, object]:
        """A Chirp user object."""
        return {"id": account.id, "handle": account.handle, "name": account.display_name}

    def render_entities(self, text: str, facets: tuple[Facet, ...]) -> list[dict[str, object]]:
        """Chirp entities: spans in UTF-16 code units."""
        offsets = OffsetMap(text)
        out: list[dict[str, object]] = []
        for facet in facets:
            entity: dict[str, object] = {
                "type": facet.kind,
                "start": offsets.index_to_utf16(facet.start),
                "end": offsets.index_to_utf16(facet.end),
            }
            if facet.kind == "mention":
                entity["handle"] = facet.value
                entity["user_id"] = facet.account_id
            elif facet.kind == "link":
                entity["url"] = facet.value
            else:
                entity["tag"] = facet.value
            out.append(entity)
        return out

    # --8<-- [start:sandbox-render]
    def render_post(self, post: Post) -> dict[str, object]:
        """A Chirp post object."""
        return {
            "id": post.id,
            "text": post.text,
            "author": self.render_user(self.world.account(post.author_id)),
            "created_at": post.created_at.isoformat().replace("+00:00", "Z"),
            "reply_to": post.in_reply_to,
            "thread_id": post.root,
            "entities": self.render_entities(post.text, post.facets),
            "hidden": post.hidden,
            "client_ref": post.idempotency_key,
        }
    # --8<-- [end:sandbox-render]

    def render_dm(self, message: DirectMessage) -> dict[str, object]:
        """A Chirp direct message object."""
        convo = self.world.conversations[message.conversation_id]
        recipient = convo.others(message.sender_id)[0]
        reply_to = message.extra.get("reply_to")
        return {
            "id": message.id,
            "conversation_id": convo.id,
            "sender": self.render_user(self.world.account(message.sender_id)),
            "recipient": self.render_user(self.world.account(recipient)),
            "text": message.text,
            "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
            "reply_to": reply_to if isinstance(reply_to, str) else None,
            "entities": self.render_entities(message.text, message.facets),
            "client_ref": message.idempotency_key,
        }

    # --8<-- [start:sandbox-webhook]
    def render_webhook(self, notification: Notification) -> WebhookDelivery | None:
        """Sign a mention, reply or DM notification as Chirp's webhook would send it."""
        if notification.kind == "dm":
            data = self.render_dm(self.world.message(notification.subject_id))
        elif notification.kind in ("mention", "reply"):
            data = self.render_post(self.world.post(notification.subject_id))
        else:
            return None
        body = json.dumps({"type": notification.kind, "data": data}, ensure_ascii=False).encode()
        stamp = int(notification.created_at.timestamp())
        return WebhookDelivery(
            method="POST", path="/webhooks/chirp", body=body,
            headers={"Content-Type": "application/json",
                     "Chirp-Signature": sign(self.webhook_secret, stamp, body)},
        )
    # --8<-- [end:sandbox-webhook]

    # reading entities sent by clients --------------------------------------

    def read_entities(self, request: SandboxRequest, text: str) -> tuple[Facet, ...] | None:
        """Turn the client's entities (UTF-16 spans) into facets; ``None`` when it sent none.

        Raises:
            SandboxAbort: 422 ``invalid_entities`` when a span does not cover
                what its entity says (``@handle``, the URL, ``#tag``).
        """
        raw = request.data().get("entities")
        if raw is None:
            return None
        if not isinstance(raw, list):
            raise SandboxAbort(self.error(422, "invalid_entities", "entities must be a list"))
        offsets = OffsetMap(text)
        facets: list[Facet] = []
        for n, item in enumerate(raw):
            if not isinstance(item, dict):
                raise SandboxAbort(
                    self.error(422, "invalid_entities", f"entity {n} is not an object"))
            try:
                start = offsets.utf16_to_index(int(str(item.get("start"))))
                end = offsets.utf16_to_index(int(str(item.get("end"))))
            except (ValueError, PayloadError):
                raise SandboxAbort(self.error(
                    422, "invalid_entities", f"entity {n} has offsets outside the text")) from None
            kind: FacetKind
            covered = text[start:end]
            if item.get("type") == "mention":
                kind = "mention"
                handle = str(item.get("handle", ""))
                expected, value = f"@{handle}", handle
                account_id = self.world.resolve_handle(handle)
            elif item.get("type") == "link":
                kind = "link"
                expected = value = str(item.get("url", ""))
                account_id = None
            elif item.get("type") == "hashtag":
                kind = "hashtag"
                value = str(item.get("tag", ""))
                expected, account_id = f"#{value}", None
            else:
                raise SandboxAbort(self.error(422, "invalid_entities", f"entity {n}: bad type"))
            if covered != expected:
                raise SandboxAbort(self.error(
                    422, "invalid_entities",
                    f"entity {n} covers {covered!r}, not {expected!r}"))
            facets.append(Facet(kind, start, end, value, account_id))
        return tuple(facets)

    # feeds ----------------------------------------------------------------

    # --8<-- [start:sandbox-feed]
    def _page(self, request: SandboxRequest, items: list[tuple[int, Feed]]) -> HandlerResult:
        """One page of ``(seq, render)`` items after ``since``, oldest first."""
        since_raw = request.query.get("since")
        try:
            limit = min(_PAGE_MAX, max(1, int(request.query.get("limit", "20"))))
            since = int(since_raw) if since_raw is not None else None
        except ValueError:
            raise SandboxAbort(self.bad_request(request, "since and limit are numbers")) from None
        items = [(seq, render) for seq, render in items if seq > (since or 0)]
        page = items[:limit] if since is not None else items[-limit:]
        more = since is not None and len(items) > limit
        next_since = page[-1][0] if page else (since or 0)
        data = [render() for _, render in page]
        return {"data": data, "next_since": str(next_since), "has_more": more}
    # --8<-- [end:sandbox-feed]

    def _mention_items(self) -> list[tuple[int, Feed]]:
        """Posts that mention us or answer our posts (our notifications), oldest first."""
        return [
            (n.seq, functools.partial(self.render_post, self.world.post(n.subject_id)))
            for n in self.world.notifications_for(self.our_account, kinds=("mention", "reply"))
            if not self.world.post(n.subject_id).deleted
        ]

    def _dm_items(self) -> list[tuple[int, Feed]]:
        """Messages of our conversations, both ways, oldest first."""
        us = self.our_account.id
        found = [
            m for c in self.world.conversations.values() if us in c.members
            for m in c.messages if not m.deleted
        ]
        return [(m.seq, functools.partial(self.render_dm, m))
                for m in sorted(found, key=lambda m: m.seq)]

    @route("GET", "/me")
    def me(self, request: SandboxRequest) -> HandlerResult:
        """Our account."""
        return self.render_user(self.our_account)

    @route("GET", "/mentions")
    def mentions(self, request: SandboxRequest) -> HandlerResult:
        """Posts that mention us or answer our posts."""
        return self._page(request, self._mention_items())

    @route("GET", "/dms")
    def dms(self, request: SandboxRequest) -> HandlerResult:
        """The messages of our direct conversations: theirs, and ours (from any client)."""
        return self._page(request, self._dm_items())

    # posts ----------------------------------------------------------------

    # --8<-- [start:sandbox-create]
    @route("POST", "/posts")
    def create_post(self, request: SandboxRequest) -> HandlerResult:
        """Publish a post or a reply."""
        author = self._me(request)
        text = self.require(request, "text")
        self.check_text(request, text)
        reply_to = request.field("reply_to")
        if reply_to is not None:
            self.post_or_404(request, reply_to)
        facets = self.read_entities(request, text)
        post = self.world.add_post(author, text, in_reply_to=reply_to, facets=facets,
                                   idempotency_key=request.field("client_ref"))
        return SandboxResponse.json(self.render_post(post), status=201)
    # --8<-- [end:sandbox-create]

    @route("GET", "/posts/{id}")
    def get_post(self, request: SandboxRequest) -> HandlerResult:
        """Read one post."""
        return self.render_post(self.post_or_404(request, request.params["id"]))

    @route("DELETE", "/posts/{id}")
    def delete_post(self, request: SandboxRequest) -> HandlerResult:
        """Delete one of our posts."""
        post = self.post_or_404(request, request.params["id"])
        if post.author_id != self._me(request).id:
            raise SandboxAbort(self.error(403, "forbidden", "Not your post."))
        self.world.delete_post(post.id)
        return SandboxResponse.empty()

    @route("POST", "/posts/{id}/like")
    def like(self, request: SandboxRequest) -> HandlerResult:
        """Like a post."""
        post = self.post_or_404(request, request.params["id"])
        self.world.like(self._me(request), post.id)
        return {"liked": True}

    @route("DELETE", "/posts/{id}/like")
    def unlike(self, request: SandboxRequest) -> HandlerResult:
        """Take a like back."""
        post = self.post_or_404(request, request.params["id"])
        self.world.unlike(self._me(request), post.id)
        return {"liked": False}

    @route("POST", "/posts/{id}/hide")
    def hide(self, request: SandboxRequest) -> HandlerResult:
        """Hide or unhide a reply in a thread we started."""
        post = self.post_or_404(request, request.params["id"])
        me = self._me(request)
        if self.world.post(post.root).author_id != me.id or post.author_id == me.id:
            raise SandboxAbort(self.error(403, "forbidden", "You can only hide replies to you."))
        hidden = request.data().get("hidden", True)
        if not isinstance(hidden, bool):
            raise SandboxAbort(self.bad_request(request, "hidden must be a boolean", status=422))
        self.world.set_hidden(post.id, hidden, by=me.id)
        return {"hidden": hidden}

    @route("GET", "/me/posts")
    def my_posts(self, request: SandboxRequest) -> HandlerResult:
        """Our posts, newest first, optionally filtered by ``client_ref``."""
        ref = request.query.get("client_ref")
        posts = [p for p in reversed(self.world.posts_by(self._me(request)))
                 if ref is None or p.idempotency_key == ref]
        return {"data": [self.render_post(p) for p in posts[:_PAGE_MAX]]}

    # direct messages ------------------------------------------------------

    @route("POST", "/dms")
    def send_dm(self, request: SandboxRequest) -> HandlerResult:
        """Send a direct message."""
        sender = self._me(request)
        to = self.require(request, "to")
        if to not in self.world.accounts:
            raise SandboxAbort(self.not_found(request))
        text = self.require(request, "text")
        self.check_text(request, text, private=True)
        facets = self.read_entities(request, text)
        convo = self.world.conversation_between(sender, to)
        if convo is None:  # pragma: no cover - create=True always returns one
            raise SandboxAbort(self.server_error(request, 500))
        reply_to = request.field("reply_to")
        message = self.world.add_message(
            sender, convo.id, text, facets=facets, idempotency_key=request.field("client_ref"),
            extra={"reply_to": reply_to} if reply_to else None,
        )
        return SandboxResponse.json(self.render_dm(message), status=201)

    @route("GET", "/me/dms")
    def my_dms(self, request: SandboxRequest) -> HandlerResult:
        """Direct messages we sent, newest first, optionally filtered by ``client_ref``."""
        ref = request.query.get("client_ref")
        sent = [m for m in reversed(self.world.messages_by(self._me(request)))
                if ref is None or m.idempotency_key == ref]
        return {"data": [self.render_dm(m) for m in sent[:_PAGE_MAX]]}

    def _me(self, request: SandboxRequest) -> Account:
        if request.account is None:  # pragma: no cover - every route here needs auth
            raise SandboxAbort(self.auth_error(request, "missing"))
        return request.account
