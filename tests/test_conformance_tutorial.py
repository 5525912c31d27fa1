"""The tutorial's Chirp adapter passes the whole conformance suite, in-process and on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel_chirp import ChirpAdapter  # noqa: E402
from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402

from omnichannel.testing.conformance import AdapterConformance  # noqa: E402


class TestChirpConformance(AdapterConformance):
    """Every conformance scenario against Chirp, through both transports."""

    adapter_class = ChirpAdapter
    sandbox_class = ChirpSandbox
    transport_mode = ("inprocess", "loopback")
