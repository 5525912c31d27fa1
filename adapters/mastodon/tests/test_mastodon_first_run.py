"""A first run's position: one cheap request, and polling from it sees only what is new."""

from __future__ import annotations

from omnichannel.events import MessageReceived
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


async def test_the_position_is_one_request_and_looks_up_no_thread() -> None:
    """Without a backfill, backlog() reads one notification; old replies cost no /context."""
    sandbox = MastodonSandbox(seed=31)
    root = sandbox.our_post("our announcement")  # not in the notifications: poll looks it up
    for n in range(5):
        sandbox.customer_reply(root, f"@shop old reply {n}")
    adapter = MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    async with adapter:
        before = sandbox.request_count()
        position = await adapter.backlog()
        cost = sandbox.request_count() - before
        sandbox.customer_mention("a new question")
        polled = await adapter.poll(position.cursor)
    assert position.events == ()
    assert cost == 1
    assert sandbox.request_count("GET /api/v1/statuses/*/context") == 0
    assert [e.message.text for e in polled.events if isinstance(e, MessageReceived)] == [
        "@shop a new question"]


async def test_a_backfill_reads_the_newest_page_and_keeps_the_newest() -> None:
    """backlog(limit=3) returns the three newest mentions, oldest first, and the position."""
    sandbox = MastodonSandbox(seed=32)
    for n in range(6):
        sandbox.customer_mention(f"old question {n}")
    adapter = MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport())
    async with adapter:
        backfill = await adapter.backlog(limit=3)
        again = await adapter.poll(backfill.cursor)
    assert [e.message.text for e in backfill.events if isinstance(e, MessageReceived)] == [
        f"@shop old question {n}" for n in (3, 4, 5)]
    assert again.events == ()
