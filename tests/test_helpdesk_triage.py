"""Triage rules on real-looking customer messages: sarcasm, emoji, languages, VIPs, waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnichannel.errors import ConfigurationError
from omnichannel.helpdesk import Triage, TriageRule
from omnichannel.model import Message, Person, Ref, Visibility

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def said(text: str, *, network: str = "mastodon", visibility: Visibility = "public",
         handle: str = "someone", followers: int | None = None) -> Message:
    author = Person(ref=Ref(network=network, id=f"id-{handle}"), handle=handle, followers=followers)
    return Message(ref=Ref(network=network, id=f"m-{abs(hash(text))}"),
                   conversation=Ref(network=network, id="c1"), author=author, text=text,
                   created_at=NOW, visibility=visibility)


RULES = Triage([
    TriageRule(
        name="upset",
        signs=["🙄", "😡", "🤬", "👎", "🙃"],
        phrases=["thanks for nothing", "still waiting", "thanks a lot for losing", "worst service"],
        words={"en": ["refund", "broken", "scam"], "de": ["kaputt", "Erstattung"],
               "fr": ["remboursement", "cassé"]},
        priority="high", tags=["complaint"],
    ),
    TriageRule(name="public complaint in the open", visibility=["public"],
               signs=["🙄", "😡", "🤬", "🙃"], phrases=["thanks for nothing", "worst service"],
               priority="urgent", queue="escalations"),
    TriageRule(name="vip", vip=["@bigcustomer", "id-partner"], priority="high", tags=["vip"]),
    TriageRule(name="reach", min_followers=100_000, tags=["influencer"], queue="social-leads"),
    TriageRule(name="waited", waited_longer_than=timedelta(hours=4), priority="high",
               tags=["waited"]),
    TriageRule(name="thanks", words=["thanks", "thank you", "danke", "merci"], priority="low",
               tags=["praise"], unless=["thanks a lot for", "thanks for nothing", "🙄", "🙃"]),
])


@pytest.mark.parametrize(
    ("text", "visibility", "priority", "tags", "queue"),
    [
        # Sarcasm with an emoji, in public: the most urgent of the matches wins, and the
        # "thanks" in it is not praise.
        ("Thanks a lot for losing my parcel. Again. Truly outstanding 🙃", "public", "urgent",
         ("complaint",), "escalations"),
        ("Thanks for nothing", "private", "high", ("complaint",), None),
        ("Still waiting for my refund, day 12 🙄", "private", "high", ("complaint",), None),
        ("Mein Wasserkocher ist KAPUTT. Ich möchte eine Erstattung.", "public", "high",
         ("complaint",), None),
        ("Mon colis est arrivé cassé, je veux un remboursement", "private", "high",
         ("complaint",), None),
        ("Got my replacement kettle today, thank you so much! 🎉", "public", "low",
         ("praise",), None),
        ("Do you ship to Norway?", "public", "normal", (), None),
        # Whole words only: "brokenness" is not "broken", "scampi" is not "scam".
        ("The scampi recipe on your blog is great", "public", "normal", (), None),
    ],
)
def test_real_looking_messages(text: str, visibility: Visibility, priority: str,
                               tags: tuple[str, ...], queue: str | None) -> None:
    result = RULES.evaluate(said(text, visibility=visibility))
    assert (result.priority, result.tags, result.queue) == (priority, tags, queue), result.rules


def test_accents_and_case_do_not_matter() -> None:
    assert "upset" in RULES.evaluate(said("mon téléphone est CASSE")).rules
    assert "upset" in RULES.evaluate(said("REMBOURSEMENT svp")).rules


def test_vip_by_handle_or_id_and_reach_by_followers() -> None:
    vip = RULES.evaluate(said("hello", handle="BigCustomer"))
    assert vip.priority == "high"
    assert vip.tags == ("vip",)
    partner = RULES.evaluate(said("hello", handle="partner"))
    assert "vip" in partner.rules
    loud = RULES.evaluate(said("hello", followers=250_000))
    assert loud.queue == "social-leads"
    assert loud.tags == ("influencer",)
    unknown = RULES.evaluate(said("hello", followers=None))
    assert unknown.rules == ()


def test_waiting_time_needs_a_start_and_counts_from_it() -> None:
    message = said("any news?")
    assert RULES.evaluate(message).rules == ()
    assert RULES.evaluate(message, now=NOW, waiting_since=NOW - timedelta(hours=3)).rules == ()
    late = RULES.evaluate(message, now=NOW, waiting_since=NOW - timedelta(hours=5))
    assert late.rules == ("waited",)
    assert late.priority == "high"


def test_network_condition() -> None:
    triage = Triage([TriageRule(name="x only", networks=["x"], priority="urgent")],
                    default="low")
    assert triage.evaluate(said("hi", network="x")).priority == "urgent"
    assert triage.evaluate(said("hi", network="bluesky")).priority == "low"


def test_rules_from_settings_tables_and_their_errors() -> None:
    triage = Triage.from_settings([
        {"name": "refunds", "words": {"en": ["refund"]}, "priority": "high", "tags": ["billing"],
         "waited_longer_than": 3600},
    ])
    assert triage.rules[0].waited_longer_than == timedelta(hours=1)
    with pytest.raises(ConfigurationError, match="triage rule oops"):
        Triage.from_settings([{"name": "oops", "priority": "whenever"}])
    with pytest.raises(ConfigurationError, match="repeat"):
        Triage([TriageRule(name="a"), TriageRule(name="a")])
