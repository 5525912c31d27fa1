"""Store conformance scenarios for named values (mixed into StoreConformance)."""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

from typing import Any, Protocol

import anyio

from omnichannel.store.roles import ValueStore

__all__ = ["ValueScenarios"]


class _Reopens(Protocol):
    store: Any

    async def reopen(self) -> Any: ...


class ValueScenarios:
    """Named values: read, replace, delete, kept per scope, surviving a reopen."""

    async def test_values_are_kept_per_scope_and_replaced(self, store: ValueStore) -> None:
        assert await store.get_value("x.tokens", "account") is None
        await store.put_value("x.tokens", "account", '{"refresh": "r1"}')
        await store.put_value("x.ledger", "account", "0.20")
        await store.put_value("x.tokens", "account", '{"refresh": "r2 ✓"}')
        assert await store.get_value("x.tokens", "account") == '{"refresh": "r2 ✓"}'
        assert await store.get_value("x.ledger", "account") == "0.20"
        await store.delete_value("x.tokens", "account")
        await store.delete_value("x.tokens", "never-there")
        assert await store.get_value("x.tokens", "account") is None
        assert await store.get_value("x.ledger", "account") == "0.20"

    async def test_concurrent_writes_of_one_value_leave_one_of_them(
        self, store: ValueStore
    ) -> None:
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(store.put_value, "scope", "key", f"value {n}")
        assert await store.get_value("scope", "key") in {f"value {n}" for n in range(10)}

    async def test_values_survive_reopen(self, harness: _Reopens) -> None:
        await harness.store.put_value("meta.tokens", "page", "kept")
        store = await harness.reopen()
        assert await store.get_value("meta.tokens", "page") == "kept"
