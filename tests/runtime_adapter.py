"""A minimal network adapter and its fake network, local to the runtime tests.

``testnet`` is not a real network: it exists to prove the hub, the outbox and
the webhook app against the adapter contract without waiting for the shipped
adapters. [`FakeNetwork`][] is a plain ASGI application that keeps its own
state (customer messages to poll, what we posted, per idempotency key) and can
inject faults: a write that is committed but whose response is lost, a 503, a
429. [`RuntimeAdapter`][] talks to it over HTTP through ``omnichannel.http``,
either in process (``FakeNetwork.transport()``) or over a real socket when the
fake network is served by uvicorn (``serve_in_thread``).

Wire format (test-local, invented here on purpose: no real network speaks it):

- ``GET /me`` -> ``{"id", "handle"}``
- ``GET /events?after=<cursor>&limit=<n>`` -> ``{"events": [item...], "cursor", "more"}``
- ``POST /messages`` ``{"key", "text", "in_reply_to", "conversation", "visibility",
  "private_to"}`` -> ``201 {"id", "conversation", "created_at"}``
- ``GET /messages?key=<key>`` -> ``{"messages": [...]}``
- ``GET /conversations/<id>`` -> ``{"messages": [item...]}``
- ``POST /reactions`` ``{"target", "reaction"}``; ``POST /hidden`` ``{"target", "hidden"}``
- webhooks: ``POST`` ``{"events": [item...]}`` signed with header
  ``x-testnet-signature: <hex HMAC-SHA256(secret, body)>``; handshake
  ``GET ?challenge=<c>&token=<verify token>`` answered with ``<c>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar
from urllib.parse import parse_qs

import anyio
import httpx
from pydantic import SecretStr

from omnichannel.actions import Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import (
    Adapter,
    AdapterSettings,
    Batch,
    Rejected,
    WebhookRequest,
    WebhookResponse,
)
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    DuplicateContent,
    OmnichannelError,
    PayloadError,
    WebhookSignatureError,
)
from omnichannel.events import Event, MessageReceived, ReactionAdded, event_id
from omnichannel.http import ApiClient, RetryPolicy, open_client
from omnichannel.hub import Hub
from omnichannel.model import Conversation, Message, Person, Ref
from omnichannel.text import TextRule

NETWORK = "testnet"
SIGNATURE_HEADER = "x-testnet-signature"
US = "us"

_Scope = MutableMapping[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def sign(body: bytes, secret: str) -> str:
    """Return the testnet signature of ``body``: hex HMAC-SHA256 with ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the fake network


class FakeNetwork:
    """A stateful fake of the testnet API, servable in process or on a socket.

    Attributes:
        inbox: Customer items (messages, reactions), oldest first; polling reads it.
        posted: What we created, in order.
        created: How many messages each idempotency key created (the exactly-once count).
        attempts: How many ``POST /messages`` each key reached the network with.
        reactions: Reactions we sent, counted by ``(target, reaction)``.
        hidden: Hidden state per target id.
        polled_after: The ``after`` cursor of every ``GET /events``, in order.
        poll_log: Who polled (the ``by`` parameter, ``RuntimeSettings.poller``) and
            when (``time.monotonic()`` on arrival), for every ``GET /events``.
        effects: How many times each key's side effect (``POST /effects``, a
            handler's own call) took effect: a repeat of a key is answered with
            the first, as a network that deduplicates by key does.
        effect_calls: How many ``POST /effects`` each key reached the network with.
        faults: Faults for the next ``POST /messages`` calls, consumed in order:
            ``"lose"`` (commit, then drop the response), ``"503"`` (refuse,
            nothing committed), ``"429"`` (rate limited for an hour, nothing
            committed), ``"422"`` (refused for good), ``"duplicate"`` (409, the
            network refuses a repeat of an earlier post), ``"garble"`` (commit,
            then answer 201 with a body that is not a message).
    """

    def __init__(
        self,
        *,
        secret: str = "whsec-test",  # noqa: S107 - a test secret
        verify_token: str = "verify-me",  # noqa: S107 - a test token
        lose_rate: float = 0.0,
        refuse_rate: float = 0.0,
        latency: float = 0.0,
        seed: int = 0,
        native_idempotency: bool = False,
    ) -> None:
        self.secret = secret
        self.verify_token = verify_token
        self.lose_rate = lose_rate
        self.refuse_rate = refuse_rate
        self.latency = latency
        self.native_idempotency = native_idempotency
        self.inbox: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.created: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.reactions: Counter[tuple[str, str]] = Counter()
        self.hidden: dict[str, bool] = {}
        self.faults: deque[str] = deque()
        self.polls = 0
        self.polled_after: list[int] = []
        self.poll_log: list[tuple[str, float]] = []
        self.effects: Counter[str] = Counter()
        self.effect_calls: Counter[str] = Counter()
        self.refused = 0
        self.lost_responses = 0
        self.fail_polls = 0
        self.lookups = 0
        self.found = 0
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not secrets
        self._lock = threading.Lock()
        self._next_id = 0

    # customers -----------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    def message_item(
        self,
        text: str,
        *,
        author: str = "alice",
        conversation: str | None = None,
        visibility: str = "public",
        created_at: datetime | None = None,
        in_reply_to: str | None = None,
    ) -> dict[str, Any]:
        """Build a customer message item without publishing it (for webhooks)."""
        with self._lock:
            item_id = self._new_id("m")
        return {
            "type": "message",
            "id": item_id,
            "conversation": conversation
            or (f"dm-{author}" if visibility == "private" else item_id),
            "kind": "direct" if visibility == "private" else "thread",
            "author": {"id": f"u-{author}", "handle": author},
            "text": text,
            "visibility": visibility,
            "in_reply_to": in_reply_to,
            "created_at": (created_at or _now()).isoformat(),
        }

    def customer_says(self, text: str, **options: Any) -> dict[str, Any]:
        """Publish a customer message that polling will return; return its item."""
        item = self.message_item(text, **options)
        with self._lock:
            self.inbox.append(item)
        return item

    def publish(self, item: dict[str, Any]) -> None:
        """Make an item built with ``message_item`` visible to polling too."""
        with self._lock:
            self.inbox.append(item)

    def customer_reacts(self, target: str, *, author: str = "bob") -> dict[str, Any]:
        """Publish a customer's like of message ``target``."""
        item = {
            "type": "reaction",
            "id": self._new_id("r"),
            "target": target,
            "author": {"id": f"u-{author}", "handle": author},
            "reaction": "like",
            "created_at": _now().isoformat(),
        }
        with self._lock:
            self.inbox.append(item)
        return item

    def webhook_body(self, items: Sequence[dict[str, Any]]) -> bytes:
        """Return the webhook body delivering ``items``."""
        return json.dumps({"events": list(items)}).encode("utf-8")

    def signed(self, body: bytes, *, secret: str | None = None) -> dict[str, str]:
        """Return the headers of a webhook delivery of ``body``."""
        return {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(body, secret if secret is not None else self.secret),
        }

    # ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: _Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        method = scope["method"]
        path = scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, payload, lose = await self._route(method, path, query, headers, body)
        data = json.dumps(payload).encode()
        extra = [(b"x-fake-dropped", b"1")] if lose else []
        if status == 429:
            extra.append((b"retry-after", b"3600"))
        length = len(data) + (64 if lose else 0)  # a lost response: the body never completes
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(length).encode()),
                *extra,
            ],
        })
        await send({"type": "http.response.body", "body": data})

    async def _route(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Any, bool]:
        if method == "GET" and path == "/me":
            return 200, {"id": US, "handle": "shop"}, False
        if method == "GET" and path == "/events":
            with self._lock:
                failing = self.fail_polls > 0
                self.fail_polls = max(0, self.fail_polls - 1)
            if failing:
                return 500, {"error": "outage"}, False
            return (200, self._events(query), False)
        if method == "POST" and path == "/messages":
            return await self._post_message(json.loads(body), headers)
        if method == "POST" and path == "/effects":
            key = json.loads(body)["key"]
            with self._lock:
                self.effect_calls[key] += 1
                if not self.effects[key]:
                    self.effects[key] = 1
            return 200, {"key": key}, False
        if method == "GET" and path == "/messages":
            key = query.get("key", "")
            with self._lock:
                self.lookups += 1
                found = [p for p in self.posted if p["key"] == key]
                self.found += bool(found)
            return 200, {"messages": found}, False
        if method == "GET" and path.startswith("/conversations/"):
            conversation = path.removeprefix("/conversations/")
            with self._lock:
                items = [i for i in self.inbox if i.get("conversation") == conversation]
            return 200, {"messages": items}, False
        if method == "POST" and path == "/reactions":
            data = json.loads(body)
            with self._lock:
                self.reactions[(data["target"], data["reaction"])] += 1
            return 200, {"ok": True}, False
        if method == "POST" and path == "/hidden":
            data = json.loads(body)
            with self._lock:
                self.hidden[data["target"]] = bool(data["hidden"])
            return 200, {"ok": True}, False
        return 404, {"error": "not found"}, False

    def _events(self, query: Mapping[str, str]) -> dict[str, Any]:
        after = int(query.get("after") or 0)
        limit = int(query.get("limit") or 50)
        with self._lock:
            self.polls += 1
            self.polled_after.append(after)
            self.poll_log.append((query.get("by", ""), time.monotonic()))
            page = self.inbox[after : after + limit]
            more = len(self.inbox) > after + limit
        return {"events": page, "cursor": str(after + len(page)), "more": more}

    async def _post_message(
        self, data: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, Any, bool]:
        key = data["key"]
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.refuse_rate > 0 and self._rng.random() < self.refuse_rate:
                fault = "503"  # refused before committing anything
                self.refused += 1
            self.attempts[key] += 1
        if fault == "503":
            return 503, {"error": "unavailable"}, False
        if fault == "429":
            return 429, {"error": "slow down"}, False
        if fault == "422":
            return 422, {"error": "refused"}, False
        if fault == "duplicate":
            return 409, {"error": "duplicate"}, False
        if self.latency:
            await anyio.sleep(self.latency * self._rng.random())
        with self._lock:
            existing = next((p for p in self.posted if p["key"] == key), None)
            if existing is not None and self.native_idempotency and headers.get("idempotency-key"):
                record = existing
            else:
                record = {
                    "id": self._new_id("p"),
                    "key": key,
                    "text": data["text"],
                    "conversation": data.get("conversation") or (
                        f"dm-{data['private_to']}" if data.get("private_to") else None
                    ),
                    "in_reply_to": data.get("in_reply_to"),
                    "visibility": data.get("visibility", "public"),
                    "created_at": _now().isoformat(),
                }
                if record["conversation"] is None:
                    record["conversation"] = record["id"]
                self.posted.append(record)
                self.created[key] += 1
            lose = fault == "lose" or (self.lose_rate > 0 and self._rng.random() < self.lose_rate)
            self.lost_responses += lose
        if self.latency:
            await anyio.sleep(self.latency * self._rng.random())
        if fault == "garble":
            return 201, {"created": True}, False
        return 201, record, lose

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport to this fake network; lost responses raise ``ReadError``."""
        return _LosingTransport(httpx.ASGITransport(app=self))

    # serving -------------------------------------------------------------------


class _LosingTransport(httpx.AsyncBaseTransport):
    """Turns a response the fake network marked as lost into a dropped connection."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.headers.get("x-fake-dropped"):
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yield its URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="critical", access_log=False
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --------------------------------------------------------------------------- the adapter


def _map_error(response: httpx.Response) -> OmnichannelError | None:
    if response.status_code == 409:
        return DuplicateContent("duplicate post", network=NETWORK, status=409)
    return None


class RuntimeSettings(AdapterSettings):
    """Settings of the test-local adapter."""

    base_url: str = "http://testnet.invalid"
    webhook_secret: SecretStr = SecretStr("whsec-test")
    verify_token: SecretStr = SecretStr("verify-me")
    poll_interval: float = 0.02
    page_size: int = 50
    timeout: float = 5.0
    poller: str = ""  # sent as ``by`` with each poll, so the fake network can tell pollers apart


class RuntimeAdapter(Adapter):
    """The test-local ``testnet`` adapter: polling, webhooks, replies, reactions, hide."""

    network: ClassVar[str] = NETWORK
    capabilities = Capabilities(
        text=TextRule.code_points(280),
        private_reply=True,
        private_reply_window=timedelta(days=7),
        reactions=("like",),
        hide=True,
        inbound=frozenset({"poll", "webhook"}),
    )
    settings_model: ClassVar[type[AdapterSettings]] = RuntimeSettings
    signature_headers: ClassVar[frozenset[str]] = frozenset({SIGNATURE_HEADER})

    def __init__(
        self,
        settings: RuntimeSettings | Mapping[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(settings if settings is not None else RuntimeSettings(),
                         transport=transport)
        self._stack: AsyncExitStack | None = None
        self._client: ApiClient | None = None
        self.opened = 0
        self.closed = 0

    @property
    def conf(self) -> RuntimeSettings:
        """The settings, typed."""
        assert isinstance(self.settings, RuntimeSettings)
        return self.settings

    @property
    def client(self) -> ApiClient:
        """The open API client."""
        assert self._client is not None, "adapter not open"
        return self._client

    async def open(self) -> None:
        """Open the client and resolve our account."""
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            open_client(
                network=self.network, base_url=self.conf.base_url, transport=self.transport,
                retry=RetryPolicy.testing(attempts=2), timeout=self.conf.timeout,
                error_mapper=_map_error,
            )
        )
        me = (await self.client.request("GET", "/me")).json()
        self.account = Person(ref=Ref(network=self.network, id=me["id"]), handle=me["handle"])
        self.opened += 1

    async def aclose(self) -> None:
        """Close the client."""
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
            self.closed += 1

    # inbound -------------------------------------------------------------------

    async def poll(self, cursor: str | None) -> Batch:
        """Fetch the next page of customer items."""
        params = {"after": cursor or "0", "limit": str(self.conf.page_size)}
        if self.conf.poller:
            params["by"] = self.conf.poller
        response = await self.client.request("GET", "/events", params=params)
        data = response.json()
        events: list[Event] = []
        rejected: list[Rejected] = []
        for index, item in enumerate(data["events"]):
            try:
                events.append(self._event(item, f"events.{index}"))
            except PayloadError as exc:  # skipped and reported: the page goes on
                rejected.append(Rejected.from_error(exc, item))
        return Batch(
            events=tuple(events), cursor=data["cursor"], more=bool(data["more"]),
            rejected=tuple(rejected),
        )

    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Answer the challenge handshake, or check a delivery's signature."""
        if request.method == "GET":
            challenge = request.query.get("challenge")
            token = request.query.get("token")
            if challenge is None:
                return None
            if token is None:
                raise WebhookSignatureError("verify token missing", network=self.network,
                                            missing=True)
            expected = self.conf.verify_token.get_secret_value()
            if not hmac.compare_digest(token.encode(), expected.encode()):
                raise WebhookSignatureError("verify token wrong", network=self.network)
            return WebhookResponse(body=challenge.encode("utf-8"))
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookSignatureError("signature missing", network=self.network, missing=True)
        expected = sign(request.body, self.conf.webhook_secret.get_secret_value())
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookSignatureError("signature wrong", network=self.network)
        return None

    def parse(self, request: WebhookRequest) -> Sequence[Event]:
        """Turn a verified delivery into events."""
        try:
            data = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON", network=self.network) from None
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise PayloadError("expected an object with an events list", network=self.network,
                               path="events")
        return [self._event(item, f"events.{i}") for i, item in enumerate(data["events"])]

    def _event(self, item: Any, path: str) -> Event:
        try:
            author = Person(
                ref=Ref(network=self.network, id=item["author"]["id"]),
                handle=item["author"]["handle"],
            )
            created = datetime.fromisoformat(item["created_at"])
            if item["type"] == "reaction":
                target = Ref(network=self.network, id=item["target"])
                return ReactionAdded(
                    id=event_id("reaction.added", target, author.ref.id),
                    network=self.network, account=US, occurred_at=created, target=target,
                    by=author, reaction=item["reaction"],
                )
            message = self._message(item, author, created)
            conversation = Conversation(
                ref=message.conversation, kind=item["kind"],
                account=Ref(network=self.network, id=US), participants=(author,),
            )
            return MessageReceived(
                id=event_id("message.received", message.ref), network=self.network,
                account=US, occurred_at=created, message=message, conversation=conversation,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"bad item ({type(exc).__name__})", network=self.network,
                               path=path) from None

    def _message(self, item: Mapping[str, Any], author: Person, created: datetime) -> Message:
        return Message(
            ref=Ref(network=self.network, id=item["id"]),
            conversation=Ref(network=self.network, id=item["conversation"]),
            author=author, text=item["text"], created_at=created,
            visibility=item["visibility"],
            in_reply_to=Ref(network=self.network, id=item["in_reply_to"])
            if item.get("in_reply_to") else None,
            from_us=author.ref.id == US,
        )

    async def fetch_conversation(self, ref: Ref, *, limit: int = 50) -> Sequence[Message]:
        """Fetch a conversation's customer messages."""
        response = await self.client.request(
            "GET", "/conversations/{id}", path_params={"id": ref.id}
        )
        messages = []
        for item in response.json()["messages"][:limit]:
            event = self._event(item, "messages")
            if isinstance(event, MessageReceived):
                messages.append(event.message)
        return messages

    # outbound ------------------------------------------------------------------

    def _headers(self, action: Reply | PrivateReply | Post) -> dict[str, str] | None:
        return None

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Create a message on the fake network."""
        body: dict[str, Any] = {"key": action.idempotency_key, "text": action.text}
        if isinstance(action, Reply):
            body |= {
                "in_reply_to": action.to.ref.id,
                "conversation": action.to.conversation.id,
                "visibility": action.visibility or action.to.visibility,
            }
        elif isinstance(action, PrivateReply):
            body |= {
                "in_reply_to": action.to.ref.id,
                "private_to": action.to.author.ref.id,
                "visibility": "private",
            }
        else:
            body |= {"visibility": action.visibility}
        response = await self.client.request(
            "POST", "/messages", json=body, headers=self._headers(action)
        )
        return self._sent(action.idempotency_key, response.json())

    def _sent(self, key: str, record: Mapping[str, Any]) -> Sent:
        if not isinstance(record.get("id"), str):
            raise PayloadError("a message without an id", network=self.network, path="id")
        return Sent(
            idempotency_key=key,
            ref=Ref(network=self.network, id=record["id"]),
            conversation=Ref(network=self.network, id=record["conversation"]),
            sent_at=datetime.fromisoformat(record["created_at"]),
        )

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look the action's key up on the fake network."""
        response = await self.client.request(
            "GET", "/messages", params={"key": action.idempotency_key}
        )
        found = response.json()["messages"]
        return self._sent(action.idempotency_key, found[0]) if found else None

    async def react(self, action: React) -> Sent:
        """Like a message."""
        await self.client.request(
            "POST", "/reactions", json={"target": action.target.id, "reaction": action.reaction},
            idempotent=True,
        )
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)

    async def hide(self, action: Hide) -> Sent:
        """Hide or unhide a message."""
        await self.client.request(
            "POST", "/hidden", json={"target": action.target.id, "hidden": action.hidden},
            idempotent=True,
        )
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)


class NativeIdempotentAdapter(RuntimeAdapter):
    """The same adapter on a network that deduplicates writes by ``Idempotency-Key``."""

    capabilities = RuntimeAdapter.capabilities.model_copy(
        update={"native_idempotency": True}
    )

    def _headers(self, action: Reply | PrivateReply | Post) -> dict[str, str] | None:
        return {"Idempotency-Key": action.idempotency_key}


# --------------------------------------------------------------------------- test helpers


class FakeClock:
    """A clock that only moves when told to (``advance``).

    It starts at the wall-clock time, so that times computed by layers on the
    real clock (a rate-limit reset from a ``Retry-After``) fit with it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or _now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


def adapter_for(
    fake: FakeNetwork, cls: type[RuntimeAdapter] = RuntimeAdapter, **settings: Any
) -> RuntimeAdapter:
    """A testnet adapter wired to ``fake`` in process (``settings`` override the defaults)."""
    return cls(
        RuntimeSettings(webhook_secret=SecretStr(fake.secret),
                        verify_token=SecretStr(fake.verify_token), **settings),
        transport=fake.transport(),
    )


@asynccontextmanager
async def running(hub: Hub, **run_options: Any) -> AsyncIterator[Hub]:
    """Enter ``hub`` and run it in a task group; stop it on leaving."""
    async with hub, anyio.create_task_group() as tg:
        await tg.start(partial(hub.run, **run_options))
        yield hub
        tg.cancel_scope.cancel()


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, limit: float = 5.0
) -> None:
    """Wait until ``check()`` is true (a safety limit fails the test; nothing is timed)."""
    with anyio.fail_after(limit):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(0.005)


def received(
    fake: FakeNetwork, adapter: RuntimeAdapter, text: str = "hello", **options: Any
) -> Message:
    """A customer message as the adapter parses it (published on the fake network too)."""
    item = fake.customer_says(text, **options)
    [event] = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
    assert isinstance(event, MessageReceived)
    return event.message
