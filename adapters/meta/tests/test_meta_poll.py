"""The reconciliation poll: what a webhook outage dropped is found, with the webhook's ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnichannel.adapter import WebhookRequest
from omnichannel.errors import RateLimited
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel.hub import Hub
from omnichannel.store import MemoryStore
from omnichannel_meta import FacebookAdapter, InstagramAdapter

V = "/v25.0"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def fb_graph(graph: Any, kit: Any) -> None:
    """A Page with one recent post (two comments) and one conversation (two messages)."""
    post = "1234567890321_901097836652708"
    graph.on(f"GET {V}/{kit.page_id}/feed", {"data": [
        {"id": post, "updated_time": iso(NOW - timedelta(minutes=5)),
         "from": {"id": kit.page_id, "name": "Test Page"}}]})
    graph.on(f"GET {V}/{kit.page_id}/tagged", {"data": [
        {"id": "555_777", "message": "@Test Page my parcel?", "from": {"id": "555"},
         "created_time": iso(NOW - timedelta(minutes=3)),
         "message_tags": [{"id": kit.page_id, "name": "Test Page", "type": "page",
                           "offset": 0, "length": 10}]}]})
    graph.on(f"GET {V}/555_777/comments", {"data": []})
    graph.on(f"GET {V}/{post}/comments", {"data": [
        {"id": "901097836652708_903438993085259", "message": "and the next one",
         "created_time": iso(NOW - timedelta(minutes=10)), "from": {"id": "555", "name": "C"}},
        {"id": "901097836652708_1", "message": "a reply",
         "created_time": iso(NOW - timedelta(minutes=8)), "from": {"id": "556"},
         "parent": {"id": "901097836652708_903438993085259"}},
        {"message": "no id", "created_time": iso(NOW)},
        {"id": "901097836652708_old", "message": "long ago",
         "created_time": iso(NOW - timedelta(days=3)), "from": {"id": "557"}},
    ]})
    graph.on(f"GET {V}/{kit.page_id}/conversations", {"data": [
        {"id": "t_587956915396498", "updated_time": iso(NOW - timedelta(minutes=1))}]})
    graph.on(f"GET {V}/t_587956915396498/messages", {"data": [
        {"id": "m_ours", "message": "we answered", "created_time": iso(NOW - timedelta(minutes=1)),
         "from": {"id": kit.page_id, "name": "Test Page"},
         "to": {"data": [{"id": "987654321432"}]}},
        {"id": "mid.1457764197618:41d102a3e1ae206a38", "message": "hello, world!",
         "created_time": iso(NOW - timedelta(minutes=2)), "from": {"id": "987654321432"},
         "to": {"data": [{"id": kit.page_id}]}},
    ]})


def adapter(kit: Any, graph: Any) -> FacebookAdapter:
    return FacebookAdapter(kit.fb_settings(), transport=graph.transport(), clock=lambda: NOW,
                           retry=RetryPolicy(attempts=1))


async def test_poll_reads_recent_comments_and_conversations(kit: Any, graph: Any) -> None:
    """Comments since the cursor and conversation messages become events; a bad one rejected."""
    fb_graph(graph, kit)
    async with adapter(kit, graph) as page:
        since = NOW - timedelta(hours=1)
        batch = await page.poll(str(int(since.timestamp())))
    texts = [e.message.text for e in batch.events if isinstance(e, MessageReceived)]
    assert texts == ["and the next one", "a reply", "@Test Page my parcel?", "hello, world!"]
    by_text = {e.message.text: e for e in batch.events if isinstance(e, MessageReceived)}
    reply = by_text["a reply"].message
    assert reply.in_reply_to is not None
    assert reply.in_reply_to.id == "901097836652708_903438993085259"
    assert reply.conversation.id == "1234567890321_901097836652708"
    dm = by_text["hello, world!"].message
    assert (dm.conversation.id, dm.visibility, dm.from_us) == ("987654321432", "private", False)
    assert "we answered" not in by_text  # ours: the outbox recorded it when it was sent
    tagged = by_text["@Test Page my parcel?"].message
    assert (tagged.ref, tagged.conversation, tagged.in_reply_to) == (
        tagged.conversation, tagged.conversation, None)
    (mention,) = tagged.entities
    assert mention.text_in(tagged.text) == "@Test Page"
    (rejected,) = batch.rejected
    assert rejected.path == "feed.0.comments.2.id"
    newest = int((NOW - timedelta(minutes=2)).timestamp())
    stamp, ids, digests = (batch.cursor or "").split("|")
    assert (stamp, ids) == (
        str(newest), "facebook:message.received:mid.1457764197618:41d102a3e1ae206a38")
    assert len(digests) == 16  # the unusable comment, so the next poll does not report it
    params = graph.sent(f"GET {V}/{kit.page_id}/feed")[0].url.params
    assert params["limit"] == "10"


async def test_polling_again_from_the_cursor_repeats_nothing(kit: Any, graph: Any) -> None:
    """The cursor names the newest second and the ids seen in it: nothing comes twice."""
    fb_graph(graph, kit)
    async with adapter(kit, graph) as page:
        first = await page.poll(str(int((NOW - timedelta(hours=1)).timestamp())))
        again = await page.poll(first.cursor)
    assert len(first.events) == 4
    assert len(first.rejected) == 1
    assert (again.events, again.rejected) == ((), ())
    assert again.cursor == first.cursor


async def test_first_poll_looks_back_a_day(kit: Any, graph: Any) -> None:
    """Without a cursor the poll reaches back reconcile_lookback (24 h): not 3 days."""
    fb_graph(graph, kit)
    async with adapter(kit, graph) as page:
        batch = await page.poll(None)
    texts = {e.message.text for e in batch.events if isinstance(e, MessageReceived)}
    assert "long ago" not in texts
    assert "and the next one" in texts


async def test_webhook_and_poll_give_the_same_event_ids(kit: Any, graph: Any) -> None:
    """The recorded comment and DM, by webhook then by poll: the hub keeps each once."""
    fb_graph(graph, kit)
    comment = kit.vector("facebook/restfb__webhooks__feed-comment-add-211.json")
    direct = json.loads(kit.vector("facebook/restfb__webhooks__messaging-message-basic.json"))
    direct["entry"][0]["id"] = kit.page_id
    direct["entry"][0]["messaging"][0]["recipient"]["id"] = kit.page_id
    page = adapter(kit, graph)
    hub = Hub(adapters=[page], store=MemoryStore())
    async with hub:
        hooked = []
        for body in (comment, json.dumps(direct).encode()):
            hooked += page.parse(WebhookRequest(method="POST", body=body)).events
        first = await hub.ingest("facebook", hooked, stream="webhook")
        batch = await page.poll(str(int((NOW - timedelta(hours=1)).timestamp())))
        second = await hub.ingest("facebook", batch.events, cursor=batch.cursor)
    polled_ids = {e.id for e in batch.events}
    assert {e.id for e in hooked} <= polled_ids
    assert len(first) == 2
    assert sorted(e.id for e in second) == sorted(polled_ids - {e.id for e in hooked})
    assert "facebook:message.received:901097836652708_903438993085259" not in {
        e.id for e in second}


async def test_instagram_poll_reads_media_comments(kit: Any, graph: Any) -> None:
    """IG: /{account}/media, then /{media}/comments (recorded page), conversations (platform)."""
    graph.on(f"GET {V}/{kit.ig_id}/media", {"data": [{"id": "17846368219941692"}]})
    comments = json.loads(kit.vector("instagram/pyfacebook__medias__comments_p1.json"))
    graph.on(f"GET {V}/17846368219941692/comments", comments)
    graph.on(f"GET {V}/{kit.ig_id}/conversations", {"data": []})
    clock_now = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    account = InstagramAdapter(kit.ig_settings(), transport=graph.transport(),
                               clock=lambda: clock_now, retry=RetryPolicy(attempts=1))
    async with account:
        batch = await account.poll(None)
    assert [e.id for e in batch.events] == [
        "instagram:message.received:17874875428706419",
        "instagram:message.received:17858154961981086",
    ]
    first = batch.events[0]
    assert isinstance(first, MessageReceived)
    assert first.message.text == "Beautiful!"
    assert first.message.conversation.id == "17846368219941692"
    assert first.message.author.ref.id == "unknown"
    conversations = graph.sent(f"GET {V}/{kit.ig_id}/conversations")[0]
    assert conversations.url.params["platform"] == "instagram"


async def test_a_throttled_listing_is_rate_limited_not_lost(kit: Any, graph: Any) -> None:
    """Code 32 (Page limit) on the poll: RateLimited, and the cursor is not moved."""
    graph.on(f"GET {V}/{kit.page_id}/feed", lambda r: httpx.Response(400, json={"error": {
        "message": "(#32) Page request limit reached", "code": 32}}))
    async with adapter(kit, graph) as page:
        with pytest.raises(RateLimited):
            await page.poll("1")


async def test_instagram_poll_reads_nested_replies(kit: Any, graph: Any) -> None:
    """Replies come nested under their top-level comment (recorded reply shape)."""
    replies = json.loads(kit.vector("instagram/pyfacebook__comments__replies.json"))
    graph.on(f"GET {V}/{kit.ig_id}/media", {"data": [{"id": "17846368219941692"}]})
    graph.on(f"GET {V}/17846368219941692/comments", {"data": [
        {"id": "17858154961981086", "text": "Beautiful!", "timestamp": "2020-08-07T03:00:00+0000",
         "from": {"id": "42", "username": "lixiangguodu123"}, "replies": replies}]})
    graph.on(f"GET {V}/{kit.ig_id}/conversations", {"data": []})
    clock_now = datetime(2020, 8, 7, 12, 0, tzinfo=UTC)
    account = InstagramAdapter(kit.ig_settings(), transport=graph.transport(),
                               clock=lambda: clock_now, retry=RetryPolicy(attempts=1))
    async with account:
        batch = await account.poll(None)
    comment, reply = batch.events
    assert isinstance(reply, MessageReceived)
    assert reply.message.text == "@lixiangguodu123 nihao"
    assert reply.message.in_reply_to is not None
    assert reply.message.in_reply_to.id == comment.message.ref.id  # type: ignore[union-attr]
    assert reply.message.conversation.id == "17846368219941692"
    fields = graph.sent(f"GET {V}/17846368219941692/comments")[0].url.params["fields"]
    assert "replies{" in fields
