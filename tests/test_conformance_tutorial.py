"""The tutorial's Chirp adapter passes the whole conformance suite, in-process and on loopback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

# --8<-- [start:suite]
from omnichannel.testing.conformance import AdapterConformance  # noqa: E402
from omnichannel_chirp import ChirpAdapter  # noqa: E402
from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402


class TestChirpConformance(AdapterConformance):
    """Every conformance scenario against Chirp, through both transports."""

    adapter_class = ChirpAdapter
    sandbox_class = ChirpSandbox
    transport_mode = ("inprocess", "loopback")
# --8<-- [end:suite]


async def test_try_sandbox_prints_utf16_offsets(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial's first sandbox script prints the mention and a link shifted by the emoji."""
    spec = importlib.util.spec_from_file_location("try_sandbox", TUTORIAL / "try_sandbox.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.main()
    assert capsys.readouterr().out.splitlines() == [
        "alice wrote: @shop where is my parcel? 📦 https://example.com/o/7",
        "mention 0 5",
        "link 29 52",
    ]


async def test_break_it_shows_each_mistake_caught(capsys: pytest.CaptureFixture[str]) -> None:
    """break_it.py: the offsets scenario fails, a lost reply is found, a bad post is rejected."""
    spec = importlib.util.spec_from_file_location("break_it", TUTORIAL / "break_it.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.main()
    assert capsys.readouterr().out.splitlines() == [
        "Broken fails test_inbound_entities_keep_offsets",
        "lost answer: AmbiguousDelivery, then find_sent found the reply",
        "replies on Chirp: 1",
        "delivered: ['@shop where is my parcel?']",
        "rejected: mentions.0.author - Field required",
    ]
