"""The Mastodon sandbox speaks the recorded wire shapes; the adapter works against it over time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
import httpx
import pytest

from omnichannel.actions import Reply
from omnichannel.adapter import Batch
from omnichannel.errors import AuthenticationError, RateLimited
from omnichannel.events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
)
from omnichannel.http import RetryPolicy, parse_mastodon_headers
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


class LongStreams(MastodonSandbox):
    """A sandbox whose streams stay open for the whole test."""

    stream_lifetime: ClassVar[float] = 30.0


@asynccontextmanager
async def open_adapter(
    sandbox: MastodonSandbox, **settings: Any
) -> AsyncIterator[MastodonAdapter]:
    adapter = MastodonAdapter(
        {**sandbox.adapter_settings(), **settings}, transport=sandbox.transport(),
        retry=RetryPolicy.testing(),
    )
    async with adapter:
        yield adapter


# -- wire shapes --------------------------------------------------------------------


async def test_notifications_carry_link_and_rate_limit_headers(recorded: Any) -> None:
    """Notification pages carry the recorded Link and ISO-8601 X-RateLimit-* header shapes."""
    sandbox = MastodonSandbox(seed=3)
    sandbox.customer_mention("hello!")
    async with sandbox.client() as http:
        response = await http.get("/api/v1/notifications", params={"types[]": "mention"})
    [item] = response.json()
    assert set(response.links) == {"next", "prev"}
    assert response.links["prev"]["url"].endswith(f"?min_id={item['id']}&types%5B%5D=mention")
    info = parse_mastodon_headers(response.headers, now=datetime.now(UTC))
    assert info is not None
    assert info.limit == 300
    assert info.remaining == 299
    assert info.reset_at is not None
    recorded_item = recorded("test_notifications").body("GET", "/api/v1/notifications")[0]
    assert set(recorded_item) <= set(item) | {"account", "status"}
    assert set(recorded_item["status"]) - set(item["status"]) <= {
        "quote_approval", "tagged_collections",
    }


async def test_content_html_has_the_recorded_mention_shape(recorded: Any) -> None:
    """A mention renders as the recorded h-card anchor, links with Mastodon's hidden spans."""
    sandbox = MastodonSandbox()
    post = sandbox.customer_mention("hi see https://example.com/a/really/long/path/to/page #Help")
    html = sandbox.render_content(post)
    recorded_html = recorded("test_notifications").body("GET", "/api/v1/notifications")[0][
        "status"]["content"]
    mention = recorded_html.split("</span></a></span>")[0].replace(
        "http://localhost:3000/@mastodonpy_test", "https://mastodon.sandbox.test/@shop"
    ).replace("mastodonpy_test", "shop")
    assert html.startswith(mention)
    assert '<span class="invisible">https://</span>' in html
    assert '<span class="ellipsis">example.com/a/really/long/path</span>' in html
    assert 'class="mention hashtag" rel="tag">#<span>Help</span></a>' in html


async def test_unknown_token_gets_the_recorded_401() -> None:
    """A bad token gets Mastodon's recorded 401 body."""
    sandbox = MastodonSandbox()
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url=sandbox.base_url,
        headers={"Authorization": "Bearer nope"},
    ) as http:
        response = await http.get("/api/v1/accounts/verify_credentials")
    assert response.status_code == 401
    assert response.json() == {"error": "The access token is invalid"}


async def test_idempotency_key_returns_the_first_status() -> None:
    """Posting twice with one Idempotency-Key creates one status and answers it twice."""
    sandbox = MastodonSandbox()
    async with sandbox.client() as http:
        first = await http.post("/api/v1/statuses", data={"status": "hi"},
                                headers={"Idempotency-Key": "k-123456"})
        second = await http.post("/api/v1/statuses", data={"status": "hi"},
                                 headers={"Idempotency-Key": "k-123456"})
    assert first.json()["id"] == second.json()["id"]
    assert len(sandbox.sent()) == 1


async def test_over_limit_status_gets_the_validation_422() -> None:
    """A status over 500 characters is refused with Mastodon's 422 error body."""
    sandbox = MastodonSandbox()
    async with sandbox.client() as http:
        response = await http.post("/api/v1/statuses", data={"status": "a" * 501})
    assert response.status_code == 422
    assert response.json() == {
        "error": "Validation failed: Text character limit of 500 exceeded"
    }


# -- the adapter over time ---------------------------------------------------------------


async def test_poll_pages_through_many_mentions_in_order() -> None:
    """With a small page size, polling pages forward through every mention once, oldest first."""
    sandbox = MastodonSandbox()
    async with open_adapter(sandbox, page_size=2) as mastodon:
        start = await mastodon.poll(None)
        posts = [sandbox.customer_mention(f"order {n}") for n in range(5)]
        cursor = start.cursor
        seen: list[str] = []
        for _ in range(5):
            batch = await mastodon.poll(cursor)
            seen += [e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)]
            cursor = batch.cursor or cursor
            if not batch.more:
                break
    assert seen == [p.id for p in posts]


async def test_like_on_our_reply_is_a_reaction() -> None:
    """A customer's favourite on our reply arrives as ReactionAdded."""
    sandbox = MastodonSandbox()
    customer = sandbox.customer()
    async with open_adapter(sandbox) as mastodon:
        [event] = await _received(mastodon, sandbox.customer_mention("hi", author=customer).id)
        sent = await mastodon.send(Reply(network="mastodon", to=event.message, text="hello!"))
        sandbox.customer_like(sent.ref.id, author=customer)
        batch = await mastodon.poll(None)
    likes = [e for e in batch.events if isinstance(e, ReactionAdded)]
    assert [(e.target.id, e.by.ref.id) for e in likes] == [(sent.ref.id, customer.id)]
    assert likes[0].by.handle == customer.handle
    assert likes[0].id == f"mastodon:reaction.added:{sent.ref.id}:{customer.id}:like"


async def _received(mastodon: MastodonAdapter, status_id: str) -> list[MessageReceived]:
    batch = await mastodon.poll(None)
    return [
        e for e in batch.events
        if isinstance(e, MessageReceived) and e.message.ref.id == status_id
    ]


async def test_fetch_conversation_returns_the_thread_oldest_first() -> None:
    """fetch_conversation gives the thread's statuses in order, without a direct reply in it."""
    sandbox = MastodonSandbox()
    customer = sandbox.customer()
    async with open_adapter(sandbox) as mastodon:
        [event] = await _received(mastodon, sandbox.customer_mention("a", author=customer).id)
        ours = await mastodon.send(Reply(network="mastodon", to=event.message, text="b"))
        sandbox.customer_reply(ours.ref.id, "c", author=customer)
        sandbox.world.add_post(sandbox.our_account, "@alice private", visibility="direct",
                               in_reply_to=event.message.ref.id)
        thread = await mastodon.fetch_conversation(event.message.conversation)
    assert [m.text for m in thread] == ["@shop a", "@alice b", "c"]
    assert all(m.conversation == event.message.conversation for m in thread)


async def test_fetch_conversation_finds_a_direct_conversation() -> None:
    """A direct conversation is found by its participants and read back in order."""
    sandbox = MastodonSandbox()
    customer = sandbox.customer()
    async with open_adapter(sandbox) as mastodon:
        dm = sandbox.customer_dm("psst", author=customer)
        [event] = await _received(mastodon, dm.id)
        await mastodon.send(Reply(network="mastodon", to=event.message, text="yes?"))
        messages = await mastodon.fetch_conversation(event.message.conversation)
    assert [m.text for m in messages] == ["@shop psst", "@alice yes?"]
    assert [m.visibility for m in messages] == ["private", "private"]


# -- streaming ------------------------------------------------------------------------------


async def _next_events(receive: Any, *, count: int = 1) -> list[Event]:
    events: list[Event] = []
    with anyio.fail_after(5):
        while len(events) < count:
            batch: Batch = await receive.receive()
            events.extend(batch.events)
    return events


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_stream_pushes_events_and_catches_up_after_a_drop() -> None:
    """The stream pushes a mention and its edit, and after a drop catches up by polling."""
    sandbox = LongStreams(seed=5)
    customer = sandbox.customer()
    async with open_adapter(sandbox) as mastodon:
        send, receive = anyio.create_memory_object_stream[Batch](10)

        async def consume() -> None:
            async with send:
                async for batch in mastodon.stream(None):
                    await send.send(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.sleep(0.05)  # let it connect
            post = sandbox.customer_mention("is anyone there?", author=customer)
            [first] = await _next_events(receive)
            sandbox.customer_edit(post, "@shop is anyone there??")
            [edit] = await _next_events(receive)
            sandbox.drop_streams()
            missed = sandbox.customer_mention("hello again", author=customer)
            [caught_up] = await _next_events(receive)
            sandbox.customer_delete(post)
            [deleted] = await _next_events(receive)
            tg.cancel_scope.cancel()
        receive.close()

    assert isinstance(first, MessageReceived)
    assert first.message.ref.id == post.id
    assert isinstance(edit, MessageUpdated)
    assert edit.message.text == "@shop is anyone there??"
    assert isinstance(caught_up, MessageReceived)
    assert caught_up.message.ref.id == missed.id
    assert isinstance(deleted, MessageDeleted)
    assert deleted.message.id == post.id
    assert sandbox.request_count("GET /api/v1/streaming/user") == 2


async def test_notification_only_stream_is_used_when_asked() -> None:
    """stream='user:notification' follows the notifications-only endpoint."""
    sandbox = LongStreams()
    async with open_adapter(sandbox, stream="user:notification") as mastodon:
        sandbox.customer_mention("hi")
        stream = mastodon.stream(None)
        with anyio.fail_after(5):
            batch = await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
    assert [type(e) for e in batch.events] == [MessageReceived]
    assert sandbox.request_count("GET /api/v1/streaming/user/notification") == 1


# -- credentials ----------------------------------------------------------------------------


async def test_the_token_is_in_no_log_repr_or_error(caplog: pytest.LogCaptureFixture) -> None:
    """Through a retry, a rate limit and a revoked token, the token never shows."""
    sandbox = MastodonSandbox(seed=11)
    token = sandbox.token
    customer = sandbox.customer_mention("where is my order?")
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with open_adapter(sandbox) as mastodon:
        [event] = [e for e in (await mastodon.poll(None)).events if isinstance(e, MessageReceived)]
        assert event.message.ref.id == customer.id
        sandbox.faults.fail("POST /api/v1/statuses", 500, times=1)  # retried: it has a key
        await mastodon.send(Reply(network="mastodon", to=event.message, text="On it!"))
        sandbox.revoke_credentials()
        with pytest.raises(AuthenticationError) as revoked:
            await mastodon.poll(None)
        errors.append(revoked.value)
        sandbox.faults.rate_limit("GET /api/v1/notifications", retry_after=3600, times=1)
        with pytest.raises(RateLimited) as limited:
            await mastodon.poll(None)
        errors.append(limited.value)
        shown = [repr(mastodon), repr(mastodon.settings), str(mastodon.settings.model_dump()),
                 caplog.text]
    shown += [text for error in errors for text in (str(error), repr(error))]
    assert caplog.records  # the exchanges were logged
    for text in shown:
        assert token not in text
