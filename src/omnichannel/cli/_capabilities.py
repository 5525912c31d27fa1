"""Describe adapters' declared capabilities as table rows (CLI and docs share this)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ..capabilities import Capabilities
from ..registry import AdapterInfo
from ..text import TextRule

__all__ = ["CAPABILITY_LABELS", "capability_matrix", "describe_rule", "describe_window"]

_UNITS = {
    "code_points": "characters",
    "graphemes": "graphemes",
    "weighted": "weighted characters",
    "utf8_bytes": "UTF-8 bytes",
}

CAPABILITY_LABELS: tuple[str, ...] = (
    "public text",
    "direct-message text",
    "new posts",
    "private reply",
    "private-reply window",
    "direct-message window",
    "human-agent window",
    "reactions",
    "direct-message reactions",
    "hide comments",
    "delete",
    "edit",
    "media",
    "inbound",
    "native idempotency",
)
"""Row titles of the capability matrix, in order."""


def describe_rule(rule: TextRule) -> str:
    """Describe a text rule in a few words, e.g. ``500 graphemes, URLs count 23``."""
    parts = [f"{rule.limit} {_UNITS.get(rule.unit, rule.unit)}"]
    if rule.max_bytes is not None:
        parts.append(f"at most {rule.max_bytes} UTF-8 bytes")
    if rule.url_length is not None:
        parts.append(f"URLs count {rule.url_length}")
    if rule.strip_mention_domains:
        parts.append("@user@domain counts as @user")
    return ", ".join(parts)


def describe_window(window: timedelta | None) -> str:
    """Describe a messaging window (``24 h``, ``7 days``) or ``none`` when unlimited."""
    if window is None:
        return "none"
    hours = window.total_seconds() / 3600
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day" if days == 1 else f"{days} days"
    if hours >= 1:
        return f"{hours:g} h"
    return f"{window.total_seconds() / 60:g} min"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _column(caps: Capabilities) -> list[str]:
    return [
        describe_rule(caps.text),
        describe_rule(caps.dm_text) if caps.dm_text is not None else "same as public",
        _yes(caps.post),
        _yes(caps.private_reply),
        describe_window(caps.private_reply_window) if caps.private_reply else "-",
        describe_window(caps.dm_window),
        describe_window(caps.human_agent_window) if caps.human_agent_window else "-",
        ", ".join(caps.reactions) or "no",
        ", ".join(caps.dm_reactions) or "no",
        _yes(caps.hide),
        _yes(caps.delete),
        _yes(caps.edit),
        ", ".join(sorted(caps.media)) or "none",
        ", ".join(m for m in ("webhook", "stream", "poll") if m in caps.inbound),
        _yes(caps.native_idempotency),
    ]


def capability_matrix(infos: Sequence[AdapterInfo]) -> tuple[list[str], list[list[str]]]:
    """Return headers and rows: one row per capability, one column per loaded adapter.

    Adapters that failed to load are left out (the adapters table shows their error).
    """
    loaded = [info for info in infos if info.capabilities is not None]
    headers = ["capability", *(info.network for info in loaded)]
    columns = [_column(info.capabilities) for info in loaded if info.capabilities is not None]
    rows = [
        [label, *(column[index] for column in columns)]
        for index, label in enumerate(CAPABILITY_LABELS)
    ]
    return headers, rows
