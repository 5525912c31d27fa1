"""One submit path: each action is checked once, saying who wrote it, then queued or held."""

from __future__ import annotations

from datetime import datetime

from tests.runtime_adapter import (
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
    running,
)

from omnichannel.actions import Action, Reply
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Delivery, Hub
from omnichannel.policy import AutoSend, HoldPublic
from omnichannel.store import MemoryStore


class CheckCountingAdapter(RuntimeAdapter):
    """The testnet adapter, remembering each capability check and its ``human_agent``."""

    checks: list[tuple[str, bool]]

    def check(
        self, action: Action, *, now: datetime | None = None, human_agent: bool = False
    ) -> None:
        self.checks.append((action.idempotency_key, human_agent))
        super().check(action, now=now, human_agent=human_agent)


def _setup(policy: AutoSend | HoldPublic) -> tuple[Hub, CheckCountingAdapter, FakeNetwork]:
    fake = FakeNetwork()
    adapter = adapter_for(fake, CheckCountingAdapter)
    assert isinstance(adapter, CheckCountingAdapter)
    adapter.checks = []
    return Hub(adapters=[adapter], store=MemoryStore(), policy=policy), adapter, fake


async def test_a_handler_reply_is_checked_once_as_automated_or_as_human_when_held() -> None:
    """Sent at once, a bot wrote it; held as a draft, a human will send it."""
    hub, adapter, fake = _setup(HoldPublic())
    deliveries: list[Delivery] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        deliveries.append(await ctx.reply("On it!"))

    async with running(hub, deliver=False):
        fake.customer_says("a private question", visibility="private")
        await eventually(lambda: len(deliveries) == 1)
        fake.customer_says("a public question")
        await eventually(lambda: len(deliveries) == 2)
        await hub.wait_idle()

    sent, held = deliveries
    assert (sent.status, held.status) == ("queued", "held")
    assert adapter.checks == [
        (sent.action.idempotency_key, False), (held.action.idempotency_key, True)
    ]


async def test_an_agent_send_and_an_approval_are_each_checked_once_as_human() -> None:
    hub, adapter, fake = _setup(HoldPublic())
    message = received(fake, adapter, "hello", visibility="private")
    async with running(hub, listen=False, deliver=False):
        item = await hub.queue_as_agent(
            Reply(network="testnet", to=message, text="Anna here."), by="agent:anna"
        )
        assert adapter.checks == [(item.key, True)]
        assert await hub.send(  # the earlier name: the same method, the same item
            Reply(network="testnet", to=message, text="Anna here.",
                  idempotency_key=item.key), by="agent:anna"
        ) == item
        adapter.checks.clear()
        public = received(fake, adapter, "in public")
        draft = await hub.drafts._hold(
            Reply(network="testnet", to=public, text="Thanks!"), event=None,
            origin="handler:h", note="check",
        )
        approved = await hub.drafts.approve(draft.id, by="agent:anna")
    assert adapter.checks == [(approved.key, True)]
