"""A comment's one private reply is remembered in the store: refused after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnichannel.actions import PrivateReply, Reply
from omnichannel.errors import PrivateReplyUsed
from omnichannel.events import MessageReceived
from omnichannel.hub import Hub
from omnichannel.store import SQLiteStore
from omnichannel_meta import FacebookAdapter
from omnichannel_meta.sandbox import FacebookSandbox


async def test_a_second_private_reply_is_refused_after_a_restart(tmp_path: Path) -> None:
    """Sent once; after a restart, a PrivateReply or a private Reply is refused, no request."""
    sandbox = FacebookSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("Sale today"), "price for the blue one?")

    def page() -> FacebookAdapter:
        return FacebookAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                               clock=sandbox.clock.peek)

    first = page()
    async with first:
        batch = await first.poll(None)
    [message] = [e.message for e in batch.events
                 if isinstance(e, MessageReceived) and e.message.ref.id == comment.id]
    async with SQLiteStore(tmp_path / "bot.db") as store:
        hub = Hub(adapters=[first], store=store, clock=sandbox.clock.peek)
        async with hub:
            item = await hub.queue_as_agent(
                PrivateReply(network="facebook", to=message, text="Sent you a message!"),
                by="agent:anna")
            await hub.outbox.run_once()
            stored = await store.get_outbox(item.key)
            assert stored is not None
            assert stored.status == "sent"
    before = sandbox.request_count("POST /*/messages")
    async with SQLiteStore(tmp_path / "bot.db") as store:  # a restart: new hub, new adapter
        hub = Hub(adapters=[page()], store=store, clock=sandbox.clock.peek)
        async with hub:
            for again in (
                PrivateReply(network="facebook", to=message, text="Any news?"),
                Reply(network="facebook", to=message, text="Psst, check your inbox",
                      visibility="private"),
            ):
                with pytest.raises(PrivateReplyUsed):
                    await hub.queue_as_agent(again, by="agent:ben")
            assert len(await store.list_outbox()) == 1
    assert sandbox.request_count("POST /*/messages") == before
    assert [r.text for r in sandbox.sent() if r.private] == ["Sent you a message!"]
