"""Reactions to DMs: ``sender_action: react`` on the Send API, Messenger and Instagram."""

from __future__ import annotations

import anyio
import pytest

from omnichannel.actions import React
from omnichannel.errors import CapabilityNotSupported
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.model import Ref
from omnichannel.store import MemoryStore
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox


@pytest.mark.parametrize("kind", ["facebook", "instagram"])
async def test_a_handler_hearts_a_dm_through_the_sandbox(kind: str) -> None:
    """``ctx.react("love")`` on a DM names its conversation; the Send API puts the heart on it."""
    sandbox: FacebookSandbox | InstagramSandbox
    adapter: FacebookAdapter | InstagramAdapter
    if kind == "facebook":
        sandbox = FacebookSandbox()
        adapter = FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                                  clock=sandbox.clock.peek)
    else:
        sandbox = InstagramSandbox()
        adapter = InstagramAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                                   clock=sandbox.clock.peek)
    dm = sandbox.customer_dm("my parcel came today, it's perfect")
    hub = Hub(adapters=[adapter], store=MemoryStore())
    reacted: list[React] = []

    @hub.on(MessageReceived)
    async def heart(event: MessageReceived, ctx: Context) -> None:
        delivery = await ctx.react("love")
        assert isinstance(delivery.action, React)
        reacted.append(delivery.action)

    async with hub, anyio.create_task_group() as tg:
        await tg.start(hub.run)
        batch = await adapter.poll(None)
        await hub.ingest(kind, batch.events)
        await hub.wait_idle()
        [item] = await hub.store.list_outbox()
        hub.stop()
    assert item.status == "sent", item.last_error
    [action] = reacted
    assert action.conversation is not None
    assert action.target.id == dm.id
    assert sandbox.dm_reactions == {dm.id: "love"}
    assert not sandbox.sent()  # a reaction, no message


async def test_dm_reactions_promise_nothing_about_comments() -> None:
    """Instagram hearts DMs but reacts to no comment; other DM reactions are refused early."""
    caps = InstagramAdapter.capabilities
    assert caps.dm_reactions == ("love",)
    assert caps.reactions == ()
    target = Ref(network="instagram", id="c1")
    with pytest.raises(CapabilityNotSupported) as public:
        caps.check(React(network="instagram", target=target, reaction="love"),
                   network="instagram")
    assert public.value.capability == "react"
    with pytest.raises(CapabilityNotSupported) as thumbs:
        caps.check(React(network="instagram", target=target, reaction="👍",
                         conversation=Ref(network="instagram", id="p1")), network="instagram")
    assert thumbs.value.capability == "dm_reactions"
    caps.check(React(network="instagram", target=target, reaction="love",
                     conversation=Ref(network="instagram", id="p1")), network="instagram")
