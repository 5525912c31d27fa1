"""Every recorded inbound Bluesky payload parses into the core model, offsets exact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnichannel.adapter import Rejected
from omnichannel.errors import (
    AuthenticationError,
    NotFound,
    PayloadError,
    RateLimited,
    RequestRejected,
    TokenExpired,
    TransientError,
)
from omnichannel.events import MessageReceived, ReactionAdded
from omnichannel.model import Hashtag, Link, Mention
from omnichannel_bluesky._convert import (
    chat_event,
    chat_message,
    chat_page_events,
    entities_from_facets,
    jetstream_deleted,
    jetstream_event,
    jetstream_updated,
    load,
    notification_event,
    thread_messages,
    tid_datetime,
)
from omnichannel_bluesky._errors import is_expired_token, map_error
from omnichannel_bluesky._jetstream import (
    FOLDS_TO_ASCII,
    Deleted,
    JetstreamFilter,
    KnownPosts,
    Matched,
)
from omnichannel_bluesky._wire import (
    ConvoOutput,
    CreateRecordOutput,
    Facet,
    GetLogOutput,
    GetMessagesOutput,
    GetRecordOutput,
    JetstreamEvent,
    JetstreamPostEvent,
    ListConvosOutput,
    ListNotificationsOutput,
    LogEntry,
    MessageView,
    Notification,
    PostThreadOutput,
    Session,
)

BSKYR = "did:plc:5c2r73erhng4bszmxlfdtscf"
CHRIS = "did:plc:wpe35pganb6d4pg4ekmfy6u5"
Recorded = Callable[..., Any]


def _all_events(page: dict[str, Any]) -> list[MessageReceived | ReactionAdded]:
    parsed = load(ListNotificationsOutput, page)
    out = []
    for index, item in enumerate(parsed.notifications):
        event = notification_event(item, our_did=BSKYR, raw=page["notifications"][index])
        if event is not None:
            out.append(event)
    return out


def _events(page: dict[str, Any]) -> list[MessageReceived]:
    return [e for e in _all_events(page) if isinstance(e, MessageReceived)]


def test_notification_page_keeps_mentions_quotes_and_likes(recorded: Recorded) -> None:
    """Of 50 recorded notifications, 11 mentions and 7 quotes are messages, 13 likes reactions."""
    page = recorded("bskyr__n_notifications")
    events = _all_events(page)
    assert len(page["notifications"]) == 50
    assert len(events) == 31
    assert len(_events(page)) == 18
    reasons = [n["reason"] for n in page["notifications"]]
    assert (reasons.count("mention"), reasons.count("quote"), reasons.count("like")) == (11, 7, 13)
    assert sum(isinstance(e, ReactionAdded) for e in events) == 13
    assert load(ListNotificationsOutput, page).cursor == "2024-12-19T06:43:45.863Z"


def test_like_of_our_post_is_a_reaction_by_the_liker(recorded: Recorded) -> None:
    """The recorded like of our post is ReactionAdded on that post (with its cid) by the liker."""
    page = recorded("bskyr__n_notifications")
    raw = page["notifications"][0]
    assert raw["reason"] == "like"
    event = notification_event(load(Notification, raw), our_did=BSKYR)
    assert isinstance(event, ReactionAdded)
    post = "at://did:plc:5c2r73erhng4bszmxlfdtscf/app.bsky.feed.post/3lpdf2hyvhd2m"
    assert event.target.id == post
    assert event.target.extra == {
        "cid": "bafyreibiviuzh3w62x2dyhihzp4n5dtuu6mc3pv5h6nxiyqzdarebtpjfa"}
    assert event.by.ref.id == "did:plc:qy6jyj4tpbqb33a44wx4gsl5"
    assert event.by.handle == "wijama.bsky.social"
    assert event.reaction == "like"
    assert event.occurred_at == datetime(2025, 5, 17, 8, 44, 44, 457000, tzinfo=UTC)
    assert event.id == f"bluesky:reaction.added:{post}:did:plc:qy6jyj4tpbqb33a44wx4gsl5:like"
    assert event.account == BSKYR


def test_two_likers_of_one_post_are_two_events(recorded: Recorded) -> None:
    """Each liker's like of the same post has its own event id; reading one twice gives one id."""
    page = recorded("bskyr__n_notifications")
    likes = [notification_event(load(Notification, n), our_did=BSKYR)
             for n in page["notifications"][:2]]
    again = notification_event(load(Notification, page["notifications"][0]), our_did=BSKYR)
    assert all(isinstance(e, ReactionAdded) for e in likes)
    assert likes[0] is not None
    assert likes[1] is not None
    assert likes[0].target.id == likes[1].target.id
    assert likes[0].id != likes[1].id
    assert again is not None
    assert again.id == likes[0].id


def test_like_of_a_post_that_is_not_ours_gives_no_event(recorded: Recorded) -> None:
    """A like whose subject is another account's post, or a feed generator, is not a reaction."""
    raw = recorded("bskyr__n_notifications")["notifications"][0]
    notification = load(Notification, raw)
    assert notification_event(notification, our_did=CHRIS) is None
    generator = {**raw, "record": {**raw["record"], "subject": {
        **raw["record"]["subject"],
        "uri": f"at://{BSKYR}/app.bsky.feed.generator/helpdesk"}}}
    assert notification_event(load(Notification, generator), our_did=BSKYR) is None


def test_mention_reply_keeps_uri_cid_root_and_parent(recorded: Recorded) -> None:
    """A mention that is itself a reply keeps its strong ref, the thread root and the parent."""
    event = _events(recorded("bskyr__n_notifications"))[0]
    message = event.message
    assert message.ref.id == "at://did:plc:lprqqpoyjspuma25n5gofocf/app.bsky.feed.post/3lmicbemya22g"
    assert message.ref.extra == {
        "cid": "bafyreibnife55kb4vfoqe2enztto4n2nrgualkhx3ovox46fm6e6q77ehu"}
    assert message.conversation.id == (
        "at://did:plc:lprqqpoyjspuma25n5gofocf/app.bsky.feed.post/3lmiagxqgas2s")
    assert message.conversation.extra == {
        "cid": "bafyreif53vdtky5gaclah3gut5u7yj4bjpk3qazrqlpwsxfi6xq2fu3tpu"}
    assert message.in_reply_to is not None
    assert message.in_reply_to.id.endswith("/3lmib4yep2k2g")
    assert message.author.handle == "josephjefe.bsky.social"
    assert message.author.display_name == "Joseph Hefner"
    assert message.created_at == datetime(2025, 4, 10, 20, 1, 53, 909000, tzinfo=UTC)
    assert message.visibility == "public"
    assert not message.from_us
    assert event.id == f"bluesky:message.received:{message.ref.id}"
    assert event.conversation.kind == "thread"
    assert event.account == BSKYR
    assert message.raw is not None
    assert message.raw["reason"] == "mention"


def test_mention_facets_become_entities_on_their_characters(recorded: Recorded) -> None:
    """The mention and the shortened link of the recorded mention cover the right text."""
    message = _events(recorded("bskyr__n_notifications"))[0].message
    mention, link = message.entities
    assert isinstance(mention, Mention)
    assert mention.text_in(message.text) == "@bskyr.bsky.social"
    assert mention.handle == "bskyr.bsky.social"
    assert mention.person is not None
    assert mention.person.id == BSKYR
    assert isinstance(link, Link)
    assert link.text_in(message.text) == "christophertkenny.com/bskyr/index...."
    assert link.url == "https://christophertkenny.com/bskyr/index.html"


def test_image_embed_becomes_attachment_with_alt_text(recorded: Recorded) -> None:
    """The recorded image embed gives an image attachment with its alt text and size."""
    message = _events(recorded("bskyr__n_notifications"))[0].message
    (image,) = message.attachments
    assert image.kind == "image"
    assert image.alt_text is not None
    assert image.alt_text.startswith("library(bskyr)")
    assert (image.width, image.height) == (1176, 856)
    assert image.mime_type == "image/jpeg"
    assert str(image.url).endswith(
        "/did:plc:lprqqpoyjspuma25n5gofocf/"
        "bafkreifjraozxbfljjv43pqi5q5wjzea4rgujvnxugy2cjdcj3fuqe4qky@jpeg")


def test_non_ascii_post_facets_land_after_accented_letters(recorded: Recorded) -> None:
    """In the Swedish post (å, ä, ö before every facet) each entity covers its own text."""
    events = _events(recorded("bskyr__n_notifications"))
    message = next(e.message for e in events if e.message.text.startswith("Följarkurva"))
    shown = [(entity.type, entity.text_in(message.text)) for entity in message.entities]
    assert shown == [
        ("mention", "@bskyr.bsky.social"),
        ("link", "posit.cloud"),
        ("mention", "@chriskenny.bsky.social"),
        ("hashtag", "#rstats"),
        ("hashtag", "#ggplot2"),
    ]
    tags = [entity.tag for entity in message.entities if isinstance(entity, Hashtag)]
    assert tags == ["rstats", "ggplot2"]


def test_quote_of_our_post_is_its_own_thread(recorded: Recorded) -> None:
    """A quote that replies to nothing is the root of its own conversation."""
    events = _events(recorded("bskyr__n_notifications"))
    quote = next(e for e in events if e.message.ref.id.endswith("/3lktjjvxvdk2g"))
    assert quote.message.conversation == quote.message.ref
    assert quote.message.in_reply_to is None
    assert quote.message.author.ref.id == CHRIS


def test_emoji_post_links_land_on_the_right_characters(recorded: Recorded) -> None:
    """In the recorded thread post, links after 📈, ✨ and ’ cover exactly their text."""
    thread = load(PostThreadOutput, recorded("bskyr__f_postthread")).thread
    (message,) = thread_messages(thread, our_did=None)
    assert "📈" in message.text
    assert "✨" in message.text
    first, second = message.entities
    assert isinstance(first, Link)
    assert isinstance(second, Link)
    assert first.text_in(message.text) == "localview.net"
    assert first.url == "http://localview.net"
    assert second.text_in(message.text) == "rstats.ai/gov.html"
    assert second.url == "https://rstats.ai/gov.html"
    assert message.text[: first.start].endswith("(")
    assert str(message.attachments[0].url) == (
        "https://cdn.bsky.app/img/feed_fullsize/plain/did:plc:ic6zqvuw5ulmfpjiwnhsr2ns/"
        "bafkreictkyws7qbruuupes52t6k5o5o5qfggf7pm6urzz7dyty53gzu3h4@jpeg")


def test_thread_with_record_and_media_embed_parses(vector_file: Callable[[str], Any]) -> None:
    """A recorded thread view whose post quotes a record with media keeps the image."""
    data = vector_file("marshalx__thread_view_post_with_embed_media.json")
    thread = load(PostThreadOutput, data).thread
    messages = thread_messages(thread, our_did="did:plc:kvwvcn5iqfooopmyzvb4qzba")
    anchor = next(m for m in messages if m.ref.id.endswith("/3kaheyt6vpc22"))
    assert anchor.text == ""
    assert anchor.from_us
    assert [a.kind for a in anchor.attachments] == ["image"]
    assert anchor.author.handle == "test.marshal.dev"


def test_get_record_output_parses(vector_file: Callable[[str], Any]) -> None:
    """The recorded getRecord answer parses with its URI, CID and post value."""
    record = load(GetRecordOutput, vector_file("marshalx__post_record.json"))
    assert record.cid == "bafyreifzi5xyrf3c5jw7cci4zrltyl25ik2dboznop4qo4cotcfbyjtita"
    assert record.value["text"] == "new text114"


def test_chat_messages_parse_as_private_messages(recorded: Recorded) -> None:
    """The four recorded chat messages become private messages in their conversation."""
    page = load(GetMessagesOutput, recorded("bskyr__c_messages"))
    assert page.cursor == "222222226r2sq"
    views = [load(MessageView, item) for item in page.messages]
    messages = [chat_message(v, convo_id="3ku7w6h4vog2d", our_did=BSKYR) for v in views]
    assert [m.text for m in messages] == ["Hello", "Hello", "Can you hear me?", "Test test test"]
    hear = messages[2]
    assert hear.is_private
    assert hear.ref.id == "3lphbnrx7l32l"
    assert hear.ref.extra == {"convo": "3ku7w6h4vog2d"}
    assert hear.conversation.id == "3ku7w6h4vog2d"
    assert hear.author.ref.id == CHRIS
    assert not hear.from_us
    assert messages[0].from_us
    assert hear.created_at == datetime(2025, 5, 18, 14, 33, 51, 935000, tzinfo=UTC)


def test_chat_log_entry_from_someone_else_is_received(recorded: Recorded) -> None:
    """A logCreateMessage (lexicon shape around a recorded messageView) is a direct event."""
    view = recorded("bskyr__c_messages")["messages"][2]
    entry = {
        "$type": "chat.bsky.convo.defs#logCreateMessage",
        "rev": "2222223ej42tu",
        "convoId": "3ku7w6h4vog2d",
        "message": view,
    }
    event = chat_event(load(LogEntry, entry), our_did=BSKYR, raw=entry)
    assert event is not None
    assert event.conversation.kind == "direct"
    assert event.message.text == "Can you hear me?"
    assert event.id == "bluesky:message.received:3lphbnrx7l32l"
    ours = {**entry, "message": recorded("bskyr__c_messages")["messages"][0]}
    assert chat_event(load(LogEntry, ours), our_did=BSKYR) is None


def test_empty_chat_log_keeps_its_cursor(recorded: Recorded) -> None:
    """The recorded getLog answer has no entries and a cursor to resume from."""
    log = load(GetLogOutput, recorded("bskyr__c_log"))
    assert log.logs == ()
    assert log.cursor == "2222223ej433u"


@pytest.mark.parametrize("name", ["bskyr__c_for_members", "bskyr__c_get_convo"])
def test_convo_answers_parse_with_both_members(recorded: Recorded, name: str) -> None:
    """getConvoForMembers and getConvo give the conversation id and its two members."""
    convo = load(ConvoOutput, recorded(name)).convo
    assert convo.id == "3ku7w6h4vog2d"
    assert {m.did for m in convo.members} == {BSKYR, CHRIS}


def test_listed_convos_give_members_and_unread_counts(recorded: Recorded) -> None:
    """listConvos gives the recorded conversation with its two members and nothing unread."""
    [convo] = load(ListConvosOutput, recorded("bskyr__c_list")).convos
    assert convo.id == "3ku7w6h4vog2d"
    assert convo.unread_count == 0
    assert {m.did for m in convo.members} == {BSKYR, CHRIS}
    assert {m.handle for m in convo.members} == {"bskyr.bsky.social", "chriskenny.bsky.social"}


def test_sent_message_and_reaction_answers_parse(recorded: Recorded) -> None:
    """sendMessage's messageView and addReaction's wrapped message both parse."""
    sent = load(MessageView, recorded("bskyr__c_send"))
    assert (sent.id, sent.text) == ("3lprddijuyg26", "[example] sent with bskyr")
    reacted = load(MessageView, recorded("bskyr__c_add_reaction")["message"])
    assert reacted.id == "3lphbnrx7l32l"


@pytest.mark.parametrize("name", ["bskyr__repo_auth_direct", "bskyr__repo_auth_refresh"])
def test_session_parses_and_names_its_pds(recorded: Recorded, name: str) -> None:
    """The recorded session gives our DID, handle and PDS host, and never shows tokens."""
    session = load(Session, recorded(name))
    assert session.did == BSKYR
    assert session.handle == "bskyr.bsky.social"
    assert session.pds_endpoint() == "https://puffball.us-east.host.bsky.network"
    assert "accessJwt" not in repr(session)
    assert "access_jwt" not in repr(session)


@pytest.mark.parametrize(
    ("name", "uri_tail"),
    [
        ("bskyr__r_like", "app.bsky.feed.like/3lpkeypxcth2a"),
        ("bskyr__r_post_text", "app.bsky.feed.post/3lprdud4gi72i"),
        ("bskyr__r_post_emoji", "app.bsky.feed.post/3lprdugknkr2k"),
        ("bskyr__r_post_reply", "app.bsky.feed.post/3lprdue7ggw26"),
    ],
)
def test_create_record_answers_parse(recorded: Recorded, name: str, uri_tail: str) -> None:
    """Every recorded createRecord answer gives the new record's URI and CID."""
    created = load(CreateRecordOutput, recorded(name))
    assert created.uri.endswith(uri_tail)
    assert created.cid.startswith("bafyrei")
    assert created.validation_status == "valid"


def test_reply_parent_record_facets_are_exact(interactions: Callable[[str], Any]) -> None:
    """The parent fetched before the recorded reply has its mention and link on their text."""
    parent = interactions("bskyr__r_post_reply")[1]["response_body"]
    record = load(GetRecordOutput, parent)
    text = record.value["text"]
    facets = [load(Facet, f) for f in record.value["facets"]]
    mention, link = entities_from_facets(text, facets)
    assert mention.text_in(text) == "@bskyr.bsky.social"
    assert link.text_in(text) == "https://christophertkenny.com/bskyr/"


def test_bad_facets_are_dropped_not_fatal() -> None:
    """Facets outside the text, inverted, or inside a character are left out."""
    text = "é @a.test"
    facets = [
        load(Facet, {"index": {"byteStart": 1, "byteEnd": 3}, "features": [
            {"$type": "app.bsky.richtext.facet#tag", "tag": "x"}]}),
        load(Facet, {"index": {"byteStart": 9, "byteEnd": 3}, "features": [
            {"$type": "app.bsky.richtext.facet#tag", "tag": "x"}]}),
        load(Facet, {"index": {"byteStart": 3, "byteEnd": 99}, "features": [
            {"$type": "app.bsky.richtext.facet#tag", "tag": "x"}]}),
        load(Facet, {"index": {"byteStart": 3, "byteEnd": 10}, "features": [
            {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:a"},
            {"$type": "app.bsky.richtext.facet#unknown"}]}),
    ]
    (mention,) = entities_from_facets(text, facets)
    assert mention.text_in(text) == "@a.test"


def test_malformed_page_is_payload_error_with_path() -> None:
    """A notification without an author raises PayloadError naming the network and field."""
    page = {"notifications": [{"uri": "at://x/app.bsky.feed.post/1", "cid": "c",
                               "reason": "mention", "record": {}, "indexedAt": "x"}]}
    with pytest.raises(PayloadError) as info:
        load(ListNotificationsOutput, page)
    assert info.value.network == "bluesky"
    assert info.value.path == "notifications.0.author"


def test_tid_record_keys_decode_to_their_time() -> None:
    """A TID record key decodes to the microsecond timestamp it carries."""
    when = tid_datetime("3lprdud4gi72i")
    assert when is not None
    assert when.year == 2025
    assert tid_datetime("self") is None


# --- Jetstream ------------------------------------------------------------------------


def test_every_golden_jetstream_event_parses(jetstream_lines: Callable[[str], list[str]]) -> None:
    """All ten golden Jetstream events parse; exactly one is a post creation."""
    lines = jetstream_lines("golden_v1")
    events = [JetstreamEvent.model_validate_json(line) for line in lines]
    assert len(events) == 10
    assert {e.kind for e in events} == {"commit", "identity", "account"}
    posts = [e for e in events if e.commit and e.commit.collection == "app.bsky.feed.post"]
    assert len(posts) == 1


def test_golden_reply_becomes_message_addressed_to_its_root(
    jetstream_lines: Callable[[str], list[str]],
) -> None:
    """The golden post, a reply, becomes a message whose conversation is its root."""
    line = next(line for line in jetstream_lines("golden_v1") if '"app.bsky.feed.post"' in line)
    post = JetstreamPostEvent.model_validate_json(line)
    event = jetstream_event(post, our_did=None)
    message = event.message
    assert message.ref.id == "at://did:plc:q235v55g5unth4zjjdpacfdr/app.bsky.feed.post/3mmoojp4cd223"
    assert message.ref.extra == {
        "cid": "bafyreicl7rzkxdrm4zz2ehbx52kuk3mvfow6p3gzfys72r5grvskxoswy4"}
    assert message.conversation.id == (
        "at://did:plc:j76trmiofvaxxpvx2vnb2vwf/app.bsky.feed.post/3mmojbrjwbs26")
    assert message.text == "Try RSV for a good time !!"
    assert message.author.ref.id == "did:plc:q235v55g5unth4zjjdpacfdr"
    assert event.id == f"bluesky:message.received:{message.ref.id}"


def test_every_corpus_jetstream_event_parses(jetstream_lines: Callable[[str], list[str]]) -> None:
    """All 152 corpus events parse; the 17 post creations become messages."""
    lines = jetstream_lines("expected_v1")
    events = [JetstreamEvent.model_validate_json(line) for line in lines]
    assert len(events) == 152
    created = [
        JetstreamPostEvent.model_validate_json(line)
        for line, event in zip(lines, events, strict=True)
        if event.commit is not None and event.commit.collection == "app.bsky.feed.post"
        and event.commit.operation == "create"
    ]
    assert len(created) == 17
    messages = [jetstream_event(post, our_did=None).message for post in created]
    assert all(message.created_at.year == 2026 for message in messages)


def test_jetstream_hashtag_after_text_and_before_emoji(
    jetstream_lines: Callable[[str], list[str]],
) -> None:
    """The corpus post with 😂 after #IndieRebellion keeps both tags on their text."""
    keep = JetstreamFilter(did=None, keywords=["rebellion"])
    matched = [m for line in jetstream_lines("expected_v1") if (m := keep.match_line(line))]
    assert len(matched) == 1
    message = jetstream_event(matched[0].event, our_did=None).message
    shown = [entity.text_in(message.text) for entity in message.entities]
    assert shown == ["#HowToTellAiToShutUp", "#IndieRebellion"]
    assert message.text[message.entities[1].end :].startswith(" 😂")


def test_filter_keeps_replies_to_our_posts(jetstream_lines: Callable[[str], list[str]]) -> None:
    """With our DID as the golden reply's parent author, the filter keeps that reply only."""
    keep = JetstreamFilter(did="did:plc:j76trmiofvaxxpvx2vnb2vwf")
    kept = [m for line in jetstream_lines("golden_v1") if (m := keep.match_line(line))]
    assert [m.event.commit.rkey for m in kept] == ["3mmoojp4cd223"]


def test_filter_keeps_mentions_by_facet_or_handle() -> None:
    """A mention facet with our DID, or @our.handle in the text, makes a post ours."""
    keep = JetstreamFilter(did="did:plc:ours", handle="Shop.Example.com")
    base = ('{"did":"did:plc:them","time_us":1,"kind":"commit","commit":{"rev":"r",'
            '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
            '"record":{"$type":"app.bsky.feed.post","createdAt":"2026-01-01T00:00:00Z",')
    by_facet = base + ('"text":"hi you","facets":[{"index":{"byteStart":0,"byteEnd":2},'
                       '"features":[{"$type":"app.bsky.richtext.facet#mention",'
                       '"did":"did:plc:ours"}]}]}}}')
    by_handle = base + '"text":"ça va @shop.example.COM ?"}}}'
    by_nobody = base + '"text":"ça va @someone.else ?"}}}'
    assert keep.match_line(by_facet) is not None
    assert keep.match_line(by_handle) is not None
    assert keep.match_line(by_nobody) is None


def test_filter_ignores_our_own_posts_and_deletes() -> None:
    """Our own posts and post deletions are never kept."""
    keep = JetstreamFilter(did="did:plc:ours", keywords=["refund"])
    own = ('{"did":"did:plc:ours","time_us":1,"kind":"commit","commit":{"rev":"r",'
           '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
           '"record":{"text":"refund policy","createdAt":"2026-01-01T00:00:00Z"}}}')
    deleted = ('{"did":"did:plc:x","time_us":2,"kind":"commit","commit":{"rev":"r",'
               '"operation":"delete","collection":"app.bsky.feed.post","rkey":"refund"}}')
    assert keep.match_line(own) is None
    assert keep.match_line(deleted) is None


def test_keyword_hidden_behind_json_escape_still_matches() -> None:
    """A keyword written with a JSON \\u escape is found (the byte test never skips it)."""
    keep = JetstreamFilter(did=None, keywords=["refund"])
    line = ('{"did":"did:plc:x","time_us":1,"kind":"commit","commit":{"rev":"r",'
            '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
            '"record":{"text":"need a \\u0072efund","createdAt":"2026-01-01T00:00:00Z"}}}')
    assert keep.match_line(line) is not None


def test_fold_set_holds_every_character_whose_case_fold_is_ascii() -> None:
    """FOLDS_TO_ASCII lists every non-ASCII character whose fold or lower case has ASCII."""
    folding = [
        ch for ch in map(chr, range(0x80, 0x110000))
        if any(c.isascii() for c in ch.casefold() + ch.lower())
    ]
    assert folding
    assert all(FOLDS_TO_ASCII.fullmatch(ch) for ch in folding)


def test_keyword_reached_through_a_case_fold_still_matches() -> None:
    """A keyword spelled with ſ (long s, folding to s) is found: the byte test lets it through."""
    keep = JetstreamFilter(did=None, keywords=["service"])
    line = ('{"did":"did:plc:x","time_us":1,"kind":"commit","commit":{"rev":"r",'
            '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
            '"record":{"text":"bad ſervice 😠","createdAt":"2026-01-01T00:00:00Z"}}}')
    assert keep.match_line(line) is not None
    assert keep.match_line(line.replace("ſervice", "servant")) is None


RECORDED_DELETE = "at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p"


def test_recorded_deletion_is_kept_only_for_a_known_post(
    jetstream_lines: Callable[[str], list[str]],
) -> None:
    """The recorded post deletion passes the filter once the post is known, and not before."""
    lines = jetstream_lines("expected_v1")
    known = KnownPosts()
    keep = JetstreamFilter(did=BSKYR, keywords=["refund"], known=known)
    assert [m for line in lines if isinstance(m := keep.match_line(line), Deleted)] == []
    known.add(RECORDED_DELETE)
    [gone] = [m for line in lines if isinstance(m := keep.match_line(line), Deleted)]
    assert gone.uri == RECORDED_DELETE
    assert gone.time_us == 1783175888377628
    event = jetstream_deleted(gone.uri, time_us=gone.time_us, our_did=BSKYR)
    assert event.id == f"bluesky:message.deleted:{RECORDED_DELETE}"
    assert event.occurred_at == datetime(2026, 7, 4, 14, 38, 8, 377628, tzinfo=UTC)


def test_update_of_a_known_post_is_kept_and_becomes_message_updated(
    jetstream_lines: Callable[[str], list[str]],
) -> None:
    """A known post's update passes and becomes MessageUpdated naming its new cid.

    No post update is recorded: the line is the recorded golden post with its
    operation set to "update", the shape Jetstream documents for updates.
    """
    line = next(line for line in jetstream_lines("golden_v1") if '"app.bsky.feed.post"' in line)
    update = line.replace('"operation":"create"', '"operation":"update"')
    uri = "at://did:plc:q235v55g5unth4zjjdpacfdr/app.bsky.feed.post/3mmoojp4cd223"
    known = KnownPosts()
    keep = JetstreamFilter(did=BSKYR, known=known)
    assert keep.match_line(update) is None  # not about us, not known
    known.add(uri)
    matched = keep.match_line(update)
    assert isinstance(matched, Matched)
    assert (matched.operation, matched.uri) == ("update", uri)
    event = jetstream_updated(matched.event, our_did=BSKYR)
    cid = "bafyreicl7rzkxdrm4zz2ehbx52kuk3mvfow6p3gzfys72r5grvskxoswy4"
    assert event.id == f"bluesky:message.updated:{uri}:{cid}"
    assert event.message.text == "Try RSV for a good time !!"
    assert event.message.edited_at == event.occurred_at
    assert event.occurred_at == datetime.fromtimestamp(matched.event.time_us / 1e6, UTC)


def test_known_posts_forget_the_oldest_first() -> None:
    """The memory of delivered posts is bounded: the oldest leaves, its record key with it."""
    known = KnownPosts(size=2)
    for n in range(3):
        known.add(f"at://did:plc:a/app.bsky.feed.post/rk{n}")
    assert "at://did:plc:a/app.bsky.feed.post/rk0" not in known
    assert not known.may_hold("rk0")
    assert known.may_hold("rk2")
    assert known.forget("at://did:plc:a/app.bsky.feed.post/rk2") is None
    assert not known.may_hold("rk2")
    assert len(known) == 1


def test_malformed_post_event_is_payload_error() -> None:
    """A post creation without a record is a PayloadError with the network."""
    keep = JetstreamFilter(did=None, keywords=["x"])
    line = ('{"did":"did:plc:x","time_us":1,"kind":"commit","commit":{"rev":"r",'
            '"operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"c",'
            '"record":{"text":["x"]}}}')
    with pytest.raises(PayloadError) as info:
        keep.match_line(line)
    assert info.value.network == "bluesky"


# --- errors ---------------------------------------------------------------------------


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_recorded_validation_error_is_request_rejected(recorded: Recorded) -> None:
    """The recorded 300-grapheme refusal maps to RequestRejected with the XRPC name."""
    error = map_error(_response(400, recorded("bskyr__r_post_errors")))
    assert isinstance(error, RequestRejected)
    assert error.code == "InvalidRequest"
    assert error.status == 400
    assert "300 graphemes" in str(error)


def test_xrpc_errors_map_onto_the_tree() -> None:
    """Expired, invalid, missing, rate-limited and failing answers get their error classes."""
    expired = _response(400, {"error": "ExpiredToken", "message": "Token has expired"})
    assert isinstance(map_error(expired), TokenExpired)
    assert is_expired_token(expired)
    assert not is_expired_token(_response(400, {"error": "InvalidRequest"}))
    assert isinstance(map_error(_response(401, {"error": "AuthenticationRequired"})),
                      AuthenticationError)
    assert isinstance(map_error(_response(400, {"error": "InvalidToken"})), AuthenticationError)
    missing = map_error(_response(400, {"error": "InvalidRequest",
                                        "message": "Could not locate record: at://x"}))
    assert isinstance(missing, NotFound)
    assert isinstance(map_error(_response(500, {"error": "InternalServerError"})),
                      TransientError)
    limited = map_error(_response(
        429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        {"RateLimit-Limit": "3000", "RateLimit-Remaining": "0",
         "RateLimit-Reset": "1747676784", "RateLimit-Policy": "3000;w=300"}))
    assert isinstance(limited, RateLimited)
    assert limited.reset_at == datetime.fromtimestamp(1747676784, UTC)
    assert limited.code == "RateLimitExceeded"


def test_malformed_chat_message_is_reported_when_asked(recorded: Recorded) -> None:
    """getMessages with a bad message: reported at its index with a list, raised without one."""
    page = recorded("bskyr__c_messages")
    del page["messages"][3]["sender"]
    parsed = load(GetMessagesOutput, page)
    rejected: list[Rejected] = []
    events = chat_page_events(parsed, convo_id="3ku7w6h4vog2d", our_did=BSKYR, rejected=rejected)
    assert [e.message.text for e in events] == ["Can you hear me?"]
    [refused] = rejected
    assert refused.path == "messages.3.sender"
    with pytest.raises(PayloadError) as info:
        chat_page_events(parsed, convo_id="3ku7w6h4vog2d", our_did=BSKYR)
    assert info.value.path == "messages.3.sender"


def test_an_author_with_the_bot_label_is_an_automated_person(recorded: Recorded) -> None:
    """The recorded page, one mention's author given the ``bot`` self-label (lexicon shape)."""
    page = recorded("bskyr__n_notifications")
    mention = next(n for n in page["notifications"] if n["reason"] == "mention")
    did = mention["author"]["did"]
    labelled = {**page, "notifications": [{
        **mention,
        "author": {**mention["author"], "labels": [
            {"src": did, "uri": f"at://{did}/app.bsky.actor.profile/self", "val": "bot",
             "cts": "2026-03-20T10:00:00.000Z"}]},
    }]}
    [automated] = _events(labelled)
    assert automated.message.author.bot is True
    negated = {**labelled, "notifications": [{
        **labelled["notifications"][0],
        "author": {**labelled["notifications"][0]["author"], "labels": [
            {"src": did, "val": "bot", "neg": True}]},
    }]}
    [human] = _events(negated)
    assert human.message.author.bot is None
    [plain] = _events({**page, "notifications": [mention]})
    assert plain.message.author.bot is None
