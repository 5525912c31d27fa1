"""Bluesky's native payloads into the core model, offsets included.

Facets carry UTF-8 byte offsets; core entities carry ``str`` indices. A facet
whose offsets fall outside the text or inside a UTF-8 sequence (some clients
write sloppy facets) is dropped rather than failing the whole page.

Addressing: a post's ``Message.ref`` is its ``at://`` URI with its ``cid`` in
``extra``; ``Message.conversation`` is the thread root (``record.reply.root``,
or the post itself) with the root's ``cid``. A reply needs both strong refs.
A chat message's ref is its message id (``extra["convo"]`` holds the
conversation id), and its conversation is the chat ``convoId``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from omnichannel.adapter import Rejected, convert_item
from omnichannel.errors import PayloadError
from omnichannel.events import (
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    event_id,
)
from omnichannel.model import (
    Attachment,
    Conversation,
    Entity,
    Hashtag,
    Link,
    Mention,
    Message,
    Person,
    Ref,
)
from omnichannel.text import utf8_to_index

from ._wire import (
    AUTHOR_REASONS,
    LINK,
    MENTION,
    POST,
    REASONS,
    TAG,
    Facet,
    GetMessagesOutput,
    JetstreamPostEvent,
    LikeRecord,
    LogEntry,
    MessageView,
    Notification,
    PostRecord,
    PostView,
    ProfileView,
    StrongRef,
    ThreadViewPost,
)

__all__ = [
    "NETWORK",
    "PageItem",
    "chat_event",
    "chat_message",
    "chat_page_events",
    "entities_from_facets",
    "jetstream_deleted",
    "jetstream_event",
    "jetstream_updated",
    "like_event",
    "load",
    "located",
    "log_entry",
    "notification_event",
    "notification_page",
    "person",
    "post_message",
    "post_ref",
    "received",
    "thread_messages",
    "tid_datetime",
    "usable_cursor",
]

NETWORK = "bluesky"
_CDN = "https://cdn.bsky.app/img"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_MAX_CURSOR = 2048

M = TypeVar("M", bound=BaseModel)


def load(model: type[M], data: Any, *, path: str = "") -> M:
    """Validate ``data`` (a mapping or JSON bytes) as ``model``.

    Raises:
        PayloadError: The data does not have the shape; ``path`` names the
            first bad field.
    """
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc


@contextmanager
def located(path: str) -> Iterator[None]:
    """Re-raise what goes wrong inside as a `PayloadError` under ``path``.

    Conversions raise errors with paths relative to the item they read (its
    ``record.text``); the caller knows where the item sits in the page
    (``notifications.3``). The core model refusing a converted value (a
    pydantic ``ValidationError``) becomes a `PayloadError` there too.

    Raises:
        PayloadError: Something inside failed; its path starts with ``path``.
    """
    try:
        yield
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc
    except PayloadError as exc:
        where = ".".join(part for part in (path, exc.path) if part)
        raise PayloadError(exc.reason, network=exc.network or NETWORK, path=where) from exc


# --- small pieces ----------------------------------------------------------------


def person(profile: ProfileView | None = None, *, did: str | None = None) -> Person:
    """A Bluesky actor as a core ``Person`` (``ref.id`` is the DID)."""
    if profile is None:
        if did is None:
            raise PayloadError("an actor has no DID", network=NETWORK)
        return Person(ref=Ref(network=NETWORK, id=did),
                      profile_url=f"https://bsky.app/profile/{did}")
    return Person(
        ref=Ref(network=NETWORK, id=profile.did),
        handle=profile.handle,
        display_name=profile.display_name or None,
        profile_url=f"https://bsky.app/profile/{profile.handle or profile.did}",
        avatar_url=profile.avatar,
        bot=True if profile.automated else None,
    )


def post_ref(uri: str, cid: str) -> Ref:
    """The ref of a post: its ``at://`` URI, with its ``cid`` in ``extra``."""
    return Ref(network=NETWORK, id=uri, extra={"cid": cid})


def _strong(ref: StrongRef) -> Ref:
    return post_ref(ref.uri, ref.cid)


def tid_datetime(rkey: str) -> datetime | None:
    """The time encoded in a TID record key, or ``None`` if ``rkey`` is not a TID."""
    if len(rkey) != 13 or any(ch not in _TID_ALPHABET for ch in rkey):
        return None
    value = 0
    for ch in rkey:
        value = value * 32 + _TID_ALPHABET.index(ch)
    if value >> 63:
        return None
    try:
        return datetime.fromtimestamp((value >> 10) / 1_000_000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_time(*candidates: str | None) -> datetime | None:
    for raw in candidates:
        if not raw:
            continue
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        if when.tzinfo is not None:
            return when
    return None


def _when(uri: str, *candidates: str | None) -> datetime:
    when = _parse_time(*candidates)
    if when is None:
        when = tid_datetime(uri.rsplit("/", 1)[-1])
    if when is None:
        raise PayloadError("no usable timestamp", network=NETWORK, path="createdAt")
    return when


def entities_from_facets(
    text: str, facets: Iterable[Facet], *, handles: Mapping[str, str] | None = None
) -> tuple[Entity, ...]:
    """Turn facets (UTF-8 byte offsets) into core entities (``str`` spans).

    Args:
        text: The post or message text the facets point into.
        facets: Its facets.
        handles: Known handles by DID, for mentions whose text is not ``@handle``.

    Returns:
        Mentions, links and hashtags sorted by ``start``. Facets with offsets
        outside the text or inside a character, and unknown features, are left out.
    """
    out: list[Entity] = []
    for facet in facets:
        try:
            # A post is at most 3000 bytes: converting each offset on its own
            # (in C) beats building an OffsetMap table for the few facets.
            start = utf8_to_index(text, facet.index.byte_start)
            end = utf8_to_index(text, facet.index.byte_end)
        except PayloadError:
            continue  # a sloppy facet from some client: keep the text, drop the facet
        if start >= end:
            continue
        shown = text[start:end]
        for feature in facet.features:
            if feature.type == MENTION and feature.did:
                handle = shown[1:] if shown.startswith("@") else (handles or {}).get(
                    feature.did, shown)
                out.append(Mention(start=start, end=end, handle=handle,
                                   person=Ref(network=NETWORK, id=feature.did)))
            elif feature.type == LINK and feature.uri:
                out.append(Link(start=start, end=end, url=feature.uri))
            elif feature.type == TAG and feature.tag:
                out.append(Hashtag(start=start, end=end, tag=feature.tag))
    out.sort(key=lambda entity: entity.start)
    return tuple(out)


# --- attachments ---------------------------------------------------------------------


def _blob_cid(blob: Any) -> str | None:
    if isinstance(blob, Mapping):
        ref = blob.get("ref")
        if isinstance(ref, Mapping) and isinstance(ref.get("$link"), str):
            return str(ref["$link"])
        if isinstance(blob.get("cid"), str):  # legacy blob ref
            return str(blob["cid"])
    return None


def _aspect(item: Mapping[str, Any]) -> tuple[int | None, int | None]:
    ratio = item.get("aspectRatio")
    if isinstance(ratio, Mapping):
        width, height = ratio.get("width"), ratio.get("height")
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return None, None


def _attachments(embed: Mapping[str, Any] | None, did: str) -> tuple[Attachment, ...]:
    if not isinstance(embed, Mapping):
        return ()
    kind = embed.get("$type")
    out: list[Attachment] = []
    if kind == "app.bsky.embed.images":
        images = embed.get("images")
        for item in images if isinstance(images, list) else ():
            if not isinstance(item, Mapping):
                continue
            blob = item.get("image")
            cid = _blob_cid(blob)
            width, height = _aspect(item)
            mime = blob.get("mimeType") if isinstance(blob, Mapping) else None
            out.append(Attachment(
                kind="gif" if mime == "image/gif" else "image",
                url=f"{_CDN}/feed_fullsize/plain/{did}/{cid}@jpeg" if cid else None,
                preview_url=f"{_CDN}/feed_thumbnail/plain/{did}/{cid}@jpeg" if cid else None,
                alt_text=item.get("alt") or None,
                mime_type=mime if isinstance(mime, str) else None,
                width=width,
                height=height,
            ))
    elif kind == "app.bsky.embed.video":
        blob = embed.get("video")
        width, height = _aspect(embed)
        mime = blob.get("mimeType") if isinstance(blob, Mapping) else None
        out.append(Attachment(kind="video", alt_text=embed.get("alt") or None,
                              mime_type=mime if isinstance(mime, str) else None,
                              width=width, height=height))
    elif kind == "app.bsky.embed.external":
        external = embed.get("external")
        if isinstance(external, Mapping) and isinstance(external.get("uri"), str):
            thumb = _blob_cid(external.get("thumb"))
            # A card whose URI is not a URL keeps its text and loses the card.
            with suppress(ValidationError):
                out.append(Attachment(
                    kind="link_card",
                    url=external["uri"],
                    title=external.get("title") or None,
                    description=external.get("description") or None,
                    preview_url=f"{_CDN}/feed_thumbnail/plain/{did}/{thumb}@jpeg"
                    if thumb else None,
                ))
    elif kind == "app.bsky.embed.recordWithMedia":
        media = embed.get("media")
        if isinstance(media, Mapping):
            out.extend(_attachments(media, did))
    return tuple(out)


# --- posts -----------------------------------------------------------------------------


def _did_of(uri: str) -> str:
    rest = uri.removeprefix("at://")
    return rest.split("/", 1)[0]


def post_message(
    *,
    uri: str,
    cid: str,
    record: PostRecord,
    author: Person,
    our_did: str | None,
    indexed_at: str | None = None,
    raw: Mapping[str, Any] | None = None,
) -> Message:
    """A post record as a core ``Message``, addressed for a reply.

    Args:
        uri: The post's ``at://`` URI.
        cid: The post's CID.
        record: The post record.
        author: Who wrote it.
        our_did: Our account's DID, to set ``from_us``.
        indexed_at: When the app view indexed it (fallback for a bad ``createdAt``).
        raw: The native payload to keep in ``Message.raw``.

    Raises:
        PayloadError: No usable timestamp (``createdAt``, ``indexedAt`` or a TID key).
    """
    ref = post_ref(uri, cid)
    root = _strong(record.reply.root) if record.reply else ref
    return Message(
        ref=ref,
        conversation=root,
        author=author,
        text=record.text,
        entities=entities_from_facets(record.text, record.facets),
        attachments=_attachments(record.embed, _did_of(uri)),
        created_at=_when(uri, record.created_at, indexed_at),
        visibility="public",
        in_reply_to=_strong(record.reply.parent) if record.reply else None,
        from_us=our_did is not None and author.ref.id == our_did,
        raw=dict(raw) if raw is not None else None,
    )


def received(message: Message, *, kind: str, our_did: str | None) -> MessageReceived:
    """The ``MessageReceived`` of a message: id from its ref, conversation of ``kind``."""
    account = Ref(network=NETWORK, id=our_did) if our_did else None
    return MessageReceived(
        id=event_id("message.received", message.ref),
        network=NETWORK,
        account=our_did,
        occurred_at=message.created_at,
        message=message,
        conversation=Conversation(
            ref=message.conversation,
            kind="thread" if kind == "thread" else "direct",
            account=account,
            participants=(message.author,) if not message.from_us else (),
        ),
    )


def notification_event(
    notification: Notification, *, our_did: str | None, raw: Mapping[str, Any] | None = None
) -> MessageReceived | ReactionAdded | None:
    """A notification as its event; reasons we do not follow give ``None``.

    A mention, reply or quote is a `MessageReceived` of the post; a like of
    one of our posts is a `ReactionAdded` (see `like_event`).

    Raises:
        PayloadError: The notification's record is malformed; the path is
            relative to the notification (``record.text``).
    """
    if notification.reason == "like":
        return like_event(notification, our_did=our_did)
    if notification.reason not in AUTHOR_REASONS:
        return None
    if notification.record.get("$type", POST) != POST:
        return None
    record = load(PostRecord, notification.record, path="record")
    message = post_message(
        uri=notification.uri,
        cid=notification.cid,
        record=record,
        author=person(notification.author),
        our_did=our_did,
        indexed_at=notification.indexed_at,
        raw=raw,
    )
    return received(message, kind="thread", our_did=our_did)


def like_event(notification: Notification, *, our_did: str | None) -> ReactionAdded | None:
    """A ``like`` notification whose subject is one of our posts, as ``ReactionAdded``.

    ``target`` is the liked post (its URI, with its ``cid``) and ``by`` the
    liker. The event id names the post and the liker, so the same like read
    twice is one event. A like of something else (a feed generator, or a post
    that is not ours when ``our_did`` is known) gives ``None``.

    Raises:
        PayloadError: The like record is malformed (``record.subject``...).
    """
    record = load(LikeRecord, notification.record, path="record")
    subject = record.subject
    repo, _, rest = subject.uri.removeprefix("at://").partition("/")
    if not subject.uri.startswith("at://") or rest.partition("/")[0] != POST:
        return None
    if our_did is not None and repo != our_did:
        return None
    by = person(notification.author)
    target = post_ref(subject.uri, subject.cid)
    return ReactionAdded(
        id=event_id("reaction.added", target, by.ref.id, "like"),
        network=NETWORK,
        account=our_did,
        occurred_at=_when(notification.uri, record.created_at, notification.indexed_at),
        target=target,
        by=by,
        reaction="like",
    )


@dataclass(frozen=True, slots=True)
class PageItem:
    """One notification of a page, placed in time so the cursor can move past it.

    Attributes:
        indexed_at: When the app view indexed it; for a malformed item without
            a readable ``indexedAt``, the time of its neighbour in the page
            (``None`` when no item of the page has one).
        uri: Its URI; for a malformed item without one, a digest of its body.
        event: What it stands for, if anything.
        rejected: Why it was refused, for a malformed item (``event`` is ``None``).
    """

    indexed_at: datetime | None
    uri: str
    event: MessageReceived | ReactionAdded | None
    rejected: Rejected | None = None


def _placement(raw: object) -> tuple[datetime | None, str | None]:
    if not isinstance(raw, Mapping):
        return None, None
    uri, indexed = raw.get("uri"), raw.get("indexedAt")
    when = _parse_time(indexed) if isinstance(indexed, str) else None
    return when, uri if isinstance(uri, str) and uri else None


def _digest(raw: object) -> str:
    try:
        body = json.dumps(raw, sort_keys=True, default=str).encode("ascii")
    except (ValueError, TypeError, RecursionError):  # nested too deep, or keys of mixed types
        body = Rejected.from_error(PayloadError("unreadable"), raw).body
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def _neighbour_time(times: Sequence[datetime | None], index: int) -> datetime | None:
    """The time of the nearest newer item (listed before), else the nearest older one."""
    for candidate in (*reversed(times[:index]), *times[index + 1 :]):
        if candidate is not None:
            return candidate
    return None


def notification_page(
    data: Any, *, our_did: str | None, keep_raw: bool = True, strict: bool = True
) -> tuple[list[PageItem], str | None]:
    """Parse a ``listNotifications`` answer (newest first) into page items and the next cursor.

    Mentions, replies, quotes and likes are validated in full; other reasons
    (follows, reposts...) are read for their time and URI alone.

    Args:
        data: The decoded JSON answer.
        our_did: Our account's DID, to set ``from_us`` and to keep likes of our posts.
        keep_raw: Keep each notification as ``Message.raw``.
        strict: Raise on the first malformed notification. Otherwise a
            malformed one becomes an item with ``rejected`` set and the rest
            of the page is read.

    Raises:
        PayloadError: The answer has no list of notifications, or (``strict``)
            a notification in it is malformed; the path names it
            (``notifications.3.record.text``).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("notifications"), list):
        raise PayloadError("no notifications list", network=NETWORK, path="notifications")
    cursor = data.get("cursor")
    raws: list[Any] = data["notifications"]
    placed = [_placement(raw) for raw in raws]
    times = [when for when, _ in placed]
    items: list[PageItem] = []
    for index, raw in enumerate(raws):
        when, uri = placed[index]

        def convert(raw: object, when: datetime | None = when, uri: str | None = uri) -> PageItem:
            return _notification_item(raw, when, uri, our_did=our_did, keep_raw=keep_raw)

        found = convert_item(convert, raw, network=NETWORK, path=f"notifications.{index}")
        if isinstance(found, Rejected):
            if strict:
                raise found.error(network=NETWORK)
            found = PageItem(when or _neighbour_time(times, index), uri or _digest(raw), None,
                             found)
        items.append(found)
    return items, cursor if usable_cursor(cursor) else None


def usable_cursor(cursor: object) -> bool:
    """Whether a page's ``cursor`` can be sent back in a query (short printable text).

    A server's cursor goes into the next request's URL: one that no URL can
    carry (a control character, a lone surrogate, 100,000 characters) would
    fail every poll after it, so it is treated as no cursor at all.
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        return False
    if not cursor.isprintable():
        return False  # a control character: no URL can carry it
    try:
        cursor.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no request can carry it either
        return False
    return True


def _notification_item(
    raw: object, when: datetime | None, uri: str | None, *, our_did: str | None, keep_raw: bool
) -> PageItem:
    """One notification of a page as a page item.

    Raises:
        PayloadError: It is malformed (the path is relative to it).
    """
    if not isinstance(raw, Mapping):
        raise PayloadError("not an object", network=NETWORK)
    if uri is None or when is None:
        raise PayloadError("no uri or indexedAt", network=NETWORK)
    event = None
    reason = raw.get("reason")
    if isinstance(reason, str) and reason in REASONS:
        notification = load(Notification, raw)
        event = notification_event(notification, our_did=our_did, raw=raw if keep_raw else None)
    return PageItem(when, uri, event)


def _jetstream_message(
    event: JetstreamPostEvent, *, our_did: str | None, raw: Mapping[str, Any] | None
) -> Message:
    commit = event.commit
    return post_message(
        uri=f"at://{event.did}/{commit.collection}/{commit.rkey}",
        cid=commit.cid,
        record=commit.record,
        author=person(did=event.did),
        our_did=our_did,
        raw=raw,
    )


def _time_us(time_us: int) -> datetime:
    """A Jetstream ``time_us`` as a time.

    Raises:
        PayloadError: It is out of the range of dates (``10**20``).
    """
    try:
        return datetime.fromtimestamp(time_us / 1_000_000, UTC)
    except (ValueError, OverflowError, OSError):
        raise PayloadError("time_us is out of range", network=NETWORK, path="time_us") from None


def jetstream_event(
    event: JetstreamPostEvent, *, our_did: str | None, raw: Mapping[str, Any] | None = None
) -> MessageReceived:
    """A Jetstream post commit as ``MessageReceived`` (the author is known by DID only).

    Raises:
        PayloadError: The record has no usable timestamp.
    """
    message = _jetstream_message(event, our_did=our_did, raw=raw)
    return received(message, kind="thread", our_did=our_did)


def jetstream_updated(
    event: JetstreamPostEvent, *, our_did: str | None, raw: Mapping[str, Any] | None = None
) -> MessageUpdated:
    """A Jetstream ``update`` of a post as ``MessageUpdated`` (the post as it is now).

    ``message.edited_at`` and ``occurred_at`` are the commit's ``time_us``;
    the event id names the post and its new ``cid``, so each version is one
    event and the same update read twice is one.

    Raises:
        PayloadError: The record has no usable timestamp.
    """
    when = _time_us(event.time_us)
    message = _jetstream_message(event, our_did=our_did, raw=raw).model_copy(
        update={"edited_at": when})
    return MessageUpdated(
        id=event_id("message.updated", message.ref, event.commit.cid),
        network=NETWORK,
        account=our_did,
        occurred_at=when,
        message=message,
    )


def jetstream_deleted(
    uri: str, *, time_us: int, our_did: str | None, conversation: Ref | None = None
) -> MessageDeleted:
    """A Jetstream ``delete`` of the post ``uri`` as ``MessageDeleted``.

    A deletion names the record only: ``conversation`` is the thread root
    when the caller knows it.
    """
    ref = Ref(network=NETWORK, id=uri)
    return MessageDeleted(
        id=event_id("message.deleted", ref),
        network=NETWORK,
        account=our_did,
        occurred_at=_time_us(time_us),
        message=ref,
        conversation=conversation,
    )


def thread_messages(thread: ThreadViewPost, *, our_did: str | None) -> list[Message]:
    """Every post of a ``getPostThread`` answer, oldest first.

    Parents, the anchor post and nested replies are all included; blocked and
    missing posts are skipped.

    Raises:
        PayloadError: A post in the thread is malformed.
    """
    views: list[PostView] = []

    def walk_parents(node: Mapping[str, Any] | None, depth: int) -> None:
        if node is None or depth > 1000:
            return
        view = load(ThreadViewPost, node, path="thread.parent")
        if view.post is not None:
            views.append(view.post)
        walk_parents(view.parent, depth + 1)

    def walk_replies(nodes: Sequence[Mapping[str, Any]], depth: int) -> None:
        if depth > 1000:
            return
        for node in nodes:
            view = load(ThreadViewPost, node, path="thread.replies")
            if view.post is not None:
                views.append(view.post)
            walk_replies(view.replies, depth + 1)

    if thread.post is not None:
        views.append(thread.post)
    walk_parents(thread.parent, 0)
    walk_replies(thread.replies, 0)
    messages = []
    seen: set[str] = set()
    for view in views:
        if view.uri in seen or view.record.get("$type", POST) != POST:
            continue
        seen.add(view.uri)
        record = load(PostRecord, view.record, path="thread.post.record")
        messages.append(post_message(
            uri=view.uri, cid=view.cid, record=record, author=person(view.author),
            our_did=our_did, indexed_at=view.indexed_at,
        ))
    messages.sort(key=lambda message: message.created_at)
    return messages


# --- chat ------------------------------------------------------------------------------


def chat_message(
    view: MessageView,
    *,
    convo_id: str,
    our_did: str | None,
    profiles: Mapping[str, ProfileView] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> Message:
    """A chat ``messageView`` as a private core ``Message``.

    Raises:
        PayloadError: ``sentAt`` is not a timestamp (path ``sentAt``).
    """
    sender = view.sender.did
    profile = (profiles or {}).get(sender)
    when = _parse_time(view.sent_at)
    if when is None:
        raise PayloadError("sentAt is not a timestamp", network=NETWORK, path="sentAt")
    return Message(
        ref=Ref(network=NETWORK, id=view.id, extra={"convo": convo_id}),
        conversation=Ref(network=NETWORK, id=convo_id),
        author=person(profile) if profile is not None else person(did=sender),
        text=view.text,
        entities=entities_from_facets(view.text, view.facets),
        created_at=when,
        visibility="private",
        from_us=our_did is not None and sender == our_did,
        raw=dict(raw) if raw is not None else None,
    )


def chat_page_events(
    page: GetMessagesOutput,
    *,
    convo_id: str,
    our_did: str | None,
    profiles: Mapping[str, ProfileView] | None = None,
    rejected: list[Rejected] | None = None,
) -> list[MessageReceived]:
    """The messages of a ``getMessages`` page (newest first) written by others, oldest first.

    Deleted messages and our own are left out.

    Args:
        page: The page.
        convo_id: The conversation it belongs to (the answer does not say).
        our_did: Our DID: our own messages are left out.
        profiles: Known profiles by DID, for the authors' handles.
        rejected: Where to report a malformed message and go on with the
            rest; ``None`` raises instead.

    Raises:
        PayloadError: A message in the page is malformed (``messages.2.sentAt``)
            and ``rejected`` is ``None``.
    """
    events: list[MessageReceived] = []
    for index in reversed(range(len(page.messages))):
        item = page.messages[index]
        if not str(item.get("$type", "#messageView")).endswith("#messageView"):
            continue
        def convert(item: dict[str, Any]) -> MessageReceived | None:
            view = load(MessageView, item)
            if view.sender.did == our_did:
                return None
            message = chat_message(view, convo_id=convo_id, our_did=our_did,
                                   profiles=profiles, raw=item)
            return received(message, kind="direct", our_did=our_did)

        found = convert_item(convert, item, network=NETWORK, path=f"messages.{index}")
        if isinstance(found, Rejected):
            if rejected is None:
                raise found.error(network=NETWORK)
            rejected.append(found)
        elif found is not None:
            events.append(found)
    return events


def chat_event(
    entry: LogEntry, *, our_did: str | None, raw: Mapping[str, Any] | None = None
) -> MessageReceived | None:
    """A ``#logCreateMessage`` from someone else as ``MessageReceived``; others give ``None``.

    Raises:
        PayloadError: The message in the entry is malformed; the path is
            relative to the entry (``message.sentAt``).
    """
    if not entry.type.endswith("#logCreateMessage") or entry.message is None:
        return None
    if entry.message.get("$type", "chat.bsky.convo.defs#messageView") != (
        "chat.bsky.convo.defs#messageView"
    ):
        return None  # a deleted message
    with located("message"):
        view = load(MessageView, entry.message)
        if our_did is not None and view.sender.did == our_did:
            return None  # our own message, echoed back
        profiles = {profile.did: profile for profile in entry.related_profiles}
        message = chat_message(
            view, convo_id=entry.convo_id, our_did=our_did, profiles=profiles, raw=raw,
        )
        return received(message, kind="direct", our_did=our_did)


def log_entry(raw: object) -> LogEntry:
    """Validate one entry of a ``getLog`` page.

    Raises:
        PayloadError: It is not a log entry (the path is relative to it).
    """
    return load(LogEntry, raw)
