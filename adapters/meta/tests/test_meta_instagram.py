"""The Instagram sandbox's wire shapes and Meta's rules, driven through the adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnichannel.actions import Hide, PrivateReply, Reply
from omnichannel.adapter import WebhookRequest
from omnichannel.errors import ActionError, RateLimited, RequestRejected, WindowClosed
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel.model import Ref
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox

IG = "instagram"


@asynccontextmanager
async def account_of(sandbox: InstagramSandbox) -> AsyncIterator[InstagramAdapter]:
    adapter = InstagramAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                               clock=sandbox.clock.peek, retry=RetryPolicy(attempts=1))
    async with adapter:
        yield adapter


async def received(adapter: InstagramAdapter, record_id: str) -> MessageReceived:
    batch = await adapter.poll(None)
    for event in batch.events:
        if isinstance(event, MessageReceived) and event.message.ref.id == record_id:
            return event
    raise AssertionError(f"{record_id} not polled: {[e.id for e in batch.events]}")


def changes(sandbox: InstagramSandbox, after: int) -> list[dict[str, Any]]:
    """The entries of the signed deliveries rendered after world seq ``after``."""
    found = []
    for delivery in sandbox.webhook_deliveries(after_seq=after):
        body = json.loads(delivery.body)
        assert body["object"] == "instagram"
        found.extend(body["entry"])
    return found


def keys_of(kit: Any, name: str) -> set[str]:
    return set(json.loads(kit.vector(name)))


def test_comment_webhooks_have_the_recorded_shape(kit: Any) -> None:
    """A comment on our media and a reply to it: the fields of restfb's 2021 comments body."""
    sandbox = InstagramSandbox()
    media = sandbox.our_post("Autumn drop 🍂")
    start = sandbox.world.last_seq
    comment = sandbox.customer_comment(media, "@shop is the scarf wool?")
    ours = sandbox.world.add_post(sandbox.our_account, "Yes, merino!", in_reply_to=comment.id)
    answer = sandbox.customer_reply(ours, "great, thanks")
    entries = changes(sandbox, start)
    recorded = json.loads(kit.vector("instagram/restfb__wh-comments-2021.json"))
    shape = recorded["entry"][0]["changes"][0]
    values = {e["changes"][0]["value"]["id"]: e["changes"][0] for e in entries}
    top, reply = values[comment.id], values[answer.id]
    assert top["field"] == reply["field"] == shape["field"] == "comments"
    assert set(reply["value"]) == set(shape["value"])
    assert set(top["value"]) == set(shape["value"]) - {"parent_id"}
    assert reply["value"]["parent_id"] == ours.id
    assert reply["value"]["media"] == {"id": media.id, "media_product_type": "FEED"}
    assert reply["value"]["from"] == {"id": answer.author_id,
                                      "username": sandbox.world.account(answer.author_id).handle}
    assert {e["id"] for e in entries} == {sandbox.our_account.id}


def test_every_comment_on_our_media_is_delivered_once() -> None:
    """A customer answering another customer concerns us too: one comments entry each, in order."""
    sandbox = InstagramSandbox()
    media = sandbox.our_post("Autumn drop")
    start = sandbox.world.last_seq
    first = sandbox.customer_comment(media, "@shop is it merino?")
    other = sandbox.customer_reply(first, "it is, I have one", author=sandbox.customer())
    ours = sandbox.world.add_post(sandbox.our_account, "Yes!", in_reply_to=first.id)
    entries = changes(sandbox, start)
    ids = [e["changes"][0]["value"]["id"] for e in entries]
    assert ids == [first.id, other.id]
    assert ours.id not in ids
    batch = sandbox.webhook_batch(after_seq=start)
    assert batch is not None
    assert [e["changes"][0]["value"]["id"] for e in json.loads(batch.body)["entry"]] == ids


def test_mentions_and_dms_have_the_recorded_shape(kit: Any) -> None:
    """Mentions elsewhere name the comment and media; a DM has an aWdf... mid, ms timestamps."""
    sandbox = InstagramSandbox()
    start = sandbox.world.last_seq
    theirs = sandbox.customer_media("my new kettle from @shop")
    elsewhere = sandbox.customer_comment(theirs, "@shop do you restock?")
    dm = sandbox.customer_dm("hello 👋")
    entries = changes(sandbox, start)
    recorded = json.loads(kit.vector("instagram/restfb__wh-mentions.json"))["entry"][0]
    mentions = [e["changes"][0] for e in entries if "changes" in e]
    assert [m["field"] for m in mentions] == ["mentions", "mentions"]
    assert mentions[0]["value"] == {"media_id": theirs.id}
    assert mentions[1]["value"] == {"comment_id": elsewhere.id, "media_id": theirs.id}
    assert set(mentions[1]["value"]) == set(recorded["changes"][0]["value"])
    (messaging,) = [e for e in entries if "messaging" in e]
    shape = json.loads(kit.vector("instagram/restfb__messaging-attachment-unsupported.json"))
    assert set(messaging) == set(shape["entry"][0])
    item = messaging["messaging"][0]
    assert item["message"] == {"mid": dm.id, "text": "hello 👋"}
    assert item["message"]["mid"].startswith("aWdf")
    assert item["timestamp"] == int(dm.created_at.timestamp() * 1000)


async def test_every_rendered_delivery_parses_to_its_record() -> None:
    """Comments, replies, caption and comment mentions, DMs: each delivery gives its record."""
    sandbox = InstagramSandbox()
    media = sandbox.our_post("Autumn drop")
    start = sandbox.world.last_seq
    comment = sandbox.customer_comment(media, "@shop sizes?")
    theirs = sandbox.customer_media("unboxing my @shop order")
    elsewhere = sandbox.customer_comment(theirs, "@shop when is the sale?")
    dm = sandbox.customer_dm("is my order shipped?")
    adapter = InstagramAdapter(sandbox.adapter_settings())
    delivery = sandbox.webhook_batch(after_seq=start)
    assert delivery is not None
    request = WebhookRequest(method="POST", body=delivery.body,
                             headers={k.lower(): v for k, v in delivery.headers.items()})
    assert await adapter.verify(request) is None
    batch = adapter.parse(request)
    assert batch.rejected == ()
    messages = {e.message.ref.id: e.message for e in batch.events
                if isinstance(e, MessageReceived)}
    assert set(messages) == {comment.id, theirs.id, elsewhere.id, dm.id}
    assert messages[comment.id].in_reply_to is None  # top-level: it starts its own thread
    assert messages[comment.id].conversation == Ref(network=IG, id=media.id)
    assert messages[theirs.id].conversation == Ref(network=IG, id=theirs.id)
    assert messages[elsewhere.id].in_reply_to == Ref(network=IG, id=theirs.id)
    assert messages[dm.id].is_private


def test_a_caption_mention_webhook_is_delivered(kit: Any) -> None:
    """``mentions`` with only a media_id (a caption) is the media, not a rejected item."""
    body = json.dumps({"object": "instagram", "entry": [{"id": kit.ig_id, "time": 1519399310,
                       "changes": [{"field": "mentions", "value": {"media_id": "1789"}}]}]})
    batch = InstagramAdapter(kit.ig_settings()).parse(
        WebhookRequest(method="POST", body=body.encode()))
    (event,) = batch.events
    assert isinstance(event, MessageReceived)
    assert event.message.ref == event.message.conversation == Ref(network=IG, id="1789")
    assert event.message.in_reply_to is None


def test_a_recorded_top_level_comment_answers_no_message(kit: Any) -> None:
    """python-facebook's IGComment (media, no parent_id): the media's thread, no in_reply_to."""
    (event,) = InstagramAdapter.parse_payload(
        kit.vector("instagram/pyfacebook__models__ig_reply.json"), path="/18107567341036926")
    assert isinstance(event, MessageReceived)
    assert event.message.conversation == Ref(network=IG, id="17955956875141196")
    assert event.message.in_reply_to is None


async def test_the_graph_answers_have_the_recorded_keys(kit: Any) -> None:
    """Media comments, replies, a mentioned comment and a send: the keys python-facebook saw."""
    sandbox = InstagramSandbox()
    media = sandbox.our_post("Autumn drop")
    comment = sandbox.customer_comment(media, "@shop price?")
    sandbox.world.add_post(sandbox.our_account, "29 €", in_reply_to=comment.id)
    theirs = sandbox.customer_media("look what I got")
    elsewhere = sandbox.customer_comment(theirs, "@shop restock?")
    us = sandbox.our_account.id
    async with sandbox.client() as http:
        page = (await http.get(f"/v25.0/{media.id}/comments")).json()
        replies = (await http.get(f"/v25.0/{comment.id}/replies")).json()
        mentioned = (await http.get(f"/v25.0/{us}", params={
            "fields": f"mentioned_comment.comment_id({elsewhere.id}){{text,timestamp}}"})).json()
        theirs_comments = await http.get(f"/v25.0/{theirs.id}/comments")
    recorded = json.loads(kit.vector("instagram/pyfacebook__medias__comments_p1.json"))
    assert set(recorded["data"][0]) <= set(page["data"][0])
    assert page["data"][0]["id"] == comment.id
    assert set(json.loads(kit.vector("instagram/pyfacebook__comments__replies.json"))["data"][0]) \
        <= set(replies["data"][0])
    shape = json.loads(kit.vector("instagram/pyfacebook__users__mentioned_comment.json"))
    assert set(mentioned) == set(shape)
    assert set(mentioned["mentioned_comment"]) == set(shape["mentioned_comment"])
    assert mentioned["mentioned_comment"]["text"] == "@shop restock?"
    assert theirs_comments.status_code == 400  # only our own media's comments can be read
    assert theirs_comments.json()["error"]["code"] == 10


async def test_private_reply_once_per_comment_and_never_to_a_media() -> None:
    """One private reply per comment (Meta's 10/2018108 for a second); none on a media."""
    sandbox = InstagramSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Sale"), "price for the blue one?")
    async with account_of(sandbox) as account:
        message = (await received(account, comment.id)).message
        sent = await account.send(PrivateReply(network=IG, to=message, text="DM'd you"))
        with pytest.raises(ActionError):
            await account.send(PrivateReply(network=IG, to=message, text="again"))
    async with account_of(sandbox) as fresh:
        with pytest.raises(RequestRejected) as caught:
            await fresh.send(PrivateReply(network=IG, to=message, text="again"))
    assert caught.value.code == "10/2018108"
    (record,) = [r for r in sandbox.sent() if r.kind == "message"]
    assert (record.id, record.recipient, record.in_reply_to) == (
        sent.ref.id, comment.author_id, comment.id)
    async with sandbox.client() as http:
        answer = await http.post(f"/v25.0/{sandbox.our_account.id}/messages", json={
            "recipient": {"comment_id": comment.root}, "message": {"text": "to a media"}})
        by_post = await http.post(f"/v25.0/{sandbox.our_account.id}/messages", json={
            "recipient": {"post_id": comment.root}, "message": {"text": "post_id"}})
    assert answer.status_code == by_post.status_code == 400


async def test_private_reply_window_and_dm_window() -> None:
    """8 days after a comment, WindowClosed before any request; a DM after 30 hours too."""
    sandbox = InstagramSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Sale"), "hi")
    dm = sandbox.customer_dm("hello?")
    async with account_of(sandbox) as account:
        batch = await account.poll(None)
        by_id = {e.message.ref.id: e.message for e in batch.events
                 if isinstance(e, MessageReceived)}
        sandbox.clock.advance(timedelta(days=8))
        before = sandbox.request_count()
        with pytest.raises(WindowClosed):
            await account.send(PrivateReply(network=IG, to=by_id[comment.id], text="late"))
        with pytest.raises(WindowClosed):
            await account.send(Reply(network=IG, to=by_id[dm.id], text="late"))
        assert sandbox.request_count() == before


async def test_hidden_comments_cannot_be_answered_publicly() -> None:
    """Hide uses ?hide=true; a hidden comment is refused a public reply by the sandbox."""
    sandbox = InstagramSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Launch"), "spam spam")
    async with account_of(sandbox) as account:
        message = (await received(account, comment.id)).message
        await account.hide(Hide(network=IG, target=message.ref))
        assert sandbox.is_hidden(comment)
        with pytest.raises(RequestRejected):
            await account.send(Reply(network=IG, to=message, text="no"))
    assert sandbox.sent() == []


async def test_a_reply_to_a_caption_mention_goes_through_the_mentions_edge() -> None:
    """A caption that mentions us is answered with POST /{ig-user-id}/mentions?media_id=."""
    sandbox = InstagramSandbox()
    start = sandbox.world.last_seq
    theirs = sandbox.customer_media("best mug ever, thanks @shop")
    delivery = sandbox.webhook_batch(after_seq=start)
    assert delivery is not None
    adapter = InstagramAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                               clock=sandbox.clock.peek)
    (event,) = adapter.parse(WebhookRequest(method="POST", body=delivery.body)).events
    assert isinstance(event, MessageReceived)
    async with adapter:
        sent = await adapter.send(Reply(network=IG, to=event.message, text="Enjoy it! ☕"))
    assert sandbox.request_count(f"POST /v25.0/{sandbox.our_account.id}/mentions") == 1
    (record,) = sandbox.sent()
    assert (record.id, record.in_reply_to, record.text) == (sent.ref.id, theirs.id, "Enjoy it! ☕")


async def test_private_replies_are_paced_to_the_hourly_limit() -> None:
    """Over the hour's private replies: RateLimited until the oldest ages out, no request made."""
    sandbox = InstagramSandbox()
    media = sandbox.our_post("Giveaway 🎁")
    comments = [sandbox.customer_comment(media, f"me please {n}") for n in range(3)]
    adapter = InstagramAdapter({**sandbox.adapter_settings(), "private_replies_per_hour": 2},
                               transport=sandbox.transport(), clock=sandbox.clock.peek,
                               retry=RetryPolicy(attempts=1))
    async with adapter:
        batch = await adapter.poll(None)
        by_id = {e.message.ref.id: e.message for e in batch.events
                 if isinstance(e, MessageReceived)}
        first = datetime.now(UTC)
        for comment in comments[:2]:
            await adapter.send(PrivateReply(network=IG, to=by_id[comment.id], text="Sent!"))
        before = sandbox.request_count()
        with pytest.raises(RateLimited) as limited:
            await adapter.send(PrivateReply(network=IG, to=by_id[comments[2].id],
                                            text="Sent!"))
        assert sandbox.request_count() == before
    assert limited.value.reset_at is not None
    assert timedelta(minutes=59) < limited.value.reset_at - first < timedelta(minutes=61)
    assert len([r for r in sandbox.sent() if r.kind == "message"]) == 2


async def test_facebook_private_replies_are_not_paced_by_the_instagram_limit() -> None:
    """The hourly figure is Instagram's: a Page sends its private replies unpaced."""
    sandbox = FacebookSandbox()
    media = sandbox.our_post("Giveaway")
    comments = [sandbox.customer_comment(media, f"me {n}") for n in range(3)]
    adapter = FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                              clock=sandbox.clock.peek)
    async with adapter:
        batch = await adapter.poll(None)
        for event in batch.events:
            assert isinstance(event, MessageReceived)
            await adapter.send(PrivateReply(network="facebook", to=event.message, text="ok"))
    assert len([r for r in sandbox.sent() if r.kind == "message"]) == len(comments)
