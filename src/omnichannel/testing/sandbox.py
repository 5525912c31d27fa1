"""The sandbox framework: a stateful fake network served in-process or over loopback.

A network's sandbox subclasses [`Sandbox`][omnichannel.testing.sandbox.Sandbox],
declares its endpoints with [`route`][omnichannel.testing.sandbox.route] and
renders the shared [`World`][omnichannel.testing.sandbox.World] into the
network's wire shapes. The base class does the rest: auth, rate limits, text
limits, fault injection, request accounting, an httpx transport, an ASGI app,
uvicorn on loopback, and the scripted customer side.

```python
class ChirpSandbox(Sandbox):
    network = "chirp"
    text_limit = 280

    @route("GET", "/me")
    def me(self, request: SandboxRequest) -> HandlerResult:
        assert request.account is not None
        return self.render_account(request.account)

sandbox = ChirpSandbox(seed=7)
sandbox.customer_mention("hi @shop, my order is late")
async with httpx.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as http:
    ...
```

Long because: the sandbox base class does everything a network's sandbox shares (auth,
limits, faults, transport, ASGI, loopback server, scripted customers) so each network's
sandbox stays small.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

import anyio
import httpx

from ..text import count_graphemes
from ._limits import RateLimits, RateLimitWindow, TokenInfo, Tokens
from ._router import (
    HandlerResult,
    Route,
    Router,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    declared_routes,
    route,
)
from ._transport import Outcome, SandboxASGI, SandboxTransport, serve_async, serve_in_thread
from ._world import (
    Account,
    Change,
    ChangeKind,
    DirectConversation,
    DirectMessage,
    Facet,
    FacetKind,
    IdFactory,
    Like,
    Notification,
    NotificationKind,
    Post,
    PostVisibility,
    RecordKind,
    World,
    parse_facets,
)
from .clock import VirtualClock
from .faults import FaultKind, Faults, route_matcher

__all__ = [
    "Account",
    "AuthFailure",
    "Change",
    "ChangeKind",
    "DirectConversation",
    "DirectMessage",
    "Facet",
    "FacetKind",
    "HandlerResult",
    "IdFactory",
    "Like",
    "Notification",
    "NotificationKind",
    "Outcome",
    "Post",
    "PostVisibility",
    "RateLimitWindow",
    "RateLimits",
    "RecordKind",
    "RecordedRequest",
    "Route",
    "Router",
    "Sandbox",
    "SandboxASGI",
    "SandboxAbort",
    "SandboxRequest",
    "SandboxResponse",
    "SandboxTransport",
    "SentRecord",
    "TokenInfo",
    "Tokens",
    "WebhookDelivery",
    "World",
    "parse_facets",
    "route",
]

AuthFailure = Literal["missing", "invalid", "expired", "revoked"]
"""Why a request's credentials were refused."""

_FRIENDLY = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox received, and what became of it.

    Attributes:
        seq: Request number (from 1).
        method: Upper-case method.
        path: The path.
        route: The matched route template (``""`` if none matched or it was dropped first).
        status: The status answered, or ``None`` when the connection was dropped
            before an answer was made.
        fault: The terminal fault applied, if any.
        applied: Whether the handler ran (its writes happened).
        delivered: Whether the client received the answer.
        account_id: The authenticated account, if any.
        idempotency_key: The ``Idempotency-Key`` header, if sent.
    """

    seq: int
    method: str
    path: str
    route: str
    status: int | None
    fault: FaultKind | None
    applied: bool
    delivered: bool
    account_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class SentRecord:
    """Something our own account created, as the conformance suite inspects it.

    Attributes:
        id: Native id (a post id, or a direct message id).
        kind: ``"post"`` (public or ``direct`` post) or ``"message"`` (in a DM conversation).
        text: The text as stored.
        private: Whether only its recipient can see it.
        in_reply_to: The post it answers (posts only), or the message it quotes.
        recipient: For a private record, the account it is addressed to.
        conversation: The thread root (posts) or the DM conversation id (messages).
        facets: Mentions, links and hashtags, ``str`` spans.
        visibility: The post's visibility (``"direct"`` for messages).
        created_at: When it was created (virtual time).
        deleted: Whether it was deleted since.
        seq: World sequence number.
    """

    id: str
    kind: Literal["post", "message"]
    text: str
    private: bool
    in_reply_to: str | None
    recipient: str | None
    conversation: str | None
    facets: tuple[Facet, ...]
    visibility: PostVisibility
    created_at: datetime
    deleted: bool
    seq: int


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook request the network would send us (body signed as the network signs it).

    Attributes:
        method: The HTTP method.
        path: The path, below the webhook endpoint.
        headers: The headers, signature included.
        body: The body, exactly as signed.
        query: Query parameters (a handshake's challenge...).
    """

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Corruption:
    """Replace list elements that carry ``record_id`` (at any depth) with ``replacement``."""

    record_id: str
    replacement: object

    def _carries(self, value: object) -> bool:
        if isinstance(value, str):
            return value == self.record_id
        if isinstance(value, dict):
            return any(self._carries(v) for v in value.values())
        if isinstance(value, list):
            return any(self._carries(v) for v in value)
        return False

    def apply(self, value: object) -> tuple[object, bool]:
        """Return ``value`` with the outermost list elements carrying the record replaced."""
        if isinstance(value, list):
            out: list[object] = []
            hit = False
            for item in value:
                if isinstance(item, dict) and self._carries(item):
                    out.append(self.replacement)
                    hit = True
                else:
                    item, inner = self.apply(item)
                    out.append(item)
                    hit = hit or inner
            return out, hit
        if isinstance(value, dict):
            hit = False
            copy: dict[str, object] = {}
            for key, item in value.items():
                copy[key], inner = self.apply(item)
                hit = hit or inner
            return copy, hit
        return value, False


class Sandbox:
    """Base of every network sandbox: world, routing, limits, faults and exposure.

    Subclasses set ``network`` and declare handlers with ``@route``; they
    override the hooks (``auth_error``, ``rate_limit_headers``,
    ``rate_limited``, ``server_error``, ``not_found``, ``text_too_long``,
    ``new_id``, ``adapter_settings``...) to answer in the network's exact shapes.

    Args:
        seed: Seeds fault injection (same seed, same faults) and ids.
        clock: The virtual clock (a fresh one by default).
        our_handle: Handle of our own account (default: ``our_handle``).
        base_url: The URL adapters are pointed at for in-process use.

    Attributes:
        world: The records.
        clock: The virtual clock stamping them.
        faults: The fault plan.
        rate_limits: Rate-limit buckets (wall-clock windows).
        tokens: Issued credentials.
        router: The routes.
        our_account: Our own account.
        token: Our account's access token.
        webhook_secret: The secret webhook deliveries are signed with.
        requests: Every request received, in order.
    """

    network: ClassVar[str] = "sandbox"
    our_handle: ClassVar[str] = "shop"
    text_limit: ClassVar[int | None] = None
    """Public text limit enforced by ``check_text`` (``None``: unlimited)."""
    dm_text_limit: ClassVar[int | None] = None
    """Private text limit (``None``: same as ``text_limit``)."""
    default_rate_limit: ClassVar[tuple[int, float]] = (300, 300.0)
    """``(requests, window seconds)`` of every bucket unless configured."""
    create_routes: ClassVar[tuple[str, ...]] = ()
    """Route patterns that create messages (``"POST /api/v1/statuses"``): the
    conformance suite loses their responses and counts requests to them."""

    def __init__(
        self, *, seed: int = 0, clock: VirtualClock | None = None,
        our_handle: str | None = None, base_url: str | None = None,
    ) -> None:
        self.seed = seed
        self.clock = clock or VirtualClock()
        self.base_url = base_url or f"https://{self.network}.sandbox.test"
        self.world = World(clock=self.clock, ids=self.new_id)
        self.faults = Faults(seed=seed)
        limit, window = self.default_rate_limit
        self.rate_limits = RateLimits(limit=limit, window=window)
        self.tokens = Tokens(clock=self.clock)
        self.router = Router()
        self.requests: list[RecordedRequest] = []
        self.webhook_secret = secrets.token_hex(16)
        self._lock = threading.Lock()
        self._seq = 0
        self._id_seq = 100
        self._customers = 0
        self._corruptions: dict[str, _Corruption] = {}
        for spec, handler in declared_routes(self):
            self.router.add(spec.method, spec.template, handler, auth=spec.auth,
                            rate_limit=spec.rate_limit, name=spec.name)
        self.our_account = self.create_account(our_handle or self.our_handle, display_name="Shop")
        self.token = self.tokens.issue(self.our_account.id)
        self.setup()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} network={self.network!r} seed={self.seed}>"

    # hooks a network overrides ---------------------------------------------

    def setup(self) -> None:
        """Called at the end of ``__init__``: add routes or records the network needs."""

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        """Make a native id for a new record (default: increasing decimal strings)."""
        with self._lock:
            self._id_seq += 1
            return str(self._id_seq)

    def make_handle(self, name: str) -> str:
        """Turn a short name (``"alice"``) into a handle on this network."""
        return name

    def mention_of(self, account: Account) -> str:
        """Return how a text mentions ``account`` on this network (default ``@handle``)."""
        return f"@{account.handle}"

    def adapter_settings(self, *, base_url: str | None = None) -> dict[str, object]:
        """Return the settings an adapter needs to talk to this sandbox.

        Args:
            base_url: Where the sandbox is served (``serve()``'s URL); defaults
                to ``self.base_url`` for the in-process transport.
        """
        return {"base_url": base_url or self.base_url, "access_token": self.token}

    def authenticate(self, request: SandboxRequest) -> tuple[Account, str]:
        """Return the account and token of a request on an ``auth=True`` route.

        The default reads ``Authorization: Bearer``.

        Raises:
            SandboxAbort: With ``auth_error(...)`` when the token is missing,
                unknown, expired or revoked.
        """
        token = request.bearer()
        state, info = self.tokens.check(token)
        if state != "valid" or info is None or token is None:
            reason: AuthFailure = "invalid" if state == "valid" else state
            raise SandboxAbort(self.auth_error(request, reason))
        return self.world.account(info.account_id), token

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        """Answer a request whose credentials were refused (the network's 401)."""
        return SandboxResponse.json({"error": f"token {reason}"}, status=401)

    def rate_limit_headers(self, window: RateLimitWindow) -> dict[str, str]:
        """Return the rate-limit headers for a response (default ``X-RateLimit-*``, epoch reset)."""
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining),
            "X-RateLimit-Reset": str(window.reset_epoch),
        }

    def rate_limited(self, request: SandboxRequest, window: RateLimitWindow) -> SandboxResponse:
        """Answer a request over the limit (the network's 429 body and headers)."""
        wait = max(1, round(window.retry_after() + 0.49))
        return SandboxResponse.json(
            {"error": "Too many requests"}, status=429,
            headers={**self.rate_limit_headers(window), "Retry-After": str(wait)},
        )

    def server_error(self, request: SandboxRequest, status: int) -> SandboxResponse:
        """Answer with a server error (injected ``status`` faults use it)."""
        return SandboxResponse.json({"error": "Internal server error"}, status=status)

    def not_found(self, request: SandboxRequest) -> SandboxResponse:
        """Answer a request for an unknown path or record."""
        return SandboxResponse.json({"error": "Record not found"}, status=404)

    def method_not_allowed(self, request: SandboxRequest, allowed: list[str]) -> SandboxResponse:
        """Answer a known path asked with the wrong method."""
        return SandboxResponse.json(
            {"error": "Method not allowed"}, status=405, headers={"Allow": ", ".join(allowed)}
        )

    def bad_request(
        self, request: SandboxRequest, message: str, *, status: int = 400
    ) -> SandboxResponse:
        """Answer an invalid request (validation errors)."""
        return SandboxResponse.json({"error": message}, status=status)

    def text_too_long(
        self, request: SandboxRequest, text: str, *, length: int, limit: int
    ) -> SandboxResponse:
        """Answer a text over the limit (the network's validation error)."""
        return self.bad_request(
            request, f"Text is too long ({length} characters, limit {limit})", status=422
        )

    def count_text(self, text: str, *, private: bool = False) -> int:
        """Count a text the network's way (default: extended grapheme clusters)."""
        return count_graphemes(text)

    def render_webhook(self, notification: Notification) -> WebhookDelivery | None:
        """Render a notification to our account as a signed webhook delivery.

        The default returns ``None``: the network has no webhooks.
        """
        return None

    # helpers for handlers -------------------------------------------------

    def check_text(self, request: SandboxRequest, text: str, *, private: bool = False) -> None:
        """Enforce the text limit.

        Raises:
            SandboxAbort: With ``text_too_long(...)`` when over the limit.
        """
        limit = (self.dm_text_limit or self.text_limit) if private else self.text_limit
        if limit is None:
            return
        length = self.count_text(text, private=private)
        if length > limit:
            raise SandboxAbort(self.text_too_long(request, text, length=length, limit=limit))

    def abort(self, response: SandboxResponse) -> SandboxAbort:
        """Return an exception that answers with ``response`` when raised in a handler."""
        return SandboxAbort(response)

    def require(self, request: SandboxRequest, name: str) -> str:
        """Return a required body or query field.

        Raises:
            SandboxAbort: With ``bad_request(...)`` (422) when it is missing or blank.
        """
        value = request.field(name)
        if value is None or value == "":
            raise SandboxAbort(self.bad_request(request, f"{name} is required", status=422))
        return value

    def post_or_404(self, request: SandboxRequest, post_id: str) -> Post:
        """Return a visible post, or abort with ``not_found``.

        Raises:
            SandboxAbort: The post does not exist or was deleted.
        """
        post = self.world.posts.get(post_id)
        if post is None or post.deleted:
            raise SandboxAbort(self.not_found(request))
        return post

    # the pipeline ---------------------------------------------------------

    async def dispatch(self, request: SandboxRequest) -> Outcome:
        """Run one request through faults, routing, auth, rate limits and its handler.

        Both the in-process transport and the ASGI app call this; a network
        never needs to.
        """
        with self._lock:
            self._seq += 1
            request = request.with_(seq=self._seq)
        decision = self.faults.decide(request.method, request.path)
        if decision.latency > 0:
            await anyio.sleep(decision.latency)
        fault = decision.fault
        key = request.headers.get("idempotency-key")
        if fault is not None and fault.kind in ("reset", "timeout"):
            self._record(RecordedRequest(request.seq, request.method, request.path, "", None,
                                         fault.kind, False, False, None, key))
            return Outcome(SandboxResponse(status=0), drop=fault.kind)
        with self.world.lock:
            response, matched, applied = self._respond(request, fault.kind if fault else None,
                                                       fault.status if fault else 0,
                                                       fault.seconds if fault else 0.0)
        if fault is not None and fault.kind == "status" and fault.retry_after is not None:
            response.headers.setdefault("Retry-After", f"{fault.retry_after:g}")
        if self._corruptions and response.stream is None and response.status < 400:
            response = self._corrupt(response)
        lost = fault is not None and fault.kind == "lost_response"
        self._record(RecordedRequest(
            request.seq, request.method, request.path, matched.route if matched else "",
            response.status, fault.kind if fault else None, applied, not lost,
            matched.account.id if matched and matched.account else None, key,
        ))
        return Outcome(response, drop="lost_response" if lost else None)

    def corrupt_item(
        self, record: Post | DirectMessage | str, *, replacement: object = None,
    ) -> None:
        """Corrupt one record wherever a list in a JSON answer carries it.

        From now on, every successful JSON answer (a poll page, a thread, a
        listing) that has the record inside an element of a list gets that
        whole element replaced by ``replacement``: what a network sends when
        one item of a page is malformed. The default replacement is a string
        naming the record (no network sends a string for an item), so an
        adapter must report it in ``Batch.rejected`` and deliver the rest.
        Webhook deliveries and streams are not changed.

        Args:
            record: The record (or its id) to corrupt.
            replacement: The JSON value put in its place.
        """
        record_id = record if isinstance(record, str) else record.id
        value = f"corrupted item {record_id}" if replacement is None else replacement
        with self._lock:
            self._corruptions[record_id] = _Corruption(record_id, value)

    def _corrupt(self, response: SandboxResponse) -> SandboxResponse:
        if "json" not in response.headers.get("content-type", "").lower():
            return response
        try:
            data = json.loads(response.body)
        except ValueError:
            return response
        changed = False
        for corruption in list(self._corruptions.values()):
            data, hit = corruption.apply(data)
            changed = changed or hit
        if not changed:
            return response
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return SandboxResponse(response.status, body, headers)

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _respond(
        self, request: SandboxRequest, fault: FaultKind | None, status: int, seconds: float
    ) -> tuple[SandboxResponse, SandboxRequest | None, bool]:
        resolved = self.router.resolve(request.method, request.path)
        if isinstance(resolved, list):
            if resolved:
                return self.method_not_allowed(request, resolved), None, False
            return self.not_found(request), None, False
        found, params = resolved
        request = request.with_(params=params, route=found.template)
        if fault == "status":
            return self.server_error(request, status), request, False
        if fault == "rate_limit":
            seen = self.rate_limits.peek(found.rate_limit or "default")
            checked = seen.checked_at or datetime.now(UTC)
            forced = RateLimitWindow(seen.bucket, seen.limit, 0,
                                     checked + timedelta(seconds=seconds), seen.window, checked)
            return self.rate_limited(request, forced), request, False
        window: RateLimitWindow | None = None
        applied = False
        try:
            if found.auth:
                account, token = self.authenticate(request)
                request = request.with_(account=account, token=token)
            if found.rate_limit is not None:
                allowed, window = self.rate_limits.take(found.rate_limit)
                if not allowed:
                    return self.rate_limited(request, window), request, False
            applied = True
            result = found.handler(request)
            response = (
                result if isinstance(result, SandboxResponse) else SandboxResponse.json(result)
            )
        except SandboxAbort as abort:
            response = abort.response
        if window is not None:
            for name, value in self.rate_limit_headers(window).items():
                response.headers.setdefault(name, value)
        return response, request, applied

    # exposure -------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """Return an httpx transport answering from this sandbox in-process."""
        return SandboxTransport(self)

    @property
    def asgi(self) -> SandboxASGI:
        """This sandbox as a plain ASGI app (what uvicorn serves)."""
        return SandboxASGI(self)

    def client(self, *, base_url: str | None = None, **kwargs: object) -> httpx.AsyncClient:
        """Return an ``httpx.AsyncClient`` on the in-process transport, authenticated as us."""
        return httpx.AsyncClient(
            transport=self.transport(), base_url=base_url or self.base_url,
            headers=dict(self.auth_headers()), **kwargs,  # type: ignore[arg-type]
        )

    def serve(
        self, *, host: str = "127.0.0.1", port: int = 0
    ) -> contextlib.AbstractAsyncContextManager[str]:
        """Serve the sandbox over real HTTP with uvicorn (``async with``); yields the base URL.

        The server runs in a background thread, so it works under asyncio and
        trio alike. Needs the ``server`` extra (uvicorn).
        """
        return serve_async(self.asgi, host=host, port=port)

    @contextlib.contextmanager
    def serve_in_thread(self, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve the sandbox over real HTTP from synchronous code; yields the base URL."""
        with serve_in_thread(self.asgi, host=host, port=port) as url:
            yield url

    # accounts and the customer side ---------------------------------------

    def create_account(self, handle: str, *, display_name: str | None = None) -> Account:
        """Create an account on the network (our own, or a customer's)."""
        return self.world.add_account(self.make_handle(handle), display_name=display_name)

    def customer(self, name: str | None = None, *, display_name: str | None = None) -> Account:
        """Create a customer account; without a name, the next of alice, bob, carol..."""
        with self._lock:
            self._customers += 1
            n = self._customers
        if name is None:
            name = _FRIENDLY[n - 1] if n <= len(_FRIENDLY) else f"customer{n}"
        found = self.world.account_by_handle(self.make_handle(name), exact=True)
        return found or self.create_account(name, display_name=display_name)

    def _author(self, author: Account | None) -> Account:
        return author or self.customer()

    def customer_mention(
        self, text: str = "", *, author: Account | None = None,
        visibility: PostVisibility = "public",
    ) -> Post:
        """A customer publishes a post mentioning our account.

        If ``text`` does not mention us (``mention_of(our_account)``), the
        mention is put in front.
        """
        who = self._author(author)
        ours = self.mention_of(self.our_account)
        if ours not in text:
            text = f"{ours} {text}".rstrip()
        return self.world.add_post(who, text, visibility=visibility)

    def customer_reply(
        self, to: Post | str, text: str, *, author: Account | None = None
    ) -> Post:
        """A customer replies in a thread (to our reply, our post, or anyone's post)."""
        parent = self.world.post(to if isinstance(to, str) else to.id)
        visibility: PostVisibility = "direct" if parent.visibility == "direct" else "public"
        return self.world.add_post(self._author(author), text, in_reply_to=parent.id,
                                   visibility=visibility)

    def customer_comment(self, on: Post | str, text: str, *, author: Account | None = None) -> Post:
        """A customer comments on a post (usually ``our_post(...)``)."""
        return self.customer_reply(on, text, author=author)

    def customer_dm(self, text: str, *, author: Account | None = None) -> Post | DirectMessage:
        """A customer sends our account a direct message.

        The default writes into a direct conversation; networks whose DMs
        are posts (Mastodon) override this.
        """
        who = self._author(author)
        convo = self.world.conversation_between(who, self.our_account)
        if convo is None:  # pragma: no cover - create=True always returns one
            raise RuntimeError("no conversation")
        return self.world.add_message(who, convo.id, text)

    def customer_edit(self, record: Post | DirectMessage | str, text: str) -> Post:
        """A customer edits a post they wrote.

        Raises:
            KeyError: No such post.
        """
        post_id = record if isinstance(record, str) else record.id
        return self.world.edit_post(post_id, text)

    def customer_delete(self, record: Post | DirectMessage | str) -> None:
        """A customer deletes a post or a direct message they wrote."""
        record_id = record if isinstance(record, str) else record.id
        if record_id in self.world.posts:
            self.world.delete_post(record_id)
        else:
            self.world.delete_message(record_id)

    def customer_like(self, post: Post | str, *, author: Account | None = None) -> Like:
        """A customer likes a post."""
        return self.world.like(self._author(author), post if isinstance(post, str) else post.id)

    def our_post(self, text: str, *, visibility: PostVisibility = "public") -> Post:
        """Create a post by our account directly (customers then comment on it)."""
        return self.world.add_post(self.our_account, text, visibility=visibility)

    # inspection -----------------------------------------------------------

    def sent(self, *, include_deleted: bool = False) -> list[SentRecord]:
        """Return what our account created (posts and direct messages), oldest first."""
        us = self.our_account.id
        out: list[SentRecord] = []
        for post in self.world.posts_by(us, include_deleted=include_deleted):
            private = post.visibility == "direct"
            recipient = next((m for m in post.mentions if m != us), None) if private else None
            out.append(SentRecord(
                post.id, "post", post.text, private, post.in_reply_to, recipient, post.root,
                post.facets, post.visibility, post.created_at, post.deleted, post.seq,
            ))
        for message in self.world.messages_by(us, include_deleted=include_deleted):
            convo = self.world.conversations[message.conversation_id]
            others = convo.others(us)
            reply_to = message.extra.get("reply_to")
            out.append(SentRecord(
                message.id, "message", message.text, True,
                reply_to if isinstance(reply_to, str) else None, others[0] if others else None,
                convo.id, message.facets, "direct", message.created_at, message.deleted,
                message.seq,
            ))
        return sorted(out, key=lambda r: r.seq)

    def reactions(self) -> list[Like]:
        """Return the likes/reactions our account made, oldest first."""
        return self.world.likes_by(self.our_account)

    def is_hidden(self, post: Post | str) -> bool:
        """Whether a post is hidden.

        Raises:
            KeyError: No such post.
        """
        return self.world.post(post if isinstance(post, str) else post.id).hidden

    def request_count(self, pattern: str = "*", *, applied_only: bool = False) -> int:
        """Count requests matching ``"[METHOD ]/path"`` (see ``faults.route_matcher``)."""
        rx = route_matcher(pattern)
        return sum(
            1 for r in list(self.requests)
            if rx.match(f"{r.method} {r.path}") and (r.applied or not applied_only)
        )

    def served(self, status: int, pattern: str = "*") -> int:
        """Count responses with ``status`` the client received, for matching requests."""
        rx = route_matcher(pattern)
        return sum(
            1 for r in list(self.requests)
            if r.status == status and r.delivered and rx.match(f"{r.method} {r.path}")
        )

    def webhook_deliveries(self, *, after_seq: int = 0) -> list[WebhookDelivery]:
        """Render our notifications after ``after_seq`` as webhook deliveries.

        Empty when the network has no webhooks (``render_webhook`` returns ``None``).
        """
        out: list[WebhookDelivery] = []
        for notification in self.world.notifications_for(self.our_account, after_seq=after_seq):
            delivery = self.render_webhook(notification)
            if delivery is not None:
                out.append(delivery)
        return out

    def exhaust_rate_limits(self, *, reset_in: float = 1.0) -> None:
        """Use up every bucket a route draws from, until ``reset_in`` seconds from now."""
        for bucket in {r.rate_limit for r in self.router.routes if r.rate_limit is not None}:
            self.rate_limits.exhaust(bucket, reset_in=reset_in)

    def revoke_credentials(self) -> None:
        """Revoke our account's credentials: the adapter's next request is refused.

        The default revokes ``token``; networks with sessions (app passwords,
        refresh tokens) override it to revoke those too.
        """
        self.tokens.revoke(self.token)

    def token_info(self, token: str | None = None) -> TokenInfo | None:
        """Return what the sandbox knows of a token (default: ours)."""
        return self.tokens.lookup(token or self.token)

    def expire_token(self, token: str | None = None) -> None:
        """Expire a token (default: ours); the next request with it gets ``auth_error``."""
        self.tokens.expire(token or self.token)

    def auth_headers(self) -> Mapping[str, str]:
        """Return the headers a raw client needs to act as our account."""
        return {"Authorization": f"Bearer {self.token}"}

