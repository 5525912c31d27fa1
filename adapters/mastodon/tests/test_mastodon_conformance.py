"""The omnichannel conformance suite against the Mastodon sandbox, in-process and on loopback.

Mastodon delivers a reply only to the accounts its text mentions, so the
adapter puts the @mention of whom it answers in front of the text
(`MastodonAdapter.outgoing_text`). The suite compares stored text and fills
replies to the limit through that same hook, so every scenario runs unchanged.
"""

from __future__ import annotations

import pytest

from omnichannel.testing.conformance import AdapterConformance
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox


class TestMastodonConformance(AdapterConformance):
    adapter_class = MastodonAdapter
    sandbox_class = MastodonSandbox
    transport_mode = ("inprocess", "loopback")


class QuietMastodon(MastodonAdapter):
    """Delivers edits and deletions but does not declare them."""

    capabilities = MastodonAdapter.capabilities.model_copy(
        update={"inbound_edits": False, "inbound_deletes": False})


class _QuietSuite(AdapterConformance):
    adapter_class = QuietMastodon
    sandbox_class = MastodonSandbox


@pytest.mark.filterwarnings("ignore:Async generator 'httpx.:ResourceWarning")
async def test_undeclared_but_working_edits_fail_the_scenario() -> None:
    """Not declaring what the sandbox shows working does not skip the edits scenario."""
    suite = _QuietSuite()
    async with suite.open_conformance("inprocess") as env:
        with pytest.raises(AssertionError, match="inbound_edits works but is not declared"):
            await suite.test_inbound_edits_and_deletes(env)
