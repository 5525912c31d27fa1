"""Length counters, offset converters and a thread splitter, each network's way.

Networks disagree on what a "character" is. X weighs code points (most
scripts and every emoji count 2, URLs count 23), Mastodon counts grapheme
clusters with URLs as 23, and Bluesky counts grapheme clusters *and* UTF-8
bytes. Entity offsets disagree too: Bluesky facets use UTF-8 byte offsets, X
and Meta use UTF-16 code units, and Python strings index code points. This
module holds one implementation of each rule, so adapters and the hub never
count by hand.

```python
from omnichannel.text import TextRule, utf8_to_index

print(TextRule.x().count("Hello, world! 👋"))  # the emoji weighs 2
#> 16
print(TextRule.bluesky_post().fits("👨‍👩‍👧‍👦" * 300))  # 300 graphemes, but 7,500 bytes
#> False
print(utf8_to_index("📈 localview.net", 5))  # a facet after a 4-byte emoji
#> 2
```

See the "Counting text" explanation page for the rules and their sources.

Long because: every network's length rule, offset map and the splitter share the
grapheme and URL helpers; moving network-specific rules to their adapters is the next
step.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from functools import lru_cache
from itertools import accumulate
from typing import Literal, NamedTuple

import regex  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field

from .errors import PayloadError, TextTooLong

__all__ = [
    "OffsetMap",
    "TextRule",
    "TextUnit",
    "count_code_points",
    "count_graphemes",
    "count_utf8_bytes",
    "count_utf16_units",
    "graphemes",
    "index_to_utf8",
    "index_to_utf16",
    "mastodon_length",
    "split_thread",
    "utf8_to_index",
    "utf16_to_index",
    "x_weighted_length",
]

TextUnit = Literal["code_points", "graphemes", "weighted", "utf8_bytes"]
"""What a [`TextRule`][omnichannel.text.TextRule] counts.

``code_points`` is ``len(str)``; ``graphemes`` are extended grapheme clusters
(user-perceived characters); ``weighted`` is X's weighted length;
``utf8_bytes`` is the size of the UTF-8 encoding.
"""

# --------------------------------------------------------------------------
# Plain counters
# --------------------------------------------------------------------------

_GRAPHEME = regex.compile(r"\X")


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
    return list(_GRAPHEME.findall(text))


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
    return len(_GRAPHEME.findall(text))


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


# --------------------------------------------------------------------------
# Offsets
# --------------------------------------------------------------------------


_SURROGATE = regex.compile(r"[\ud800-\udfff]")


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


# --------------------------------------------------------------------------
# URLs, mentions and hashtags (just enough to count and split)
# --------------------------------------------------------------------------

# A URL may not be glued to a word, a mention or a cashtag (twitter-text's
# validUrlPrecedingChars; Mastodon reuses the same expression).
_URL_NOT_AFTER = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@＠$#＃\ufeff\ufffe\uffff"
)
# Path, query and fragment characters: twitter-text's validGeneralUrlPathChars
# and query characters, with its Latin and Cyrillic letters.
_PATH_CHAR = r"[A-Za-z0-9!*';:=+,.$/%#\[\]\-_~|&@()?\u2013\p{Latin}\p{Cyrillic}]"
_SCHEME = regex.compile(r"https?://", regex.IGNORECASE)
_HOST = regex.compile(r"[\p{L}\p{M}\p{N}_-]+(?:\.[\p{L}\p{M}\p{N}_-]+)+")
_SCHEME_TAIL = regex.compile(rf"(?::\d{{1,5}})?(?:[/?#]{_PATH_CHAR}*)?")
_BARE_TAIL = regex.compile(rf"(?::\d{{1,5}})?(?:[/?]{_PATH_CHAR}*)?")
# Where a bare domain may be: a dot between a host character and a letter.
_DOT_HINT = regex.compile(r"[A-Za-z0-9_-]\.[A-Za-z]")
_ASCII_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_ASCII_TLD = regex.compile(r"[A-Za-z]{2,}|xn--[A-Za-z0-9-]+", regex.IGNORECASE)
_LEADING_ASCII_TLD = regex.compile(r"[A-Za-z]{2,}(?=[^\x00-\x7f])")
_TRAILING_PUNCTUATION = ".,;:!?'\"*~"

# Generic top-level domains recognised without a scheme (X only). Two-letter
# country domains are recognised by shape. twitter-text ships the full IANA
# list; this is the common subset, so a bare domain under a rarer TLD counts
# as plain text. Write the scheme (https://) to be exact.
_GENERIC_TLDS = frozenset((
    "aero", "agency", "app", "art", "asia", "biz", "blog", "build", "cafe", "cat", "center",
    "chat", "city", "cloud", "club", "codes", "com", "company", "coop", "design", "dev",
    "digital", "edu", "email", "fun", "games", "global", "gov", "group", "guide", "help",
    "info", "int", "jobs", "life", "link", "live", "ltd", "media", "mil", "mobi", "museum",
    "name", "net", "network", "news", "one", "online", "org", "page", "photo", "photos",
    "post", "pro", "run", "services", "shop", "site", "social", "software", "solutions",
    "space", "store", "studio", "support", "systems", "team", "tech", "tel", "today", "tools",
    "top", "travel", "vip", "website", "wiki", "work", "world", "xyz", "zone",
))
_SPECIAL_SHORT_CC = frozenset({"co", "tv"})  # "t.co" is a URL even without a path

_MENTION = regex.compile(r"(?<![\w@＠])[@＠]\w+(?:[.-]+\w+)*(?:@\w+(?:[.-]+\w+)*)?")
_HASHTAG = regex.compile(r"(?<![\w&])[#＃][\w\p{M}]+")
_LEADING_MENTIONS = regex.compile(
    r"^\s*(?:[@＠]\w+(?:[.-]+\w+)*(?:@\w+(?:[.-]+\w+)*)?(?:\s+|$))+"
)
# Mastodon's Account::MENTION_RE: a remote mention counts as its local part.
_REMOTE_MENTION = regex.compile(
    r"(?<![=/\w])@([A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*)@\w+(?:[.-]+\w+)*"
)


def _glued(text: str, start: int) -> bool:
    """Whether the character before ``start`` forbids a URL from starting there."""
    return start > 0 and text[start - 1] in _URL_NOT_AFTER


def _trimmed_end(text: str, start: int, end: int) -> int:
    """End of a URL tail ``text[start:end]`` without trailing punctuation or
    unbalanced closing brackets."""
    while end > start:
        last = text[end - 1]
        tail = text[start:end]
        if last in _TRAILING_PUNCTUATION or (
            last == ")" and tail.count(")") > tail.count("(")
        ) or (last == "]" and tail.count("]") > tail.count("[")):
            end -= 1
        else:
            break
    return end


@lru_cache(maxsize=1024)
def _valid_host(host: str) -> bool:
    labels = host.split(".")
    if len(labels) < 2 or any(
        not label or label[0] == "-" or label[-1] == "-" for label in labels
    ):
        return False
    if any("_" in label for label in labels[-2:]):
        return False  # underscores only in subdomains
    tld = labels[-1]
    if not (tld.isalpha() or tld.lower().startswith("xn--")):
        return False
    try:
        host.encode("idna")  # each label at most 63 characters once punycoded
    except UnicodeError:
        return False
    return True


def _scheme_urls(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for scheme in _SCHEME.finditer(text):
        start = scheme.start()
        if _glued(text, start) or (spans and start < spans[-1][1]):
            continue
        host = _HOST.match(text, scheme.end())
        if host is None:
            continue
        end = host.end()
        name = host.group()
        last = name.rsplit(".", 1)[1]
        if not last.isascii():
            ascii_tld = _LEADING_ASCII_TLD.match(last)
            if ascii_tld is not None:
                # "https://example.comです": the URL ends with the ASCII TLD.
                cut = len(last) - ascii_tld.end()
                name, end = name[:-cut], end - cut
                if _valid_host(name):
                    spans.append((start, end))
                continue
        if not _valid_host(name):
            continue
        tail = _SCHEME_TAIL.match(text, end)
        spans.append((start, _trimmed_end(text, end, tail.end()) if tail else end))
    return spans


def _bare_url_end(text: str, start: int, stop: int) -> int | None:
    """End of the bare URL at ``start``, in a run of host characters ending at ``stop``.

    The longest domain whose top-level label is known wins, with its port
    and path; ``None`` when the run holds no domain.
    """
    labels = text[start:stop].split(".")
    while labels and not labels[-1]:
        labels.pop()  # "example.com." ends with a full stop, not a label
    for count in range(len(labels), 1, -1):
        tld = labels[count - 1].lower()
        if not _ASCII_TLD.fullmatch(tld):
            continue
        name = ".".join(labels[:count])
        end = start + len(name)
        if end < len(text) and text[end] in "@+":
            continue
        country = len(tld) == 2
        if not (country or tld in _GENERIC_TLDS or tld.startswith("xn--")):
            continue
        tail = _BARE_TAIL.match(text, end)
        tail_end = _trimmed_end(text, end, tail.end()) if tail else end
        if country and count == 2 and tail_end == end and tld not in _SPECIAL_SHORT_CC:
            continue  # "bit.ly" alone is not linked, "bit.ly/x" is
        if _valid_host(name):
            return tail_end
    return None


def _bare_urls(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Bare domains (``example.com/path``) outside the ``taken`` spans."""
    spans: list[tuple[int, int]] = []
    blocked = iter(taken)
    block = next(blocked, None)
    seen = -1
    for hint in _DOT_HINT.finditer(text):
        start = hint.start()
        while block is not None and block[1] <= start:
            block = next(blocked, None)
        if block is not None and block[0] <= start:
            continue  # inside an http(s) URL
        while start > 0 and text[start - 1] in _ASCII_HOST_CHARS:
            start -= 1
        if start <= seen or (spans and start < spans[-1][1]):
            continue  # this run of host characters was already looked at
        seen = start
        if not text[start].isalnum() or _glued(text, start) or text[start - 1 : start] == "/":
            continue  # a domain starts with a letter or digit, not glued to a word or path
        stop = hint.end()
        while stop < len(text) and text[stop] in _ASCII_HOST_CHARS:
            stop += 1
        end = _bare_url_end(text, start, stop)
        if end is not None and (block is None or end <= block[0]):
            spans.append((start, end))
    return spans


def _find_urls(text: str, *, bare: bool) -> list[tuple[int, int]]:
    """Spans of the URLs in text: http(s) URLs, plus bare domains when asked."""
    if "." not in text:
        return []
    spans = _scheme_urls(text) if "://" in text else []
    if bare:
        spans = sorted(spans + _bare_urls(text, spans))
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append(placeholder)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _strip_leading_mentions(text: str) -> str:
    match = _LEADING_MENTIONS.match(text)
    return text[match.end():] if match else text


# --------------------------------------------------------------------------
# X weighted length (twitter-text config v3)
# --------------------------------------------------------------------------

# twitter-text config/v3.json: maxWeightedTweetLength 280, scale 100,
# defaultWeight 200, transformedURLLength 23, emojiParsingEnabled true, and
# these code point ranges at weight 100. Divided by the scale: the ranges
# weigh 1, everything else 2, and an emoji sequence 2 in total.
_X_LIMIT = 280
_X_URL_LENGTH = 23
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_X_HEAVY = regex.compile(
    "[^" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _X_LIGHT_RANGES) + "]"
)
_EMOJI_ELEMENT = r"\p{Extended_Pictographic}(?:\p{Emoji_Modifier}|\uFE0F)?"
_EMOJI_SEQUENCE = regex.compile(
    r"\p{Regional_Indicator}{2}"
    r"|[#*0-9]\uFE0F?\u20E3"
    r"|\p{Extended_Pictographic}[\U000E0020-\U000E007E]+\U000E007F"
    rf"|{_EMOJI_ELEMENT}(?:\u200D{_EMOJI_ELEMENT})*"
)


def _x_weight(text: str) -> int:
    """Weigh NFC text whose URLs were already replaced, in characters."""
    if text.isascii():
        return len(text)
    weight = len(text) + len(_X_HEAVY.findall(text))
    for match in _EMOJI_SEQUENCE.finditer(text):
        sequence = match.group()
        if len(sequence) > 1:
            # A multi-code-point emoji weighs 2 in all. A lone pictograph
            # keeps its code point weight, so a bare "©" stays 1 (as twemoji
            # only calls it an emoji with U+FE0F) and "❤" is 2 either way.
            weight += 2 - len(sequence) - len(_X_HEAVY.findall(sequence))
    return weight


def x_weighted_length(text: str, *, skip_leading_mentions: bool = False) -> int:
    """Count text the way X does (twitter-text ``parseTweet`` with config v3).

    The text is NFC-normalized; every URL (with or without ``https://``)
    counts 23; every emoji sequence, however many code points it joins,
    counts 2; code points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and
    U+2032-U+2037 count 1 and all others (CJK, most symbols) count 2.

    Args:
        text: The post text.
        skip_leading_mentions: Leave out the ``@mentions`` at the start, which
            X fills in for replies and does not count.

    Returns:
        The weighted length; a post is valid up to 280.
    """
    return TextRule.x().count(text, skip_leading_mentions=skip_leading_mentions)


def mastodon_length(text: str, *, url_length: int = 23, spoiler_text: str = "") -> int:
    """Count a status the way Mastodon's ``StatusLengthValidator`` does.

    Every ``http(s)://`` URL counts ``url_length`` characters (the instance's
    ``characters_reserved_per_url``), a remote mention ``@user@domain``
    counts as ``@user``, and the result is counted in grapheme clusters
    together with the content warning.

    Args:
        text: The status text.
        url_length: What each URL counts (``characters_reserved_per_url``).
        spoiler_text: The content warning, which shares the limit.

    Returns:
        The length to compare with the instance's ``max_characters``.
    """
    rule = TextRule.mastodon(url_length=url_length)
    return count_graphemes(spoiler_text + rule.countable(text))


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


class TextRule(BaseModel):
    """How a network measures text, and its limit.

    Adapters declare one in their capabilities; the hub checks outgoing
    text with [`check`][omnichannel.text.TextRule.check] before any network
    call.

    ```python
    from omnichannel.text import TextRule

    rule = TextRule.mastodon(limit=500)
    print(rule.count("see https://example.com/a/very/long/path"))  # 4 + 23
    #> 27
    ```

    Attributes:
        unit: What is counted.
        limit: The most the text may count, in ``unit``.
        url_length: When set, every URL counts as this many characters. With
            ``unit="weighted"`` URLs are found as X finds them (bare domains
            such as ``example.com`` included); otherwise only ``http://`` and
            ``https://`` URLs are.
        max_bytes: An additional ceiling on the UTF-8 size of the raw text
            (Bluesky); both limits must hold.
        strip_mention_domains: Count a remote mention ``@user@domain`` as
            ``@user`` (Mastodon).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: TextUnit
    limit: int = Field(ge=0)
    url_length: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)
    strip_mention_domains: bool = False

    @classmethod
    def x(cls) -> TextRule:
        """X posts: 280 weighted characters, URLs 23 (twitter-text config v3)."""
        return cls(unit="weighted", limit=_X_LIMIT, url_length=_X_URL_LENGTH)

    @classmethod
    def mastodon(cls, limit: int = 500, *, url_length: int = 23) -> TextRule:
        """Mastodon statuses: graphemes, URLs as ``url_length``, remote mentions as local.

        Args:
            limit: The instance's ``configuration.statuses.max_characters``.
            url_length: The instance's ``characters_reserved_per_url``.
        """
        return cls(
            unit="graphemes", limit=limit, url_length=url_length, strip_mention_domains=True
        )

    @classmethod
    def bluesky_post(cls) -> TextRule:
        """Bluesky posts: 300 graphemes and 3000 UTF-8 bytes (``app.bsky.feed.post``)."""
        return cls(unit="graphemes", limit=300, max_bytes=3000)

    @classmethod
    def bluesky_dm(cls) -> TextRule:
        """Bluesky chat messages: 1000 graphemes and 10000 UTF-8 bytes."""
        return cls(unit="graphemes", limit=1000, max_bytes=10000)

    @classmethod
    def code_points(cls, limit: int) -> TextRule:
        """A plain limit in code points (``len(str)``).

        Args:
            limit: The most code points allowed.
        """
        return cls(unit="code_points", limit=limit)

    @classmethod
    def graphemes(cls, limit: int) -> TextRule:
        """A plain limit in grapheme clusters.

        Args:
            limit: The most grapheme clusters allowed.
        """
        return cls(unit="graphemes", limit=limit)

    def countable(self, text: str) -> str:
        """Return the text as the network measures it (URLs and mentions rewritten).

        Args:
            text: The text to prepare.

        Returns:
            ``text`` NFC-normalized for the weighted unit, with each URL
            replaced by ``url_length`` placeholder characters and remote
            mentions shortened, as this rule asks.
        """
        if self.unit == "weighted":
            text = unicodedata.normalize("NFC", text)
        if self.url_length is not None:
            spans = _find_urls(text, bare=self.unit == "weighted")
            text = _replace_spans(text, spans, "x" * self.url_length)
        if self.strip_mention_domains and "@" in text:
            text = _REMOTE_MENTION.sub(r"@\1", text)
        return text

    def count(self, text: str, *, skip_leading_mentions: bool = False) -> int:
        """Measure text in this rule's unit.

        Args:
            text: The text to measure.
            skip_leading_mentions: Leave out the ``@mentions`` (and the space
                after them) at the start, for networks that add reply
                mentions themselves and do not count them (X).

        Returns:
            The length in ``unit``. The byte ceiling is not part of it.
        """
        if skip_leading_mentions:
            text = _strip_leading_mentions(text)
        countable = self.countable(text)
        match self.unit:
            case "code_points":
                return len(countable)
            case "graphemes":
                return count_graphemes(countable)
            case "utf8_bytes":
                return count_utf8_bytes(countable)
            case "weighted":
                return _x_weight(countable)

    def _excess(self, text: str, skip_leading_mentions: bool) -> tuple[int, int, str] | None:
        length = self.count(text, skip_leading_mentions=skip_leading_mentions)
        if length > self.limit:
            return length, self.limit, self.unit
        if self.max_bytes is not None:
            raw = _strip_leading_mentions(text) if skip_leading_mentions else text
            size = count_utf8_bytes(raw)
            if size > self.max_bytes:
                return size, self.max_bytes, "utf8_bytes"
        return None

    def fits(self, text: str, *, skip_leading_mentions: bool = False) -> bool:
        """Tell whether text is within the limit (and the byte ceiling, if any).

        Args:
            text: The text to measure.
            skip_leading_mentions: As in [`count`][omnichannel.text.TextRule.count].

        Returns:
            ``True`` when the network would accept the text's length.
        """
        return self._excess(text, skip_leading_mentions) is None

    def check(
        self, text: str, *, network: str | None = None, skip_leading_mentions: bool = False
    ) -> None:
        """Raise if text is over the limit; return quietly otherwise.

        Args:
            text: The text to measure.
            network: The network name, for the error.
            skip_leading_mentions: As in [`count`][omnichannel.text.TextRule.count].

        Raises:
            TextTooLong: The count is over ``limit`` (``unit`` is this rule's
                unit), or the UTF-8 size is over ``max_bytes`` (``unit`` is
                ``"utf8_bytes"``).
        """
        excess = self._excess(text, skip_leading_mentions)
        if excess is not None:
            length, limit, unit = excess
            raise TextTooLong(length=length, limit=limit, unit=unit, network=network)


# --------------------------------------------------------------------------
# Thread splitter
# --------------------------------------------------------------------------

_GRAPHEME_CUT, _WORD, _SENTENCE, _LINE, _PARAGRAPH, _END = range(6)
_SENTENCE_ENDS = frozenset(".!?…‽。！？｡")
_NO_SPACE_SENTENCE_ENDS = frozenset("。！？｡")  # CJK: sentences end without a space
_CLOSERS = frozenset("\"'”’»)]}」』")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


class _Breaks(NamedTuple):
    """Every place a long text may be cut: part ends, next part starts, quality."""

    first: int
    ends: list[int]
    nexts: list[int]
    ranks: list[int]


def _unbreakable(text: str) -> bytearray:
    """Mark the positions inside URLs, mentions and hashtags (1 = no cut here)."""
    inside = bytearray(len(text) + 1)
    spans = _find_urls(text, bare=True)
    spans += [m.span() for m in _MENTION.finditer(text)]
    spans += [m.span() for m in _HASHTAG.finditer(text)]
    for start, end in spans:
        inside[start + 1 : end] = b"\x01" * max(0, end - start - 1)
    return inside


def _ends_sentence(text: str, clusters: list[tuple[int, int]], k: int) -> bool:
    for back in range(k, max(k - 3, -1), -1):
        char = text[clusters[back][0]]
        if char in _SENTENCE_ENDS:
            return True
        if char not in _CLOSERS:
            return False
    return False


def _breaks(text: str) -> _Breaks | None:
    clusters = [m.span() for m in _GRAPHEME.finditer(text)]
    blank = [text[a:b].isspace() for a, b in clusters]
    content = [i for i, is_blank in enumerate(blank) if not is_blank]
    if not content:
        return None
    inside = _unbreakable(text)
    ends: list[int] = []
    nexts: list[int] = []
    ranks: list[int] = []
    k, last = content[0], content[-1]
    while k < last:
        end = clusters[k][1]
        if blank[k + 1]:
            m = k + 1
            lines = 0
            while blank[m]:
                a, b = clusters[m]
                lines += any(c in _LINE_BREAKS for c in text[a:b])
                m += 1
            if lines >= 2:
                rank = _PARAGRAPH
            elif lines == 1:
                rank = _LINE
            else:
                rank = _SENTENCE if _ends_sentence(text, clusters, k) else _WORD
            ends.append(end)
            nexts.append(clusters[m][0])
            ranks.append(rank)
            k = m
        else:
            if not inside[end]:
                ends.append(end)
                nexts.append(end)
                cut_after = text[clusters[k][0]]
                ranks.append(_SENTENCE if cut_after in _NO_SPACE_SENTENCE_ENDS else _GRAPHEME_CUT)
            k += 1
    ends.append(clusters[last][1])
    nexts.append(len(text))
    ranks.append(_END)
    return _Breaks(clusters[content[0]][0], ends, nexts, ranks)


def _too_long(rule: TextRule, part: str, network: str | None) -> TextTooLong:
    excess = rule._excess(part, False)
    if excess is None:  # pragma: no cover - only called for parts that do not fit
        excess = (rule.count(part), rule.limit, rule.unit)
    length, limit, unit = excess
    return TextTooLong(length=length, limit=limit, unit=unit, network=network)


def _preferred(breaks: _Breaks, lo: int, k: int, start: int) -> int:
    """Pick the best cut among candidates lo..k (all of which fit).

    The highest-ranked cut in the back half of the room wins (paragraph, then
    line, sentence, word); with no word break there, the last word break
    anywhere; with none at all, the furthest grapheme boundary.
    """
    ends, ranks = breaks.ends, breaks.ranks
    half = start + (ends[k] - start) // 2
    best, best_rank = k, ranks[k]
    j = k
    while j >= lo and ends[j] >= half:
        if ranks[j] > best_rank:
            best, best_rank = j, ranks[j]
        j -= 1
    if best_rank == _GRAPHEME_CUT:
        while j >= lo:
            if ranks[j] >= _WORD:
                return j
            j -= 1
    return best


def _split_spans(
    text: str, breaks: _Breaks, rule: TextRule, numbering: bool, digits: int,
    network: str | None,
) -> list[tuple[int, int]]:
    ends, nexts = breaks.ends, breaks.nexts
    spans: list[tuple[int, int]] = []
    start, lo = breaks.first, 0
    while True:
        suffix = f" {len(spans) + 1}/{'9' * digits}" if numbering else ""

        def fits(j: int, start: int = start, suffix: str = suffix) -> bool:
            return rule.fits(text[start : ends[j]] + suffix)

        if not fits(lo):
            raise _too_long(rule, text[start : ends[lo]] + suffix, network)
        # Find the furthest candidate that still fits: guess where ``limit``
        # code points end, gallop away from the guess, then bisect.
        last = len(ends) - 1
        guess = min(max(bisect_left(ends, start + rule.limit), lo), last)
        k, fails = lo, len(ends)
        if guess > lo and not fits(guess):
            fails, step = guess, 1
            while fails - step > lo and not fits(fails - step):
                fails, step = fails - step, step * 2
            k = max(fails - step, lo)
        else:
            k, step = guess, 1
            while k < last:
                probe = min(k + step, last)
                if not fits(probe):
                    fails = probe
                    break
                k, step = probe, step * 2
        while fails - k > 1:
            middle = (k + fails) // 2
            if fits(middle):
                k = middle
            else:
                fails = middle
        choice = _preferred(breaks, lo, k, start)
        if choice != k and not fits(choice):
            choice = k
        spans.append((start, ends[choice]))
        if breaks.ranks[choice] == _END:
            return spans
        start, lo = nexts[choice], choice + 1


def split_thread(
    text: str, rule: TextRule, *, numbering: bool = True, network: str | None = None
) -> list[str]:
    """Split a long reply into parts that each fit ``rule``, for posting as a thread.

    Text that already fits comes back unchanged as the only part. Otherwise
    each part is as long as the rule allows, cut at the best place in its
    back half: a paragraph break, then a line break, then the end of a
    sentence, then a space. Only a word longer than a whole part (or text
    without spaces, such as Chinese or Japanese) is cut between grapheme
    clusters. A cut never falls inside a grapheme cluster, a URL, an
    ``@mention`` or a ``#hashtag``. The whitespace at a cut is dropped.

    With ``numbering``, each part ends with ``" i/n"`` (a space, the part
    number, a slash, the count). The suffix is counted by the rule, and the
    split is redone if the count of parts gains a digit.

    ```python
    from omnichannel.text import TextRule, split_thread

    answer = (
        "Thanks for waiting, and sorry for the delay.\\n\\n"
        "Your refund of 42 EUR was approved today. It reaches your card within 5 days, "
        "and your order page shows it as soon as the bank confirms.\\n\\n"
        "Anything else? Just reply here."
    )
    for part in split_thread(answer, TextRule.code_points(80)):
        print(part)
    #> Thanks for waiting, and sorry for the delay. 1/4
    #> Your refund of 42 EUR was approved today. 2/4
    #> It reaches your card within 5 days, and your order page shows it as soon as 3/4
    #> the bank confirms.
    #>
    #> Anything else? Just reply here. 4/4
    ```

    Args:
        text: The text to split.
        rule: The rule every part must fit, counted as the rule counts.
        numbering: Append the ``" i/n"`` suffix to each part.
        network: The network name, for the error.

    Returns:
        The parts, in order. Joined with the dropped whitespace, their
        contents give back the text.

    Raises:
        TextTooLong: Something that cannot be cut (a URL, a mention, a
            grapheme cluster) does not fit in a part on its own.
    """
    if rule.fits(text):
        return [text]
    breaks = _breaks(text)
    if breaks is None:
        return [""]  # nothing but whitespace
    # The suffix holds the count of parts: start from a low estimate of its
    # width and split again whenever the count turns out to need more digits.
    digits = len(str(max(1, rule.count(text) // max(1, rule.limit))))
    while True:
        spans = _split_spans(text, breaks, rule, numbering, digits, network)
        if not numbering or len(spans) == 1 or len(str(len(spans))) <= digits:
            break
        digits = len(str(len(spans)))
    if not numbering or len(spans) == 1:
        return [text[start:end] for start, end in spans]
    total = len(spans)
    return [f"{text[start:end]} {i}/{total}" for i, (start, end) in enumerate(spans, 1)]
