"""Recorded X answers into events, with no request made.

This is `XAdapter.parse_payload`: it routes an endpoint to the same
`Converter` that polling uses. Endpoints:

| path | body | events |
|---|---|---|
| ``/2/users/:id/mentions`` | a page of posts (newest first) | as `poll` makes them |
| ``/2/users/:id/tweets``, ``/2/tweets/search/...`` | a page of posts | each received |
| ``/2/tweets/:id`` | one post | a `MessageReceived` |
| ``/2/dm_events``, ``/2/dm_conversations/.../dm_events`` | DM events | each message received |

Without a path, a body whose items carry ``event_type`` is read as DM events,
anything else as posts. X sends a post's ``author_id`` (a DM's ``sender_id``)
only when asked for; a recorded answer without it is replayed with the author
``unknown`` (`poll` asks for it, and refuses a post that lacks it). A DM event
without ``dm_conversation_id`` takes the conversation named in the path (for
``with/:participant_id``, made from the two user ids when ``account`` is given).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from omnichannel.adapter import decode_json
from omnichannel.errors import PayloadError
from omnichannel.events import Event

from ._convert import NETWORK, Converter, RawIncludes, parse, raw_tweet, users_by_id
from ._wire import DmEvent, DmPage, Tweet, TweetPage

__all__ = ["ENDPOINTS", "parse_payload"]

ENDPOINTS = (
    "/2/users/:id/mentions",
    "/2/users/:id/tweets",
    "/2/tweets/search/recent",
    "/2/tweets",
    "/2/tweets/:id",
    "/2/dm_events",
    "/2/dm_conversations/:id/dm_events",
    "/2/dm_conversations/with/:participant_id/dm_events",
)
"""The endpoints whose answers `parse_payload` reads."""

_POST_PAGE = re.compile(r"/2/users/[^/]+/(?:mentions|tweets)|/2/tweets(?:/search/[a-z]+)?")
_ONE_POST = re.compile(r"/2/tweets/\d+")
_DM_PAGE = re.compile(r"/2/dm_events|/2/dm_conversations/(?:with/)?[^/]+/dm_events")
_DM_CONVERSATION = re.compile(r"/2/dm_conversations/(?P<id>[^/]+)/dm_events")
_DM_WITH = re.compile(r"/2/dm_conversations/with/(?P<id>\d+)/dm_events")


def _kind(path: str | None, body: Any) -> str:
    if path is None:
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict):
            return "post"
        if isinstance(data, list) and any(isinstance(i, dict) and "event_type" in i for i in data):
            return "dm"
        return "posts"
    route = urlsplit(path).path.rstrip("/")
    if _DM_PAGE.fullmatch(route):
        return "dm"
    if _ONE_POST.fullmatch(route):
        return "post"
    if _POST_PAGE.fullmatch(route):
        return "posts"
    raise PayloadError(
        f"cannot replay {route!r}; endpoints: {', '.join(ENDPOINTS)}", network=NETWORK, path=route
    )


def _strict(error: ValueError, where: str) -> PayloadError:
    if isinstance(error, PayloadError):
        return error
    if isinstance(error, ValidationError):
        return PayloadError.from_validation(error, network=NETWORK, path=where)
    return PayloadError(str(error).splitlines()[0], network=NETWORK, path=where)


def parse_payload(
    body: bytes, *, path: str | None = None, account: str | None = None
) -> list[Event]:
    """Turn a recorded answer of ``path`` into events, oldest first.

    Raises:
        PayloadError: The body is malformed (the first bad item names where),
            or ``path`` is an endpoint this does not replay.
    """
    decoded = decode_json(body, network=NETWORK)
    kind = _kind(path, decoded)
    converter = Converter(our_id=account, unknown_author=True)
    route = urlsplit(path).path.rstrip("/") if path else ""
    named = _DM_CONVERSATION.fullmatch(route)
    conversation = named.group("id") if named and named.group("id") != "with" else None
    other = _DM_WITH.fullmatch(route)
    if other is not None and account is not None and account.isdigit():
        # X names a one-to-one conversation by its two user ids, the lower first.
        low, high = sorted((int(other.group("id")), int(account)))
        conversation = f"{low}-{high}"
    events: list[Event] = []
    if kind == "post":
        page = parse(TweetPage, {**decoded, "data": [decoded.get("data")]}
                     if isinstance(decoded, dict) else decoded, path="")
    elif kind == "posts":
        page = parse(TweetPage, decoded, path="")
    if kind in ("post", "posts"):
        users = users_by_id(page.includes.users)
        includes = RawIncludes(decoded.get("includes") if isinstance(decoded, dict) else None)
        for index, raw in enumerate(page.data):
            where = "data" if kind == "post" else f"data.{index}"
            try:
                tweet = parse(Tweet, raw, path=where)
                events.append(converter.tweet_event(
                    tweet, users, raw=raw_tweet(raw, includes), path=where))
            except ValueError as exc:
                raise _strict(exc, where) from exc
        events.reverse()  # X lists the newest first
        return events
    dms = parse(DmPage, decoded, path="")
    users = users_by_id(dms.includes.users)
    for index, raw in enumerate(dms.data):
        where = f"data.{index}"
        try:
            event = parse(DmEvent, raw, path=where)
            if event.event_type != "MessageCreate":
                continue
            events.append(converter.dm_event(
                event, users, raw=raw, path=where, conversation=conversation))
        except ValueError as exc:
            raise _strict(exc, where) from exc
    events.reverse()
    return events
