"""The thread splitter: cut a long reply into parts that each fit a rule."""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

from ..errors import TextTooLong
from ._counters import grapheme_pattern
from ._links import HASHTAG, MENTION
from ._rules import TextRule

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


def _unbreakable(text: str, rule: TextRule) -> bytearray:
    """Mark the positions inside URLs, mentions and hashtags (1 = no cut here)."""
    inside = bytearray(len(text) + 1)
    spans = rule.link_spans(text)
    spans += [m.span() for m in MENTION.finditer(text)]
    spans += [m.span() for m in HASHTAG.finditer(text)]
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


def _breaks(text: str, rule: TextRule) -> _Breaks | None:
    clusters = [m.span() for m in grapheme_pattern().finditer(text)]
    blank = [text[a:b].isspace() for a, b in clusters]
    content = [i for i, is_blank in enumerate(blank) if not is_blank]
    if not content:
        return None
    inside = _unbreakable(text, rule)
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
    breaks = _breaks(text, rule)
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
