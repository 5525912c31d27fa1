"""Plain-text tables whose columns line up in a terminal, emoji included."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["display_width", "render_table", "shorten"]


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or char in "\u200d\ufe0f\ufe0e":
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """Return how many terminal cells ``text`` takes (wide emoji and CJK count 2)."""
    return sum(_char_width(char) for char in text)


def shorten(text: str, width: int) -> str:
    """Return ``text`` on one line, cut to ``width`` cells with an ellipsis if longer."""
    flat = " ".join(text.split())
    if display_width(flat) <= width:
        return flat
    out: list[str] = []
    used = 0
    for char in flat:
        cells = _char_width(char)
        if used + cells > width - 1:
            break
        out.append(char)
        used += cells
    return "".join(out).rstrip() + "…"


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[bool] | None = None,
) -> str:
    """Render ``rows`` under ``headers`` as an aligned plain-text table.

    Args:
        headers: Column titles.
        rows: One sequence of cell strings per row, as long as ``headers``.
        numeric: Per column, whether to right-align it (default: none).

    Returns:
        The table, lines joined by newlines, without a trailing newline.
    """
    right = list(numeric) if numeric is not None else [False] * len(headers)
    widths = [display_width(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], display_width(cell))
    lines = [
        "  ".join(_pad(h, widths[i], right=right[i]) for i, h in enumerate(headers)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append(
            "  ".join(_pad(cell, widths[i], right=right[i]) for i, cell in enumerate(row)).rstrip()
        )
    return "\n".join(lines)
