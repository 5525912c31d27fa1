"""Capabilities refuse what a network cannot do, before any network call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply
from omnichannel.capabilities import Capabilities
from omnichannel.errors import CapabilityNotSupported, TextTooLong, WindowClosed
from omnichannel.model import Message, Person, Ref, Visibility
from omnichannel.text import TextRule

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)

META_LIKE = Capabilities(
    text=TextRule.code_points(8000),
    dm_text=TextRule.code_points(2000),
    private_reply=True,
    private_reply_window=timedelta(days=7),
    dm_window=timedelta(hours=24),
    human_agent_window=timedelta(days=7),
    reactions=("like",),
    hide=True,
    delete=True,
    inbound=frozenset({"webhook"}),
)
BARE = Capabilities(text=TextRule.code_points(10), post=False)


def _message(visibility: Visibility = "public", *, at: datetime = T0) -> Message:
    return Message(
        ref=Ref(network="facebook", id="c1"),
        conversation=Ref(network="facebook", id="p1"),
        author=Person(ref=Ref(network="facebook", id="u1")),
        text="where is my order?",
        created_at=at,
        visibility=visibility,
    )


def test_text_over_the_limit_is_refused_with_figures() -> None:
    """A reply over the limit raises TextTooLong with the counted length and limit."""
    with pytest.raises(TextTooLong) as info:
        BARE.check(Reply(network="x", to=_message(), text="x" * 11), network="x", now=T0)
    assert (info.value.length, info.value.limit) == (11, 10)


def test_dm_rule_applies_to_private_replies() -> None:
    """Private replies are counted against the direct-message rule."""
    action = PrivateReply(network="facebook", to=_message(), text="y" * 2001)
    with pytest.raises(TextTooLong) as info:
        META_LIKE.check(action, network="facebook", now=T0)
    assert info.value.limit == 2000


def test_undeclared_capabilities_are_refused() -> None:
    """React, hide, delete, post and private reply need a declaration."""
    target = Ref(network="x", id="1")
    for action, name in [
        (React(network="x", target=target), "react"),
        (Hide(network="x", target=target), "hide"),
        (Delete(network="x", target=target), "delete"),
        (Post(network="x", text="hi"), "post"),
        (PrivateReply(network="x", to=_message(), text="hi"), "private_reply"),
    ]:
        with pytest.raises(CapabilityNotSupported) as info:
            BARE.check(action, network="x", now=T0)
        assert info.value.capability == name


def test_unknown_reaction_is_refused() -> None:
    """Only the declared reactions can be sent."""
    with pytest.raises(CapabilityNotSupported, match="'love'"):
        META_LIKE.check(
            React(network="facebook", target=Ref(network="facebook", id="1"), reaction="love"),
            network="facebook", now=T0,
        )


def test_private_reply_window_closes_after_seven_days() -> None:
    """Meta's one private reply to a comment must come within 7 days."""
    action = PrivateReply(network="facebook", to=_message(), text="Sent you a DM")
    META_LIKE.check(action, network="facebook", now=T0 + timedelta(days=6, hours=23))
    with pytest.raises(WindowClosed) as info:
        META_LIKE.check(action, network="facebook", now=T0 + timedelta(days=7, seconds=1))
    assert info.value.closed_at == T0 + timedelta(days=7)


def test_dm_window_is_24_hours_unless_a_human_answers() -> None:
    """A DM answer after 24 h is refused, but a human agent has 7 days."""
    action = Reply(network="facebook", to=_message("private"), text="Hello again")
    late = T0 + timedelta(hours=30)
    with pytest.raises(WindowClosed):
        META_LIKE.check(action, network="facebook", now=late)
    META_LIKE.check(action, network="facebook", now=late, human_agent=True)
    with pytest.raises(WindowClosed):
        META_LIKE.check(action, network="facebook", now=T0 + timedelta(days=8), human_agent=True)


def test_allowed_actions_pass_quietly() -> None:
    """What is declared and within limits raises nothing."""
    target = Ref(network="facebook", id="1")
    for action in [
        Reply(network="facebook", to=_message(), text="On it"),
        React(network="facebook", target=target),
        Hide(network="facebook", target=target),
        Delete(network="facebook", target=target),
        Post(network="facebook", text="News"),
    ]:
        META_LIKE.check(action, network="facebook", now=T0)


def test_dm_reactions_are_declared_apart_from_public_reactions() -> None:
    """A React naming a DM conversation is checked against ``dm_reactions`` only."""
    caps = Capabilities(text=TextRule.code_points(1000), dm_reactions=("love",))
    message = Ref(network="instagram", id="m1")
    in_dm = React(network="instagram", target=message, reaction="love",
                  conversation=Ref(network="instagram", id="psid-1"))
    caps.check(in_dm, network="instagram")
    with pytest.raises(CapabilityNotSupported) as public:
        caps.check(React(network="instagram", target=message, reaction="love"),
                   network="instagram")
    assert public.value.capability == "react"
    with pytest.raises(CapabilityNotSupported) as other:
        caps.check(in_dm.model_copy(update={"reaction": "like"}), network="instagram")
    assert other.value.capability == "dm_reactions"
    with pytest.raises(CapabilityNotSupported):  # public reactions promise no DM ones
        Capabilities(text=TextRule.code_points(1000), reactions=("love",)).check(
            in_dm, network="instagram")
