"""The offline demo behind ``omnichannel demo`` (private machinery)."""

from __future__ import annotations

from ._run import load_quickbot, run_demo

__all__ = ["load_quickbot", "run_demo"]
