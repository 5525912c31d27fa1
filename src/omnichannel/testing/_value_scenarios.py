"""Store conformance scenarios for named values (mixed into StoreConformance)."""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

import anyio
import pytest

from omnichannel.errors import StoreConflict
from omnichannel.store.roles import ValueStore

__all__ = ["ValueScenarios"]


class _Reopens(Protocol):
    store: Any

    async def reopen(self) -> Any: ...


class ValueScenarios:
    """Named values: read, replace, delete, kept per scope, surviving a reopen; numbers added to."""

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

    async def test_added_values_are_summed_all_or_none(self, store: ValueStore) -> None:
        day, month = "2026-12-04", "2026-12"
        first = await store.add_values("spend.x", {day: Decimal("0.015"), month: Decimal("0.015")})
        assert first == {day: Decimal("0.015"), month: Decimal("0.015")}
        assert await store.get_value("spend.x", day) == "0.015"
        refused = await store.add_values(
            "spend.x", {day: Decimal("0.200"), month: Decimal("0.200")},
            limits={day: Decimal("1"), month: Decimal("0.100")})
        assert refused is None
        assert await store.get_value("spend.x", day) == "0.015", "nothing added when refused"
        back = await store.add_values("spend.x", {day: Decimal("-0.015")}, limits={})
        assert back == {day: Decimal(0)}
        assert await store.get_value("spend.y", day) is None
        await store.put_value("spend.x", "text", "not a number")
        with pytest.raises(StoreConflict):
            await store.add_values("spend.x", {"text": Decimal(1), day: Decimal(1)})
        assert await store.get_value("spend.x", day) == "0.000"

    async def test_concurrent_additions_never_overrun_a_limit(
        self, store: ValueStore, other_worker: ValueStore
    ) -> None:
        """Two workers adding 0.2 at once under a limit of 1.0: exactly five are taken."""
        taken: list[Decimal] = []

        async def add(worker: ValueStore) -> None:
            totals = await worker.add_values("spend.x", {"day": Decimal("0.2")},
                                             limits={"day": Decimal("1.0")})
            if totals is not None:
                taken.append(totals["day"])

        async with anyio.create_task_group() as tg:
            for n in range(12):
                tg.start_soon(add, store if n % 2 else other_worker)
        assert sorted(taken) == [Decimal("0.2") * n for n in range(1, 6)]
        assert Decimal(await store.get_value("spend.x", "day") or "") == Decimal("1.0")

    async def test_added_values_survive_reopen(self, harness: _Reopens) -> None:
        await harness.store.add_values("spend.x", {"2026-12": Decimal("0.25")})
        store = await harness.reopen()
        assert await store.add_values("spend.x", {"2026-12": Decimal("0.05")}) == {
            "2026-12": Decimal("0.30")}
