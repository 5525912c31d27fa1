"""One request, exact shape: the adapter against Bluesky's recorded answers (respx)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from omnichannel.actions import PrivateReply, React, Reply
from omnichannel.errors import PayloadError, RequestRejected
from omnichannel.events import MessageReceived, ReactionAdded
from omnichannel.http import RetryPolicy
from omnichannel.model import Message
from omnichannel_bluesky import BlueskyAdapter

PDS = "https://bsky.social"
XRPC = f"{PDS}/xrpc"
BSKYR = "did:plc:5c2r73erhng4bszmxlfdtscf"
CONVO = "3ku7w6h4vog2d"
Recorded = Callable[..., Any]


def _headers(interaction: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in interaction["response_headers"].items()
            if k.lower().startswith("ratelimit")}


def _session(recorded: Recorded, access: str, refresh: str) -> dict[str, Any]:
    """The recorded session with its blanked JWTs filled in."""
    body = dict(recorded("bskyr__repo_auth_direct"))
    body.update(accessJwt=access, refreshJwt=refresh)
    return body


def _adapter(**settings: Any) -> BlueskyAdapter:
    return BlueskyAdapter(
        {"identifier": "bskyr.bsky.social", "app_password": "abcd-efgh-ijkl-mnop",
         "service": PDS, **settings},
        retry=RetryPolicy.testing(),
    )


@pytest.fixture
def logged_in(respx_mock: respx.MockRouter, recorded: Recorded) -> respx.MockRouter:
    """createSession answers the recorded session; chat has no log entries and nothing unread."""
    respx_mock.post(f"{XRPC}/com.atproto.server.createSession").respond(
        200, json=_session(recorded, "access-1", "refresh-1"))
    respx_mock.get(f"{XRPC}/chat.bsky.convo.getLog").respond(
        200, json=recorded("bskyr__c_log"))
    respx_mock.get(f"{XRPC}/chat.bsky.convo.listConvos").respond(
        200, json=recorded("bskyr__c_list"))
    return respx_mock


async def test_recorded_notification_page_polls_into_events_and_rate_state(
    logged_in: respx.MockRouter, interactions: Callable[[str], list[dict[str, Any]]],
) -> None:
    """The recorded page gives 18 messages and 13 likes; RateLimit-* fill the shared state."""
    page = interactions("bskyr__n_notifications")[0]
    route = logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications").respond(
        200, json=page["response_body"], headers=_headers(page))
    async with _adapter() as adapter:
        batch = await adapter.poll(None)
        info = adapter.client.rate_limits.get("bluesky", "account")
    assert sum(isinstance(e, MessageReceived) for e in batch.events) == 18
    assert sum(isinstance(e, ReactionAdded) for e in batch.events) == 13
    assert batch.rejected == ()
    sent = route.calls[0].request
    assert sent.url.params.get_list("reasons") == ["mention", "reply", "quote", "like"]
    assert sent.headers["authorization"] == "Bearer access-1"
    assert info is not None
    assert info.reset_at == datetime.fromtimestamp(1747676784, UTC)
    assert info.policy_window == timedelta(seconds=300)
    assert (info.limit, info.remaining) == (3000, 2963)
    cursor = json.loads(batch.cursor or "{}")
    assert cursor["c"] == "2222223ej433u"
    assert cursor["n"] == "2025-05-17T08:44:44.416000Z"


async def test_chat_calls_carry_the_proxy_header(logged_in: respx.MockRouter) -> None:
    """Every chat.bsky call is sent with atproto-proxy: did:web:api.bsky.chat#bsky_chat."""
    async with _adapter():
        pass
    (call,) = logged_in.routes[1].calls
    assert call.request.headers["atproto-proxy"] == "did:web:api.bsky.chat#bsky_chat"


async def test_expired_token_refreshes_with_the_refresh_jwt(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """400 ExpiredToken: refreshSession with the refresh JWT, then the request again."""
    page = recorded("bskyr__n_notifications")
    notifications = logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications")
    notifications.side_effect = [
        httpx.Response(400, json={"error": "ExpiredToken", "message": "Token has expired"}),
        httpx.Response(200, json=page),
    ]
    refresh = logged_in.post(f"{XRPC}/com.atproto.server.refreshSession").respond(
        200, json=_session(recorded, "access-2", "refresh-2"))
    async with _adapter() as adapter:
        batch = await adapter.poll(None)
    assert len(batch.events) == 31
    assert refresh.calls[0].request.headers["authorization"] == "Bearer refresh-1"
    assert notifications.calls[1].request.headers["authorization"] == "Bearer access-2"


async def _received(recorded: Recorded, logged_in: respx.MockRouter,
                    adapter: BlueskyAdapter) -> Message:
    logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications").respond(
        200, json=recorded("bskyr__n_notifications"))
    batch = await adapter.poll(None)
    received = [e for e in batch.events if isinstance(e, MessageReceived)]
    return received[-1].message


async def test_reply_request_carries_strong_refs_facets_and_rkey(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """The createRecord body has root and parent strong refs, exact facets and our rkey."""
    logged_in.get(f"{XRPC}/com.atproto.identity.resolveHandle").respond(
        200, json=recorded("bskyr__r_post_reply", 0))
    create = logged_in.post(f"{XRPC}/com.atproto.repo.createRecord").respond(
        200, json=recorded("bskyr__r_post_reply"))
    async with _adapter() as adapter:
        to = await _received(recorded, logged_in, adapter)
        text = "Tack @bskyr.bsky.social! 🙏 https://christophertkenny.com/bskyr/ #rstats"
        sent = await adapter.send(Reply(network="bluesky", to=to, text=text))
    body = json.loads(create.calls[0].request.content)
    record = body["record"]
    assert body["repo"] == BSKYR
    assert body["collection"] == "app.bsky.feed.post"
    assert len(body["rkey"]) == 13
    assert record["reply"]["parent"] == {"uri": to.ref.id, "cid": to.ref.extra["cid"]}
    assert record["reply"]["root"] == {"uri": to.conversation.id,
                                       "cid": to.conversation.extra["cid"]}
    data = text.encode("utf-8")
    spans = [data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode()
             for f in record["facets"]]
    assert spans == ["@bskyr.bsky.social", "https://christophertkenny.com/bskyr/", "#rstats"]
    assert record["facets"][0]["features"][0]["did"] == BSKYR
    assert sent.ref.id == "at://did:plc:5c2r73erhng4bszmxlfdtscf/app.bsky.feed.post/3lprdue7ggw26"


async def test_recorded_refusal_is_request_rejected(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """The recorded 400 InvalidRequest from createRecord raises RequestRejected."""
    logged_in.post(f"{XRPC}/com.atproto.repo.createRecord").respond(
        400, json=recorded("bskyr__r_post_errors"))
    async with _adapter() as adapter:
        to = await _received(recorded, logged_in, adapter)
        with pytest.raises(RequestRejected) as info:
            await adapter.send(Reply(network="bluesky", to=to, text="fine by our count"))
    assert info.value.code == "InvalidRequest"


async def test_private_reply_uses_recorded_convo_and_send(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """getConvoForMembers then sendMessage; the Sent ref is the recorded message id."""
    members = logged_in.get(f"{XRPC}/chat.bsky.convo.getConvoForMembers").respond(
        200, json=recorded("bskyr__c_for_members"))
    send = logged_in.post(f"{XRPC}/chat.bsky.convo.sendMessage").respond(
        200, json=recorded("bskyr__c_send"))
    async with _adapter() as adapter:
        to = await _received(recorded, logged_in, adapter)
        sent = await adapter.send(PrivateReply(network="bluesky", to=to,
                                               text="[example] sent with bskyr"))
    assert members.calls[0].request.url.params.get_list("members") == [BSKYR, to.author.ref.id]
    assert json.loads(send.calls[0].request.content) == {
        "convoId": "3ku7w6h4vog2d", "message": {"text": "[example] sent with bskyr"}}
    assert sent.ref.id == "3lprddijuyg26"
    assert sent.ref.extra == {"convo": "3ku7w6h4vog2d"}


async def test_like_is_a_like_record_with_the_subject(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """A like is an app.bsky.feed.like record whose subject is the post's strong ref."""
    create = logged_in.post(f"{XRPC}/com.atproto.repo.createRecord").respond(
        200, json=recorded("bskyr__r_like"))
    async with _adapter() as adapter:
        to = await _received(recorded, logged_in, adapter)
        sent = await adapter.react(React(network="bluesky", target=to.ref))
    body = json.loads(create.calls[0].request.content)
    assert body["collection"] == "app.bsky.feed.like"
    assert body["record"]["subject"] == {"uri": to.ref.id, "cid": to.ref.extra["cid"]}
    assert sent.raw is not None
    assert sent.raw["uri"] == ("at://did:plc:5c2r73erhng4bszmxlfdtscf/app.bsky.feed.like/"
                               "3lpkeypxcth2a")


# --- malformed items ------------------------------------------------------------------


async def test_malformed_notification_is_rejected_and_the_rest_delivered(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """A mention whose text is a number is reported at its path; the page goes on, once."""
    page = recorded("bskyr__n_notifications")
    page["notifications"][13]["record"]["text"] = 42
    logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications").respond(200, json=page)
    async with _adapter() as adapter:
        batch = await adapter.poll(None)
        again = await adapter.poll(batch.cursor)
    assert sum(isinstance(e, MessageReceived) for e in batch.events) == 17
    assert sum(isinstance(e, ReactionAdded) for e in batch.events) == 13
    [refused] = batch.rejected
    assert refused.path == "notifications.13.record.text"
    assert refused.reason == "Input should be a valid string"
    assert json.loads(refused.body) == page["notifications"][13]
    assert json.loads(batch.cursor or "{}")["n"] == "2025-05-17T08:44:44.416000Z"
    assert (again.events, again.rejected) == ((), ())  # the cursor moved past it


async def test_notification_without_uri_or_time_is_rejected_once(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """A notification that lost its uri and indexedAt is placed by its neighbour: reported once."""
    page = recorded("bskyr__n_notifications")
    broken = page["notifications"][22]
    assert broken["reason"] == "mention"
    del broken["uri"], broken["indexedAt"]
    logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications").respond(200, json=page)
    async with _adapter() as adapter:
        first = await adapter.poll(None)
        again = await adapter.poll(first.cursor)
    assert sum(isinstance(e, MessageReceived) for e in first.events) == 17
    [refused] = first.rejected
    assert (refused.path, refused.reason) == ("notifications.22", "no uri or indexedAt")
    assert (again.events, again.rejected) == ((), ())


async def test_malformed_chat_log_entry_is_rejected_and_the_log_goes_on(
    logged_in: respx.MockRouter, recorded: Recorded,
) -> None:
    """A chat message with an unreadable sentAt is reported; the next one arrives; the cursor moves.

    No getLog with entries is recorded: the entries are the lexicon's
    #logCreateMessage around the recorded messageViews and member profile.
    """
    views = recorded("bskyr__c_messages")["messages"]
    chris = recorded("bskyr__c_get_convo")["convo"]["members"][1]
    entries = [
        {"$type": "chat.bsky.convo.defs#logCreateMessage", "rev": view["rev"], "convoId": CONVO,
         "message": view, "relatedProfiles": [chris]}
        for view in (dict(views[3], sentAt="the other day"), views[2])
    ]
    log = {"cursor": "2222223ej4abc", "logs": entries}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor"):
            return httpx.Response(200, json=log)
        return httpx.Response(200, json=recorded("bskyr__c_log"))

    logged_in.routes[1].side_effect = answer  # getLog
    logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications").respond(
        200, json={"notifications": []})
    async with _adapter() as adapter:
        batch = await adapter.poll(None)
    assert [e.message.text for e in batch.events if isinstance(e, MessageReceived)] == [
        "Can you hear me?"]
    [refused] = batch.rejected
    assert (refused.path, refused.reason) == ("logs.0.message.sentAt", "sentAt is not a timestamp")
    assert json.loads(refused.body) == entries[0]
    assert json.loads(batch.cursor or "{}")["c"] == "2222223ej4abc"


async def test_answer_that_is_not_a_page_is_payload_error(logged_in: respx.MockRouter) -> None:
    """A listNotifications answer without a list, or not JSON, fails the poll with PayloadError."""
    route = logged_in.get(f"{XRPC}/app.bsky.notification.listNotifications")
    route.side_effect = [httpx.Response(200, json={"cursor": "x"}),
                         httpx.Response(200, content=b"<html>busy</html>")]
    async with _adapter() as adapter:
        with pytest.raises(PayloadError) as first:
            await adapter.poll(None)
        with pytest.raises(PayloadError) as second:
            await adapter.poll(None)
    assert (first.value.network, first.value.path) == ("bluesky", "notifications")
    assert second.value.path == "app.bsky.notification.listNotifications"
    assert second.value.reason == "the body is not JSON"
