"""Mastodon's JSON entities as it sends them, read leniently.

Each model keeps only the fields the adapter uses and ignores the rest
(``extra="ignore"``): Mastodon adds fields in every release. Ids stay strings.
Shapes follow the recorded payloads in ``tests/vectors/mastodon/``.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "Account",
    "Card",
    "Context",
    "CustomEmoji",
    "DirectConversation",
    "ErrorBody",
    "Instance",
    "InstanceV1",
    "MediaAttachment",
    "Notification",
    "Status",
    "StatusMention",
    "Tag",
]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class CustomEmoji(_Wire):
    """A custom emoji, shown in ``content`` as ``:shortcode:``."""

    shortcode: str
    url: str | None = None


class Account(_Wire):
    """An account (``/api/v1/accounts/...``, a status author, a notification's actor)."""

    id: str
    username: str
    acct: str
    display_name: str = ""
    url: str | None = None
    avatar: str | None = None
    followers_count: int | None = None
    bot: bool = False
    emojis: tuple[CustomEmoji, ...] = ()


class StatusMention(_Wire):
    """One entry of a status's ``mentions[]``."""

    id: str
    username: str
    url: str
    acct: str


class Tag(_Wire):
    """One entry of a status's ``tags[]``."""

    name: str
    url: str | None = None


class _Dimensions(_Wire):
    width: int | None = None
    height: int | None = None


class _MediaMeta(_Wire):
    original: _Dimensions | None = None


class MediaAttachment(_Wire):
    """One entry of a status's ``media_attachments[]``."""

    id: str
    type: str
    url: str | None = None
    preview_url: str | None = None
    remote_url: str | None = None
    description: str | None = None
    meta: _MediaMeta | None = None


class Card(_Wire):
    """The link preview card of a status."""

    url: str
    title: str = ""
    description: str = ""
    type: str = "link"
    image: str | None = None
    width: int | None = None
    height: int | None = None


class Status(_Wire):
    """A status (post), as in ``/api/v1/statuses``, notifications and streams."""

    id: str
    created_at: AwareDatetime
    edited_at: AwareDatetime | None = None
    in_reply_to_id: str | None = None
    in_reply_to_account_id: str | None = None
    visibility: str
    content: str | None = None
    text: str | None = None
    spoiler_text: str = ""
    language: str | None = None
    uri: str | None = None
    url: str | None = None
    account: Account
    mentions: tuple[StatusMention, ...] = ()
    tags: tuple[Tag, ...] = ()
    emojis: tuple[CustomEmoji, ...] = ()
    media_attachments: tuple[MediaAttachment, ...] = ()
    card: Card | None = None
    reblog: Status | None = None


class Notification(_Wire):
    """A notification (``/api/v1/notifications``, the ``notification`` stream event)."""

    id: str
    type: str
    created_at: AwareDatetime
    account: Account
    status: Status | None = None


class DirectConversation(_Wire):
    """A direct conversation (``/api/v1/conversations``, the ``conversation`` stream event)."""

    id: str
    unread: bool = False
    accounts: tuple[Account, ...] = ()
    last_status: Status | None = None


class Context(_Wire):
    """The thread around a status (``/api/v1/statuses/:id/context``)."""

    ancestors: tuple[Status, ...] = ()
    descendants: tuple[Status, ...] = ()


class _StatusLimits(_Wire):
    max_characters: int = 500
    characters_reserved_per_url: int = 23


class _Urls(_Wire):
    streaming: str | None = None


class _Configuration(_Wire):
    urls: _Urls = Field(default_factory=_Urls)
    statuses: _StatusLimits = Field(default_factory=_StatusLimits)


class Instance(_Wire):
    """The server's description (``/api/v2/instance``): limits and streaming host."""

    domain: str = ""
    version: str = ""
    configuration: _Configuration = Field(default_factory=_Configuration)


class _UrlsV1(_Wire):
    streaming_api: str | None = None


class _ConfigurationV1(_Wire):
    statuses: _StatusLimits = Field(default_factory=_StatusLimits)


class InstanceV1(_Wire):
    """The older server description (``/api/v1/instance``), for servers before 4.0."""

    uri: str = ""
    version: str = ""
    urls: _UrlsV1 = Field(default_factory=_UrlsV1)
    configuration: _ConfigurationV1 = Field(default_factory=_ConfigurationV1)

    def as_v2(self) -> Instance:
        """The same facts in the ``/api/v2/instance`` shape."""
        return Instance(
            domain=self.uri,
            version=self.version,
            configuration=_Configuration(
                urls=_Urls(streaming=self.urls.streaming_api),
                statuses=self.configuration.statuses,
            ),
        )


class ErrorBody(_Wire):
    """An error answer: ``{"error": "...", "error_description": "..."}``."""

    error: str = ""
    error_description: str | None = None


_DEFERRED = ConfigDict(defer_build=True)
"""Adapters build their validators on first use, not at import."""
NOTIFICATIONS: TypeAdapter[list[Notification]] = TypeAdapter(
    list[Notification], config=_DEFERRED
)
STATUSES: TypeAdapter[list[Status]] = TypeAdapter(list[Status], config=_DEFERRED)
CONVERSATIONS: TypeAdapter[list[DirectConversation]] = TypeAdapter(
    list[DirectConversation], config=_DEFERRED
)


def error_message(body: object) -> str:
    """The ``error`` text of an error body, or ``""`` when it has none."""
    if isinstance(body, dict):
        try:
            parsed = ErrorBody.model_validate(body)
        except ValueError:
            return ""
        if parsed.error_description and parsed.error_description != parsed.error:
            return f"{parsed.error}: {parsed.error_description}"
        return parsed.error
    return ""
