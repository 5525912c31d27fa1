"""Store conformance scenarios for the order of one conversation's outbox items.

Mixed into `StoreConformance`: a claim takes a conversation's next item only once
every item queued before it is finished (``sent``, ``failed`` or ``cancelled``).
"""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from anyio.lowlevel import checkpoint

from omnichannel.actions import Action, Post, React, Reply
from omnichannel.model import Message, Person, Ref
from omnichannel.store import OutboxItem
from omnichannel.store.roles import OutboxStore

__all__ = ["OutboxOrderScenarios"]

_NET = "mastodon"
_T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_DAY = timedelta(days=1)
_CUSTOMER = Person(ref=Ref(network=_NET, id="110245"), handle="ann@mastodon.social")


def _to(thread: str, *, network: str = _NET) -> Message:
    """A customer's message in the thread ``thread``."""
    return Message(
        ref=Ref(network=network, id=f"{thread}9"),
        conversation=Ref(network=network, id=thread),
        author=_CUSTOMER.model_copy(update={"ref": Ref(network=network, id="110245")}),
        text="help", created_at=_T0,
    )


def _item(action: Action, at: datetime = _T0) -> OutboxItem:
    return OutboxItem.for_action(action, origin="handler:triage", now=at)


def _reply(thread: str, text: str, *, network: str = _NET) -> OutboxItem:
    return _item(Reply(network=network, to=_to(thread, network=network), text=text))


def _keys(items: list[OutboxItem]) -> list[str]:
    return [item.key for item in items]


class OutboxOrderScenarios:
    """One conversation's items are claimed one at a time, in the order they were queued."""

    async def test_an_item_waiting_for_its_retry_holds_back_the_next_of_its_conversation(
        self, store: OutboxStore
    ) -> None:
        """A refused send backing off keeps the conversation's next reply queued behind it."""
        first = await store.enqueue(_reply("118000", "first"))
        second = await store.enqueue(_reply("118000", "second"))
        elsewhere = await store.enqueue(_reply("118001", "another conversation"))
        post = await store.enqueue(_item(Post(network=_NET, text="news")))
        claimed = await store.claim_due(now=_T0, worker="w1", lease=_DAY)
        assert sorted(_keys(claimed)) == sorted([first.key, elsewhere.key, post.key])
        retry_at = _T0 + timedelta(seconds=30)
        await store.update_outbox(
            first.key, status="pending", next_attempt_at=retry_at, worker="w1",
            last_error="TransientError: 503",
        )
        for done in (elsewhere, post):
            await store.update_outbox(done.key, status="sent", worker="w1")
        assert await store.claim_due(now=_T0 + timedelta(seconds=29), worker="w1") == []
        assert _keys(await store.claim_due(now=retry_at, worker="w1")) == [first.key]
        assert await store.claim_due(now=retry_at, worker="w1") == []
        await store.update_outbox(first.key, status="sent", worker="w1")
        [then] = await store.claim_due(now=retry_at, worker="w1")
        assert (then.key, then.status, then.attempts) == (second.key, "sending", 1)

    async def test_a_dead_workers_item_holds_back_the_next_until_it_is_finished(
        self, store: OutboxStore, other_worker: OutboxStore
    ) -> None:
        """w1 dies holding a conversation's first reply: its second waits for the lease to run
        out, the takeover, the reconciliation and the outcome, in that order."""
        first = await store.enqueue(_reply("118100", "first"))
        await store.claim_due(now=_T0, worker="w1", lease=timedelta(seconds=30))
        second = await store.enqueue(_reply("118100", "second"))
        assert await other_worker.claim_due(now=_T0 + timedelta(seconds=29), worker="w2") == []
        [taken] = await other_worker.claim_due(
            now=_T0 + timedelta(seconds=30), worker="w2", lease=timedelta(seconds=30)
        )
        assert (taken.key, taken.status) == (first.key, "ambiguous")
        assert await other_worker.claim_due(now=_T0 + timedelta(seconds=31), worker="w2") == []
        # The lookup could not tell yet: ambiguous, looked up again later.
        look_again = _T0 + timedelta(seconds=40)
        await other_worker.update_outbox(
            first.key, status="ambiguous", next_attempt_at=look_again, worker="w2"
        )
        assert await other_worker.claim_due(now=_T0 + timedelta(seconds=39), worker="w2") == []
        assert _keys(await other_worker.claim_due(now=look_again, worker="w2")) == [first.key]
        await other_worker.update_outbox(first.key, status="sent", worker="w2")
        assert _keys(await store.claim_due(now=look_again, worker="w3")) == [second.key]

    async def test_a_failed_or_cancelled_item_lets_the_next_go(self, store: OutboxStore) -> None:
        """A final outcome other than sent releases the next item: a conversation never stalls."""
        first = await store.enqueue(_reply("118200", "first"))
        second = await store.enqueue(_reply("118200", "second"))
        third = await store.enqueue(_reply("118200", "third"))
        assert _keys(await store.claim_due(now=_T0, worker="w1")) == [first.key]
        await store.update_outbox(
            first.key, status="failed", last_error="ActionError: refused", worker="w1"
        )
        await store.update_outbox(second.key, status="cancelled")
        assert _keys(await store.claim_due(now=_T0, worker="w1")) == [third.key]

    async def test_only_items_of_one_network_and_order_key_wait_for_each_other(
        self, store: OutboxStore
    ) -> None:
        """Posts wait for nothing; reactions wait per target; a thread id on another network
        is another conversation."""
        posts = [await store.enqueue(_item(Post(network=_NET, text=f"news {n}"))) for n in range(2)]
        target = Ref(network=_NET, id="118300")
        likes = [
            await store.enqueue(_item(React(network=_NET, target=target, reaction=emoji)))
            for emoji in ("like", "🎉")
        ]
        here = await store.enqueue(_reply("118301", "here"))
        there = await store.enqueue(_reply("118301", "there", network="bluesky"))
        assert (posts[0].order_key, likes[0].order_key, here.order_key) == (
            None, "target:118300", "conversation:118301",
        )
        claimed = await store.claim_due(now=_T0, worker="w1", limit=10)
        assert sorted(_keys(claimed)) == sorted(
            [posts[0].key, posts[1].key, likes[0].key, here.key, there.key]
        )
        await store.update_outbox(likes[0].key, status="sent", worker="w1")
        assert _keys(await store.claim_due(now=_T0, worker="w1")) == [likes[1].key]

    async def test_workers_claiming_together_take_a_conversations_items_in_queue_order(
        self, store: OutboxStore, other_worker: OutboxStore
    ) -> None:
        """Two workers, two claimers each, claiming and finishing at once: each conversation's
        items are claimed in queue order, never two of one conversation held together."""
        queued: dict[str, list[str]] = {}
        for n in range(4):
            for thread in range(6):
                item = await store.enqueue(_reply(f"1184{thread:02}", f"answer {n}"))
                queued.setdefault(f"1184{thread:02}", []).append(item.key)
        conversation_of = {key: thread for thread, keys in queued.items() for key in keys}
        claimed: dict[str, list[str]] = {thread: [] for thread in queued}
        held: dict[str, str] = {}
        twice: list[str] = []

        async def claimer(worker: str, on: OutboxStore) -> None:
            while True:
                batch = await on.claim_due(now=_T0, worker=worker, limit=3, lease=_DAY)
                if not batch:
                    if not held:
                        return
                    await anyio.sleep(0.001)
                    continue
                for item in batch:
                    thread = conversation_of[item.key]
                    if thread in held:
                        twice.append(thread)
                    held[thread] = item.key
                    claimed[thread].append(item.key)
                await checkpoint()
                for item in batch:
                    del held[conversation_of[item.key]]
                    await on.update_outbox(item.key, status="sent", worker=worker)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(2):
                    tg.start_soon(claimer, f"w1.{n}", store)
                    tg.start_soon(claimer, f"w2.{n}", other_worker)
        assert twice == []
        assert claimed == queued
