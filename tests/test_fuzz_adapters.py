"""Every adapter parser survives mutated recorded payloads: only PayloadError may leave."""

from __future__ import annotations

import json

import anyio
import pytest
from tests import fuzz_targets

from omnichannel.adapter import Rejected, WebhookRequest, convert_item, decode_json
from omnichannel.errors import PayloadError, WebhookSignatureError
from omnichannel.testing.fuzz import Mutator, Seed, fuzz

TARGETS = fuzz_targets.targets()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_raises_only_what_it_may(target: fuzz_targets.Target) -> None:
    """200 mutated inputs per target: refused, rejected or accepted, never another exception."""
    report = anyio.run(lambda: fuzz_targets.run(target, runs=200, seed=7))
    assert report.inputs == 200
    assert report.failed == 0, [f.error for f in report.failures]
    assert report.refused + report.rejected > 0  # the mutations do reach the parser's checks
    assert report.accepted > 0  # and not every input is broken beyond reading


def test_mutator_is_reproducible_and_covers_the_nasty_cases() -> None:
    """The same seed gives the same inputs; the inputs include what the parsers must survive."""
    seeds = [Seed(json.dumps({"text": "hi", "facets": [{"byteStart": 0, "byteEnd": 2}],
                              "items": [1, 2, 3]}).encode())]
    first = [Mutator(seeds, seed=3).next()[1] for _ in range(1)]
    one, two = Mutator(seeds, seed=3), Mutator(seeds, seed=3)
    bodies = [one.next()[1] for _ in range(400)]
    assert bodies == [two.next()[1] for _ in range(400)]
    assert bodies[:1] == first
    assert any(b"\\ud800" in b or b"\xed\xa0\x80" in b for b in bodies)  # lone surrogates
    assert any(b.count(b"[") > 1000 for b in bodies)  # deep nesting
    assert any(len(b) > 100_000 for b in bodies)  # huge strings
    assert any(b"-1" in b or b"100000000000000000000" in b for b in bodies)  # offsets
    invalid = 0
    for body in bodies:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            invalid += 1
    assert invalid > 0  # invalid UTF-8
    assert any(b'"text"' not in b for b in bodies)  # keys removed


def test_fuzz_counts_what_escapes_and_what_convert_item_caught() -> None:
    """A parser that lets a TypeError out fails the run; one caught by convert_item is counted."""
    def careless(body: bytes, context: str) -> object:
        return [item["text"] for item in json.loads(body)]

    def guarded(body: bytes, context: str) -> object:
        data = decode_json(body)
        if not isinstance(data, list):
            raise PayloadError("expected a list")
        return [convert_item(lambda item: item["text"].upper(), item) for item in data]

    seeds = [Seed(b'[{"text": "hi"}, {"text": "ho"}]')]
    bad = fuzz(careless, seeds, runs=400, seed=2, name="careless")
    good = fuzz(guarded, seeds, runs=400, seed=2, name="guarded")
    assert bad.failed > 0
    assert bad.failures[0].body
    assert good.failed == 0
    assert good.rejected > 0
    assert sum(good.net.values()) > 0  # TypeError, AttributeError... turned into Rejected
    assert "careless: 400 inputs" in bad.line()


def test_convert_item_keeps_any_item_as_a_dead_letter() -> None:
    """Items that json cannot write as UTF-8 (lone surrogates) or at all still get a body."""
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    for item in ({"text": "\ud800"}, "a\udfffb", deep, {1: 2, "a": 3}):
        found = convert_item(lambda item: 1 / 0, item, network="chirp", path="posts.0")
        assert isinstance(found, Rejected)
        assert found.reason == "unreadable item (ZeroDivisionError)"
        assert found.path == "posts.0"
        assert found.body
    assert json.loads(convert_item(lambda i: 1 / 0, {"t": "\ud800"}).body) == {  # type: ignore[union-attr]
        "t": "\ud800"}


async def test_chirp_verify_refuses_a_non_ascii_signature() -> None:
    """A signature header with characters outside ASCII is a refusal, not a TypeError."""
    adapter = fuzz_targets._chirp_adapter()
    body = b'{"type": "mention", "data": {}}'
    for header in ("t=1,v1=é", "t=1,v1=\udcff", "t=é,v1=00"):
        request = WebhookRequest(method="POST", body=body, headers={"chirp-signature": header})
        with pytest.raises(WebhookSignatureError):
            await adapter.verify(request)
    good = WebhookRequest(method="POST", body=body,
                          headers={"chirp-signature": fuzz_targets._chirp_signature(body)})
    assert await adapter.verify(good) is None
