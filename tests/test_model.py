"""The core model: frozen, strict, and JSON round-trips unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from omnichannel.actions import (
    Action,
    Delete,
    Hide,
    Post,
    PrivateReply,
    React,
    Reply,
    Sent,
    parse_action,
)
from omnichannel.events import (
    AuthHealth,
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
    SlaBreached,
    SlaWarning,
    event_id,
    parse_event,
)
from omnichannel.model import (
    Attachment,
    Conversation,
    Hashtag,
    Link,
    Mention,
    Message,
    Person,
    Ref,
)

NETWORKS = st.sampled_from(["mastodon", "bluesky", "twitter", "facebook", "instagram"])
# Text with astral characters (emoji), combining marks, CJK and ZWJ sequences.
TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(["👨‍👩‍👧‍👦", "🇯🇵", "👍🏽", "é", "漢", "\u200d", "\U0001f600"]),
    ),
    max_size=20,
).map("".join)
IDS = st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyz:/._-", min_size=1, max_size=30)
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def refs(draw: st.DrawFn) -> Ref:
    extra = draw(st.dictionaries(st.sampled_from(["cid", "root"]), IDS, max_size=2))
    return Ref(network=draw(NETWORKS), id=draw(IDS), extra=extra)


@st.composite
def people(draw: st.DrawFn) -> Person:
    return Person(
        ref=draw(refs()),
        handle=draw(st.none() | TEXT),
        display_name=draw(st.none() | TEXT),
        followers=draw(st.none() | st.integers(min_value=0, max_value=10**9)),
        verified=draw(st.none() | st.booleans()),
    )


@st.composite
def messages(draw: st.DrawFn) -> Message:
    text = draw(TEXT)
    n = len(text)
    start = draw(st.integers(min_value=0, max_value=n))
    end = draw(st.integers(min_value=start, max_value=n))
    entities = draw(
        st.lists(
            st.sampled_from(
                [
                    Mention(start=start, end=end, handle="shop"),
                    Link(start=start, end=end, url="https://example.com/a?b=c"),
                    Hashtag(start=start, end=end, tag="ヘルプ"),
                ]
            ),
            max_size=3,
        )
    )
    return Message(
        ref=draw(refs()),
        conversation=draw(refs()),
        author=draw(people()),
        text=text,
        entities=tuple(entities),
        attachments=(Attachment(kind="gif", url="https://media.example/x.gif", alt_text=text),),
        created_at=draw(TIMES),
        edited_at=draw(st.none() | TIMES),
        visibility=draw(st.sampled_from(["public", "unlisted", "followers", "private"])),
        in_reply_to=draw(st.none() | refs()),
        from_us=draw(st.booleans()),
        raw={"content": text, "nested": [1, 2.5, None, True, {"emoji": "🎉"}]},
    )


@st.composite
def events(draw: st.DrawFn) -> Event:
    message = draw(messages())
    when = draw(TIMES)
    kind = draw(st.integers(min_value=0, max_value=7))
    common = {
        "network": message.network, "occurred_at": when, "received_at": when,
        "backfilled": draw(st.booleans()),
    }
    if kind == 0:
        conversation = Conversation(
            ref=message.conversation, kind="thread", participants=(message.author,)
        )
        return MessageReceived(
            id=event_id("message.received", message.ref), message=message,
            conversation=conversation, **common,
        )
    ref = message.ref
    if kind == 1:
        return MessageUpdated(id=event_id("message.updated", ref), message=message, **common)
    if kind == 2:
        return MessageDeleted(id=event_id("message.deleted", ref), message=ref, **common)
    if kind in (3, 4):
        cls = ReactionAdded if kind == 3 else ReactionRemoved
        return cls(id=event_id("reaction", ref), target=ref, by=message.author, **common)
    if kind in (5, 6):
        sla = SlaWarning if kind == 5 else SlaBreached
        return sla(id=event_id(f"sla.{kind}", message.conversation, "first_response"),
                   conversation=message.conversation, metric="first_response", due_at=when,
                   priority="high", assignee=draw(st.none() | TEXT), **common)
    return AuthHealth.report(message.network, "expiring", draw(TEXT), at=when,
                             expires_at=when).model_copy(update=common)


@st.composite
def actions(draw: st.DrawFn) -> Action:
    message = draw(messages())
    text = draw(TEXT)
    net = message.network
    return draw(
        st.sampled_from(
            [
                Reply(network=net, to=message, text=text),
                PrivateReply(network=net, to=message, text=text),
                Post(network=net, text=text, visibility="unlisted"),
                React(network=net, target=message.ref),
                Hide(network=net, target=message.ref, hidden=False),
                Delete(network=net, target=message.ref),
            ]
        )
    )


@settings(max_examples=150, deadline=None)
@given(events())
def test_every_event_round_trips_through_json(event: Event) -> None:
    """Any event, emoji and astral characters included, survives JSON unchanged."""
    data = TypeAdapter(Event).dump_json(event)
    assert parse_event(data) == event
    assert parse_event(TypeAdapter(Event).dump_python(event, mode="json")) == event


@settings(max_examples=150, deadline=None)
@given(actions())
def test_every_action_round_trips_through_json(action: Action) -> None:
    """Any outgoing action keeps its type and idempotency key through JSON."""
    again = parse_action(action.model_dump_json())
    assert again == action
    assert again.idempotency_key == action.idempotency_key


def test_message_text_keeps_emoji_exactly() -> None:
    """A ZWJ family emoji and a flag come back byte-for-byte from JSON."""
    text = "Thanks 👨‍👩‍👧‍👦 from 🇯🇵!"
    msg = Message(
        ref=Ref(network="bluesky", id="at://did:plc:x/app.bsky.feed.post/1", extra={"cid": "baf"}),
        conversation=Ref(network="bluesky", id="at://did:plc:x/app.bsky.feed.post/1"),
        author=Person(ref=Ref(network="bluesky", id="did:plc:x")),
        text=text,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    back = Message.model_validate_json(msg.model_dump_json())
    assert back.text.encode("utf-8") == text.encode("utf-8")
    assert back.ref.extra == {"cid": "baf"}


def test_models_are_frozen_and_strict() -> None:
    """Core models refuse mutation and unknown fields."""
    ref = Ref(network="mastodon", id="1")
    with pytest.raises(ValidationError):
        ref.id = "2"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Ref(network="mastodon", id="1", unknown="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Ref(network="mastodon", id="")


def test_native_ids_stay_strings() -> None:
    """An id that looks numeric is never turned into a number."""
    ref = Ref.model_validate_json('{"network": "mastodon", "id": "0012345678901234567890"}')
    assert ref.id == "0012345678901234567890"
    with pytest.raises(ValidationError):
        Ref.model_validate({"network": "mastodon", "id": 12})


def test_refs_are_hashable_keys() -> None:
    """Equal refs hash alike, so they work as dictionary keys."""
    a = Ref(network="bluesky", id="at://x", extra={"cid": "1"})
    b = Ref(network="bluesky", id="at://x", extra={"cid": "1"})
    assert {a: 1}[b] == 1
    assert str(a) == "bluesky:at://x"


def test_datetimes_must_be_timezone_aware() -> None:
    """A naive timestamp is refused: every time in the model is aware."""
    with pytest.raises(ValidationError):
        MessageDeleted(
            id="x", network="mastodon", message=Ref(network="mastodon", id="1"),
            occurred_at=datetime(2024, 1, 1),
        )


def test_event_union_dispatches_on_type() -> None:
    """parse_event picks the class from the ``type`` field."""
    data = {
        "type": "reaction.added",
        "id": "mastodon:reaction.added:1:9",
        "network": "mastodon",
        "occurred_at": "2024-05-01T10:00:00Z",
        "target": {"network": "mastodon", "id": "1"},
        "by": {"ref": {"network": "mastodon", "id": "9"}},
    }
    event = parse_event(data)
    assert isinstance(event, ReactionAdded)
    assert event.reaction == "like"
    assert event.occurred_at - datetime(2024, 5, 1, 10, tzinfo=UTC) == timedelta(0)


def test_event_id_is_stable_and_independent_of_delivery() -> None:
    """The same happening gets the same id whichever path reports it."""
    ref = Ref(network="mastodon", id="109", extra={"x": "y"})
    assert event_id("message.updated", ref, "2024-01-01T00:00:00Z") == event_id(
        "message.updated", Ref(network="mastodon", id="109"), "2024-01-01T00:00:00Z"
    )


def test_idempotency_keys_are_unique_per_action() -> None:
    """Two actions never share a key by accident; a key is kept when given."""
    a = Post(network="mastodon", text="hi")
    b = Post(network="mastodon", text="hi")
    assert a.idempotency_key != b.idempotency_key
    assert Post(network="mastodon", text="hi", idempotency_key="k" * 16).idempotency_key == "k" * 16


def test_sent_hides_raw_from_repr() -> None:
    """The native response is kept but not printed."""
    sent = Sent(idempotency_key="k" * 16, ref=Ref(network="mastodon", id="1"), raw={"a": "secret"})
    assert "secret" not in repr(sent)
    assert sent.raw == {"a": "secret"}


def test_entity_text_in_message() -> None:
    """An entity span slices the message text in Python str indices."""
    text = "👋 @shop see https://x.co"
    mention = Mention(start=2, end=7, handle="shop")
    assert mention.text_in(text) == "@shop"


def test_attachment_urls_are_pydantics_any_url() -> None:
    """``Attachment.url`` validates, holds, dumps and describes itself as ``pydantic.AnyUrl``.

    The model imports ``AnyUrl`` only when it builds its validator; what users
    see is ``AnyUrl``'s own behaviour.
    """
    from pydantic import AnyUrl

    from omnichannel.model import Attachment

    attachment = Attachment(kind="image", url="https://example.com/a b.png?x=1")
    assert type(attachment.url) is AnyUrl
    assert attachment.url == AnyUrl("https://example.com/a%20b.png?x=1")
    assert Attachment(kind="image", url=attachment.url).url == attachment.url
    assert attachment.model_dump(mode="json")["url"] == "https://example.com/a%20b.png?x=1"
    assert Attachment.model_validate_json(attachment.model_dump_json()) == attachment
    with pytest.raises(ValidationError, match="url_parsing"):
        Attachment(kind="image", url="not a url")
    expected = TypeAdapter(AnyUrl | None).json_schema()
    schema = Attachment.model_json_schema()["properties"]
    for field in ("url", "preview_url"):
        assert {key: schema[field][key] for key in expected} == expected
