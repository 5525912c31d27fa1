"""The omnichannel conformance suite against the X sandbox, in-process and on loopback.

The sandbox runs on the self-serve ``pay_per_use`` tier with X's reply rule;
it lets us answer a reply to our own post (``thread_replies_summon``), and its
settings say so to the adapter, since the suite replies in threads.
"""

from __future__ import annotations

from omnichannel.testing.conformance import AdapterConformance
from omnichannel_x import XAdapter
from omnichannel_x.sandbox import XSandbox


class TestXConformance(AdapterConformance):
    adapter_class = XAdapter
    sandbox_class = XSandbox
    transport_mode = ("inprocess", "loopback")
