"""URLs, mentions and hashtags: just enough of each network's grammar to count and split.

The ``http(s)://`` URL finder is twitter-text's, which Mastodon reuses. An
adapter whose network links more (X links bare domains) builds on these
helpers in its own text rule.
"""

from __future__ import annotations

from functools import lru_cache

import regex  # type: ignore[import-untyped, unused-ignore]

# A URL may not be glued to a word, a mention or a cashtag (twitter-text's
# validUrlPrecedingChars; Mastodon reuses the same expression).
_URL_NOT_AFTER = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@＠$#＃\ufeff\ufffe\uffff"
)
# Path, query and fragment characters: twitter-text's validGeneralUrlPathChars
# and query characters, with its Latin and Cyrillic letters.
PATH_CHAR = r"[A-Za-z0-9!*';:=+,.$/%#\[\]\-_~|&@()?\u2013\p{Latin}\p{Cyrillic}]"
_SCHEME = regex.compile(r"https?://", regex.IGNORECASE)
_HOST = regex.compile(r"[\p{L}\p{M}\p{N}_-]+(?:\.[\p{L}\p{M}\p{N}_-]+)+")
_SCHEME_TAIL = regex.compile(rf"(?::\d{{1,5}})?(?:[/?#]{PATH_CHAR}*)?")
_LEADING_ASCII_TLD = regex.compile(r"[A-Za-z]{2,}(?=[^\x00-\x7f])")
_TRAILING_PUNCTUATION = ".,;:!?'\"*~"

MENTION = regex.compile(r"(?<![\w@＠])[@＠]\w+(?:[.-]+\w+)*(?:@\w+(?:[.-]+\w+)*)?")
HASHTAG = regex.compile(r"(?<![\w&])[#＃][\w\p{M}]+")
_LEADING_MENTIONS = regex.compile(
    r"^\s*(?:[@＠]\w+(?:[.-]+\w+)*(?:@\w+(?:[.-]+\w+)*)?(?:\s+|$))+"
)
# Mastodon's Account::MENTION_RE: a remote mention counts as its local part.
REMOTE_MENTION = regex.compile(
    r"(?<![=/\w])@([A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*)@\w+(?:[.-]+\w+)*"
)


def glued(text: str, start: int) -> bool:
    """Whether the character before ``start`` forbids a URL from starting there."""
    return start > 0 and text[start - 1] in _URL_NOT_AFTER


def trimmed_end(text: str, start: int, end: int) -> int:
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
def valid_host(host: str) -> bool:
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
        if glued(text, start) or (spans and start < spans[-1][1]):
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
                if valid_host(name):
                    spans.append((start, end))
                continue
        if not valid_host(name):
            continue
        tail = _SCHEME_TAIL.match(text, end)
        spans.append((start, trimmed_end(text, end, tail.end()) if tail else end))
    return spans


def scheme_urls(text: str) -> list[tuple[int, int]]:
    """Spans of the ``http://`` and ``https://`` URLs in text, in order."""
    if "." not in text or "://" not in text:
        return []
    return _scheme_urls(text)


def replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
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


def strip_leading_mentions(text: str) -> str:
    match = _LEADING_MENTIONS.match(text)
    return text[match.end():] if match else text
