"""Recorded Mastodon answers and streams through `parse_payload` and `omnichannel replay`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omnichannel.cli import main
from omnichannel.errors import PayloadError
from omnichannel.events import MessageDeleted, MessageReceived, MessageUpdated
from omnichannel.model import Mention
from omnichannel_mastodon import MastodonAdapter

DECODED = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "mastodon" / "decoded"
ADMIN = "117020565693913441"  # the account that mentions us in test_notifications
US_IN_STREAM = "117020617404561855"  # mastodonpy_test, who reads the streams


def _bytes(body: Any) -> bytes:
    """A recorded response body as the bytes that came over the wire."""
    return body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# parse_payload -------------------------------------------------------------------


def test_notification_page_replays_as_poll_reads_it(recorded: Any) -> None:
    """A recorded notifications page gives the mention as a received message, with its entity."""
    body = recorded("test_notifications").body("GET", "/api/v1/notifications")
    [event] = MastodonAdapter.parse_payload(_bytes(body), path="/api/v1/notifications")
    assert isinstance(event, MessageReceived)
    assert event.id == "mastodon:message.received:117020576916218297"
    message = event.message
    assert message.text == "@mastodonpy_test hello!"
    assert (message.author.ref.id, message.author.handle) == (ADMIN, "admin")
    assert message.visibility == "public"
    assert message.from_us is False
    [mention] = message.entities
    assert isinstance(mention, Mention)
    assert mention.handle == "mastodonpy_test"
    assert mention.text_in(message.text) == "@mastodonpy_test"


def test_one_notification_gives_the_same_event_as_the_page(recorded: Any) -> None:
    """/api/v1/notifications/:id and the page agree on the event id (the hub de-duplicates)."""
    recording = recorded("test_notifications")
    page = MastodonAdapter.parse_payload(
        _bytes(recording.body("GET", "/api/v1/notifications")), path="/api/v1/notifications"
    )
    single = MastodonAdapter.parse_payload(
        _bytes(recording.body("GET", "/api/v1/notifications/20")),
        path="http://localhost:3000/api/v1/notifications/20",
    )
    assert [e.id for e in single] == [e.id for e in page]


def test_a_status_is_received_and_ours_when_our_account_is_given(recorded: Any) -> None:
    """/api/v1/statuses/:id gives the status as a message; `account` decides from_us."""
    status = recorded("test_status_post_None-direct").body("POST", "/api/v1/statuses")
    body, path = _bytes(status), f"/api/v1/statuses/{status['id']}"
    [anonymous] = MastodonAdapter.parse_payload(body, path=path)
    [ours] = MastodonAdapter.parse_payload(body, path=path, account="117020565966271181")
    assert isinstance(anonymous, MessageReceived)
    assert isinstance(ours, MessageReceived)
    assert anonymous.message.text == "Toot!"
    assert anonymous.message.visibility == "private"
    assert anonymous.message.from_us is False
    assert ours.message.from_us is True
    assert ours.account == "117020565966271181"


def test_conversations_give_their_last_statuses_oldest_first(recorded: Any) -> None:
    """/api/v1/conversations gives each last status as a direct message, oldest first."""
    body = recorded("test_conversations").body("GET", "/api/v1/conversations")
    events = MastodonAdapter.parse_payload(
        _bytes(body), path="/api/v1/conversations/", account="117020566092212359"
    )
    assert [e.id for e in events] == [
        "mastodon:message.received:117020588388552703",
        "mastodon:message.received:117020593780198542",
    ]
    first, second = events
    assert isinstance(first, MessageReceived)
    assert isinstance(second, MessageReceived)
    assert first.message.text == "@mastodonpy_test pssssst!"
    assert second.message.text == "@admin ilu bby ;3"
    assert second.conversation.kind == "direct"
    assert second.conversation.ref.id == f"direct:{ADMIN}"  # we are left out of the id
    assert second.message.from_us is True


def test_account_statuses_and_timelines_give_each_status_oldest_first(recorded: Any) -> None:
    """The recorded page of an account's statuses gives its five toots, oldest first."""
    account = "/api/v1/accounts/117020565966271181/statuses"
    page = recorded("test_get_pagination_info").body("GET", account)
    for path in (account + "?limit=5", "/api/v1/timelines/home"):
        events = MastodonAdapter.parse_payload(_bytes(page), path=path)
        received = [e for e in events if isinstance(e, MessageReceived)]
        assert len(received) == len(events)
        assert [e.message.text for e in received] == [f"Toot number {n}!" for n in (5, 6, 7, 8, 9)]


def test_context_gives_the_statuses_around_one_under_the_thread_root(recorded: Any) -> None:
    """A context answer gives its ancestors and descendants, all in the root's conversation."""
    path = "/api/v1/statuses/117020585487094447/context"
    empty = recorded("test_status_context").body("GET", path)
    assert MastodonAdapter.parse_payload(_bytes(empty), path=path) == []
    recording = recorded("test_status_reply")
    root = recording.body("POST", "/api/v1/statuses", nth=0)
    reply = recording.body("POST", "/api/v1/statuses", nth=1)
    # A reply to the reply, as a descendant: only the context says which thread it is in.
    deeper = {**reply, "id": "117020583258299999", "in_reply_to_id": reply["id"]}
    context = {"ancestors": [root], "descendants": [deeper]}
    events = MastodonAdapter.parse_payload(
        _bytes(context), path=f"/api/v1/statuses/{reply['id']}/context"
    )
    messages = [e.message for e in events if isinstance(e, MessageReceived)]
    assert [m.ref.id for m in messages] == [root["id"], deeper["id"]]
    assert [m.conversation.id for m in messages] == [root["id"], root["id"]]
    assert messages[1].in_reply_to is not None
    assert messages[1].in_reply_to.id == reply["id"]


def test_user_stream_capture_replays_as_the_stream_reads_it(recorded: Any) -> None:
    """SSE frames give mentions, the edit and the deletion; home-timeline updates give nothing."""
    capture = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/user")
    events = MastodonAdapter.parse_payload(
        _bytes(capture), path="/api/v1/streaming/user", account=US_IN_STREAM
    )
    assert [type(e) for e in events] == [
        MessageReceived, MessageReceived, MessageUpdated, MessageDeleted,
    ]
    mention, direct, edit, deletion = events
    assert isinstance(mention, MessageReceived)
    assert mention.message.text == "@mastodonpy_test beep beep I'm a jeep"
    assert mention.message.author.handle == "admin"
    assert isinstance(direct, MessageReceived)
    assert direct.message.visibility == "private"
    assert direct.message.author.handle == "mastodonpy_test_2"
    assert isinstance(edit, MessageUpdated)
    assert edit.message.text == "only real animals respond."
    assert edit.message.from_us is True
    assert edit.id == (
        "mastodon:message.updated:117024236332527350:2026-08-02T05:22:24.192000+00:00"
    )
    assert isinstance(deletion, MessageDeleted)
    assert deletion.message.id == "117024236332527350"


def test_direct_stream_conversation_frames_give_their_last_status(recorded: Any) -> None:
    """`conversation` frames of the direct stream give the last status, received."""
    capture = recorded("test_stream_user_direct").body("GET", "/api/v1/streaming/direct")
    events = MastodonAdapter.parse_payload(_bytes(capture), path="/api/v1/streaming/direct")
    texts = [e.message.text for e in events if isinstance(e, MessageReceived)]
    assert texts == ["@mastodonpy_test_2 pssssst", "@mastodonpy_test pssssst!"]


def test_without_a_path_a_list_is_a_page_and_text_is_a_stream(recorded: Any) -> None:
    """With no endpoint, a JSON list reads as notifications and SSE text as stream frames."""
    recording = recorded("test_stream_user_direct")
    page = recorded("test_notifications").body("GET", "/api/v1/notifications")
    [event] = MastodonAdapter.parse_payload(_bytes(page))
    assert event.id == "mastodon:message.received:117020576916218297"
    streamed = MastodonAdapter.parse_payload(
        _bytes(recording.body("GET", "/api/v1/streaming/user"))
    )
    assert len(streamed) == 4


# malformed bodies ------------------------------------------------------------------


def test_a_body_that_is_not_json_names_the_network_and_endpoint() -> None:
    """A notifications answer that is not JSON is a PayloadError at `notifications`."""
    with pytest.raises(PayloadError) as info:
        MastodonAdapter.parse_payload(b"<html>502</html>", path="/api/v1/notifications")
    assert info.value.network == "mastodon"
    assert info.value.path == "notifications"


def test_a_broken_notification_is_located_in_the_page(recorded: Any) -> None:
    """A notification without its account fails with the dotted path to the missing field."""
    page = recorded("test_notifications").body("GET", "/api/v1/notifications")
    broken = [{k: v for k, v in page[0].items() if k != "account"}]
    with pytest.raises(PayloadError) as info:
        MastodonAdapter.parse_payload(_bytes(broken), path="/api/v1/notifications")
    assert info.value.network == "mastodon"
    assert info.value.path == "notifications.0.account"


def test_an_endpoint_replay_does_not_read_is_refused(recorded: Any) -> None:
    """verify_credentials holds no events: a PayloadError names the endpoint."""
    body = recorded("test_conversations").body("GET", "/api/v1/accounts/verify_credentials")
    with pytest.raises(PayloadError, match="does not read this endpoint") as info:
        MastodonAdapter.parse_payload(_bytes(body), path="/api/v1/accounts/verify_credentials")
    assert info.value.path == "/api/v1/accounts/verify_credentials"


def test_stream_text_that_is_not_sse_is_refused() -> None:
    """A line that is neither `field: value` nor a comment is located by its index."""
    body = b":)\nevent: delete\nthis is not a stream\n"
    with pytest.raises(PayloadError) as info:
        MastodonAdapter.parse_payload(body, path="/api/v1/streaming/user")
    assert (info.value.network, info.value.path) == ("mastodon", "lines.2")


def test_a_stream_frame_that_is_not_json_is_located() -> None:
    """A notification frame with broken data names the frame it was in."""
    body = b'event: delete\ndata: 1\n\nevent: notification\ndata: {"id": \n\n'
    with pytest.raises(PayloadError) as info:
        MastodonAdapter.parse_payload(body, path="/api/v1/streaming/user")
    assert info.value.path == "events.1"


# the command line ------------------------------------------------------------------


def test_cli_replays_a_decoded_cassette(capsys: pytest.CaptureFixture[str]) -> None:
    """`omnichannel replay mastodon FILE` prints the mention; writes are skipped, exit 0."""
    cassette = DECODED / "mastodonpy__test_notifications.json"
    status, out, err = _run(["replay", "mastodon", str(cassette)], capsys)
    assert status == 0, err
    assert 'text: "@mastodonpy_test hello!"' in out
    assert "from @admin, public" in out
    assert "id=mastodon:message.received:117020576916218297" in out
    assert "skipped: a POST answer" in out
    assert "not parsed: mastodon: bad payload at /api/v1/notifications/unread_count" in out
    assert out.rstrip().endswith("3 events from 3 payloads; 1 not parsed; 2 skipped")


def test_cli_replays_the_account_statuses_of_a_cassette(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pagination cassette's page of statuses replays to its five toots, exit 0."""
    cassette = DECODED / "mastodonpy__test_get_pagination_info.json"
    status, out, err = _run(["replay", "mastodon", str(cassette)], capsys)
    assert status == 0, err
    assert 'text: "Toot number 9!"' in out
    assert out.rstrip().endswith("5 events from 1 payload; 1 not parsed; 20 skipped")


def test_cli_marks_our_messages_with_account(capsys: pytest.CaptureFixture[str]) -> None:
    """--account makes our own edited status show as from us in the stream capture."""
    cassette = DECODED / "mastodonpy__test_stream_user_direct.json"
    status, out, _ = _run(
        ["replay", "mastodon", str(cassette), "--interaction", "13", "--account", US_IN_STREAM],
        capsys,
    )
    assert status == 0
    assert 'from @mastodonpy_test (us), public' in out
    assert "3. message.updated" in out
    assert "4. message.deleted" in out
    assert "4 events from 1 payload" in out


def test_cli_json_lines_carry_the_real_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one event per line with the recorded ids and texts."""
    cassette = DECODED / "mastodonpy__test_conversations.json"
    status, out, _ = _run(["replay", "mastodon", str(cassette), "--interaction", "3", "--json"],
                          capsys)
    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["message"]["ref"]["id"] for line in lines] == [
        "117020588388552703", "117020593780198542",
    ]
    assert lines[1]["message"]["text"] == "@admin ilu bby ;3"


def test_cli_malformed_body_fails_with_a_short_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed body exits 1 with one line naming the network; no traceback."""
    body = tmp_path / "page.json"
    body.write_text('[{"id": "1", "type": "mention"', encoding="utf-8")
    status, out, err = _run(
        ["replay", "mastodon", str(body), "--path", "/api/v1/notifications"], capsys
    )
    assert status == 1
    assert "not parsed: mastodon: bad payload at notifications: the body is not JSON" in out
    assert "Traceback" not in out + err
