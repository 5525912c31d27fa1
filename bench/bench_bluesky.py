"""Benchmark: Bluesky listening-mode filtering and notification-page parsing.

Uses the recorded payloads in ``tests/vectors/bluesky/`` and measures, in
the same run, each against a bare ``json.loads`` of the same bytes:

- Jetstream filtering: the 162 recorded Jetstream events (the golden file and
  the 152-event corpus) replicated to at least 100,000 lines, each run through
  the listening-mode filter (byte test, then parse and mention/keyword match
  where it can match) and the matches turned into ``MessageReceived`` events;
  then the same for the 19 post events alone, which is what a subscription
  with ``wantedCollections=app.bsky.feed.post`` receives. The filter watches
  our DID (the author replied to in the golden file) and the keywords
  ``refund`` and ``rebellion``. Also shown: parsing every line with the wire
  model, without the byte test.
- Notification pages: the recorded page of 50 notifications (18 mentions and
  quotes, 13 likes) parsed into ``MessageReceived`` and ``ReactionAdded``
  events the way ``poll`` does (follows and reposts are read for their time
  and URI only), with and without ``Message.raw``; and, for scale, the wire
  model over all 50.

Run: ``.venv/bin/python bench/bench_bluesky.py [--seconds 3] [--lines 100000]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnichannel_bluesky._convert import jetstream_event, load, notification_page
from omnichannel_bluesky._jetstream import JetstreamFilter, Matched
from omnichannel_bluesky._wire import JetstreamEvent, ListNotificationsOutput

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "bluesky"
OUR_DID = "did:plc:j76trmiofvaxxpvx2vnb2vwf"
KEYWORDS = ("refund", "rebellion")
BSKYR = "did:plc:5c2r73erhng4bszmxlfdtscf"


def recorded_lines() -> list[str]:
    """Every recorded Jetstream event line."""
    lines: list[str] = []
    for name in ("golden_v1", "expected_v1"):
        text = (VECTORS / f"jetstream__{name}.jsonl").read_text("utf-8")
        lines += [line for line in text.splitlines() if line.strip()]
    return lines


def recorded_page() -> bytes:
    """The recorded listNotifications page, as the bytes the network sent."""
    data = json.loads((VECTORS / "decoded" / "bskyr__n_notifications.json").read_text("utf-8"))
    body: Any = data["interactions"][0]["response_body"]
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def best_seconds(fn: Callable[[], object], runs: int = 3) -> float:
    """The fastest of ``runs`` timings of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second of ``fn`` (which returns the items it handled), best of 3 runs."""
    best = 0.0
    for _ in range(3):
        done = 0
        started = time.perf_counter()
        deadline = started + seconds / 3
        while time.perf_counter() < deadline:
            done += fn()
        best = max(best, done / (time.perf_counter() - started))
    return best


def bench_jetstream(recorded: list[str], count: int, label: str) -> None:
    """Jetstream lines per second through the filter, next to json.loads."""
    copies = -(-count // len(recorded))
    lines = recorded * copies
    keep = JetstreamFilter(did=OUR_DID, keywords=KEYWORDS)
    matched: list[int] = []

    def filtered() -> None:
        found = 0
        for line in lines:
            hit = keep.match_line(line)
            if isinstance(hit, Matched):
                jetstream_event(hit.event, our_did=OUR_DID)
                found += 1
        matched.append(found)

    def loads() -> None:
        for line in lines:
            json.loads(line)

    def parse_all() -> None:
        validate = JetstreamEvent.model_validate_json
        for line in lines:
            validate(line)

    base = best_seconds(loads)
    ours = best_seconds(filtered)
    full = best_seconds(parse_all)
    print(f"Jetstream, {label}: {len(recorded)} recorded events x {copies} = "
          f"{len(lines):,} lines, {matched[-1]:,} matches")
    print(f"  json.loads baseline            : {len(lines) / base:>10,.0f} events/s")
    print(f"  filter + match + to events     : {len(lines) / ours:>10,.0f} events/s   "
          f"time ratio to json.loads {ours / base:5.2f}")
    print(f"  wire-model parse of every line : {len(lines) / full:>10,.0f} events/s   "
          f"time ratio to json.loads {full / base:5.2f}")


def bench_notifications(seconds: float) -> None:
    """Notifications per second parsed into events, next to json.loads."""
    page = recorded_page()

    def baseline() -> int:
        return len(json.loads(page)["notifications"])

    def parse() -> int:
        items, _ = notification_page(json.loads(page), our_did=BSKYR)
        return len(items)

    def parse_no_raw() -> int:
        items, _ = notification_page(json.loads(page), our_did=BSKYR, keep_raw=False)
        return len(items)

    def validate_all() -> int:
        parsed = load(ListNotificationsOutput, page)
        return len(parsed.notifications)

    assert sum(item.event is not None for item in notification_page(
        json.loads(page), our_did=BSKYR)[0]) == 31
    loads = rate(baseline, seconds)
    full = rate(parse, seconds)
    lean = rate(parse_no_raw, seconds)
    every = rate(validate_all, seconds)
    print(f"Notifications: recorded page of 50 (31 become events), {len(page):,} bytes")
    print(f"  json.loads baseline          : {loads:>12,.0f} notifications/s")
    print(f"  parse to events (raw kept)   : {full:>12,.0f} notifications/s   "
          f"time ratio to json.loads {loads / full:5.2f}")
    print(f"  parse to events (no raw)     : {lean:>12,.0f} notifications/s   "
          f"time ratio to json.loads {loads / lean:5.2f}")
    print(f"  wire model for all 50        : {every:>12,.0f} notifications/s   "
          f"time ratio to json.loads {loads / every:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per page measurement")
    parser.add_argument("--lines", type=int, default=100_000, help="Jetstream lines (minimum)")
    args = parser.parse_args()
    recorded = recorded_lines()
    bench_jetstream(recorded, args.lines, "every recorded event")
    posts = [line for line in recorded if '"app.bsky.feed.post"' in line]
    bench_jetstream(posts, args.lines, "posts only (what wantedCollections sends)")
    bench_notifications(args.seconds)


if __name__ == "__main__":
    main()
