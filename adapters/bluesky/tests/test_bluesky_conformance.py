"""The shared adapter conformance suite, run against the Bluesky sandbox both ways."""

from __future__ import annotations

from omnichannel.testing.conformance import AdapterConformance
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky.sandbox import BlueskySandbox


class TestBlueskyConformance(AdapterConformance):
    """Every scenario, in-process and over loopback HTTP (and WebSocket for the stream)."""

    adapter_class = BlueskyAdapter
    sandbox_class = BlueskySandbox
    transport_mode = ("inprocess", "loopback")
