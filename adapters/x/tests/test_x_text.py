"""X's text rule: weighted length (twitter-text config v3) and the links X finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from omnichannel.text import TextRule, split_thread
from omnichannel_x import XTextRule, x_weighted_length

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # four people, three ZWJs


def test_x_rule_is_a_text_rule_with_x_limits() -> None:
    """XTextRule is the core's TextRule with X's unit, limit and URL length, frozen and strict."""
    rule = XTextRule()
    assert isinstance(rule, TextRule)
    assert (rule.unit, rule.limit, rule.url_length) == ("weighted", 280, 23)
    assert XTextRule.model_validate({"unit": "weighted", "limit": 280, "url_length": 23}) == rule
    with pytest.raises(ValidationError):
        rule.limit = 20  # type: ignore[misc]
    with pytest.raises(ValidationError):
        XTextRule(colour="red")  # type: ignore[call-arg]


# --------------------------------------------------------------------------
# X: weighted length
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "weight"),
    [
        ("a", 1),
        ("á", 1),
        ("ӑ", 1),
        ("👾", 2),
        ("🙋🏽", 2),
        ("👨\u200d🎤", 2),
        (FAMILY, 2),
        ("https://example.com", 23),
        ("https://example.com/very/long/path", 23),
        ("café", 4),
        ("cafe\u0301", 4),
        ("Hello, world! 👋", 16),
    ],
)
def test_x_examples_from_the_docs(sample: str, weight: int) -> None:
    """The examples of docs.x.com/fundamentals/counting-characters weigh what the page says."""
    assert x_weighted_length(sample) == weight


def test_x_weights_follow_the_config_over_the_docs_table() -> None:
    """U+1ED2 (Ồ) weighs 2: it is outside config v3's ranges, though the docs table lists it as 1.

    docs.x.com/fundamentals/counting-characters names twitter-text's configuration
    as the definition of weights; its ranges end at U+10FF before U+2000.
    """
    assert x_weighted_length("\u1ed2") == 2
    assert x_weighted_length("\u10ff") == 1
    assert x_weighted_length("\u1100") == 2


def test_x_280_latin_characters_fit() -> None:
    """280 Latin characters fit an X post and 281 do not (docs.x.com counting-characters)."""
    rule = XTextRule()
    assert rule.fits("a" * 280)
    assert not rule.fits("a" * 281)


def test_x_140_cjk_characters_fit() -> None:
    """140 CJK characters fit (2 each) and 141 do not (docs.x.com counting-characters)."""
    rule = XTextRule()
    assert rule.count("漢" * 140) == 280
    assert rule.fits("漢" * 140)
    assert not rule.fits("漢" * 141)


def test_x_140_emoji_fit_whatever_their_length() -> None:
    """140 family emoji (1,540 UTF-16 units) fit as 140 x 2 (docs.x.com counting-characters)."""
    rule = XTextRule()
    assert rule.count(FAMILY * 140) == 280
    assert not rule.fits(FAMILY * 141)


def test_x_every_url_counts_23() -> None:
    """A short and a very long URL both count 23 (docs.x.com/fundamentals/counting-characters)."""
    assert x_weighted_length("x.co/a") == 23
    assert x_weighted_length("see https://example.com/" + "p" * 300) == 4 + 23


# Cases from twitter-text conformance/validate.yml, WeightedTweetsWithDiscountedEmojiCounterTest
# and UnicodeDirectionalMarkerCounterTest (the tests of config v3).
GENERAL_PUNCTUATION = (
    "This is a tweet with general punctuation characters: "
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b"
    " ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷"
)
KANA = "あいうえおかきくけこ"
POEM = "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。"  # 32 CJK characters


@pytest.mark.parametrize(
    ("sample", "weight"),
    [
        pytest.param("Hi http://test.co", 26, id="url"),
        pytest.param("285 chars-" + "xxxxxxxxxx-" * 25, 285, id="long-latin"),
        pytest.param(
            "285 chars- http://www.twitter.com/jack " + "xxxxxxxxxx-" * 24, 299, id="url-in-middle"
        ),
        pytest.param("https://www.twitter.com/aloha " * 10, 240, id="ten-urls"),
        pytest.param("the" + POEM * 5, 323, id="cjk"),
        pytest.param("😷" * 160, 320, id="160-emoji"),
        pytest.param("ÁB", 2, id="nfc"),
        pytest.param("Aשּׁ", 4, id="nfc-hebrew"),
        pytest.param(f"H🐱☺{FAMILY}", 7, id="mixed-emoji"),
        pytest.param("😷👾😡🔥💩", 10, id="five-emoji"),
        pytest.param("🙋🏽👨\u200d🎤", 4, id="skin-tone-and-zwj"),
        pytest.param(GENERAL_PUNCTUATION, 110, id="general-punctuation"),
        pytest.param("randomurl" * 7 + "s.com", 68, id="label-over-63"),
        pytest.param(
            KANA * 12 + " http://" + KANA * 5 + "あいう.com", 358, id="punycode-label-over-63"
        ),
        pytest.param(KANA * 12 + " http://" + KANA * 5 + "あい.com", 264, id="punycode-label-63"),
        pytest.param(FAMILY * 140, 280, id="140-families"),
        pytest.param("Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; 🏴\U000e0067\U000e0062\U000e0065"
                     "\U000e006e\U000e0067\U000e007f", 34, id="tag-sequence"),
        pytest.param("Unicode 9.0 emoji: 🤠; 💃; 💃🏾", 29, id="unicode-9"),
        pytest.param("ABC\u202a\uffffABC\ufffe", 12, id="invalid-characters"),
        pytest.param("\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31, id="directional-marks"),
        pytest.param("Test https://test.com test https://test.com test.com test", 86,
                     id="bare-domain"),
    ],
)
def test_x_matches_twitter_text_conformance(sample: str, weight: int) -> None:
    """twitter-text's conformance/validate.yml weighted lengths (config v3) come out the same."""
    assert x_weighted_length(sample) == weight


def test_x_copyright_sign_is_an_emoji_only_with_vs16() -> None:
    """A bare © weighs 1 and ©️ weighs 2, as twemoji-parser (X's emoji parser) decides."""
    assert x_weighted_length("©") == 1
    assert x_weighted_length("©\ufe0f") == 2
    assert x_weighted_length("❤\ufe0e") == 4  # text presentation: two code points of weight 2


@pytest.mark.parametrize(
    ("sample", "weight"),
    [
        ("bit.ly", 6),
        ("bit.ly/abc", 23),
        ("t.co", 23),
        ("www.example.io", 23),
        ("example.com.", 24),
        ("file.txt", 8),
        ("main.py", 7),
        ("mail me: a.b@example.com", 24),
        ("https://example.com/a.", 24),
        ("(https://en.wikipedia.org/wiki/Foo_(bar))", 25),
    ],
)
def test_x_url_boundaries(sample: str, weight: int) -> None:
    """Bare domains, short country domains and trailing punctuation follow twitter-text."""
    assert x_weighted_length(sample) == weight


def test_x_leading_reply_mentions_can_be_skipped() -> None:
    """Auto-populated leading @mentions are left out when asked (docs.x.com counting-characters)."""
    reply = "@alice @bob_smith thanks, fixed!"
    assert x_weighted_length(reply) == len(reply)
    assert x_weighted_length(reply, skip_leading_mentions=True) == len("thanks, fixed!")
    assert XTextRule().fits("@alice " + "a" * 280, skip_leading_mentions=True)
    assert not XTextRule().fits("@alice " + "a" * 280)


# --------------------------------------------------------------------------
# Splitting with X's rule
# --------------------------------------------------------------------------

SUFFIX = re.compile(r" \d+/\d+$")


def test_split_cjk_text_within_x_weight() -> None:
    """Chinese text weighs 2 a character: it is cut between characters, after 。, within 280."""
    poem = POEM * 6
    rule = XTextRule()
    parts = split_thread(poem, rule)
    assert len(parts) > 1
    assert all(rule.fits(part) for part in parts)
    contents = [SUFFIX.sub("", part) for part in parts]
    assert contents[0].endswith("。")
    assert "".join(contents) == poem


def test_split_keeps_bare_domains_whole() -> None:
    """X links bare domains, so text without spaces is cut before one, never inside it."""
    domain = "example.com/help"
    text = "漢" * 15 + domain + "漢" * 15  # 30 + 23 + 30
    rule = XTextRule(limit=40)
    parts = split_thread(text, rule, numbering=False)
    assert all(rule.fits(part) for part in parts)
    assert "".join(parts) == text
    assert parts[0] == "漢" * 15  # "漢" * 15 + "example" (37) would fit, but cuts the link
    assert any(domain in part for part in parts)


WORDS = st.one_of(
    st.text(min_size=1, max_size=6),
    st.text(alphabet="abcdefgh日本éñ\u0301", min_size=20, max_size=120),
    st.sampled_from([
        FAMILY, "🇯🇵", "日本語です。", "https://example.com/a", "example.com/help",
        "@alice", "#help", "end.", "©",
    ]),
)
UNBREAKABLE = ("https://example.com/a", "example.com/help", "#help")
TEXTS = st.lists(
    st.tuples(WORDS, st.sampled_from([" ", "\n", "\n\n", "  "])), min_size=1, max_size=60
).map(lambda pairs: "".join(word + gap for word, gap in pairs))


@settings(max_examples=120, deadline=None)
@given(sample=TEXTS)
def test_split_parts_fit_x_and_keep_links_whole(sample: str) -> None:
    """With X's weight every part fits, links (bare domains too) stay whole, nothing is lost."""
    rule = XTextRule(limit=50)
    parts = split_thread(sample, rule)
    assert all(rule.fits(part) for part in parts)
    contents = [SUFFIX.sub("", part) for part in parts] if len(parts) > 1 else parts
    assert "".join("".join(contents).split()) == "".join(sample.split())
    for token in UNBREAKABLE:
        assert sum(content.count(token) for content in contents) == sample.count(token), token
