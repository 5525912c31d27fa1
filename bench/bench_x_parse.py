"""Benchmark: parsing X mentions pages into core events, and importing the adapter.

Builds a page of 100 posts from the recorded mentions in
``tests/vectors/twitter/`` (tweepy's cassette: real texts with emoji, @mentions
and t.co links), each given an ``author_id``, entities found in its text and
``includes.users`` as the adapter asks for them, and measures in one run:

- ``json.loads`` of the page bytes (the baseline);
- ``XAdapter.parse_payload`` of the same bytes into ``MessageReceived`` events
  (wire validation, unescaping, t.co expansion, core models);
- tweepy's own models on the same bytes (``json.loads`` then ``tweepy.Tweet``
  per post and ``tweepy.User`` per user), when tweepy is installed;
- the import time of ``omnichannel_x`` (and of ``tweepy``) in a fresh interpreter.

Run: ``.venv/bin/python bench/bench_x_parse.py [--seconds 2]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnichannel_x import XAdapter

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "twitter" / "decoded"
PAGE_SIZE = 100
_MENTION = re.compile(r"@(\w{1,15})")
_URL = re.compile(r"https://t\.co/\w+")


def build_page() -> bytes:
    """100 recorded posts with distinct ids, authors, entities and includes."""
    data = json.loads((VECTORS / "tweepy__test_client_get_users_mentions.json").read_text("utf-8"))
    samples = data["interactions"][0]["response_body"]["data"]
    posts: list[dict[str, Any]] = []
    users: dict[str, dict[str, Any]] = {}
    base = 1578516295611748353
    for n in range(PAGE_SIZE):
        post = copy.deepcopy(samples[n % len(samples)])
        post["id"] = str(base - n * 4194304)
        author = str(1000 + n % 25)
        post["author_id"] = author
        users[author] = {"id": author, "username": f"customer{author}", "name": f"C {author}"}
        text = post["text"]
        post["entities"] = {
            "mentions": [{"start": m.start(), "end": m.end(), "username": m.group(1)}
                         for m in _MENTION.finditer(text)],
            "urls": [{"start": m.start(), "end": m.end(), "url": m.group(0),
                      "expanded_url": f"https://example.com/{n}"} for m in _URL.finditer(text)],
        }
        posts.append(post)
    page = {"data": posts, "includes": {"users": list(users.values())},
            "meta": {"result_count": PAGE_SIZE, "newest_id": posts[0]["id"]}}
    return json.dumps(page).encode("ascii")


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    runs: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return 1 / statistics.median(runs)


def import_time(module: str) -> float:
    """Median seconds to import ``module`` in a fresh interpreter (5 runs)."""
    times = []
    for _ in range(5):
        code = f"import time; s = time.perf_counter(); import {module}; " \
               "print(time.perf_counter() - s)"
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True,
            check=True)
        times.append(float(done.stdout))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    page = build_page()
    events = XAdapter.parse_payload(page, path="/2/users/783214/mentions", account="783214")
    assert len(events) == PAGE_SIZE
    print(f"page: {PAGE_SIZE} posts, {len(page)} bytes")
    loads = rate(lambda: json.loads(page), args.seconds)
    ours = rate(lambda: XAdapter.parse_payload(page, path="/2/users/783214/mentions"),
                args.seconds)
    print(f"json.loads:                 {loads * PAGE_SIZE:12,.0f} posts/s")
    print(f"XAdapter.parse_payload:     {ours * PAGE_SIZE:12,.0f} posts/s "
          f"({loads / ours:.1f}x json.loads)")
    try:
        import tweepy
    except ImportError:
        print("tweepy:                     not installed")
    else:
        def with_tweepy() -> None:
            body = json.loads(page)
            for item in body["data"]:
                tweepy.Tweet(item)
            for user in body["includes"]["users"]:
                tweepy.User(user)

        theirs = rate(with_tweepy, args.seconds)
        print(f"tweepy Tweet/User models:   {theirs * PAGE_SIZE:12,.0f} posts/s "
              f"({loads / theirs:.1f}x json.loads)")
    print(f"import omnichannel:         {import_time('omnichannel') * 1000:8.1f} ms")
    print(f"import omnichannel_x:       {import_time('omnichannel_x') * 1000:8.1f} ms")
    try:
        print(f"import tweepy:              {import_time('tweepy') * 1000:8.1f} ms")
    except subprocess.CalledProcessError:
        print("import tweepy:              not installed")


if __name__ == "__main__":
    main()
