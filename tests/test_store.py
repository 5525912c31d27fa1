"""The store conformance suite on the stores that ship in the core: MemoryStore and SQLiteStore.

The scenarios live in `omnichannel.testing.store_conformance`; PostgreSQL runs them in
tests/test_store_postgres.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omnichannel.store import MemoryStore, SQLiteStore
from omnichannel.testing.store_conformance import StoreConformance, StoreFactory


class TestMemoryStore(StoreConformance):
    """MemoryStore: a restart keeps the same object (its data lives in it)."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """One MemoryStore, returned again on every reopen."""
        store = MemoryStore()
        return lambda: store


class TestSQLiteStore(StoreConformance):
    """SQLiteStore over one file per test (one writer: its workers share one object)."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        """A new SQLiteStore object over the test's file."""
        return lambda: SQLiteStore(tmp_path / "helpdesk.db")
