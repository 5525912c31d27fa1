"""Bluesky's native payloads (XRPC, chat, Jetstream) as pydantic models.

Shapes follow the lexicons in ``tests/vectors/bluesky/lexicons/`` and the
recorded responses beside them. Every model ignores fields it does not name:
the network adds fields often, and an unknown field must never fail a poll.
Field names keep the wire's camelCase through aliases.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AUTHOR_REASONS",
    "REASONS",
    "ByteSlice",
    "ChatProfile",
    "ConvoOutput",
    "ConvoView",
    "CreateRecordOutput",
    "DeletedMessageView",
    "Facet",
    "FacetFeature",
    "GetLogOutput",
    "GetMessagesOutput",
    "GetRecordOutput",
    "JetstreamCommit",
    "JetstreamEvent",
    "JetstreamPostCommit",
    "JetstreamPostEvent",
    "LikeRecord",
    "ListConvosOutput",
    "ListNotificationsOutput",
    "LogEntry",
    "MessageView",
    "MessageViewSender",
    "Notification",
    "PostRecord",
    "PostThreadOutput",
    "PostView",
    "ProfileView",
    "ReplyRef",
    "ResolveHandleOutput",
    "Session",
    "StrongRef",
    "ThreadViewPost",
    "XrpcError",
]

MENTION = "app.bsky.richtext.facet#mention"
LINK = "app.bsky.richtext.facet#link"
TAG = "app.bsky.richtext.facet#tag"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"

AUTHOR_REASONS = frozenset({"mention", "reply", "quote"})
"""Notification reasons that carry a post written to us."""

REASONS = AUTHOR_REASONS | {"like"}
"""Notification reasons the adapter turns into events (a like is a reaction)."""


class _Wire(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, defer_build=True
    )


# --- records -------------------------------------------------------------------


class StrongRef(_Wire):
    """``com.atproto.repo.strongRef``: a record pinned by URI and content hash."""

    uri: str
    cid: str


class ReplyRef(_Wire):
    """``app.bsky.feed.post#replyRef``: the thread root and the post answered."""

    root: StrongRef
    parent: StrongRef


class ByteSlice(_Wire):
    """``app.bsky.richtext.facet#byteSlice``: UTF-8 byte offsets, end exclusive."""

    byte_start: int = Field(alias="byteStart", ge=0)
    byte_end: int = Field(alias="byteEnd", ge=0)


class FacetFeature(_Wire):
    """One feature of a facet: a mention (``did``), a link (``uri``) or a tag (``tag``).

    Unknown feature types keep their ``type`` and are skipped by the converter.
    """

    type: str = Field(default="", alias="$type")
    did: str | None = None
    uri: str | None = None
    tag: str | None = None


class Facet(_Wire):
    """``app.bsky.richtext.facet``: features over a byte slice of the text."""

    index: ByteSlice
    features: tuple[FacetFeature, ...] = ()


class PostRecord(_Wire):
    """``app.bsky.feed.post`` record: text, facets, reply refs and embed."""

    type: str = Field(default=POST, alias="$type")
    text: str = ""
    created_at: str = Field(default="", alias="createdAt")
    facets: tuple[Facet, ...] = ()
    reply: ReplyRef | None = None
    embed: dict[str, Any] | None = None
    langs: tuple[str, ...] = ()


class LikeRecord(_Wire):
    """``app.bsky.feed.like`` record: who liked is the repo, what is ``subject``."""

    type: str = Field(default=LIKE, alias="$type")
    subject: StrongRef
    created_at: str = Field(default="", alias="createdAt")


# --- actors and views ------------------------------------------------------------


class Label(_Wire):
    """``com.atproto.label.defs#label``: the fields we read."""

    val: str
    src: str | None = None
    neg: bool = False


class ProfileView(_Wire):
    """``app.bsky.actor.defs#profileViewBasic`` (and the richer views, which extend it)."""

    did: str
    handle: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    avatar: str | None = None
    labels: list[Label] = Field(default_factory=list)

    @property
    def automated(self) -> bool:
        """Whether the account carries the ``bot`` label (its own self-label, or a labeler's)."""
        return any(label.val == "bot" and not label.neg for label in self.labels)


ChatProfile = ProfileView
"""``chat.bsky.actor.defs#profileViewBasic`` has the same fields we read."""


class Notification(_Wire):
    """``app.bsky.notification.listNotifications#notification``.

    ``record`` is the record that caused it: a post for mentions, replies and
    quotes, a like or follow record otherwise; it stays a mapping until the
    reason says what it is.
    """

    uri: str
    cid: str
    author: ProfileView
    reason: str
    reason_subject: str | None = Field(default=None, alias="reasonSubject")
    record: dict[str, Any]
    is_read: bool = Field(default=False, alias="isRead")
    indexed_at: str = Field(alias="indexedAt")


class ListNotificationsOutput(_Wire):
    """Output of ``app.bsky.notification.listNotifications``: newest first."""

    notifications: tuple[Notification, ...] = ()
    cursor: str | None = None
    seen_at: str | None = Field(default=None, alias="seenAt")


class PostView(_Wire):
    """``app.bsky.feed.defs#postView``: a post as the app view shows it."""

    uri: str
    cid: str
    author: ProfileView
    record: dict[str, Any]
    indexed_at: str = Field(default="", alias="indexedAt")


class ThreadViewPost(_Wire):
    """``app.bsky.feed.defs#threadViewPost``: a post with its parent chain and replies.

    Blocked or missing neighbours (``#notFoundPost``, ``#blockedPost``) have no
    ``post``; they are kept as mappings and skipped.
    """

    type: str = Field(default="", alias="$type")
    post: PostView | None = None
    parent: dict[str, Any] | None = None
    replies: tuple[dict[str, Any], ...] = ()


class PostThreadOutput(_Wire):
    """Output of ``app.bsky.feed.getPostThread``."""

    thread: ThreadViewPost


# --- sessions, repo writes, errors --------------------------------------------------


class Session(_Wire):
    """Output of ``com.atproto.server.createSession`` and ``refreshSession``."""

    did: str
    handle: str
    access_jwt: str = Field(alias="accessJwt", repr=False)
    refresh_jwt: str = Field(alias="refreshJwt", repr=False)
    did_doc: dict[str, Any] | None = Field(default=None, alias="didDoc", repr=False)
    active: bool = True

    def pds_endpoint(self) -> str | None:
        """The ``#atproto_pds`` service endpoint from the DID document, if any."""
        services = (self.did_doc or {}).get("service")
        if not isinstance(services, list):
            return None
        for service in services:
            if (
                isinstance(service, dict)
                and str(service.get("id", "")).endswith("#atproto_pds")
                and isinstance(service.get("serviceEndpoint"), str)
            ):
                return str(service["serviceEndpoint"])
        return None


class CreateRecordOutput(_Wire):
    """Output of ``com.atproto.repo.createRecord``."""

    uri: str
    cid: str
    validation_status: str | None = Field(default=None, alias="validationStatus")


class GetRecordOutput(_Wire):
    """Output of ``com.atproto.repo.getRecord``."""

    uri: str
    cid: str | None = None
    value: dict[str, Any]


class ResolveHandleOutput(_Wire):
    """Output of ``com.atproto.identity.resolveHandle``."""

    did: str


class XrpcError(_Wire):
    """An XRPC error body: ``{"error": "<Name>", "message": "..."}``."""

    error: str = ""
    message: str = ""


# --- chat ----------------------------------------------------------------------------


class MessageViewSender(_Wire):
    """``chat.bsky.convo.defs#messageViewSender``."""

    did: str


class MessageView(_Wire):
    """``chat.bsky.convo.defs#messageView``: one chat message."""

    type: Literal["chat.bsky.convo.defs#messageView"] = Field(
        default="chat.bsky.convo.defs#messageView", alias="$type"
    )
    id: str
    rev: str
    text: str = ""
    facets: tuple[Facet, ...] = ()
    sender: MessageViewSender
    sent_at: str = Field(alias="sentAt")


class DeletedMessageView(_Wire):
    """``chat.bsky.convo.defs#deletedMessageView``."""

    type: Literal["chat.bsky.convo.defs#deletedMessageView"] = Field(alias="$type")
    id: str
    rev: str
    sender: MessageViewSender
    sent_at: str = Field(alias="sentAt")


class ConvoView(_Wire):
    """``chat.bsky.convo.defs#convoView``: a conversation and its members."""

    id: str
    rev: str = ""
    members: tuple[ChatProfile, ...] = ()
    status: str | None = None
    unread_count: int = Field(default=0, alias="unreadCount")


class ListConvosOutput(_Wire):
    """Output of ``chat.bsky.convo.listConvos``: most recent first."""

    convos: tuple[ConvoView, ...] = ()
    cursor: str | None = None


class ConvoOutput(_Wire):
    """Output of ``getConvo`` and ``getConvoForMembers``."""

    convo: ConvoView


class GetMessagesOutput(_Wire):
    """Output of ``chat.bsky.convo.getMessages``: newest first."""

    messages: tuple[dict[str, Any], ...] = ()
    cursor: str | None = None


class LogEntry(_Wire):
    """One entry of ``chat.bsky.convo.getLog`` (``#logCreateMessage`` and kin).

    Only ``$type``, ``convoId`` and ``message`` are read; the message stays a
    mapping until the type says whether it is a ``messageView``.
    """

    type: str = Field(default="", alias="$type")
    rev: str = ""
    convo_id: str = Field(default="", alias="convoId")
    message: dict[str, Any] | None = None
    related_profiles: tuple[ChatProfile, ...] = Field(default=(), alias="relatedProfiles")


class GetLogOutput(_Wire):
    """Output of ``chat.bsky.convo.getLog``: entries after the cursor, oldest first.

    The entries stay as received: each is read as a `LogEntry` on its own,
    so one malformed entry cannot fail the page.
    """

    logs: tuple[Any, ...] = ()
    cursor: str | None = None


# --- Jetstream ----------------------------------------------------------------------


class JetstreamCommit(_Wire):
    """The ``commit`` of a Jetstream event, with the record left as a mapping."""

    rev: str
    operation: Literal["create", "update", "delete"]
    collection: str
    rkey: str
    record: dict[str, Any] | None = None
    cid: str | None = None


class JetstreamEvent(_Wire):
    """A Jetstream v1 event: ``commit``, ``identity`` or ``account``."""

    did: str
    time_us: int
    kind: Literal["commit", "identity", "account"]
    commit: JetstreamCommit | None = None
    identity: dict[str, Any] | None = None
    account: dict[str, Any] | None = None


class JetstreamPostCommit(_Wire):
    """A Jetstream commit known to create or update an ``app.bsky.feed.post``."""

    rev: str
    operation: Literal["create", "update"]
    collection: Literal["app.bsky.feed.post"]
    rkey: str
    record: PostRecord
    cid: str


class JetstreamPostEvent(_Wire):
    """A Jetstream event that creates or updates a post."""

    did: str
    time_us: int
    kind: Literal["commit"]
    commit: JetstreamPostCommit
