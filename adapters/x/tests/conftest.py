"""Fixtures for the X adapter's tests: the recorded payloads and the async backend."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "twitter"


class Recording:
    """The decoded interactions of one recorded tweepy cassette."""

    def __init__(self, name: str) -> None:
        path = VECTORS / "decoded" / f"tweepy__{name}.json"
        if not path.is_file():
            pytest.fail(f"recorded vector not found: {path}")
        self.name = name
        self.interactions: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))[
            "interactions"
        ]

    def find(self, method: str, path: str, *, nth: int = 0) -> dict[str, Any]:
        """The ``nth`` interaction whose method and URL path match."""
        hits = [
            i for i in self.interactions
            if i["method"] == method and urlsplit(i["uri"]).path.rstrip("/") == path.rstrip("/")
        ]
        if len(hits) <= nth:
            pytest.fail(f"{self.name}: no interaction {method} {path} #{nth}")
        return hits[nth]

    def body(self, method: str, path: str, *, nth: int = 0) -> Any:
        """The response body of the ``nth`` matching interaction."""
        return self.find(method, path, nth=nth)["response_body"]

    def raw(self, method: str, path: str, *, nth: int = 0) -> bytes:
        """The response body as JSON bytes, non-ASCII escaped as X sends it."""
        return json.dumps(self.body(method, path, nth=nth)).encode("ascii")


class Vectors:
    """Opens recordings by test name (``"test_client_get_users_mentions"``)."""

    def __call__(self, name: str) -> Recording:
        return Recording(name)


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on ``$OMNICHANNEL_TEST_BACKEND`` (asyncio unless CI asks for trio)."""
    backend = os.environ.get("OMNICHANNEL_TEST_BACKEND", "asyncio")
    if backend not in ("asyncio", "trio"):
        raise pytest.UsageError(
            f"OMNICHANNEL_TEST_BACKEND must be asyncio or trio, not {backend!r}"
        )
    return backend


@pytest.fixture
def recorded() -> Vectors:
    """Opens tweepy's recorded cassettes by test name."""
    if not VECTORS.is_dir():
        pytest.fail(f"recorded vectors not found at {VECTORS}")
    return Vectors()
