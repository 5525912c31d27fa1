"""One conversation's replies reach the network in the order they were queued, retries included.

Through the Mastodon sandbox, on every store: a reply whose send the network
refuses backs off, and the reply queued after it waits for it instead of
overtaking it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.runtime_adapter import FakeClock

from omnichannel.actions import Post, Reply
from omnichannel.events import MessageReceived
from omnichannel.http import RetryPolicy
from omnichannel.outbox import Outbox
from omnichannel.store import MemoryStore, PostgresStore, SQLiteStore, Store
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind (PostgreSQL: a fresh schema on the session's server)."""
    opened: Store
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "helpdesk.db")
    else:
        pytest.importorskip("psycopg", reason='pip install -e ".[test]" to run on PostgreSQL')
        server = request.getfixturevalue("postgres_server")
        opened = PostgresStore(server.url, schema=request.getfixturevalue("postgres_schema"))
    async with opened:
        yield opened


async def test_a_reply_refused_once_still_goes_out_before_the_next_one(store: Store) -> None:
    """The first reply is refused (503) and backs off; the second, queued meanwhile, waits for
    it; a post waits for nothing. Once the first goes out, the second follows."""
    sandbox = MastodonSandbox(seed=4)
    mention = sandbox.customer_mention("where is my order?")
    adapter = MastodonAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                              retry=RetryPolicy(attempts=1))  # the outbox sees the refusal
    clock = FakeClock()
    async with adapter:
        [event] = [e for e in (await adapter.poll(None)).events if isinstance(e, MessageReceived)]
        assert event.message.ref.id == mention.id
        outbox = Outbox(store, {"mastodon": adapter}, clock=clock,
                        backoff_initial=timedelta(seconds=10))
        sandbox.faults.fail("POST /api/v1/statuses", 503, times=1)
        first = await outbox.submit(
            Reply(network="mastodon", to=event.message, text="Looking into it (1/2)"),
            origin="test",
        )
        assert await outbox.run_once() == 1
        refused = await store.get_outbox(first.key)
        assert refused is not None
        retry_at = clock() + timedelta(seconds=10)
        assert (refused.status, refused.next_attempt_at) == ("pending", retry_at)

        second = await outbox.submit(
            Reply(network="mastodon", to=event.message, text="Found it, it ships today (2/2)"),
            origin="test",
        )
        await outbox.submit(Post(network="mastodon", text="Shipping is on time"), origin="test")
        assert await outbox.run_once() == 1  # the post; the second reply waits for the first
        assert [r.text for r in sandbox.sent()] == ["Shipping is on time"]
        waiting = await store.get_outbox(second.key)
        assert waiting is not None
        assert (waiting.status, waiting.attempts) == ("pending", 0)

        clock.advance(10)
        assert await outbox.run_once() == 2  # the first, then (a round later) the second
    # Mastodon replies start with the customer's handle.
    assert [r.text.removeprefix("@alice ") for r in sandbox.sent()] == [
        "Shipping is on time", "Looking into it (1/2)", "Found it, it ships today (2/2)",
    ]
    assert {item.status for item in await store.list_outbox()} == {"sent"}
