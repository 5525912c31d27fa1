"""Benchmark: the cost of the HTTP layer over a bare httpx client, in the same run.

Both clients talk to the same in-process transport (no sockets), which answers
every request with a recorded Mastodon status body and its recorded rate-limit
headers, so what is measured is the client side only:

- ``httpx.AsyncClient.request`` (the baseline);
- ``ApiClient.request`` from ``omnichannel.http.open_client``: bearer auth,
  rate-limit header parsing into ``RateLimitState``, the retry policy's
  bookkeeping, and one structured log record per request.

Interleaved (the order rotates each repeat), ``--repeats`` repeats; prints min
and median microseconds per request, the ratio and the machine's load.

Run: ``.venv/bin/python bench/bench_http.py [--repeats 7] [--requests 2000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import anyio
import httpx
from pydantic import SecretStr

from omnichannel.http import BearerAuth, open_client, parse_mastodon_headers

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "mastodon" / "decoded"


def recorded_answer() -> tuple[bytes, dict[str, str]]:
    """A recorded status body and the rate-limit headers recorded with it."""
    data = json.loads((VECTORS / "mastodonpy__test_status_reply.json").read_text("utf-8"))
    for interaction in data["interactions"]:
        body = interaction["response_body"]
        if isinstance(body, dict) and "content" in body:
            headers = {
                name: value
                for name, value in interaction.get("response_headers", {}).items()
                if name.lower().startswith("x-ratelimit")
            }
            return json.dumps(body).encode(), headers
    raise SystemExit("no recorded status found in mastodonpy__test_status_reply.json")


def transport(body: bytes, headers: dict[str, str]) -> httpx.MockTransport:
    """Answer every request with the recorded status (fresh, far-future reset)."""
    answer = {**headers, "content-type": "application/json"}
    answer["x-ratelimit-remaining"] = "299"
    answer["x-ratelimit-reset"] = "2099-01-01T00:00:00.000000Z"
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body, headers=answer))


async def bare(requests: int, mock: httpx.MockTransport) -> float:
    async with httpx.AsyncClient(
        base_url="https://masto.test", transport=mock,
        headers={"authorization": "Bearer bench-token"},
    ) as client:
        start = time.perf_counter()
        for _ in range(requests):
            (await client.request("GET", "/api/v1/statuses/1")).json()
        return time.perf_counter() - start


async def ours(requests: int, mock: httpx.MockTransport) -> float:
    async with open_client(
        network="mastodon", base_url="https://masto.test", transport=mock,
        auth=BearerAuth(SecretStr("bench-token")), rate_limit_parser=parse_mastodon_headers,
        default_bucket="account",
    ) as client:
        start = time.perf_counter()
        for _ in range(requests):
            (await client.request("GET", "/api/v1/statuses/{id}", path_params={"id": "1"})).json()
        return time.perf_counter() - start


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    body, headers = recorded_answer()
    mock = transport(body, headers)
    await bare(200, mock)  # warm up both paths
    await ours(200, mock)
    print(f"load average before: {load()} ({os.cpu_count()} cpus)")
    runners = {"httpx.AsyncClient": bare, "omnichannel ApiClient": ours}
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(await runners[name](args.requests, mock) / args.requests)
    print(f"load average after:  {load()}")
    print(f"{args.repeats} repeats x {args.requests} requests, interleaved")
    print(f"{'':22} {'min us/req':>11} {'median':>8}")
    for name in names:
        low, mid = min(times[name]) * 1e6, statistics.median(times[name]) * 1e6
        print(f"{name:22} {low:11.1f} {mid:8.1f}")
    ratio_min = min(times[names[1]]) / min(times[names[0]])
    ratio_med = statistics.median(times[names[1]]) / statistics.median(times[names[0]])
    print(f"ApiClient time / httpx time: {ratio_min:.2f}x (min) {ratio_med:.2f}x (median)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    anyio.run(main, parser.parse_args())
