"""Fuzzing an adapter's parsers: seeded mutations of recorded payloads.

Inbound payloads are written by strangers and relayed unchanged, so an
adapter's parsers must survive any body: the only exception that may leave
``parse_payload``, ``poll``'s and ``stream``'s decoding, or a webhook's
``parse`` is `PayloadError` (``verify``: `WebhookSignatureError`), and one bad
item inside a page comes back as a `Rejected`. `Mutator` turns real payloads
(the recorded vectors) into broken ones, structure and values alike: keys
removed, values of the wrong type, huge strings and numbers, negative and
huge offsets, deep nesting, invalid UTF-8, lone surrogates, truncations.
`fuzz` runs a target over them and counts what came out.

```python
from omnichannel.testing.fuzz import Seed, fuzz

def parse(body: bytes, context: str) -> list[str]:
    import json
    data = json.loads(body)  # a RecursionError or a TypeError may escape: found below
    return [item["text"] for item in data]

report = fuzz(parse, [Seed(b'[{"text": "hi"}]')], runs=300, seed=1)
print(report.inputs, report.failed > 0)
#> 300 True
```

The same seed gives the same inputs, so a failure replays
(``report.failures`` keeps the first few, with their bodies).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adapter import Rejected
from ..errors import PayloadError

__all__ = ["FuzzFailure", "FuzzReport", "Mutator", "Seed", "fuzz", "fuzz_async"]

_NASTY_STRINGS: tuple[str, ...] = (
    "", " ", "\x00", "\ud800", "a\udfffb", "💙" * 3, "👩🏽‍🚀", "e\u0301", "\u202e", "null",
    "0", "-1", "1e999", "2024-13-45T25:61:61Z", "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59Z", "+275760-09-13T00:00:00Z", "1970-01-01", "at://", "at://x/y",
    "at://did:plc:x/app.bsky.feed.post/3k", "did:plc:", "http://", "https://x", "javascript:1",
    "<a href='x'>@y</a>", "<p><span class=\"h-card\"><a href=\"h\">@x</a></span></p>",
    "<<<>>>", "&#0;", "&#x110000;", "%ff", "\\u0000", '{"a":1}', "[]",
)
_NASTY_NUMBERS: tuple[int | float, ...] = (
    0, -1, 1, 7, -(2**31), 2**31, 2**53 + 1, 2**63, -(2**63), 10**20, -(10**20), 10**400,
    1.5, -0.0, 1e308,
)
_OFFSET_KEYS = frozenset({
    "byteStart", "byteEnd", "start", "end", "offset", "length", "index", "indices",
    "time_us", "width", "height", "limit", "unreadCount", "seq",
})


@dataclass(frozen=True)
class Seed:
    """A real payload to mutate, with what the target needs besides the body.

    Attributes:
        body: The payload as recorded.
        context: Passed to the target with each input: the endpoint path of
            a recorded answer, a webhook's signature header...
    """

    body: bytes
    context: str = ""


@dataclass(frozen=True)
class FuzzFailure:
    """One input that made the target raise something it must not.

    Attributes:
        error: ``"TypeError: ..."``, the exception's type and message.
        body: The input.
        context: The seed's context.
    """

    error: str
    body: bytes = field(repr=False)
    context: str = ""


@dataclass
class FuzzReport:
    """What a fuzz run found.

    Attributes:
        target: The target's name.
        allowed: The names of the errors the target may raise.
        inputs: Inputs run.
        refused: Inputs the target refused with an allowed error (`PayloadError`).
        accepted: Inputs the target returned from.
        rejected: `Rejected` items among what the targets returned.
        failed: Inputs that raised anything else: must be 0.
        errors: The failures counted by exception type.
        net: Inputs where `convert_item` caught an unforeseen exception (a
            conversion bug the safety net turned into a rejection), by type.
        failures: The first failures, with their inputs, to replay.
    """

    target: str = ""
    allowed: tuple[str, ...] = ("PayloadError",)
    inputs: int = 0
    refused: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    net: Counter[str] = field(default_factory=Counter)
    failures: list[FuzzFailure] = field(default_factory=list)

    def line(self) -> str:
        """A one-line summary: the counts, then the failures and catches by type."""
        text = (f"{self.target}: {self.inputs} inputs, {self.refused} refused "
                f"({'/'.join(self.allowed)}), {self.rejected} Rejected, "
                f"{self.accepted} accepted, {self.failed} other")
        if self.errors:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in self.errors.most_common()) + ")"
        if self.net:
            text += "; caught by convert_item: " + ", ".join(
                f"{k}: {v}" for k, v in self.net.most_common())
        return text


class Mutator:
    """Seeded mutations of JSON payloads (whole bodies, JSON lines, server-sent events).

    Each input is one to three mutations of a seed: on the decoded JSON (a key
    removed; a value replaced by one of another type, a nasty string or
    number, a huge string, a deep nest; a list emptied, cut or repeated;
    offsets made negative or huge), or on the bytes (cut, bytes flipped,
    invalid UTF-8 or an encoded surrogate inserted, wrapped in deep nesting).
    Lone surrogates are written as JSON escapes or as raw (invalid) bytes.

    Args:
        seeds: The payloads to start from.
        seed: The random seed: the same seed gives the same inputs.
    """

    def __init__(self, seeds: Sequence[Seed], *, seed: int = 0) -> None:
        if not seeds:
            raise ValueError("a mutator needs at least one seed")
        self.seeds = tuple(seeds)
        self.random = random.Random(seed)  # noqa: S311 - reproducible inputs, not secrets

    def __iter__(self) -> Iterator[tuple[Seed, bytes]]:
        while True:
            yield self.next()

    def next(self) -> tuple[Seed, bytes]:
        """The next input: the seed it came from, and the mutated body."""
        pick = self.random.choice(self.seeds)
        body = pick.body
        for _ in range(self.random.choice((1, 1, 1, 2, 3))):
            body = self.mutate(body)
        return pick, body

    def mutate(self, body: bytes) -> bytes:
        """One mutation of ``body``: structural most of the time, else on the bytes."""
        rnd = self.random
        if rnd.random() < 0.8:
            lines = body.split(b"\n")
            candidates = [i for i, line in enumerate(lines) if _json_part(line) is not None]
            if candidates:
                index = rnd.choice(candidates)
                prefix, data = _json_part(lines[index]) or (b"", None)
                lines[index] = prefix + self._dump(self._mutate_value(data, 0))
                return b"\n".join(lines)
        return self._mutate_bytes(body)

    # values --------------------------------------------------------------------

    def _mutate_value(self, value: Any, depth: int) -> Any:
        rnd = self.random
        if isinstance(value, dict) and value and depth < 12 and rnd.random() < 0.75:
            key = rnd.choice(list(value))
            out = dict(value)
            roll = rnd.random()
            if roll < 0.2:
                del out[key]
            elif roll < 0.3:
                out[self._nasty_string()] = self._nasty_value(key)
            else:
                out[key] = self._mutate_value(value[key], depth + 1)
                if key in _OFFSET_KEYS and rnd.random() < 0.5:
                    out[key] = rnd.choice((-1, -(2**40), 2**40, 10**20, 3, 2**31))
            return out
        if isinstance(value, list) and value and depth < 12 and rnd.random() < 0.75:
            out_list = list(value)
            roll = rnd.random()
            if roll < 0.15:
                return []
            if roll < 0.3:
                return out_list[: rnd.randrange(len(out_list))]
            if roll < 0.4:
                return out_list + out_list * rnd.choice((1, 5))
            index = rnd.randrange(len(out_list))
            out_list[index] = self._mutate_value(out_list[index], depth + 1)
            return out_list
        return self._nasty_value(None)

    def _nasty_value(self, key: str | None) -> Any:
        rnd = self.random
        roll = rnd.randrange(10)
        if roll == 0:
            return None
        if roll == 1:
            return rnd.choice((True, False))
        if roll in (2, 3):
            return rnd.choice(_NASTY_NUMBERS)
        if roll in (4, 5):
            return self._nasty_string()
        if roll == 6:
            return rnd.choice(([], {}, [None], {"": None}, [[]], {"$type": None}))
        if roll == 7:
            depth = rnd.choice((50, 500, 5000))
            nest: Any = []
            for _ in range(depth):
                nest = [nest] if rnd.random() < 0.5 else {"a": nest}
            return nest
        if roll == 8:
            return rnd.choice(("x", "💙", "\ud800", "<p>", "@a ")) * rnd.choice((1000, 100_000))
        return rnd.choice((-1, 10**20, "", "2024-01-01T00:00:00Z"))

    def _nasty_string(self) -> str:
        rnd = self.random
        if rnd.random() < 0.7:
            return rnd.choice(_NASTY_STRINGS)
        return "".join(chr(rnd.choice((rnd.randrange(0x20, 0x7F), rnd.randrange(0xD800, 0xE000),
                                       rnd.randrange(0x80, 0x110000))))
                       for _ in range(rnd.randrange(1, 12)))

    def _dump(self, value: Any) -> bytes:
        rnd = self.random
        try:
            if rnd.random() < 0.7:
                return json.dumps(value, ensure_ascii=True).encode("ascii")
            # Raw UTF-8, lone surrogates as the (invalid) bytes they would be.
            return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            return b"[" * 10_000 + b"]" * 10_000

    # bytes ---------------------------------------------------------------------

    def _mutate_bytes(self, body: bytes) -> bytes:
        rnd = self.random
        roll = rnd.randrange(7)
        if roll == 0 and body:
            return body[: rnd.randrange(len(body))]
        if roll == 1 and body:
            data = bytearray(body)
            for _ in range(rnd.randrange(1, 8)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            return bytes(data)
        if roll == 2:
            at = rnd.randrange(len(body) + 1)
            bad = rnd.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                              b"\x00", b"\xef\xbb\xbf", b"\\ud800", b'"', b"\r\n\r\n"))
            return body[:at] + bad + body[at:]
        if roll == 3:
            depth = rnd.choice((100, 1000, 100_000))
            return b"[" * depth + body + b"]" * depth
        if roll == 4:
            return rnd.choice((b"", b"null", b"0", b"[]", b"{}", b'""', b"[" * 100_000,
                               b'{"a":' * 50_000, b"\xff\xfe", b"data: x\n\n"))
        if roll == 5 and body:
            at = rnd.randrange(len(body))
            return body[:at] + body[at : at + 200] * rnd.choice((2, 50)) + body[at:]
        return body + body


def _json_part(line: bytes) -> tuple[bytes, Any] | None:
    """A line's JSON and what precedes it (``data: `` of an SSE line), if it holds JSON."""
    prefix = b""
    text = line
    if line.startswith(b"data:"):
        prefix, text = b"data: ", line[5:].lstrip(b" ")
    stripped = text.strip()
    if stripped[:1] not in (b"{", b"["):
        return None
    try:
        return prefix, json.loads(stripped)
    except (ValueError, RecursionError):
        return None


class _NetCatches(logging.Handler):
    """Counts what `convert_item` caught beyond `PayloadError` (it logs them at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.caught: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.caught[record.exc_info[0].__name__] += 1


def _count(result: object) -> int:
    if isinstance(result, Rejected):
        return 1
    rejected = getattr(result, "rejected", None)
    if isinstance(rejected, tuple | list):
        return sum(isinstance(item, Rejected) for item in rejected)
    if isinstance(result, tuple | list):
        return sum(_count(item) for item in result)
    return 0


class _Run:
    def __init__(self, name: str, allowed: tuple[type[BaseException], ...], keep: int) -> None:
        self.report = FuzzReport(target=name, allowed=tuple(kind.__name__ for kind in allowed))
        self.allowed = allowed
        self.keep = keep
        self.net = _NetCatches()
        self.logger = logging.getLogger("omnichannel.adapter")
        self.level = self.logger.level

    def __enter__(self) -> _Run:
        self.logger.addHandler(self.net)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.net)
        self.logger.setLevel(self.level)
        self.report.net = self.net.caught

    def outcome(self, seed: Seed, body: bytes, result: object, error: BaseException | None) -> None:
        report = self.report
        report.inputs += 1
        if error is None:
            report.accepted += 1
            report.rejected += _count(result)
        elif isinstance(error, self.allowed):
            report.refused += 1
        else:
            report.failed += 1
            name = type(error).__name__
            report.errors[name] += 1
            if len(report.failures) < self.keep:
                report.failures.append(FuzzFailure(f"{name}: {error}"[:500], body, seed.context))


def fuzz(
    target: Callable[[bytes, str], object],
    seeds: Sequence[Seed],
    *,
    runs: int,
    seed: int = 0,
    allowed: tuple[type[BaseException], ...] = (PayloadError,),
    name: str = "",
    keep: int = 5,
) -> FuzzReport:
    """Run ``target(body, seed.context)`` on ``runs`` mutated inputs and count the outcomes.

    Args:
        target: The parser under test (``lambda body, path: parse_payload(body, path=path)``).
            Whatever it returns is searched for `Rejected` items (a `Batch`, a
            list, a `Rejected`).
        seeds: The real payloads to mutate.
        runs: How many inputs.
        seed: The random seed (the same seed, the same inputs).
        allowed: The exceptions the target may raise.
        name: The target's name in the report.
        keep: How many failures to keep with their inputs.

    Returns:
        The counts; ``report.failed`` must be 0.
    """
    mutator = Mutator(seeds, seed=seed)
    with _Run(name or getattr(target, "__name__", "target"), allowed, keep) as run:
        for _ in range(runs):
            picked, body = mutator.next()
            try:
                result = target(body, picked.context)
            except Exception as exc:  # counted: the whole point
                run.outcome(picked, body, None, exc)
            else:
                run.outcome(picked, body, result, None)
    return run.report


async def fuzz_async(
    target: Callable[[bytes, str], Awaitable[object]],
    seeds: Sequence[Seed],
    *,
    runs: int,
    seed: int = 0,
    allowed: tuple[type[BaseException], ...] = (PayloadError,),
    name: str = "",
    keep: int = 5,
) -> FuzzReport:
    """`fuzz` for an async target (``poll`` over a transport answering the input, a stream)."""
    mutator = Mutator(seeds, seed=seed)
    with _Run(name or getattr(target, "__name__", "target"), allowed, keep) as run:
        for _ in range(runs):
            picked, body = mutator.next()
            try:
                result = await target(body, picked.context)
            except Exception as exc:  # counted: the whole point
                run.outcome(picked, body, None, exc)
            else:
                run.outcome(picked, body, result, None)
    return run.report
