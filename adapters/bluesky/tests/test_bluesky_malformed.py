"""Malformed items cost themselves only: poll, Jetstream and replay never stop on one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from omnichannel.adapter import Batch
from omnichannel.errors import PayloadError
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky._convert import notification_page
from omnichannel_bluesky.sandbox import BlueskySandbox

NOTIFICATIONS = "/xrpc/app.bsky.notification.listNotifications"
DEEP = b"[" * 100_000 + b"]" * 100_000


class Rewriting(httpx.AsyncBaseTransport):
    """The sandbox's transport, with the JSON answers of one path changed on the way."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str,
                 rewrite: Callable[[Any], Any]) -> None:
        self.inner, self.path, self.rewrite = inner, path, rewrite

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != self.path:
            return response
        body = await response.aread()
        changed = self.rewrite(json.loads(body))
        content = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        return httpx.Response(response.status_code, headers=headers, content=content)


@asynccontextmanager
async def opened(sandbox: BlueskySandbox, rewrite: Callable[[Any], Any]) -> AsyncIterator[
    BlueskyAdapter
]:
    transport = Rewriting(sandbox.transport(), NOTIFICATIONS, rewrite)
    adapter = BlueskyAdapter(sandbox.adapter_settings(), transport=transport,
                             retry=RetryPolicy.testing())
    async with adapter:
        yield adapter


def _spoil_oldest(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def rewrite(data: Any) -> Any:
        mentions = [n for n in data["notifications"] if n["reason"] == "mention"]
        if mentions:
            change(mentions[-1])  # the page is newest first
        return data
    return rewrite


async def _poll_twice(sandbox: BlueskySandbox, rewrite: Callable[[Any], Any]) -> tuple[
    Batch, Batch
]:
    async with opened(sandbox, rewrite) as adapter:
        start = await adapter.poll(None)
        sandbox.customer_mention("the bad one")
        sandbox.customer_mention("the good one")
        batch = await adapter.poll(start.cursor)
        again = await adapter.poll(batch.cursor)
    return batch, again


def _texts(batch: Batch) -> list[str]:
    return [e.message.text for e in batch.events if isinstance(e, MessageReceived)]


async def test_post_whose_images_are_a_number_does_not_stop_polling() -> None:
    """embed.images = 7 (written by some client) costs the images only; polling goes on."""
    def spoil(notification: dict[str, Any]) -> None:
        notification["record"]["embed"] = {"$type": "app.bsky.embed.images", "images": 7}

    batch, again = await _poll_twice(BlueskySandbox(seed=60), _spoil_oldest(spoil))
    assert _texts(batch) == ["@shop.bsky.social the bad one", "@shop.bsky.social the good one"]
    assert batch.events[0].message.attachments == ()  # type: ignore[attr-defined]
    assert again.events == ()


async def test_notification_whose_reason_is_a_list_does_not_stop_polling() -> None:
    """reason: [] is no reason we follow (read for its time only); the rest is delivered once."""
    def spoil(notification: dict[str, Any]) -> None:
        notification["reason"] = []

    batch, again = await _poll_twice(BlueskySandbox(seed=61), _spoil_oldest(spoil))
    assert _texts(batch) == ["@shop.bsky.social the good one"]
    assert again.events == ()
    assert again.rejected == ()


async def test_unexpected_exception_in_conversion_is_rejected_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any exception converting one notification (here a KeyError) rejects that one only."""
    import omnichannel_bluesky._convert as convert

    real = convert.notification_event

    def flaky(notification: Any, **kwargs: Any) -> Any:
        if "bad" in str(notification.record.get("text")):
            raise KeyError("surprise")
        return real(notification, **kwargs)

    monkeypatch.setattr(convert, "notification_event", flaky)
    batch, _ = await _poll_twice(BlueskySandbox(seed=62), lambda data: data)
    assert _texts(batch) == ["@shop.bsky.social the good one"]
    (refused,) = batch.rejected
    assert refused.reason == "unreadable item (KeyError)"


async def test_deeply_nested_answer_is_a_payload_error() -> None:
    """An answer nested 100,000 deep is a PayloadError from poll, not a RecursionError."""
    sandbox = BlueskySandbox(seed=63)
    async with opened(sandbox, lambda data: DEEP) as adapter:
        with pytest.raises(PayloadError):
            await adapter.poll(None)


def test_notification_page_reads_an_unhashable_reason_as_unknown() -> None:
    """The page reader itself: reason [] is an item without event, in both modes."""
    page = {"notifications": [{"uri": "at://did:plc:a/app.bsky.feed.post/3k", "cid": "c",
                               "indexedAt": "2024-01-01T00:00:00Z", "reason": [],
                               "author": {"did": "did:plc:a", "handle": "a.test"},
                               "record": {}}]}
    for strict in (False, True):
        items, _ = notification_page(page, our_did=None, strict=strict)
        assert (items[0].event, items[0].rejected) == (None, None)
        assert items[0].uri == "at://did:plc:a/app.bsky.feed.post/3k"


@pytest.mark.parametrize("body", [
    DEEP,
    b'{"notifications": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
])
def test_replay_of_deep_nesting_is_a_payload_error(body: bytes) -> None:
    """parse_payload refuses absurd nesting with PayloadError (with and without a path)."""
    for path in (None, "app.bsky.notification.listNotifications", "chat.bsky.convo.getLog"):
        with pytest.raises(PayloadError):
            BlueskyAdapter.parse_payload(body, path=path)


def _jetstream_line(*, time_us: int, operation: str, images: object = None) -> str:
    record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": "@shop.bsky.social hi",
                              "createdAt": "2024-05-01T10:00:00Z"}
    if images is not None:
        record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
    return json.dumps({"did": "did:plc:cust", "time_us": time_us, "kind": "commit",
                       "commit": {"rev": "r", "operation": operation,
                                  "collection": "app.bsky.feed.post", "rkey": "3kabc",
                                  "cid": "bafy", "record": record}})


def test_replay_of_a_jetstream_update_with_an_absurd_time_is_a_payload_error() -> None:
    """time_us = 10**20 on an update is a PayloadError, not a ValueError from datetime."""
    line = _jetstream_line(time_us=10**20, operation="update")
    with pytest.raises(PayloadError):
        BlueskyAdapter.parse_payload(line.encode(), path="wss://jet.test/subscribe")


async def test_jetstream_post_with_images_as_a_number_is_delivered_and_the_stream_goes_on(
) -> None:
    """A matching post with embed.images = 7 arrives (no attachments); so does the next one."""
    sandbox = BlueskySandbox(seed=64)
    sandbox.jetstream.replay([_jetstream_line(time_us=5, operation="create", images=7)])
    sandbox.customer_mention("after the odd one")
    texts: list[str] = []
    adapter = BlueskyAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                             retry=RetryPolicy.testing())
    async with adapter:
        with anyio.fail_after(10):
            async with aclosing(adapter.stream(None)) as stream:
                async for batch in stream:
                    texts.extend(e.message.text for e in batch.events
                                 if isinstance(e, MessageReceived))
                    if len(texts) == 2:
                        break
    assert texts == ["@shop.bsky.social hi", "@shop.bsky.social after the odd one"]


async def test_unreadable_conversation_in_the_first_poll_does_not_block_polling() -> None:
    """A listConvos entry without an id is rejected; the first poll still delivers the rest."""
    sandbox = BlueskySandbox(seed=65)
    alice, bob = sandbox.customer("alice"), sandbox.customer("bob")
    sandbox.customer_dm("from alice", author=alice)
    sandbox.customer_dm("from bob", author=bob)
    sandbox.customer_mention("a mention")

    def spoil(data: Any) -> Any:
        del data["convos"][0]["id"]
        return data

    transport = Rewriting(sandbox.transport(), "/xrpc/chat.bsky.convo.listConvos", spoil)
    adapter = BlueskyAdapter(sandbox.adapter_settings(), transport=transport,
                             retry=RetryPolicy.testing())
    async with adapter:
        batch = await adapter.poll(None)
    assert "@shop.bsky.social a mention" in _texts(batch)
    assert len([t for t in _texts(batch) if t.startswith("from ")]) == 1
    (refused,) = batch.rejected
    assert refused.path.startswith("convos.0")
