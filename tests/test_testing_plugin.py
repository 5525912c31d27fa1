"""`omnichannel.testing.pytest_plugin`: the fixtures and marker every install gets."""

from __future__ import annotations

import pytest

from omnichannel.testing import VirtualClock
from omnichannel.testing.clock import DEFAULT_START

pytest_plugins = ["pytester"]


def test_fault_seed_defaults_to_zero(fault_seed: int) -> None:
    """Without --fault-seed the seed is 0."""
    assert fault_seed == 0


def test_sandbox_clock_is_fresh(sandbox_clock: VirtualClock) -> None:
    """sandbox_clock is a virtual clock at the default start."""
    assert sandbox_clock.now() == DEFAULT_START


def test_fault_seed_option_and_marker(pytester: pytest.Pytester) -> None:
    """--fault-seed sets the fixture and the header; the conformance marker is registered."""
    pytester.makepyfile("""
import pytest

@pytest.mark.conformance
def test_seed(fault_seed):
    assert fault_seed == 1234
""")
    result = pytester.runpytest_inprocess("--fault-seed=1234", "--strict-markers")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["omnichannel: fault seed 1234"])


def test_bad_fault_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A --fault-seed that is not a number or 'random' stops the run."""
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess("--fault-seed=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
