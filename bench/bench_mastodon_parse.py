"""Benchmark: parsing Mastodon notification pages into core events, and importing the adapter.

Builds pages of 40 notifications from the recorded Mastodon payloads in
``tests/vectors/mastodon/`` (mentions, a direct message, HTML content with
mentions and entities) and measures, in the same run:

- ``json.loads`` of the page bytes (the baseline);
- the adapter's parse of the same bytes into ``MessageReceived`` events
  (``json.loads``, wire validation, HTML to text and entities, core models),
  with and without ``Message.raw``;
- the import time of ``omnichannel_mastodon`` in a fresh interpreter, next to
  ``import omnichannel`` alone.

Run: ``.venv/bin/python bench/bench_mastodon_parse.py [--seconds 2]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
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


def import_ms(statement: str, runs: int = 7) -> float:
    """Median milliseconds a fresh interpreter spends running ``statement``."""
    code = (
        "import time; t = time.perf_counter(); "
        f"{statement}; print((time.perf_counter() - t) * 1000)"
    )
    times = [
        float(subprocess.run(  # noqa: S603 - our own interpreter, fixed code
            [sys.executable, "-c", code], check=True, capture_output=True, text=True,
        ).stdout)
        for _ in range(runs)
    ]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
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

    with_raw = parse_with(Converter(our_id="117020565966271181"))
    without_raw = parse_with(Converter(our_id="117020565966271181", keep_raw=False))
    assert with_raw() == PAGE_SIZE  # every notification is a mention: one event each

    loads = rate(baseline, args.seconds)
    full = rate(with_raw, args.seconds)
    lean = rate(without_raw, args.seconds)
    print(f"recorded notifications used: {len(samples)}; page: {PAGE_SIZE} items, "
          f"{len(page):,} bytes")
    print(f"json.loads baseline       : {loads:>12,.0f} notifications/s")
    print(f"parse to events (raw kept): {full:>12,.0f} events/s   "
          f"ratio to json.loads {loads / full:5.1f}x slower")
    print(f"parse to events (no raw)  : {lean:>12,.0f} events/s   "
          f"ratio to json.loads {loads / lean:5.1f}x slower")

    base = import_ms("import omnichannel")
    adapter = import_ms("import omnichannel_mastodon")
    print(f"import omnichannel          : {base:6.1f} ms (median of 7 fresh interpreters)")
    print(f"import omnichannel_mastodon : {adapter:6.1f} ms (includes omnichannel and httpx)")


if __name__ == "__main__":
    main()
