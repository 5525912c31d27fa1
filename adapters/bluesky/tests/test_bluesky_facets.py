"""Outgoing facets point at exactly the bytes of their entity, whatever text surrounds them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from omnichannel_bluesky._convert import entities_from_facets, load
from omnichannel_bluesky._facets import Detected, detect, facets_for
from omnichannel_bluesky._wire import Facet

# Filler never forms an entity: no "@", "#", "＃", ":", "/" or ".".
_FILLER_PIECES = [
    "a", "Z", "7", "hello", "ça", "naïve", "e\u0301", "a\u0308\u0323", "n\u0303",
    "日本語", "中文", "한국어", "ありがとう", "😂", "👍🏽", "👨‍👩‍👧‍👦", "🇸🇪", "🏳️‍🌈", "❤️",
    "✨", "𝕏", "𓀀", "!", ",", "?", "’", "«", "»", "-", "(", ")",
]
_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_TLD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6)
_PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-=", max_size=12)
_TAG_CHARS = "abcdefghijklmnopqrstuvwxyzé日本語한0123456789_"

filler = st.lists(st.sampled_from(_FILLER_PIECES), max_size=6).map("".join)
separator = st.sampled_from([" ", "  ", "\n", " \n"])


@st.composite
def mention(draw: st.DrawFn) -> tuple[str, str, str]:
    """An ``@handle`` mention: (shown text, kind, value)."""
    labels = draw(st.lists(_LABEL, min_size=1, max_size=3))
    handle = ".".join([*labels, draw(_TLD)])
    return f"@{handle}", "mention", handle


@st.composite
def link(draw: st.DrawFn) -> tuple[str, str, str]:
    """An http(s) URL: (shown text, kind, value)."""
    scheme = draw(st.sampled_from(["https://", "http://"]))
    host = f"{draw(_LABEL)}.{draw(_TLD)}"
    path = draw(_PATH)
    url = f"{scheme}{host}/{path}" if path else f"{scheme}{host}"
    return url, "link", url


@st.composite
def hashtag(draw: st.DrawFn) -> tuple[str, str, str]:
    """A ``#tag`` with a letter, not ending in "_" (punctuation, which Bluesky trims)."""
    tag = draw(st.text(alphabet=_TAG_CHARS, min_size=1, max_size=20).filter(
        lambda t: not t.endswith("_") and not all(ch in "0123456789_" for ch in t)))
    return f"#{tag}", "tag", tag


entity = st.one_of(mention(), link(), hashtag())


@st.composite
def rich_text(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, str, str]]]:
    """Text with planted entities, and where they are: (start, end, kind, value)."""
    text = draw(filler)
    planted: list[tuple[int, int, str, str]] = []
    for shown, kind, value in draw(st.lists(entity, min_size=1, max_size=6)):
        if text:
            text += draw(separator)
        start = len(text)
        text += shown
        planted.append((start, len(text), kind, value))
        text += draw(separator) + draw(filler)
    return text, planted


def _dids(planted: list[tuple[int, int, str, str]]) -> dict[str, str]:
    return {value.lower(): f"did:plc:{index:024d}"
            for index, (_, _, kind, value) in enumerate(planted) if kind == "mention"}


@settings(max_examples=300, deadline=None)
@given(rich_text())
def test_every_facet_byte_slice_is_its_entity_text(
    case: tuple[str, list[tuple[int, int, str, str]]],
) -> None:
    """For text with emoji, CJK and combining marks, each facet's bytes are its entity's text."""
    text, planted = case
    detected = detect(text)
    assert [(d.start, d.end, d.kind, d.value) for d in detected] == planted
    facets = facets_for(text, detected, _dids(planted))
    data = text.encode("utf-8")
    assert len(facets) == len(planted)
    for facet, (start, end, kind, value) in zip(facets, planted, strict=True):
        index = facet["index"]
        assert data[index["byteStart"] : index["byteEnd"]].decode("utf-8") == text[start:end]
        (feature,) = facet["features"]
        if kind == "mention":
            assert feature["did"] == _dids(planted)[value.lower()]
        elif kind == "link":
            assert feature["uri"] == value
        else:
            assert feature["tag"] == value


@settings(max_examples=150, deadline=None)
@given(rich_text())
def test_facets_round_trip_to_the_same_spans(
    case: tuple[str, list[tuple[int, int, str, str]]],
) -> None:
    """Facets we write read back, through the inbound converter, as the same str spans."""
    text, planted = case
    facets = [load(Facet, f) for f in facets_for(text, detect(text), _dids(planted))]
    entities = entities_from_facets(text, facets)
    assert [(e.start, e.end) for e in entities] == [(s, e) for s, e, _, _ in planted]


def _shown(text: str) -> list[tuple[str, str]]:
    return [(d.kind, text[d.start : d.end]) for d in detect(text)]


def test_trailing_punctuation_stays_out_of_links_and_tags() -> None:
    """A sentence's final punctuation and an unbalanced ")" are not part of an entity."""
    text = "See https://example.com/faq. (or https://x.test/a_(b)) #help! #café?"
    assert _shown(text) == [
        ("link", "https://example.com/faq"),
        ("link", "https://x.test/a_(b)"),
        ("tag", "#help"),
        ("tag", "#café"),
    ]


def test_www_address_is_linked_with_https() -> None:
    """A bare www. address becomes a link to its https:// URL."""
    (found,) = detect("visit www.example.org/help today")
    assert found == Detected(6, 26, "link", "https://www.example.org/help")


def test_numbers_keycaps_and_glued_signs_are_not_entities() -> None:
    """#123, the #️⃣ keycap, a@b.com and word#tag are not detected."""
    assert detect("order #123 #️⃣ mail a@b.com or word#tag") == []


def test_fragment_inside_a_url_is_not_a_hashtag() -> None:
    """A #fragment inside a URL belongs to the link."""
    assert _shown("read https://example.com/page#section now") == [
        ("link", "https://example.com/page#section")]


def test_unresolved_mention_gets_no_facet() -> None:
    """A handle that did not resolve stays plain text; other facets keep their offsets."""
    text = "👋 @ghost.example.com and @alice.test #hi"
    facets = facets_for(text, detect(text), {"alice.test": "did:plc:alice"})
    kinds: list[Any] = [f["features"][0]["$type"].rsplit("#", 1)[1] for f in facets]
    assert kinds == ["mention", "tag"]
    first = facets[0]["index"]
    assert text.encode()[first["byteStart"] : first["byteEnd"]] == b"@alice.test"


def test_handle_with_numeric_tld_is_not_a_mention() -> None:
    """A handle whose last label starts with a digit (an IP-like name) is not a mention."""
    assert detect("ping @10.0.0.1 now") == []
