"""The shared adapter conformance suite, run against the Bluesky sandbox both ways."""

from __future__ import annotations

import pytest

from omnichannel.testing.conformance import AdapterConformance, Conformance
from omnichannel_bluesky import BlueskyAdapter
from omnichannel_bluesky.sandbox import BlueskySandbox


class TestBlueskyConformance(AdapterConformance):
    """Every scenario, in-process and over loopback HTTP (and WebSocket for the stream)."""

    adapter_class = BlueskyAdapter
    sandbox_class = BlueskySandbox
    transport_mode = ("inprocess", "loopback")

    @pytest.mark.xfail(strict=True, reason=(
        "known defect: _find_chat answers 'absent' when our newest chat message is "
        "another one (a chat reply is sent twice after a lost response)"))
    async def test_find_sent_finds_a_direct_reply_among_decoys(
        self, conformance: Conformance
    ) -> None:
        """Chat find_sent looks at our newest message only (known defect)."""
        await super().test_find_sent_finds_a_direct_reply_among_decoys(conformance)

    @pytest.mark.xfail(strict=True, reason=(
        "known defect: _poll_notifications reads at most _MAX_PAGES = 10 pages between two "
        "polls and drops older notifications"))
    async def test_burst_larger_than_a_page_is_delivered_whole(
        self, conformance: Conformance
    ) -> None:
        """Notifications beyond 10 pages are dropped (known defect)."""
        await super().test_burst_larger_than_a_page_is_delivered_whole(conformance)
