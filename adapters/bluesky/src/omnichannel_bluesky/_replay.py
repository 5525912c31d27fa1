"""Recorded Bluesky answers and Jetstream lines into events, with no request made.

This is `BlueskyAdapter.parse_payload`: it routes an endpoint to the same
conversion functions (`_convert`) that polling and listening mode use.

| endpoint | events |
|---|---|
| ``app.bsky.notification.listNotifications`` | mentions, replies, quotes and likes, as `poll` |
| ``app.bsky.feed.getPostThread`` | every post of the thread, received |
| ``chat.bsky.convo.getLog`` | new chat messages from others, as `poll` makes them |
| ``chat.bsky.convo.getMessages`` | the page's messages from others (``convoId`` from the query) |
| Jetstream (``/subscribe``) | every post creation, edit and deletion, as listening mode does |

Without a path, an XRPC answer is recognised by its top-level key
(``notifications``, ``thread``, ``logs``, ``messages``) and anything else is
read as Jetstream lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from omnichannel.adapter import Rejected, convert_item, decode_json
from omnichannel.errors import PayloadError
from omnichannel.events import Event

from ._convert import (
    NETWORK,
    chat_event,
    chat_page_events,
    jetstream_deleted,
    jetstream_event,
    jetstream_updated,
    load,
    located,
    log_entry,
    notification_page,
    received,
    thread_messages,
)
from ._jetstream import deleted_post, post_event
from ._wire import GetLogOutput, GetMessagesOutput, PostThreadOutput

__all__ = ["ENDPOINTS", "parse_payload"]

NOTIFICATIONS = "app.bsky.notification.listNotifications"
THREAD = "app.bsky.feed.getPostThread"
CHAT_LOG = "chat.bsky.convo.getLog"
CHAT_MESSAGES = "chat.bsky.convo.getMessages"
JETSTREAM = "subscribe"

ENDPOINTS = (NOTIFICATIONS, THREAD, CHAT_LOG, CHAT_MESSAGES, "Jetstream /subscribe")
"""The endpoints whose answers `parse_payload` reads."""

_KEYS = {"notifications": NOTIFICATIONS, "thread": THREAD, "logs": CHAT_LOG,
         "messages": CHAT_MESSAGES}


@contextmanager
def _converted(where: str) -> Iterator[None]:
    """Turn the core model refusing a converted value into a `PayloadError` at ``where``."""
    try:
        yield
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=where) from exc


def _json(body: bytes, where: str) -> Any:
    return decode_json(body, network=NETWORK, path=where)


def _notifications(data: Any, *, our_did: str | None, query: dict[str, str]) -> list[Event]:
    with _converted("notifications"):
        items, _ = notification_page(data, our_did=our_did)
    # The page lists the newest first; events go out oldest first.
    return [item.event for item in reversed(items) if item.event is not None]


def _thread(data: Any, *, our_did: str | None, query: dict[str, str]) -> list[Event]:
    thread = load(PostThreadOutput, data).thread
    with _converted("thread"):
        return [received(message, kind="thread", our_did=our_did)
                for message in thread_messages(thread, our_did=our_did)]


def _chat_log(data: Any, *, our_did: str | None, query: dict[str, str]) -> list[Event]:
    page = load(GetLogOutput, data)
    events: list[Event] = []
    for index, raw in enumerate(page.logs):
        with located(f"logs.{index}"):
            event = chat_event(log_entry(raw), our_did=our_did, raw=raw)
        if event is not None:
            events.append(event)
    return events


def _chat_messages(data: Any, *, our_did: str | None, query: dict[str, str]) -> list[Event]:
    convo_id = query.get("convoId")
    if not convo_id:
        raise PayloadError(
            "a getMessages answer does not name its conversation: give the path with its "
            "query, chat.bsky.convo.getMessages?convoId=...",
            network=NETWORK, path="convoId",
        )
    page = load(GetMessagesOutput, data)
    with _converted("messages"):
        return [*chat_page_events(page, convo_id=convo_id, our_did=our_did)]


class _Reader(Protocol):
    def __call__(self, data: Any, *, our_did: str | None, query: dict[str, str]) -> list[Event]:
        ...


_READERS: dict[str, _Reader] = {
    NOTIFICATIONS: _notifications,
    THREAD: _thread,
    CHAT_LOG: _chat_log,
    CHAT_MESSAGES: _chat_messages,
}


def _jetstream(body: bytes, *, our_did: str | None) -> list[Event]:
    """Every post creation, edit and deletion in Jetstream lines, in the order they came.

    Listening mode's filter (posts about us, keywords, posts it delivered
    before) is not applied: it depends on settings and on what was seen, and
    replay shows what each post event becomes.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the lines are not UTF-8 text", network=NETWORK, path="") from None
    events: list[Event] = []
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        where = f"lines.{index}"
        event = post_event(line, path=where)
        if event is None:
            gone = deleted_post(line, path=where)
            if gone is not None:
                uri, time_us = gone
                events.append(jetstream_deleted(uri, time_us=time_us, our_did=our_did))
            continue
        with _converted(where):
            raw = decode_json(line, network=NETWORK, path=where)
            if event.commit.operation == "update":
                events.append(jetstream_updated(event, our_did=our_did, raw=raw))
            else:
                events.append(jetstream_event(event, our_did=our_did, raw=raw))
    return events


def _endpoint(path: str) -> tuple[str, dict[str, str]]:
    """The NSID (or ``subscribe``) a path names, and its query's first values."""
    parts = urlsplit(path)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1]
    query = {key: values[0] for key, values in parse_qs(parts.query).items() if values}
    return name, query


def _sniffed(body: bytes, *, our_did: str | None) -> list[Event]:
    """A body without its endpoint: an XRPC answer by its key, else Jetstream lines."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise PayloadError("the body is not JSON", network=NETWORK, path="") from None
    except ValueError:
        return _jetstream(body, our_did=our_did)
    if isinstance(data, dict):
        for key, nsid in _KEYS.items():
            if key in data:
                return _READERS[nsid](data, our_did=our_did, query={})
        if "kind" in data:  # a single Jetstream line
            return _jetstream(body, our_did=our_did)
    raise PayloadError(
        "cannot tell which endpoint answered this body: name it (path), "
        "e.g. app.bsky.feed.getPostThread",
        network=NETWORK, path="",
    )


def parse_payload(body: bytes, *, path: str | None, account: str | None) -> list[Event]:
    """Turn a recorded Bluesky answer or Jetstream lines into events, oldest first.

    Args:
        body: The raw body.
        path: The endpoint it answered (``/xrpc/<nsid>``, the bare NSID, or a
            Jetstream ``/subscribe`` URL), query allowed, or ``None``.
        account: Our DID, for ``from_us`` (our chat messages are left out).

    Raises:
        PayloadError: The body is malformed, or the endpoint is not one of `ENDPOINTS`.
            Whatever else reading it raises (a body no conversion foresaw)
            is a `PayloadError` too.
    """

    def read(body: bytes) -> list[Event]:
        return _parse(body, path=path, account=account)

    found = convert_item(read, body, network=NETWORK)
    if isinstance(found, Rejected):
        raise found.error(network=NETWORK)
    return found


def _parse(body: bytes, *, path: str | None, account: str | None) -> list[Event]:
    if path is None:
        return _sniffed(body, our_did=account)
    name, query = _endpoint(path)
    if name == JETSTREAM:
        return _jetstream(body, our_did=account)
    reader = _READERS.get(name)
    if reader is None:
        raise PayloadError(
            f"replay does not read this endpoint (it reads {', '.join(ENDPOINTS)})",
            network=NETWORK, path=urlsplit(path).path or path,
        )
    return reader(_json(body, name), our_did=account, query=query)
