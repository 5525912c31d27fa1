"""The shared adapter conformance suite, run against the Bluesky sandbox both ways."""

from __future__ import annotations

from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky.sandbox import BlueskySandbox

from omnichannel.testing.conformance import AdapterConformance


class TestBlueskyConformance(AdapterConformance):
    """Every scenario, in-process and over loopback HTTP (and WebSocket for the stream)."""

    adapter_class = BlueskyAdapter
    sandbox_class = BlueskySandbox
    transport_mode = ("inprocess", "loopback")
