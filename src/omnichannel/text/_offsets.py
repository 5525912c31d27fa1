"""Conversions between ``str`` indices and UTF-8 / UTF-16 offsets."""

from __future__ import annotations

import re
from bisect import bisect_left
from itertools import accumulate

from ..errors import PayloadError
from ._counters import count_utf16_units

_SURROGATE = re.compile(r"[\ud800-\udfff]")  # the standard re: no need to load regex


def _offset_error(
    kind: str, offset: int, size: int, network: str | None, path: str, *, inside: bool
) -> PayloadError:
    if inside:
        reason = f"{kind} offset {offset} falls inside a character"
    else:
        reason = f"{kind} offset {offset} is outside the text (0..{size})"
    return PayloadError(reason, network=network, path=path)


def utf8_to_index(
    text: str, byte_offset: int, *, network: str | None = None, path: str = ""
) -> int:
    """Convert a UTF-8 byte offset (Bluesky facets) to a ``str`` index.

    For many conversions on one text, build an
    [`OffsetMap`][omnichannel.text.OffsetMap] once instead.

    Args:
        text: The text the offset points into.
        byte_offset: Offset in bytes from the start of the UTF-8 encoding.
        network: Network the offset came from, for the error.
        path: Path of the offset in the payload, for the error.

    Returns:
        The code point index in ``text``.

    Raises:
        PayloadError: The offset is negative, past the end, or falls inside
            a multi-byte character.
    """
    data = text.encode("utf-8", "surrogatepass")
    if not 0 <= byte_offset <= len(data):
        raise _offset_error("UTF-8", byte_offset, len(data), network, path, inside=False)
    if byte_offset < len(data) and data[byte_offset] & 0xC0 == 0x80:
        raise _offset_error("UTF-8", byte_offset, len(data), network, path, inside=True)
    return len(data[:byte_offset].decode("utf-8", "surrogatepass"))


def index_to_utf8(
    text: str, index: int, *, network: str | None = None, path: str = ""
) -> int:
    """Convert a ``str`` index to a UTF-8 byte offset.

    Args:
        text: The text the index points into.
        index: Code point index, ``0 <= index <= len(text)``.
        network: Network the index is meant for, for the error.
        path: Path of the index, for the error.

    Returns:
        The byte offset of that index in the UTF-8 encoding.

    Raises:
        PayloadError: The index is outside the text.
    """
    if not 0 <= index <= len(text):
        raise _offset_error("index", index, len(text), network, path, inside=False)
    return len(text[:index].encode("utf-8", "surrogatepass"))


def utf16_to_index(
    text: str, unit_offset: int, *, network: str | None = None, path: str = ""
) -> int:
    """Convert a UTF-16 code unit offset (X, Meta) to a ``str`` index.

    Args:
        text: The text the offset points into.
        unit_offset: Offset in 16-bit code units.
        network: Network the offset came from, for the error.
        path: Path of the offset in the payload, for the error.

    Returns:
        The code point index in ``text``.

    Raises:
        PayloadError: The offset is negative, past the end, or falls between
            the two halves of a surrogate pair.
    """
    if _SURROGATE.search(text):
        # Separate surrogate code points must not be decoded as a pair.
        return OffsetMap(text).utf16_to_index(unit_offset, network=network, path=path)
    data = text.encode("utf-16-le", "surrogatepass")
    size = len(data) // 2
    if not 0 <= unit_offset <= size:
        raise _offset_error("UTF-16", unit_offset, size, network, path, inside=False)
    if 0 < unit_offset < size:
        before = int.from_bytes(data[2 * unit_offset - 2 : 2 * unit_offset], "little")
        at = int.from_bytes(data[2 * unit_offset : 2 * unit_offset + 2], "little")
        if 0xD800 <= before <= 0xDBFF and 0xDC00 <= at <= 0xDFFF:
            raise _offset_error("UTF-16", unit_offset, size, network, path, inside=True)
    return len(data[: 2 * unit_offset].decode("utf-16-le", "surrogatepass"))


def index_to_utf16(
    text: str, index: int, *, network: str | None = None, path: str = ""
) -> int:
    """Convert a ``str`` index to a UTF-16 code unit offset.

    Args:
        text: The text the index points into.
        index: Code point index, ``0 <= index <= len(text)``.
        network: Network the index is meant for, for the error.
        path: Path of the index, for the error.

    Returns:
        The offset in 16-bit code units.

    Raises:
        PayloadError: The index is outside the text.
    """
    if not 0 <= index <= len(text):
        raise _offset_error("index", index, len(text), network, path, inside=False)
    return len(text[:index].encode("utf-16-le", "surrogatepass")) // 2


class OffsetMap:
    """Fast conversions between ``str`` indices and UTF-8 / UTF-16 offsets of one text.

    Cumulative tables are built once, on first use, so converting all the
    entities of a message costs one pass over the text plus a binary search
    per offset. ASCII text (and, for UTF-16, text without astral characters)
    needs no table at all.

    ```python
    from omnichannel.text import OffsetMap

    offsets = OffsetMap("📈 localview.net")
    print(offsets.utf8_to_index(5), offsets.index_to_utf16(2))
    #> 2 3
    ```

    Args:
        text: The text every offset points into.
    """

    __slots__ = ("_text", "_utf8", "_utf16")

    def __init__(self, text: str) -> None:
        self._text = text
        self._utf8: list[int] | None = None
        self._utf16: list[int] | None = None

    @property
    def text(self) -> str:
        """The text the offsets point into."""
        return self._text

    def _utf8_table(self) -> list[int] | None:
        if self._text.isascii():
            return None
        if self._utf8 is None:
            widths = (
                1 if c < 0x80 else 2 if c < 0x800 else 3 if c < 0x10000 else 4
                for c in map(ord, self._text)
            )
            self._utf8 = list(accumulate(widths, initial=0))
        return self._utf8

    def _utf16_table(self) -> list[int] | None:
        if count_utf16_units(self._text) == len(self._text):
            return None
        if self._utf16 is None:
            widths = (1 if c < 0x10000 else 2 for c in map(ord, self._text))
            self._utf16 = list(accumulate(widths, initial=0))
        return self._utf16

    def _to_index(
        self, table: list[int] | None, kind: str, offset: int, network: str | None, path: str
    ) -> int:
        size = len(self._text) if table is None else table[-1]
        if not 0 <= offset <= size:
            raise _offset_error(kind, offset, size, network, path, inside=False)
        if table is None:
            return offset
        position = bisect_left(table, offset)
        if table[position] != offset:
            raise _offset_error(kind, offset, size, network, path, inside=True)
        return position

    def _from_index(
        self, table: list[int] | None, index: int, network: str | None, path: str
    ) -> int:
        if not 0 <= index <= len(self._text):
            raise _offset_error("index", index, len(self._text), network, path, inside=False)
        return index if table is None else table[index]

    def utf8_to_index(self, offset: int, *, network: str | None = None, path: str = "") -> int:
        """Convert a UTF-8 byte offset to a ``str`` index.

        Args:
            offset: Offset in bytes.
            network: Network the offset came from, for the error.
            path: Path of the offset in the payload, for the error.

        Returns:
            The code point index.

        Raises:
            PayloadError: The offset is out of range or inside a character.
        """
        return self._to_index(self._utf8_table(), "UTF-8", offset, network, path)

    def index_to_utf8(self, index: int, *, network: str | None = None, path: str = "") -> int:
        """Convert a ``str`` index to a UTF-8 byte offset.

        Args:
            index: Code point index, ``0 <= index <= len(text)``.
            network: Network the index is meant for, for the error.
            path: Path of the index, for the error.

        Returns:
            The byte offset.

        Raises:
            PayloadError: The index is outside the text.
        """
        return self._from_index(self._utf8_table(), index, network, path)

    def utf16_to_index(self, offset: int, *, network: str | None = None, path: str = "") -> int:
        """Convert a UTF-16 code unit offset to a ``str`` index.

        Args:
            offset: Offset in 16-bit code units.
            network: Network the offset came from, for the error.
            path: Path of the offset in the payload, for the error.

        Returns:
            The code point index.

        Raises:
            PayloadError: The offset is out of range or splits a surrogate pair.
        """
        return self._to_index(self._utf16_table(), "UTF-16", offset, network, path)

    def index_to_utf16(self, index: int, *, network: str | None = None, path: str = "") -> int:
        """Convert a ``str`` index to a UTF-16 code unit offset.

        Args:
            index: Code point index, ``0 <= index <= len(text)``.
            network: Network the index is meant for, for the error.
            path: Path of the index, for the error.

        Returns:
            The offset in 16-bit code units.

        Raises:
            PayloadError: The index is outside the text.
        """
        return self._from_index(self._utf16_table(), index, network, path)

    def __repr__(self) -> str:
        return f"OffsetMap(<{len(self._text)} code points>)"
