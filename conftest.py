"""Fixtures every test of the repository gets, the core's and each adapter's alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


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
    # A logger made during the test (a library imported by it: httpx when a command loads
    # its first adapter) gets back the level and state a new logger has.
    known = {id(lg) for lg in loggers}
    for value in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(value, logging.Logger) and id(value) not in known:
            value.setLevel(logging.NOTSET)
            value.disabled, value.propagate = False, True
