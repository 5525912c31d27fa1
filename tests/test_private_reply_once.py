"""One private reply per public message where the network says so, remembered in the store."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from tests.runtime_adapter import FakeNetwork, RuntimeAdapter, adapter_for, received

from omnichannel.actions import PrivateReply
from omnichannel.capabilities import Capabilities
from omnichannel.errors import PrivateReplyUsed
from omnichannel.hub import Hub
from omnichannel.store import SQLiteStore


class OnceAdapter(RuntimeAdapter):
    """The testnet adapter, on a network that allows one private reply per message (Meta)."""

    capabilities: ClassVar[Capabilities] = RuntimeAdapter.capabilities.model_copy(  # type: ignore[misc]
        update={"private_reply_once": True})


async def test_a_second_private_reply_is_refused_across_a_restart(tmp_path: Path) -> None:
    fake = FakeNetwork()
    adapter = adapter_for(fake, OnceAdapter)
    comment = received(fake, adapter, "my card was charged twice")
    dm_first = PrivateReply(network="testnet", to=comment, text="Hi! Could you DM your order?")
    async with SQLiteStore(tmp_path / "bot.db") as store:
        hub = Hub(adapters=[adapter], store=store)
        first = await hub.queue_as_agent(dm_first, by="agent:anna")
        # The same action again (a handler re-run, a retried request) is not a second reply.
        assert (await hub.queue_as_agent(dm_first, by="agent:anna")).key == first.key
    async with SQLiteStore(tmp_path / "bot.db") as store:  # a restart
        hub = Hub(adapters=[adapter], store=store)
        with pytest.raises(PrivateReplyUsed) as refused:
            await hub.queue_as_agent(
                PrivateReply(network="testnet", to=comment, text="Hello again, any news?"),
                by="agent:ben")
        assert refused.value.previous_key == first.key
        assert len(await store.list_outbox()) == 1
        other = received(fake, adapter, "mine too")
        await hub.queue_as_agent(PrivateReply(network="testnet", to=other, text="Hi there!"),
                                 by="agent:ben")
        assert len(await store.list_outbox()) == 2


async def test_networks_without_the_rule_allow_several(tmp_path: Path) -> None:
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    comment = received(fake, adapter, "hello")
    async with SQLiteStore(tmp_path / "bot.db") as store:
        hub = Hub(adapters=[adapter], store=store)
        for text in ("First private answer.", "Second private answer."):
            await hub.queue_as_agent(PrivateReply(network="testnet", to=comment, text=text),
                                     by="agent:anna")
        assert len(await store.list_outbox()) == 2


async def test_a_private_visibility_reply_counts_as_the_private_reply(tmp_path: Path) -> None:
    """``Reply(visibility="private")`` to a comment is its private reply: one of the two only."""
    from omnichannel.actions import Reply

    fake = FakeNetwork()
    adapter = adapter_for(fake, OnceAdapter)
    comment = received(fake, adapter, "where is my parcel?")
    async with SQLiteStore(tmp_path / "bot.db") as store:
        hub = Hub(adapters=[adapter], store=store)
        first = await hub.queue_as_agent(
            Reply(network="testnet", to=comment, text="Hi! I sent you a message.",
                  visibility="private"), by="agent:anna")
    async with SQLiteStore(tmp_path / "bot.db") as store:  # a restart
        hub = Hub(adapters=[adapter], store=store)
        with pytest.raises(PrivateReplyUsed) as refused:
            await hub.queue_as_agent(
                PrivateReply(network="testnet", to=comment, text="Any news?"), by="agent:ben")
        assert refused.value.previous_key == first.key
        # A public answer in the thread is still allowed.
        await hub.queue_as_agent(Reply(network="testnet", to=comment, text="Answered in DM."),
                                 by="agent:ben")
        assert len(await store.list_outbox()) == 2


async def test_a_private_reply_that_failed_for_good_leaves_room_for_another(
    tmp_path: Path,
) -> None:
    """The network refused the first private reply outright: it used nothing up, so a second may go.

    One that is still on its way (queued, retrying) or sent keeps the second refused.
    """
    fake = FakeNetwork()
    adapter = adapter_for(fake, OnceAdapter)
    comment = received(fake, adapter, "my card was charged twice")
    first = PrivateReply(network="testnet", to=comment, text="Hi! Could you DM your order?")
    second = PrivateReply(network="testnet", to=comment, text="Hi! Which order is it?")
    store = SQLiteStore(tmp_path / "bot.db")
    hub = Hub(adapters=[adapter], store=store)
    async with hub:
        queued = await hub.queue_as_agent(first, by="agent:anna")
        with pytest.raises(PrivateReplyUsed):  # the first is still on its way
            await hub.queue_as_agent(second, by="agent:anna")
        fake.faults.append("422")  # refused for good
        assert await hub.outbox.run_once() == 1
        failed = await store.get_outbox(queued.key)
        assert failed is not None
        assert failed.status == "failed"

        retried = await hub.queue_as_agent(second, by="agent:anna")
        assert await hub.outbox.run_once() == 1
        sent = await store.get_outbox(retried.key)
        assert sent is not None
        assert sent.status == "sent"
        with pytest.raises(PrivateReplyUsed):  # the one sent counts
            await hub.queue_as_agent(
                PrivateReply(network="testnet", to=comment, text="Hello again!"), by="agent:ben")
    assert [p["text"] for p in fake.posted] == ["Hi! Which order is it?"]
