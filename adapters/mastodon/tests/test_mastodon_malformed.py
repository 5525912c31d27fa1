"""Malformed items cost themselves only, and a status without content is never an empty message."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx

from omnichannel.errors import PayloadError
from omnichannel.events import MessageReceived
from omnichannel.model import Mention
from omnichannel_mastodon import MastodonAdapter
from omnichannel_mastodon._convert import Converter, parse_status

from .test_mastodon_adapter import BASE, adapter, admin, serve_open, three_notifications

DEEP = b"[" * 100_000 + b"]" * 100_000


def deleted_status(recorded: Any) -> dict[str, Any]:
    """The recorded answer to DELETE /api/v1/statuses/:id: the source text, no content."""
    body: dict[str, Any] = recorded("test_status_reply").body(
        "DELETE", "/api/v1/statuses/117020583258292382")
    return body


def test_recorded_delete_answer_has_text_and_no_content(recorded: Any) -> None:
    """The premise: Mastodon's DELETE answer carries ``text`` instead of ``content``."""
    body = deleted_status(recorded)
    assert "content" not in body
    assert body["text"]


def test_status_without_content_takes_its_source_text_and_mentions(recorded: Any) -> None:
    """A status with ``text`` and no ``content`` is a message with that text, mentions found."""
    body = deleted_status(recorded)
    status = parse_status(body)
    message = Converter(our_id="1").message(status)
    assert message.text == body["text"]
    assert message.text != ""
    mentions = [e for e in message.entities if isinstance(e, Mention)]
    assert [m.handle for m in mentions] == [m["acct"] for m in body["mentions"]]
    for mention in mentions:
        assert message.text[mention.start:mention.end].startswith("@")
    assert all(m.person is not None for m in mentions)


def test_status_without_content_or_text_is_refused(recorded: Any) -> None:
    """Neither ``content`` nor ``text``: a PayloadError at ``content``, never an empty message."""
    body = deleted_status(recorded)
    del body["text"]
    with pytest.raises(PayloadError) as info:
        Converter(our_id="1").message(parse_status(body))
    assert info.value.path == "content"


def test_replay_of_the_delete_answer_is_the_source_text(recorded: Any) -> None:
    """parse_payload of the recorded DELETE answer gives the status with its text."""
    body = deleted_status(recorded)
    [event] = MastodonAdapter.parse_payload(json.dumps(body).encode(),
                                            path="/api/v1/statuses/117020583258292382")
    assert isinstance(event, MessageReceived)
    assert event.message.text == body["text"]


async def test_unexpected_exception_converting_a_notification_is_rejected(
    respx_mock: respx.MockRouter, recorded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception converting one notification (a KeyError) rejects it; the rest arrive."""
    page = three_notifications(recorded)
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, json=page)
    real = Converter.notification_events
    spoiled = page[1]["status"]["id"]

    def flaky(self: Converter, notification: Any, **kwargs: Any) -> Any:
        if notification.status is not None and notification.status.id == spoiled:
            raise KeyError("surprise")
        return real(self, notification, **kwargs)

    monkeypatch.setattr(Converter, "notification_events", flaky)
    async with adapter() as mastodon:
        batch = await mastodon.poll("19")
    assert len(batch.events) == 2
    [rejected] = batch.rejected
    assert rejected.reason == "unreadable item (KeyError)"
    assert rejected.path == "notifications.1"
    assert json.loads(rejected.body) == page[1]
    assert batch.cursor == "25"


async def test_deeply_nested_page_is_a_payload_error(
    respx_mock: respx.MockRouter, recorded: Any
) -> None:
    """A page nested 100,000 deep is a PayloadError from poll, not a RecursionError."""
    serve_open(respx_mock, recorded, me=admin(recorded))
    respx_mock.get(f"{BASE}/api/v1/notifications").respond(200, content=DEEP)
    async with adapter() as mastodon:
        with pytest.raises(PayloadError):
            await mastodon.poll("19")


@pytest.mark.parametrize("path", [None, "/api/v1/notifications", "/api/v1/statuses/1",
                                  "/api/v1/streaming/user"])
def test_replay_of_deep_nesting_is_a_payload_error(path: str | None) -> None:
    """parse_payload refuses absurd nesting with PayloadError, whatever the endpoint."""
    with pytest.raises(PayloadError):
        MastodonAdapter.parse_payload(DEEP, path=path)
    with pytest.raises(PayloadError):
        MastodonAdapter.parse_payload(b"event: notification\ndata: " + DEEP + b"\n\n", path=path)
