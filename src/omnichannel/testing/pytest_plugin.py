"""The pytest plugin omnichannel installs (entry point ``pytest11``): fixtures and markers.

Loaded automatically wherever ``omnichannel`` is installed. It only adds:

- the ``sandbox_clock`` fixture: a fresh [`VirtualClock`][omnichannel.testing.clock.VirtualClock];
- the ``fault_seed`` fixture: the seed for sandbox faults, ``0`` unless
  ``pytest --fault-seed=N`` (or ``random``) asks otherwise;
- the ``conformance`` marker, carried by every test of
  [`AdapterConformance`][omnichannel.testing.conformance.AdapterConformance]
  (``pytest -m conformance`` runs just those).
"""

from __future__ import annotations

import random

import pytest

from .clock import VirtualClock

# The conformance suite reports with plain asserts: have pytest rewrite them
# (for readable failures) when a test module imports it.
pytest.register_assert_rewrite("omnichannel.testing.conformance")

__all__ = [
    "fault_seed",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "sandbox_clock",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--fault-seed``."""
    group = parser.getgroup("omnichannel")
    group.addoption(
        "--fault-seed", action="store", default="0", metavar="N",
        help="seed for omnichannel sandbox faults (an integer, or 'random'; default 0)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``conformance`` marker."""
    config.addinivalue_line(
        "markers", "conformance: an omnichannel adapter conformance scenario",
    )


def _seed(config: pytest.Config) -> int:
    raw = str(config.getoption("--fault-seed", default="0"))
    if raw == "random":
        cached = getattr(config, "_omnichannel_seed", None)
        if cached is None:
            cached = random.SystemRandom().randrange(2**32)
            config._omnichannel_seed = cached  # type: ignore[attr-defined]
        return int(cached)
    try:
        return int(raw)
    except ValueError:
        message = f"--fault-seed must be an integer or 'random', not {raw!r}"
        raise pytest.UsageError(message) from None


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> int:
    """The seed for sandbox faults: ``--fault-seed`` (default 0)."""
    return _seed(request.config)


@pytest.fixture
def sandbox_clock() -> VirtualClock:
    """A fresh virtual clock, at ``omnichannel.testing.clock.DEFAULT_START``."""
    return VirtualClock()


def pytest_report_header(config: pytest.Config) -> str:
    """Show the fault seed in the header, so a failing run can be replayed."""
    return f"omnichannel: fault seed {_seed(config)}"
