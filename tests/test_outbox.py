"""The outbox: persisted actions delivered once, retried, rate-limit aware, reconciled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    NativeIdempotentAdapter,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
)

from omnichannel.actions import Post, React, Reply
from omnichannel.errors import ConfigurationError, TextTooLong
from omnichannel.outbox import Outbox
from omnichannel.store import MemoryStore, SQLiteStore


class Rig:
    """A fake network, an opened adapter, a memory store and an outbox on a fake clock."""

    def __init__(self, fake: FakeNetwork, adapter: RuntimeAdapter) -> None:
        self.fake = fake
        self.adapter = adapter
        self.store = MemoryStore()
        self.clock = FakeClock()
        self.outbox = Outbox(
            self.store, {"testnet": adapter}, clock=self.clock, max_attempts=3,
            backoff_initial=timedelta(seconds=10), ambiguous_delay=timedelta(seconds=1),
        )

    def reply(self, text: str = "Thanks, on it!") -> Reply:
        """A reply to a fresh customer message."""
        return Reply(network="testnet", to=received(self.fake, self.adapter), text=text)

    async def crash_and_restart(self) -> None:
        """Reopen the store, as a process restart after a crash would."""
        await self.store.aclose()
        await self.store.open()


@asynccontextmanager
async def rig(
    *, cls: type[RuntimeAdapter] = RuntimeAdapter, **fake_options: object
) -> AsyncIterator[Rig]:
    """Open a rig for one test."""
    fake = FakeNetwork(**fake_options)  # type: ignore[arg-type]
    adapter = adapter_for(fake, cls)
    async with adapter:
        setup = Rig(fake, adapter)
        async with setup.store:
            yield setup


async def test_a_queued_reply_is_delivered_once_and_audited() -> None:
    """A submitted reply is sent, marked sent, audited and saved as our own message."""
    async with rig() as r:
        action = r.reply()
        item = await r.outbox.submit(action, origin="handler:test")
        again = await r.outbox.submit(action, origin="handler:test")
        assert await r.outbox.run_once() == 1
        assert await r.outbox.run_once() == 0
        stored = await r.store.get_outbox(item.key)
        [entry] = await r.store.audit_log()
        history = await r.store.conversation_messages(action.to.conversation)

    assert again == item
    assert list(r.fake.created.values()) == [1]
    assert stored is not None
    assert stored.status == "sent"
    assert stored.sent is not None
    assert stored.sent.ref.id == r.fake.posted[0]["id"]
    assert (entry.actor, entry.action_type, entry.idempotency_key) == (
        "handler:test", "reply", item.key
    )
    assert [(m.text, m.from_us, m.in_reply_to) for m in history] == [
        ("Thanks, on it!", True, action.to.ref)
    ]


async def test_a_lost_response_is_reconciled_not_sent_twice() -> None:
    """A send whose response was lost is found with find_sent and never posted again."""
    async with rig() as r:
        r.fake.faults.append("lose")
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        ambiguous = await r.store.get_outbox(item.key)
        r.clock.advance(1)
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)
        [entry] = await r.store.audit_log()

    assert ambiguous is not None
    assert ambiguous.status == "ambiguous"
    assert final is not None
    assert final.status == "sent"
    assert r.fake.created[item.key] == 1
    assert r.fake.attempts[item.key] == 1
    assert r.fake.lookups == 1
    assert entry.detail is not None
    assert "reconciled" in entry.detail


async def test_an_unreadable_answer_to_a_send_is_reconciled_not_failed() -> None:
    """A send answered 201 with an unreadable body is looked up, neither failed nor resent."""
    async with rig() as r:
        r.fake.faults.append("garble")
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        unread = await r.store.get_outbox(item.key)
        r.clock.advance(10)  # the first backoff
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert unread is not None
    assert unread.status == "ambiguous"
    assert final is not None
    assert final.status == "sent"
    assert final.sent is not None
    assert final.sent.ref.id == r.fake.posted[0]["id"]
    assert r.fake.created[item.key] == 1
    assert r.fake.lookups == 1


async def test_a_send_cut_by_a_crash_that_did_not_land_is_sent_after_lookup() -> None:
    """An item left sending by a crash is looked up first, then sent once when absent."""
    async with rig() as r:
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        [claimed] = await r.store.claim_due(now=r.clock())  # the process dies right after
        assert claimed.status == "sending"
        await r.crash_and_restart()
        reopened = await r.store.get_outbox(item.key)
        assert reopened is not None
        assert reopened.status == "ambiguous"
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert final is not None
    assert final.status == "sent"
    assert r.fake.lookups == 1
    assert r.fake.created[item.key] == 1


async def test_transient_errors_back_off_then_deliver() -> None:
    """A 503 that outlasts the client's own retries reschedules the item with backoff."""
    async with rig() as r:
        r.fake.faults.extend(["503", "503"])
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        waiting = await r.store.get_outbox(item.key)
        assert await r.outbox.run_once() == 0  # not due yet
        r.clock.advance(10)
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert waiting is not None
    assert waiting.status == "pending"
    assert waiting.next_attempt_at == r.clock.now
    assert waiting.last_error is not None
    assert waiting.last_error.startswith("TransientError")
    assert final is not None
    assert final.status == "sent"
    assert r.fake.created[item.key] == 1
    assert r.fake.attempts[item.key] == 3


async def test_rate_limit_pauses_the_network_until_reset() -> None:
    """A 429 reschedules at the reset time, and other items of that network wait without a call."""
    async with rig() as r:
        r.fake.faults.append("429")
        first = await r.outbox.submit(r.reply("first"), origin="handler:test")
        await r.outbox.run_once()
        second = await r.outbox.submit(r.reply("second"), origin="handler:test")
        await r.outbox.run_once()
        paused = await r.store.get_outbox(second.key)
        r.clock.advance(3601)
        await r.outbox.run_once()
        statuses = [(await r.store.get_outbox(k)) for k in (first.key, second.key)]

    assert paused is not None
    assert paused.status == "pending"
    assert paused.next_attempt_at > r.clock.now - timedelta(seconds=2)
    assert r.fake.attempts[second.key] == 1  # only the call after the reset
    assert [item.status if item else None for item in statuses] == ["sent", "sent"]


async def test_a_refusal_fails_the_item_and_is_audited() -> None:
    """A 4xx refusal marks the item failed, records why, and is never retried."""
    async with rig() as r:
        r.fake.faults.append("422")
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        r.clock.advance(3600)
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)
        [entry] = await r.store.audit_log()

    assert final is not None
    assert final.status == "failed"
    assert final.last_error is not None
    assert "422" in final.last_error
    assert entry.detail is not None
    assert entry.detail.startswith("failed: RequestRejected")
    assert r.fake.attempts[item.key] == 1
    assert r.fake.posted == []


async def test_a_duplicate_refusal_of_an_ambiguous_resend_counts_as_landed() -> None:
    """When a resend is refused as a duplicate of the first try, the item is sent, not failed."""
    async with rig() as r:
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.store.claim_due(now=r.clock())
        await r.crash_and_restart()
        r.fake.faults.append("duplicate")  # the network's read side lags: lookup misses it
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)
        [entry] = await r.store.audit_log()
        r.fake.faults.append("duplicate")
        fresh = await r.outbox.submit(r.reply("another"), origin="handler:test")
        await r.outbox.run_once()
        refused = await r.store.get_outbox(fresh.key)

    assert final is not None
    assert final.status == "sent"
    assert entry.detail is not None
    assert "duplicate" in entry.detail
    assert refused is not None
    assert refused.status == "failed"


async def test_retryable_errors_give_up_after_max_attempts() -> None:
    """An item that keeps failing transiently is failed after max_attempts claims."""
    async with rig() as r:
        r.fake.faults.extend(["503"] * 6)
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        for _ in range(3):
            await r.outbox.run_once()
            r.clock.advance(600)
        final = await r.store.get_outbox(item.key)

    assert final is not None
    assert final.status == "failed"
    assert final.attempts == 3
    assert r.fake.posted == []


async def test_native_idempotency_lets_the_client_retry_a_lost_response() -> None:
    """With an Idempotency-Key, a lost response is retried at once and the network keeps one."""
    async with rig(cls=NativeIdempotentAdapter, native_idempotency=True) as r:
        r.fake.faults.append("lose")
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert final is not None
    assert final.status == "sent"
    assert final.attempts == 1
    assert r.fake.lookups == 0
    assert r.fake.attempts[item.key] == 2
    assert r.fake.created[item.key] == 1


async def test_ambiguous_items_are_looked_up_even_with_native_idempotency() -> None:
    """An ambiguous item is reconciled with find_sent before any resend, whatever the network."""
    async with rig(cls=NativeIdempotentAdapter, native_idempotency=True) as r:
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        await r.outbox.run_once()
        await r.store.update_outbox(item.key, status="ambiguous")  # as if the answer was lost
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert final is not None
    assert final.status == "sent"
    assert r.fake.lookups == 1
    assert r.fake.attempts[item.key] == 1


async def test_idempotent_actions_are_retried_without_lookup() -> None:
    """An ambiguous reaction is simply tried again: reacting twice is harmless."""
    async with rig() as r:
        target = received(r.fake, r.adapter)
        item = await r.outbox.submit(
            React(network="testnet", target=target.ref), origin="handler:test"
        )
        await r.store.claim_due(now=r.clock())
        await r.crash_and_restart()
        await r.outbox.run_once()
        final = await r.store.get_outbox(item.key)

    assert final is not None
    assert final.status == "sent"
    assert r.fake.lookups == 0
    assert r.fake.reactions[(target.ref.id, "like")] == 1


async def test_submit_checks_capabilities_and_the_network() -> None:
    """Submit refuses an action the network cannot do, or for a network with no adapter."""
    async with rig() as r:
        with pytest.raises(TextTooLong):
            await r.outbox.submit(r.reply("x" * 281), origin="handler:test")
        with pytest.raises(ConfigurationError):
            await r.outbox.submit(Post(network="nowhere", text="hi"), origin="handler:test")
        assert await r.store.list_outbox() == []


async def test_the_worker_wakes_up_when_something_is_queued() -> None:
    """A sleeping worker delivers a newly queued item without waiting for its poll interval."""
    async with rig() as r:
        r.outbox.poll_interval = 3600
        async with anyio.create_task_group() as tg:
            await tg.start(r.outbox.run)
            await r.outbox.submit(r.reply(), origin="handler:test")
            await eventually(lambda: len(r.fake.posted) == 1)
            tg.cancel_scope.cancel()


async def test_a_delivery_records_its_outcome_and_our_message_in_one_commit(
    tmp_path: Path,
) -> None:
    """Marking a reply sent (with its audit line) and saving our message share a commit."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    statements: list[str] = []
    async with adapter, SQLiteStore(tmp_path / "outbox.db") as store:
        outbox = Outbox(store, {"testnet": adapter}, clock=FakeClock())
        action = Reply(network="testnet", to=received(fake, adapter), text="Thanks, on it!")
        item = await outbox.submit(action, origin="handler:test")
        store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
        assert await outbox.run_once() == 1
        store._conn.set_trace_callback(None)  # type: ignore[union-attr]
        stored = await store.get_outbox(item.key)
        history = await store.conversation_messages(action.to.conversation)
        [entry] = await store.audit_log()

    assert stored is not None
    assert stored.status == "sent"
    assert entry.idempotency_key == item.key
    assert [(m.text, m.from_us) for m in history] == [("Thanks, on it!", True)]
    transactions = "\n".join(statements).split("\nCOMMIT")
    outcome = [t for t in transactions if "UPDATE outbox SET status" in t]
    saved = [t for t in transactions if "INSERT INTO messages" in t]
    assert len(outcome) == 1, statements
    assert saved == outcome  # one commit for both (they were two)


async def test_a_sent_message_that_cannot_be_saved_leaves_the_item_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Saving our message is history: its failure is logged, the outcome stands."""

    class NoHistory(MemoryStore):
        async def save_messages(self, messages: object) -> None:
            raise RuntimeError("disk full")

    async with rig() as r:
        store = r.outbox.store = NoHistory()
        async with store:
            item = await r.outbox.submit(r.reply(), origin="handler:test")
            assert await r.outbox.run_once() == 1
            stored = await store.get_outbox(item.key)

    assert stored is not None
    assert stored.status == "sent"
    assert len(r.fake.posted) == 1
    assert "sent, but our message could not be saved" in caplog.text


async def test_the_outcome_hook_sees_every_attempt_and_cannot_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``on_outcome`` gets each attempt's item; a hook that raises is logged, the send stands."""
    async with rig() as r:
        seen: list[str] = []

        def hook(item: object) -> None:
            seen.append(getattr(item, "status", "?"))
            raise RuntimeError("a broken metrics sink")

        r.outbox.on_outcome = hook
        item = await r.outbox.submit(r.reply(), origin="handler:test")
        assert await r.outbox.run_once() == 1
        stored = await r.store.get_outbox(item.key)

    assert seen == ["sent"]
    assert stored is not None
    assert stored.status == "sent"
    assert "the on_outcome hook failed" in caplog.text
