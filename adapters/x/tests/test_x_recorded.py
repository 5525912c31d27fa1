"""Recorded X answers (tweepy's cassettes, MIT) through the adapter: values read off them.

The recordings asked for no expansions, so their posts carry no ``author_id``;
where a test needs one it adds the fields the X OpenAPI specification defines
(``author_id``, ``includes.users``, ``sender_id``, ``dm_conversation_id``) to the
recorded items, taking the values from other recorded answers.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnichannel.actions import Hide, React, Reply
from omnichannel.events import MessageReceived
from omnichannel.model import Message, Person, Ref
from omnichannel.text import x_weighted_length
from omnichannel_x import XAdapter

from .conftest import Vectors

pytestmark = pytest.mark.anyio

ME = "1072250532645998596"  # test_client_get_me: TweepyDev


def _with_author(body: dict[str, Any], author: dict[str, Any]) -> dict[str, Any]:
    enriched = copy.deepcopy(body)
    for item in enriched["data"]:
        item["author_id"] = author["id"]
    enriched["includes"] = {"users": [author]}
    return enriched


def _transport(routes: dict[tuple[str, str], tuple[int, Any, dict[str, str]]],
               seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, headers = routes[(request.method, request.url.path)]
        return httpx.Response(status, content=json.dumps(body).encode(), headers={
            "content-type": "application/json; charset=utf-8", **headers})
    return httpx.MockTransport(answer)


def _limits(interaction: dict[str, Any]) -> dict[str, str]:
    headers = interaction["response_headers"]
    return {k: v for k, v in headers.items() if k.startswith("x-rate-limit")}


def test_mentions_page_meta_and_texts(recorded: Vectors) -> None:
    """The recorded mentions page: ten posts, newest first, and the page tokens."""
    body = recorded("test_client_get_users_mentions").body("GET", "/2/users/783214/mentions")
    assert body["meta"] == {
        "next_token": "7140dibdnow9c7btw423i3sy3u5zupmkcpofxcsmxj48j", "result_count": 10,
        "newest_id": "1578516295611748353", "oldest_id": "1578516107798884353",
    }
    assert body["data"][0]["id"] == "1578516295611748353"


async def test_recorded_mentions_without_authors_are_rejected_by_poll(recorded: Vectors) -> None:
    """Without ``author_id`` a post cannot make a message: poll rejects each, the cursor moves."""
    rec = recorded("test_client_get_users_mentions")
    me = recorded("test_client_get_me").body("GET", "/2/users/me")
    page = rec.find("GET", "/2/users/783214/mentions")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/2/users/me":
            return httpx.Response(200, json=me)
        if "pagination_token" in request.url.params:  # the page older than the recorded one
            return httpx.Response(200, json={"meta": {"result_count": 0}})
        return httpx.Response(200, json=page["response_body"], headers=_limits(page))

    settings = {"access_token": "recorded", "read_dms": False}
    async with XAdapter(settings, transport=httpx.MockTransport(answer)) as x:
        batch = await x.poll("m=1578516107798884352")
        info = x._api.rate_limits.get("x", "GET /2/users/{id}/mentions")
    assert batch.events == ()
    assert len(batch.rejected) == 10
    assert {r.path for r in batch.rejected} == {f"mentions.data.{i}.author_id" for i in range(10)}
    assert batch.cursor == "m=1578516295611748353"
    assert info is not None
    assert (info.limit, info.remaining) == (450, 448)
    first = seen[1].url.params
    assert first["since_id"] == "1578516107798884352"
    assert first["expansions"].startswith("author_id")
    assert seen[2].url.params["pagination_token"] == rec.body(
        "GET", "/2/users/783214/mentions")["meta"]["next_token"]


def test_recorded_mentions_replay_with_an_unknown_author(recorded: Vectors) -> None:
    """Replay shows a post recorded without its author as written by ``unknown``."""
    raw = recorded("test_client_get_users_mentions").raw("GET", "/2/users/783214/mentions")
    events = XAdapter.parse_payload(raw, path="/2/users/783214/mentions")
    assert len(events) == 10
    assert all(isinstance(e, MessageReceived) and e.message.author.ref.id == "unknown"
               for e in events)


def test_mentions_replay_with_authors(recorded: Vectors) -> None:
    """Each recorded mention becomes a public message, oldest first, the emoji kept whole."""
    me = recorded("test_client_get_me").body("GET", "/2/users/me")["data"]
    body = recorded("test_client_get_users_mentions").body("GET", "/2/users/783214/mentions")
    raw = json.dumps(_with_author(body, me)).encode("ascii")
    events = XAdapter.parse_payload(raw, path="/2/users/783214/mentions", account="783214")
    assert len(events) == 10
    received = [e for e in events if isinstance(e, MessageReceived)]
    assert received[-1].message.ref.id == "1578516295611748353"
    assert received[0].message.ref.id == "1578516107798884353"
    emoji = next(e.message for e in received if e.message.ref.id == "1578516220231397376")
    assert emoji.text == "@Twitter make 🤨 an available reaction emoji in dms"
    assert emoji.author.handle == "TweepyDev"
    # No created_at was asked for: the time comes from the snowflake id (the page
    # was answered at 22:43:18, its newest post made at 22:43:06.945).
    assert emoji.created_at == datetime(2022, 10, 7, 22, 42, 48, 973000, tzinfo=UTC)
    assert received[-1].message.created_at == datetime(2022, 10, 7, 22, 43, 6, 945000, tzinfo=UTC)
    assert emoji.conversation.id == emoji.ref.id
    assert not emoji.from_us


def test_get_tweet_with_emoji_escaped_as_surrogates(recorded: Vectors) -> None:
    """X escapes 🥁 as the surrogate pair \\ud83e\\udd41; the message holds one code point."""
    body = recorded("test_client_get_tweet").body("GET", "/2/tweets/1293593516040269825")
    raw = json.dumps({**body, "data": {**body["data"], "author_id": "783214"}}).encode("ascii")
    assert b"\\ud83e\\udd41" in raw
    (event,) = XAdapter.parse_payload(raw, path="/2/tweets/1293593516040269825")
    assert isinstance(event, MessageReceived)
    text = event.message.text
    assert text.startswith("It’s finally here! 🥁 Say hello to the new #TwitterAPI.")
    assert text.count("🥁") == 1
    assert text.endswith("https://t.co/32VrwpGaJw https://t.co/KaFSbjWUA8")
    # 242 code points; each t.co link is 23 anyway; ’ weighs 1 and 🥁 weighs 2.
    assert len(text) == 242
    assert x_weighted_length(text) == 243


def test_dm_events_replay(recorded: Vectors) -> None:
    """Recorded DM events in their conversation, ours marked from_us (sender added per spec)."""
    rec = recorded("test_manage_and_lookup_direct_messages")
    created = rec.body("POST", "/2/dm_conversations/with/750362064426721281/messages")["data"]
    convo = created["dm_conversation_id"]
    path = f"/2/dm_conversations/{convo}/dm_events"
    body = copy.deepcopy(rec.body("GET", path))
    assert body["meta"]["next_token"] == "18LAA5G1SL0NR5OG0G00ZZZZ"
    for item in body["data"]:
        item.update(sender_id=ME, dm_conversation_id=convo)
    events = XAdapter.parse_payload(json.dumps(body).encode(), path=path, account=ME)
    messages = [e.message for e in events if isinstance(e, MessageReceived)]
    assert [m.text for m in messages] == ["Testing 1", "Testing 2"]
    assert messages[0].ref.id == created["dm_event_id"]
    assert all(m.is_private and m.from_us for m in messages)
    assert messages[0].conversation.id == "750362064426721281-1072250532645998596"
    assert rec.body("GET", "/2/dm_events") == {"meta": {"result_count": 0}}


def _customer_message(tweet_id: str, *, mentions_us: bool) -> Message:
    text = "@TweepyDev help" if mentions_us else "help"
    entities = ({"type": "mention", "start": 0, "end": 10, "handle": "TweepyDev",
                 "person": {"network": "x", "id": ME}},) if mentions_us else ()
    return Message.model_validate({
        "ref": {"network": "x", "id": tweet_id}, "conversation": {"network": "x", "id": tweet_id},
        "author": Person(ref=Ref(network="x", id="783214"), handle="Twitter").model_dump(),
        "text": text, "entities": entities, "created_at": "2022-10-07T22:43:18Z",
    })


async def test_recorded_exchange_open_reply_hide_like(recorded: Vectors) -> None:
    """users/me, a 201 POST /2/tweets with its rate-limit headers, hide and like, as recorded."""
    me = recorded("test_client_get_me")
    create = recorded("test_client_create_and_delete_tweet")
    hide = recorded("test_client_hide_and_unhide_reply")
    like = recorded("test_client_like_and_unlike")
    post = create.find("POST", "/2/tweets")
    seen: list[httpx.Request] = []
    routes: dict[tuple[str, str], tuple[int, Any, dict[str, str]]] = {
        ("GET", "/2/users/me"): (200, me.body("GET", "/2/users/me"), {}),
        ("POST", "/2/tweets"): (201, post["response_body"], _limits(post)),
        ("PUT", "/2/tweets/1344794616005066752/hidden"): (
            200, hide.body("PUT", "/2/tweets/1344794616005066752/hidden"), {}),
        ("POST", f"/2/users/{ME}/likes"): (200, like.body("POST", f"/2/users/{ME}/likes"), {}),
    }
    settings = {"access_token": "recorded", "tier": "enterprise", "base_url": "https://api.x.com"}
    async with XAdapter(settings, transport=_transport(routes, seen)) as x:
        assert x.account is not None
        assert x.account.ref.id == ME
        assert x.account.handle == "TweepyDev"
        to = _customer_message("1456012973835788000", mentions_us=True)
        action = Reply(network="x", to=to, text="Test Tweet")
        x.check(action)
        sent = await x.send(action)
        assert sent.ref.id == "1456012973835788293"
        assert json.loads(seen[-1].content) == {
            "text": "Test Tweet", "reply": {"in_reply_to_tweet_id": "1456012973835788000"}}
        state = x._api.rate_limits.get("x", "POST /2/tweets")
        assert state is not None
        assert (state.limit, state.remaining) == (200, 199)
        assert state.reset_at == datetime.fromtimestamp(1635976418, UTC)
        hidden = await x.hide(Hide(network="x", target=Ref(network="x", id="1344794616005066752")))
        assert hidden.raw == {"data": {"hidden": True}}
        liked = await x.react(React(network="x", target=Ref(network="x", id="1293593516040269825")))
        assert liked.raw == {"data": {"liked": True}}
    assert seen[0].headers["authorization"] == "Bearer recorded"

