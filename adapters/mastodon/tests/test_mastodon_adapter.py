"""The adapter against recorded Mastodon answers, replayed with respx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from omnichannel.actions import Delete, Post, PrivateReply, React, Reply
from omnichannel.adapter import Batch
from omnichannel.errors import (
    AuthenticationError,
    CapabilityNotSupported,
    NotFound,
    PayloadError,
    RateLimited,
    RequestRejected,
    TextTooLong,
    TransientError,
)
from omnichannel.events import MessageDeleted, MessageReceived, MessageUpdated, ReactionAdded
from omnichannel.http import RetryPolicy
from omnichannel.model import Message, Ref
from omnichannel_mastodon import MastodonAdapter, MastodonSettings
from omnichannel_mastodon._convert import Converter, parse_status

BASE = "http://localhost:3000"
STREAM = "http://localhost:4000"
TOKEN = "not-a-real-token-7c1f"


def ref(id_: str) -> Ref:
    return Ref(network="mastodon", id=id_)


def adapter(**settings: Any) -> MastodonAdapter:
    return MastodonAdapter(
        {"base_url": BASE, "access_token": TOKEN, **settings}, retry=RetryPolicy.testing(attempts=1)
    )


def serve_open(
    mock: respx.MockRouter, recorded: Any, *, me: dict[str, Any], instance: dict[str, Any] | None
    = None,
) -> None:
    """Answer verify_credentials with ``me`` and the instance with the recorded one."""
    body = instance or recorded("test_instance").body("GET", "/api/v2/instance")
    mock.get(f"{BASE}/api/v1/accounts/verify_credentials").respond(200, json=me)
    mock.get(f"{BASE}/api/v2/instance").respond(200, json=body)


def admin(recorded: Any) -> dict[str, Any]:
    """The recorded ``admin`` account (verify_credentials of test_status_reply)."""
    me: dict[str, Any] = recorded("test_status_reply").body(
        "GET", "/api/v1/accounts/verify_credentials"
    )
    return me


# -- opening ---------------------------------------------------------------------------


async def test_open_resolves_account_and_instance_limits(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """open() resolves our account and takes the text rule from the instance."""
    instance = recorded("test_instance").body("GET", "/api/v2/instance")
    instance["configuration"]["statuses"]["max_characters"] = 1000
    instance["configuration"]["statuses"]["characters_reserved_per_url"] = 30
    serve_open(respx_mock, recorded, me=admin(recorded), instance=instance)
    async with adapter() as mastodon:
        assert mastodon.account is not None
        assert mastodon.account.ref == ref("117020565693913441")
        assert mastodon.account.handle == "admin"
        assert mastodon.capabilities.text.limit == 1000
        assert mastodon.capabilities.text.url_length == 30
        assert MastodonAdapter.capabilities.text.limit == 500
    request = respx_mock.calls[0].request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_recorded_instance_keeps_the_default_limit(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """The recorded instance says 500 characters and 23 per URL."""
    serve_open(respx_mock, recorded, me=admin(recorded))
    async with adapter() as mastodon:
        assert mastodon.capabilities.text.limit == 500
        assert mastodon.capabilities.text.url_length == 23
        assert mastodon.instance is not None
        assert mastodon.instance.configuration.urls.streaming == "ws://localhost:4000"


async def test_revoked_token_is_authentication_error(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """Mastodon's recorded 401 body becomes AuthenticationError naming the network."""
    answer = recorded("test_unauthed_home_tl_throws").find("GET", "/api/v1/timelines/home")
    respx_mock.get(f"{BASE}/api/v1/accounts/verify_credentials").respond(
        answer["status"], json=answer["response_body"],
        headers={"www-authenticate": answer["response_headers"]["www-authenticate"]},
    )
    with pytest.raises(AuthenticationError) as info:
        async with adapter():
            pass
    assert info.value.network == "mastodon"
    assert "The access token is invalid" in str(info.value)
    assert TOKEN not in str(info.value)


def test_settings_hide_the_token_and_accept_streaming_ws_urls() -> None:
    """The token never shows in a repr; a ws:// streaming URL is read as http://."""
    settings = MastodonSettings(
        base_url="https://mastodon.example/", access_token=TOKEN,
        streaming_url="wss://streaming.mastodon.example",
    )
    assert TOKEN not in repr(settings)
    assert settings.base_url == "https://mastodon.example"
    assert settings.streaming_url == "https://streaming.mastodon.example"
    with pytest.raises(ValueError, match="http"):
        MastodonSettings(base_url="ftp://mastodon.example", access_token=TOKEN)


# -- polling and the Link header ------------------------------------------------------


async def test_cursor_follows_recorded_link_headers_without_gaps_or_repeats(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """Replaying the recorded pages, each poll resumes at the Link min_id: every mention once."""
    pages = {
        None: recorded("test_notifications").find("GET", "/api/v1/notifications"),
        "20": recorded("test_notifications_mentions_only").find("GET", "/api/v1/notifications"),
        "21": recorded("test_notifications_dismiss").find("GET", "/api/v1/notifications"),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        found = pages.get(request.url.params.get("min_id"))
        if found is None:
            return httpx.Response(200, json=[])
        return httpx.Response(
            200, json=found["response_body"], headers={"link": found["response_headers"]["link"]}
        )

    serve_open(respx_mock, recorded, me={**admin(recorded), "id": "117020565966271181"})
    route = respx_mock.get(f"{BASE}/api/v1/notifications").mock(side_effect=answer)
    seen: list[str] = []
    cursors: list[str | None] = []
    async with adapter() as mastodon:
        cursor: str | None = None
        for _ in range(4):
            batch = await mastodon.poll(cursor)
            seen += [e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)]
            cursors.append(batch.cursor)
            cursor = batch.cursor or cursor
    assert seen == ["117020576916218297", "117020577157693549", "117020578070305017"]
    assert cursors == ["20", "21", "25", None]
    sent = [call.request.url.params for call in route.calls]
    assert [p.get("min_id") for p in sent] == [None, "20", "21", "25"]
    assert sent[0].get_list("types[]") == ["mention", "favourite", "update"]

    # A restarted adapter given the stored cursor carries on from there.
    async with adapter() as again:
        batch = await again.poll("21")
    assert [e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)] == [
        "117020578070305017"
    ]


async def test_full_page_asks_for_more_at_once(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A page as long as the limit sets more=True; ids stay strings, never numbers."""
    page = recorded("test_notifications_mentions_only").find("GET", "/api/v1/notifications")
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(
        200, json=page["response_body"], headers={"link": page["response_headers"]["link"]}
    )
    async with adapter(page_size=1) as mastodon:
        batch = await mastodon.poll("20")
    assert batch.more is True
    assert batch.cursor == "21"


def three_notifications(recorded: Any) -> list[dict[str, Any]]:
    """The recorded mentions 25, 21 and 20, newest first as Mastodon lists them."""
    return [
        recorded(name).body("GET", "/api/v1/notifications")[0]
        for name in (
            "test_notifications_dismiss", "test_notifications_mentions_only", "test_notifications"
        )
    ]


async def test_bad_notification_is_rejected_and_the_rest_of_the_page_delivered(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A notification without created_at is reported with its path and body; the page goes on."""
    page = three_notifications(recorded)
    del page[1]["created_at"]
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=page)
    async with adapter() as mastodon:
        batch = await mastodon.poll("19")
    assert [e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)] == [
        "117020576916218297", "117020578070305017",
    ]
    [rejected] = batch.rejected
    assert rejected.path == "notifications.1.created_at"
    assert json.loads(rejected.body) == page[1]
    assert batch.cursor == "25"  # past the bad one: it is never read again


async def test_notification_the_core_model_refuses_is_rejected_not_raised(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A status with an empty id fits the wire model but not a Ref: rejected, the page goes on."""
    page = three_notifications(recorded)
    page[0]["status"]["id"] = ""
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=page)
    async with adapter() as mastodon:
        batch = await mastodon.poll("19")
    assert len(batch.events) == 2
    [rejected] = batch.rejected
    assert rejected.path.startswith("notifications.0")
    assert batch.cursor == "25"


def favourite_and_update(recorded: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A favourite and an update notification, in Mastodon's documented Notification shape.

    No favourite or update notification is recorded. Each is the documented
    entity (id, type, created_at, account, status) around recorded parts:
    admin's recorded account favouriting the recorded status of
    mastodonpy_test (test_status_favourited_by), and the recorded edited
    status (the PUT answer of test_stream_user_direct) by its author.
    """
    admin_account = recorded("test_notifications_mentions_only").body(
        "GET", "/api/v1/notifications/21")["account"]
    favourited = recorded("test_status_favourited_by").body(
        "POST", "/api/v1/statuses/117020585802289163/favourite")
    edited = recorded("test_stream_user_direct").body(
        "PUT", "/api/v1/statuses/117024236332527350")
    favourite = {"id": "30", "type": "favourite", "created_at": favourited["created_at"],
                 "group_key": "ungrouped-30", "account": admin_account, "status": favourited}
    update = {"id": "31", "type": "update", "created_at": edited["edited_at"],
              "group_key": "ungrouped-31", "account": edited["account"], "status": edited}
    return favourite, update


async def test_favourite_and_update_notifications_are_a_reaction_and_an_edit(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A page of mention, favourite and update gives MessageReceived, ReactionAdded, MessageUpdated.

    The favourite and update notifications are built from the documented
    entity shape (see `favourite_and_update`): none is recorded.
    """
    mention = recorded("test_notifications_mentions_only").body(
        "GET", "/api/v1/notifications/21")
    favourite, update = favourite_and_update(recorded)
    serve_open(respx_mock, recorded, me={**admin(recorded), "id": "117020565966271181"})
    route = respx_mock.get(f"{BASE}/api/v1/notifications").respond(
        200, json=[update, favourite, mention])
    async with adapter() as mastodon:
        batch = await mastodon.poll("20")
        again = await mastodon.poll("20")
    received, liked, edited = batch.events
    assert isinstance(received, MessageReceived)
    assert received.message.ref == ref("117020577157693549")
    assert isinstance(liked, ReactionAdded)
    assert liked.target == ref("117020585802289163")
    assert liked.by.ref == ref("117020565693913441")
    assert liked.by.handle == "admin"
    assert liked.reaction == "like"
    assert liked.id == "mastodon:reaction.added:117020585802289163:117020565693913441:like"
    assert isinstance(edited, MessageUpdated)
    assert edited.message.ref == ref("117024236332527350")
    assert edited.message.text == "only real animals respond."
    assert edited.id == (
        "mastodon:message.updated:117024236332527350:2026-08-02T05:22:24.192000+00:00")
    assert [e.id for e in again.events] == [e.id for e in batch.events]
    assert batch.cursor == "31"
    params = route.calls[0].request.url.params
    assert params.get_list("types[]") == ["mention", "favourite", "update"]


async def test_page_that_is_not_a_list_is_payload_error(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """An answer that is not a list of notifications at all raises PayloadError."""
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json={"error": "?"})
    async with adapter() as mastodon:
        with pytest.raises(PayloadError) as info:
            await mastodon.poll(None)
    assert info.value.path == "notifications"


async def test_reply_to_an_unknown_root_is_grouped_by_the_context(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A reply whose root is unknown is filed under the root the context endpoint names."""
    rec = recorded("test_status_reply")
    root = rec.body("POST", "/api/v1/statuses", nth=0)
    reply = rec.body("POST", "/api/v1/statuses", nth=1)
    notification = {
        **recorded("test_notifications").body("GET", "/api/v1/notifications")[0],
        "status": reply,
    }
    me = {**admin(recorded), "id": "117020566092212359", "acct": "mastodonpy_test_2"}
    serve_open(respx_mock, recorded, me=me)
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=[notification])
    context = respx_mock.get(f"{BASE}/api/v1/statuses/117020583258292382/context").respond(
        200, json={"ancestors": [root], "descendants": []}
    )
    async with adapter() as mastodon:
        [event] = (await mastodon.poll(None)).events
    assert isinstance(event, MessageReceived)
    assert event.message.conversation == ref("117020583245459824")
    assert context.call_count == 1


# -- sending ---------------------------------------------------------------------------


def message_from(raw: dict[str, Any], *, our_id: str) -> Message:
    return Converter(our_id=our_id).message(parse_status(raw))


async def test_reply_sends_the_recorded_request_with_idempotency_key(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A reply sends what Mastodon.py recorded: @mention, in_reply_to_id, visibility, and a key."""
    rec = recorded("test_status_reply")
    parent = rec.body("POST", "/api/v1/statuses", nth=0)
    exchange = rec.find("POST", "/api/v1/statuses", nth=1)
    serve_open(respx_mock, recorded, me=admin(recorded))
    post = respx_mock.post(f"{BASE}/api/v1/statuses").respond(
        200, json=exchange["response_body"]
    )
    to = message_from(parent, our_id="117020565693913441")
    action = Reply(network="mastodon", to=to, text="same!")
    async with adapter() as mastodon:
        sent = await mastodon.send(action)
    request = post.calls[0].request
    recorded_form = [kv for kv in parse_qsl(exchange["request_body"]) if kv[0] != "spoiler_text"]
    assert parse_qsl(request.content.decode()) == recorded_form
    assert request.headers["idempotency-key"] == action.idempotency_key
    assert sent.ref == ref("117020583258292382")
    assert sent.conversation == ref("117020583245459824")
    assert sent.idempotency_key == action.idempotency_key
    assert sent.sent_at == datetime.fromisoformat(exchange["response_body"]["created_at"])


async def test_reply_to_a_dm_stays_direct_like_the_recorded_one(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """Answering the recorded DM sends the recorded direct request, without mentioning us."""
    rec = recorded("test_stream_user_direct")
    dm = rec.body("POST", "/api/v1/statuses", nth=3)
    exchange = rec.find("POST", "/api/v1/statuses", nth=4)
    me = {**dm["mentions"][0], **dm["account"], "id": "117020617532860042",
          "username": "mastodonpy_test_2", "acct": "mastodonpy_test_2"}
    serve_open(respx_mock, recorded, me=me)
    post = respx_mock.post(f"{BASE}/api/v1/statuses").respond(
        200, json=exchange["response_body"]
    )
    to = message_from(dm, our_id="117020617532860042")
    assert to.visibility == "private"
    async with adapter() as mastodon:
        sent = await mastodon.send(Reply(network="mastodon", to=to, text="pssssst!"))
    assert parse_qsl(post.calls[0].request.content.decode()) == parse_qsl(
        exchange["request_body"]
    )
    assert sent.ref == ref("117024236635443611")
    assert sent.conversation == ref("direct:117020617404561855")


async def test_private_reply_is_a_direct_status_to_the_author(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A private reply to a public mention goes out direct, naming its author."""
    mention = recorded("test_notifications").body("GET", "/api/v1/notifications")[0]["status"]
    answer = recorded("test_status_post_None-direct").body("POST", "/api/v1/statuses")
    serve_open(respx_mock, recorded, me={**admin(recorded), "id": "117020565966271181"})
    post = respx_mock.post(f"{BASE}/api/v1/statuses").respond(200, json=answer)
    to = message_from(mention, our_id="117020565966271181")
    async with adapter() as mastodon:
        await mastodon.send(PrivateReply(network="mastodon", to=to, text="Could you DM me?"))
    assert dict(parse_qsl(post.calls[0].request.content.decode())) == {
        "status": "@admin Could you DM me?",
        "in_reply_to_id": "117020576916218297",
        "visibility": "direct",
    }


async def test_over_the_instance_limit_fails_before_sending(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A reply whose text with the @mention is over 500 raises TextTooLong and sends nothing."""
    parent = recorded("test_status_reply").body("POST", "/api/v1/statuses", nth=0)
    serve_open(respx_mock, recorded, me=admin(recorded))
    post = respx_mock.post(f"{BASE}/api/v1/statuses")
    to = message_from(parent, our_id="117020565693913441")
    async with adapter() as mastodon:
        with pytest.raises(TextTooLong) as info:
            await mastodon.send(Reply(network="mastodon", to=to, text="a" * 490))
    assert info.value.length == 490 + len("@mastodonpy_test_2 ")
    assert info.value.limit == 500
    assert post.call_count == 0


@pytest.mark.parametrize("nth", [0, 1], ids=["japanese", "german"])
async def test_localized_too_long_answer_is_text_too_long(
    respx_mock: respx.MockRouter, recorded: Any, nth: int
) -> None:
    """The recorded localized 422 for an over-long status becomes TextTooLong."""
    exchange = recorded("test_lang_for_errors").find("POST", "/api/v1/statuses", nth=nth)
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.post(f"{BASE}/api/v1/statuses").respond(
        exchange["status"], json=exchange["response_body"]
    )
    async with adapter() as mastodon:
        with pytest.raises(TextTooLong) as info:
            await mastodon.send(Post(network="mastodon", text="look at me i am funny"))
    assert info.value.limit == 500
    assert info.value.network == "mastodon"


async def test_other_validation_failure_is_request_rejected(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """Mastodon's blank-text 422 is RequestRejected with code 'validation'."""
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.post(f"{BASE}/api/v1/statuses").respond(
        422, json={"error": "Validation failed: Text can't be blank"}
    )
    async with adapter() as mastodon:
        with pytest.raises(RequestRejected) as info:
            await mastodon.send(Post(network="mastodon", text="x"))
    assert info.value.status == 422
    assert info.value.code == "validation"


async def test_429_carries_the_iso_reset_time(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A 429 with the recorded X-RateLimit-Reset raises RateLimited with that instant."""
    headers = recorded("test_notifications").find("GET", "/api/v1/notifications")[
        "response_headers"
    ]
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(
        429, json={"error": "Too many requests"},
        headers={k: v for k, v in headers.items() if k.startswith("x-ratelimit")}
        | {"x-ratelimit-remaining": "0"},
    )
    async with adapter() as mastodon:
        with pytest.raises(RateLimited) as info:
            await mastodon.poll(None)
    assert info.value.reset_at == datetime.fromisoformat(headers["x-ratelimit-reset"])


async def test_favourite_and_delete(respx_mock: respx.MockRouter, recorded: Any) -> None:
    """React favourites the status and Delete deletes it, with the recorded answers."""
    rec = recorded("test_status_favourited_by")
    serve_open(respx_mock, recorded, me=admin(recorded))
    fav = respx_mock.post(f"{BASE}/api/v1/statuses/117020585802289163/favourite").respond(
        200, json=rec.body("POST", "/api/v1/statuses/117020585802289163/favourite")
    )
    gone = respx_mock.delete(f"{BASE}/api/v1/statuses/117020585802289163").respond(
        200, json=rec.body("DELETE", "/api/v1/statuses/117020585802289163")
    )
    target = ref("117020585802289163")
    async with adapter() as mastodon:
        liked = await mastodon.react(React(network="mastodon", target=target))
        deleted = await mastodon.delete(Delete(network="mastodon", target=target))
        with pytest.raises(CapabilityNotSupported):
            await mastodon.react(React(network="mastodon", target=target, reaction="🎉"))
    assert liked.ref == target
    assert deleted.ref == target
    assert fav.call_count == 1
    assert gone.call_count == 1


async def test_missing_status_is_not_found(respx_mock: respx.MockRouter, recorded: Any) -> None:
    """Mastodon's 404 body becomes NotFound."""
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.post(f"{BASE}/api/v1/statuses/1/favourite").respond(
        404, json={"error": "Record not found"}
    )
    async with adapter() as mastodon:
        with pytest.raises(NotFound) as info:
            await mastodon.react(React(network="mastodon", target=ref("1")))
    assert info.value.status == 404


async def test_find_sent_matches_text_visibility_and_parent(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """find_sent finds our recorded 'Toot number 7!' among our latest statuses, and nothing else."""
    rec = recorded("test_get_pagination_info")
    me = rec.body("GET", "/api/v1/accounts/verify_credentials")
    page = rec.find("GET", "/api/v1/accounts/117020565966271181/statuses")
    serve_open(respx_mock, recorded, me=me)
    listing = respx_mock.get(f"{BASE}/api/v1/accounts/117020565966271181/statuses").respond(
        200, json=page["response_body"], headers={"link": page["response_headers"]["link"]}
    )
    async with adapter() as mastodon:
        found = await mastodon.find_sent(
            Post(network="mastodon", text="Toot number 7!", visibility="unlisted")
        )
        public = await mastodon.find_sent(
            Post(network="mastodon", text="Toot number 7!", visibility="public")
        )
        never = await mastodon.find_sent(
            Post(network="mastodon", text="Toot number 1!", visibility="unlisted")
        )
    assert found is not None
    assert found.ref == ref("117020581898706890")
    assert public is None
    assert never is None
    assert listing.calls[0].request.url.params["exclude_reblogs"] == "true"


async def test_find_sent_passes_over_an_unreadable_status_but_never_calls_it_absent(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A bad status does not hide a match; with no match it raises instead of saying absent."""
    rec = recorded("test_get_pagination_info")
    me = rec.body("GET", "/api/v1/accounts/verify_credentials")
    listing = rec.body("GET", "/api/v1/accounts/117020565966271181/statuses")
    del listing[0]["account"]  # "Toot number 9!" is unreadable now
    serve_open(respx_mock, recorded, me=me)
    respx_mock.get(f"{BASE}/api/v1/accounts/117020565966271181/statuses").respond(
        200, json=listing
    )
    async with adapter() as mastodon:
        found = await mastodon.find_sent(
            Post(network="mastodon", text="Toot number 7!", visibility="unlisted")
        )
        with pytest.raises(PayloadError) as info:
            await mastodon.find_sent(
                Post(network="mastodon", text="Toot number 9!", visibility="unlisted")
            )
    assert found is not None
    assert found.ref == ref("117020581898706890")
    assert info.value.path == "statuses.0.account"


# -- streaming --------------------------------------------------------------------------


class _Broken(httpx.AsyncByteStream):
    """A body that sends ``data`` and then drops the connection."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset")


def _streamer(recorded: Any) -> dict[str, Any]:
    """Our account in the recorded stream: mastodonpy_test, who is mentioned."""
    body = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/user")
    first = body.split("data: ", 1)[1].split("\n", 1)[0]
    account: dict[str, Any] = json.loads(first)["account"]
    return account


async def _take(stream: AsyncIterator[Batch], count: int) -> list[Batch]:
    """The first ``count`` batches that carry events."""
    out: list[Batch] = []
    async for batch in stream:
        if batch.events:
            out.append(batch)
        if len(out) == count:
            break
    return out


async def test_recorded_user_stream_yields_mentions_edits_and_deletes(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """The recorded SSE body becomes two mentions, an edit and a deletion, in order."""
    body = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/user")
    serve_open(respx_mock, recorded, me=_streamer(recorded))
    catch_up = respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=[])
    respx_mock.get(f"{STREAM}/api/v1/streaming/user").respond(
        200, content=body.encode(), headers={"content-type": "text/event-stream"}
    )
    async with adapter() as mastodon:
        stream = mastodon.stream("13")
        batches = await _take(stream, 4)
        await stream.aclose()  # type: ignore[attr-defined]
    events = [e for b in batches for e in b.events]
    assert [type(e) for e in events] == [
        MessageReceived, MessageReceived, MessageUpdated, MessageDeleted,
    ]
    assert [b.cursor for b in batches] == ["14", "16", None, None]
    assert isinstance(events[1], MessageReceived)
    assert events[1].message.conversation == ref("direct:117020617532860042")
    assert isinstance(events[3], MessageDeleted)
    assert events[3].message == ref("117024236332527350")
    assert catch_up.calls[0].request.url.params["min_id"] == "13"


async def test_bad_streamed_notification_is_rejected_and_the_stream_goes_on(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A streamed notification without its account comes back rejected; the next events follow."""
    body = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/user")
    blocks = body.split("\n\n")
    head, data = blocks[1].split("data: ", 1)  # notification 14
    broken = json.loads(data)
    del broken["account"]
    blocks[1] = head + "data: " + json.dumps(broken)
    serve_open(respx_mock, recorded, me=_streamer(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=[])
    respx_mock.get(f"{STREAM}/api/v1/streaming/user").respond(
        200, content="\n\n".join(blocks).encode(), headers={"content-type": "text/event-stream"}
    )
    batches: list[Batch] = []
    async with adapter() as mastodon:
        stream = mastodon.stream("13")
        async for batch in stream:
            if batch.events or batch.rejected:
                batches.append(batch)
            if len(batches) == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
    bad, good = batches
    assert [r.path for r in bad.rejected] == ["notification.account"]
    assert json.loads(bad.rejected[0].body) == broken
    assert bad.cursor == "14"
    assert [e.id for e in good.events] == ["mastodon:message.received:117024236635443611"]


async def test_dropped_stream_reconnects_and_catches_up_from_the_cursor(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """After a drop, the stream polls from the last cursor before streaming again."""
    body = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/user")
    blocks = body.split("\n\n")
    first_part = "\n\n".join(blocks[:2]) + "\n\n"  # ":)", update, notification 14
    rest = "\n\n".join(blocks[4:])  # status.update, delete
    missed = json.loads(blocks[3].split("data: ", 1)[1])  # notification 16
    serve_open(respx_mock, recorded, me=_streamer(recorded))

    def notifications(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("min_id") == "14":
            return httpx.Response(200, json=[missed])
        return httpx.Response(200, json=[])

    polls = respx_mock.get(f"{BASE}/api/v1/notifications").mock(side_effect=notifications)
    respx_mock.get(f"{STREAM}/api/v1/streaming/user").mock(side_effect=[
        httpx.Response(200, stream=_Broken(first_part.encode())),
        httpx.Response(200, content=rest.encode()),
    ])
    async with adapter() as mastodon:
        stream = mastodon.stream(None)
        batches = await _take(stream, 4)
        await stream.aclose()  # type: ignore[attr-defined]
    ids = [e.id for b in batches for e in b.events]
    assert ids == [
        "mastodon:message.received:117024236408130890",
        "mastodon:message.received:117024236635443611",
        "mastodon:message.updated:117024236332527350:2026-08-02T05:22:24.192000+00:00",
        "mastodon:message.deleted:117024236332527350",
    ]
    assert [c.request.url.params.get("min_id") for c in polls.calls] == [None, "14"]


async def test_stream_gives_up_after_its_reconnections_in_a_row(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A stream that cannot connect tries 1 + stream_reconnects times, then TransientError."""
    serve_open(respx_mock, recorded, me=_streamer(recorded))
    streaming = respx_mock.get(f"{STREAM}/api/v1/streaming/user").mock(
        side_effect=httpx.ConnectError("connection refused")
    )
    async with adapter(stream_reconnects=2) as mastodon:
        with pytest.raises(TransientError, match="dropped 3 times in a row") as info:
            await _take(mastodon.stream("13"), 1)
    assert info.value.network == "mastodon"
    assert streaming.call_count == 3

