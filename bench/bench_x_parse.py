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

Runs are interleaved (the order rotates each repeat), repeated (``--repeats``,
7 by default) and printed as min and median, with the load average before
and after. Run: ``.venv/bin/python bench/bench_x_parse.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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


def interleaved(runs: dict[str, Callable[[], object]], *, repeats: int,
                calls: int) -> dict[str, list[float]]:
    """Seconds per call of each function: ``repeats`` rounds, the order rotating each round."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            fn = runs[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def import_time(module: str) -> float:
    """Median seconds to run the import statement ``module`` in a fresh interpreter (5 runs)."""
    times = []
    statement = module if module.startswith(("import ", "from ")) else f"import {module}"
    # Bytecode caching on and one warm-up run, as bench_import.py does: an
    # installed package has its .pyc files.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", statement], capture_output=True, check=False,  # noqa: S603
                   env=env)
    for _ in range(5):
        code = f"import time; s = time.perf_counter(); {statement}; " \
               "print(time.perf_counter() - s)"
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True,
            check=True, env=env)
        times.append(float(done.stdout))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="pages parsed per measurement")
    args = parser.parse_args()
    page = build_page()
    events = XAdapter.parse_payload(page, path="/2/users/783214/mentions", account="783214")
    assert len(events) == PAGE_SIZE
    print(f"load average before: {os.getloadavg()}")
    print(f"page: {PAGE_SIZE} posts, {len(page)} bytes; {args.repeats} interleaved repeats")
    runs: dict[str, Callable[[], object]] = {
        "json.loads": lambda: json.loads(page),
        "XAdapter.parse_payload": lambda: XAdapter.parse_payload(
            page, path="/2/users/783214/mentions"),
    }
    try:
        import tweepy
    except ImportError:
        print("tweepy: not installed (pip install tweepy to compare)")
    else:
        def with_tweepy() -> None:
            body = json.loads(page)
            for item in body["data"]:
                tweepy.Tweet(item)
            for user in body["includes"]["users"]:
                tweepy.User(user)

        runs["tweepy Tweet/User models"] = with_tweepy
    times = interleaved(runs, repeats=args.repeats, calls=args.calls)
    base = statistics.median(times["json.loads"])
    for name, seconds in times.items():
        low, mid = min(seconds), statistics.median(seconds)
        print(f"{name:<26} min {PAGE_SIZE / low:10,.0f} posts/s, median "
              f"{PAGE_SIZE / mid:10,.0f} posts/s ({mid / base:.1f}x json.loads)")
    print(f"import omnichannel:         {import_time('omnichannel') * 1000:8.1f} ms (median of 5)")
    print(f"import omnichannel_x:       {import_time('omnichannel_x') * 1000:8.1f} ms "
          "(names load on first use)")
    adapter = import_time("from omnichannel_x import XAdapter") * 1000
    print(f"from omnichannel_x import XAdapter: {adapter:8.1f} ms")
    try:
        print(f"import tweepy:              {import_time('tweepy') * 1000:8.1f} ms")
    except subprocess.CalledProcessError:
        print("import tweepy:              not installed")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
