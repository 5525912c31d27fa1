"""Fixtures for the Bluesky adapter tests: recorded vectors and the anyio backend."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors" / "bluesky"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on ``$OMNICHANNEL_TEST_BACKEND`` (asyncio unless CI asks for trio)."""
    backend = os.environ.get("OMNICHANNEL_TEST_BACKEND", "asyncio")
    if backend not in ("asyncio", "trio"):
        raise pytest.UsageError(
            f"OMNICHANNEL_TEST_BACKEND must be asyncio or trio, not {backend!r}"
        )
    return backend


def _interactions(name: str) -> list[dict[str, Any]]:
    path = VECTORS / "decoded" / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"recorded vector not found: {path}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return list(data["interactions"])


@pytest.fixture
def interactions() -> Callable[[str], list[dict[str, Any]]]:
    """The decoded request/response pairs of a recorded bskyr cassette, by name."""
    return _interactions


@pytest.fixture
def recorded() -> Callable[..., Any]:
    """``recorded(name, index=-1)``: one recorded response body (default: the last)."""

    def body(name: str, index: int = -1) -> Any:
        return _interactions(name)[index]["response_body"]

    return body


@pytest.fixture
def jetstream_lines() -> Callable[[str], list[str]]:
    """``jetstream_lines("golden_v1")``: the lines of a recorded Jetstream capture."""

    def lines(name: str) -> list[str]:
        path = VECTORS / f"jetstream__{name}.jsonl"
        if not path.is_file():
            pytest.fail(f"recorded vector not found: {path}")
        text = path.read_text(encoding="utf-8")
        return [line for line in text.splitlines() if line.strip()]

    return lines


@pytest.fixture
def vector_file() -> Callable[[str], Any]:
    """``vector_file("marshalx__post_record.json")``: a recorded JSON file, decoded."""

    def load(name: str) -> Any:
        path = VECTORS / name
        if not path.is_file():
            pytest.fail(f"recorded vector not found: {path}")
        return json.loads(path.read_text(encoding="utf-8"))

    return load
