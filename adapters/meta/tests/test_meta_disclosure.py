"""Automation disclosure: said at a conversation's start, after a lapse, and after a person."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnichannel.actions import PrivateReply, Reply
from omnichannel.errors import TextTooLong
from omnichannel.events import MessageReceived
from omnichannel.model import Message
from omnichannel_meta import FacebookAdapter, InstagramAdapter
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox

NOTICE = "You are chatting with an automated assistant."


def adapter_for(sandbox: FacebookSandbox | InstagramSandbox) -> FacebookAdapter | InstagramAdapter:
    cls = FacebookAdapter if isinstance(sandbox, FacebookSandbox) else InstagramAdapter
    return cls({**sandbox.adapter_settings(), "automation_disclosure": NOTICE,
                "human_agent": True}, transport=sandbox.transport(), clock=sandbox.clock.peek)


async def newest(adapter: FacebookAdapter | InstagramAdapter, record_id: str) -> Message:
    batch = await adapter.poll(None)
    for event in batch.events:
        if isinstance(event, MessageReceived) and event.message.ref.id == record_id:
            return event.message
    raise AssertionError(record_id)


@pytest.mark.parametrize("sandbox_class", [FacebookSandbox, InstagramSandbox])
async def test_dm_disclosure_at_start_after_a_person_and_after_a_lapse(
    sandbox_class: type[FacebookSandbox] | type[InstagramSandbox],
) -> None:
    """Bot, bot, person, bot, (25 hours), bot: the notice precedes the 1st, 4th and 5th bot DMs."""
    sandbox = sandbox_class()
    sandbox.human_agent_permission = True
    customer = sandbox.customer()
    adapter = adapter_for(sandbox)
    network = adapter.network
    async with adapter:
        dm = await newest(adapter, sandbox.customer_dm("hi", author=customer).id)
        await adapter.send(Reply(network=network, to=dm, text="bot 1"))
        await adapter.send(Reply(network=network, to=dm, text="bot 2"))
        await adapter.send(Reply(network=network, to=dm, text="Anna here", human_agent=True))
        await adapter.send(Reply(network=network, to=dm, text="bot 3"))
        sandbox.clock.advance(timedelta(hours=25))
        dm = await newest(adapter, sandbox.customer_dm("back again", author=customer).id)
        await adapter.send(Reply(network=network, to=dm, text="bot 4"))
    assert [r.text for r in sandbox.sent()] == [
        NOTICE, "bot 1", "bot 2", "Anna here", NOTICE, "bot 3", NOTICE, "bot 4"]
    assert {r.recipient for r in sandbox.sent()} == {customer.id}


@pytest.mark.parametrize("sandbox_class", [FacebookSandbox, InstagramSandbox])
async def test_an_automated_private_reply_starts_with_the_notice(
    sandbox_class: type[FacebookSandbox] | type[InstagramSandbox],
) -> None:
    """A private reply is one message: the notice leads a bot's, counted in the limit."""
    sandbox = sandbox_class()
    media = sandbox.our_post("New in")
    bot, person = (sandbox.customer_comment(media, t) for t in ("price?", "size?"))
    adapter = adapter_for(sandbox)
    network = adapter.network
    async with adapter:
        batch = await adapter.poll(None)
        by_id = {e.message.ref.id: e.message for e in batch.events
                 if isinstance(e, MessageReceived)}
        action = PrivateReply(network=network, to=by_id[bot.id], text="29 €")
        sent = await adapter.send(action)
        found = await adapter.find_sent(action)
        await adapter.send(PrivateReply(network=network, to=by_id[person.id], text="M and L",
                                        human_agent=True))
        limit = adapter.capabilities.rule_for(action).limit
        fits_alone = PrivateReply(network=network, to=by_id[person.id], text="a" * limit)
        with pytest.raises(TextTooLong):
            adapter.check(fits_alone, now=sandbox.clock.peek())
        # The customer answers the private reply: the DM that follows needs no new notice.
        dm = await newest(adapter, sandbox.customer_dm("ok, thanks",
                                                       author=sandbox.world.account(
                                                           bot.author_id)).id)
        await adapter.send(Reply(network=network, to=dm, text="bot again"))
    messages = [r.text for r in sandbox.sent() if r.kind == "message"]
    assert messages == [f"{NOTICE}\n\n29 €", "M and L", "bot again"]
    assert found is not None
    assert found.ref == sent.ref


async def test_without_the_setting_nothing_is_added() -> None:
    """No automation_disclosure: DMs and private replies go out as written."""
    sandbox = InstagramSandbox()
    comment = sandbox.customer_comment(sandbox.our_post("New"), "hi")
    adapter = InstagramAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                               clock=sandbox.clock.peek)
    async with adapter:
        message = await newest(adapter, comment.id)
        dm = await newest(adapter, sandbox.customer_dm("hello").id)
        await adapter.send(PrivateReply(network="instagram", to=message, text="psst"))
        await adapter.send(Reply(network="instagram", to=dm, text="hello!"))
    assert [r.text for r in sandbox.sent()] == ["psst", "hello!"]
