"""The omnichannel conformance suite against the Mastodon sandbox, in-process and on loopback.

Mastodon delivers a reply only to the accounts its text mentions, so the
adapter puts the @mention of whom it answers in front of the text
(`MastodonAdapter.outgoing_text`). The suite compares stored text and fills
replies to the limit through that same hook, so every scenario runs unchanged.
"""

from __future__ import annotations

from omnichannel.testing.conformance import AdapterConformance
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


class TestMastodonConformance(AdapterConformance):
    adapter_class = MastodonAdapter
    sandbox_class = MastodonSandbox
    transport_mode = ("inprocess", "loopback")
