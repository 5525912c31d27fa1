"""Stateful fakes of a Facebook Page and an Instagram account (Graph API, webhooks).

`FacebookSandbox` and `InstagramSandbox` answer in the shapes of the recorded
payloads in ``tests/vectors/facebook/`` and ``tests/vectors/instagram/``
(restfb webhook bodies, python-facebook Graph answers): ``{"data": [...]}``
pages, ``{"id": ...}`` creations, ``{"recipient_id", "message_id"}`` sends,
the ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``
envelope, ``X-Business-Use-Case-Usage`` and ``X-App-Usage`` headers, and
webhook deliveries signed with ``X-Hub-Signature-256``.

```python
from omnichannel_meta import FacebookAdapter
from omnichannel_meta.sandbox import FacebookSandbox

sandbox = FacebookSandbox(seed=7)
sandbox.customer_comment(sandbox.our_post("New hours!"), "open on Sunday?")
async with FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as page:
    batch = await page.poll(None)
```

The world maps onto a Page this way: our top-level posts are the Page's feed;
a customer's top-level post that mentions us is a post the Page is tagged in
(``/{page}/tagged``, webhook field ``mention``); replies are comments (``feed``
webhooks); direct conversations are Messenger conversations. Meta's rules are
enforced: a DM goes out only within 24 hours of the customer's last message
(``RESPONSE``), or up to 7 days with ``MESSAGE_TAG``/``HUMAN_AGENT`` when
`human_agent_permission` is set; one private reply per comment or post, within
7 days; only comments on the Page's posts can be hidden.

Served endpoints (under ``/v25.0``, any version): ``GET /{page}``, ``GET
/{page}/feed``, ``GET /{page}/tagged``, ``GET|POST /{id}/comments``, ``POST
/{id}/likes``, ``POST /{id}`` (``is_hidden``), ``DELETE /{id}``, ``GET
/{page}/conversations``, ``GET /{conversation}/messages``, ``POST
/{page}/messages``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, ClassVar

from omnichannel.testing import (
    Account,
    DirectConversation,
    DirectMessage,
    HandlerResult,
    Notification,
    Post,
    RateLimitWindow,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    VirtualClock,
    WebhookDelivery,
    route,
)
from omnichannel.testing.sandbox import (
    AuthFailure,
    Facet,
    PostVisibility,
    RecordKind,
    SentRecord,
)
from omnichannel.text import index_to_utf16

from ._adapter import HUMAN_AGENT_WINDOW, PRIVATE_REPLY_WINDOW, STANDARD_WINDOW
from ._demo import DemoRun, DemoStep, demo_steps
from ._setup import FIELD_PERMISSIONS, Setup

__all__ = ["DemoRun", "DemoStep", "FacebookSandbox", "InstagramSandbox", "demo_steps"]

_V = "/{version}"

_PAGE_FIELDS = frozenset({
    "feed", "mention", "messages", "message_echoes", "message_reactions", "message_reads",
    "message_deliveries", "messaging_postbacks", "messaging_referrals",
})
_INSTAGRAM_FIELDS = frozenset({
    "comments", "live_comments", "mentions", "messages", "message_reactions",
    "messaging_postbacks", "messaging_referral", "messaging_seen", "story_insights",
})


def _iso(moment: datetime) -> str:
    """Graph timestamps: ``2021-08-10T18:45:03+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _error(message: str, code: int, *, subcode: int | None = None,
           kind: str = "OAuthException", transient: bool = False) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    error["fbtrace_id"] = "A" + secrets.token_hex(10)
    return {"error": error}


class _GraphSandbox(Sandbox):
    """What the Facebook and Instagram sandboxes share: errors, usage headers,
    signed deliveries, paging, conversations and the Send API."""

    graph_version: ClassVar[str] = "v25.0"
    _webhook_object: ClassVar[str] = "page"
    _buc_type: ClassVar[str] = "pages"
    _anchors: ClassVar[tuple[str, ...]] = ("comment_id", "post_id")

    def __init__(
        self, *, seed: int = 0, clock: VirtualClock | None = None,
        our_handle: str | None = None, base_url: str | None = None,
    ) -> None:
        super().__init__(
            seed=seed, clock=clock or VirtualClock(tick=timedelta(seconds=1)),
            our_handle=our_handle, base_url=base_url,
        )

    def setup(self) -> None:
        """Prepare the app's settings, grants and installs, and the private-reply ledger."""
        self.verify_token = secrets.token_hex(8)
        self.human_agent_permission = False
        self._private_replies: set[str] = set()
        # Our reaction on each customer DM that has one (message id -> reaction).
        self.dm_reactions: dict[str, str] = {}
        self.app_id = str(900_000_000_000_000 + self.seed)
        self.subscribed_apps: dict[str, tuple[str, ...]] = {}
        self.granted_permissions: set[str] = {
            p for setup in self._setups for table in [FIELD_PERMISSIONS[setup]]
            for needed in table.values() for p in needed
        }
        self.permissions_readable = True

    _setups: ClassVar[tuple[Setup, ...]] = ("facebook",)

    def _installable(self) -> dict[str, frozenset[str]]:
        """The objects the app can be installed on, and the fields each takes."""
        return {self.our_account.id: _PAGE_FIELDS}

    @route("POST", _V + "/{id}/subscribed_apps")
    def subscribe_app(self, request: SandboxRequest) -> HandlerResult:
        """Install the app on our Page or account for ``subscribed_fields``."""
        allowed = self._installable().get(request.params["id"])
        if allowed is None:
            raise SandboxAbort(self.not_found(request))
        fields = [f for f in self.require(request, "subscribed_fields").split(",") if f]
        for index, name in enumerate(fields):
            if name not in allowed:
                raise self._refuse(f"(#100) Param subscribed_fields[{index}] must be one of "
                                   f"{{{', '.join(sorted(allowed))}}}", 100)
        on_a_page = request.params["id"] != self.our_account.id or self.network == "facebook"
        if on_a_page and "pages_manage_metadata" not in self.granted_permissions:
            raise self._refuse("(#200) The pages_manage_metadata permission is required "
                               "to install an app on a Page", 200)
        self.subscribed_apps[request.params["id"]] = tuple(fields)
        return {"success": True}

    @route("GET", _V + "/{id}/subscribed_apps")
    def subscribed(self, request: SandboxRequest) -> HandlerResult:
        """The apps installed on our Page or account, with their fields."""
        target = request.params["id"]
        if target not in self._installable():
            raise SandboxAbort(self.not_found(request))
        fields = self.subscribed_apps.get(target)
        data = [] if fields is None else [
            {"id": self.app_id, "name": "omnichannel", "subscribed_fields": list(fields)}]
        return {"data": data}

    @route("GET", _V + "/me/permissions")
    def permissions(self, request: SandboxRequest) -> HandlerResult:
        """The permissions the token was granted (refused when `permissions_readable` is off)."""
        if not self.permissions_readable:
            raise self._refuse("(#100) Tried accessing nonexisting field (permissions) on "
                               "node type (Page)", 100)
        return {"data": [{"permission": p, "status": "granted"}
                         for p in sorted(self.granted_permissions)]}

    def count_text(self, text: str, *, private: bool = False) -> int:
        """Meta counts code points."""
        return len(text)

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """190, subcode 463 when expired, 460 when revoked."""
        subcode = {"expired": 463, "revoked": 460}.get(reason)
        message = {
            "expired": "Error validating access token: Session has expired.",
            "revoked": "Error validating access token: The session has been invalidated.",
        }.get(reason, "Invalid OAuth access token - Cannot parse access token")
        return SandboxResponse.json(_error(message, 190, subcode=subcode), status=400)

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """``X-Business-Use-Case-Usage`` (Page token: BUC) and ``X-App-Usage``, in percent."""
        used = window.limit - window.remaining
        percent = min(100, round(100 * used / window.limit)) if window.limit else 100
        regain = 0.0 if window.remaining > 0 else window.retry_after() / 60
        buc = {self.our_account.id: [{
            "type": self._buc_type, "call_count": percent, "total_cputime": percent // 2,
            "total_time": percent // 2, "estimated_time_to_regain_access": regain,
        }]}
        app = {"call_count": percent // 4, "total_cputime": 0, "total_time": 0}
        return {"X-Business-Use-Case-Usage": json.dumps(buc), "X-App-Usage": json.dumps(app)}

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """(#80001) with the BUC header saying when access comes back."""
        return SandboxResponse.json(
            _error("(#80001) There have been too many calls to this Page account. "
                   "Wait a bit and try again.", 80001),
            status=400, headers=self.rate_limit_headers(window),
        )

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """Graph's transient error."""
        return SandboxResponse.json(
            _error("An unexpected error has occurred. Please retry your request later.", 2,
                   transient=True), status=status)

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """(#100) subcode 33: the object does not exist."""
        return SandboxResponse.json(_error(
            "Unsupported get request. Object does not exist, cannot be loaded due to missing "
            "permissions, or does not support this operation.", 100, subcode=33,
            kind="GraphMethodException"), status=400)

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """(#100) invalid parameter."""
        return SandboxResponse.json(_error(f"(#100) {message}", 100), status=400)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """(#100) the length of the message parameter."""
        return self.bad_request(
            request, f"Length of param message must be less than or equal to {limit}")

    def _person(self, account_id: str) -> dict[str, str]:
        account = self.world.account(account_id)
        return {"id": account.id, "name": account.display_name or account.handle}

    def render_message(self, message: DirectMessage, convo: DirectConversation) -> dict[str, Any]:
        """A Messenger message as ``/{conversation}/messages`` shows it."""
        others = [m for m in convo.members if m != message.sender_id]
        return {
            "id": message.id, "message": message.text, "created_time": _iso(message.created_at),
            "from": self._person(message.sender_id),
            "to": {"data": [self._person(m) for m in others]},
        }

    def _entries(self, after_seq: int) -> list[dict[str, Any]]:
        """The webhook entries of what happened after ``after_seq``, in order."""
        return [
            entry for n in self.world.notifications_for(self.our_account, after_seq=after_seq)
            if (entry := self._entry(n)) is not None
        ]

    def webhook_batch(self, *, after_seq: int = 0) -> WebhookDelivery | None:
        """Everything after ``after_seq`` in one delivery (Meta batches entries)."""
        entries = self._entries(after_seq)
        if not entries:
            return None
        return self.sign({"object": self._webhook_object, "entry": entries})

    def sign(self, payload: dict[str, Any]) -> WebhookDelivery:
        """Sign a body with the app secret, as Meta does (``X-Hub-Signature-256``)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return WebhookDelivery(
            method="POST", path=f"/{self.network}", body=body,
            headers={"Content-Type": "application/json",
                     "X-Hub-Signature-256": f"sha256={digest}"},
        )

    def handshake(self, *, token: str | None = None) -> WebhookDelivery:
        """The ``GET`` Meta sends to verify a webhook URL."""
        return WebhookDelivery(method="GET", path=f"/{self.network}", query={
            "hub.mode": "subscribe", "hub.verify_token": token or self.verify_token,
            "hub.challenge": str(self.seed * 1000 + 1158201444),
        })

    def _entry(self, notification: Notification) -> dict[str, Any] | None:
        """The webhook entry of a notification (``None``: not delivered by webhook)."""
        return None

    def _page(self, request: SandboxRequest) -> None:
        if request.params.get("id") != self.our_account.id:
            raise SandboxAbort(self.not_found(request))

    def _object(self, request: SandboxRequest) -> Post:
        return self.post_or_404(request, request.params["id"])

    def _limit(self, request: SandboxRequest, default: int = 25) -> int:
        raw = request.query.get("limit")
        return int(raw) if raw and raw.isdigit() else default

    def _paged(
        self, request: SandboxRequest, items: list[Any], default: int = 25
    ) -> dict[str, Any]:
        """One page of ``items`` (``limit``, ``after``) with Graph's ``paging`` object."""
        after = request.query.get("after")
        start = int(after) if after and after.isdigit() else 0
        end = start + self._limit(request, default)
        page: dict[str, Any] = {"data": items[start:end]}
        if items[start:end]:
            paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(end)}}
            if end < len(items):
                paging["next"] = f"{self.base_url}{request.path}?after={end}"
            page["paging"] = paging
        return page

    def _refuse(self, message: str, code: int, subcode: int | None = None) -> SandboxAbort:
        return SandboxAbort(SandboxResponse.json(_error(message, code, subcode=subcode),
                                                 status=400))

    @route("GET", _V + "/{id}/conversations")
    def conversations(self, request: SandboxRequest) -> HandlerResult:
        """The Page's Messenger conversations, most recently updated first."""
        self._page(request)
        us = self.our_account.id
        user = request.query.get("user_id")
        found = [
            c for c in self.world.conversations.values()
            if us in c.members and c.messages and (user is None or user in c.members)
        ]
        found.sort(key=lambda c: c.messages[-1].seq, reverse=True)
        inline = "messages" in request.query.get("fields", "")
        data = []
        for convo in found:
            item: dict[str, Any] = {
                "id": convo.id, "updated_time": _iso(convo.messages[-1].created_at),
                "message_count": len(convo.messages),
            }
            if inline:
                item["messages"] = self._messages(convo, 25)
            data.append(item)
        return self._paged(request, data)

    def _messages(self, convo: DirectConversation, limit: int) -> dict[str, Any]:
        shown = [m for m in reversed(convo.messages) if not m.deleted][:limit]
        return {"data": [self.render_message(m, convo) for m in shown]}

    def _all_messages(self, convo: DirectConversation) -> list[dict[str, Any]]:
        return [self.render_message(m, convo) for m in reversed(convo.messages)
                if not m.deleted]

    @route("GET", _V + "/{id}/messages")
    def messages(self, request: SandboxRequest) -> HandlerResult:
        """A conversation's messages, newest first."""
        convo = self.world.conversations.get(request.params["id"])
        if convo is None or self.our_account.id not in convo.members:
            raise SandboxAbort(self.not_found(request))
        return self._paged(request, self._all_messages(convo))

    def _react(self, request: SandboxRequest, body: dict[str, Any]) -> HandlerResult:
        """``sender_action: react``/``unreact``: a heart on a customer's DM (`dm_reactions`)."""
        recipient, payload = body.get("recipient"), body.get("payload")
        if not isinstance(recipient, dict) or not isinstance(payload, dict):
            raise SandboxAbort(self.bad_request(request, "recipient and payload are required"))
        customer = str(recipient.get("id") or "")
        convo = self.world.conversation_between(customer, self.our_account, create=False)
        target = next((m for m in (convo.messages if convo else [])
                       if m.id == payload.get("message_id") and m.sender_id == customer), None)
        if target is None:
            raise SandboxAbort(self.not_found(request))
        if body["sender_action"] == "unreact":
            self.dm_reactions.pop(target.id, None)
        elif payload.get("reaction") != "love":
            raise SandboxAbort(self.bad_request(request, "payload[reaction] must be love"))
        else:
            self.dm_reactions[target.id] = "love"
        return {"recipient_id": customer}

    @route("POST", _V + "/{id}/messages")
    def send(self, request: SandboxRequest) -> HandlerResult:
        """The Send API: a DM to a PSID within the windows, or a private reply to a comment."""
        self._page(request)
        body = request.json()
        if not isinstance(body, dict):
            raise SandboxAbort(self.bad_request(request, "body must be an object"))
        if body.get("sender_action") in ("react", "unreact"):
            return self._react(request, body)
        recipient, message = body.get("recipient"), body.get("message")
        if not isinstance(recipient, dict) or not isinstance(message, dict):
            raise SandboxAbort(self.bad_request(request, "recipient and message are required"))
        text = message.get("text")
        if not isinstance(text, str) or not text:
            raise SandboxAbort(self.bad_request(request, "message[text] is required"))
        self.check_text(request, text, private=True)
        now = self.clock.peek()
        us = self.our_account
        extra: dict[str, object] = {}
        if isinstance(message.get("metadata"), str):
            extra["metadata"] = message["metadata"]
        anchor = next((recipient[k] for k in self._anchors if isinstance(recipient.get(k), str)),
                      None)
        if isinstance(anchor, str):
            target = self.post_or_404(request, anchor)
            if target.id in self._private_replies:
                raise self._refuse("(#10) Only one private reply is allowed per comment", 10,
                                   2018108)
            if now - target.created_at > PRIVATE_REPLY_WINDOW:
                raise self._refuse("(#10) This message is sent outside of allowed window.",
                                   10, 2018278)
            customer = target.author_id
            extra["reply_to"] = target.id
            self._private_replies.add(target.id)
        else:
            customer = str(recipient.get("id") or "")
            convo = self.world.conversation_between(customer, us, create=False)
            theirs = [m for m in (convo.messages if convo else []) if m.sender_id == customer]
            if not theirs:
                raise self._refuse("(#551) This person isn't available right now.", 551,
                                   1545041)
            age = now - theirs[-1].created_at
            kind, tag = body.get("messaging_type"), body.get("tag")
            allowed = age <= STANDARD_WINDOW and kind in ("RESPONSE", "UPDATE")
            if kind == "MESSAGE_TAG" and tag == "HUMAN_AGENT":
                allowed = self.human_agent_permission and age <= HUMAN_AGENT_WINDOW
                extra["tag"] = tag
            if not allowed:
                raise self._refuse("(#10) This message is sent outside of allowed window.",
                                   10, 2018278)
        if customer not in self.world.accounts:
            raise SandboxAbort(self.not_found(request))
        convo = self.world.conversation_between(customer, us)
        if convo is None:  # pragma: no cover - create=True always returns one
            raise SandboxAbort(self.not_found(request))
        sent = self.world.add_message(us, convo.id, text, extra=extra)
        return {"recipient_id": customer, "message_id": sent.id}


class FacebookSandbox(_GraphSandbox):
    """A fake Facebook Page (our account, ``shop``) with Messenger.

    Args:
        seed: Seeds fault injection (same seed, same faults).
        clock: The virtual clock (default: one that ticks a second per record,
            so every record has its own ``created_time``).
        our_handle: Our Page's username (default ``shop``).
        base_url: The URL the in-process transport answers for.

    Attributes:
        verify_token: The webhook verify token the settings carry.
        human_agent_permission: Whether the app has the Human Agent permission
            (``MESSAGE_TAG``/``HUMAN_AGENT`` accepted up to 7 days).
        dm_reactions: Our reaction on each customer DM that has one
            (``sender_action: react``), by message id.
        graph_version: The version the adapter is pointed at.
    """

    network = "facebook"
    our_handle = "shop"
    text_limit = 8000
    dm_text_limit = 2000
    default_rate_limit = (4800, 3600.0)
    create_routes = ("POST /*/comments", "POST /*/messages")

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """Graph-like ids: ``<author>_<n>`` posts, ``m_<n>`` messages, ``t_<n>`` threads."""
        with self._lock:
            self._id_seq += 1
            n = self._id_seq
        if kind == "post":
            owner = author.id if author is not None else "0"
            return f"{owner}_{n}"
        if kind == "message":
            return f"m_{n}"
        if kind == "conversation":
            return f"t_{n}"
        return str(10_000_000 + n)

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """Settings for `FacebookAdapter` pointed at this sandbox."""
        return {
            "base_url": base_url or self.base_url, "page_id": self.our_account.id,
            "access_token": self.token, "app_secret": self.webhook_secret,
            "verify_token": self.verify_token, "graph_version": self.graph_version,
            "human_agent": self.human_agent_permission,
        }

    def _tags(self, text: str, facets: tuple[Facet, ...]) -> list[dict[str, Any]]:
        tags = []
        for facet in facets:
            if facet.kind != "mention" or facet.account_id is None:
                continue
            start = index_to_utf16(text, facet.start)
            end = index_to_utf16(text, facet.end)
            account = self.world.account(facet.account_id)
            tags.append({
                "id": account.id, "name": account.display_name or account.handle,
                "type": "page" if account.id == self.our_account.id else "user",
                "offset": start, "length": end - start,
            })
        return tags

    def render_post(self, post: Post) -> dict[str, Any]:
        """A post or comment as the Graph API shows it."""
        data: dict[str, Any] = {
            "id": post.id, "message": post.text, "created_time": _iso(post.created_at),
            "from": self._person(post.author_id),
        }
        tags = self._tags(post.text, post.facets)
        if tags:
            data["message_tags"] = tags
        if post.in_reply_to is not None:
            data["is_hidden"] = post.hidden
            if post.in_reply_to != post.root:
                data["parent"] = {"id": post.in_reply_to}
        else:
            thread = self.world.thread(post.id)
            latest = max((p.created_at for p in thread), default=post.created_at)
            data["updated_time"] = _iso(latest)
        return data

    def render_webhook(self, notification: Notification) -> WebhookDelivery | None:
        """A notification to our Page as the signed delivery Meta would POST."""
        entry = self._entry(notification)
        if entry is None:
            return None
        return self.sign({"object": "page", "entry": [entry]})

    def _entry(self, notification: Notification) -> dict[str, Any] | None:
        page = self.our_account.id
        when = int(notification.created_at.timestamp())
        if notification.kind == "dm":
            message = self.world.message(notification.subject_id)
            return {"id": page, "time": when * 1000, "messaging": [{
                "sender": {"id": message.sender_id}, "recipient": {"id": page},
                "timestamp": int(message.created_at.timestamp() * 1000),
                "message": {"mid": message.id, "text": message.text},
            }]}
        if notification.kind not in ("mention", "reply"):
            return None
        post = self.world.post(notification.subject_id)
        created = int(post.created_at.timestamp())
        if post.in_reply_to is None:
            value: dict[str, Any] = {
                "item": "post", "verb": "add", "post_id": post.id, "message": post.text,
                "created_time": created, "from": self._person(post.author_id),
            }
            return {"id": page, "time": when, "changes": [{"field": "mention", "value": value}]}
        value = {
            "item": "comment", "verb": "add", "comment_id": post.id, "post_id": post.root,
            "parent_id": post.in_reply_to, "from": self._person(post.author_id),
            "created_time": created, "message": post.text,
        }
        root = self.world.post(post.root)
        field = "feed" if root.author_id == page else "mention"
        return {"id": page, "time": when, "changes": [{"field": field, "value": value}]}

    @route("GET", _V + "/{id}")
    def get_object(self, request: SandboxRequest) -> HandlerResult:
        """Our Page (``id,name``), or a post or comment."""
        if request.params["id"] == self.our_account.id:
            account = self.our_account
            return {"id": account.id, "name": account.display_name or account.handle,
                    "username": account.handle}
        return self.render_post(self._object(request))

    @route("GET", _V + "/{id}/feed")
    def feed(self, request: SandboxRequest) -> HandlerResult:
        """The Page's own top-level posts, newest first."""
        self._page(request)
        posts = [p for p in self.world.posts_by(self.our_account) if p.in_reply_to is None]
        posts.sort(key=lambda p: p.seq, reverse=True)
        return self._paged(request, [self.render_post(p) for p in posts])

    @route("GET", _V + "/{id}/tagged")
    def tagged(self, request: SandboxRequest) -> HandlerResult:
        """Customers' top-level posts that mention the Page, newest first."""
        self._page(request)
        us = self.our_account.id
        posts = [
            p for p in self.world.posts.values()
            if p.in_reply_to is None and not p.deleted and p.author_id != us
            and us in p.mentions and p.visibility != "direct"
        ]
        posts.sort(key=lambda p: p.seq, reverse=True)
        return self._paged(request, [self.render_post(p) for p in posts])

    @route("GET", _V + "/{id}/comments")
    def comments(self, request: SandboxRequest) -> HandlerResult:
        """Comments on a post or comment: direct ones, or the whole thread (``filter=stream``)."""
        target = self._object(request)
        if request.query.get("filter") == "stream":
            found = [p for p in self.world.thread(target.root) if p.id != target.root]
            if target.id != target.root:
                found = [p for p in found if p.in_reply_to == target.id]
        else:
            found = self.world.replies_to(target.id)
        found = [p for p in found if not p.deleted]
        found.sort(key=lambda p: p.seq, reverse=request.query.get("order")
                   == "reverse_chronological")
        return self._paged(request, [self.render_post(p) for p in found], 100)

    @route("POST", _V + "/{id}/comments")
    def comment(self, request: SandboxRequest) -> HandlerResult:
        """Comment as the Page on a post or comment; answers ``{"id"}``."""
        target = self._object(request)
        if target.hidden:
            raise self._refuse("(#100) Cannot reply to a hidden comment", 100)
        text = self.require(request, "message")
        self.check_text(request, text)
        post = self.world.add_post(self.our_account, text, in_reply_to=target.id)
        return {"id": post.id}

    @route("POST", _V + "/{id}/likes")
    def like(self, request: SandboxRequest) -> HandlerResult:
        """Like a post or comment as the Page."""
        self.world.like(self.our_account, self._object(request).id)
        return {"success": True}

    @route("POST", _V + "/{id}")
    def update(self, request: SandboxRequest) -> HandlerResult:
        """Hide or unhide a comment on one of the Page's posts (``is_hidden``)."""
        post = self._object(request)
        hidden = request.field("is_hidden")
        if hidden not in ("true", "false"):
            raise SandboxAbort(self.bad_request(request, "is_hidden is required"))
        root = self.world.post(post.root)
        if post.in_reply_to is None or root.author_id != self.our_account.id:
            raise self._refuse("(#200) Only comments on the Page's own posts can be hidden",
                               200)
        self.world.set_hidden(post.id, hidden == "true", by=self.our_account.id)
        return {"success": True}

    @route("DELETE", _V + "/{id}")
    def delete(self, request: SandboxRequest) -> HandlerResult:
        """Delete our post or comment, or a comment on one of the Page's posts."""
        post = self._object(request)
        root = self.world.post(post.root)
        if post.author_id != self.our_account.id and root.author_id != self.our_account.id:
            raise self._refuse("(#200) Permissions error", 200)
        self.world.delete_post(post.id)
        return {"success": True}


def _ig_id(prefix: str, n: int) -> str:
    """Instagram messaging ids: base64 of ``ig_...`` (so they start ``aWdf``, as recorded)."""
    raw = f"ig_{prefix}:1:IGMessaging:{n}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class InstagramSandbox(_GraphSandbox):
    """A fake Instagram professional account (our account, ``shop``) with Instagram messaging.

    The world maps onto Instagram this way: our top-level posts are our media
    (``/{ig-user-id}/media``); replies under them are comments, a reply to
    the media a top-level comment (no ``parent_id``), a reply to a comment
    one with ``parent_id``; direct conversations are Instagram conversations.
    A customer's public mention (`customer_mention`) is a comment on our
    latest media that @mentions us (a media is published for it when we have
    none); `customer_media` publishes a customer's own media, whose caption
    and comments may mention us (webhook field ``mentions``).

    Meta's rules are enforced: hidden comments cannot be replied to; only
    comments on our media can be hidden or private-replied to, each once,
    within 7 days (``recipient: {comment_id}``; no ``post_id`` on Instagram);
    DMs as on Messenger (24 hours, ``HUMAN_AGENT`` up to 7 days with
    `human_agent_permission`).

    Webhook deliveries (`webhook_deliveries`, `webhook_batch`) bring every
    comment on our media by someone else (field ``comments``), comments and
    captions elsewhere that mention us (``mentions``), and DMs (``messages``).

    Where the sandbox is kinder than Instagram: ``parent_id`` names the
    comment answered (Instagram puts every reply under the top-level comment
    and names that one), and ``/{comment-id}/replies`` lists every comment
    below the one named.

    Served endpoints (under ``/v25.0``, any version): ``GET /{ig-user-id}``
    (also ``fields=mentioned_comment.comment_id(<id>){...}``), ``GET
    /{ig-user-id}/media``, ``GET /{media-id}/comments`` (with nested
    ``replies`` when the fields ask), ``GET|POST /{comment-id}/replies``,
    ``POST /{media-id}/comments``, ``POST /{ig-user-id}/mentions``, ``POST
    /{comment-id}?hide=``, ``DELETE /{comment-id}``, ``GET
    /{ig-user-id}/conversations``, ``GET /{conversation-id}/messages``,
    ``POST /{ig-user-id}/messages``.

    Attributes:
        verify_token: The webhook verify token the settings carry.
        human_agent_permission: Whether the app has the Human Agent permission.
        dm_reactions: Our reaction on each customer DM that has one
            (``sender_action: react``), by message id.
    """

    network = "instagram"
    our_handle = "shop"
    text_limit = 2200
    dm_text_limit = 1000
    default_rate_limit = (4800, 3600.0)
    create_routes = ("POST /*/replies", "POST /*/comments", "POST /*/mentions",
                     "POST /*/messages")
    _webhook_object = "instagram"
    _buc_type = "instagram"
    _anchors = ("comment_id",)
    _setups = ("instagram", "instagram-facebook-login")

    def setup(self) -> None:
        """Prepare the account, and the Facebook Page linked to it (Facebook Login)."""
        super().setup()
        self.linked_page_id = str(100_000_000_000_000 + self.seed)

    def _installable(self) -> dict[str, frozenset[str]]:
        return {self.our_account.id: _INSTAGRAM_FIELDS, self.linked_page_id: _PAGE_FIELDS}

    token_lifetime: ClassVar[timedelta] = timedelta(days=60)
    """How long an Instagram Login token lives from when it is issued or refreshed."""

    def long_lived_token(self, *, expires_in: timedelta | None = None) -> str:
        """Issue our account a long-lived token expiring in ``expires_in`` (default 60 days).

        It becomes `token`, and `adapter_settings` gives its ``token_expires_at``.
        """
        lifetime = self.token_lifetime if expires_in is None else expires_in
        self.token = self.tokens.issue(self.our_account.id,
                                       expires_at=self.clock.peek() + lifetime)
        return self.token

    @route("GET", "/refresh_access_token", auth=False)
    def refresh_access_token(self, request: SandboxRequest) -> HandlerResult:
        """Trade a valid long-lived token (``access_token`` query) for one valid 60 days."""
        if request.query.get("grant_type") != "ig_refresh_token":
            raise SandboxAbort(self.bad_request(request, "grant_type must be ig_refresh_token"))
        state, info = self.tokens.check(request.query.get("access_token"))
        if state == "expired" or state == "revoked":
            raise SandboxAbort(self.auth_error(request, state))
        if state != "valid" or info is None:
            raise SandboxAbort(self.auth_error(request, "invalid"))
        if info.account_id != self.our_account.id:
            raise SandboxAbort(self.auth_error(request, "invalid"))
        token = self.tokens.issue(info.account_id,
                                  expires_at=self.clock.peek() + self.token_lifetime)
        return {"access_token": token, "token_type": "bearer",
                "expires_in": int(self.token_lifetime.total_seconds())}

    # ids, settings, people ------------------------------------------------------------

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """Instagram-like ids: 17-digit numbers, ``aWdf...`` message and thread ids."""
        with self._lock:
            self._id_seq += 1
            n = self._id_seq
        if kind == "account":
            return str(17841400000000000 + n)
        if kind == "message":
            return _ig_id("message", n)
        if kind == "conversation":
            return _ig_id("thread", n)
        return str(17900000000000000 + n)

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """Settings for `InstagramAdapter` pointed at this sandbox."""
        return {
            "base_url": base_url or self.base_url, "account_id": self.our_account.id,
            "access_token": self.token, "app_secret": self.webhook_secret,
            "verify_token": self.verify_token, "graph_version": self.graph_version,
            "human_agent": self.human_agent_permission, "page_id": self.linked_page_id,
            "token_expires_at": getattr(self.token_info(), "expires_at", None),
        }

    def _person(self, account_id: str) -> dict[str, str]:
        account = self.world.account(account_id)
        return {"id": account.id, "username": account.handle}

    # the customer side ---------------------------------------------------------------

    def showcase(self) -> Post:
        """Our latest media (one is published when we have none): where mentions land."""
        ours = [p for p in self.world.posts_by(self.our_account)
                if p.in_reply_to is None and not p.deleted]
        if ours:
            return max(ours, key=lambda p: p.seq)
        return self.world.add_post(self.our_account, "New in store ✨", notify=False)

    def customer_mention(
        self, text: str = "", *, author: Account | None = None,
        visibility: PostVisibility = "public",
    ) -> Post:
        """A customer comments on our latest media, @mentioning us (put in front if missing)."""
        who = self._author(author)
        ours = self.mention_of(self.our_account)
        if ours not in text:
            text = f"{ours} {text}".rstrip()
        return self.world.add_post(who, text, in_reply_to=self.showcase().id)

    def customer_media(self, caption: str, *, author: Account | None = None) -> Post:
        """A customer publishes a media of their own (a caption that @mentions us notifies us)."""
        return self.world.add_post(self._author(author), caption)

    def sent(self, *, include_deleted: bool = False) -> list[SentRecord]:
        """Our comments and messages, oldest first (our media are not something we sent)."""
        return [r for r in super().sent(include_deleted=include_deleted)
                if r.kind == "message" or r.in_reply_to is not None]

    # rendering -----------------------------------------------------------------------

    def _descendants(self, post_id: str) -> list[Post]:
        """Every comment below ``post_id``, oldest first."""
        found: list[Post] = []
        todo = [post_id]
        while todo:
            children = [p for p in self.world.replies_to(todo.pop()) if not p.deleted]
            found.extend(children)
            todo.extend(p.id for p in children)
        return sorted(found, key=lambda p: p.seq)

    def render_media(self, post: Post) -> dict[str, Any]:
        """A media as ``/{ig-user-id}/media`` shows it."""
        author = self.world.account(post.author_id)
        return {
            "id": post.id, "caption": post.text, "media_type": "IMAGE",
            "media_product_type": "FEED", "timestamp": _iso(post.created_at),
            "username": author.handle, "comments_count": len(self._descendants(post.id)),
            "permalink": f"https://www.instagram.com/p/{post.id}/",
        }

    def render_comment(self, post: Post, *, nested: bool = False) -> dict[str, Any]:
        """A comment as the Graph API shows an ``IGComment`` (``replies`` nested when asked)."""
        data: dict[str, Any] = {
            "id": post.id, "text": post.text, "timestamp": _iso(post.created_at),
            "username": self.world.account(post.author_id).handle,
            "from": self._person(post.author_id),
            "media": {"id": post.root, "media_product_type": "FEED"},
            "hidden": post.hidden, "like_count": 0,
        }
        if post.in_reply_to is not None and post.in_reply_to != post.root:
            data["parent_id"] = post.in_reply_to
        if nested:
            data["replies"] = {"data": [self.render_comment(p)
                                        for p in self._descendants(post.id)]}
        return data

    def render_webhook(self, notification: Notification) -> WebhookDelivery | None:
        """A notification to our account as the signed delivery Meta would POST."""
        entry = self._entry(notification)
        if entry is None:
            return None
        return self.sign({"object": "instagram", "entry": [entry]})

    def webhook_deliveries(self, *, after_seq: int = 0) -> list[WebhookDelivery]:
        """One signed delivery per entry after ``after_seq``: every comment on our media
        (whoever it answers), mentions elsewhere and DMs."""
        return [self.sign({"object": "instagram", "entry": [entry]})
                for entry in self._entries(after_seq)]

    def _entries(self, after_seq: int) -> list[dict[str, Any]]:
        us = self.our_account.id
        found: list[tuple[int, dict[str, Any]]] = []
        for notification in self.world.notifications_for(us, after_seq=after_seq):
            if notification.kind in ("mention", "reply") and self._on_our_media(
                    self.world.post(notification.subject_id)):
                continue  # every comment on our media is delivered below
            entry = self._entry(notification)
            if entry is not None:
                found.append((notification.seq, entry))
        for post in list(self.world.posts.values()):
            if (post.seq > after_seq and post.in_reply_to is not None
                    and post.author_id != us and self._on_our_media(post)):
                found.append((post.seq, self._comment_entry(
                    post, int(post.created_at.timestamp()))))
        return [entry for _, entry in sorted(found, key=lambda pair: pair[0])]

    def _comment_entry(self, post: Post, when: int) -> dict[str, Any]:
        """The ``comments`` entry of a comment on our media."""
        value: dict[str, Any] = {
            "from": self._person(post.author_id),
            "media": {"id": post.root, "media_product_type": "FEED"},
            "id": post.id, "text": post.text,
        }
        if post.in_reply_to != post.root:
            value["parent_id"] = post.in_reply_to
        return {"id": self.our_account.id, "time": when,
                "changes": [{"field": "comments", "value": value}]}

    def _entry(self, notification: Notification) -> dict[str, Any] | None:
        us = self.our_account.id
        when = int(notification.created_at.timestamp())
        if notification.kind == "dm":
            message = self.world.message(notification.subject_id)
            return {"time": when * 1000, "id": us, "messaging": [{
                "sender": {"id": message.sender_id}, "recipient": {"id": us},
                "timestamp": int(message.created_at.timestamp() * 1000),
                "message": {"mid": message.id, "text": message.text},
            }]}
        if notification.kind not in ("mention", "reply"):
            return None
        post = self.world.post(notification.subject_id)
        change: dict[str, Any]
        if post.in_reply_to is None:  # a caption that mentions us
            change = {"field": "mentions", "value": {"media_id": post.id}}
        elif self._on_our_media(post):
            return self._comment_entry(post, when)
        else:  # a comment on someone else's media that mentions us
            change = {"field": "mentions",
                      "value": {"comment_id": post.id, "media_id": post.root}}
        return {"id": us, "time": when, "changes": [change]}

    # helpers -------------------------------------------------------------------------

    def _comment(self, request: SandboxRequest, comment_id: str) -> Post:
        post = self.post_or_404(request, comment_id)
        if post.in_reply_to is None:
            raise SandboxAbort(self.bad_request(request, "Param comment_id must be a comment"))
        return post

    def _on_our_media(self, post: Post) -> bool:
        return self.world.post(post.root).author_id == self.our_account.id

    def _no_permission(self) -> SandboxAbort:
        return self._refuse("(#10) Application does not have permission for this action", 10)

    def _write(self, request: SandboxRequest, parent: Post) -> HandlerResult:
        if parent.hidden:
            raise self._refuse("(#100) Cannot reply to a hidden comment", 100)
        text = self.require(request, "message")
        self.check_text(request, text)
        return {"id": self.world.add_post(self.our_account, text, in_reply_to=parent.id).id}

    # routes ------------------------------------------------------------------------

    @route("GET", _V + "/{id}")
    def get_object(self, request: SandboxRequest) -> HandlerResult:
        """Our account (``id,username,name``, or a mentioned comment), a media or a comment."""
        if request.params["id"] == self.our_account.id:
            account = self.our_account
            asked = re.search(r"mentioned_comment\.comment_id\(([^)]+)\)",
                              request.query.get("fields", ""))
            if asked is None:
                return {"id": account.id, "username": account.handle,
                        "name": account.display_name or account.handle}
            comment = self._comment(request, asked.group(1))
            if account.id not in comment.mentions:
                raise SandboxAbort(self.not_found(request))
            shown = self.render_comment(comment)
            return {"mentioned_comment": {k: shown[k] for k in
                                          ("id", "like_count", "text", "timestamp", "username")},
                    "id": account.id}
        post = self._object(request)
        return self.render_media(post) if post.in_reply_to is None else self.render_comment(post)

    @route("GET", _V + "/{id}/media")
    def media(self, request: SandboxRequest) -> HandlerResult:
        """Our media, newest first."""
        self._page(request)
        posts = [p for p in self.world.posts_by(self.our_account) if p.in_reply_to is None]
        posts.sort(key=lambda p: p.seq, reverse=True)
        return self._paged(request, [self.render_media(p) for p in posts])

    @route("GET", _V + "/{id}/comments")
    def comments(self, request: SandboxRequest) -> HandlerResult:
        """The top-level comments on one of our media, newest first."""
        target = self._object(request)
        if target.in_reply_to is not None:
            raise SandboxAbort(self.bad_request(request, "Tried accessing nonexisting field "
                                                         "(comments) on node type (IGComment)"))
        if not self._on_our_media(target):
            raise self._no_permission()
        nested = "replies" in request.query.get("fields", "")
        found = [p for p in self.world.replies_to(target.id) if not p.deleted]
        found.sort(key=lambda p: p.seq, reverse=True)
        return self._paged(request, [self.render_comment(p, nested=nested) for p in found], 50)

    @route("POST", _V + "/{id}/comments")
    def comment(self, request: SandboxRequest) -> HandlerResult:
        """Comment on one of our media; answers ``{"id"}``."""
        target = self._object(request)
        if target.in_reply_to is not None:
            raise SandboxAbort(self.bad_request(request, "Use /replies to answer a comment"))
        if not self._on_our_media(target):
            raise self._no_permission()
        return self._write(request, target)

    @route("GET", _V + "/{id}/replies")
    def replies(self, request: SandboxRequest) -> HandlerResult:
        """The comments below a comment, oldest first."""
        target = self._comment(request, request.params["id"])
        return self._paged(request, [self.render_comment(p)
                                     for p in self._descendants(target.id)], 50)

    @route("POST", _V + "/{id}/replies")
    def reply(self, request: SandboxRequest) -> HandlerResult:
        """Reply to a comment on our media; answers ``{"id"}``."""
        target = self._comment(request, request.params["id"])
        if not self._on_our_media(target):
            raise self._no_permission()
        return self._write(request, target)

    @route("POST", _V + "/{id}/mentions")
    def mentions(self, request: SandboxRequest) -> HandlerResult:
        """Answer a comment (``comment_id``) or a caption (``media_id``) that mentions us."""
        self._page(request)
        media = self.post_or_404(request, self.require(request, "media_id"))
        comment_id = request.field("comment_id")
        target = self._comment(request, comment_id) if comment_id else media
        if target.root != media.root or self.our_account.id not in target.mentions:
            raise self._no_permission()
        return self._write(request, target)

    @route("POST", _V + "/{id}")
    def update(self, request: SandboxRequest) -> HandlerResult:
        """Hide or unhide a comment on one of our media (``hide=true|false``)."""
        post = self._comment(request, request.params["id"])
        hidden = request.field("hide")
        if hidden not in ("true", "false"):
            raise SandboxAbort(self.bad_request(request, "hide is required"))
        if not self._on_our_media(post):
            raise self._no_permission()
        self.world.set_hidden(post.id, hidden == "true", by=self.our_account.id)
        return {"success": True}

    @route("DELETE", _V + "/{id}")
    def delete(self, request: SandboxRequest) -> HandlerResult:
        """Delete our comment, or a comment on one of our media."""
        post = self._comment(request, request.params["id"])
        if post.author_id != self.our_account.id and not self._on_our_media(post):
            raise self._no_permission()
        self.world.delete_post(post.id)
        return {"success": True}

    @route("POST", _V + "/{id}/messages")
    def send(self, request: SandboxRequest) -> HandlerResult:
        """The Send API; a private reply answers a comment on our media, never a media."""
        body = request.json()
        recipient = body.get("recipient") if isinstance(body, dict) else None
        anchor = recipient.get("comment_id") if isinstance(recipient, dict) else None
        if isinstance(anchor, str):
            target = self.post_or_404(request, anchor)
            if target.in_reply_to is None or not self._on_our_media(target):
                raise self._refuse("(#100) Param recipient[comment_id] must be a comment on "
                                   "your media", 100)
        return super().send(request)
