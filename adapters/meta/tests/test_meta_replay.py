"""parse_payload and ``omnichannel replay facebook|instagram FILE`` on the recorded payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from omnichannel.cli import main
from omnichannel.errors import PayloadError
from omnichannel.events import MessageReceived
from omnichannel.model import Ref
from omnichannel_meta import FacebookAdapter, InstagramAdapter

ROOT = "tests/vectors"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_webhook_body_replays_as_parse_reads_it(kit: Any) -> None:
    """A delivery (entry list) needs no path; entry.id is the Page, so its comment is ours."""
    body = kit.vector("facebook/restfb__webhooks__feed-comment-add-25.json")
    (event,) = FacebookAdapter.parse_payload(body)
    assert isinstance(event, MessageReceived)
    assert event.id == "facebook:message.received:901097836652708_903438993085259"
    assert event.message.from_us is True


def test_an_instagram_comments_page_is_the_media_thread(kit: Any) -> None:
    """GET /{media}/comments: each comment in the media's thread, timestamps read."""
    body = kit.vector("instagram/pyfacebook__medias__comments_p1.json")
    events = InstagramAdapter.parse_payload(body, path="/v11.0/17846368219941692/comments")
    assert [e.id for e in events] == [
        "instagram:message.received:17858154961981086",
        "instagram:message.received:17874875428706419",
    ]
    first = events[0]
    assert isinstance(first, MessageReceived)
    assert first.message.conversation == Ref(network="instagram", id="17846368219941692")
    assert first.message.created_at == datetime(2020, 6, 1, 10, 56, 52, tzinfo=UTC)


def test_an_instagram_comment_object_keeps_its_user(kit: Any) -> None:
    """One IGComment (user.id + username): the author is known, the media is its thread."""
    body = kit.vector("instagram/pyfacebook__models__ig_reply.json")
    (event,) = InstagramAdapter.parse_payload(body, path="/18107567341036926")
    assert isinstance(event, MessageReceived)
    assert event.message.text == "@yjmjump sex"
    assert (event.message.author.ref.id, event.message.author.handle) == (
        "17841406338772941", "ikroskun")
    assert event.message.conversation.id == "17955956875141196"
    (mention,) = event.message.entities
    assert mention.text_in(event.message.text) == "@yjmjump"
    missing = kit.vector("instagram/restfb__comment_missing_user.json")
    (anonymous,) = InstagramAdapter.parse_payload(missing)
    assert isinstance(anonymous, MessageReceived)
    assert anonymous.message.author.handle == "bincyshiona"
    assert anonymous.message.author.ref.id == "unknown"


def test_a_messenger_message_object_is_a_dm_with_its_customer(kit: Any) -> None:
    """GET /{message-id}: a DM in the conversation of the customer, ours with --account."""
    body = kit.vector("facebook/pyfacebook__messages__message_info.json")
    (theirs,) = FacebookAdapter.parse_payload(body, path="/m_x")
    assert isinstance(theirs, MessageReceived)
    assert theirs.message.visibility == "private"
    assert theirs.message.conversation.id == "2711636948859886"
    assert theirs.message.from_us is False
    (ours,) = FacebookAdapter.parse_payload(body, path="/m_x", account="2711636948859886")
    assert isinstance(ours, MessageReceived)
    assert ours.message.from_us is True
    assert ours.message.conversation.id == "2121008874780932"


def test_a_comments_page_without_ids_is_refused_with_the_place(kit: Any) -> None:
    """python-facebook's page asked no id field: nothing can be keyed, so it is refused."""
    body = kit.vector("facebook/pyfacebook__comments__comments_p1.json")
    with pytest.raises(PayloadError) as caught:
        FacebookAdapter.parse_payload(body, path="/19292868552_10158407654328553/comments")
    assert caught.value.path == "data.0.id"
    with pytest.raises(PayloadError):
        FacebookAdapter.parse_payload(body, path="/19292868552/insights")


def test_replay_cli_prints_the_events(capsys: pytest.CaptureFixture[str]) -> None:
    """omnichannel replay facebook FILE and instagram FILE --path print what the adapter makes."""
    status, out, _ = _run(
        ["replay", "facebook", f"{ROOT}/facebook/restfb__webhooks__messaging-message-basic.json"],
        capsys)
    assert status == 0
    assert 'text: "hello, world!"' in out
    assert "private" in out
    status, out, _ = _run(
        ["replay", "instagram", f"{ROOT}/instagram/restfb__wh-comments-2021.json", "--json"],
        capsys)
    assert status == 0
    (line,) = out.splitlines()
    assert json.loads(line)["message"]["author"]["handle"] == "testuser"
