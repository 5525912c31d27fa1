"""Webhook deliveries (X Activity API and Account Activity API) into the core events.

Two shapes arrive at the same webhook URL:

- **X Activity API** (XAA): one event per delivery, ``{"data": {"event_uuid",
  "filter": {"user_id"}, "event_type", "tag", "payload", "includes"}}``. Post
  events (``post.mention.create``, ``post.reply.create``...) carry an API v2
  post as ``payload`` and its users and referenced posts in ``includes``; DM
  events (``dm.received``...) carry a v2 DM event. The event types were
  PascalCase (``PostMentionCreate``, ``DmReceived``) until 2026-03-18 and are
  dotted lowercase since: both spellings are read.
- **Account Activity API** (AAA, deprecated): ``{"for_user_id",
  "tweet_create_events": [<v1.1 post>], "direct_message_events":
  [<message_create>], "users": {...}}``; the v1.1 objects are read into the
  same v2 models the polling path uses.

A post or DM becomes `MessageReceived` with the same event id polling gives
it (``message.received`` of its native id), so the hub stores it once however
it arrived. Our own posts and DMs (``dm.sent``, our tweets in
``tweet_create_events``) give no event, as when polling. Events of other types
(typing, read receipts, likes, follows, profile updates) give none either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from omnichannel.adapter import Batch, Rejected, decode_json
from omnichannel.errors import PayloadError
from omnichannel.events import Event

from ._convert import NETWORK, Converter, RawIncludes, parse, raw_tweet, users_by_id
from ._wire import DmEvent, Includes, Tweet, User

__all__ = ["POST_EVENTS", "delivery_charge", "dotted", "parse_delivery"]

POST_EVENTS = frozenset({
    "post.mention.create", "post.reply.create", "post.quote.create", "post.create",
})
"""XAA event types whose payload is a post that may need an answer."""

_DM_RECEIVED = frozenset({"dm.received"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[a-z0-9]+")
_V1_TIME = "%a %b %d %H:%M:%S %z %Y"


def dotted(event_type: str) -> str:
    """An event type in the dotted spelling: ``PostMentionCreate`` -> ``post.mention.create``.

    A dotted type is returned lower-cased; ``DMReceived`` and ``DmReceived``
    both give ``dm.received``.
    """
    if "." in event_type:
        return event_type.lower()
    return ".".join(word.lower() for word in _WORD.findall(event_type))


_BILLED_DM = frozenset({"dm.received", "chat.received"})
_UNBILLED_POST = frozenset({"post.delete"})


def delivery_charge(body: bytes) -> tuple[Literal["post_event", "dm_event"], str] | None:
    """What an X Activity delivery is billed as, and the event's id; ``None``: not billed.

    X bills pay-per-use apps per XAA event delivered
    (``docs.x.com/x-api/activity/event-pricing``): post events as a post,
    ``dm.received`` and ``chat.received`` as a DM event; ``post.delete``,
    sent DMs, read receipts and typing are free. Account Activity API
    deliveries (a subscription product) are not priced here.
    """
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        return None
    kind = dotted(data["event_type"])
    payload = data.get("payload")
    ident = data.get("event_uuid") or (payload.get("id") if isinstance(payload, dict) else None)
    if not isinstance(ident, str) or not ident:
        ident = hashlib.blake2b(body, digest_size=12).hexdigest()
    if kind in _BILLED_DM:
        return "dm_event", ident
    if kind.startswith("post.") and kind not in _UNBILLED_POST:
        return "post_event", ident
    return None


def parse_delivery(body: bytes, converter: Converter) -> Batch:
    """One webhook body into events; an item that cannot be used goes in ``rejected``.

    Raises:
        PayloadError: The body is not JSON, or is neither an XAA event nor an
            AAA delivery.
    """
    decoded = decode_json(body, network=NETWORK, path="webhook")
    if not isinstance(decoded, dict):
        raise PayloadError("a delivery is a JSON object", network=NETWORK, path="webhook")
    events: list[Event] = []
    rejected: list[Rejected] = []
    data = decoded.get("data")
    if isinstance(data, dict) and "event_type" in data:
        _activity_event(data, converter, events, rejected)
    elif "event_type" in decoded and "payload" in decoded:
        _activity_event(decoded, converter, events, rejected)
    elif "for_user_id" in decoded:
        _account_activity(decoded, converter, events, rejected)
    else:
        raise PayloadError("neither an X Activity event (data.event_type) nor an Account "
                           "Activity delivery (for_user_id)", network=NETWORK, path="webhook")
    return Batch(events=tuple(events), rejected=tuple(rejected))


def _keep(
    make: Any, raw: object, events: list[Event], rejected: list[Rejected], where: str
) -> None:
    """Run ``make()``; keep its event unless it is ours, or report the item as rejected."""
    try:
        event = make()
    except PayloadError as exc:
        rejected.append(Rejected.from_error(exc, raw))
        return
    except ValueError as exc:  # the core model refused what the wire model took
        error = PayloadError(str(exc).splitlines()[0], network=NETWORK, path=where)
        rejected.append(Rejected.from_error(error, raw))
        return
    if event is not None and not event.message.from_us:
        events.append(event)


# X Activity API -----------------------------------------------------------------


def _activity_event(
    data: Mapping[str, Any], converter: Converter, events: list[Event],
    rejected: list[Rejected],
) -> None:
    kind = data.get("event_type")
    if not isinstance(kind, str):
        error = PayloadError("event_type is not a string", network=NETWORK,
                             path="data.event_type")
        rejected.append(Rejected.from_error(error, dict(data)))
        return
    kind = dotted(kind)
    payload = data.get("payload")
    includes = data.get("includes")
    if kind in POST_EVENTS:
        def post() -> Event:
            users = parse(Includes, includes if isinstance(includes, dict) else {},
                          path="data.includes").users
            tweet = parse(Tweet, payload, path="data.payload")
            return converter.tweet_event(
                tweet, users_by_id(users), raw=raw_tweet(payload, RawIncludes(includes)),
                path="data.payload")
        _keep(post, dict(data), events, rejected, "data.payload")
    elif kind in _DM_RECEIVED:
        def dm() -> Event:
            users = parse(Includes, includes if isinstance(includes, dict) else {},
                          path="data.includes").users
            item = {"event_type": "MessageCreate", **payload} if isinstance(
                payload, dict) else payload
            event = parse(DmEvent, item, path="data.payload")
            return converter.dm_event(event, users_by_id(users), raw=item,
                                      path="data.payload")
        _keep(dm, dict(data), events, rejected, "data.payload")
    # dm.sent (our own), dm.read, dm.indicate_typing, chat.*, profile.*, follow.*,
    # news.*, spaces.*: nothing to answer.


# Account Activity API (v1.1 objects) ------------------------------------------------


def _account_activity(
    decoded: Mapping[str, Any], converter: Converter, events: list[Event],
    rejected: list[Rejected],
) -> None:
    tweets = decoded.get("tweet_create_events")
    if isinstance(tweets, list):
        for index, item in enumerate(tweets):
            where = f"tweet_create_events.{index}"

            def post(item: object = item, where: str = where) -> Event:
                raw, users = v1_tweet(item, path=where)
                tweet = parse(Tweet, raw["data"], path=where)
                return converter.tweet_event(tweet, users_by_id(users), raw=raw, path=where)
            _keep(post, item, events, rejected, where)
    messages = decoded.get("direct_message_events")
    if isinstance(messages, list):
        people = decoded.get("users")
        for index, item in enumerate(messages):
            where = f"direct_message_events.{index}"
            if isinstance(item, dict) and item.get("type") not in (None, "message_create"):
                continue

            def dm(item: object = item, where: str = where) -> Event:
                raw, users = v1_message(item, people, path=where)
                event = parse(DmEvent, raw, path=where)
                return converter.dm_event(event, users_by_id(users), raw=raw, path=where)
            _keep(dm, item, events, rejected, where)


def _str(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _v1_user(user: object, *, path: str) -> User:
    """A v1.1 user as the v2 ``User`` fields."""
    if not isinstance(user, dict):
        raise PayloadError("no user object", network=NETWORK, path=path)
    return parse(User, {
        "id": _str(user.get("id_str")) or _str(user.get("id")),
        "username": user.get("screen_name"),
        "name": user.get("name"),
        "profile_image_url": user.get("profile_image_url_https"),
        "verified": user.get("verified") if isinstance(user.get("verified"), bool) else None,
        "protected": user.get("protected") if isinstance(user.get("protected"), bool) else None,
    }, path=path)


def _v1_entities(entities: object) -> dict[str, list[dict[str, Any]]]:
    """v1.1 ``entities`` (``indices: [start, end]``) as v2 spans (``start``, ``end``).

    v1.1 lists a photo's link under ``media``; v2 lists it with the other links.
    """
    out: dict[str, list[dict[str, Any]]] = {"mentions": [], "hashtags": [], "urls": []}
    if not isinstance(entities, dict):
        return out
    names = (("user_mentions", "mentions"), ("hashtags", "hashtags"), ("urls", "urls"),
             ("media", "urls"))
    for old, new in names:
        items = entities.get(old)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            indices = item.get("indices")
            if not (isinstance(indices, list) and len(indices) == 2):
                continue
            span: dict[str, Any] = {"start": indices[0], "end": indices[1]}
            if new == "mentions":
                span |= {"username": item.get("screen_name"), "id": _str(item.get("id_str"))}
            elif new == "hashtags":
                span["tag"] = item.get("text")
            else:
                span |= {"url": item.get("url"), "expanded_url": item.get("expanded_url"),
                         "display_url": item.get("display_url")}
            out[new].append(span)
    return out


def _v1_time(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, _V1_TIME).astimezone(UTC).isoformat()
    except ValueError:
        return None


def v1_tweet(item: object, *, path: str) -> tuple[dict[str, Any], list[User]]:
    """A v1.1 post (AAA ``tweet_create_events[]``) as ``{"data": <v2 post>, "includes"}``.

    The full text of a long post is in ``extended_tweet``. v1.1 has no
    ``conversation_id``: a reply's thread is named after the post it answers.

    Raises:
        PayloadError: Not a post object, or no author.
    """
    if not isinstance(item, dict):
        raise PayloadError("a post is a JSON object", network=NETWORK, path=path)
    extended = item.get("extended_tweet")
    source = extended if item.get("truncated") and isinstance(extended, dict) else item
    text = source.get("full_text") or source.get("text")
    author = _v1_user(item.get("user"), path=f"{path}.user")
    data: dict[str, Any] = {
        "id": _str(item.get("id_str")) or _str(item.get("id")),
        "text": text,
        "author_id": author.id,
        "entities": _v1_entities(source.get("entities")),
    }
    if (created := _v1_time(item.get("created_at"))) is not None:
        data["created_at"] = created
    referenced = []
    if (parent := _str(item.get("in_reply_to_status_id_str"))) is not None:
        referenced.append({"type": "replied_to", "id": parent})
    if (quoted := _str(item.get("quoted_status_id_str"))) is not None:
        referenced.append({"type": "quoted", "id": quoted})
    if referenced:
        data["referenced_tweets"] = referenced
    if (answered := _str(item.get("in_reply_to_user_id_str"))) is not None:
        data["in_reply_to_user_id"] = answered
    users = [author]
    includes: dict[str, Any] = {"users": [_user_dict(author)]}
    quoted_status = item.get("quoted_status")
    if quoted and isinstance(quoted_status, dict):
        try:
            inner, inner_users = v1_tweet(quoted_status, path=f"{path}.quoted_status")
        except PayloadError:
            pass  # the quoted post is context: the post itself still reads
        else:
            includes["tweets"] = [inner["data"]]
            users += inner_users
            includes["users"] += [_user_dict(u) for u in inner_users]
    return {"data": data, "includes": includes}, users


def _user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "name": user.name}


def v1_message(
    item: object, people: object, *, path: str
) -> tuple[dict[str, Any], list[User]]:
    """An AAA ``message_create`` event as a v2 DM event (``MessageCreate``).

    The conversation id is X's one-to-one form: the two user ids, lower first.

    Raises:
        PayloadError: Not a ``message_create`` event, or no sender or recipient.
    """
    if not isinstance(item, dict):
        raise PayloadError("a DM event is a JSON object", network=NETWORK, path=path)
    create = item.get("message_create")
    if not isinstance(create, dict):
        raise PayloadError("no message_create", network=NETWORK, path=f"{path}.message_create")
    sender = _str(create.get("sender_id"))
    target = create.get("target")
    recipient = _str(target.get("recipient_id")) if isinstance(target, dict) else None
    if sender is None or recipient is None:
        raise PayloadError("no sender_id or target.recipient_id", network=NETWORK,
                           path=f"{path}.message_create")
    data = create.get("message_data")
    data = data if isinstance(data, dict) else {}
    pair = sorted((sender, recipient), key=lambda v: (len(v), v))
    event: dict[str, Any] = {
        "id": _str(item.get("id")),
        "event_type": "MessageCreate",
        "text": data.get("text"),
        "sender_id": sender,
        "dm_conversation_id": "-".join(pair),
        **_v1_entities(data.get("entities")),
    }
    stamp = _str(item.get("created_timestamp"))
    if stamp is not None and stamp.isdigit():
        with contextlib.suppress(OverflowError, OSError, ValueError):
            event["created_at"] = datetime.fromtimestamp(int(stamp) / 1000, UTC).isoformat()
    users: list[User] = []
    if isinstance(people, dict):
        known = people.get(sender)
        if isinstance(known, dict):
            with contextlib.suppress(PayloadError):  # else the author is known by id only
                users.append(_v1_user(known, path=f"users.{sender}"))
    return event, users
