"""The core conversation model: one shape for every network.

Every model is a frozen pydantic model with ``extra="forbid"``. Native ids are
always strings. Entity spans are Python ``str`` indices into ``Message.text``;
adapters convert from each network's UTF-8 byte or UTF-16 offsets (see
[`omnichannel.text`][omnichannel.text]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "Attachment",
    "AttachmentKind",
    "Conversation",
    "ConversationKind",
    "Entity",
    "Hashtag",
    "Link",
    "Mention",
    "Message",
    "Person",
    "Ref",
    "Visibility",
]

Visibility = Literal["public", "unlisted", "followers", "private"]
"""Who can see a message: ``private`` means a direct message."""

ConversationKind = Literal["thread", "direct"]
"""A public thread under a post, or a private direct conversation."""

AttachmentKind = Literal["image", "gif", "video", "audio", "file", "sticker", "link_card"]
"""The kinds of media a message can carry."""


if TYPE_CHECKING:
    from pydantic import AnyUrl
else:  # pydantic's AnyUrl on first build (importing it loads importlib.metadata)
    from ._lazy import AnyUrl


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Ref(_Model):
    """A pointer to one thing on one network.

    Attributes:
        network: Network id, e.g. ``"mastodon"``.
        id: The native id, always a string (Bluesky: the ``at://`` URI).
        extra: Further addressing a network needs (Bluesky: ``cid``).

    Two refs are equal when network, id and extra are equal; the hash uses
    network and id only, so a ref is a cheap dictionary key.
    """

    network: str
    id: str = Field(min_length=1)
    extra: dict[str, str] = Field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.network, self.id))

    def __str__(self) -> str:
        return f"{self.network}:{self.id}"


class Person(_Model):
    """A customer, an agent or our own account on one network.

    Attributes:
        ref: The account.
        handle: The handle, without a leading ``@`` (``alice`` or
            ``alice@example.social`` on Mastodon, ``alice.bsky.social`` on Bluesky).
        display_name: The name the person shows, when set.
        profile_url: Where their profile is on the web.
        avatar_url: Their picture.
        followers: How many follow them, when the network says.
        verified: Whether the network marks them verified, when it says.
        bot: Whether the account is automated, when the network says
            (Mastodon's ``bot`` flag, Bluesky's ``bot`` self-label).
    """

    ref: Ref
    handle: str | None = None
    display_name: str | None = None
    profile_url: str | None = None
    avatar_url: str | None = None
    followers: int | None = None
    verified: bool | None = None
    bot: bool | None = None


class Conversation(_Model):
    """A public thread under a post, or a private direct conversation.

    Attributes:
        ref: For a thread, the root post; for a direct conversation, the
            network's conversation id (or the other person's id where the
            network has none).
        kind: ``"thread"`` or ``"direct"``.
        account: Our own account on this network.
        participants: The people we know to take part, ourselves excluded.
    """

    ref: Ref
    kind: ConversationKind
    account: Ref | None = None
    participants: tuple[Person, ...] = ()


class _Entity(_Model):
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    def text_in(self, text: str) -> str:
        """Return the part of ``text`` this entity covers."""
        return text[self.start : self.end]


class Mention(_Entity):
    """An @mention of a person, spanning ``text[start:end]``.

    Attributes:
        start: Where it starts in ``Message.text`` (a ``str`` index).
        end: Where it ends (exclusive).
        type: Always ``"mention"``.
        handle: The handle mentioned, without the ``@``.
        person: The account, when the network resolved it.
    """

    type: Literal["mention"] = "mention"
    handle: str
    person: Ref | None = None


class Link(_Entity):
    """A link; ``url`` is the full target even where the text shows it shortened.

    Attributes:
        start: Where it starts in ``Message.text`` (a ``str`` index).
        end: Where it ends (exclusive).
        type: Always ``"link"``.
        url: The full target.
    """

    type: Literal["link"] = "link"
    url: str


class Hashtag(_Entity):
    """A hashtag; ``tag`` is without the ``#``.

    Attributes:
        start: Where it starts in ``Message.text`` (a ``str`` index).
        end: Where it ends (exclusive).
        type: Always ``"hashtag"``.
        tag: The tag, without the ``#``.
    """

    type: Literal["hashtag"] = "hashtag"
    tag: str


Entity = Annotated[Mention | Link | Hashtag, Field(discriminator="type")]
"""A mention, link or hashtag, discriminated on ``type``."""


class Attachment(_Model):
    """Media on a message: image, GIF, video, audio, file, sticker or link card.

    Attributes:
        kind: What it is.
        url: Where the media (or the linked page) is, when the network says.
        alt_text: Its description for screen readers.
        mime_type: Its media type, when known.
        title: A link card's title.
        description: A link card's description.
        preview_url: A smaller version or thumbnail.
        width: Width in pixels, when known.
        height: Height in pixels, when known.
    """

    kind: AttachmentKind
    url: AnyUrl | None = None
    alt_text: str | None = None
    mime_type: str | None = None
    title: str | None = None
    description: str | None = None
    preview_url: AnyUrl | None = None
    width: int | None = None
    height: int | None = None


class Message(_Model):
    """One message: a post, comment, reply or direct message.

    Attributes:
        ref: This message.
        conversation: The thread root or direct conversation it belongs to.
        author: Who wrote it.
        text: Plain text, exactly as the network has it (emoji and all).
        entities: Mentions, links and hashtags with ``str`` index spans.
        attachments: Media and link cards.
        created_at: When it was written.
        edited_at: When it was last edited, if ever.
        visibility: Who can see it.
        in_reply_to: The message it answers, if any.
        from_us: Whether our own account wrote it.
        raw: The native payload, an escape hatch; core code never reads it.
    """

    ref: Ref
    conversation: Ref
    author: Person
    text: str
    entities: tuple[Entity, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    created_at: AwareDatetime
    edited_at: AwareDatetime | None = None
    visibility: Visibility = "public"
    in_reply_to: Ref | None = None
    from_us: bool = False
    raw: dict[str, JsonValue] | None = Field(default=None, repr=False)

    @property
    def network(self) -> str:
        """The network this message lives on."""
        return self.ref.network

    @property
    def is_private(self) -> bool:
        """Whether this is a direct (private) message."""
        return self.visibility == "private"
