"""Replies, private replies, DMs in and out of the windows, moderation, errors, find_sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply
from omnichannel.adapter import WebhookRequest
from omnichannel.errors import (
    ActionError,
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    PayloadError,
    RateLimited,
    RequestRejected,
    TokenExpired,
    WindowClosed,
)
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel.model import Message, Ref
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_meta._errors import error_from_body

V = "/v25.0"
COMMENT = "901097836652708_903438993085259"
POST = "1234567890321_901097836652708"
PSID = "987654321432"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def received(adapter: FacebookAdapter | InstagramAdapter, kit: Any, name: str) -> Message:
    """The message of a recorded delivery, as the adapter parses it."""
    body = kit.vector(name)
    (event,) = adapter.parse(WebhookRequest(method="POST", body=body)).events
    assert isinstance(event, MessageReceived)
    return event.message


def customer_comment(adapter: FacebookAdapter, kit: Any) -> Message:
    """restfb's comment, with a customer (not the Page) as its author."""
    message = received(adapter, kit, "facebook/restfb__webhooks__feed-comment-add-211.json")
    author = message.author.model_copy(update={"ref": Ref(network="facebook", id="555")})
    return message.model_copy(update={"author": author, "from_us": False})


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


@asynccontextmanager
async def opened(
    cls: type[FacebookAdapter] | type[InstagramAdapter], settings: dict[str, Any], graph: Any,
    clock: Clock,
) -> AsyncIterator[Any]:
    adapter = cls(settings, transport=graph.transport(), clock=clock,
                  retry=RetryPolicy(attempts=1))
    async with adapter:
        yield adapter


def at(message: Message, **delta: float) -> Clock:
    return Clock(message.created_at + timedelta(**delta))


# public replies ---------------------------------------------------------------------


async def test_public_reply_to_a_facebook_comment(kit: Any, graph: Any) -> None:
    """POST /{comment-id}/comments with the text; the reply lands in the post's thread."""
    graph.on(f"POST {V}/{COMMENT}/comments", {"id": "901097836652708_1111"})
    comment = customer_comment(FacebookAdapter(kit.fb_settings()), kit)
    async with opened(FacebookAdapter, kit.fb_settings(), graph, at(comment, hours=1)) as page:
        sent = await page.send(Reply(network="facebook", to=comment, text="Thanks!"))
    (request,) = graph.sent(f"POST {V}/{COMMENT}/comments")
    assert form(request) == {"message": "Thanks!"}
    assert request.headers["authorization"] == "Bearer EAA-test-token"
    assert sent.ref == Ref(network="facebook", id="901097836652708_1111")
    assert sent.conversation == Ref(network="facebook", id=POST)
    assert page.account.handle == "Test Page"


async def test_public_reply_on_instagram_goes_under_the_top_level_comment(
    kit: Any, graph: Any
) -> None:
    """IG: POST /{ig-comment-id}/replies on the comment answered; found under its parent.

    Meta adds a reply to a reply under the top-level comment (the parent_id
    of the comment answered), so that is where find_sent looks for it.
    """
    graph.on(f"POST {V}/123456789/replies", {"id": "18107567341036926"})
    graph.on(f"GET {V}/987654321/replies", {"data": [
        {"id": "18107567341036926", "text": "On it", "username": "testshop",
         "timestamp": "2018-02-23T16:21:47+0000"}]})
    ig = InstagramAdapter(kit.ig_settings())
    reply = received(ig, kit, "instagram/restfb__wh-comments-2021.json")  # parent 987654321
    action = Reply(network="instagram", to=reply, text="On it")
    async with opened(InstagramAdapter, kit.ig_settings(), graph, at(reply, hours=1)) as adapter:
        sent = await adapter.send(action)
        found = await adapter.find_sent(action)
    (request,) = graph.sent(f"POST {V}/123456789/replies")
    assert form(request) == {"message": "On it"}
    assert sent.ref.id == "18107567341036926"
    assert sent.conversation == Ref(network="instagram", id="76543987")
    assert found is not None
    assert found.ref.id == "18107567341036926"


# private replies ------------------------------------------------------------------------


async def test_private_reply_once_per_comment_within_seven_days(kit: Any, graph: Any) -> None:
    """recipient.comment_id on /{page}/messages; a second one is refused before any request."""
    graph.on(f"POST {V}/{kit.page_id}/messages",
             json.loads(kit.vector("facebook/restfb__v2_6__sendresponse.json")))
    comment = customer_comment(FacebookAdapter(kit.fb_settings()), kit)
    clock = at(comment, days=6)
    async with opened(FacebookAdapter, kit.fb_settings(), graph, clock) as page:
        sent = await page.send(PrivateReply(network="facebook", to=comment, text="DM'd you"))
        with pytest.raises(ActionError, match="already"):
            await page.send(PrivateReply(network="facebook", to=comment, text="again"))
    (request,) = graph.sent(f"POST {V}/{kit.page_id}/messages")
    assert graph.body(request) == {
        "recipient": {"comment_id": COMMENT},
        "message": {"text": "DM'd you", "metadata": sent.idempotency_key},
    }
    assert sent.ref.id == "mid.1456970487936:c34767dfe57ee6e339"
    assert sent.conversation == Ref(network="facebook", id="1008372609250235")


async def test_private_reply_after_seven_days_is_refused_before_the_request(
    kit: Any, graph: Any
) -> None:
    """Past 7 days: WindowClosed from the adapter, and from the core's check."""
    comment = customer_comment(FacebookAdapter(kit.fb_settings()), kit)
    clock = at(comment, days=7, seconds=1)
    action = PrivateReply(network="facebook", to=comment, text="late")
    async with opened(FacebookAdapter, kit.fb_settings(), graph, clock) as page:
        with pytest.raises(WindowClosed):
            page.check(action, now=clock.now, human_agent=True)
        with pytest.raises(WindowClosed):
            await page.send(action)
    assert graph.sent(f"POST {V}/{kit.page_id}/messages") == []


# DMs and the windows --------------------------------------------------------------------


def dm(kit: Any, adapter: FacebookAdapter) -> Message:
    return received(adapter, kit, "facebook/restfb__webhooks__messaging-message-basic.json")


async def test_dm_inside_24_hours_is_a_response(kit: Any, graph: Any) -> None:
    """messaging_type RESPONSE to the PSID, metadata carrying our outbox key."""
    graph.on(f"POST {V}/{kit.page_id}/messages",
             {"recipient_id": PSID, "message_id": "m_answer"})
    message = dm(kit, FacebookAdapter(kit.fb_settings()))
    async with opened(FacebookAdapter, kit.fb_settings(), graph, at(message, hours=23)) as page:
        action = Reply(network="facebook", to=message, text="Hello!")
        page.check(action, now=page._clock(), human_agent=False)
        sent = await page.send(action)
    (request,) = graph.sent(f"POST {V}/{kit.page_id}/messages")
    assert graph.body(request) == {
        "recipient": {"id": PSID}, "messaging_type": "RESPONSE",
        "message": {"text": "Hello!", "metadata": action.idempotency_key},
    }
    assert sent.conversation == Ref(network="facebook", id=PSID)


async def test_after_24_hours_only_a_human_with_the_permission_tags_human_agent(
    kit: Any, graph: Any
) -> None:
    """30 h: automated refused (checked and at send); a human's reply goes out tagged."""
    graph.on(f"POST {V}/{kit.page_id}/messages",
             {"recipient_id": PSID, "message_id": "m_late"})
    settings = kit.fb_settings(human_agent=True)
    message = dm(kit, FacebookAdapter(settings))
    clock = at(message, hours=30)
    action = Reply(network="facebook", to=message, text="Sorry for the wait")
    async with opened(FacebookAdapter, settings, graph, clock) as page:
        with pytest.raises(WindowClosed):
            page.check(action, now=clock.now, human_agent=False)
        # A bot's reply queued in time but delivered late is refused, never tagged.
        with pytest.raises(WindowClosed):
            await page.send(action)
        assert graph.sent(f"POST {V}/{kit.page_id}/messages") == []
        page.check(action, now=clock.now, human_agent=True)
        await page.send(action.model_copy(update={"human_agent": True}))
    (request,) = graph.sent(f"POST {V}/{kit.page_id}/messages")
    body = graph.body(request)
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_after_24_hours_without_the_permission_nothing_goes_out(
    kit: Any, graph: Any
) -> None:
    """No Human Agent permission: even a human is refused after 24 h, before any request."""
    message = dm(kit, FacebookAdapter(kit.fb_settings()))
    clock = at(message, hours=30)
    action = Reply(network="facebook", to=message, text="too late")
    async with opened(FacebookAdapter, kit.fb_settings(), graph, clock) as page:
        with pytest.raises(WindowClosed):
            page.check(action, now=clock.now, human_agent=True)
        with pytest.raises(WindowClosed):
            await page.send(action)
    async with opened(FacebookAdapter, kit.fb_settings(human_agent=True), graph,
                      at(message, days=7, seconds=1)) as page:
        with pytest.raises(WindowClosed):
            await page.send(action)
    assert graph.sent(f"POST {V}/{kit.page_id}/messages") == []


async def test_meta_refusing_the_window_is_window_closed(kit: Any, graph: Any) -> None:
    """(#10) subcode 2018278 from the Send API becomes WindowClosed."""
    graph.on(f"POST {V}/{kit.page_id}/messages", lambda r: httpx.Response(400, json={"error": {
        "message": "(#10) This message is sent outside of allowed window.",
        "type": "OAuthException", "code": 10, "error_subcode": 2018278}}))
    message = dm(kit, FacebookAdapter(kit.fb_settings()))
    async with opened(FacebookAdapter, kit.fb_settings(), graph, at(message, hours=1)) as page:
        with pytest.raises(WindowClosed):
            await page.send(Reply(network="facebook", to=message, text="hi"))


async def test_posting_to_the_page_is_not_supported(kit: Any, graph: Any) -> None:
    """Publishing Page posts is outside this adapter: refused before any request."""
    async with opened(FacebookAdapter, kit.fb_settings(), graph,
                      Clock(datetime.now(UTC))) as page:
        with pytest.raises(CapabilityNotSupported):
            page.check(Post(network="facebook", text="news"))
        with pytest.raises(CapabilityNotSupported):
            await page.send(Post(network="facebook", text="news"))


# moderation -----------------------------------------------------------------------------


async def test_hide_unhide_delete_and_like(kit: Any, graph: Any) -> None:
    """FB hide is is_hidden in the form, IG hide a query parameter; delete; like."""
    graph.on(f"POST {V}/{COMMENT}", {"success": True})
    graph.on(f"DELETE {V}/{COMMENT}", {"success": True})
    graph.on(f"POST {V}/{COMMENT}/likes", {"success": True})
    graph.on(f"POST {V}/17858154961981086", {"success": True})
    target = Ref(network="facebook", id=COMMENT)
    clock = Clock(datetime.now(UTC))
    async with opened(FacebookAdapter, kit.fb_settings(), graph, clock) as page:
        await page.hide(Hide(network="facebook", target=target))
        await page.hide(Hide(network="facebook", target=target, hidden=False))
        await page.delete(Delete(network="facebook", target=target))
        await page.react(React(network="facebook", target=target))
        with pytest.raises(CapabilityNotSupported):
            await page.react(React(network="facebook", target=target, reaction="love"))
    async with opened(InstagramAdapter, kit.ig_settings(), graph, clock) as account:
        await account.hide(Hide(network="instagram",
                                target=Ref(network="instagram", id="17858154961981086")))
    hides = graph.sent(f"POST {V}/{COMMENT}")
    assert [form(r) for r in hides] == [{"is_hidden": "true"}, {"is_hidden": "false"}]
    assert len(graph.sent(f"DELETE {V}/{COMMENT}")) == 1
    assert len(graph.sent(f"POST {V}/{COMMENT}/likes")) == 1
    (ig_hide,) = graph.sent(f"POST {V}/17858154961981086")
    assert ig_hide.url.params["hide"] == "true"


# errors ---------------------------------------------------------------------------------


def test_error_codes_map_to_typed_errors(kit: Any) -> None:
    """Recorded and documented Graph errors become the right typed errors."""
    recorded = json.loads(kit.vector("facebook/restfb__exampleErrorNew.json"))  # 190/460
    ig_login = json.loads(kit.vector("instagram/restfb__ig_login_exception.json"))  # 2500

    def err(code: int, sub: int | None = None, **headers: str) -> Any:
        body: dict[str, Any] = {"error": {"message": "m", "code": code}}
        if sub is not None:
            body["error"]["error_subcode"] = sub
        return error_from_body(body, network="facebook", status=400, headers=headers,
                               now=datetime(2026, 1, 1, tzinfo=UTC))

    token = error_from_body(recorded, network="facebook", status=400)
    assert type(token) is AuthenticationError
    assert "Message describing the error" in str(token)
    assert isinstance(err(190, 463), TokenExpired)
    assert isinstance(err(10, 2018278), WindowClosed)
    restricted = err(10, 1893063)
    assert isinstance(restricted, RequestRejected)
    assert restricted.code == "page_restricted"
    unavailable = err(551, 1545041)
    assert isinstance(unavailable, RequestRejected)
    assert unavailable.code == "person_unavailable"
    for code in (4, 17, 32, 613, 80001, 80006):
        assert isinstance(err(code), RateLimited), code
    buc = {"x-business-use-case-usage": json.dumps({kit.page_id: [{
        "type": "pages", "call_count": 100, "total_cputime": 10, "total_time": 10,
        "estimated_time_to_regain_access": 15}]})}
    limited = err(80001, **buc)
    assert isinstance(limited, RateLimited)
    assert limited.reset_at == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    other = error_from_body(ig_login, network="instagram", status=400)
    assert isinstance(other, RequestRejected)
    assert other.code == "2500"
    assert error_from_body({"data": []}, network="facebook", status=400) is None


async def test_usage_headers_fill_the_rate_limit_state(kit: Any, graph: Any) -> None:
    """X-App-Usage on an answer becomes the client's rate-limit budget."""
    graph.on(f"GET {V}/{kit.page_id}", lambda r: httpx.Response(
        200, json={"id": kit.page_id, "name": "Test Page"},
        headers={"x-app-usage": json.dumps({"call_count": 70, "total_cputime": 20,
                                             "total_time": 35})}))
    async with opened(FacebookAdapter, kit.fb_settings(), graph,
                      Clock(datetime.now(UTC))) as page:
        info = page._api.rate_limits.get("facebook", "account")
    assert info is not None
    assert (info.limit, info.remaining) == (100, 30)


async def test_expired_token_on_open_is_token_expired(kit: Any, graph: Any) -> None:
    """190/463 while opening: TokenExpired, never a silent stop."""
    graph.on(f"GET {V}/{kit.page_id}", lambda r: httpx.Response(400, json={"error": {
        "message": "Error validating access token: Session has expired", "code": 190,
        "error_subcode": 463, "type": "OAuthException"}}))
    adapter = FacebookAdapter(kit.fb_settings(), transport=graph.transport(),
                              retry=RetryPolicy(attempts=1))
    with pytest.raises(TokenExpired) as caught:
        await adapter.open()
    assert "EAA-test-token" not in str(caught.value)


# find_sent ------------------------------------------------------------------------------


async def test_find_sent_reads_the_comment_replies_for_ours(kit: Any, graph: Any) -> None:
    """Ours with the same text: found; only others': None; unreadable: PayloadError."""
    comment = customer_comment(FacebookAdapter(kit.fb_settings()), kit)
    action = Reply(network="facebook", to=comment, text="Thanks!")
    replies: dict[str, Any] = {"data": [
        {"id": "x_1", "message": "Thanks!", "from": {"id": "555"}},
        {"id": "x_2", "message": "Thanks!", "from": {"id": kit.page_id, "name": "Test Page"}},
    ]}
    graph.on(f"GET {V}/{COMMENT}/comments", replies)
    async with opened(FacebookAdapter, kit.fb_settings(), graph, at(comment, hours=1)) as page:
        found = await page.find_sent(action)
        assert found is not None
        assert found.ref.id == "x_2"
        replies["data"].pop()
        assert await page.find_sent(action) is None
        graph.on(f"GET {V}/{COMMENT}/comments", {"error_page": True})
        with pytest.raises(PayloadError):
            await page.find_sent(action)


async def test_find_sent_reads_the_conversation_for_a_dm(kit: Any, graph: Any) -> None:
    """A DM is looked for in the customer's conversation (user_id), ours after theirs."""
    message = dm(kit, FacebookAdapter(kit.fb_settings()))
    later = (message.created_at + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    graph.on(f"GET {V}/{kit.page_id}/conversations", {"data": [{"id": "t_1", "messages": {
        "data": [
            {"id": "m_ours", "message": "Hello!", "created_time": later,
             "from": {"id": kit.page_id}, "to": {"data": [{"id": PSID}]}},
        ]}}]})
    async with opened(FacebookAdapter, kit.fb_settings(), graph, at(message, hours=1)) as page:
        found = await page.find_sent(Reply(network="facebook", to=message, text="Hello!"))
        missing = await page.find_sent(Reply(network="facebook", to=message, text="Other"))
    assert found is not None
    assert (found.ref.id, found.conversation) == ("m_ours", Ref(network="facebook", id=PSID))
    assert missing is None
    request = graph.sent(f"GET {V}/{kit.page_id}/conversations")[0]
    assert request.url.params["user_id"] == PSID


async def test_a_mention_is_answered_through_our_mentions_edge(kit: Any, graph: Any) -> None:
    """An IG mention (someone else's media): POST /{account}/mentions with media and comment."""
    graph.on(f"POST {V}/{kit.ig_id}/mentions", {"id": "17900000000000001"})
    ig = InstagramAdapter(kit.ig_settings())
    mention = received(ig, kit, "instagram/restfb__wh-mentions.json")
    async with opened(InstagramAdapter, kit.ig_settings(), graph, at(mention, hours=1)) as acct:
        action = Reply(network="instagram", to=mention, text="Thanks for the shout-out!")
        sent = await acct.send(action)
        with pytest.raises(AmbiguousDelivery):
            await acct.find_sent(action)
    (request,) = graph.sent(f"POST {V}/{kit.ig_id}/mentions")
    assert form(request) == {"media_id": "17887498072083520", "comment_id": "17887498072083520",
                             "message": "Thanks for the shout-out!"}
    assert sent.ref.id == "17900000000000001"
