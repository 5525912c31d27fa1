"""The ``replies`` source: posts in our threads that the mentions timeline does not list."""

from __future__ import annotations

import pytest

from omnichannel import Reply
from omnichannel.sources import PollSource
from omnichannel_x import NotSummoned, XAdapter
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


def _source(adapter: XAdapter, name: str) -> PollSource:
    found = {source.name: source for source in adapter.sources()}
    source = found[name]
    assert isinstance(source, PollSource)
    return source


async def test_a_reply_deep_in_our_thread_is_read_by_the_replies_source() -> None:
    sandbox = XSandbox()
    ours = sandbox.our_post("Big sale today!")
    first = sandbox.customer_reply(ours, "is it online?")
    deep = sandbox.customer_reply(first, "same question, and in store?")
    sandbox.customer_reply(sandbox.customer_mention("hello @shop"), "unrelated thread")
    settings = {**sandbox.adapter_settings(), "read_replies": True}
    async with XAdapter(settings, transport=sandbox.transport()) as adapter:
        mentions = await _source(adapter, "mentions").poll(None)
        assert deep.id not in {e.message.ref.id for e in mentions.events}
        batch = await _source(adapter, "replies").poll(None)
        ids = [event.message.ref.id for event in batch.events]
        assert ids == [first.id, deep.id]
        assert batch.cursor == deep.id
        reply = next(e.message for e in batch.events if e.message.ref.id == deep.id)
        assert reply.conversation.id == ours.id
        with pytest.raises(NotSummoned):
            adapter.check(Reply(network="x", to=reply, text="Both!"))
        later = sandbox.customer_reply(deep, "anyone?")
        again = await _source(adapter, "replies").poll(batch.cursor)
        assert [e.message.ref.id for e in again.events] == [later.id]


async def test_the_replies_source_is_off_by_default() -> None:
    sandbox = XSandbox()
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as adapter:
        assert "replies" not in {source.name for source in adapter.sources()}


async def test_a_burst_bigger_than_a_page_is_read_whole_back_to_the_cursor() -> None:
    """25 replies between two polls, 10 a page: every one arrives, oldest first."""
    sandbox = XSandbox()
    ours = sandbox.our_post("Big sale today!")
    first = sandbox.customer_reply(ours, "is it online?")
    settings = {**sandbox.adapter_settings(), "read_replies": True, "max_results": 10}
    async with XAdapter(settings, transport=sandbox.transport()) as adapter:
        source = _source(adapter, "replies")
        batch = await source.poll(None)
        assert [e.message.ref.id for e in batch.events] == [first.id]
        burst = [sandbox.customer_reply(first, f"me too {n}").id for n in range(25)]
        requests = sandbox.request_count()
        again = await source.poll(batch.cursor)
        assert [e.message.ref.id for e in again.events] == burst
        assert again.cursor == burst[-1]
        assert sandbox.request_count() - requests == 1 + 3  # our posts, then three pages
        assert (await source.poll(again.cursor)).events == ()
