"""Fuzz every adapter parser with mutated recorded payloads and print the counts.

Targets (``tests/fuzz_targets.py``): Mastodon, Bluesky, Meta and X ``parse_payload``;
``poll`` of Mastodon, Bluesky and X over a transport that answers the mutated
page (then a second poll at the cursor the first gave, which must work too);
the per-event decoding of the Mastodon stream and of Bluesky's Jetstream; the
webhook ``parse`` of Facebook, Instagram and X (X Activity and Account
Activity deliveries) and the Chirp tutorial adapter's ``verify`` and ``parse``. Seeds are the
recorded vectors in ``tests/vectors``; the mutator is
``omnichannel.testing.fuzz.Mutator``.

Per target it prints the inputs, how many were refused with the allowed
error (``PayloadError``; ``WebhookSignatureError`` for ``verify``), the
``Rejected`` items in what came back, how many inputs were accepted, and
every other exception (must be 0: the exit status is 1 otherwise), plus
what ``convert_item`` caught that no conversion foresaw.

Run: ``.venv/bin/python bench/fuzz_adapters.py [--runs 100000] [--seed 1]
[--target NAME ...] [--jobs 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fuzz_targets


def _one(name: str, runs: int, seed: int) -> tuple[str, float, list[str]]:
    target = next(t for t in fuzz_targets.targets() if t.name == name)
    start = time.perf_counter()
    report = anyio.run(lambda: fuzz_targets.run(target, runs=runs, seed=seed))
    failures = [f"    {f.error[:200]!r} (context {f.context[:60]!r}, body {f.body[:120]!r})"
                for f in report.failures]
    return report.line(), time.perf_counter() - start, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=1, help="the mutator's random seed")
    parser.add_argument("--target", action="append", help="only this target (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="targets fuzzed at once")
    args = parser.parse_args()
    names = [t.name for t in fuzz_targets.targets()]
    chosen = args.target or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {names}")
    failed = False
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_one, name, args.runs, args.seed) for name in chosen]
        for future in futures:
            line, seconds, failures = future.result()
            print(f"{line}  [{seconds:.0f} s]", flush=True)
            for failure in failures:
                print(failure, flush=True)
            failed = failed or bool(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
