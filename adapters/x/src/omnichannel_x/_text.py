"""X's text rule: weighted length (twitter-text config v3) and bare-domain links.

X counts most scripts and every emoji as 2, URLs (with or without
``https://``) as 23, and the rest as 1. [`XTextRule`][omnichannel_x.XTextRule]
measures that behind the core's [`TextRule`][omnichannel.text.TextRule]
interface, so the hub checks and splits X posts like any other network's.

```python
from omnichannel_x import XTextRule, x_weighted_length

print(XTextRule().count("Hello, world! 👋"))  # the emoji weighs 2
#> 16
print(x_weighted_length("read example.com/help"))  # a bare domain is a link too
#> 28
```
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any, NamedTuple

from pydantic import Field

from omnichannel.text import TextRule, TextUnit

__all__ = ["XTextRule", "x_weighted_length"]

# --------------------------------------------------------------------------
# Bare domains, which X links without a scheme
# --------------------------------------------------------------------------

_ASCII_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")

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


class _Patterns(NamedTuple):
    bare_tail: Any
    dot_hint: Any  # where a bare domain may be: a dot between a host character and a letter
    ascii_tld: Any
    x_heavy: Any
    emoji_sequence: Any


@functools.cache
def _patterns() -> _Patterns:
    """Compiled on first use: importing the adapter loads neither ``regex`` nor the link finder."""
    import regex  # type: ignore[import-untyped, unused-ignore]

    from omnichannel.text._links import PATH_CHAR

    return _Patterns(
        bare_tail=regex.compile(rf"(?::\d{{1,5}})?(?:[/?]{PATH_CHAR}*)?"),
        dot_hint=regex.compile(r"[A-Za-z0-9_-]\.[A-Za-z]"),
        ascii_tld=regex.compile(r"[A-Za-z]{2,}|xn--[A-Za-z0-9-]+", regex.IGNORECASE),
        x_heavy=regex.compile(
            "[^" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _X_LIGHT_RANGES) + "]"
        ),
        emoji_sequence=regex.compile(
            r"\p{Regional_Indicator}{2}"
            r"|[#*0-9]\uFE0F?\u20E3"
            r"|\p{Extended_Pictographic}[\U000E0020-\U000E007E]+\U000E007F"
            rf"|{_EMOJI_ELEMENT}(?:\u200D{_EMOJI_ELEMENT})*"
        ),
    )


def _bare_url_end(text: str, start: int, stop: int) -> int | None:
    """End of the bare URL at ``start``, in a run of host characters ending at ``stop``.

    The longest domain whose top-level label is known wins, with its port
    and path; ``None`` when the run holds no domain.
    """
    from omnichannel.text._links import trimmed_end, valid_host

    patterns = _patterns()
    labels = text[start:stop].split(".")
    while labels and not labels[-1]:
        labels.pop()  # "example.com." ends with a full stop, not a label
    for count in range(len(labels), 1, -1):
        tld = labels[count - 1].lower()
        if not patterns.ascii_tld.fullmatch(tld):
            continue
        name = ".".join(labels[:count])
        end = start + len(name)
        if end < len(text) and text[end] in "@+":
            continue
        country = len(tld) == 2
        if not (country or tld in _GENERIC_TLDS or tld.startswith("xn--")):
            continue
        tail = patterns.bare_tail.match(text, end)
        tail_end = trimmed_end(text, end, tail.end()) if tail else end
        if country and count == 2 and tail_end == end and tld not in _SPECIAL_SHORT_CC:
            continue  # "bit.ly" alone is not linked, "bit.ly/x" is
        if valid_host(name):
            return tail_end
    return None


def _bare_urls(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Bare domains (``example.com/path``) outside the ``taken`` spans."""
    from omnichannel.text._links import glued

    spans: list[tuple[int, int]] = []
    blocked = iter(taken)
    block = next(blocked, None)
    seen = -1
    for hint in _patterns().dot_hint.finditer(text):
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
        if not text[start].isalnum() or glued(text, start) or text[start - 1 : start] == "/":
            continue  # a domain starts with a letter or digit, not glued to a word or path
        stop = hint.end()
        while stop < len(text) and text[stop] in _ASCII_HOST_CHARS:
            stop += 1
        end = _bare_url_end(text, start, stop)
        if end is not None and (block is None or end <= block[0]):
            spans.append((start, end))
    return spans


# --------------------------------------------------------------------------
# Weights (twitter-text config v3)
# --------------------------------------------------------------------------

# twitter-text config/v3.json: maxWeightedTweetLength 280, scale 100,
# defaultWeight 200, transformedURLLength 23, emojiParsingEnabled true, and
# these code point ranges at weight 100. Divided by the scale: the ranges
# weigh 1, everything else 2, and an emoji sequence 2 in total.
X_LIMIT = 280
X_URL_LENGTH = 23
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_EMOJI_ELEMENT = r"\p{Extended_Pictographic}(?:\p{Emoji_Modifier}|\uFE0F)?"


def _x_weight(text: str) -> int:
    """Weigh NFC text whose URLs were already replaced, in characters."""
    if text.isascii():
        return len(text)
    patterns = _patterns()
    weight = len(text) + len(patterns.x_heavy.findall(text))
    for match in patterns.emoji_sequence.finditer(text):
        sequence = match.group()
        if len(sequence) > 1:
            # A multi-code-point emoji weighs 2 in all. A lone pictograph
            # keeps its code point weight, so a bare "©" stays 1 (as twemoji
            # only calls it an emoji with U+FE0F) and "❤" is 2 either way.
            weight += 2 - len(sequence) - len(patterns.x_heavy.findall(sequence))
    return weight


class XTextRule(TextRule):
    """X posts: 280 weighted characters, URLs 23 (twitter-text config v3).

    The text is NFC-normalized; every URL (with or without ``https://``)
    counts 23; every emoji sequence, however many code points it joins,
    counts 2; code points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and
    U+2032-U+2037 count 1 and all others (CJK, most symbols) count 2.

    Attributes:
        unit: ``"weighted"``.
        limit: 280.
        url_length: 23.
    """

    unit: TextUnit = "weighted"
    limit: int = Field(default=X_LIMIT, ge=0)
    url_length: int | None = Field(default=X_URL_LENGTH, ge=0)

    def link_spans(self, text: str) -> list[tuple[int, int]]:
        """Find X's links: ``http(s)://`` URLs and bare domains (``example.com/path``).

        Args:
            text: The text to read.

        Returns:
            ``(start, end)`` spans, as ``str`` indices, in order.
        """
        if "." not in text:
            return []
        spans = super().link_spans(text)
        return sorted(spans + _bare_urls(text, spans))

    def countable(self, text: str) -> str:
        """Return the text NFC-normalized, with each link as 23 placeholder characters.

        Args:
            text: The text to prepare.

        Returns:
            The text X weighs.
        """
        return super().countable(unicodedata.normalize("NFC", text))

    def measure(self, countable: str) -> int:
        """Weigh text prepared by [`countable`][omnichannel_x.XTextRule.countable].

        Args:
            countable: The prepared text.

        Returns:
            The weighted length.
        """
        if self.unit != "weighted":
            return super().measure(countable)
        return _x_weight(countable)


def x_weighted_length(text: str, *, skip_leading_mentions: bool = False) -> int:
    """Count text the way X does (twitter-text ``parseTweet`` with config v3).

    Args:
        text: The post text.
        skip_leading_mentions: Leave out the ``@mentions`` at the start, which
            X fills in for replies and does not count.

    Returns:
        The weighted length; a post is valid up to 280.
    """
    return _rule().count(text, skip_leading_mentions=skip_leading_mentions)


@functools.cache
def _rule() -> XTextRule:
    return XTextRule()  # on first use: the adapter's import builds no validator
