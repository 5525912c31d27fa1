"""Webhook handshake, signatures and parsing, on the recorded restfb deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from omnichannel.adapter import WebhookRequest
from omnichannel.errors import PayloadError, WebhookSignatureError
from omnichannel.events import (
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
)
from omnichannel.hub import Hub
from omnichannel.model import Ref
from omnichannel.store import MemoryStore
from omnichannel_meta import FacebookAdapter, InstagramAdapter

FB = "facebook"
IG = "instagram"


def fb(kit: Any, **extra: Any) -> FacebookAdapter:
    return FacebookAdapter(kit.fb_settings(**extra))


def ig(kit: Any, **extra: Any) -> InstagramAdapter:
    return InstagramAdapter(kit.ig_settings(**extra))


def delivery(kit: Any, body: bytes) -> WebhookRequest:
    return WebhookRequest(method="POST", path="/facebook", headers=kit.signed(body), body=body)


def parse(adapter: FacebookAdapter | InstagramAdapter, kit: Any, name: str) -> Any:
    """Parse a recorded delivery; a bare name is one of restfb's Facebook webhooks."""
    if "/" not in name:
        name = f"facebook/restfb__webhooks__{name}.json"
    return adapter.parse(delivery(kit, kit.vector(name)))


# handshake and signature -------------------------------------------------------------


async def test_handshake_echoes_the_challenge_for_our_token(kit: Any) -> None:
    """hub.mode=subscribe with our verify token is answered 200 with the challenge."""
    request = WebhookRequest(method="GET", query={
        "hub.mode": "subscribe", "hub.verify_token": kit.verify_token,
        "hub.challenge": "1158201444",
    })
    answer = await fb(kit).verify(request)
    assert answer is not None
    assert (answer.status, answer.body) == (200, b"1158201444")


async def test_handshake_with_a_wrong_or_missing_token_is_refused(kit: Any) -> None:
    """A wrong token (or mode) is refused; a missing one counts as missing."""
    adapter = fb(kit)
    wrong = WebhookRequest(method="GET", query={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
    bad_mode = WebhookRequest(method="GET", query={
        "hub.mode": "unsubscribe", "hub.verify_token": kit.verify_token, "hub.challenge": "1"})
    missing = WebhookRequest(method="GET", query={"hub.mode": "subscribe", "hub.challenge": "1"})
    for request in (wrong, bad_mode):
        with pytest.raises(WebhookSignatureError) as caught:
            await adapter.verify(request)
        assert caught.value.missing is False
    with pytest.raises(WebhookSignatureError) as caught:
        await adapter.verify(missing)
    assert caught.value.missing is True


async def test_signature_is_hmac_sha256_of_the_raw_body(kit: Any) -> None:
    """A good sha256= signature passes; a tampered body, another secret or none is refused."""
    adapter = fb(kit)
    body = kit.vector("facebook/restfb__webhooks__feed-comment-add-211.json")
    assert await adapter.verify(delivery(kit, body)) is None
    upper = WebhookRequest(method="POST", body=body, headers={
        "x-hub-signature-256": kit.signed(body)["x-hub-signature-256"].upper().replace(
            "SHA256=", "sha256=")})
    assert await adapter.verify(upper) is None  # hex case does not matter
    tampered = WebhookRequest(method="POST", headers=kit.signed(body),
                              body=body.replace(b"next one", b"NEXT ONE"))
    other = WebhookRequest(method="POST", headers=kit.signed(body, "another-secret"), body=body)
    sha1_only = WebhookRequest(method="POST", headers={"x-hub-signature": "sha1=00"}, body=body)
    for request in (tampered, other):
        with pytest.raises(WebhookSignatureError) as caught:
            await adapter.verify(request)
        assert caught.value.missing is False
    with pytest.raises(WebhookSignatureError) as caught:
        await adapter.verify(sha1_only)
    assert caught.value.missing is True
    assert FacebookAdapter.signature_headers == frozenset({"x-hub-signature-256"})
    assert kit.app_secret not in repr(adapter.settings)


# Facebook feed ------------------------------------------------------------------------


def test_feed_comment_add_with_from(kit: Any) -> None:
    """A comment becomes a message in its post's thread, answering its parent."""
    batch = parse(fb(kit, page_id="999"), kit, "feed-comment-add-211")
    assert batch.rejected == ()
    (event,) = batch.events
    assert isinstance(event, MessageReceived)
    assert event.id == "facebook:message.received:901097836652708_903438993085259"
    message = event.message
    assert message.text == "and the next one"
    assert message.conversation == Ref(network=FB, id="1234567890321_901097836652708")
    assert message.in_reply_to == Ref(network=FB, id="1234567890321_901097836652708")
    assert message.author.ref.id == "1234567890321"
    assert message.author.display_name == "Tester"
    assert message.created_at == datetime.fromtimestamp(1449135003, UTC)
    assert message.from_us is False
    assert event.conversation.kind == "thread"
    assert event.account == "999"


def test_feed_comment_add_with_old_sender_fields_by_the_page_is_ours(kit: Any) -> None:
    """sender_id/sender_name (older deliveries) name the author; the Page's own is from_us."""
    batch = parse(fb(kit), kit, "feed-comment-add-25")
    (event,) = batch.events
    assert isinstance(event, MessageReceived)
    assert event.message.author.ref.id == kit.page_id
    assert event.message.author.display_name == "Tester"
    assert event.message.from_us is True


def test_feed_comment_edit_hide_unhide_and_remove(kit: Any) -> None:
    """edited/hide/unhide update the message (distinct ids); remove deletes it."""
    adapter = fb(kit)
    (edited,) = parse(adapter, kit, "feed-comment-edited-25").events
    (hidden,) = parse(adapter, kit, "feed-comment-hide").events
    (shown,) = parse(adapter, kit, "feed-comment-unhide").events
    (removed,) = parse(adapter, kit, "feed-comment-remove-25").events
    assert isinstance(edited, MessageUpdated)
    assert edited.message.text == "Let's see the Webhooks in action :D"
    assert edited.message.edited_at == datetime.fromtimestamp(1448555737, UTC)
    assert isinstance(hidden, MessageUpdated)
    assert isinstance(shown, MessageUpdated)
    assert hidden.message.raw is not None
    assert hidden.message.raw["verb"] == "hide"
    assert hidden.message.ref.id == "900728623356296_900744590021366"
    assert len({edited.id, hidden.id, shown.id}) == 3
    assert isinstance(removed, MessageDeleted)
    assert removed.message == Ref(network=FB, id="905578656204626_905579239537901")
    assert removed.conversation == Ref(network=FB, id="1234567890321_905578656204626")
    assert removed.occurred_at == datetime.fromtimestamp(1452107182, UTC)


def test_page_post_reaction_and_mention(kit: Any) -> None:
    """A Page post is its own thread; a reaction on a comment and a mention are events."""
    adapter = fb(kit, page_id="999")
    (post,) = parse(adapter, kit, "feed-status-add-25").events
    (love,) = parse(adapter, kit, "feed-reaction-add-comment").events
    (mention,) = parse(adapter, kit, "mention-comment-add").events
    assert isinstance(post, MessageReceived)
    assert post.message.ref == post.message.conversation == Ref(
        network=FB, id="1234567890321_930145403745849")
    assert post.message.text == "This is just a short test message"
    assert post.message.in_reply_to is None
    assert isinstance(love, ReactionAdded)
    assert love.target == Ref(network=FB, id="1234567890321_1264545546974600")
    assert (love.reaction, love.by.display_name) == ("love", "John Doe")
    assert isinstance(mention, MessageReceived)
    assert mention.message.text == "Just a test message"
    assert mention.message.conversation.id == "1234567890321_7363534231324"
    assert mention.message.author.ref.id == "unknown"


def test_unrelated_page_fields_give_no_event_and_no_rejection(kit: Any) -> None:
    """Two entries of Page settings changes (parking, payment options) are nothing to us."""
    batch = parse(fb(kit), kit, "feed-two-entries-25")
    assert (batch.events, batch.rejected) == ((), ())


# Messenger ------------------------------------------------------------------------------


def test_messenger_message_reply_and_attachment(kit: Any) -> None:
    """A DM is a private message in the customer's conversation (PSID), ms timestamps."""
    adapter = fb(kit, page_id="12345654332")
    (basic,) = parse(adapter, kit, "messaging-message-basic").events
    (reply,) = parse(adapter, kit, "messaging-message-reply-1").events
    (media,) = parse(adapter, kit, "messaging-message-media-attachment").events
    assert isinstance(basic, MessageReceived)
    assert basic.id == "facebook:message.received:mid.1457764197618:41d102a3e1ae206a38"
    assert basic.message.text == "hello, world!"
    assert basic.message.visibility == "private"
    assert basic.message.conversation == Ref(network=FB, id="987654321432")
    assert basic.message.created_at == datetime.fromtimestamp(1457764197.627, UTC)
    assert basic.conversation.kind == "direct"
    assert basic.message.from_us is False
    assert isinstance(reply, MessageReceived)
    assert reply.message.in_reply_to == Ref(
        network=FB, id="very_long_id_representing_the_original_message")
    assert isinstance(media, MessageReceived)
    assert [a.kind for a in media.message.attachments] == ["image"]
    assert media.message.text == ""


def test_messenger_echo_is_ours_and_deleted_and_reaction(kit: Any) -> None:
    """is_echo: from_us (never answered); is_deleted: a deletion; a reaction: its emoji."""
    adapter = fb(kit, page_id="12345654332")
    (echo,) = parse(adapter, kit, "messaging-message-basic-echo").events
    (gone,) = parse(adapter, kit, "messaging-message-isdeleted").events
    (sad,) = parse(adapter, kit, "messaging-reaction-1").events
    assert isinstance(echo, MessageReceived)
    assert echo.message.from_us is True
    assert echo.message.author.ref.id == "12345654332"
    assert echo.message.conversation.id == "987654321432"
    assert isinstance(gone, MessageDeleted)
    assert gone.message == Ref(network=FB, id="message_id")
    assert isinstance(sad, ReactionAdded)
    assert (sad.reaction, sad.target.id, sad.by.ref.id) == ("😢", "original_message_id", "USER_ID")


def test_read_delivery_and_postback_give_nothing(kit: Any) -> None:
    """Read receipts, deliveries and postbacks are skipped, not rejected."""
    adapter = fb(kit)
    for name in ("messaging-read-basic", "messaging-delivery-basic", "messaging-postback-basic"):
        batch = parse(adapter, kit, f"facebook/restfb__webhooks__{name}.json")
        assert (batch.events, batch.rejected) == ((), ()), name


# Instagram ------------------------------------------------------------------------------


def test_instagram_comment_with_parent_and_media(kit: Any) -> None:
    """An Instagram comment: thread = media, answering its parent, author from from.id."""
    batch = parse(ig(kit), kit, "instagram/restfb__wh-comments-2021.json")
    (event,) = batch.events
    assert isinstance(event, MessageReceived)
    assert event.id == "instagram:message.received:123456789"
    assert event.message.text == "This is an example."
    assert event.message.conversation == Ref(network=IG, id="76543987")
    assert event.message.in_reply_to == Ref(network=IG, id="987654321")
    assert event.message.author.ref.id == "1234536447"
    assert event.message.author.handle == "testuser"
    assert event.message.created_at == datetime.fromtimestamp(1519399307, UTC)


def test_instagram_comment_without_from_is_still_delivered(kit: Any) -> None:
    """A comment whose webhook lacks from.id is delivered with an unknown author."""
    for name in ("restfb__wh-comments.json", "restfb__wh-livecomments.json"):
        (event,) = parse(ig(kit), kit, f"instagram/{name}").events
        assert isinstance(event, MessageReceived)
        assert event.message.text == "This is an example."
        assert event.message.author.ref.id == "unknown"
        assert event.conversation.participants == ()


def test_instagram_mention_and_dm(kit: Any) -> None:
    """A mention names the comment and media; a DM with an unsupported attachment is a file."""
    (mention,) = parse(ig(kit), kit, "instagram/restfb__wh-mentions.json").events
    assert isinstance(mention, MessageReceived)
    assert mention.message.ref.id == "17887498072083520"
    (dm,) = parse(ig(kit), kit, "instagram/restfb__messaging-attachment-unsupported.json").events
    assert isinstance(dm, MessageReceived)
    assert dm.message.conversation == Ref(network=IG, id="5614879045272581")
    assert [a.kind for a in dm.message.attachments] == ["file"]
    seen = parse(ig(kit), kit, "instagram/restfb__messaging-seen.json")
    assert (seen.events, seen.rejected) == ((), ())


def test_ad_comment_delivered_twice_is_handled_once(kit: Any) -> None:
    """Comments on ads may be delivered twice: both parse to the same event id."""
    raw = json.loads(kit.vector("instagram/restfb__wh-comments-2021.json"))
    raw["entry"][0]["changes"][0]["value"]["media"]["ad_id"] = "23850000000000001"
    body = json.dumps(raw).encode()
    first = ig(kit).parse(delivery(kit, body)).events
    again = ig(kit).parse(delivery(kit, body)).events
    assert [e.id for e in first] == [e.id for e in again]


# one bad item ------------------------------------------------------------------------


def test_one_bad_item_is_rejected_alone(kit: Any) -> None:
    """Three changes, the middle one without a comment_id: two events, one rejection."""
    good = json.loads(kit.vector("facebook/restfb__webhooks__feed-comment-add-211.json"))
    change = good["entry"][0]["changes"][0]
    broken = json.loads(json.dumps(change))
    del broken["value"]["comment_id"]
    other = json.loads(json.dumps(change))
    other["value"]["comment_id"] = "901097836652708_1"
    good["entry"][0]["changes"] = [change, broken, other]
    batch = fb(kit).parse(delivery(kit, json.dumps(good).encode()))
    assert [e.id.rsplit(":", 1)[1] for e in batch.events] == [
        "901097836652708_903438993085259", "901097836652708_1"]
    (rejected,) = batch.rejected
    assert rejected.path == "entry.0.changes.1.value.comment_id"
    assert json.loads(rejected.body) == broken


def test_an_unreadable_body_is_a_payload_error(kit: Any) -> None:
    """Not JSON, or no entry list: the whole body is refused."""
    for body in (b"{not json", b'{"object": "page"}'):
        with pytest.raises(PayloadError):
            fb(kit).parse(delivery(kit, body))


async def test_through_the_webhook_app_a_bad_item_is_a_dead_letter(kit: Any, graph: Any) -> None:
    """hub.asgi: 200, the good comment stored, the bad one kept as a dead letter."""
    good = json.loads(kit.vector("facebook/restfb__webhooks__feed-comment-add-211.json"))
    change = good["entry"][0]["changes"][0]
    good["entry"].append({"id": "1234567890321", "time": 1, "changes": [{"field": "feed",
                                                                        "value": "oops"}]})
    body = json.dumps(good).encode()
    hub = Hub(adapters=[FacebookAdapter(kit.fb_settings(), transport=graph.transport())],
              store=MemoryStore())
    transport = httpx.ASGITransport(app=hub.asgi)
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        response = await c.post("/facebook", content=body, headers=kit.signed(body))
        stored = await hub.store.unhandled_events()
        letters = await hub.store.dead_letters()
    assert response.status_code == 200
    assert [e.id for e in stored] == [
        f"facebook:message.received:{change['value']['comment_id']}"]
    (letter,) = letters
    assert letter.reason.startswith("entry.1.changes.0.value")
    assert json.loads(letter.body) == {"field": "feed", "value": "oops"}


async def test_an_echo_is_stored_but_never_answered(kit: Any, graph: Any) -> None:
    """is_echo arrives from_us: the hub keeps it in the conversation, no handler runs."""
    echo = json.loads(kit.vector("facebook/restfb__webhooks__messaging-message-basic-echo.json"))
    echo["entry"][0]["id"] = kit.page_id
    echo["entry"][0]["messaging"][0]["recipient"]["id"] = kit.page_id
    body = json.dumps(echo).encode()
    hub = Hub(adapters=[FacebookAdapter(kit.fb_settings(), transport=graph.transport())],
              store=MemoryStore())
    answered: list[str] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Any) -> None:
        answered.append(event.message.text)
        await ctx.reply("auto-answer")

    transport = httpx.ASGITransport(app=hub.asgi)
    async with hub, anyio.create_task_group() as tg, httpx.AsyncClient(
        transport=transport, base_url="http://hub.test"
    ) as c:
        await tg.start(partial(hub.run, listen=False))
        response = await c.post("/facebook", content=body, headers=kit.signed(body))
        await hub.wait_idle()
        history = await hub.store.conversation_messages(Ref(network=FB, id="987654321432"))
        unhandled = await hub.store.unhandled_events()
        queued = await hub.store.list_outbox()
        tg.cancel_scope.cancel()
    assert response.status_code == 200
    assert [(m.text, m.from_us) for m in history] == [("hello, world!", True)]
    assert unhandled == []
    assert answered == []
    assert queued == []
