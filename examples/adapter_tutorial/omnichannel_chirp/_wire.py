"""Chirp's JSON, as pydantic models (``extra="ignore"``: networks add fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Wire):
    """A Chirp user."""

    id: str
    handle: str
    name: str | None = None


class Entity(_Wire):
    """A mention, link or hashtag; ``start``/``end`` are UTF-16 code units."""

    type: Literal["mention", "link", "hashtag"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    handle: str | None = None
    user_id: str | None = None
    url: str | None = None
    tag: str | None = None


class ChirpPost(_Wire):
    """A post, comment or reply."""

    id: str
    text: str
    author: User
    created_at: AwareDatetime
    reply_to: str | None = None
    thread_id: str
    entities: tuple[Entity, ...] = ()
    client_ref: str | None = None


class ChirpDM(_Wire):
    """A direct message."""

    id: str
    conversation_id: str
    sender: User
    recipient: User
    text: str
    created_at: AwareDatetime
    reply_to: str | None = None
    entities: tuple[Entity, ...] = ()
    client_ref: str | None = None


class Page(_Wire):
    """A page of ``/mentions``, ``/dms``, ``/me/posts`` or ``/me/dms``.

    The items stay plain JSON here and are validated one by one, so one
    malformed item cannot hide the others.
    """

    data: tuple[JsonValue, ...] = ()
    next_since: str | None = None
    has_more: bool = False


class WebhookBody(_Wire):
    """What Chirp's webhook POSTs."""

    type: Literal["mention", "reply", "dm"]
    data: dict[str, object]


class ErrorBody(_Wire):
    """``{"error": {"code", "message"}}``."""

    class Detail(_Wire):
        code: str
        message: str = ""

    error: Detail
