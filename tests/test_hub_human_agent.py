"""The human-agent window: a human may answer a direct message for longer than a bot may."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import pytest
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
    running,
)

from omnichannel.actions import Reply
from omnichannel.capabilities import Capabilities
from omnichannel.errors import WindowClosed
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Delivery, Hub
from omnichannel.model import Message
from omnichannel.policy import AutoSend, hold_when
from omnichannel.store import MemoryStore
from omnichannel.text import TextRule


class MetaLikeAdapter(RuntimeAdapter):
    """The testnet adapter with Meta's windows: 24 h for a bot, 7 days for a human agent."""

    capabilities: ClassVar[Capabilities] = RuntimeAdapter.capabilities.model_copy(  # type: ignore[misc]
        update={
            "text": TextRule.code_points(2000),
            "dm_window": timedelta(hours=24),
            "human_agent_window": timedelta(days=7),
        }
    )


def _setup(age: timedelta) -> tuple[FakeNetwork, Hub, Message]:
    """A hub over a Meta-like network and a customer DM written ``age`` ago."""
    fake = FakeNetwork()
    clock = FakeClock()
    adapter = adapter_for(fake, MetaLikeAdapter)
    hub = Hub(adapters=[adapter], store=MemoryStore(), policy=AutoSend(), clock=clock)
    dm = received(fake, adapter, "are you there?", visibility="private",
                  created_at=clock() - age)
    return fake, hub, dm


async def test_a_human_send_inside_the_human_agent_window_is_delivered() -> None:
    """hub.send by an agent three days after a DM passes every check and is delivered."""
    fake, hub, dm = _setup(timedelta(days=3))
    async with running(hub, listen=False):
        item = await hub.send(Reply(network="testnet", to=dm, text="Sorry, we are on it."),
                              by="agent:anna")
        await eventually(lambda: len(fake.posted) == 1)
    assert item.origin == "agent:anna"
    assert fake.posted[0]["text"] == "Sorry, we are on it."


async def test_a_human_send_after_the_human_agent_window_is_refused() -> None:
    """Eight days after the DM even a human agent may not answer it."""
    fake, hub, dm = _setup(timedelta(days=8))
    async with hub:
        with pytest.raises(WindowClosed):
            await hub.send(Reply(network="testnet", to=dm, text="Sorry!"), by="agent:anna")
    assert fake.posted == []


async def test_an_approved_draft_inside_the_human_agent_window_is_queued() -> None:
    """A draft approved by an agent three days after the DM is queued and delivered."""
    fake, hub, dm = _setup(timedelta(days=3))
    action = Reply(network="testnet", to=dm, text="A teammate will call you.")
    async with running(hub, listen=False):
        draft = await hub.drafts._hold(action, event=None, origin="handler:h", note="check")
        await hub.drafts.approve(draft.id, by="agent:ben")
        await eventually(lambda: len(fake.posted) == 1)


async def test_an_automated_reply_after_the_bot_window_is_refused() -> None:
    """The outbox refuses an automated reply after 24 h, and accepts it from a human."""
    _, hub, dm = _setup(timedelta(days=3))
    async with hub:
        with pytest.raises(WindowClosed):
            await hub.outbox.submit(Reply(network="testnet", to=dm, text="Bot here"),
                                    origin="handler:bot")
        with pytest.raises(WindowClosed):  # an approver's name alone does not make it human
            await hub.outbox.submit(Reply(network="testnet", to=dm, text="Bot here"),
                                    origin="handler:bot", approved_by="agent:anna")
        item = await hub.outbox.submit(Reply(network="testnet", to=dm, text="Anna here"),
                                       origin="agent:anna", human_agent=True)
    assert item.status == "pending"


async def test_a_handler_reply_after_the_bot_window_is_refused() -> None:
    """A handler (automated) answering a three-day-old DM gets WindowClosed, nothing is queued."""
    fake, hub, _ = _setup(timedelta(days=3))
    refused: list[BaseException] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        try:
            await ctx.reply("Automatic answer")
        except WindowClosed as exc:
            refused.append(exc)

    late = fake.inbox.pop()  # the old DM reaches the running hub late, not as history
    async with running(hub):
        fake.publish(late)
        await eventually(lambda: len(refused) == 1)
    assert fake.posted == []
    assert hub.statistics().total.actions_queued == 0


async def test_a_handler_reply_held_for_a_human_gets_the_human_agent_window() -> None:
    """A reply the policy holds is checked as a human's: drafted after 24 h, sent once approved."""
    fake, hub, _ = _setup(timedelta(days=3))
    hub.policy = hold_when(lambda event, action: True, reason="a human answers late DMs")
    outcomes: list[Delivery] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        outcomes.append(await ctx.reply("Sorry for the wait, Anna here."))

    late = fake.inbox.pop()  # the old DM reaches the running hub late, not as history
    async with running(hub):
        fake.publish(late)
        await eventually(lambda: len(outcomes) == 1)
        [delivery] = outcomes
        assert delivery.held
        assert delivery.draft is not None
        await hub.drafts.approve(delivery.draft.id, by="agent:anna")
        await eventually(lambda: len(fake.posted) == 1)


async def test_who_wrote_a_reply_is_stored_with_it_for_the_adapter() -> None:
    """The queued action says who wrote it, whatever the caller claimed: the adapter reads it.

    A bot's reply must never reach the network under a human-agent tag, even
    when it is delivered after the bot's window closed.
    """
    fake, hub, dm = _setup(timedelta(hours=1))
    queued: list[Delivery] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        queued.append(await ctx.reply("Bot here"))

    late = fake.inbox.pop()
    async with running(hub):
        fake.publish(late)
        await eventually(lambda: len(queued) == 1)
        [bot] = queued
        assert bot.item is not None
        agent = await hub.send(Reply(network="testnet", to=dm, text="Anna here"),
                               by="agent:anna")
        draft = await hub.drafts._hold(Reply(network="testnet", to=dm, text="Ben here"),
                                       event=None, origin="handler:h", note="check")
        approved = await hub.drafts.approve(draft.id, by="agent:ben")
        # Code queuing directly that claims a human wrote it, without saying so, is corrected.
        claimed = await hub.outbox.submit(
            Reply(network="testnet", to=dm, text="Script here", human_agent=True),
            origin="script:nightly")
        await eventually(lambda: len(fake.posted) == 4)
        stored = [await hub.store.get_outbox(key)
                  for key in (bot.item.key, agent.key, approved.key, claimed.key)]
    writers = {item.action.text: item.action.human_agent  # type: ignore[union-attr]
               for item in stored if item is not None}
    assert writers == {"Bot here": False, "Anna here": True, "Ben here": True,
                       "Script here": False}
