"""The Facebook sandbox's Meta rules, driven through the adapter and the hub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest

from omnichannel.actions import Hide, PrivateReply, Reply
from omnichannel.errors import ActionError, RequestRejected, TokenExpired, WindowClosed
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel.hub import Hub
from omnichannel.store import MemoryStore
from omnichannel_meta import FacebookAdapter
from omnichannel_meta.sandbox import FacebookSandbox


@asynccontextmanager
async def page_of(sandbox: FacebookSandbox) -> AsyncIterator[FacebookAdapter]:
    adapter = FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                              clock=sandbox.clock.peek, retry=RetryPolicy(attempts=1))
    async with adapter:
        yield adapter


async def received(page: FacebookAdapter, record_id: str) -> MessageReceived:
    batch = await page.poll(None)
    for event in batch.events:
        if isinstance(event, MessageReceived) and event.message.ref.id == record_id:
            return event
    raise AssertionError(f"{record_id} not polled: {[e.id for e in batch.events]}")


async def test_dm_windows_response_then_human_agent_then_closed() -> None:
    """23 h: RESPONSE lands; 30 h: only HUMAN_AGENT with the permission; 8 days: nothing."""
    sandbox = FacebookSandbox()
    sandbox.human_agent_permission = True
    dm = sandbox.customer_dm("where is my refund?")
    async with page_of(sandbox) as page:
        message = (await received(page, dm.id)).message
        sandbox.clock.advance(timedelta(hours=23))
        await page.send(Reply(network="facebook", to=message, text="Looking into it"))
        sandbox.clock.advance(timedelta(hours=7))
        page.check(Reply(network="facebook", to=message, text="x"),
                   now=sandbox.clock.peek(), human_agent=True)
        await page.send(Reply(network="facebook", to=message, text="Refund sent (Anna)",
                              human_agent=True))
        sandbox.clock.advance(timedelta(days=6))
        before = sandbox.request_count()
        with pytest.raises(WindowClosed):
            await page.send(Reply(network="facebook", to=message, text="still there?",
                                  human_agent=True))
        assert sandbox.request_count() == before
    assert [r.text for r in sandbox.sent()] == ["Looking into it", "Refund sent (Anna)"]


async def test_the_sandbox_refuses_a_tag_the_app_was_not_granted() -> None:
    """Without the permission the sandbox answers (#10) 2018278: WindowClosed."""
    sandbox = FacebookSandbox()
    dm = sandbox.customer_dm("hello")
    async with page_of(sandbox) as page:
        message = (await received(page, dm.id)).message
        sandbox.clock.advance(timedelta(hours=30))
        raw = sandbox.client()
        async with raw:
            answer = await raw.post(f"/v25.0/{sandbox.our_account.id}/messages", json={
                "recipient": {"id": message.conversation.id}, "messaging_type": "MESSAGE_TAG",
                "tag": "HUMAN_AGENT", "message": {"text": "late"}})
    assert answer.status_code == 400
    assert answer.json()["error"]["error_subcode"] == 2018278


async def test_private_reply_once_per_comment_even_across_restarts() -> None:
    """The adapter refuses a second private reply; a fresh adapter is refused by Meta."""
    sandbox = FacebookSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Sale today"), "price for the blue one?")
    async with page_of(sandbox) as page:
        message = (await received(page, comment.id)).message
        sent = await page.send(PrivateReply(network="facebook", to=message, text="DM'd you"))
        with pytest.raises(ActionError):
            await page.send(PrivateReply(network="facebook", to=message, text="again"))
    async with page_of(sandbox) as fresh:
        with pytest.raises(RequestRejected) as caught:
            await fresh.send(PrivateReply(network="facebook", to=message, text="again"))
    assert caught.value.code == "10/2018108"
    (record,) = [r for r in sandbox.sent() if r.kind == "message"]
    assert (record.id, record.private, record.recipient) == (
        sent.ref.id, True, comment.author_id)
    assert record.in_reply_to == comment.id


async def test_private_reply_after_seven_days_never_reaches_the_network() -> None:
    """A comment 7 days and a second old: WindowClosed before any request."""
    sandbox = FacebookSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Sale"), "hi")
    async with page_of(sandbox) as page:
        message = (await received(page, comment.id)).message
        sandbox.clock.advance(timedelta(days=7, seconds=1))
        before = sandbox.request_count()
        with pytest.raises(WindowClosed):
            await page.send(PrivateReply(network="facebook", to=message, text="late"))
        assert sandbox.request_count() == before


async def test_expired_token_is_token_expired_and_usage_headers_are_read() -> None:
    """Every answer carries BUC usage (read into the rate-limit state); expiry is 190/463."""

    class SmallBudget(FacebookSandbox):
        default_rate_limit = (20, 300.0)

    sandbox = SmallBudget()
    async with page_of(sandbox) as page:
        await page.poll(None)
        info = page._api.rate_limits.get("facebook", "account")
        assert info is not None
        assert info.limit == 100
        assert info.remaining is not None
        assert 0 < info.remaining < 100
        sandbox.expire_token()
        with pytest.raises(TokenExpired):
            await page.poll(None)


async def test_batched_signed_delivery_through_the_hub() -> None:
    """A comment, a mention and a DM in one signed delivery: all stored, the handshake answered."""
    sandbox = FacebookSandbox()
    start = sandbox.world.last_seq
    sandbox.customer_comment(sandbox.our_post("Opening hours"), "open Sunday?")
    sandbox.customer_mention("love this shop")
    sandbox.customer_dm("is my order shipped?")
    delivery = sandbox.webhook_batch(after_seq=start)
    assert delivery is not None
    assert len(json.loads(delivery.body)["entry"]) == 3
    adapter = FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                              clock=sandbox.clock.peek)
    hub = Hub(adapters=[adapter], store=MemoryStore())
    handshake = sandbox.handshake()
    transport = httpx.ASGITransport(app=hub.asgi)
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        shaken = await c.get("/facebook", params=handshake.query)
        posted = await c.post("/facebook", content=delivery.body, headers=delivery.headers)
        again = await c.post("/facebook", content=delivery.body, headers=delivery.headers)
        stored = await hub.store.unhandled_events()
    assert (shaken.status_code, shaken.text) == (200, handshake.query["hub.challenge"])
    assert (posted.status_code, again.status_code) == (200, 200)
    texts = sorted(e.message.text for e in stored if isinstance(e, MessageReceived))
    assert texts == ["@shop love this shop", "is my order shipped?", "open Sunday?"]


async def test_hidden_comments_cannot_be_answered_publicly() -> None:
    """The sandbox keeps hidden comments: visible to the Page, not answerable in public."""
    sandbox = FacebookSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Launch"), "spam spam")
    async with page_of(sandbox) as page:
        message = (await received(page, comment.id)).message
        await page.hide(Hide(network="facebook", target=message.ref))
        assert sandbox.is_hidden(comment)
        with pytest.raises(RequestRejected):
            await page.send(Reply(network="facebook", to=message, text="no"))
        again = await page.poll(None)
    assert any(e.id.endswith(comment.id) for e in again.events)
