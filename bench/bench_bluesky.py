"""Benchmark: Bluesky listening-mode filtering and notification-page parsing.

Uses the recorded payloads in ``tests/vectors/bluesky/`` and measures, in
the same run, each against a bare ``json.loads`` of the same bytes:

- Jetstream filtering: 100,000 lines generated from the recorded shapes (see
  ``varied_lines``: 90% posts with varied authors, texts and languages, 5% of
  them matching), each run through the listening-mode filter (byte test, then
  parse and mention/keyword match where it can match) and the matches turned
  into ``MessageReceived`` events; also parsing every line with the wire
  model, without the byte test. The filter watches our DID and the keywords
  ``refund`` and ``rebellion``.
- Notification pages: the recorded page of 50 notifications (18 mentions and
  quotes, 13 likes) parsed into ``MessageReceived`` and ``ReactionAdded``
  events the way ``poll`` does (follows and reposts are read for their time
  and URI only), with and without ``Message.raw``; for scale, the wire
  model over all 50; and, when the atproto SDK is installed (``pip install
  atproto``; not a requirement), its own typed models over the same bytes, read
  the way its client reads a response.

Interleaved (the order rotates each repeat), ``--repeats`` repeats; prints min
and median microseconds per item, the ratio to ``json.loads`` and the load.

Run: ``.venv/bin/python bench/bench_bluesky.py [--repeats 5] [--lines 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
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


def varied_lines(recorded: list[str], count: int, seed: int = 17) -> list[str]:
    """``count`` Jetstream lines generated from the recorded shapes, each one different.

    90% are post creates: a recorded post (with its embeds, facets, langs and
    reply shape) by one of 2,000 authors, with a fresh rkey, time and text
    (5-30 words drawn from every recorded post's text, so languages and
    lengths vary). Of those, 2% reply to one of our posts, 2% mention us
    (text and facet) and 1% hold a keyword; the rest match nothing (our DID
    is replaced in the templates that had it). The other 10% are the
    recorded non-post events (likes, follows, reposts, deletes, identity),
    with their author and time varied.
    """
    rng = random.Random(seed)
    posts = [json.loads(line) for line in recorded
             if '"app.bsky.feed.post"' in line and '"create"' in line]
    others = [line for line in recorded if '"app.bsky.feed.post"' not in line]
    words = [w for post in posts for w in post["commit"]["record"].get("text", "").split()]
    words = [w for w in words if OUR_DID not in w and not any(k in w.lower() for k in KEYWORDS)]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    authors = ["did:plc:" + "".join(rng.choice(alphabet) for _ in range(24)) for _ in range(2000)]
    lines: list[str] = []
    time_us = 1_783_175_888_000_000
    for n in range(count):
        time_us += rng.randint(50, 5000)
        author = rng.choice(authors)
        if rng.random() >= 0.9:
            line = rng.choice(others).replace(OUR_DID, rng.choice(authors))
            event = json.loads(line)
            event["did"], event["time_us"] = author, time_us
            lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            continue
        event = json.loads(json.dumps(rng.choice(posts)).replace(OUR_DID, rng.choice(authors)))
        event["did"], event["time_us"] = author, time_us
        commit = event["commit"]
        commit["rkey"] = "".join(rng.choice(alphabet) for _ in range(13))
        record = commit["record"]
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
        record.pop("facets", None)
        roll = rng.random()
        if roll < 0.02:
            parent = {"cid": "bafyreiainko5un5pbcdosvxpbisjnjzemojnry6nsgtdftdgslbu37kxai",
                      "uri": f"at://{OUR_DID}/app.bsky.feed.post/3mmojbrjwbs{n % 100:02}"}
            record["reply"] = {"parent": parent, "root": parent}
        elif roll < 0.04:
            handle = "@shop.example "
            text = handle + text
            record["facets"] = [{"features": [{"$type": "app.bsky.richtext.facet#mention",
                                               "did": OUR_DID}],
                                 "index": {"byteStart": 0, "byteEnd": len(handle) - 1}}]
        elif roll < 0.05:
            text = f"{text} {rng.choice(KEYWORDS)}"
        record["text"] = text
        lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    return lines


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def interleaved(cases: dict[str, Callable[[], int]], repeats: int) -> dict[str, list[float]]:
    """Seconds per item of each case, ``repeats`` rounds, order rotating each round."""
    names = list(cases)
    per_item: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            items = cases[name]()
            per_item[name].append((time.perf_counter() - began) / items)
    return per_item


def report(per_item: dict[str, list[float]], base: str) -> None:
    ref = statistics.median(per_item[base])
    print(f"  {'':34} {'min us/item':>11} {'median':>8} {'x json.loads':>13}")
    for name, t in per_item.items():
        print(f"  {name:34} {min(t) * 1e6:11.2f} {statistics.median(t) * 1e6:8.2f} "
              f"{statistics.median(t) / ref:13.2f}")


def bench_jetstream(lines: list[str], repeats: int) -> None:
    """Jetstream lines through the filter, next to json.loads, interleaved."""
    keep = JetstreamFilter(did=OUR_DID, keywords=KEYWORDS)
    matched: list[int] = []

    def filtered() -> int:
        found = 0
        for line in lines:
            hit = keep.match_line(line)
            if isinstance(hit, Matched):
                jetstream_event(hit.event, our_did=OUR_DID)
                found += 1
        matched.append(found)
        return len(lines)

    def loads() -> int:
        for line in lines:
            json.loads(line)
        return len(lines)

    def parse_all() -> int:
        validate = JetstreamEvent.model_validate_json
        for line in lines:
            validate(line)
        return len(lines)

    per_item = interleaved({"json.loads": loads, "filter + match + to events": filtered,
                            "wire-model parse of every line": parse_all}, repeats)
    posts = sum('"app.bsky.feed.post"' in line for line in lines)
    print(f"Jetstream: {len(lines):,} generated lines, {len(set(lines)):,} distinct, "
          f"{posts / len(lines):.0%} posts, {matched[-1]:,} matches")
    report(per_item, "json.loads")


def bench_notifications(repeats: int, pages: int) -> None:
    """Notifications parsed into events, next to json.loads, interleaved."""
    page = recorded_page()

    def times(fn: Callable[[], int]) -> Callable[[], int]:
        return lambda: sum(fn() for _ in range(pages))

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
    cases = {
        "json.loads": times(baseline), "parse to events (raw kept)": times(parse),
        "parse to events (no raw)": times(parse_no_raw),
        "wire model for all 50": times(validate_all),
    }
    peer = atproto_parse(page)
    if peer is None:
        print("atproto is not installed: its models are skipped (pip install atproto)")
    else:
        cases[ATPROTO] = times(peer)
    per_item = interleaved(cases, repeats)
    print(f"Notifications: recorded page of 50 (31 become events), {len(page):,} bytes, "
          f"x {pages} per run")
    report(per_item, "json.loads")
    if peer is not None:
        theirs = statistics.median(per_item[ATPROTO])
        for name in ("wire model for all 50", "parse to events (raw kept)"):
            print(f"  atproto's models / ours ({name}): "
                  f"{theirs / statistics.median(per_item[name]):.2f}x (median)")


ATPROTO = "atproto models for all 50"


def atproto_parse(page: bytes) -> Callable[[], int] | None:
    """The atproto SDK's parse of the same bytes, as its client does it; ``None`` if missing.

    Its client reads a response with ``pydantic_core.from_json`` and builds the
    typed response with ``get_or_create`` (records resolved by their ``$type``).
    """
    try:
        from atproto_client import models  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from atproto_client.models.utils import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            get_or_create,
        )
        from pydantic_core import from_json
    except ImportError:
        return None
    response_model = models.AppBskyNotificationListNotifications.Response

    def parse() -> int:
        parsed = get_or_create(from_json(page), response_model, strict=True)
        assert isinstance(parsed, response_model)
        return len(parsed.notifications)

    if parse() != 50:
        raise SystemExit("atproto's models did not read the 50 notifications")
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=100_000, help="generated Jetstream lines")
    parser.add_argument("--pages", type=int, default=200, help="notification pages per run")
    args = parser.parse_args()
    lines = varied_lines(recorded_lines(), args.lines)
    print(f"load average before: {load_average()} ({os.cpu_count()} cpus)")
    bench_jetstream(lines, args.repeats)
    bench_notifications(args.repeats, args.pages)
    print(f"load average after:  {load_average()}")


if __name__ == "__main__":
    main()
