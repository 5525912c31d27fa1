"""Shared fixtures for the core test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO.parent / "shared" / "vectors"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio; modules that also want trio parametrize it."""
    return "asyncio"


@pytest.fixture
def vectors() -> Path:
    """The folder of real recorded network payloads."""
    if not VECTORS.is_dir():
        pytest.fail(f"recorded vectors not found at {VECTORS}")
    return VECTORS
