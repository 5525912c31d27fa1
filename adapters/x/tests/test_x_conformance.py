"""The omnichannel conformance suite against the X sandbox, in-process and on loopback.

The sandbox runs on the self-serve ``pay_per_use`` tier with X's reply rule;
it lets us answer a reply to our own post (``thread_replies_summon``), and its
settings say so to the adapter, since the suite replies in threads. The X
Activity API stream (``activity_stream``, off by default) is on, opened with
the sandbox's app-only bearer token, so the stream scenarios run too.
"""

from __future__ import annotations

import httpx

from omnichannel.adapter import Adapter
from omnichannel.testing import Sandbox
from omnichannel.testing.conformance import AdapterConformance
from omnichannel_x import XAdapter
from omnichannel_x.sandbox import XSandbox


class TestXConformance(AdapterConformance):
    adapter_class = XAdapter
    sandbox_class = XSandbox
    transport_mode = ("inprocess", "loopback")

    def make_sandbox(self, *, seed: int) -> Sandbox:
        sandbox = XSandbox(seed=seed)
        sandbox.stream_lifetime = 5.0  # a persistent connection, as X's
        return sandbox

    def make_adapter(
        self, sandbox: Sandbox, *, base_url: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> Adapter:
        settings = {**sandbox.adapter_settings(base_url=base_url), "activity_stream": True}
        return XAdapter(settings, transport=transport)
