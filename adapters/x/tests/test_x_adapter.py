"""The X adapter against XSandbox: auth and rotation, polling, the reply rule, outbound, errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from omnichannel.actions import Hide, PrivateReply, React, Reply
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    DuplicateContent,
    PayloadError,
    RateLimited,
    RequestRejected,
)
from omnichannel.events import MessageReceived
from omnichannel.model import Link, Message
from omnichannel_x import (
    ClientForbidden,
    DirectMessageRefused,
    NotAuthorizedForResource,
    NotSummoned,
    ReauthorizationRequired,
    UsageCapped,
    XAdapter,
    XSettings,
    XTokens,
)
from omnichannel_x._errors import error_for
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


def _adapter(sandbox: XSandbox, **overrides: Any) -> XAdapter:
    return XAdapter({**sandbox.adapter_settings(), **overrides}, transport=sandbox.transport())


async def _received(x: XAdapter, cursor: str | None) -> tuple[list[Message], str | None]:
    batch = await x.poll(cursor)
    return [e.message for e in batch.events if isinstance(e, MessageReceived)], batch.cursor


# settings and auth ---------------------------------------------------------------------


def test_settings_take_one_auth_and_hide_secrets() -> None:
    """OAuth 2.0 or OAuth 1.0a, not both nor neither; a refresh needs the client id."""
    with pytest.raises(ValidationError, match=r"either OAuth 2\.0"):
        XSettings()
    with pytest.raises(ValidationError, match=r"either OAuth 2\.0"):
        XSettings(access_token="a", consumer_key="k", consumer_secret="s", oauth1_token="t",
                  oauth1_token_secret="ts")
    with pytest.raises(ValidationError, match="needs consumer_key"):
        XSettings(consumer_key="k")
    with pytest.raises(ValidationError, match="client_id"):
        XSettings(access_token="a", refresh_token="r")
    settings = XSettings(access_token="secret-access", refresh_token="secret-refresh",
                         client_id="c")
    assert "secret-access" not in repr(settings)
    assert "secret-refresh" not in repr(settings)


async def test_expired_token_is_refreshed_and_the_rotated_pair_persisted() -> None:
    """Each refresh hands the new pair to on_tokens; the rotated refresh token works next time."""
    sandbox = XSandbox(seed=1)
    saved: list[XTokens] = []
    first_refresh = sandbox.refresh_token
    x = XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                 on_tokens=saved.append)
    async with x:
        sandbox.expire_token()
        await x.poll(None)
        assert sandbox.refreshes == 1
        assert saved[-1].access_token.get_secret_value() == sandbox.token
        assert saved[-1].refresh_token is not None
        assert saved[-1].refresh_token.get_secret_value() == sandbox.refresh_token
        assert sandbox.refresh_token != first_refresh
        info = sandbox.token_info(first_refresh)
        assert info is not None
        assert info.revoked, "the old refresh token must stop working"
        sandbox.expire_token()
        await x.poll(None)
        assert sandbox.refreshes == 2
        assert len(saved) == 2
        assert x.tokens == saved[-1]


async def test_async_token_hook_is_awaited() -> None:
    """An async on_tokens hook is awaited before the request is sent again."""
    sandbox = XSandbox(seed=1)
    saved: list[str] = []

    async def persist(tokens: XTokens) -> None:
        saved.append(tokens.access_token.get_secret_value())

    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                        on_tokens=persist) as x:
        sandbox.expire_token()
        await x.poll(None)
    assert saved == [sandbox.token]


async def test_failed_refresh_asks_for_reauthorization(caplog: pytest.LogCaptureFixture) -> None:
    """A refused refresh token is ReauthorizationRequired, naming no token."""
    sandbox = XSandbox(seed=1)
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        sandbox.revoke_credentials()
        with pytest.raises(ReauthorizationRequired, match="reauthorization required") as caught:
            await x.poll(None)
    assert isinstance(caught.value, AuthenticationError)
    assert sandbox.token not in str(caught.value)
    assert sandbox.refresh_token not in caplog.text


async def test_failing_token_hook_is_logged_without_the_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that raises is logged by error type; the adapter goes on with the new token."""
    sandbox = XSandbox(seed=1)

    def broken(tokens: XTokens) -> None:
        raise OSError(f"disk full while writing {tokens.refresh_token}")

    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                        on_tokens=broken) as x:
        sandbox.expire_token()
        with caplog.at_level(logging.ERROR, logger="omnichannel.x"):
            await x.poll(None)
    assert "persisting the refreshed x tokens failed (OSError)" in caplog.text
    assert sandbox.refresh_token not in caplog.text
    assert sandbox.token not in caplog.text


async def test_oauth1_user_context_signs_requests() -> None:
    """With OAuth 1.0a settings, GET /2/users/me goes out signed (HMAC-SHA1)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"id": "7", "username": "shop", "name": "S"}})

    settings = {"consumer_key": "ck", "consumer_secret": "cs", "oauth1_token": "7-t",
                "oauth1_token_secret": "ts"}
    async with XAdapter(settings, transport=httpx.MockTransport(answer)) as x:
        assert x.account is not None
        assert x.account.ref.id == "7"
    header = seen[0].headers["authorization"]
    assert header.startswith("OAuth ")
    assert 'oauth_consumer_key="ck"' in header
    assert 'oauth_signature_method="HMAC-SHA1"' in header
    assert "cs" not in header.replace('"ck"', "")


# inbound ------------------------------------------------------------------------------------


async def test_burst_bigger_than_a_page_is_delivered_whole() -> None:
    """Twelve mentions after the cursor with pages of five: one poll, three pages, all twelve."""
    sandbox = XSandbox(seed=2)
    async with _adapter(sandbox, max_results=5) as x:
        _, cursor = await _received(x, None)
        posts = [sandbox.customer_mention(f"order {i}") for i in range(12)]
        before = sandbox.request_count("GET /2/users/*/mentions")
        messages, cursor = await _received(x, cursor)
        assert [m.ref.id for m in messages] == [p.id for p in posts]
        assert sandbox.request_count("GET /2/users/*/mentions") - before == 3
        again, _ = await _received(x, cursor)
        assert again == []


async def test_dm_reads_are_paced() -> None:
    """With the default pacing (X allows 15 DM reads per 15 minutes), DMs are read once a minute."""
    sandbox = XSandbox(seed=3)
    async with _adapter(sandbox, dm_poll_interval=60) as x:
        cursor = (await x.poll(None)).cursor
        sandbox.customer_dm("hello?")
        await x.poll(cursor)
        await x.poll(cursor)
    assert sandbox.request_count("GET /2/dm_events") == 1
    assert sandbox.request_count("GET /2/users/*/mentions") == 3


async def test_first_poll_reads_the_newest_mentions_and_dms() -> None:
    """With no cursor, the newest page of mentions and of DMs is delivered, as on Mastodon."""
    sandbox = XSandbox(seed=16)
    mention = sandbox.customer_mention("before we started")
    dm = sandbox.customer_dm("also before")
    async with _adapter(sandbox) as x:
        messages, cursor = await _received(x, None)
        again, _ = await _received(x, cursor)
    assert [m.ref.id for m in messages] == [mention.id, dm.id]
    assert cursor == f"m={mention.id};d={dm.id}"
    assert again == []


async def test_our_own_dm_is_not_delivered_back() -> None:
    """Our DM answer is in GET /2/dm_events too; poll leaves the echo out (nothing to answer)."""
    sandbox = XSandbox(seed=4)
    async with _adapter(sandbox) as x:
        _, cursor = await _received(x, None)
        customer = sandbox.customer()
        sandbox.customer_dm("refund please", author=customer)
        (dm,), cursor = await _received(x, cursor)
        assert not dm.from_us
        await x.send(Reply(network="x", to=dm, text="On it"))
        sandbox.customer_dm("thanks!", author=customer)
        later, _ = await _received(x, cursor)
    assert [m.text for m in later] == ["thanks!"]
    assert later[0].conversation == dm.conversation
    async with sandbox.client() as http:
        listed = (await http.get("/2/dm_events")).json()["data"]
    assert [e["text"] for e in listed] == ["thanks!", "On it", "refund please"]


async def test_text_is_unescaped_and_links_expanded() -> None:
    """X escapes & < > and shows t.co links: the message has the author's text, spans moved."""
    sandbox = XSandbox(seed=5)
    text = "@shop A&B <3 🎉 see https://example.com/a?b=1&c=2 #help"
    async with _adapter(sandbox) as x:
        _, cursor = await _received(x, None)
        post = sandbox.customer_mention(text)
        (message,), _ = await _received(x, cursor)
    rendered = sandbox.render_tweet(sandbox.world.post(post.id))["text"]
    assert "&amp;" in rendered
    assert "https://t.co/" in rendered
    assert message.text == text
    (link,) = [e for e in message.entities if isinstance(e, Link)]
    assert link.text_in(message.text) == link.url == "https://example.com/a?b=1&c=2"


async def test_malformed_post_is_rejected_and_the_page_goes_on() -> None:
    """A post whose entity lies outside its text is Rejected; the other one is delivered."""
    page = {
        "data": [
            {"id": "1578516295611748353", "text": "@shop hi", "author_id": "9",
             "entities": {"mentions": [{"start": 0, "end": 40, "username": "shop"}]}},
            {"id": "1578516220231397376", "text": "@shop ok", "author_id": "9"},
        ],
        "includes": {"users": [{"id": "9", "username": "alice", "name": "Alice"}]},
        "meta": {"result_count": 2, "newest_id": "1578516295611748353"},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/2/users/me":
            return httpx.Response(200, json={"data": {"id": "1", "username": "shop"}})
        return httpx.Response(200, json=page if "mentions" in request.url.path else {"meta": {}})

    async with XAdapter({"access_token": "t"}, transport=httpx.MockTransport(answer)) as x:
        batch = await x.poll("m=1;d=1")
    assert [e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)] == [
        "1578516220231397376"]
    (rejected,) = batch.rejected
    assert rejected.path == "mentions.data.0.entities.mentions.0"
    assert "outside the text" in rejected.reason
    assert json.loads(rejected.body)["id"] == "1578516295611748353"
    assert batch.cursor == "m=1578516295611748353;d=1"


async def test_poll_fills_the_rate_limit_state_from_x_headers() -> None:
    """The x-rate-limit-* headers of the mentions endpoint reach the client's state."""
    sandbox = XSandbox(seed=6)
    async with _adapter(sandbox) as x:
        await x.poll(None)
        info = x._api.rate_limits.get("x", "GET /2/users/{id}/mentions")
    assert info is not None
    assert (info.limit, info.remaining) == (300, 299)


# the reply rule -----------------------------------------------------------------------------


async def test_strict_default_refuses_a_reply_to_an_unsummoning_reply_before_any_request() -> None:
    """A reply to our post that does not @mention us in its body cannot be answered (strict)."""
    sandbox = XSandbox(seed=7)
    sandbox.thread_replies_summon = False
    async with _adapter(sandbox, thread_replies_summon=False) as x:
        _, cursor = await _received(x, None)
        ours = sandbox.our_post("Sale today!")
        plain = sandbox.customer_reply(ours, "when does it end?")
        leading = sandbox.customer_reply(ours, "@shop thanks")
        body = sandbox.customer_reply(ours, "question for @shop please")
        messages, _ = await _received(x, cursor)
        by_id = {m.ref.id: m for m in messages}
        before = sandbox.request_count()
        for post in (plain, leading):
            with pytest.raises(NotSummoned):
                x.check(Reply(network="x", to=by_id[post.id], text="Tomorrow"))
        assert sandbox.request_count() == before
        x.check(Reply(network="x", to=by_id[body.id], text="Tomorrow"))
        # A DM answer is not a reply post: the rule does not apply.
        x.check(PrivateReply(network="x", to=by_id[plain.id], text="Tomorrow"))


async def test_quote_of_our_post_summons_us_and_enterprise_is_exempt() -> None:
    """Quoting our post allows a reply; on Enterprise the rule does not apply at all."""
    sandbox = XSandbox(seed=8)
    sandbox.thread_replies_summon = False
    ours = sandbox.our_post("New shoes")
    async with _adapter(sandbox, thread_replies_summon=False) as x:
        _, cursor = await _received(x, None)
        quote = sandbox.customer_quote(ours, "these look great @shop")
        reply = sandbox.customer_reply(ours, "price?")
        messages, _ = await _received(x, cursor)
        by_id = {m.ref.id: m for m in messages}
        x.check(Reply(network="x", to=by_id[quote.id], text="Thanks!"))
        with pytest.raises(NotSummoned):
            x.check(Reply(network="x", to=by_id[reply.id], text="$40"))
    enterprise = XAdapter({**sandbox.adapter_settings(), "tier": "enterprise",
                           "thread_replies_summon": False}, transport=sandbox.transport())
    async with enterprise:
        enterprise.check(Reply(network="x", to=by_id[reply.id], text="$40"))


async def test_quote_without_mention_summons_us() -> None:
    """A quote of our post that does not mention us still summons us (X's rule)."""
    sandbox = XSandbox(seed=9)
    sandbox.thread_replies_summon = False
    ours = sandbox.our_post("Launch day")
    async with _adapter(sandbox, thread_replies_summon=False, max_results=5) as x:
        # A quote without an @mention is not in the mentions timeline: read it as
        # GET /2/tweets/:id answers it, includes (the quoted post's author) and all.
        quote = sandbox.customer_quote(ours, "look at this")
        async with sandbox.client() as http:
            body = (await http.get(f"/2/tweets/{quote.id}")).content
        (event,) = XAdapter.parse_payload(body, path=f"/2/tweets/{quote.id}",
                                          account=sandbox.our_account.id)
        assert isinstance(event, MessageReceived)
        action = Reply(network="x", to=event.message, text="Thank you!")
        x.check(action)
        sent = await x.send(action)
    assert sandbox.world.post(sent.ref.id).in_reply_to == quote.id


async def test_network_refusal_of_a_reply_is_not_summoned() -> None:
    """If X refuses the reply under its rule (adapter set permissive), it is NotSummoned."""
    sandbox = XSandbox(seed=10)
    sandbox.thread_replies_summon = False
    async with _adapter(sandbox, thread_replies_summon=True) as x:
        _, cursor = await _received(x, None)
        reply = sandbox.customer_reply(sandbox.our_post("Hi all"), "hello")
        (message,), _ = await _received(x, cursor)
        assert message.ref.id == reply.id
        action = Reply(network="x", to=message, text="Hello!")
        x.check(action)
        with pytest.raises(NotSummoned, match="refused by X"):
            await x.send(action)
    assert all(r.text != "Hello!" for r in sandbox.sent())


# outbound ----------------------------------------------------------------------------------


async def _mention(sandbox: XSandbox, x: XAdapter, text: str = "help") -> Message:
    _, cursor = await _received(x, None)
    sandbox.customer_mention(text)
    (message,), _ = await _received(x, cursor)
    return message


async def test_duplicate_post_is_duplicate_content() -> None:
    """X's 403 for the same text twice becomes DuplicateContent."""
    sandbox = XSandbox(seed=11)
    async with _adapter(sandbox) as x:
        message = await _mention(sandbox, x)
        await x.send(Reply(network="x", to=message, text="We are on it"))
        with pytest.raises(DuplicateContent):
            await x.send(Reply(network="x", to=message, text="We are on it"))


async def test_find_sent_matches_through_tco_rewriting() -> None:
    """A reply with a link whose answer was lost is found though X stores the link as t.co."""
    sandbox = XSandbox(seed=12)
    async with _adapter(sandbox) as x:
        message = await _mention(sandbox, x)
        other = Reply(network="x", to=message, text="Track it: https://example.com/t/1")
        assert await x.find_sent(other) is None
        sandbox.faults.lose_response("POST /2/tweets", times=1)
        action = Reply(network="x", to=message, text="Track it: https://example.com/t/42 ✅")
        with pytest.raises(AmbiguousDelivery):
            await x.send(action)
        found = await x.find_sent(action)
    assert found is not None
    stored = sandbox.render_tweet(sandbox.world.post(found.ref.id))["text"]
    assert "https://t.co/" in stored
    assert "example.com" not in stored
    assert found.idempotency_key == action.idempotency_key


async def test_find_sent_that_cannot_read_the_listing_raises() -> None:
    """An unreadable post in our listing, with no match, proves nothing: it raises."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/2/users/me":
            return httpx.Response(200, json={"data": {"id": "1", "username": "shop"}})
        return httpx.Response(200, json={"data": [{"id": "5"}], "meta": {}})

    async with XAdapter({"access_token": "t"}, transport=httpx.MockTransport(answer)) as x:
        with pytest.raises(PayloadError, match="text"):
            await x.find_sent(Reply(network="x", to=_message(), text="hi"))


def _message() -> Message:
    return Message.model_validate({
        "ref": {"network": "x", "id": "42"}, "conversation": {"network": "x", "id": "42"},
        "author": {"ref": {"network": "x", "id": "9"}, "handle": "alice"},
        "text": "@shop hi", "created_at": "2026-01-01T00:00:00Z",
    })


async def test_private_reply_to_a_closed_dm_inbox_is_refused() -> None:
    """A customer who does not accept our DMs: DirectMessageRefused."""
    sandbox = XSandbox(seed=13)
    customer = sandbox.customer()
    sandbox.close_dms(customer)
    async with _adapter(sandbox) as x:
        _, cursor = await _received(x, None)
        sandbox.customer_mention("charged twice", author=customer)
        (message,), _ = await _received(x, cursor)
        with pytest.raises(DirectMessageRefused):
            await x.send(PrivateReply(network="x", to=message, text="Let's talk in DM"))


async def test_likes_are_refused_on_self_serve_before_any_request() -> None:
    """No likes on pay-per-use: check and react refuse without a request."""
    sandbox = XSandbox(seed=14)
    async with _adapter(sandbox) as x:
        message = await _mention(sandbox, x)
        action = React(network="x", target=message.ref)
        before = sandbox.request_count()
        with pytest.raises(CapabilityNotSupported):
            x.check(action)
        with pytest.raises(CapabilityNotSupported):
            await x.react(action)
        assert sandbox.request_count() == before


async def test_hiding_outside_our_conversations_is_refused() -> None:
    """X hides only replies in conversations we started."""
    sandbox = XSandbox(seed=15)
    async with _adapter(sandbox) as x:
        message = await _mention(sandbox, x)
        with pytest.raises(RequestRejected):
            await x.hide(Hide(network="x", target=message.ref))


# errors ------------------------------------------------------------------------------------


def _response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
              method: str = "GET", path: str = "/2/users/1/mentions") -> httpx.Response:
    request = httpx.Request(method, f"https://api.x.com{path}")
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_problem_types_map_to_typed_errors() -> None:
    """usage-capped, client-forbidden, not-authorized-for-resource, 429 with X's reset."""
    problems = "https://api.twitter.com/2/problems/"
    capped = error_for(_response(429, {"title": "Usage capped", "type": problems + "usage-capped",
                                       "period": "Monthly", "scope": "Product"}))
    assert isinstance(capped, UsageCapped)
    assert (capped.period, capped.scope, capped.code) == ("Monthly", "Product", "usage-capped")
    forbidden = error_for(_response(403, {"title": "Client Forbidden",
                                          "type": problems + "client-forbidden"}))
    assert isinstance(forbidden, ClientForbidden)
    hidden = error_for(_response(403, {
        "title": "Authorization Error", "type": problems + "not-authorized-for-resource"}))
    assert isinstance(hidden, NotAuthorizedForResource)
    limited = error_for(_response(429, {"title": "Too Many Requests", "type": "about:blank"},
                                  headers={"x-rate-limit-reset": "1665183228"}))
    assert isinstance(limited, RateLimited)
    assert limited.reset_at is not None
    assert int(limited.reset_at.timestamp()) == 1665183228
    unauthorized = error_for(_response(401, {"title": "Unauthorized", "type": "about:blank"}))
    assert isinstance(unauthorized, AuthenticationError)
    dm = error_for(_response(403, {"detail": "You cannot send messages to this user."},
                             method="POST", path="/2/dm_conversations/with/9/messages"))
    assert isinstance(dm, DirectMessageRefused)


@pytest.mark.parametrize("token", ["\ud800abc", "t" * 100_000, "a\nb"])
async def test_a_page_token_no_url_can_carry_ends_the_paging(token: str) -> None:
    """A next_token with a lone surrogate, a huge one or a control character is the last page.

    Sending it back would fail the poll (and every poll after it); a newest_id
    that is not an X id stays out of the cursor for the same reason.
    """
    me = {"data": {"id": "7", "username": "shop", "name": "Shop"}}
    page = {"data": [{"id": "20", "text": "@shop hi", "author_id": "9",
                      "created_at": "2026-01-01T00:00:00.000Z"}],
            "meta": {"result_count": 1, "newest_id": token, "next_token": token}}
    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        if request.url.path.endswith("/users/me"):
            return httpx.Response(200, json=me)
        if request.url.path.endswith("/dm_events"):
            return httpx.Response(200, json={"meta": {"result_count": 0}})
        return httpx.Response(200, content=json.dumps(page).encode("utf-8", "surrogatepass"))

    async with XAdapter({"access_token": "t", "dm_poll_interval": 0},
                        transport=httpx.MockTransport(answer)) as x:
        batch = await x.poll("m=10;d=0")
        again = await x.poll(batch.cursor)
    assert [e.message.ref.id for e in batch.events] == ["20"]
    assert batch.cursor == "m=10;d=0"
    assert again.cursor == "m=10;d=0"
    assert sum(1 for url in asked if url.path.endswith("/mentions")) == 2
