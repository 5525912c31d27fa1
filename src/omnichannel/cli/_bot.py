"""Moved to [`omnichannel.bot`][omnichannel.bot]; this path keeps working."""

from __future__ import annotations

from ..bot import Bot as Bot

__all__ = ["Bot"]
