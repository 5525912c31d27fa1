"""Recorded Mastodon answers and stream frames into events, with no request made.

This is `MastodonAdapter.parse_payload`: it routes an endpoint to the same
`Converter` that polling and streaming use. Endpoints:

| path | body | events |
|---|---|---|
| ``/api/v1/notifications`` | a page of notifications (newest first) | as `poll` makes them |
| ``/api/v1/notifications/:id`` | one notification | as `poll` makes it |
| ``/api/v1/statuses/:id`` | one status | a `MessageReceived` |
| ``/api/v1/statuses/:id/context`` | the thread around a status | each status, received |
| ``/api/v1/accounts/:id/statuses`` | statuses, newest first | each received |
| ``/api/v1/timelines/...`` | statuses, newest first | each received |
| ``/api/v1/conversations`` | direct conversations | their last statuses, received |
| ``/api/v1/streaming/...`` | server-sent events | as `stream` makes them |

A context's statuses are filed under its thread root (the first ancestor,
or the status asked about). Without a path, a JSON list is read as a page
of notifications and a body that is not JSON as server-sent events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from omnichannel.adapter import Rejected, convert_item, decode_json
from omnichannel.errors import PayloadError
from omnichannel.events import Event

from ._convert import NETWORK, Converter, parse, parse_notification, parse_status
from ._stream import iter_events
from ._wire import Context, DirectConversation

__all__ = ["ENDPOINTS", "parse_payload"]

ENDPOINTS = (
    "/api/v1/notifications",
    "/api/v1/notifications/:id",
    "/api/v1/statuses/:id",
    "/api/v1/statuses/:id/context",
    "/api/v1/accounts/:id/statuses",
    "/api/v1/timelines/...",
    "/api/v1/conversations",
    "/api/v1/streaming/...",
)
"""The endpoints whose answers `parse_payload` reads."""

_NOTIFICATION = re.compile(r"/api/v1/notifications/(?!unread_count$|requests$|policy$)[^/]+")
_STATUS = re.compile(r"/api/v1/statuses/[^/]+")
_CONTEXT = re.compile(r"/api/v1/statuses/(?P<id>[^/]+)/context")
_STATUS_LIST = re.compile(r"/api/v1/accounts/[^/]+/statuses|/api/v1/timelines/.+")
_SSE_FIELDS = frozenset({"event", "data", "id", "retry"})


def _endpoint(path: str) -> str:
    """``path`` without scheme, host, query or trailing slash."""
    return urlsplit(path).path.rstrip("/") or "/"


def _json(body: bytes, where: str) -> Any:
    return decode_json(body, network=NETWORK, path=where)


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise PayloadError("expected an object", network=NETWORK, path=where)
    return data


@contextmanager
def _converted(where: str) -> Iterator[None]:
    """Turn the core model refusing a converted value into a `PayloadError` at ``where``."""
    try:
        yield
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=where) from exc


def _notifications(data: Any, converter: Converter) -> list[Event]:
    if not isinstance(data, list):
        raise PayloadError("expected a list", network=NETWORK, path="notifications")
    events: list[Event] = []
    # Mastodon lists the newest first; events go out oldest first.
    for index in reversed(range(len(data))):
        where = f"notifications.{index}"
        events.extend(_notification(data[index], converter, where))
    return events


def _notification(raw: Any, converter: Converter, where: str) -> list[Event]:
    notification = parse_notification(raw, path=where)
    with _converted(where):
        return converter.notification_events(notification, raw=_object(raw, where))


def _status(raw: Any, converter: Converter, where: str) -> list[Event]:
    status = parse_status(raw, path=where)
    with _converted(where):
        return [converter.received(status, raw=_object(raw, where))]


def _statuses(data: Any, converter: Converter) -> list[Event]:
    if not isinstance(data, list):
        raise PayloadError("expected a list", network=NETWORK, path="statuses")
    events: list[Event] = []
    # Account statuses and timelines list the newest first; events go out oldest first.
    for index in reversed(range(len(data))):
        events.extend(_status(data[index], converter, f"statuses.{index}"))
    return events


def _context(data: Any, anchor: str, converter: Converter) -> list[Event]:
    """The statuses around ``anchor`` (not ``anchor`` itself), filed under the thread root."""
    context = parse(Context, data, path="context")
    raw = _object(data, "context")
    root = context.ancestors[0].id if context.ancestors else anchor
    converter.roots.put(anchor, root)
    events: list[Event] = []
    for part, statuses in (("ancestors", context.ancestors), ("descendants", context.descendants)):
        raws = raw.get(part)
        for index, status in enumerate(statuses):
            where = f"context.{part}.{index}"
            if status.visibility != "direct":  # direct replies are conversations of their own
                converter.roots.put(status.id, root)
            status_raw = raws[index] if isinstance(raws, list) else None
            with _converted(where):
                events.append(converter.received(
                    status, raw=status_raw if isinstance(status_raw, Mapping) else None
                ))
    return events


def _conversation(raw: Any, converter: Converter, where: str) -> list[Event]:
    conversation = parse(DirectConversation, raw, path=where)
    if conversation.last_status is None:
        return []
    status_raw = _object(raw, where).get("last_status")
    with _converted(f"{where}.last_status"):
        return [converter.received(
            conversation.last_status, raw=status_raw if isinstance(status_raw, Mapping) else None
        )]


def _conversations(data: Any, converter: Converter) -> list[Event]:
    if not isinstance(data, list):
        raise PayloadError("expected a list", network=NETWORK, path="conversations")
    events: list[Event] = []
    # The most recently active conversation comes first.
    for index in reversed(range(len(data))):
        events.extend(_conversation(data[index], converter, f"conversations.{index}"))
    return events


def _lines(body: bytes) -> Iterator[str]:
    """The lines of a server-sent events body, each checked to be a field or a comment.

    Raises:
        PayloadError: The body is not UTF-8, or a line is neither.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the stream is not UTF-8 text", network=NETWORK, path="") from None
    for index, line in enumerate(text.splitlines()):
        if line and not line.startswith(":") and line.partition(":")[0] not in _SSE_FIELDS:
            raise PayloadError(
                "not a server-sent events line (field: value, or : comment)",
                network=NETWORK, path=f"lines.{index}",
            )
        yield line
    yield ""  # the last event ends with the body


def _stream(body: bytes, converter: Converter) -> list[Event]:
    """The events the ``user`` stream's frames stand for, as `stream` makes them.

    ``conversation`` frames (the ``direct`` stream) give their last status as a
    received message, as ``/api/v1/conversations`` does; home-timeline
    ``update`` frames and the rest give nothing, as they do live.
    """
    events: list[Event] = []
    for index, sse in enumerate(iter_events(_lines(body))):
        where = f"events.{index}"
        if sse.event == "delete":
            status_id = sse.data.strip()
            if status_id:  # the frame has no time: it happened when it was read
                events.append(converter.deleted(status_id, occurred_at=datetime.now(UTC)))
            continue
        if sse.event not in ("notification", "status.update", "conversation"):
            continue
        raw = _json(sse.data.encode("utf-8"), where)
        if sse.event == "notification":
            events.extend(_notification(raw, converter, where))
        elif sse.event == "conversation":
            events.extend(_conversation(raw, converter, where))
        else:
            status = parse_status(raw, path=where)
            if converter.involves_us(status):
                with _converted(where):
                    events.append(converter.updated(status, raw=_object(raw, where)))
    return events


def _unknown(endpoint: str) -> PayloadError:
    return PayloadError(
        f"replay does not read this endpoint (it reads {', '.join(ENDPOINTS)})",
        network=NETWORK, path=endpoint,
    )


def _sniffed(body: bytes, converter: Converter) -> list[Event]:
    """A body without its endpoint: a notification page, or stream frames."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise PayloadError("the body is not JSON", network=NETWORK, path="") from None
    except ValueError:
        if body.lstrip()[:1] in (b"[", b"{"):
            raise PayloadError("the body is not JSON", network=NETWORK, path="") from None
        return _stream(body, converter)
    if isinstance(data, list):
        return _notifications(data, converter)
    raise PayloadError(
        "without its endpoint only a page of notifications or stream frames can be "
        "read: name the endpoint (path), e.g. /api/v1/statuses/:id",
        network=NETWORK, path="",
    )


def parse_payload(body: bytes, *, path: str | None, account: str | None) -> list[Event]:
    """Turn a recorded Mastodon answer or stream body into events, oldest first.

    Args:
        body: The raw body.
        path: The endpoint it answered (see `ENDPOINTS`), or ``None``.
        account: Our account id, for ``from_us`` and direct conversation ids.

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
    converter = Converter(our_id=account)
    if path is None:
        return _sniffed(body, converter)
    endpoint = _endpoint(path)
    if endpoint == "/api/v1/streaming" or endpoint.startswith("/api/v1/streaming/"):
        return _stream(body, converter)
    if endpoint == "/api/v1/notifications":
        return _notifications(_json(body, "notifications"), converter)
    if _NOTIFICATION.fullmatch(endpoint):
        return _notification(_json(body, "notification"), converter, "notification")
    context = _CONTEXT.fullmatch(endpoint)
    if context is not None:
        return _context(_json(body, "context"), context.group("id"), converter)
    if _STATUS.fullmatch(endpoint):
        return _status(_json(body, "status"), converter, "status")
    if _STATUS_LIST.fullmatch(endpoint):
        return _statuses(_json(body, "statuses"), converter)
    if endpoint == "/api/v1/conversations":
        return _conversations(_json(body, "conversations"), converter)
    raise _unknown(endpoint)
