"""The adapters' parsers as fuzz targets, seeded from the recorded vectors.

Shared by ``tests/test_fuzz_adapters.py`` (a few thousand inputs) and
``bench/fuzz_adapters.py`` (100,000 and more per target). Each target takes
the mutated body (and its seed's context: an endpoint path, a webhook body)
and runs the code the adapter runs on what the network sends: ``parse_payload``,
``poll`` over a transport that answers the body, the stream's per-event
decoding, the Chirp, Meta and X webhooks' ``verify`` and ``parse``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from omnichannel.adapter import Batch, WebhookRequest, convert_item
from omnichannel.errors import PayloadError, WebhookSignatureError
from omnichannel.http import RetryPolicy
from omnichannel.testing.fuzz import FuzzReport, Seed, fuzz_async
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky._jetstream import JetstreamFilter
from omnichannel_bluesky._jetstream import _time_us as line_time_us
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon._convert import Converter
from omnichannel_mastodon._stream import iter_events
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_x import XAdapter
from omnichannel_x.sandbox import XSandbox
from omnichannel_x.webhooks import SIGNATURE_HEADER
from omnichannel_x.webhooks import sign as x_sign

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"
TUTORIAL = REPO / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel_chirp import ChirpAdapter  # noqa: E402

Call = Callable[[bytes, str], Awaitable[object]]
BASE = "https://fuzz.example"
OUR_DID = "did:plc:z72i7hdynmk6r22z27h6tvur"  # replied to in the golden Jetstream file
CHIRP_SECRET = "fuzz-secret"


@dataclass(frozen=True)
class Target:
    """A parser to fuzz: its seeds, how to set it up, what it may raise."""

    name: str
    seeds: list[Seed]
    open: Callable[[], AbstractAsyncContextManager[Call]]
    allowed: tuple[type[BaseException], ...] = (PayloadError,)


def _interactions(network: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((VECTORS / network / "decoded").glob("*.json")):
        found.extend(json.loads(path.read_text("utf-8"))["interactions"])
    return found


def _pages(body: Any, size: int) -> list[Any]:
    """A recorded page cut into pages of ``size`` items (mutating a small page is faster)."""
    if isinstance(body, list) and len(body) > size:
        return [body[i : i + size] for i in range(0, len(body), size)]
    if isinstance(body, dict):
        for key in ("notifications", "logs", "messages"):
            items = body.get(key)
            if isinstance(items, list) and len(items) > size:
                return [{**body, key: items[i : i + size]} for i in range(0, len(items), size)]
    return [body]


def _get_answers(network: str, *, only: str | None = None, size: int = 5) -> list[Seed]:
    """Seeds from the successful GET answers of a network's decoded cassettes."""
    seeds = []
    for interaction in _interactions(network):
        if interaction["method"] != "GET" or not 200 <= int(interaction["status"]) < 300:
            continue
        parts = urlsplit(interaction["uri"])
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if only is not None and not parts.path.endswith(only):
            continue
        body = interaction["response_body"]
        if isinstance(body, str):
            seeds.append(Seed(body.encode("utf-8"), path))
        else:
            seeds.extend(Seed(json.dumps(page).encode(), path) for page in _pages(body, size))
    return seeds


def _jetstream_chunks(size: int = 3) -> list[Seed]:
    lines: list[bytes] = []
    for name in ("jetstream__golden_v1.jsonl", "jetstream__expected_v1.jsonl"):
        lines.extend(x for x in (VECTORS / "bluesky" / name).read_bytes().splitlines() if x)
    return [Seed(b"\n".join(lines[i : i + size]), "wss://jetstream.example/subscribe")
            for i in range(0, len(lines), size)]


# mastodon ----------------------------------------------------------------------------


def _recorded(network: str, path_end: str) -> Any:
    for interaction in _interactions(network):
        path = urlsplit(interaction["uri"]).path.rstrip("/")
        if path.endswith(path_end) and int(interaction["status"]) == 200:
            return interaction["response_body"]
    raise LookupError(path_end)


@asynccontextmanager
async def _parse_payload(cls: type[MastodonAdapter] | type[BlueskyAdapter]) -> AsyncIterator[Call]:
    async def call(body: bytes, path: str) -> object:
        return cls.parse_payload(body, path=path or None)
    yield call


@asynccontextmanager
async def _mastodon_poll() -> AsyncIterator[Call]:
    me, instance = _recorded("mastodon", "verify_credentials"), _recorded("mastodon", "/instance")
    current = {"body": b"[]"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("verify_credentials"):
            return httpx.Response(200, json=me)
        if request.url.path.endswith("/instance"):
            return httpx.Response(200, json=instance)
        return httpx.Response(200, content=current["body"])

    adapter = MastodonAdapter({"base_url": BASE, "access_token": "t", "resolve_threads": False},
                              transport=httpx.MockTransport(answer),
                              retry=RetryPolicy.testing(attempts=1))
    async with adapter:
        async def call(body: bytes, _: str) -> object:
            current["body"] = body
            batch = await adapter.poll("19")
            # The cursor it gives must work for the next poll.
            return [batch, await adapter.poll(batch.cursor)]
        yield call


@asynccontextmanager
async def _mastodon_stream() -> AsyncIterator[Call]:
    adapter = MastodonAdapter({"base_url": BASE, "access_token": "t", "resolve_threads": False})
    adapter._converter = Converter(our_id="1")

    async def call(body: bytes, _: str) -> object:
        batches: list[Batch] = []
        text = body.decode("utf-8", "replace")  # the SSE reader gets decoded lines
        for sse in iter_events(text.splitlines()):
            batch = await adapter._stream_batch(sse)
            if batch is not None:
                batches.append(batch)
        return batches

    yield call


# bluesky -----------------------------------------------------------------------------


def _bluesky_answer(current: dict[str, bytes | None]) -> Callable[[httpx.Request], httpx.Response]:
    session = {"did": OUR_DID, "handle": "shop.bsky.social", "accessJwt": "a", "refreshJwt": "r"}
    convo = {"convo": {"id": "c1", "rev": "1", "members": [
        {"did": OUR_DID, "handle": "shop.bsky.social"},
        {"did": "did:plc:customer", "handle": "alice.bsky.social"}], "unreadCount": 0}}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("createSession"):
            return httpx.Response(200, json=session)
        if path.endswith("getConvo"):
            return httpx.Response(200, json=convo)
        body = current.get(path.rsplit("/", 1)[-1])
        if body is None:
            return httpx.Response(200, json={"notifications": [], "logs": [], "cursor": "c0"})
        return httpx.Response(200, content=body)

    return answer


@asynccontextmanager
async def _bluesky_poll(nsid: str) -> AsyncIterator[Call]:
    current: dict[str, bytes | None] = {}
    adapter = BlueskyAdapter(
        {"identifier": "shop.bsky.social", "app_password": "p", "service": BASE,
         "direct_messages": nsid.startswith("chat.")},
        transport=httpx.MockTransport(_bluesky_answer(current)),
        retry=RetryPolicy.testing(attempts=1))
    cursor = json.dumps({"n": "2000-01-01T00:00:00Z", "u": [], "c": "c0"})
    async with adapter:
        async def call(body: bytes, _: str) -> object:
            current[nsid] = body
            batch = await adapter.poll(cursor)
            # The cursor it gives must work for the next poll.
            return [batch, await adapter.poll(batch.cursor)]
        yield call


@asynccontextmanager
async def _bluesky_stream() -> AsyncIterator[Call]:
    adapter = BlueskyAdapter({"identifier": "shop.bsky.social", "app_password": "p"})
    adapter._did, adapter._handle = OUR_DID, "shop.bsky.social"
    keep = JetstreamFilter(did=OUR_DID, handle="shop.bsky.social", keywords=("refund",),
                           known=adapter._known)

    async def call(body: bytes, _: str) -> object:
        batches: list[Batch] = []
        text = body.decode("utf-8", "replace")  # WebSocket text frames are decoded text
        for line in text.splitlines():
            line_time_us(line)
            found = convert_item(keep.match_line, line, network="bluesky")
            batches.append(adapter._jetstream_batch(found))
            for event in batches[-1].events:  # later edits and deletions of it are kept
                adapter._known.add(event.message.ref.id)
        return batches

    yield call


# chirp ---------------------------------------------------------------------------------


def _chirp_seeds() -> list[Seed]:
    author = {"id": "u1", "handle": "alice", "name": "Alice"}
    mention = {"type": "mention", "data": {
        "id": "p1", "text": "💙 hi @shop #help https://x.example", "author": author,
        "created_at": "2024-05-01T10:00:00Z", "thread_id": "p1",
        "entities": [{"type": "mention", "start": 6, "end": 11, "handle": "shop", "user_id": "u0"},
                     {"type": "hashtag", "start": 12, "end": 17, "tag": "help"},
                     {"type": "link", "start": 18, "end": 35, "url": "https://x.example"}]}}
    dm = {"type": "dm", "data": {
        "id": "d1", "conversation_id": "c1", "sender": author,
        "recipient": {"id": "u0", "handle": "shop"}, "text": "où est mon colis ?",
        "created_at": "2024-05-01T10:00:00+02:00", "reply_to": "d0"}}
    return [Seed(json.dumps(body).encode()) for body in (mention, dm)]


def _chirp_signature(body: bytes, stamp: str = "1714557600") -> str:
    digest = hmac.new(CHIRP_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


def _chirp_adapter() -> ChirpAdapter:
    return ChirpAdapter({"access_token": "t", "webhook_secret": CHIRP_SECRET})


@asynccontextmanager
async def _chirp_parse() -> AsyncIterator[Call]:
    adapter = _chirp_adapter()

    async def call(body: bytes, _: str) -> object:
        request = WebhookRequest(method="POST", path="/webhooks/chirp", body=body,
                                 headers={"chirp-signature": _chirp_signature(body)})
        await adapter.verify(request)
        return adapter.parse(request)

    yield call


@asynccontextmanager
async def _chirp_verify() -> AsyncIterator[Call]:
    adapter = _chirp_adapter()

    async def call(header: bytes, body: str) -> object:
        # The mutated bytes are the signature header; ASGI servers decode headers as latin-1.
        value = header.decode("latin-1") if header[:1] != b"t" else header.decode(
            "utf-8", "surrogateescape")
        request = WebhookRequest(method="POST", path="/webhooks/chirp", body=body.encode(),
                                 headers={"chirp-signature": value})
        return await adapter.verify(request)

    yield call


def _chirp_verify_seeds() -> list[Seed]:
    out = []
    for seed in _chirp_seeds():
        header = json.dumps({"t": "1714557600", "v1": _chirp_signature(seed.body)[16:]})
        out.append(Seed(header.encode(), seed.body.decode()))
        out.append(Seed(_chirp_signature(seed.body).encode(), seed.body.decode()))
    return out


# meta ----------------------------------------------------------------------------------

META_SECRET = "fuzz-app-secret"


def _meta_webhooks(network: str, pattern: str) -> list[Seed]:
    return [Seed(path.read_bytes()) for path in sorted((VECTORS / network).glob(pattern))]


def _meta_answers() -> list[Seed]:
    """Recorded Graph answers, each with the edge it answered."""
    answers = {
        "facebook/pyfacebook__comments__create_resp.json": "/245778718206154",
        "facebook/pyfacebook__messages__message_info.json": "/m_1",
        "instagram/pyfacebook__medias__comments_p1.json": "/17846368219941692/comments",
        "instagram/pyfacebook__comments__replies.json": "/17858154961981086/replies",
        "instagram/pyfacebook__models__ig_reply.json": "/18107567341036926",
    }
    return [Seed((VECTORS / name).read_bytes(), edge) for name, edge in answers.items()]


@asynccontextmanager
async def _meta_parse(cls: type[FacebookAdapter] | type[InstagramAdapter]) -> AsyncIterator[Call]:
    ids = {"page_id": "1234567890321"} if cls is FacebookAdapter else {"account_id": "0"}
    adapter = cls({**ids, "access_token": "t", "app_secret": META_SECRET, "verify_token": "v"})

    async def call(body: bytes, _: str) -> object:
        digest = hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = WebhookRequest(method="POST", path=f"/{cls.network}", body=body,
                                 headers={"x-hub-signature-256": f"sha256={digest}"})
        await adapter.verify(request)
        return adapter.parse(request)

    yield call


@asynccontextmanager
async def _meta_parse_payload() -> AsyncIterator[Call]:
    async def call(body: bytes, path: str) -> object:
        cls = InstagramAdapter if "comments" in path or "replies" in path else FacebookAdapter
        return cls.parse_payload(body, path=path)

    yield call


# x -------------------------------------------------------------------------------------

X_SECRET = "fuzz-consumer-secret"


def _x_answers(only: str | None = None) -> list[Seed]:
    """Recorded X API v2 answers (the v1.1 ones are not what the adapter reads)."""
    return [s for s in _get_answers("twitter", only=only) if s.context.startswith("/2/")]


def _x_webhook_seeds() -> list[Seed]:
    """XAA deliveries from the sandbox; AAA ones around tweepy's recorded v1.1 objects."""
    sandbox = XSandbox(seed=5)
    ours = sandbox.our_post("Opening hours")
    after = sandbox.world.last_seq
    sandbox.customer_mention("where is my parcel? https://example.com/o/1 #late")
    sandbox.customer_reply(ours, "open on Sunday? 💙")
    sandbox.customer_quote(ours, "see this @shop")
    sandbox.customer_dm("my order number is 1234 & more")
    seeds = [Seed(d.body, "xaa") for d in sandbox.webhook_deliveries(after_seq=after)]
    for n in sandbox.world.notifications_for(sandbox.our_account, after_seq=after)[:1]:
        old = sandbox.activity_event(n, pascal_case=True)
        seeds.append(Seed(json.dumps({"data": old}).encode(), "xaa"))
    recorded = json.loads((VECTORS / "twitter" / "decoded" /
                           "tweepy__testsendanddeletedirectmessage.json").read_text("utf-8"))
    me = recorded["interactions"][0]["response_body"]
    status = {**me["status"], "user": {k: v for k, v in me.items() if k != "status"}}
    event = next(i for i in recorded["interactions"] if i["method"] == "POST")
    users = {me["id_str"]: {"id": me["id_str"], "name": me["name"],
                            "screen_name": me["screen_name"]}}
    seeds.append(Seed(json.dumps({"for_user_id": "1", "tweet_create_events": [status]}).encode(),
                      "aaa"))
    seeds.append(Seed(json.dumps({"for_user_id": "1", "users": users, "direct_message_events":
                                  [event["response_body"]["event"]]}).encode(), "aaa"))
    return seeds


@asynccontextmanager
async def _x_parse() -> AsyncIterator[Call]:
    adapter = XAdapter({"access_token": "t", "webhook_secret": X_SECRET})

    async def call(body: bytes, _: str) -> object:
        request = WebhookRequest(method="POST", path="/x", body=body,
                                 headers={SIGNATURE_HEADER: x_sign(body, X_SECRET)})
        await adapter.verify(request)
        return adapter.parse(request)

    yield call


@asynccontextmanager
async def _x_parse_payload() -> AsyncIterator[Call]:
    async def call(body: bytes, path: str) -> object:
        return XAdapter.parse_payload(body, path=path or None, account="1072250532645998596")

    yield call


@asynccontextmanager
async def _x_poll() -> AsyncIterator[Call]:
    me = {"data": {"id": "1072250532645998596", "username": "TweepyDev", "name": "Tweepy"}}
    current = {"body": b"{}"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/users/me"):
            return httpx.Response(200, json=me)
        if request.url.path.endswith("/dm_events"):
            return httpx.Response(200, json={"meta": {"result_count": 0}})
        return httpx.Response(200, content=current["body"])

    adapter = XAdapter({"base_url": BASE, "access_token": "t", "dm_poll_interval": 0,
                        "max_pages": 2},
                       transport=httpx.MockTransport(answer),
                       retry=RetryPolicy.testing(attempts=1))
    async with adapter:
        async def call(body: bytes, _: str) -> object:
            current["body"] = body
            batch = await adapter.poll("m=1;d=1")
            # The cursor it gives must work for the next poll.
            return [batch, await adapter.poll(batch.cursor)]
        yield call


def targets() -> list[Target]:
    """Every fuzz target, with its seeds."""
    return [
        Target("mastodon.parse_payload", _get_answers("mastodon"),
               lambda: _parse_payload(MastodonAdapter)),
        Target("mastodon.poll", _get_answers("mastodon", only="/notifications"), _mastodon_poll),
        Target("mastodon.stream", _get_answers("mastodon", only="/streaming/user")
               + _get_answers("mastodon", only="/streaming/direct"), _mastodon_stream),
        Target("bluesky.parse_payload", _get_answers("bluesky") + _jetstream_chunks(),
               lambda: _parse_payload(BlueskyAdapter)),
        Target("bluesky.poll.notifications",
               _get_answers("bluesky", only="listNotifications"),
               lambda: _bluesky_poll("app.bsky.notification.listNotifications")),
        Target("bluesky.poll.chat", _get_answers("bluesky", only="getLog"),
               lambda: _bluesky_poll("chat.bsky.convo.getLog")),
        Target("bluesky.stream", _jetstream_chunks(), _bluesky_stream),
        Target("chirp.verify", _chirp_verify_seeds(), _chirp_verify,
               allowed=(WebhookSignatureError,)),
        Target("chirp.parse", _chirp_seeds(), _chirp_parse,
               allowed=(PayloadError, WebhookSignatureError)),
        Target("facebook.parse", _meta_webhooks("facebook", "restfb__webhooks__*.json"),
               lambda: _meta_parse(FacebookAdapter)),
        Target("instagram.parse", _meta_webhooks("instagram", "restfb__wh-*.json")
               + _meta_webhooks("instagram", "restfb__messaging-*.json"),
               lambda: _meta_parse(InstagramAdapter)),
        Target("meta.parse_payload", _meta_answers(), _meta_parse_payload),
        Target("x.parse_payload", _x_answers(), _x_parse_payload),
        Target("x.poll", _x_answers(only="/mentions"), _x_poll),
        Target("x.parse", _x_webhook_seeds(), _x_parse),
    ]


async def run(target: Target, *, runs: int, seed: int = 0) -> FuzzReport:
    """Fuzz one target ``runs`` times."""
    async with target.open() as call:
        return await fuzz_async(call, target.seeds, runs=runs, seed=seed,
                                allowed=target.allowed, name=target.name)
