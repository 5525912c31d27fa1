"""Outgoing rich text: find mentions, links and hashtags, and write their facets.

Bluesky does not parse post text: the client sends ``facets`` that point at
UTF-8 byte ranges of the text. Detection here works on ``str`` indices; the
byte offsets are computed once, from the exact text that is sent, so emoji,
CJK and combining marks before an entity never shift it.

What is detected (each must start the text or follow whitespace or ``(``):

- ``@handle`` where the handle is a domain name (``@shop.example.com``);
  it becomes a mention facet only when the handle resolves to a DID.
- ``http://`` and ``https://`` URLs, and bare ``www.`` addresses (linked as
  ``https://``). Trailing sentence punctuation and an unbalanced ``)`` stay
  out of the link.
- ``#tag`` (or the full-width ``＃``): trailing punctuation is not part of the
  tag, a tag needs at least one character that is not a digit, and it is at
  most 64 characters (the lexicon's ``maxGraphemes``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from omnichannel.text import OffsetMap

from ._wire import LINK, MENTION, TAG

__all__ = ["Detected", "detect", "facets_for"]

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_MENTION = re.compile(rf"(?:^|(?<=[\s(]))@({_LABEL}(?:\.{_LABEL})+)(?![\w-])")
_URL = re.compile(r"(?:^|(?<=[\s(]))(?:https?://|www\.)[^\s]+", re.IGNORECASE)


@functools.cache
def _tag_patterns() -> tuple[Any, Any, Any]:
    """The hashtag, trailing punctuation and non-digit patterns (``regex`` loads on first use)."""
    import regex  # type: ignore[import-untyped, unused-ignore]

    return (
        regex.compile(r"(?:^|(?<=\s))[#＃](?!\ufe0f|\u20e3)([^\s#＃]+)"),
        regex.compile(r"\p{P}+$"),
        regex.compile(r"[^\d\p{P}]"),
    )


_TRAILING_URL_PUNCT = ".,;:!?'\"”’»"
_MAX_TAG = 64


@dataclass(frozen=True, slots=True)
class Detected:
    """One entity found in outgoing text.

    Attributes:
        start: ``str`` index where it starts (the ``@`` or ``#`` included).
        end: ``str`` index after it.
        kind: ``"mention"``, ``"link"`` or ``"tag"``.
        value: The handle without ``@``, the full URL, or the tag without ``#``.
    """

    start: int
    end: int
    kind: Literal["mention", "link", "tag"]
    value: str


def _trim_url(url: str) -> str:
    while url and url[-1] in _TRAILING_URL_PUNCT:
        url = url[:-1]
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
        while url and url[-1] in _TRAILING_URL_PUNCT:
            url = url[:-1]
    return url


def _valid_handle(handle: str) -> bool:
    tld = handle.rsplit(".", 1)[-1]
    return len(handle) <= 253 and not tld[0].isdigit()


def detect(text: str) -> list[Detected]:
    """Find the mentions, links and hashtags of ``text``, in order, never overlapping.

    Args:
        text: The text as it will be sent.

    Returns:
        The entities, sorted by ``start``. Where two would overlap (a
        ``#fragment`` inside a URL), the one that starts first wins.
    """
    found: list[Detected] = []
    for match in _URL.finditer(text):
        raw = _trim_url(match.group(0))
        if "." not in raw.split("//", 1)[-1]:
            continue
        url = raw if raw.lower().startswith(("http://", "https://")) else f"https://{raw}"
        found.append(Detected(match.start(), match.start() + len(raw), "link", url))
    for match in _MENTION.finditer(text):
        handle = match.group(1)
        if _valid_handle(handle):
            found.append(Detected(match.start(), match.end(), "mention", handle))
    tags, trailing, has_non_digit = _tag_patterns()
    for found_tag in tags.finditer(text):
        tag = trailing.sub("", found_tag.group(1))
        if not tag or len(tag) > _MAX_TAG or not has_non_digit.search(tag):
            continue
        start = found_tag.start()
        found.append(Detected(start, start + 1 + len(tag), "tag", tag))
    found.sort(key=lambda item: (item.start, -item.end))
    kept: list[Detected] = []
    for item in found:
        if kept and item.start < kept[-1].end:
            continue
        kept.append(item)
    return kept


def facets_for(
    text: str, detected: Sequence[Detected], dids: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Write ``app.bsky.richtext.facet`` objects for the detected entities.

    Args:
        text: The exact text that is sent.
        detected: What `detect` found in it.
        dids: Resolved DIDs by handle (lower-case); a mention whose handle is
            missing gets no facet and stays plain text.

    Returns:
        Facets in text order, ready for the record's ``facets`` field.
    """
    usable = [
        item for item in detected
        if item.kind != "mention" or item.value.lower() in dids
    ]
    offsets = OffsetMap(text)
    facets: list[dict[str, Any]] = []
    for item in usable:
        feature: dict[str, Any]
        if item.kind == "mention":
            feature = {"$type": MENTION, "did": dids[item.value.lower()]}
        elif item.kind == "link":
            feature = {"$type": LINK, "uri": item.value}
        else:
            feature = {"$type": TAG, "tag": item.value}
        facets.append({
            "$type": "app.bsky.richtext.facet",
            "index": {
                "byteStart": offsets.index_to_utf8(item.start),
                "byteEnd": offsets.index_to_utf8(item.end),
            },
            "features": [feature],
        })
    return facets
