"""Recorded Mastodon payloads become the core model with the right values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from omnichannel.errors import PayloadError
from omnichannel.events import MessageDeleted, MessageReceived, MessageUpdated, ReactionAdded
from omnichannel.model import Hashtag, Link, Mention, Ref
from omnichannel_mastodon._convert import (
    Converter,
    ThreadRoots,
    content_to_text,
    direct_ref,
    from_mastodon_visibility,
    parse_status,
    to_mastodon_visibility,
)
from omnichannel_mastodon._stream import iter_events
from omnichannel_mastodon._wire import DirectConversation, Notification, Status, StatusMention

ADMIN = "117020565693913441"  # "admin" on the first recording server
TEST = "117020565966271181"  # "mastodonpy_test" there
TEST_2 = "117020617532860042"  # "mastodonpy_test_2" on the streaming server
STREAM_US = "117020617404561855"  # "mastodonpy_test", the streaming account
STREAM_ADMIN = "117020617136550219"


def ref(id_: str) -> Ref:
    return Ref(network="mastodon", id=id_)


# -- notifications ------------------------------------------------------------


def test_mention_notification_page_becomes_message_received(recorded: Any) -> None:
    """The recorded mention page parses into one MessageReceived with text, author and mention."""
    page = recorded("test_notifications_mentions_only").body("GET", "/api/v1/notifications")
    [event] = Converter(our_id=TEST).notifications(page)

    assert isinstance(event, MessageReceived)
    assert event.id == "mastodon:message.received:117020577157693549"
    assert event.account == TEST
    assert event.occurred_at == datetime(2026, 8, 1, 13, 51, 42, 823000, tzinfo=UTC)
    message = event.message
    assert message.ref == ref("117020577157693549")
    assert message.text == "@mastodonpy_test hello!"
    assert message.author.ref == ref(ADMIN)
    assert message.author.handle == "admin"
    assert message.author.display_name is None
    assert message.author.profile_url == "http://localhost:3000/@admin"
    assert message.author.followers == 1
    assert message.author.bot is False
    assert message.visibility == "public"
    assert message.in_reply_to is None
    assert message.from_us is False
    assert message.conversation == ref("117020577157693549")
    assert message.entities == (
        Mention(start=0, end=16, handle="mastodonpy_test", person=ref(TEST)),
    )
    assert message.entities[0].text_in(message.text) == "@mastodonpy_test"
    assert message.raw is not None
    assert message.raw["id"] == "117020577157693549"
    assert event.conversation.kind == "thread"
    assert event.conversation.account == ref(TEST)
    assert [p.handle for p in event.conversation.participants] == ["admin"]


def test_message_keeps_the_decoded_status_as_its_raw_payload(recorded: Any) -> None:
    """``Message.raw`` is the status as decoded, a copy of its top level, and stores as JSON."""
    recording = recorded("test_notifications_mentions_only")
    page = json.loads(json.dumps(recording.body("GET", "/api/v1/notifications")))
    status = page[0]["status"]
    expected = json.loads(json.dumps(status))
    [event] = Converter(our_id=TEST).notifications(page)
    message = event.message
    assert isinstance(event, MessageReceived)
    assert message.raw == expected
    status["id"] = "changed after parsing"
    assert message.raw is not None
    assert message.raw["id"] == "117020577157693549"
    assert "raw" in message.model_fields_set
    assert type(message).model_validate_json(message.model_dump_json()) == message
    assert Converter(our_id=TEST, keep_raw=False).notifications(page)[0].message.raw is None


def test_single_notification_gives_the_same_event_id(recorded: Any) -> None:
    """GET /notifications/:id and the page give one event id: the status, not the notification."""
    rec = recorded("test_notifications_mentions_only")
    single = rec.body("GET", "/api/v1/notifications/21")
    page = rec.body("GET", "/api/v1/notifications")
    converter = Converter(our_id=TEST)
    [from_one] = converter.notification_events(Notification.model_validate(single), raw=single)
    [from_page] = converter.notifications(page)
    assert single["id"] == "21"
    assert from_one.id == from_page.id == "mastodon:message.received:117020577157693549"


@pytest.mark.parametrize(
    ("name", "status_id"),
    [
        ("test_notifications", "117020576916218297"),
        ("test_notifications_dismiss", "117020578070305017"),
        ("test_notifications_mentions_only", "117020577157693549"),
    ],
)
def test_every_recorded_notification_page_parses(recorded: Any, name: str, status_id: str) -> None:
    """Each recorded notifications page yields the mention of its status by admin."""
    page = recorded(name).body("GET", "/api/v1/notifications")
    [event] = Converter(our_id=TEST).notifications(page)
    assert isinstance(event, MessageReceived)
    assert event.message.ref.id == status_id
    assert event.message.text == "@mastodonpy_test hello!"
    assert event.message.author.handle == "admin"


def test_notifications_come_out_oldest_first(recorded: Any) -> None:
    """A page that Mastodon lists newest first is turned around, oldest event first."""
    pages = [
        recorded(name).body("GET", "/api/v1/notifications")[0]
        for name in ("test_notifications", "test_notifications_mentions_only")
    ]
    newest_first = [pages[1], pages[0]]
    events = Converter(our_id=TEST).notifications(newest_first)
    assert [e.message.ref.id for e in events if isinstance(e, MessageReceived)] == [
        "117020576916218297", "117020577157693549",
    ]


def test_favourite_notification_is_a_reaction(recorded: Any) -> None:
    """A favourite notification on our status becomes ReactionAdded by the account.

    No favourite notification is recorded: this is the recorded mention
    notification with its type set to "favourite" (the documented entity is
    the same for every type: the account acted on the status).
    """
    rec = recorded("test_notifications_mentions_only")
    raw = dict(rec.body("GET", "/api/v1/notifications/21"))
    raw["type"] = "favourite"
    [event] = Converter(our_id=ADMIN).notification_events(Notification.model_validate(raw))
    assert isinstance(event, ReactionAdded)
    assert event.target == ref("117020577157693549")
    assert event.by.ref == ref(ADMIN)
    assert event.reaction == "like"
    assert event.id == f"mastodon:reaction.added:117020577157693549:{ADMIN}:like"


def test_unfollowed_notification_kinds_give_no_event(recorded: Any) -> None:
    """A follow or poll notification is not a customer-service event."""
    rec = recorded("test_notifications_mentions_only")
    raw = dict(rec.body("GET", "/api/v1/notifications/21"))
    raw["type"] = "poll"
    assert Converter(our_id=TEST).notification_events(Notification.model_validate(raw)) == []


def test_bad_notification_raises_payload_error_with_path(recorded: Any) -> None:
    """A notification without an account is a PayloadError naming the field."""
    page = recorded("test_notifications").body("GET", "/api/v1/notifications")
    broken = [{k: v for k, v in page[0].items() if k != "account"}]
    with pytest.raises(PayloadError) as info:
        Converter(our_id=TEST).notifications(broken)
    assert info.value.network == "mastodon"
    assert info.value.path == "0.account"


# -- the recorded stream -------------------------------------------------------


def _stream(recorded: Any, path: str) -> list[tuple[str, str]]:
    body = recorded("test_stream_user_direct").body("GET", path)
    return [(e.event, e.data) for e in iter_events(body.splitlines())]


def test_recorded_user_stream_decodes_into_its_events(recorded: Any) -> None:
    """The recorded SSE body holds update, notification, status.update and delete events."""
    names = [name for name, _ in _stream(recorded, "/api/v1/streaming/user")]
    assert names == ["update", "notification", "update", "notification", "status.update", "delete"]


def test_streamed_mention_keeps_apostrophe_and_mention(recorded: Any) -> None:
    """The streamed mention decodes &#39; and keeps the mention entity."""
    data = _stream(recorded, "/api/v1/streaming/user")[1][1]
    raw = json.loads(data)
    [event] = Converter(our_id=STREAM_US).notification_events(
        Notification.model_validate(raw), raw=raw
    )
    assert isinstance(event, MessageReceived)
    assert event.message.text == "@mastodonpy_test beep beep I'm a jeep"
    assert event.message.author.ref == ref(STREAM_ADMIN)
    assert event.message.entities == (
        Mention(start=0, end=16, handle="mastodonpy_test", person=ref(STREAM_US)),
    )


def test_streamed_direct_reply_is_a_private_message_in_a_direct_conversation(
    recorded: Any,
) -> None:
    """The recorded DM reply is private, answers our DM and shares its conversation."""
    events = _stream(recorded, "/api/v1/streaming/user")
    ours = Status.model_validate_json(events[2][1])
    raw = json.loads(events[3][1])
    converter = Converter(our_id=STREAM_US)
    [event] = converter.notification_events(Notification.model_validate(raw), raw=raw)

    assert isinstance(event, MessageReceived)
    message = event.message
    assert message.ref == ref("117024236635443611")
    assert message.visibility == "private"
    assert message.is_private
    assert message.text == "@mastodonpy_test pssssst!"
    assert message.author.ref == ref(TEST_2)
    assert message.in_reply_to == ref("117024236559579118")
    assert message.conversation == ref(f"direct:{TEST_2}")
    assert event.conversation.kind == "direct"
    assert [p.ref for p in event.conversation.participants] == [ref(TEST_2)]
    # Our own DM it answers lands in the same conversation.
    assert converter.message(ours).conversation == message.conversation
    assert converter.message(ours).from_us is True


def test_streamed_edit_is_message_updated(recorded: Any) -> None:
    """status.update carries the edited text and an event id naming the edit time."""
    data = _stream(recorded, "/api/v1/streaming/user")[4][1]
    event = Converter(our_id=STREAM_US).updated(Status.model_validate_json(data))
    assert isinstance(event, MessageUpdated)
    assert event.message.text == "only real animals respond."
    assert event.message.edited_at == datetime(2026, 8, 2, 5, 22, 24, 192000, tzinfo=UTC)
    assert event.id == (
        "mastodon:message.updated:117024236332527350:2026-08-02T05:22:24.192000+00:00"
    )
    assert event.message.from_us is True


def test_streamed_delete_is_message_deleted(recorded: Any) -> None:
    """The delete event's bare id becomes MessageDeleted of that status."""
    name, data = _stream(recorded, "/api/v1/streaming/user")[5]
    assert name == "delete"
    now = datetime(2026, 8, 2, 5, 22, 25, tzinfo=UTC)
    event = Converter(our_id=STREAM_US).deleted(data, occurred_at=now)
    assert isinstance(event, MessageDeleted)
    assert event.message == ref("117024236332527350")
    assert event.id == "mastodon:message.deleted:117024236332527350"


def test_streamed_conversations_parse(recorded: Any) -> None:
    """The direct stream's conversation events parse, last status included."""
    events = _stream(recorded, "/api/v1/streaming/direct")
    assert [name for name, _ in events] == ["conversation", "conversation"]
    conversation = DirectConversation.model_validate_json(events[0][1])
    assert conversation.id == "7"
    assert [a.acct for a in conversation.accounts] == ["mastodonpy_test_2"]
    assert conversation.last_status is not None
    assert conversation.last_status.visibility == "direct"


# -- conversations and threads ------------------------------------------------------


def test_recorded_conversations_map_to_direct_conversations(recorded: Any) -> None:
    """Each recorded DM conversation gets the direct ref of its other participants."""
    rec = recorded("test_conversations")
    page = rec.body("GET", "/api/v1/conversations")
    us = rec.body("POST", "/api/v1/statuses")["account"]["id"]
    converter = Converter(our_id=us)
    parsed = [DirectConversation.model_validate(c) for c in page]
    got = [converter.direct_conversation(c) for c in parsed]

    assert [c.ref for c in got] == [ref(f"direct:{ADMIN}"), ref(f"direct:{TEST}")]
    assert all(c.kind == "direct" for c in got)
    assert [p.handle for p in got[0].participants] == ["admin"]
    last = parsed[0].last_status
    assert last is not None
    message = converter.message(last)
    assert message.text == "@admin ilu bby ;3"
    assert message.visibility == "private"
    assert message.from_us is True
    assert message.conversation == got[0].ref


def test_reply_joins_the_thread_of_the_status_it_answers(recorded: Any) -> None:
    """The recorded reply is filed under the thread root it answers, once that root is known."""
    rec = recorded("test_status_reply")
    root = parse_status(rec.body("POST", "/api/v1/statuses", nth=0))
    reply = parse_status(rec.body("POST", "/api/v1/statuses", nth=1))
    converter = Converter(our_id=ADMIN)
    first = converter.message(root)
    answer = converter.message(reply)
    assert first.conversation == ref("117020583245459824")
    assert answer.in_reply_to == ref("117020583245459824")
    assert answer.conversation == ref("117020583245459824")
    assert answer.text == "@mastodonpy_test_2 same!"
    assert answer.entities == (
        Mention(start=0, end=18, handle="mastodonpy_test_2", person=ref("117020566092212359")),
    )
    assert answer.from_us is True


def test_reply_to_unknown_root_is_filed_under_its_parent(recorded: Any) -> None:
    """Without a known root, a reply groups under the status it answers."""
    reply = parse_status(recorded("test_status_reply").body("POST", "/api/v1/statuses", nth=1))
    assert Converter(our_id=None).message(reply).conversation == ref("117020583245459824")


def test_thread_roots_remember_and_forget() -> None:
    """The root memory keeps the newest entries within its size."""
    roots = ThreadRoots(size=2)
    roots.put("a", "r")
    roots.put("b", "r")
    roots.put("c", "s")
    assert roots.get("a") is None
    assert roots.get("b") == "r"
    assert len(roots) == 2


def test_recorded_statuses_keep_visibility(recorded: Any) -> None:
    """Recorded public, unlisted and direct statuses map to the core visibilities."""
    public = parse_status(recorded("test_status_post_None-public").body("POST", "/api/v1/statuses"))
    direct = parse_status(recorded("test_status_post_None-direct").body("POST", "/api/v1/statuses"))
    unlisted = parse_status(recorded("test_status_context").body("POST", "/api/v1/statuses"))
    converter = Converter(our_id=TEST)
    assert converter.message(public).visibility == "public"
    assert converter.message(unlisted).visibility == "unlisted"
    dm = converter.message(direct)
    assert dm.visibility == "private"
    assert dm.text == "Toot!"
    # A direct status to nobody else is a note to ourselves.
    assert dm.conversation == ref(f"direct:{TEST}")


def test_recorded_account_statuses_page_parses(recorded: Any) -> None:
    """The recorded page of five statuses parses, newest first as Mastodon lists them."""
    page = recorded("test_get_pagination_info").body(
        "GET", f"/api/v1/accounts/{TEST}/statuses"
    )
    texts = [Converter(our_id=TEST).message(parse_status(s)).text for s in page]
    assert texts == [f"Toot number {n}!" for n in (9, 8, 7, 6, 5)]


def test_every_recorded_status_parses_with_consistent_mentions(recorded: Any) -> None:
    """Every recorded status parses; each mention spans @username of a mentions[] entry."""
    names = [
        "test_conversations", "test_get_pagination_info", "test_notifications",
        "test_notifications_dismiss", "test_notifications_mentions_only", "test_status_context",
        "test_status_favourited_by", "test_status_post_None-direct",
        "test_status_post_None-public", "test_status_reply", "test_stream_user_direct",
        "test_unauthed_home_tl_throws",
    ]
    statuses: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "content" in node and "visibility" in node:
                statuses.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in names:
        for interaction in recorded(name).interactions:
            walk(interaction["response_body"])
    assert len(statuses) >= 30
    converter = Converter(our_id=None)
    for raw in statuses:
        message = converter.message(parse_status(raw), raw=raw)
        assert "<" not in message.text
        assert message.text.strip() == message.text
        wanted = {m["username"]: m["id"] for m in raw["mentions"]}
        mentions = [e for e in message.entities if isinstance(e, Mention)]
        assert len(mentions) == len(raw["mentions"])
        for mention in mentions:
            shown = mention.text_in(message.text)
            assert shown.startswith("@")
            assert mention.person == ref(wanted[shown[1:]])


# -- HTML content -------------------------------------------------------------------

# Content strings in the shapes Mastodon's formatter writes: the hashtag
# statuses are the samples of docs.joinmastodon.org/methods/timelines (tag
# timeline); the link is an account note served by mastodon.social.
DOCS_CATS = (
    '<p>Caught on the hop. 😺 </p><p><a href="https://chaos.social/tags/Qualit%C3%A4tskatzen"'
    ' class="mention hashtag" rel="nofollow noopener noreferrer" target="_blank">#<span>'
    'Qualitätskatzen</span></a> <a href="https://chaos.social/tags/cats" class="mention hashtag"'
    ' rel="nofollow noopener noreferrer" target="_blank">#<span>cats</span></a><br>(photo: '
    '<span class="h-card"><a href="https://chaos.social/@kernpanik" class="u-url mention"'
    ' rel="nofollow noopener noreferrer" target="_blank">@<span>kernpanik</span></a></span>'
    " | license: CC BY-NC-SA 4.0)</p>"
)
NEWS_NOTE = (
    '<p>Mehr als Nachrichten! <a href="https://mastodon.social/tags/newsde" class="mention'
    ' hashtag" rel="tag">#<span>newsde</span></a><br />Hier geht&#39;s zum Impressum:<br />'
    '<a href="https://www.news.de/service/imprint/" target="_blank" rel="nofollow noopener"'
    ' translate="no"><span class="invisible">https://www.</span><span class="">'
    'news.de/service/imprint/</span><span class="invisible"></span></a></p>'
)


def test_paragraphs_breaks_hashtags_and_remote_mentions() -> None:
    """Paragraphs become a blank line, <br> a newline; hashtags and mentions get spans."""
    kernpanik = StatusMention(
        id="42", username="kernpanik", url="https://chaos.social/@kernpanik",
        acct="kernpanik@chaos.social",
    )
    text, entities = content_to_text(DOCS_CATS, [kernpanik])
    assert text == (
        "Caught on the hop. 😺 \n\n#Qualitätskatzen #cats\n"
        "(photo: @kernpanik | license: CC BY-NC-SA 4.0)"
    )
    assert [e.text_in(text) for e in entities] == ["#Qualitätskatzen", "#cats", "@kernpanik"]
    assert entities[0] == Hashtag(start=23, end=39, tag="Qualitätskatzen")
    assert entities[2] == Mention(
        start=54, end=64, handle="kernpanik@chaos.social", person=ref("42")
    )


def test_link_keeps_the_hidden_parts_of_its_url() -> None:
    """A shortened link reads as its whole URL, and its entity points at the href."""
    text, entities = content_to_text(NEWS_NOTE)
    assert text == (
        "Mehr als Nachrichten! #newsde\nHier geht's zum Impressum:\n"
        "https://www.news.de/service/imprint/"
    )
    link = entities[-1]
    assert isinstance(link, Link)
    assert link.url == "https://www.news.de/service/imprint/"
    assert link.text_in(text) == "https://www.news.de/service/imprint/"


def test_custom_emoji_shortcodes_stay_in_the_text() -> None:
    """Custom emoji stay as :shortcode: and an <img> emoji reads as its alt text."""
    text, entities = content_to_text(
        '<p>thanks :blobcat: <img src="https://x.test/e.png" alt=":ablobwave:"> ok</p>'
    )
    assert text == "thanks :blobcat: :ablobwave: ok"
    assert entities == ()


def test_quote_fallback_paragraph_is_left_out() -> None:
    """The RE: paragraph Mastodon adds for quote posts is hidden, as Mastodon hides it."""
    text, entities = content_to_text(
        '<p class="quote-inline">RE: <a href="https://m.test/@a/1">m.test/@a/1</a></p>'
        "<p>so true</p>"
    )
    assert text == "so true"
    assert entities == ()


def test_unmatched_mention_keeps_a_handle_without_person() -> None:
    """A mention anchor not in mentions[] is still a mention, without an account ref."""
    text, entities = content_to_text(
        '<p><span class="h-card"><a href="https://far.test/@bob" class="u-url mention">'
        "@<span>bob</span></a></span> hi</p>"
    )
    assert text == "@bob hi"
    assert entities == (Mention(start=0, end=4, handle="bob"),)


def test_layout_whitespace_between_paragraphs_is_not_text() -> None:
    """Newlines a server puts between its paragraph tags do not add blank lines."""
    text, _ = content_to_text("<p>one</p>\n  <p>two</p>\n")
    assert text == "one\n\ntwo"
    assert content_to_text("<pre>  a\n  b</pre>")[0] == "  a\n  b"


def test_visibility_maps_both_ways() -> None:
    """Mastodon's four visibilities map to the core's and back."""
    pairs = {
        "public": "public", "unlisted": "unlisted", "private": "followers", "direct": "private",
    }
    for native, core in pairs.items():
        assert from_mastodon_visibility(native) == core
        assert to_mastodon_visibility(core) == native
    assert from_mastodon_visibility("something-new") == "followers"


def test_direct_ref_leaves_us_out_and_sorts(recorded: Any) -> None:
    """The direct conversation id lists the other participants' ids, sorted."""
    body = recorded("test_stream_user_direct").body("POST", "/api/v1/statuses", nth=3)
    status = parse_status(body)
    assert direct_ref(status, our_id=STREAM_US) == ref(f"direct:{TEST_2}")
    assert direct_ref(status, our_id=TEST_2) == ref(f"direct:{STREAM_US}")


def test_an_account_with_the_bot_flag_is_an_automated_person(recorded: Any) -> None:
    """The recorded mention, its author's ``bot`` flag set (the Account entity's field)."""
    page = recorded("test_notifications_mentions_only").body("GET", "/api/v1/notifications")
    status = page[0]["status"]
    flagged = [{**page[0], "account": {**page[0]["account"], "bot": True},
                "status": {**status, "account": {**status["account"], "bot": True}}}]
    [event] = Converter(our_id=TEST).notifications(flagged)
    assert isinstance(event, MessageReceived)
    assert event.message.author.bot is True
