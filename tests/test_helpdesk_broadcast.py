"""Broadcast fitted to each network's rule, once per key; the public-to-private handoff."""

from __future__ import annotations

import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, running

from omnichannel.actions import Post, PrivateReply, Reply
from omnichannel.errors import ConfigurationError
from omnichannel.events import MessageReceived
from omnichannel.helpdesk import Workflow, broadcast, fit_text
from omnichannel.hub import Context, Hub
from omnichannel.model import Message
from omnichannel.store import MemoryStore
from omnichannel.text import TextRule

OUTAGE = ("We're having trouble with card payments in the app and on the web 😞 Our team is on "
          "it and we'll post an update within the hour. Orders already placed are safe.")
LINK = "https://status.example.com/incidents/4411"


def test_a_text_that_fits_is_kept_whole_with_its_link() -> None:
    assert fit_text("Back to normal ✅", TextRule.mastodon(), link=LINK) == (
        f"Back to normal ✅ {LINK}")


@pytest.mark.parametrize("rule", [
    TextRule.graphemes(100), TextRule.bluesky_post(), TextRule.code_points(120),
    TextRule(unit="graphemes", limit=90, url_length=23),
])
def test_a_long_text_is_cut_at_a_word_with_the_link_kept(rule: TextRule) -> None:
    fitted = fit_text(OUTAGE * 3, rule, link=LINK)
    assert rule.fits(fitted)
    body, link = fitted.rsplit(" ", 1)
    assert link == LINK
    assert body.endswith("…")
    assert (OUTAGE * 3).startswith(body[:-1])
    assert (OUTAGE * 3)[len(body) - 1] == " "  # cut where a word ended


def test_emoji_are_never_cut_and_a_link_that_cannot_fit_is_an_error() -> None:
    family = "👨‍👩‍👧‍👦" * 50
    fitted = fit_text(family, TextRule.graphemes(10))
    assert fitted == "👨‍👩‍👧‍👦" * 9 + "…"
    with pytest.raises(ConfigurationError, match="link"):
        fit_text("x", TextRule.graphemes(10), link=LINK)


async def test_broadcast_posts_once_per_network_per_key() -> None:
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    async with running(hub, listen=False):
        first = await broadcast(hub, OUTAGE, key="outage-1", by="agent:anna", link=LINK)
        again = await broadcast(hub, OUTAGE, key="outage-1", by="agent:anna", link=LINK)
        await hub.wait_idle()
    assert list(first) == ["testnet"]
    assert first["testnet"].key == again["testnet"].key
    assert isinstance(first["testnet"].action, Post)
    assert len(fake.posted) == 1
    rule = hub.adapters["testnet"].capabilities.text
    assert rule.fits(fake.posted[0]["text"])
    assert fake.posted[0]["text"].endswith(LINK)
    with pytest.raises(ConfigurationError, match="nowhere"):
        await broadcast(hub, "hi", key="k", by="agent:anna", networks=["nowhere"])


async def test_hand_off_answers_in_public_and_continues_in_private() -> None:
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    workflow = Workflow(MemoryStore())
    seen: list[Message] = []

    @hub.on(MessageReceived)
    async def keep(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message)

    fake.customer_says("my card was charged twice, order 4411!!", author="gus")
    async with workflow.store, running(hub, listen=False):  # type: ignore[attr-defined]
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()
        [message] = seen
        public, private = await workflow.hand_off(
            hub, message, public="So sorry, Gus! We've sent you a DM 💬",
            private="Hi Gus, please send the last 4 digits of the card so we can refund.",
            agent="anna",
        )
        await hub.wait_idle()
        history = await workflow.history(message.conversation)
    assert isinstance(public.action, Reply)
    assert isinstance(private.action, PrivateReply)
    assert public.action.visibility == "public"
    assert ("handoff", message.ref.id, message.author.ref.id) in [
        (c.what, c.old, c.new) for c in history]
    by_text = {p["text"]: p for p in fake.posted}
    assert len(by_text) == 2
    assert by_text["So sorry, Gus! We've sent you a DM 💬"]["in_reply_to"] == message.ref.id
    dm = by_text["Hi Gus, please send the last 4 digits of the card so we can refund."]
    assert dm["conversation"].startswith("dm-")


async def test_replies_to_a_broadcast_are_collected_as_one_incident() -> None:
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    workflow = Workflow(MemoryStore())
    hub.use(workflow.middleware)

    @hub.on(MessageReceived)
    async def noop(event: MessageReceived, ctx: Context) -> None:
        pass

    async with workflow.store, running(hub, listen=False):  # type: ignore[attr-defined]
        queued = await broadcast(hub, OUTAGE, key="outage-2", by="agent:anna", link=LINK)
        assert await workflow.track_incident(hub, queued, name="payments") == []  # not sent yet
        await hub.wait_idle()
        [thread] = await workflow.track_incident(hub, queued, name="payments")
        [post] = fake.posted
        fake.customer_says("is it fixed yet?", author="hana", conversation=post["conversation"],
                           in_reply_to=post["id"])
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()
        incident = await workflow.queue(queue="incident:payments")
    assert [s.conversation for s in incident] == [thread]
    assert incident[0].status == "open"  # the customer's reply reopened it for the team
    assert "incident:payments" in incident[0].tags
