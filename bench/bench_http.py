"""Benchmark: the cost of the HTTP layer over a bare httpx client, in the same run.

Both clients talk to the same in-process transport (no sockets), which answers
every request with a recorded Mastodon status body and its recorded rate-limit
headers, so what is measured is the client side only:

- ``httpx.AsyncClient.request`` (the baseline);
- ``ApiClient.request`` from ``omnichannel.http.open_client``: bearer auth,
  rate-limit header parsing into ``RateLimitState``, the retry policy's
  bookkeeping, and one structured log record per request.

Prints requests per second for each and the ratio.

Run: ``.venv/bin/python bench/bench_http.py [--requests 5000]``.
"""

from __future__ import annotations

import argparse
import json
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


async def main(args: argparse.Namespace) -> None:
    body, headers = recorded_answer()
    mock = transport(body, headers)
    await bare(200, mock)  # warm up both paths
    await ours(200, mock)
    rounds = [(await bare(args.requests, mock), await ours(args.requests, mock)) for _ in range(3)]
    base = min(r[0] for r in rounds)
    mine = min(r[1] for r in rounds)
    print(f"requests per round: {args.requests} (best of 3 rounds)")
    for name, seconds in (("httpx.AsyncClient", base), ("omnichannel ApiClient", mine)):
        rate, micros = args.requests / seconds, seconds / args.requests * 1e6
        print(f"{name:22s} {rate:10.0f} req/s  {micros:7.1f} us/req")
    print(f"ratio (ApiClient time / httpx time): {mine / base:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    anyio.run(main, parser.parse_args())
