"""Shared fixtures for the core test suite."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"

BACKENDS = ("asyncio", "trio")
BACKEND = os.environ.get("OMNICHANNEL_TEST_BACKEND", "asyncio")
"""The anyio backend of async tests: ``OMNICHANNEL_TEST_BACKEND`` (CI runs ``trio`` once)."""


def pytest_configure(config: pytest.Config) -> None:
    """Check ``OMNICHANNEL_TEST_BACKEND`` and register ``asyncio_only``."""
    if BACKEND not in BACKENDS:
        raise pytest.UsageError(
            f"OMNICHANNEL_TEST_BACKEND must be one of {BACKENDS}, not {BACKEND!r}"
        )
    config.addinivalue_line(
        "markers",
        "asyncio_only(reason): the test cannot run on trio; the trio job skips it, saying why",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``asyncio_only(reason)`` when the backend is not asyncio."""
    marker = item.get_closest_marker("asyncio_only")
    if marker is not None and BACKEND != "asyncio":
        pytest.skip(f"asyncio only: {marker.args[0]}")


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on ``$OMNICHANNEL_TEST_BACKEND`` (asyncio unless CI asks for trio)."""
    return BACKEND


@pytest.fixture
def vectors() -> Path:
    """The folder of real recorded network payloads."""
    if not VECTORS.is_dir():
        pytest.fail(f"recorded vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(autouse=True)
def _logging_state_restored() -> Iterator[None]:
    """Put every logger back as it was: tests that run commands or docs configure logging."""
    loggers = [logging.getLogger(), *(
        value for value in logging.Logger.manager.loggerDict.values()
        if isinstance(value, logging.Logger))]
    saved = [(lg, lg.level, lg.disabled, lg.propagate, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, disabled, propagate, handlers in saved:
        lg.setLevel(level)
        lg.disabled, lg.propagate, lg.handlers[:] = disabled, propagate, handlers
