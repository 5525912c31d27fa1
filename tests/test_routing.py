"""Routers: handlers grouped in their own modules, included in a hub or a bot."""

from __future__ import annotations

import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, eventually, running

from omnichannel.bot import Bot
from omnichannel.errors import ConfigurationError
from omnichannel.events import MessageReceived, ReactionAdded
from omnichannel.hub import Context, Hub
from omnichannel.routing import Router
from omnichannel.store import MemoryStore


async def test_an_included_router_runs_its_handlers_where_it_was_included() -> None:
    """Hub handlers and an included router's run in registration order, late ones too."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    billing = Router("billing")
    calls: list[str] = []

    @hub.on(MessageReceived)
    async def first(event: MessageReceived, ctx: Context) -> None:
        calls.append("hub:first")

    @billing.on(MessageReceived, when=lambda event: "invoice" in event.message.text)
    async def invoice(event: MessageReceived, ctx: Context) -> None:
        calls.append("billing:invoice")

    assert hub.include_router(billing) is billing

    @hub.on(MessageReceived)
    async def last(event: MessageReceived, ctx: Context) -> None:
        calls.append("hub:last")

    @billing.on(MessageReceived)  # registered after the router was included
    async def late(event: MessageReceived, ctx: Context) -> None:
        calls.append("billing:late")

    async with running(hub):
        fake.customer_says("where is my invoice?")
        await eventually(lambda: len(calls) == 4)
        await hub.wait_idle()

    assert calls == ["hub:first", "billing:invoice", "billing:late", "hub:last"]
    assert hub.handled_types() == frozenset({MessageReceived})


def test_a_router_never_includes_itself() -> None:
    outer, inner = Router("outer"), Router("inner")
    outer.include_router(inner)
    with pytest.raises(ConfigurationError):
        inner.include_router(outer)
    with pytest.raises(ConfigurationError):
        outer.include_router(outer)
    hub = Hub(store=MemoryStore())
    hub.include_router(outer)
    with pytest.raises(ConfigurationError):
        inner.include_router(hub.router)


def test_a_bot_registers_on_a_router_that_every_hub_it_builds_includes() -> None:
    """``Bot.on`` and ``Hub.on`` are one mechanism: the bot's router, included in each hub."""
    bot = Bot("helpdesk")
    extra = Router("extra")

    @bot.on(MessageReceived, visibility="private")
    async def dm(event: MessageReceived, ctx: Context) -> None:
        return None

    @extra.on(ReactionAdded)
    async def liked(event: ReactionAdded, ctx: Context) -> None:
        return None

    bot.include_router(extra)
    first = bot.build_hub(adapters=[], store=MemoryStore())
    second = bot.build_hub(adapters=[], store=MemoryStore())

    for hub in (first, second):
        handlers = [registration.func for registration in hub.router.registrations()]
        assert handlers == [dm, liked]
        assert hub.handled_types() == frozenset({MessageReceived, ReactionAdded})
