"""Recorded Bluesky answers and Jetstream lines through `parse_payload` and `omnichannel replay`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnichannel.cli import main
from omnichannel.errors import PayloadError
from omnichannel.events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
)
from omnichannel.model import Link, Mention, Message
from omnichannel_bluesky import BlueskyAdapter

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "bluesky"
DECODED = VECTORS / "decoded"
GOLDEN = VECTORS / "jetstream__golden_v1.jsonl"
BSKYR = "did:plc:5c2r73erhng4bszmxlfdtscf"  # the recorded account (ours)
CHRIS = "did:plc:wpe35pganb6d4pg4ekmfy6u5"  # the other member of the recorded chat
CONVO = "3ku7w6h4vog2d"
Recorded = Callable[..., Any]


def _bytes(body: Any) -> bytes:
    """A recorded response body as the bytes that came over the wire."""
    return json.dumps(body).encode("utf-8")


def _messages(events: list[Event] | tuple[Event, ...] | Any) -> list[Message]:
    found = []
    for event in events:
        assert isinstance(event, MessageReceived)
        found.append(event.message)
    return found


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# parse_payload -------------------------------------------------------------------


def test_notification_page_gives_mentions_replies_and_quotes_oldest_first(
    recorded: Recorded,
) -> None:
    """listNotifications gives its 18 mentions and quotes oldest first, 13 likes; follows none."""
    body = _bytes(recorded("bskyr__n_notifications"))
    events = BlueskyAdapter.parse_payload(
        body, path="/xrpc/app.bsky.notification.listNotifications", account=BSKYR
    )
    likes = [e for e in events if isinstance(e, ReactionAdded)]
    assert len(likes) == 13
    assert {like.target.id.split("/")[2] for like in likes} == {BSKYR}
    messages = _messages([e for e in events if not isinstance(e, ReactionAdded)])
    assert len(messages) == 18
    oldest, newest = messages[0], messages[-1]
    assert oldest.author.handle == "magnusx71.bsky.social"
    assert oldest.author.display_name == "Arga Statistikern"
    assert oldest.text.startswith("Följarkurva på den här appen")
    assert oldest.ref.id == "at://did:plc:dvdagn45jd7yybrbsh3ygs5l/app.bsky.feed.post/3lffbrjglpc2u"
    mention = next(e for e in oldest.entities if isinstance(e, Mention))
    assert mention.text_in(oldest.text) == "@bskyr.bsky.social"  # byte offsets after å, ö, ä
    assert mention.person is not None
    assert mention.person.id == BSKYR
    assert newest.author.handle == "josephjefe.bsky.social"
    assert newest.text.startswith("Ok, @bskyr.bsky.social makes this ridiculously easy.")
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)
    assert not any(m.from_us for m in messages)


def test_post_thread_gives_its_post_with_links_and_image(recorded: Recorded) -> None:
    """getPostThread gives the anchor post with its author, link facets and image."""
    body = _bytes(recorded("bskyr__f_postthread"))
    [message] = _messages(BlueskyAdapter.parse_payload(body, path="app.bsky.feed.getPostThread"))
    assert message.author.handle == "soubhikbarari.bsky.social"
    assert message.author.display_name == "Soubhik Barari"
    assert message.text.startswith("Excited to be a speaker for the \n@rstatsai conf")
    links = [e for e in message.entities if isinstance(e, Link)]
    assert [(link.text_in(message.text), link.url) for link in links] == [
        ("localview.net", "http://localview.net"),
        ("rstats.ai/gov.html", "https://rstats.ai/gov.html"),
    ]
    [image] = message.attachments
    assert image.kind == "image"


def test_chat_messages_need_their_conversation_from_the_query(recorded: Recorded) -> None:
    """getMessages takes convoId from the path's query; our own messages are left out."""
    body = _bytes(recorded("bskyr__c_messages"))
    path = f"/xrpc/chat.bsky.convo.getMessages?convoId={CONVO}&limit=10"
    messages = _messages(BlueskyAdapter.parse_payload(body, path=path, account=BSKYR))
    assert [(m.ref.id, m.text) for m in messages] == [
        ("3ku7wmgfnj426", "Test test test"),
        ("3lphbnrx7l32l", "Can you hear me?"),
    ]
    assert {m.conversation.id for m in messages} == {CONVO}
    assert {m.author.ref.id for m in messages} == {CHRIS}
    assert all(m.visibility == "private" for m in messages)
    everyone = BlueskyAdapter.parse_payload(body, path=path)  # without our DID
    assert [m.text for m in _messages(everyone)] == [
        "Test test test", "Can you hear me?", "Hello", "Hello",
    ]
    with pytest.raises(PayloadError, match="convoId") as info:
        BlueskyAdapter.parse_payload(body, path="chat.bsky.convo.getMessages")
    assert info.value.network == "bluesky"


def test_chat_log_entries_become_messages_with_related_profiles(recorded: Recorded) -> None:
    """getLog: the recorded empty log gives nothing; a create entry gives the message by handle."""
    assert BlueskyAdapter.parse_payload(
        _bytes(recorded("bskyr__c_log")), path="chat.bsky.convo.getLog"
    ) == []
    # A #logCreateMessage (chat.bsky.convo.defs in the recorded lexicons) around
    # the recorded messageView and the recorded member profile.
    view = recorded("bskyr__c_messages")["messages"][2]
    chris = recorded("bskyr__c_get_convo")["convo"]["members"][1]
    log = {"cursor": "2222223ej433u", "logs": [{
        "$type": "chat.bsky.convo.defs#logCreateMessage", "rev": view["rev"],
        "convoId": CONVO, "message": view, "relatedProfiles": [chris],
    }]}
    [message] = _messages(BlueskyAdapter.parse_payload(
        _bytes(log), path="chat.bsky.convo.getLog", account=BSKYR
    ))
    assert message.text == "Can you hear me?"
    assert message.author.handle == "chriskenny.bsky.social"
    assert message.conversation.id == CONVO


def test_jetstream_golden_lines_give_the_one_post() -> None:
    """Of the ten golden Jetstream events only the reply post becomes a message."""
    [message] = _messages(BlueskyAdapter.parse_payload(
        GOLDEN.read_bytes(), path="wss://jetstream1.us-east.bsky.network/subscribe"
    ))
    assert message.text == "Try RSV for a good time !!"
    assert message.author.ref.id == "did:plc:q235v55g5unth4zjjdpacfdr"
    assert message.ref.id == "at://did:plc:q235v55g5unth4zjjdpacfdr/app.bsky.feed.post/3mmoojp4cd223"
    root = "at://did:plc:j76trmiofvaxxpvx2vnb2vwf/app.bsky.feed.post/3mmojbrjwbs26"
    assert message.conversation.id == root
    assert message.in_reply_to is not None
    assert message.in_reply_to.id == root
    ours = _messages(BlueskyAdapter.parse_payload(
        GOLDEN.read_bytes(), path="/subscribe", account="did:plc:q235v55g5unth4zjjdpacfdr"
    ))
    assert ours[0].from_us is True


def test_jetstream_corpus_gives_its_posts_and_its_deletion() -> None:
    """The 152 recorded events give 17 posts received and the one post deletion, in order."""
    body = (VECTORS / "jetstream__expected_v1.jsonl").read_bytes()
    events = BlueskyAdapter.parse_payload(body, path="/subscribe")
    assert [e.type for e in events].count("message.received") == 17
    [gone] = [e for e in events if isinstance(e, MessageDeleted)]
    assert gone.message.id == (
        "at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p")
    assert len(events) == 18


def test_jetstream_update_replays_as_message_updated() -> None:
    """A post update (the golden post with operation "update"; none is recorded) is an edit."""
    line = next(line for line in GOLDEN.read_text(encoding="utf-8").splitlines()
                if '"app.bsky.feed.post"' in line)
    body = line.replace('"operation":"create"', '"operation":"update"').encode()
    [event] = BlueskyAdapter.parse_payload(body, path="/subscribe")
    assert isinstance(event, MessageUpdated)
    assert event.message.text == "Try RSV for a good time !!"


def test_without_a_path_the_body_is_recognised(recorded: Recorded) -> None:
    """With no endpoint, an XRPC answer is known by its key and JSON lines are Jetstream."""
    thread = BlueskyAdapter.parse_payload(_bytes(recorded("bskyr__f_postthread")))
    assert _messages(thread)[0].author.handle == "soubhikbarari.bsky.social"
    assert len(BlueskyAdapter.parse_payload(GOLDEN.read_bytes())) == 1
    with pytest.raises(PayloadError, match="name it"):
        BlueskyAdapter.parse_payload(_bytes(recorded("bskyr__c_get_convo")))


# malformed bodies ------------------------------------------------------------------


def test_a_broken_notification_is_located(recorded: Recorded) -> None:
    """A mention whose record text is not a string fails at its dotted path in the page."""
    page = recorded("bskyr__n_notifications")
    page["notifications"][13]["record"]["text"] = 42
    with pytest.raises(PayloadError) as info:
        BlueskyAdapter.parse_payload(_bytes(page), path="app.bsky.notification.listNotifications")
    assert info.value.network == "bluesky"
    assert info.value.path == "notifications.13.record.text"


def test_a_broken_jetstream_line_names_its_line() -> None:
    """A post event cut short is a PayloadError at its line index."""
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"rkey":"3mmoojp4cd223",', "")
    with pytest.raises(PayloadError) as info:
        BlueskyAdapter.parse_payload("\n".join(lines).encode(), path="/subscribe")
    assert (info.value.network, info.value.path) == ("bluesky", "lines.1.commit.rkey")


def test_not_json_and_unknown_endpoints_are_refused(recorded: Recorded) -> None:
    """A body that is not JSON, or an endpoint replay does not read, is a PayloadError."""
    with pytest.raises(PayloadError, match="not JSON") as info:
        BlueskyAdapter.parse_payload(b"<html>", path="app.bsky.feed.getPostThread")
    assert info.value.network == "bluesky"
    body = _bytes(recorded("bskyr__c_get_convo"))
    with pytest.raises(PayloadError, match="does not read this endpoint") as info:
        BlueskyAdapter.parse_payload(body, path="/xrpc/chat.bsky.convo.getConvo?convoId=x")
    assert info.value.path == "/xrpc/chat.bsky.convo.getConvo"


# the command line ------------------------------------------------------------------


def test_cli_replays_the_notifications_cassette(capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel replay bluesky FILE` prints the mentions with entities, and the likes."""
    cassette = DECODED / "bskyr__n_notifications.json"
    status, out, err = _run(["replay", "bluesky", str(cassette), "--account", BSKYR], capsys)
    assert status == 0, err
    assert "22. message.received" in out
    assert "from @josephjefe.bsky.social (Joseph Hefner), public" in out
    assert 'mention "@bskyr.bsky.social"' in out
    assert "31. reaction.added" in out
    assert "like by @wijama.bsky.social on bluesky:at://" in out
    assert out.rstrip().endswith("31 events from 1 payload")


def test_cli_reads_the_chat_conversation_from_the_cassette_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A getMessages cassette works as recorded: the CLI hands the query to the adapter."""
    cassette = DECODED / "bskyr__c_messages.json"
    status, out, _ = _run(["replay", "bluesky", str(cassette), "--account", BSKYR, "--json"],
                          capsys)
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["message"]["text"] for line in lines] == ["Test test test", "Can you hear me?"]
    assert {line["conversation"]["ref"]["id"] for line in lines} == {CONVO}


def test_cli_replays_jetstream_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A Jetstream capture replays as a raw file, no path needed."""
    status, out, _ = _run(["replay", "bluesky", str(GOLDEN)], capsys)
    assert status == 0
    assert 'text: "Try RSV for a good time !!"' in out
    assert "from @did:plc:q235v55g5unth4zjjdpacfdr, public" in out
    assert "1 event from 1 payload" in out


def test_cli_malformed_body_fails_with_a_short_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed body exits 1 with one line naming the network; no traceback."""
    body = tmp_path / "thread.json"
    body.write_text('{"thread": {"post": ', encoding="utf-8")
    status, out, err = _run(
        ["replay", "bluesky", str(body), "--path", "app.bsky.feed.getPostThread"], capsys
    )
    assert status == 1
    expected = "bluesky: bad payload at app.bsky.feed.getPostThread: the body is not JSON"
    assert f"not parsed: {expected}" in out
    assert "Traceback" not in out + err
