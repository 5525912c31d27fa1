"""X API v2 posts and DM events into the core model.

Text: X escapes ``&``, ``<`` and ``>`` as HTML entities in ``text`` and shows
every link as a ``t.co`` URL. The message text has the entities unescaped
and each ``t.co`` link replaced by its ``expanded_url``, so the text is what
the author wrote; entity spans are moved to match. X gives entity offsets in
code points of the unescaped text, which are Python ``str`` indices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from omnichannel.errors import PayloadError
from omnichannel.events import MessageReceived, event_id
from omnichannel.model import Conversation, Entity, Hashtag, Link, Mention, Message, Person, Ref
from omnichannel.text import count_code_points

from ._wire import (
    DmEvent,
    Entities,
    HashtagEntity,
    MentionEntity,
    Tweet,
    UrlEntity,
    User,
    snowflake_time,
)

__all__ = [
    "NETWORK",
    "UNKNOWN_AUTHOR",
    "Converter",
    "RawIncludes",
    "expand_text",
    "parse",
    "person",
    "raw_tweet",
    "unescape",
    "users_by_id",
]

NETWORK = "x"

UNKNOWN_AUTHOR = "unknown"
"""The author id `parse_payload` gives a recorded post or DM that names no author."""

_M = TypeVar("_M", bound=BaseModel)
_ESCAPES = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}


def parse(model: type[_M], data: object, *, path: str = "") -> _M:
    """Validate decoded JSON as one of the wire models.

    Raises:
        PayloadError: ``data`` does not fit; ``path`` leads to the first bad field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc


def unescape(text: str) -> str:
    """Undo X's escaping of ``&``, ``<`` and ``>`` (``&amp;`` ``&lt;`` ``&gt;``) only."""
    if "&" not in text:
        return text
    return _ESCAPES.sub(lambda m: _UNESCAPED[m.group(1)], text)


def person(user: User) -> Person:
    """A user as a `Person`."""
    return Person(
        ref=Ref(network=NETWORK, id=user.id),
        handle=user.username,
        display_name=user.name,
        profile_url=f"https://x.com/{user.username}",
        avatar_url=user.profile_image_url,
        followers=(user.public_metrics or {}).get("followers_count"),
        verified=user.verified,
    )


def expand_text(
    text: str, entities: Entities | None, *, path: str = ""
) -> tuple[str, tuple[Entity, ...]]:
    """Unescape ``text``, put each link's full URL in place of its t.co form, keep spans right.

    Args:
        text: ``text`` as X sends it.
        entities: Its entities (code-point offsets into the unescaped text).
        path: Where the text sits, for errors.

    Returns:
        The text and its entities with ``str`` spans into it.

    Raises:
        PayloadError: An entity's span is outside the text, or spans overlap.
    """
    plain = unescape(text)
    if entities is None:
        return plain, ()
    size = count_code_points(plain)
    spans: list[tuple[int, int, str, MentionEntity | HashtagEntity | UrlEntity]] = []
    groups: tuple[tuple[str, Sequence[MentionEntity | HashtagEntity | UrlEntity]], ...] = (
        ("mention", entities.mentions), ("hashtag", entities.hashtags), ("url", entities.urls)
    )
    for kind, items in groups:
        for index, item in enumerate(items):
            if not item.start <= item.end <= size:
                raise PayloadError(
                    f"entity span {item.start}..{item.end} is outside the text "
                    f"({size} code points)",
                    network=NETWORK, path=f"{path}.entities.{kind}s.{index}".lstrip("."),
                )
            spans.append((item.start, item.end, kind, item))
    spans.sort(key=lambda s: (s[0], s[1]))
    out: list[str] = []
    found: list[Entity] = []
    pos = 0
    at = 0
    for start, end, _kind, item in spans:
        if start < pos:
            raise PayloadError(
                "entity spans overlap", network=NETWORK, path=f"{path}.entities".lstrip(".")
            )
        out.append(plain[pos:start])
        at += start - pos
        shown = plain[start:end]
        if isinstance(item, UrlEntity):
            full = item.expanded_url or item.url
            # A media link (pic.x.com) stays as shown: its expansion is a photo page.
            replacement = full if shown.startswith(("https://t.co/", "http://t.co/")) else shown
            out.append(replacement)
            found.append(Link(start=at, end=at + len(replacement), url=full))
            at += len(replacement)
        elif isinstance(item, MentionEntity):
            out.append(shown)
            found.append(Mention(
                start=at, end=at + len(shown), handle=item.username,
                person=Ref(network=NETWORK, id=item.id) if item.id else None,
            ))
            at += len(shown)
        elif isinstance(item, HashtagEntity):
            out.append(shown)
            found.append(Hashtag(start=at, end=at + len(shown), tag=item.tag))
            at += len(shown)
        pos = end
    out.append(plain[pos:])
    return "".join(out), tuple(found)


def _when(value: datetime | None, snowflake: str, *, path: str) -> datetime:
    if value is not None:
        return value
    made = snowflake_time(snowflake)
    if made is None:
        raise PayloadError("no created_at and the id is not a snowflake", network=NETWORK,
                           path=path)
    return made


class Converter:
    """Turns posts and DM events into messages and events, knowing our account.

    Attributes:
        our_id: Our user id, once known: what it wrote is ``from_us``.
        unknown_author: Give a post or DM without its author id the author
            `UNKNOWN_AUTHOR` instead of refusing it (replay only: a recorded
            answer asked for without ``expansions`` has none).
    """

    def __init__(self, our_id: str | None = None, *, unknown_author: bool = False) -> None:
        self.our_id = our_id
        self.unknown_author = unknown_author

    def _author(self, user_id: str | None, users: Mapping[str, User], *, path: str) -> Person:
        if not user_id and self.unknown_author:
            return Person(ref=Ref(network=NETWORK, id=UNKNOWN_AUTHOR))
        if not user_id:
            raise PayloadError(
                "no author id (request expansions=author_id or sender_id)",
                network=NETWORK, path=path,
            )
        user = users.get(user_id)
        if user is None:
            return Person(ref=Ref(network=NETWORK, id=user_id))
        return person(user)

    def tweet_message(
        self, tweet: Tweet, users: Mapping[str, User], *, raw: Mapping[str, Any] | None = None,
        path: str = "",
    ) -> Message:
        """A post as a public `Message` in the thread of its ``conversation_id``.

        Raises:
            PayloadError: No author id, a bad entity span, or no time.
        """
        text, entities = expand_text(tweet.text, tweet.entities, path=path)
        parent = tweet.referenced("replied_to")
        root = tweet.conversation_id or parent or tweet.id
        return Message(
            ref=Ref(network=NETWORK, id=tweet.id),
            conversation=Ref(network=NETWORK, id=root),
            author=self._author(tweet.author_id, users, path=f"{path}.author_id".lstrip(".")),
            text=text,
            entities=entities,
            created_at=_when(tweet.created_at, tweet.id, path=path),
            visibility="public",
            in_reply_to=Ref(network=NETWORK, id=parent) if parent else None,
            from_us=self.our_id is not None and tweet.author_id == self.our_id,
            raw=dict(raw) if raw is not None else None,
        )

    def tweet_event(
        self, tweet: Tweet, users: Mapping[str, User], *, raw: Mapping[str, Any] | None = None,
        path: str = "",
    ) -> MessageReceived:
        """A post as `MessageReceived`.

        Raises:
            PayloadError: The post cannot make a message.
        """
        message = self.tweet_message(tweet, users, raw=raw, path=path)
        return MessageReceived(
            id=event_id("message.received", message.ref),
            network=NETWORK,
            account=self.our_id,
            occurred_at=message.created_at,
            message=message,
            conversation=Conversation(
                ref=message.conversation, kind="thread",
                account=Ref(network=NETWORK, id=self.our_id) if self.our_id else None,
                participants=() if message.from_us else (message.author,),
            ),
        )

    def dm_message(
        self, event: DmEvent, users: Mapping[str, User], *, raw: Mapping[str, Any] | None = None,
        path: str = "", conversation: str | None = None,
    ) -> Message:
        """A ``MessageCreate`` DM event as a private `Message`.

        Raises:
            PayloadError: Not a message, or no sender or conversation.
        """
        if event.event_type != "MessageCreate" or event.text is None:
            raise PayloadError(
                f"a {event.event_type} event is not a message", network=NETWORK, path=path
            )
        conversation = event.dm_conversation_id or conversation
        if not conversation:
            raise PayloadError("no dm_conversation_id (request dm_event.fields)",
                               network=NETWORK, path=path)
        text, entities = expand_text(event.text, event.entities, path=path)
        return Message(
            ref=Ref(network=NETWORK, id=event.id),
            conversation=Ref(network=NETWORK, id=conversation),
            author=self._author(event.sender_id, users, path=f"{path}.sender_id".lstrip(".")),
            text=text,
            entities=entities,
            created_at=_when(event.created_at, event.id, path=path),
            visibility="private",
            from_us=self.our_id is not None and event.sender_id == self.our_id,
            raw=dict(raw) if raw is not None else None,
        )

    def dm_event(
        self, event: DmEvent, users: Mapping[str, User], *, raw: Mapping[str, Any] | None = None,
        path: str = "", conversation: str | None = None,
    ) -> MessageReceived:
        """A DM as `MessageReceived` in its direct conversation.

        Raises:
            PayloadError: The event cannot make a message.
        """
        message = self.dm_message(event, users, raw=raw, path=path, conversation=conversation)
        return MessageReceived(
            id=event_id("message.received", message.ref),
            network=NETWORK,
            account=self.our_id,
            occurred_at=message.created_at,
            message=message,
            conversation=Conversation(
                ref=message.conversation, kind="direct",
                account=Ref(network=NETWORK, id=self.our_id) if self.our_id else None,
                participants=() if message.from_us else (message.author,),
            ),
        )


def users_by_id(users: Sequence[User]) -> dict[str, User]:
    """Index ``includes.users`` by id."""
    return {user.id: user for user in users}


class RawIncludes:
    """The decoded ``includes`` of a page, indexed by id once for all its posts."""

    __slots__ = ("tweets", "users")

    def __init__(self, includes: object) -> None:
        self.users: dict[object, dict[str, Any]] = {}
        self.tweets: dict[object, dict[str, Any]] = {}
        if isinstance(includes, dict):
            for name, table in (("users", self.users), ("tweets", self.tweets)):
                for item in includes.get(name) or ():
                    if isinstance(item, dict):
                        table.setdefault(item.get("id"), item)


def raw_tweet(raw: object, includes: RawIncludes) -> dict[str, Any] | None:
    """A post as ``GET /2/tweets/:id`` would answer it: its data and the includes it uses.

    Kept as ``Message.raw``, so the post's quoted posts and their authors
    travel with it (the reply rule reads them).
    """
    if not isinstance(raw, dict):
        return None
    tweets = [
        includes.tweets[r.get("id")] for r in raw.get("referenced_tweets") or ()
        if isinstance(r, dict) and r.get("id") in includes.tweets
    ]
    authors = (t.get("author_id") for t in tweets)
    wanted = dict.fromkeys((raw.get("author_id"), raw.get("in_reply_to_user_id"), *authors))
    users = [includes.users[u] for u in wanted if u in includes.users]
    kept: dict[str, Any] = {}
    if users:
        kept["users"] = users
    if tweets:
        kept["tweets"] = tweets
    return {"data": raw, "includes": kept} if kept else {"data": raw}
