"""Store conformance scenarios for the conversation-state role (mixed into StoreConformance)."""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import pytest

from omnichannel.errors import StoreConflict
from omnichannel.model import Ref
from omnichannel.store.states import ConversationState, ConversationStateStore, StateChange

__all__ = ["ConversationStateScenarios"]

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class _Reopens(Protocol):
    store: Any

    async def reopen(self) -> Any: ...


def _conv(id_: str, network: str = "mastodon") -> Ref:
    return Ref(network=network, id=id_)


def _change(conversation: Ref, what: str, new: str, at: datetime = T0) -> StateChange:
    return StateChange(conversation=conversation, at=at, by="agent:anna", what=what, new=new)


def _due(at: datetime) -> dict[str, dict[str, datetime]]:
    return {"first_response": {"warn_at": at - timedelta(minutes=15), "due_at": at}}


class ConversationStateScenarios:
    """Conversation states: compare-and-set writes, audited changes, the queue's order."""

    async def test_state_writes_are_versioned_and_audited(
        self, store: ConversationStateStore
    ) -> None:
        conv = _conv("c-1")
        assert await store.get_state(conv) is None
        first = await store.put_state(
            ConversationState(conversation=conv, assignee="anna", updated_at=T0),
            expected_version=0, changes=[_change(conv, "assignee", "anna")],
        )
        assert first.version == 1
        second = await store.put_state(
            first.model_copy(update={"status": "resolved", "tags": ("billing", "🧾")}),
            expected_version=1,
            changes=[_change(conv, "status", "resolved"), _change(conv, "tags", "billing")],
        )
        assert second.version == 2
        assert await store.get_state(conv) == second
        changes = await store.state_changes(conv)
        assert [(c.what, c.new, c.version) for c in changes] == [
            ("assignee", "anna", 1), ("status", "resolved", 2), ("tags", "billing", 2)]
        assert [c.what for c in await store.state_changes(conv, limit=2)] == ["status", "tags"]

    async def test_a_stale_write_is_refused_and_changes_nothing(
        self, store: ConversationStateStore
    ) -> None:
        conv = _conv("c-2")
        stored = await store.put_state(ConversationState(conversation=conv), expected_version=0)
        with pytest.raises(StoreConflict):
            await store.put_state(ConversationState(conversation=conv, assignee="ben"),
                                  expected_version=0, changes=[_change(conv, "assignee", "ben")])
        with pytest.raises(StoreConflict):
            await store.put_state(stored.model_copy(update={"assignee": "cleo"}),
                                  expected_version=5)
        assert await store.get_state(conv) == stored
        assert await store.state_changes(conv) == []

    async def test_concurrent_read_modify_write_loses_no_update(
        self, store: ConversationStateStore
    ) -> None:
        """Ten writers retrying on conflict: every one of their changes lands, once."""
        conv = _conv("c-3")
        await store.put_state(ConversationState(conversation=conv), expected_version=0)

        async def add_tag(tag: str) -> None:
            while True:
                current = await store.get_state(conv)
                assert current is not None
                try:
                    await store.put_state(
                        current.model_copy(update={"tags": (*current.tags, tag)}),
                        expected_version=current.version, changes=[_change(conv, "tags", tag)],
                    )
                except StoreConflict:
                    await anyio.lowlevel.checkpoint()
                else:
                    return

        async with anyio.create_task_group() as tg:
            for number in range(10):
                tg.start_soon(add_tag, f"t{number}")
        final = await store.get_state(conv)
        assert final is not None
        assert sorted(final.tags) == sorted(f"t{n}" for n in range(10))
        assert final.version == 11
        assert len(await store.state_changes(conv)) == 10

    async def test_queue_order_and_filters(self, store: ConversationStateStore) -> None:
        rows = [
            ConversationState(conversation=_conv("late"), due=_due(T0 + timedelta(hours=5)),
                              updated_at=T0),
            ConversationState(conversation=_conv("soon", "x"), due=_due(T0 + timedelta(hours=1)),
                              assignee="anna", queue="vip", updated_at=T0),
            ConversationState(conversation=_conv("none-old"), updated_at=T0),
            ConversationState(conversation=_conv("none-new"), updated_at=T0 + timedelta(hours=1)),
            ConversationState(conversation=_conv("done"), status="resolved", updated_at=T0),
        ]
        for row in rows:
            await store.put_state(row, expected_version=0)

        def ids(states: list[ConversationState]) -> list[str]:
            return [s.conversation.id for s in states]

        assert ids(await store.list_states(status=["open"])) == [
            "soon", "late", "none-new", "none-old"]
        assert ids(await store.list_states(status=["open"], limit=2)) == ["soon", "late"]
        assert ids(await store.list_states(status=["resolved", "snoozed"])) == ["done"]
        assert ids(await store.list_states(assignee="anna")) == ["soon"]
        assert ids(await store.list_states(queue="vip")) == ["soon"]
        assert ids(await store.list_states(network="x")) == ["soon"]
        # Due or warning before 09:50: "soon" warns at 09:45.
        assert ids(await store.list_states(due_before=T0 + timedelta(minutes=50))) == ["soon"]
        assert await store.list_states(status=[]) == []

    async def test_states_survive_reopen(self, harness: _Reopens) -> None:
        conv = _conv("c-4", "bluesky")
        await harness.store.put_state(
            ConversationState(conversation=conv, priority="urgent", due=_due(T0),
                              fired={"first_response:warning": T0}),
            expected_version=0, changes=[_change(conv, "priority", "urgent")],
        )
        store = await harness.reopen()
        state = await store.get_state(conv)
        assert state is not None
        assert state.priority == "urgent"
        assert state.due["first_response"]["due_at"] == T0
        assert state.fired == {"first_response:warning": T0}
        assert [c.what for c in await store.state_changes(conv)] == ["priority"]
