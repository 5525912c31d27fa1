"""The sandbox answers in Bluesky's recorded shapes, quirks included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from omnichannel_bluesky.sandbox import BlueskySandbox

XRPC = "/xrpc"
PROXY = {"atproto-proxy": "did:web:api.bsky.chat#bsky_chat"}
Recorded = Callable[..., Any]


def _client(sandbox: BlueskySandbox, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=sandbox.transport(), base_url=sandbox.base_url,
                             headers=headers)


async def _login(sandbox: BlueskySandbox) -> dict[str, Any]:
    async with _client(sandbox) as http:
        response = await http.post(f"{XRPC}/com.atproto.server.createSession", json={
            "identifier": sandbox.our_account.handle, "password": sandbox.app_password})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_session_has_the_recorded_fields(recorded: Recorded) -> None:
    """createSession answers with the recorded session's fields and a PDS endpoint."""
    sandbox = BlueskySandbox(seed=30)
    session = await _login(sandbox)
    wanted = set(recorded("bskyr__repo_auth_direct")) - {"email"}
    assert wanted <= set(session)
    assert session["didDoc"]["service"][0]["serviceEndpoint"] == sandbox.base_url
    assert session["handle"] == "shop.bsky.social"


async def test_rate_limit_headers_are_the_recorded_kind(
    interactions: Callable[[str], list[dict[str, Any]]],
) -> None:
    """Answers carry RateLimit-Limit/-Remaining/-Reset/-Policy, as recorded."""
    sandbox = BlueskySandbox(seed=30)
    session = await _login(sandbox)
    async with _client(sandbox, session["accessJwt"]) as http:
        response = await http.get(f"{XRPC}/app.bsky.notification.listNotifications")
    recorded_names = {name.lower() for name in
                      interactions("bskyr__n_notifications")[0]["response_headers"]
                      if name.lower().startswith("ratelimit")}
    assert recorded_names == {name.lower() for name in response.headers
                              if name.lower().startswith("ratelimit")}
    assert response.headers["ratelimit-policy"] == "3000;w=300"


async def test_notification_has_the_recorded_fields(recorded: Recorded) -> None:
    """A mention notification has every field of the recorded one."""
    sandbox = BlueskySandbox(seed=31)
    sandbox.customer_mention("hi 👋 #help")
    session = await _login(sandbox)
    async with _client(sandbox, session["accessJwt"]) as http:
        page = (await http.get(f"{XRPC}/app.bsky.notification.listNotifications",
                               params={"reasons": ["mention"]})).json()
    ours = page["notifications"][0]
    mention = next(n for n in recorded("bskyr__n_notifications")["notifications"]
                   if n["reason"] == "mention")
    assert set(mention) <= set(ours)
    assert set(mention["record"]) - {"embed", "reply"} <= set(ours["record"])
    facets = ours["record"]["facets"]
    text = ours["record"]["text"].encode()
    assert [text[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in facets] == [
        "@shop.bsky.social", "#help"]


async def test_customer_like_is_a_like_notification_with_the_recorded_fields(
    recorded: Recorded,
) -> None:
    """customer_like on our post gives a like notification shaped like the recorded ones."""
    sandbox = BlueskySandbox(seed=33)
    ours = sandbox.our_post("Open today")
    like = sandbox.customer_like(ours)
    session = await _login(sandbox)
    async with _client(sandbox, session["accessJwt"]) as http:
        page = (await http.get(f"{XRPC}/app.bsky.notification.listNotifications",
                               params={"reasons": ["like"]})).json()
    [ours_liked] = page["notifications"]
    liked = next(n for n in recorded("bskyr__n_notifications")["notifications"]
                 if n["reason"] == "like")
    assert set(liked) <= set(ours_liked)
    assert set(liked["record"]) == set(ours_liked["record"])
    assert ours_liked["uri"] == like.id
    assert ours_liked["reasonSubject"] == ours.id
    assert ours_liked["record"]["subject"] == {"cid": ours.extra["cid"], "uri": ours.id}


async def test_taken_record_key_answers_500_like_the_reference_pds() -> None:
    """A second createRecord with the same rkey gets 500 InternalServerError, and no post."""
    sandbox = BlueskySandbox(seed=32)
    session = await _login(sandbox)
    body = {"repo": session["did"], "collection": "app.bsky.feed.post", "rkey": "3kabcdefghij2",
            "record": {"$type": "app.bsky.feed.post", "text": "hello",
                       "createdAt": "2025-01-06T09:00:00.000Z"}}
    async with _client(sandbox, session["accessJwt"]) as http:
        first = await http.post(f"{XRPC}/com.atproto.repo.createRecord", json=body)
        second = await http.post(f"{XRPC}/com.atproto.repo.createRecord", json=body)
    assert first.status_code == 200
    assert second.status_code == 500
    assert second.json() == {"error": "InternalServerError", "message": "Internal Server Error"}
    assert len(sandbox.sent()) == 1


async def test_too_long_text_answers_the_recorded_refusal(recorded: Recorded) -> None:
    """301 graphemes get the recorded 400 InvalidRequest body, word for word."""
    sandbox = BlueskySandbox(seed=33)
    session = await _login(sandbox)
    body = {"repo": session["did"], "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "x" * 301,
                       "createdAt": "2025-01-06T09:00:00.000Z"}}
    async with _client(sandbox, session["accessJwt"]) as http:
        response = await http.post(f"{XRPC}/com.atproto.repo.createRecord", json=body)
    assert response.status_code == 400
    assert response.json() == recorded("bskyr__r_post_errors")


async def test_chat_needs_the_proxy_header_and_getlog_starts_now(recorded: Recorded) -> None:
    """Chat calls without atproto-proxy are refused; getLog without a cursor has no logs."""
    sandbox = BlueskySandbox(seed=34)
    sandbox.customer_dm("earlier message")
    session = await _login(sandbox)
    async with _client(sandbox, session["accessJwt"]) as http:
        refused = await http.get(f"{XRPC}/chat.bsky.convo.getLog")
        log = (await http.get(f"{XRPC}/chat.bsky.convo.getLog", headers=PROXY)).json()
    assert refused.status_code == 400
    assert set(log) == set(recorded("bskyr__c_log"))
    assert log["logs"] == []


async def test_expired_access_token_gets_expired_token_error() -> None:
    """An expired access token is answered 400 ExpiredToken, as the PDS does."""
    sandbox = BlueskySandbox(seed=35)
    session = await _login(sandbox)
    sandbox.expire_token()
    async with _client(sandbox, session["accessJwt"]) as http:
        response = await http.get(f"{XRPC}/app.bsky.notification.listNotifications")
    assert response.status_code == 400
    assert response.json()["error"] == "ExpiredToken"
