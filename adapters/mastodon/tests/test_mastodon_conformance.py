"""The omnichannel conformance suite against the Mastodon sandbox, in-process and on loopback.

Mastodon delivers a reply only to the accounts its text mentions, so the
adapter puts the @mention of whom it answers in front of the text
(`MastodonAdapter.outgoing_text`). The scenarios that compare the stored text
with the action's text, or fill a reply to the limit, are run here in their
Mastodon form: the same steps, with the addressed text expected.
"""

from __future__ import annotations

from typing import cast

import pytest
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon.sandbox import MastodonSandbox

from omnichannel.actions import PrivateReply, Sent
from omnichannel.errors import AmbiguousDelivery, TextTooLong
from omnichannel.testing.conformance import AdapterConformance, Conformance


def _mastodon(conformance: Conformance) -> MastodonAdapter:
    return cast(MastodonAdapter, conformance.adapter)


class TestMastodonConformance(AdapterConformance):
    adapter_class = MastodonAdapter
    sandbox_class = MastodonSandbox
    transport_mode = ("inprocess", "loopback")

    async def test_replies_in_thread(self, conformance: Conformance) -> None:
        """A reply lands publicly under the message replied to, addressed to its author."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        them = sandbox.mention_of(customer)
        first = await conformance.receive(
            sandbox.customer_mention("hello?", author=customer), what="the mention")
        ours = await conformance.act(conformance.reply_action(first.message, "Hi, can we help?"))
        record = conformance.record(ours)
        assert record.in_reply_to == first.message.ref.id
        assert not record.private
        deeper = sandbox.customer_reply(ours.ref.id, "my order is late", author=customer)
        second = await conformance.receive(deeper, what="the customer's answer")
        again = await conformance.act(conformance.reply_action(second.message, "Checking now."))
        record = conformance.record(again)
        assert record.text == f"{them} Checking now."
        assert record.in_reply_to == deeper.id
        assert not record.private
        assert record.conversation == sandbox.world.post(deeper.id).root
        assert again.conversation == first.message.conversation

    async def test_replies_to_direct_message_privately(self, conformance: Conformance) -> None:
        """A reply to a direct message stays direct and is addressed to its author."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_dm("refund please", author=customer), what="the direct message")
        sent = await conformance.act(conformance.reply_action(event.message, "On it, sorry!"))
        record = conformance.record(sent)
        assert record.private
        assert record.recipient == customer.id
        assert record.text == f"{sandbox.mention_of(customer)} On it, sorry!"
        assert sent.conversation == event.message.conversation

    async def test_replies_privately(self, conformance: Conformance) -> None:
        """A private reply to a public mention is a direct status to its author."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_mention("my card was charged twice", author=customer),
            what="the mention")
        action = PrivateReply(network=conformance.network, to=event.message,
                              text="Let's sort this privately.")
        record = conformance.record(await conformance.act(action))
        assert record.private
        assert record.recipient == customer.id
        assert record.text == f"{sandbox.mention_of(customer)} {action.text}"

    async def test_too_long_reply_fails_before_any_request(
        self, conformance: Conformance
    ) -> None:
        """A reply at the limit, mention included, lands; one more character fails unsent."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_mention("hi", author=customer), what="the mention")
        limit = conformance.capabilities.text.limit
        room = limit - len(f"{sandbox.mention_of(customer)} ")
        at_limit = conformance.reply_action(event.message, "a" * room)
        assert len(_mastodon(conformance).outgoing_text(at_limit)) == limit
        record = conformance.record(await conformance.act(at_limit))
        assert record.text.endswith(at_limit.text)
        over = conformance.reply_action(event.message, "a" * (room + 1))
        before = sandbox.request_count()
        with pytest.raises(TextTooLong) as info:
            await conformance.adapter.send(over)
        assert info.value.length == limit + 1
        assert sandbox.request_count() == before

    async def test_rate_limit_is_waited_out(self, conformance: Conformance) -> None:
        """An exhausted rate limit is waited out: the reply lands once."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("quick!"), what="the mention")
        sandbox.exhaust_rate_limits(reset_in=self.rate_limit_reset)
        action = conformance.reply_action(event.message, "Here!")
        sent = await conformance.act(action)
        assert conformance.record(sent).in_reply_to == event.message.ref.id
        text = _mastodon(conformance).outgoing_text(action)
        assert [r.text for r in sandbox.sent()].count(text) == 1
        assert sandbox.served(429) >= 1

    async def test_lost_response_does_not_double_post(self, conformance: Conformance) -> None:
        """A reply whose response was lost is found again, never posted twice."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("hello"), what="the mention")
        sandbox.faults.lose_response("POST /api/v1/statuses", times=1)
        action = conformance.reply_action(event.message, "We're on it 🛠️")
        sent: Sent | None
        try:
            sent = await conformance.act(action)
        except AmbiguousDelivery:
            sent = None
        assert any(r.fault == "lost_response" for r in sandbox.requests)
        if sent is None:
            sent = await conformance.adapter.find_sent(action)
            assert sent is not None
            assert sent.idempotency_key == action.idempotency_key
        again = await conformance.act(action)
        assert again.ref.id == sent.ref.id
        text = _mastodon(conformance).outgoing_text(action)
        copies = [r for r in sandbox.sent() if r.text == text]
        assert [c.id for c in copies] == [sent.ref.id]
        assert copies[0].in_reply_to == event.message.ref.id

    async def test_outbox_resend_after_lost_response_posts_once(
        self, conformance: Conformance
    ) -> None:
        """Reconcile-then-resend, as the outbox does, leaves exactly one copy."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("status?"), what="the mention")
        sandbox.faults.lose_response("POST /api/v1/statuses", times=1)
        action = conformance.reply_action(event.message, "Shipped today 🚚")
        try:
            await conformance.act(action)
        except AmbiguousDelivery:
            if await conformance.adapter.find_sent(action) is None:
                await conformance.act(action)
        text = _mastodon(conformance).outgoing_text(action)
        assert [r.text for r in sandbox.sent()].count(text) == 1

