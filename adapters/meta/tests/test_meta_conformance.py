"""The omnichannel conformance suite against the Facebook and Instagram sandboxes, both ways.

The adapter is given the sandbox's virtual clock, so Meta's windows (24 hours
for DMs, 7 days for private replies) are judged in the sandbox's time.
"""

from __future__ import annotations

import httpx

from omnichannel.adapter import Adapter
from omnichannel.testing import Sandbox
from omnichannel.testing.conformance import AdapterConformance
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox


class TestFacebookConformance(AdapterConformance):
    adapter_class = FacebookAdapter
    sandbox_class = FacebookSandbox
    transport_mode = ("inprocess", "loopback")

    def make_adapter(
        self, sandbox: Sandbox, *, base_url: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> Adapter:
        return FacebookAdapter(sandbox.adapter_settings(base_url=base_url), transport=transport,
                               clock=sandbox.clock.peek)


class TestInstagramConformance(AdapterConformance):
    adapter_class = InstagramAdapter
    sandbox_class = InstagramSandbox
    transport_mode = ("inprocess", "loopback")

    def make_adapter(
        self, sandbox: Sandbox, *, base_url: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> Adapter:
        return InstagramAdapter(sandbox.adapter_settings(base_url=base_url),
                                transport=transport, clock=sandbox.clock.peek)
