"""Whether a reply's text already @mentions whom it answers (`MastodonAdapter.outgoing_text`)."""

from __future__ import annotations

import itertools
import re

import pytest

from omnichannel_mastodon._adapter import _mentions


def _reference(text: str, handle: str) -> bool:
    """The rule as one pattern: ``@handle`` in any case, not inside a longer name."""
    pattern = rf"(?<![\w@])@{re.escape(handle)}(?![\w@]|\.\w)"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


@pytest.mark.parametrize(
    ("text", "handle", "named"),
    [
        ("@alice thanks", "alice", True),
        ("thanks @ALICE", "alice", True),
        ("thanks @alice.", "alice", True),
        ("thanks @alice, see you", "alice", True),
        ("thanks @alice.example", "alice", False),  # another account's name
        ("thanks @alice_b", "alice", False),
        ("thanks @alice@other.social", "alice", False),
        ("mail me at me@alice", "alice", False),
        ("@@alice", "alice", False),
        ("x@alice @alice", "alice", True),
        ("@bob@mastodon.example hi", "bob@mastodon.example", True),
        ("@bob@mastodon.example.org hi", "bob@mastodon.example", False),
        ("@alice", "alice", True),
        ("", "alice", False),
        ("café @Alice ☕", "alice", True),
        ("@alicé", "alic", False),
        ("@ſusan hi", "susan", True),  # the long s is an s in any case
        ("@susan hi", "ſusan", True),
        ("@KELVIN", "\u212aelvin", True),  # the Kelvin sign is a K in any case
    ],
)
def test_a_mention_is_found_as_the_rule_says(text: str, handle: str, named: bool) -> None:
    """Each case agrees with the rule written as one pattern."""
    assert _mentions(text, handle) is named
    assert _reference(text, handle) is named


def test_every_short_ascii_text_agrees_with_the_rule() -> None:
    """Every text of up to five characters from an alphabet around the handle "ab"."""
    alphabet = ["@", "a", "B", "b", ".", "_", " ", "é"]
    for size in range(6):
        for letters in itertools.product(alphabet, repeat=size):
            text = "".join(letters)
            for handle in ("ab", "a.b", "a@b"):
                assert _mentions(text, handle) is _reference(text, handle), (text, handle)
