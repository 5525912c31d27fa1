"""`omnichannel.testing.sandbox`: routing, auth, limits, the world, customers and inspection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import ClassVar

import httpx
import pytest

from omnichannel.testing import (
    Account,
    HandlerResult,
    Post,
    RateLimits,
    Sandbox,
    SandboxAbort,
    SandboxRequest,
    SandboxResponse,
    route,
)
from omnichannel.testing.sandbox import AuthFailure, RecordKind, parse_facets


class NoteSandbox(Sandbox):
    """A minimal network: notes, replies, DMs and a feed."""

    network = "notes"
    text_limit = 10
    create_routes: ClassVar[tuple[str, ...]] = ("POST /notes",)

    def new_id(self, kind: RecordKind, author: Account | None, /) -> str:
        self.made = getattr(self, "made", 0) + 1
        return f"{kind[0]}{self.made}"

    def auth_error(self, request: SandboxRequest, reason: AuthFailure) -> SandboxResponse:
        return SandboxResponse.json({"error": reason}, status=401)

    @route("GET", "/me")
    def me(self, request: SandboxRequest) -> HandlerResult:
        assert request.account is not None
        return {"id": request.account.id, "handle": request.account.handle}

    @route("POST", "/notes")
    def create(self, request: SandboxRequest) -> HandlerResult:
        assert request.account is not None
        text = self.require(request, "text")
        self.check_text(request, text)
        post = self.world.add_post(request.account, text, in_reply_to=request.field("reply_to"))
        return SandboxResponse.json({"id": post.id, "text": post.text}, status=201)

    @route("GET", "/notes/{id}")
    def read(self, request: SandboxRequest) -> HandlerResult:
        post = self.post_or_404(request, request.params["id"])
        return {"id": post.id, "text": post.text}

    @route("GET", "/notes/latest", rate_limit=None)
    def latest(self, request: SandboxRequest) -> HandlerResult:
        posts = sorted(self.world.posts.values(), key=lambda p: p.seq)
        return {"id": posts[-1].id if posts else None}

    @route("GET", "/public", auth=False)
    def public(self, request: SandboxRequest) -> HandlerResult:
        return [{"n": 1}, {"n": 2}]

    @route("GET", "/ticks", auth=False)
    def ticks(self, request: SandboxRequest) -> SandboxResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return SandboxResponse(headers={"content-type": "text/event-stream"}, stream=chunks)

    @route("POST", "/echo", auth=False)
    def echo(self, request: SandboxRequest) -> HandlerResult:
        data = request.data()
        if "boom" in data:
            raise SandboxAbort(self.bad_request(request, "boom", status=418))
        return {"data": data, "field": request.field("x"), "type": request.content_type}


@pytest.fixture
def sandbox() -> NoteSandbox:
    """A fresh note sandbox."""
    return NoteSandbox(seed=1)


async def test_routes_answer_with_path_params(sandbox: NoteSandbox) -> None:
    """A parameterised route gets its params; a literal route beats it on the same path."""
    async with sandbox.client() as http:
        made = (await http.post("/notes", json={"text": "hi 👋"})).json()
        assert made["text"] == "hi 👋"
        assert (await http.get(f"/notes/{made['id']}")).json() == made
        assert (await http.get("/notes/latest")).json() == {"id": made["id"]}


async def test_unknown_path_and_wrong_method_use_the_hooks(sandbox: NoteSandbox) -> None:
    """An unknown path answers not_found, a wrong method 405 with Allow."""
    async with sandbox.client() as http:
        missing = await http.get("/nope")
        wrong = await http.delete("/me")
    assert missing.status_code == 404
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"


async def test_plain_data_is_answered_as_json(sandbox: NoteSandbox) -> None:
    """A handler returning a list of mappings answers 200 JSON."""
    async with sandbox.client() as http:
        response = await http.get("/public")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == [{"n": 1}, {"n": 2}]


async def test_json_and_form_bodies_read_alike(sandbox: NoteSandbox) -> None:
    """request.data() and field() read a JSON body and a form body the same way."""
    async with sandbox.client() as http:
        as_json = (await http.post("/echo", json={"x": 1, "tags[]": ["a"]})).json()
        as_form = (await http.post("/echo", data={"x": "1", "tags[]": ["a"]})).json()
    assert as_json["field"] == as_form["field"] == "1"
    assert as_json["data"]["tags[]"] == as_form["data"]["tags[]"] == ["a"]


async def test_sandbox_abort_answers_at_once(sandbox: NoteSandbox) -> None:
    """SandboxAbort raised in a handler becomes the response."""
    async with sandbox.client() as http:
        response = await http.post("/echo", json={"boom": True})
    assert response.status_code == 418
    assert response.json() == {"error": "boom"}


async def test_streaming_response_arrives_in_chunks(sandbox: NoteSandbox) -> None:
    """A response with a stream factory is delivered chunk by chunk."""
    async with sandbox.client() as http, http.stream("GET", "/ticks") as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"Authorization": "Bearer nope"}, "invalid"),
     ({"Authorization": "Basic abc"}, "missing")],
)
async def test_bad_credentials_get_the_network_auth_error(
    sandbox: NoteSandbox, headers: dict[str, str], reason: str
) -> None:
    """Missing or unknown tokens are answered by auth_error with the reason."""
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as http:
        response = await http.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": reason}


async def test_token_expiry_follows_the_virtual_clock(sandbox: NoteSandbox) -> None:
    """A token that expires in an hour works now and fails once the clock moves past it."""
    token = sandbox.tokens.issue(sandbox.our_account.id,
                                 expires_at=sandbox.clock.peek() + timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url) as http:
        assert (await http.get("/me", headers=headers)).status_code == 200
        sandbox.clock.advance(timedelta(hours=1))
        expired = await http.get("/me", headers=headers)
        sandbox.revoke_credentials()
        revoked = await http.get("/me", headers=sandbox.auth_headers())
    assert expired.json() == {"error": "expired"}
    assert revoked.json() == {"error": "revoked"}


async def test_rate_limit_headers_and_429(sandbox: NoteSandbox) -> None:
    """Limited routes report their budget; past it comes the 429, counted by served()."""
    sandbox.rate_limits = RateLimits(limit=2, window=60.0, now=lambda: 1_700_000_000.0)
    async with sandbox.client() as http:
        first = await http.get("/me")
        await http.get("/me")
        refused = await http.get("/me")
        unlimited = await http.get("/notes/latest")
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["x-ratelimit-reset"] == str(1_700_000_060)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert "x-ratelimit-limit" not in unlimited.headers
    assert sandbox.served(429) == 1
    assert sandbox.served(429, "GET /me") == 1
    assert sandbox.served(429, "POST *") == 0


async def test_rate_limit_window_refills() -> None:
    """After the window resets, the bucket is full again."""
    now = [1000.0]
    limits = RateLimits(limit=1, window=10.0, now=lambda: now[0])
    assert limits.take()[0]
    assert not limits.take()[0]
    now[0] += 10.0
    allowed, window = limits.take()
    assert allowed
    assert window.remaining == 0
    assert limits.exhaust(reset_in=5.0).reset_epoch == 1015


async def test_exhaust_rate_limits_refuses_the_next_request(sandbox: NoteSandbox) -> None:
    """exhaust_rate_limits() makes the next limited request a 429."""
    sandbox.exhaust_rate_limits(reset_in=30.0)
    async with sandbox.client() as http:
        response = await http.get("/me")
    assert response.status_code == 429
    assert 29 <= int(response.headers["retry-after"]) <= 31


async def test_text_limit_is_enforced_in_graphemes(sandbox: NoteSandbox) -> None:
    """check_text counts grapheme clusters by default: 10 family emoji fit, 11 do not."""
    family = "👨‍👩‍👧‍👦"
    async with sandbox.client() as http:
        fits = await http.post("/notes", json={"text": family * 10})
        over = await http.post("/notes", json={"text": family * 11})
        blank = await http.post("/notes", json={"text": ""})
    assert fits.status_code == 201
    assert over.status_code == 422
    assert "11 characters, limit 10" in over.json()["error"]
    assert blank.status_code == 422


def test_world_notifies_mentions_replies_likes_and_dms(sandbox: NoteSandbox) -> None:
    """Mentions, replies to our posts, likes and DMs each notify our account once."""
    alice = sandbox.customer("alice")
    mention = sandbox.customer_mention("help", author=alice)
    ours = sandbox.our_post("news")
    comment = sandbox.customer_comment(ours, "nice", author=alice)
    like = sandbox.customer_like(ours, author=alice)
    dm = sandbox.customer_dm("psst", author=alice)
    kinds = [(n.kind, n.subject_id) for n in sandbox.world.notifications_for(sandbox.our_account)]
    assert kinds == [("mention", mention.id), ("reply", comment.id),
                     ("like", like.post_id), ("dm", dm.id)]
    assert mention.text == "@shop help"
    assert comment.root == ours.id


def test_ids_come_from_the_network_hook(sandbox: NoteSandbox) -> None:
    """Records get ids from new_id, one sequence across kinds."""
    post = sandbox.customer_mention("hi")
    assert post.id.startswith("p")
    assert sandbox.our_account.id.startswith("a")


def test_facets_are_str_spans_after_emoji() -> None:
    """parse_facets gives Python str spans that cover the entity even after emoji."""
    text = "🎉🇫🇷 @shop see https://example.com/a?b=1. #help"
    facets = parse_facets(text, lambda handle: "1" if handle == "shop" else None)
    assert [(f.kind, f.text_in(text)) for f in facets] == [
        ("mention", "@shop"), ("link", "https://example.com/a?b=1"), ("hashtag", "#help"),
    ]
    assert facets[0].account_id == "1"


def test_edit_and_delete_are_stamped_by_the_clock(sandbox: NoteSandbox) -> None:
    """customer_edit and customer_delete stamp virtual times and log changes."""
    post = sandbox.customer_mention("typo")
    sandbox.clock.advance(timedelta(minutes=3))
    edited = sandbox.customer_edit(post, "@shop fixed")
    sandbox.customer_delete(post)
    assert edited.edited_at == post.created_at + timedelta(minutes=3)
    assert sandbox.world.post(post.id).deleted
    assert [c.kind for c in sandbox.world.changes] == ["post.created", "post.edited",
                                                        "post.deleted"]


async def test_sent_lists_our_posts_and_messages(sandbox: NoteSandbox) -> None:
    """sent() shows our public replies and our DMs with privacy and recipient."""
    alice = sandbox.customer("alice")
    mention: Post = sandbox.customer_mention("hi", author=alice)
    async with sandbox.client() as http:
        await http.post("/notes", json={"text": "hello", "reply_to": mention.id})
    convo = sandbox.world.conversation_between(alice, sandbox.our_account)
    assert convo is not None
    sandbox.world.add_message(sandbox.our_account, convo.id, "psst")
    public, private = sandbox.sent()
    assert (public.kind, public.in_reply_to, public.private) == ("post", mention.id, False)
    assert (private.kind, private.private, private.recipient) == ("message", True, alice.id)


async def test_request_accounting(sandbox: NoteSandbox) -> None:
    """request_count matches method and path patterns; requests record what happened."""
    async with sandbox.client() as http:
        await http.get("/me")
        await http.post("/notes", json={"text": "a"})
        await http.get("/notes/latest")
    assert sandbox.request_count() == 3
    assert sandbox.request_count("POST /notes") == 1
    assert sandbox.request_count("/notes/{id}") == 1
    assert sandbox.request_count("GET *") == 2
    last = sandbox.requests[-1]
    assert (last.route, last.status, last.applied, last.delivered) == (
        "/notes/latest", 200, True, True)


def test_no_webhooks_by_default(sandbox: NoteSandbox) -> None:
    """A network without render_webhook renders no deliveries."""
    sandbox.customer_mention("hi")
    assert sandbox.webhook_deliveries() == []


def test_adapter_settings_point_at_the_sandbox(sandbox: NoteSandbox) -> None:
    """adapter_settings defaults to the in-process base URL and our token."""
    assert sandbox.adapter_settings() == {"base_url": sandbox.base_url,
                                          "access_token": sandbox.token}
    assert sandbox.adapter_settings(base_url="http://127.0.0.1:1")["base_url"] == (
        "http://127.0.0.1:1")


async def test_sandbox_tokens_stay_out_of_reprs(sandbox: NoteSandbox) -> None:
    """An issued token, and the one a request carried, are in no repr."""
    seen: list[SandboxRequest] = []

    def whoami(request: SandboxRequest) -> HandlerResult:
        seen.append(request)
        return {"ok": True}

    sandbox.router.add("GET", "/whoami", whoami, auth=True)
    async with sandbox.client() as http:
        assert (await http.get("/whoami")).status_code == 200
    [request] = seen
    assert request.token == sandbox.token
    info = sandbox.token_info()
    assert info is not None
    for text in (repr(info), repr(request), repr(sandbox)):
        assert sandbox.token not in text


class FeedSandbox(NoteSandbox):
    """Notes with a feed that lists them (to corrupt one)."""

    @route("GET", "/feed")
    def feed(self, request: SandboxRequest) -> HandlerResult:
        posts = sorted(self.world.posts.values(), key=lambda p: p.seq)
        return {"items": [{"id": p.id, "text": p.text, "meta": {"by": p.author_id}}
                          for p in posts], "count": len(posts)}


async def test_corrupt_item_replaces_the_listed_record_only() -> None:
    """corrupt_item swaps the list element carrying the record; the others stay as they were."""
    sandbox = FeedSandbox(seed=1)
    customer = sandbox.customer("alice")
    good = sandbox.world.add_post(customer, "good")
    bad = sandbox.world.add_post(customer, "bad")
    sandbox.corrupt_item(bad)
    async with sandbox.client() as http:
        first = (await http.get("/feed")).json()
        single = (await http.get(f"/notes/{bad.id}")).json()
    assert first["items"] == [
        {"id": good.id, "text": "good", "meta": {"by": customer.id}},
        f"corrupted item {bad.id}",
    ]
    assert first["count"] == 2
    assert single == {"id": bad.id, "text": "bad"}, "a record outside a list is left alone"


async def test_status_fault_can_say_retry_after() -> None:
    """faults.fail(..., retry_after=0) answers with Retry-After: 0; without it, no header."""
    sandbox = NoteSandbox(seed=1)
    sandbox.faults.fail("GET /me", 500, times=1, retry_after=0)
    sandbox.faults.fail("GET /me", 502, times=1)
    async with sandbox.client() as http:
        first = await http.get("/me")
        second = await http.get("/me")
    assert (first.status_code, first.headers.get("retry-after")) == (500, "0")
    assert (second.status_code, second.headers.get("retry-after")) == (502, None)


def test_tokens_issued_counts_refreshes_per_account() -> None:
    """tokens.issued counts every token ever issued to an account, by kind."""
    sandbox = NoteSandbox(seed=1)
    us = sandbox.our_account.id
    assert sandbox.tokens.issued(us) == 1
    sandbox.tokens.issue(us)
    sandbox.tokens.issue(us, kind="refresh")
    sandbox.tokens.issue(sandbox.customer("bob").id)
    assert sandbox.tokens.issued(us) == 2
    assert sandbox.tokens.issued(us, kind="refresh") == 1
