"""Plain counters: code points, grapheme clusters, UTF-8 bytes, UTF-16 units."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def grapheme_pattern() -> Any:
    """The compiled ``\\X`` (extended grapheme cluster) pattern; imports ``regex`` on first use."""
    import regex  # type: ignore[import-untyped, unused-ignore]

    return regex.compile(r"\X")


def count_code_points(text: str) -> int:
    """Count Unicode code points, which is Python's ``len(text)``.

    Args:
        text: The text to measure.

    Returns:
        The number of code points.
    """
    return len(text)


def graphemes(text: str) -> list[str]:
    """Split text into extended grapheme clusters (user-perceived characters).

    Segmentation follows the Unicode release of the installed ``regex``
    package, so a family emoji, a flag or a letter with combining accents
    is one item.

    Args:
        text: The text to split.

    Returns:
        The clusters, in order; ``"".join(graphemes(text)) == text``.
    """
    return list(grapheme_pattern().findall(text))


def count_graphemes(text: str) -> int:
    """Count extended grapheme clusters, as Bluesky and Mastodon do.

    Args:
        text: The text to measure.

    Returns:
        The number of grapheme clusters.
    """
    if text.isascii():
        # In ASCII only CR LF forms a multi-character cluster.
        return len(text) - text.count("\r\n")
    return len(grapheme_pattern().findall(text))


def count_utf8_bytes(text: str) -> int:
    """Count the bytes of the UTF-8 encoding of text.

    Args:
        text: The text to measure. Lone surrogates count 3 bytes each.

    Returns:
        The encoded size in bytes.
    """
    return len(text.encode("utf-8", "surrogatepass"))


def count_utf16_units(text: str) -> int:
    """Count UTF-16 code units (JavaScript's ``string.length``).

    Args:
        text: The text to measure.

    Returns:
        The number of 16-bit units: one per code point, two for code points
        outside the Basic Multilingual Plane.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
