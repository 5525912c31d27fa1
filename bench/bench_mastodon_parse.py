"""Benchmark: parsing Mastodon notification pages into core events, and importing the adapter.

Builds pages of 40 notifications from the recorded Mastodon payloads in
``tests/vectors/mastodon/`` (mentions, a direct message, HTML content with
mentions and entities) and measures, in the same run:

- ``json.loads`` of the page bytes (the baseline);
- the adapter's parse of the same bytes into ``MessageReceived`` events
  (``json.loads``, wire validation, HTML to text and entities, core models),
  with and without ``Message.raw``;
- Mastodon.py's own typed conversion of the same page (``try_cast_recurse`` to
  its ``Notification``), when Mastodon.py is installed.

Interleaved (the order rotates each repeat), ``--repeats`` repeats of
``--pages`` pages each; prints min and median microseconds per item, the ratio
to ``json.loads`` and the machine's load. Import time: ``bench_import.py``.

Run: ``.venv/bin/python bench/bench_mastodon_parse.py [--repeats 7] [--pages 100]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnichannel_mastodon._convert import Converter, parse_notification
from omnichannel_mastodon._stream import iter_events

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "mastodon" / "decoded"
PAGE_SIZE = 40


def recorded_notifications() -> list[dict[str, Any]]:
    """Every mention notification in the recordings (REST pages and the user stream)."""
    found: list[dict[str, Any]] = []
    for name in ("test_notifications", "test_notifications_mentions_only",
                 "test_notifications_dismiss"):
        data = json.loads((VECTORS / f"mastodonpy__{name}.json").read_text("utf-8"))
        for interaction in data["interactions"]:
            body = interaction["response_body"]
            if interaction["uri"].endswith(("/notifications", "mention")) and isinstance(
                body, list
            ):
                found.extend(body)
    stream = json.loads((VECTORS / "mastodonpy__test_stream_user_direct.json").read_text("utf-8"))
    for interaction in stream["interactions"]:
        if interaction["uri"].endswith("/streaming/user"):
            for event in iter_events(interaction["response_body"].splitlines()):
                if event.event == "notification":
                    found.append(json.loads(event.data))
    return found


def build_page(samples: list[dict[str, Any]]) -> bytes:
    """A page of 40 notifications with distinct notification and status ids."""
    page = []
    for n in range(PAGE_SIZE):
        item = copy.deepcopy(samples[n % len(samples)])
        item["id"] = str(1000 + n)
        item["status"]["id"] = str(117_100_000_000_000_000 + n)
        page.append(item)
    return json.dumps(page).encode()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mastodonpy_cast(page: bytes) -> Callable[[], int] | None:
    """Mastodon.py's own typed conversion of the same page, or ``None`` if not installed."""
    try:
        from mastodon.return_types import Notification
        from mastodon.types_base import try_cast_recurse
    except ImportError:
        return None

    def run() -> int:
        return len([try_cast_recurse(Notification, item) for item in json.loads(page)])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100, help="pages per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    samples = recorded_notifications()
    page = build_page(samples)

    def baseline() -> int:
        return len(json.loads(page))

    def parse_with(converter: Converter) -> Callable[[], int]:
        def run() -> int:
            raw = json.loads(page)
            events = 0
            # As the adapter does: one notification at a time, so a bad one is
            # rejected alone; newest first on the wire, oldest first out.
            for index in reversed(range(len(raw))):
                item = raw[index]
                notification = parse_notification(item, path=f"notifications.{index}")
                events += len(converter.notification_events(notification, raw=item))
            return events
        return run

    cases: dict[str, Callable[[], int]] = {
        "json.loads": baseline,
        "parse to events (raw kept)": parse_with(Converter(our_id="117020565966271181")),
        "parse to events (no raw)": parse_with(
            Converter(our_id="117020565966271181", keep_raw=False)
        ),
    }
    peer = mastodonpy_cast(page)
    if peer is None:
        print("Mastodon.py is not installed: its conversion is skipped (pip install Mastodon.py)")
    else:
        cases["Mastodon.py try_cast_recurse"] = peer
    for name, fn in cases.items():  # warm-up (and validators built)
        assert fn() == PAGE_SIZE, name
    print(f"load average before: {load()} ({os.cpu_count()} cpus)")
    names = list(cases)
    per_item: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            fn = cases[name]
            began = time.perf_counter()
            for _ in range(args.pages):
                fn()
            per_item[name].append((time.perf_counter() - began) / (args.pages * PAGE_SIZE))
    print(f"load average after:  {load()}")
    print(f"recorded notifications used: {len(samples)}; page: {PAGE_SIZE} items, "
          f"{len(page):,} bytes; {args.repeats} repeats x {args.pages} pages, interleaved")
    base = statistics.median(per_item["json.loads"])
    print(f"{'':30} {'min us/item':>12} {'median':>8} {'x json.loads':>13}")
    for name in names:
        t = per_item[name]
        print(f"{name:30} {min(t) * 1e6:12.1f} {statistics.median(t) * 1e6:8.1f} "
              f"{statistics.median(t) / base:13.1f}")
    if peer is not None:
        ours = statistics.median(per_item["parse to events (raw kept)"])
        theirs = statistics.median(per_item["Mastodon.py try_cast_recurse"])
        print(f"Mastodon.py's conversion / ours (raw kept): {theirs / ours:.1f}x (median)")


if __name__ == "__main__":
    main()
