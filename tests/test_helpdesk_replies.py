"""Canned replies (variants, variables, length per network, the guardrail) and assignment."""

from __future__ import annotations

import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, running

from omnichannel.errors import ConfigurationError, DuplicateReply, TextTooLong
from omnichannel.events import MessageReceived
from omnichannel.helpdesk import (
    Agent,
    CannedReplies,
    CannedReply,
    LeastLoaded,
    RoundRobin,
    Work,
    eligible,
)
from omnichannel.hub import Context, Hub
from omnichannel.policy import AutoSend
from omnichannel.store import MemoryStore
from omnichannel.text import TextRule

DELAY = CannedReply(
    name="shipping-delay",
    text=("Hi {name}, we're so sorry that order {order_id} is late. It leaves our warehouse "
          "today and the tracking link is on its way by email. Thank you for your patience! 📦"),
    variants={"x": "Sorry {name}! Order {order_id} ships today, tracking by email 📦"},
    private_variants={"x": "Hi {name}, order {order_id} ships today; tracking is in your email."},
)


def test_each_network_gets_its_variant_with_the_variables_filled_in() -> None:
    assert DELAY.render("x", name="Ada", order_id="4411") == (
        "Sorry Ada! Order 4411 ships today, tracking by email 📦")
    assert DELAY.render("x", private=True, name="Ada", order_id="4411").startswith("Hi Ada, order")
    assert DELAY.render("mastodon", name="Ada", order_id="4411").startswith("Hi Ada, we're so")
    assert DELAY.variables == {"name", "order_id"}


def test_a_missing_variable_is_an_error_not_a_placeholder_sent() -> None:
    with pytest.raises(ConfigurationError, match="order_id"):
        DELAY.render("x", name="Ada")


def test_the_text_is_checked_against_the_networks_rule() -> None:
    short = TextRule.graphemes(60)
    assert short.fits(DELAY.render("x", name="Ada", order_id="4411"))
    with pytest.raises(TextTooLong) as caught:
        DELAY.render("bluesky", rule=short, name="Ada", order_id="4411")
    assert caught.value.limit == 60
    assert caught.value.length > 60


def test_library_from_settings() -> None:
    replies = CannedReplies.from_settings([
        {"name": "thanks", "text": "Thank you, {name}! 💙"},
        {"name": "hours", "text": "We answer 9-17 CET, Monday to Friday."},
    ])
    assert len(replies) == 2
    assert "thanks" in replies
    assert [r.name for r in replies] == ["thanks", "hours"]
    with pytest.raises(ConfigurationError, match="known: hours, thanks"):
        replies["nope"]
    with pytest.raises(ConfigurationError, match="canned reply broken"):
        CannedReplies.from_settings([{"name": "broken", "text": "Hi {name"}])
    with pytest.raises(ConfigurationError, match="two canned replies"):
        CannedReplies([DELAY, DELAY])


async def test_a_canned_line_goes_through_the_copy_paste_guardrail() -> None:
    """The same filled-in line to two customers is refused; the customer's name varies it."""
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), policy=AutoSend())
    plain = CannedReply(name="sorry", text="We're sorry about that, we're on it.")
    named = CannedReply(name="sorry-named", text="{name}, we're sorry about that, we're on it.")
    outcomes: list[str] = []

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        name = event.message.author.handle or "there"
        for reply in (plain, named):
            try:
                await ctx.reply(reply.render(event.message.network, name=name))
                outcomes.append(f"{reply.name} to {name}")
            except DuplicateReply:
                outcomes.append(f"{reply.name} refused for {name}")

    fake.customer_says("my parcel is lost", author="alice")
    fake.customer_says("mine too", author="bob")
    async with running(hub, listen=False):
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()

    # Whichever customer is answered first gets the plain line; the other is refused it.
    plain_sent = [o for o in outcomes if o.startswith("sorry to ")]
    plain_refused = [o for o in outcomes if o.startswith("sorry refused for ")]
    assert len(plain_sent) == 1
    assert len(plain_refused) == 1
    assert plain_sent[0].removeprefix("sorry to ") != plain_refused[0].removeprefix(
        "sorry refused for ")
    assert sorted(o for o in outcomes if o.startswith("sorry-named")) == [
        "sorry-named to alice", "sorry-named to bob"]


TEAM = [
    Agent(id="anna", capacity=2, skills=frozenset({"de"})),
    Agent(id="ben", capacity=3),
    Agent(id="cleo", capacity=3, networks=frozenset({"x"})),
    Agent(id="dev", capacity=3, away=True),
]


def test_round_robin_rotates_from_the_last_assigned_and_skips_who_cannot_take_it() -> None:
    work = Work(network="mastodon")
    strategy = RoundRobin()
    picks = []
    last = None
    for _ in range(4):
        agent = strategy.choose(work, TEAM, load={}, last=last)
        assert agent is not None
        picks.append(agent.id)
        last = agent.id
    assert picks == ["anna", "ben", "anna", "ben"]  # cleo: x only; dev: away
    on_x = [RoundRobin().choose(Work(network="x"), TEAM, load={}, last=a) for a in ("ben", "cleo")]
    assert [a.id if a else None for a in on_x] == ["cleo", "anna"]


def test_least_loaded_fills_by_share_of_capacity_and_respects_capacity() -> None:
    work = Work(network="x")
    pick = LeastLoaded().choose(work, TEAM, load={"anna": 1, "ben": 1, "cleo": 0})
    assert pick is not None
    assert pick.id == "cleo"
    pick = LeastLoaded().choose(work, TEAM, load={"anna": 1, "ben": 1, "cleo": 1})
    assert pick is not None
    assert pick.id == "ben"  # 1/3 beats anna's 1/2
    full = {"anna": 2, "ben": 3, "cleo": 3}
    assert LeastLoaded().choose(work, TEAM, load=full) is None


def test_skills_narrow_the_choice_when_someone_has_them() -> None:
    german = Work(network="mastodon", tags=frozenset({"de", "complaint"}))
    assert [a.id for a in eligible(german, TEAM, {})] == ["anna"]
    assert [a.id for a in eligible(german, TEAM, {"anna": 2})] == ["ben"]
