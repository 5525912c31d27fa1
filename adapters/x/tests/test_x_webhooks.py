"""Webhook deliveries: CRC and signatures via the hub, XAA and AAA shapes, subscriptions, replay.

The Account Activity bodies wrap tweepy's recorded v1.1 objects (a post from
``verify_credentials``' ``status`` and the ``message_create`` event of
``direct_messages/events/new``) in the AAA envelope X documents
(``for_user_id``, ``tweet_create_events``, ``direct_message_events``); the
envelope is written here. The X Activity deliveries come from `XSandbox`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnichannel.adapter import Batch, WebhookRequest
from omnichannel.errors import (
    CapabilityNotSupported,
    NotFound,
    PayloadError,
    RequestRejected,
    WebhookSignatureError,
)
from omnichannel.events import MessageReceived
from omnichannel.hub import Hub
from omnichannel.model import Link
from omnichannel.store import MemoryStore
from omnichannel.testing import WebhookDelivery
from omnichannel_x import Subscription, XAdapter, capabilities_for
from omnichannel_x._activity import dotted
from omnichannel_x.sandbox import XSandbox
from omnichannel_x.webhooks import SIGNATURE_HEADER, sign

from .conftest import Vectors

pytestmark = pytest.mark.anyio

SECRET = "consumer-secret"


def _offline(**overrides: Any) -> XAdapter:
    """An adapter that only parses (no request is made)."""
    return XAdapter({"access_token": "t", "webhook_secret": SECRET, **overrides})


def _request(body: dict[str, Any] | bytes) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(method="POST", path="/x", body=raw,
                          headers={SIGNATURE_HEADER: sign(raw, SECRET)})


def _messages(parsed: Any) -> list[MessageReceived]:
    assert isinstance(parsed, Batch)
    return [e for e in parsed.events if isinstance(e, MessageReceived)]


def _as_request(delivery: WebhookDelivery) -> WebhookRequest:
    return WebhookRequest(method=delivery.method, path=delivery.path, query=delivery.query,
                          body=delivery.body,
                          headers={k.lower(): v for k, v in delivery.headers.items()})


# the two event-type spellings -------------------------------------------------------------


def test_event_types_read_in_both_spellings() -> None:
    """PascalCase types (before 2026-03-18) read as the dotted ones."""
    assert dotted("PostMentionCreate") == "post.mention.create"
    assert dotted("DMReceived") == "dm.received"
    assert dotted("DmIndicateTyping") == "dm.indicate.typing"
    assert dotted("post.reply.create") == "post.reply.create"
    assert dotted("Dm.Received") == "dm.received"


# Account Activity API shapes from recorded v1.1 objects ----------------------------------


async def test_account_activity_post_from_a_recorded_v1_status(recorded: Vectors) -> None:
    """tweet_create_events[]: a v1.1 post reads with its t.co link expanded and its author.

    The post is ``verify_credentials``' ``status``, with the account around it as ``user``.
    """
    me = recorded("testsendanddeletedirectmessage").interactions[0]["response_body"]
    status = {**me["status"], "user": {k: v for k, v in me.items() if k != "status"}}
    x = _offline()
    request = _request({"for_user_id": "2244994945", "tweet_create_events": [status]})
    assert await x.verify(request) is None
    [event] = _messages(x.parse(request))
    message = event.message
    assert message.ref.id == "1149914662164684800"
    assert message.author.handle == "TweepyDev"
    assert message.author.ref.id == "1072250532645998596"
    assert message.created_at == datetime(2019, 7, 13, 5, 33, 14, tzinfo=UTC)
    [link] = [e for e in message.entities if isinstance(e, Link)]
    photo = "https://twitter.com/TweepyDev/status/1149914662164684800/photo/1"
    assert link.url == photo
    assert message.text == f"testing 1000 {photo}"
    assert message.text[link.start:link.end] == photo
    assert message.ref.id in event.id


async def test_account_activity_dm_from_a_recorded_message_create(recorded: Vectors) -> None:
    """direct_message_events[]: a message_create event becomes a private message."""
    sent = recorded("testsendanddeletedirectmessage").interactions
    event = next(i for i in sent if i["method"] == "POST")["response_body"]["event"]
    x = _offline()
    body = {"for_user_id": "2244994945", "direct_message_events": [event],
            "users": {"1072250532645998596": {"id": "1072250532645998596",
                                              "name": "Tweepy Testing",
                                              "screen_name": "TweepyDev"}}}
    [received] = _messages(x.parse(_request(body)))
    message = received.message
    assert (message.ref.id, message.text) == ("1150493286110552068", "test message")
    assert message.visibility == "private"
    assert message.conversation.id == "1072250532645998596-1072250532645998596"
    assert message.author.handle == "TweepyDev"
    assert message.created_at == datetime.fromtimestamp(1563133949.197, UTC)


async def test_typing_read_and_unknown_items_give_nothing_or_are_rejected() -> None:
    """Typing and read events give no event; a broken item is rejected, the rest kept."""
    x = _offline()
    quiet = {"for_user_id": "1", "direct_message_indicate_typing_events": [{"sender_id": "2"}],
             "direct_message_mark_read_events": [{"sender_id": "2"}]}
    assert _messages(x.parse(_request(quiet))) == []
    broken = {"for_user_id": "1", "tweet_create_events": [
        {"id_str": "5", "text": "no author"},
        {"id_str": "1149914662164684800", "text": "hello @shop", "created_at":
         "Sat Jul 13 05:33:14 +0000 2019", "user": {"id_str": "7", "screen_name": "amy"}},
    ]}
    parsed = x.parse(_request(broken))
    assert isinstance(parsed, Batch)
    assert [e.message.text for e in _messages(parsed)] == ["hello @shop"]
    assert [r.path for r in parsed.rejected] == ["tweet_create_events.0.user"]
    with pytest.raises(PayloadError):
        x.parse(_request(b"not json"))
    with pytest.raises(PayloadError):
        x.parse(_request({"something": "else"}))


# X Activity API through the hub -------------------------------------------------------------


async def test_crc_and_signed_deliveries_through_the_hub() -> None:
    """CRC answered; mention, implicit reply and DM stored once; polling them again adds none."""
    sandbox = XSandbox(seed=3)
    start = sandbox.world.last_seq
    ours = sandbox.our_post("Our opening hours")
    after_ours = sandbox.world.last_seq
    mention = sandbox.customer_mention("where is my parcel?")
    reply = sandbox.customer_reply(ours, "open on Sunday?")
    dm = sandbox.customer_dm("my order number is 1234")
    deliveries = sandbox.webhook_deliveries(after_seq=max(start, after_ours))
    kinds = [json.loads(d.body)["data"]["event_type"] for d in deliveries]
    assert kinds == ["post.mention.create", "post.reply.create", "dm.received"]
    adapter = XAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    assert "webhook" in adapter.capabilities.inbound
    hub = Hub(adapters=[adapter], store=MemoryStore())
    crc = sandbox.crc_challenge()
    transport = httpx.ASGITransport(app=hub.asgi)
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        shaken = await c.get("/x", params=crc.query)
        posted = [await c.post("/x", content=d.body, headers=d.headers) for d in deliveries]
        tampered = await c.post("/x", content=deliveries[0].body.replace(b"parcel", b"PARCEL"),
                                headers=deliveries[0].headers)
        unsigned = await c.post("/x", content=deliveries[0].body,
                                headers={"content-type": "application/json"})
        batch = await adapter.poll(None)
        await hub.ingest("x", list(batch.events), cursor=batch.cursor)
        stored = await hub.store.unhandled_events()
    assert shaken.status_code == 200
    assert shaken.json() == {"response_token": sandbox.crc_answer(crc.query["crc_token"])}
    assert [p.status_code for p in posted] == [200, 200, 200]
    assert (tampered.status_code, unsigned.status_code) == (403, 401)
    ids = sorted(e.message.ref.id for e in stored if isinstance(e, MessageReceived))
    assert ids == sorted([mention.id, reply.id, dm.id])


async def test_pascal_case_delivery_parses_like_the_dotted_one() -> None:
    """A delivery from before 2026-03-18 (``PostMentionCreate``) gives the same event."""
    sandbox = XSandbox(seed=4)
    start = sandbox.world.last_seq
    post = sandbox.customer_mention("old spelling")
    [notification] = sandbox.world.notifications_for(sandbox.our_account, after_seq=start)
    old = sandbox.activity_event(notification, pascal_case=True)
    new = sandbox.activity_event(notification)
    assert old is not None
    assert new is not None
    assert old["event_type"] == "PostMentionCreate"
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        got = [_messages(x.parse(_as_request(sandbox.sign({"data": e}))))[0].id
               for e in (old, new)]
    assert got[0] == got[1]
    assert got[0].endswith(post.id)


async def test_our_own_dm_and_read_events_give_nothing() -> None:
    """``dm.sent`` (our echo), ``dm.read`` and profile events are not messages."""
    x = _offline()
    for kind in ("dm.sent", "DmRead", "profile.update.bio", "dm.indicate_typing"):
        body = {"data": {"event_uuid": "1", "filter": {"user_id": "1"}, "event_type": kind,
                         "payload": {"id": "9", "text": "hi", "sender_id": "1"}}}
        assert _messages(x.parse(_request(body))) == [], kind


async def test_without_a_secret_there_are_no_webhooks() -> None:
    """No consumer secret: webhook is not declared and verify refuses to guess."""
    x = XAdapter({"access_token": "t"})
    assert x.capabilities.inbound == frozenset({"poll"})
    assert capabilities_for("pro", webhooks=True).inbound == frozenset({"poll", "webhook"})
    with pytest.raises(CapabilityNotSupported):
        await x.verify(WebhookRequest(method="GET", query={"crc_token": "a"}))
    oauth1 = XAdapter({"consumer_key": "k", "consumer_secret": SECRET, "oauth1_token": "t",
                       "oauth1_token_secret": "s"})
    assert "webhook" in oauth1.capabilities.inbound
    assert await oauth1.verify(_request({"for_user_id": "1"})) is None
    with pytest.raises(WebhookSignatureError):
        await oauth1.verify(WebhookRequest(method="GET", query={}))


# subscriptions and replay -----------------------------------------------------------------------


async def test_subscriptions_are_created_listed_and_deleted() -> None:
    """POST/GET/DELETE /2/activity/subscriptions; a duplicate is refused."""
    sandbox = XSandbox(seed=5)
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as x:
        made = await x.create_subscription("post.mention.create", webhook_id=sandbox.webhook_id,
                                           tag="helpdesk")
        dms = await x.create_subscription("DmReceived", webhook_id=sandbox.webhook_id)
        with pytest.raises(RequestRejected):
            await x.create_subscription("post.mention.create", webhook_id=sandbox.webhook_id)
        listed = await x.list_subscriptions()
        await x.delete_subscription(made.subscription_id)
        with pytest.raises(NotFound):
            await x.delete_subscription(made.subscription_id)
        left = await x.list_subscriptions()
    assert isinstance(made, Subscription)
    assert (made.event_type, made.tag, made.filter.user_id) == (
        "post.mention.create", "helpdesk", sandbox.our_account.id)
    assert {s.subscription_id for s in listed} == {made.subscription_id, dms.subscription_id}
    assert [s.subscription_id for s in left] == [dms.subscription_id]
    # X's spec: the app-only token lists and deletes; creating a private event's takes the user's
    assert {line.rsplit("/", 1)[0] if line.startswith("DELETE") else line
            for line in sandbox.app_requests} == {
        "GET /2/activity/subscriptions", "DELETE /2/activity/subscriptions"}


async def test_replay_redelivers_a_range_and_the_hub_keeps_each_once() -> None:
    """POST /2/webhooks/replay with whole minutes; replayed deliveries add no duplicate."""
    sandbox = XSandbox(seed=6)
    start = sandbox.world.last_seq
    since = sandbox.clock.peek() - timedelta(minutes=1)
    post = sandbox.customer_mention("lost while we were down")
    until = sandbox.clock.peek() + timedelta(minutes=1)
    [first] = sandbox.webhook_deliveries(after_seq=start)
    adapter = XAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    hub = Hub(adapters=[adapter], store=MemoryStore())
    transport = httpx.ASGITransport(app=hub.asgi)
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        await c.post("/x", content=first.body, headers=first.headers)
        job = await adapter.replay(sandbox.webhook_id, since, until)
        replayed = sandbox.replay_deliveries(job)
        answers = [await c.post("/x", content=d.body, headers=d.headers) for d in replayed]
        with pytest.raises(ValueError, match="before"):
            await adapter.replay(sandbox.webhook_id, until, since)
        stored = await hub.store.unhandled_events()
    minute = timedelta(minutes=1)
    assert sandbox.replay_jobs[job] == (
        since.replace(second=0, microsecond=0), until.replace(second=0, microsecond=0) + minute,
        sandbox.webhook_id,
    )
    assert len(replayed) == 1
    assert [a.status_code for a in answers] == [200]
    assert [e.message.ref.id for e in stored if isinstance(e, MessageReceived)] == [post.id]
