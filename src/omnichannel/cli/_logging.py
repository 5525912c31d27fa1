"""Moved to ``omnichannel._logconfig`` (the command line and ``Bot`` share it)."""

from __future__ import annotations

from .._logconfig import HANDLER_NAME as HANDLER_NAME
from .._logconfig import LOG_CONFIG_ENV as LOG_CONFIG_ENV
from .._logconfig import configure_logging as configure_logging

__all__ = ["HANDLER_NAME", "LOG_CONFIG_ENV", "configure_logging"]
