"""X API v2 payloads as pydantic models: only the fields the adapter reads.

The shapes follow the recorded answers under ``tests/vectors/twitter/`` (tweepy's
cassettes) and, for the fields those recordings did not ask for (``author_id``,
``entities``, ``includes``...), the X OpenAPI specification
(``vectors/twitter/schema/x-api-v2-openapi.json``). Unknown fields are ignored:
X adds fields without notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DmEvent",
    "DmPage",
    "Entities",
    "HashtagEntity",
    "Includes",
    "MentionEntity",
    "Meta",
    "ReferencedTweet",
    "Subscription",
    "SubscriptionFilter",
    "SubscriptionPage",
    "Tweet",
    "TweetPage",
    "UrlEntity",
    "User",
    "snowflake_time",
]

_TWITTER_EPOCH_MS = 1288834974657


def snowflake_time(snowflake: str) -> datetime | None:
    """When an X id (a snowflake) was made: its top bits are milliseconds since 2010-11-04.

    Returns:
        The time, or ``None`` when the id is not a decimal snowflake.
    """
    if not snowflake.isdigit():
        return None
    millis = (int(snowflake) >> 22) + _TWITTER_EPOCH_MS
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class User(_Wire):
    """A user object (``GET /2/users/me``, ``includes.users``)."""

    id: str = Field(min_length=1)
    username: str = Field(min_length=1)
    name: str | None = None
    profile_image_url: str | None = None
    verified: bool | None = None
    protected: bool | None = None
    public_metrics: dict[str, int] | None = None


class _Span(_Wire):
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class MentionEntity(_Span):
    """``entities.mentions[]``: ``start``/``end`` (code points, end exclusive)."""

    username: str = Field(min_length=1)
    id: str | None = None


class HashtagEntity(_Span):
    """``entities.hashtags[]``."""

    tag: str = Field(min_length=1)


class UrlEntity(_Span):
    """``entities.urls[]``: ``url`` is the t.co link in the text."""

    url: str = Field(min_length=1)
    expanded_url: str | None = None
    display_url: str | None = None


class Entities(_Wire):
    """A post's (or a DM's) entities."""

    mentions: tuple[MentionEntity, ...] = ()
    hashtags: tuple[HashtagEntity, ...] = ()
    urls: tuple[UrlEntity, ...] = ()


class ReferencedTweet(_Wire):
    """``referenced_tweets[]``: ``type`` is ``replied_to``, ``quoted`` or ``retweeted``."""

    type: str
    id: str = Field(min_length=1)


class Tweet(_Wire):
    """A post (``data`` of ``GET /2/tweets/:id``, items of the mentions timeline)."""

    id: str = Field(min_length=1)
    text: str
    author_id: str | None = None
    created_at: datetime | None = None
    conversation_id: str | None = None
    in_reply_to_user_id: str | None = None
    referenced_tweets: tuple[ReferencedTweet, ...] = ()
    entities: Entities | None = None
    edit_history_tweet_ids: tuple[str, ...] = ()

    def referenced(self, kind: str) -> str | None:
        """The id of the post this one references as ``kind`` (``replied_to``...)."""
        return next((r.id for r in self.referenced_tweets if r.type == kind), None)


class Includes(_Wire):
    """``includes``: the objects the ``expansions`` asked for."""

    users: tuple[User, ...] = ()
    tweets: tuple[dict[str, Any], ...] = ()


class Meta(_Wire):
    """``meta`` of a page: counts, the newest and oldest ids, the page tokens."""

    result_count: int | None = None
    newest_id: str | None = None
    oldest_id: str | None = None
    next_token: str | None = None
    previous_token: str | None = None


class TweetPage(_Wire):
    """A timeline page; items stay raw so one bad post cannot sink the page."""

    data: tuple[Any, ...] = ()
    includes: Includes = Includes.model_construct()  # no validator built at import
    meta: Meta = Meta.model_construct()
    errors: tuple[dict[str, Any], ...] = ()


class DmEvent(_Wire):
    """A DM event (``GET /2/dm_events``); only ``MessageCreate`` events are messages."""

    id: str = Field(min_length=1)
    event_type: str
    text: str | None = None
    sender_id: str | None = None
    dm_conversation_id: str | None = None
    created_at: datetime | None = None
    mentions: tuple[MentionEntity, ...] = ()
    hashtags: tuple[HashtagEntity, ...] = ()
    urls: tuple[UrlEntity, ...] = ()

    @property
    def entities(self) -> Entities:
        """The DM's entities (X puts them at the top level of the event)."""
        return Entities(mentions=self.mentions, hashtags=self.hashtags, urls=self.urls)


class DmPage(_Wire):
    """A page of DM events; items stay raw."""

    data: tuple[Any, ...] = ()
    includes: Includes = Includes.model_construct()  # no validator built at import
    meta: Meta = Meta.model_construct()


class SubscriptionFilter(_Wire):
    """Whose events an X Activity subscription carries."""

    user_id: str | None = None
    direction: str | None = None
    keyword: str | None = None


class Subscription(_Wire):
    """An X Activity API subscription (``POST``/``GET /2/activity/subscriptions``).

    Attributes:
        subscription_id: X's id for it (to delete it).
        event_type: The event subscribed to, as X spells it.
        filter: Whose events (``user_id``).
        webhook_id: The webhook it delivers to; ``None`` for the stream.
        tag: The label X puts on its deliveries.
        created_at: When it was made.
    """

    subscription_id: str = Field(min_length=1)
    event_type: str
    filter: SubscriptionFilter = SubscriptionFilter.model_construct()
    webhook_id: str | None = None
    tag: str | None = None
    created_at: datetime | None = None


class SubscriptionPage(_Wire):
    """A page of subscriptions."""

    data: tuple[Subscription, ...] = ()
    meta: Meta = Meta.model_construct()
