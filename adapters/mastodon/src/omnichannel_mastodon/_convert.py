"""Mastodon entities to the core model: HTML content to plain text and entities.

A status's ``content`` is sanitized HTML with no offsets; the plain text is
rebuilt here with the standard library's HTML parser:

- paragraphs are separated by a blank line (``"\\n\\n"``) and ``<br>`` is a
  newline, which gives back what the author typed for local posts;
- mentions read ``@username`` as Mastodon shows them, and their entity carries
  the full ``acct`` and account id from ``mentions[]`` (matched on the profile
  URL);
- links keep their whole URL in the text, including the parts Mastodon hides
  behind an ellipsis (``<span class="invisible">``), and the entity's ``url`` is
  the ``href``;
- hashtags become ``Hashtag`` entities; custom emoji stay as ``:shortcode:``
  (Mastodon sends them that way; an ``<img>`` emoji reads as its ``alt``);
- the ``RE: <link>`` paragraph Mastodon adds to quote posts for older clients
  (``class="quote-inline"``) is left out, as Mastodon's own interface hides it.

Conversations: a direct status belongs to ``direct:<ids>``, the sorted account
ids of everyone in it but us, so a DM thread groups the same way whether it was
polled, streamed or sent by us. A public status belongs to the thread's root
status, found through known roots (or, in the adapter, the status context).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from omnichannel.actions import Sent
from omnichannel.errors import PayloadError
from omnichannel.events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    event_id,
)
from omnichannel.model import (
    Attachment,
    AttachmentKind,
    Conversation,
    Entity,
    Hashtag,
    Link,
    Mention,
    Message,
    Person,
    Ref,
    Visibility,
)

from ._wire import (
    Account,
    DirectConversation,
    MediaAttachment,
    Notification,
    Status,
    StatusMention,
)

__all__ = [
    "NETWORK",
    "Converter",
    "ThreadRoots",
    "content_to_text",
    "direct_ref",
    "from_mastodon_visibility",
    "parse",
    "parse_notification",
    "parse_status",
    "person",
    "source_to_text",
    "status_text",
    "to_mastodon_visibility",
]

NETWORK = "mastodon"

_M = TypeVar("_M", bound=BaseModel)

_Raw = TypeVar("_Raw", Message, Sent)


def with_decoded_raw(model: _Raw, raw: Mapping[str, Any] | None) -> _Raw:
    """``model`` with ``raw`` as its native payload, not validated a second time.

    Only for a payload this adapter has just decoded from JSON text (every
    caller's ``raw`` comes from ``decode_json``): a decoded document holds JSON
    values only, so checking every value of it again as ``JsonValue`` (a
    status is a few hundred of them) would only repeat ``json.loads``'s work.
    The rest of ``model`` was validated when it was built; the dict is copied
    one level deep, as before.
    """
    if raw is None:
        return model
    return model.model_copy(update={"raw": dict(raw)})


_VISIBILITY_IN: dict[str, Visibility] = {
    "public": "public",
    "unlisted": "unlisted",
    "private": "followers",
    "limited": "followers",
    "direct": "private",
}
_VISIBILITY_OUT: dict[Visibility, str] = {
    "public": "public",
    "unlisted": "unlisted",
    "followers": "private",
    "private": "direct",
}
_MEDIA_KINDS: dict[str, AttachmentKind] = {
    "image": "image",
    "gifv": "gif",
    "video": "video",
    "audio": "audio",
}
_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6"}
)
_VOID = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "source"})
_SKIPPED = frozenset({"script", "style", "template"})


def from_mastodon_visibility(value: str) -> Visibility:
    """Map Mastodon's visibility to the core's (``direct`` is ``private``).

    Values Mastodon may add later read as ``followers``: never public, never a DM.
    """
    return _VISIBILITY_IN.get(value, "followers")


def to_mastodon_visibility(value: Visibility) -> str:
    """Map the core's visibility to Mastodon's (``private`` is ``direct``)."""
    return _VISIBILITY_OUT[value]


def _classes(attrs: Mapping[str, str | None]) -> set[str]:
    return set((attrs.get("class") or "").split())


class _ContentParser(HTMLParser):
    """Walks ``content`` once, writing plain text and noting where anchors are."""

    def __init__(self, mentions: Sequence[StatusMention]) -> None:
        super().__init__(convert_charrefs=True)
        self._mentions = mentions
        self._out: list[str] = []
        self._pos = 0
        self._breaks = 0
        self._stack: list[str] = []
        self._skip_depth: int | None = None
        self._anchor: dict[str, str | None] | None = None
        self._anchor_start: int | None = None
        self._anchor_text: list[str] = []
        self.entities: list[Entity] = []

    @property
    def text(self) -> str:
        return "".join(self._out)

    # writing ----------------------------------------------------------------

    def _write(self, data: str) -> None:
        if not data:
            return
        if self._breaks and self._pos:
            self._out.append("\n" * self._breaks)
            self._pos += self._breaks
        self._breaks = 0
        if self._anchor is not None:
            if self._anchor_start is None:
                self._anchor_start = self._pos
            self._anchor_text.append(data)
        self._out.append(data)
        self._pos += len(data)

    def _block_break(self, count: int) -> None:
        self._breaks = max(self._breaks, count)

    # parser callbacks ---------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        amap = dict(attrs)
        if tag not in _VOID:
            self._stack.append(tag)
        if self._skip_depth is not None:
            return
        if tag in _SKIPPED or "quote-inline" in _classes(amap):
            if tag not in _VOID:
                self._skip_depth = len(self._stack)
            return
        if tag == "br":
            self._breaks += 1
        elif tag == "img":
            self._write(amap.get("alt") or "")
        elif tag in _BLOCKS:
            self._block_break(1 if tag == "li" else 2)
        elif tag == "a":
            self._finish_anchor()
            self._anchor = amap
            self._anchor_start = None
            self._anchor_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.handle_starttag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # Close up to the matching open tag; a stray end tag is ignored.
        if tag not in self._stack:
            return
        while self._stack:
            top = self._stack.pop()
            depth = len(self._stack) + 1
            if self._skip_depth is not None:
                if depth == self._skip_depth:
                    self._skip_depth = None
                if top == tag:
                    return
                continue
            if top == "a":
                self._finish_anchor()
            elif top in _BLOCKS:
                self._block_break(1 if top == "li" else 2)
            if top == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._skip_depth is not None:
            return
        # Layout whitespace between blocks (some servers indent their HTML)
        # is not text; inside <pre> everything is.
        if not data.strip() and (self._breaks or not self._pos) and "pre" not in self._stack:
            return
        self._write(data)

    def close(self) -> None:
        super().close()
        self._finish_anchor()

    # anchors -----------------------------------------------------------------

    def _finish_anchor(self) -> None:
        attrs, start = self._anchor, self._anchor_start
        self._anchor = None
        self._anchor_start = None
        if attrs is None or start is None:
            return
        end = self._pos
        shown = "".join(self._anchor_text)
        href = attrs.get("href") or ""
        classes = _classes(attrs)
        rels = set((attrs.get("rel") or "").split())
        if ("hashtag" in classes or "tag" in rels) and shown.startswith("#"):
            self.entities.append(Hashtag(start=start, end=end, tag=shown[1:]))
        elif "mention" in classes:
            self.entities.append(self._mention(start, end, shown, href))
        elif href:
            self.entities.append(Link(start=start, end=end, url=href))

    def _mention(self, start: int, end: int, shown: str, href: str) -> Mention:
        found = next((m for m in self._mentions if m.url == href), None)
        if found is None:
            username = shown.lstrip("@").split("@", 1)[0].casefold()
            found = next(
                (m for m in self._mentions if m.username.casefold() == username), None
            )
        if found is None:
            return Mention(start=start, end=end, handle=shown.lstrip("@"))
        return Mention(
            start=start, end=end, handle=found.acct, person=Ref(network=NETWORK, id=found.id)
        )


def content_to_text(
    content: str, mentions: Sequence[StatusMention] = ()
) -> tuple[str, tuple[Entity, ...]]:
    """Turn a status's HTML ``content`` into plain text and entities.

    Args:
        content: The ``content`` field, sanitized HTML.
        mentions: The status's ``mentions[]``, to resolve mention anchors.

    Returns:
        The plain text and its entities, spans in ``str`` indices.
    """
    parser = _ContentParser(mentions)
    parser.feed(content)
    parser.close()
    return parser.text, tuple(parser.entities)


_SOURCE_MENTION = re.compile(r"(?<![\w@/])@(\w[\w.-]*\w(?:@[\w-]+(?:\.[\w-]+)+)?|\w)")
_SOURCE_LINK = re.compile(r"https?://[^\s<>\"]+")
_SOURCE_TAG = re.compile(r"(?<![\w#&/])#(\w+)")


def source_to_text(
    text: str, mentions: Sequence[StatusMention] = ()
) -> tuple[str, tuple[Entity, ...]]:
    """Turn a status's plain source ``text`` into text and entities.

    Mastodon answers a ``DELETE`` (and ``/source``) with the status's source
    ``text`` instead of its HTML ``content``. Mentions are found as
    ``@user`` or ``@user@host`` and resolved against ``mentions[]``; links
    and hashtags as the web client writes them.

    Args:
        text: The ``text`` field, as the author typed it.
        mentions: The status's ``mentions[]``, to resolve ``@user``.

    Returns:
        The text and its entities, spans in ``str`` indices.
    """
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for match in _SOURCE_LINK.finditer(text):
        url = match.group(0).rstrip(".,;:!?)]}'\"")
        end = match.start() + len(url)
        found.append(Link(start=match.start(), end=end, url=url))
        taken.append((match.start(), end))

    def free(start: int) -> bool:
        return not any(a <= start < b for a, b in taken)

    for match in _SOURCE_MENTION.finditer(text):
        if not free(match.start()):
            continue
        written = match.group(1).casefold()
        known = next((m for m in mentions if m.acct.casefold() == written), None) or next(
            (m for m in mentions if m.username.casefold() == written.split("@", 1)[0]), None)
        if known is None:
            found.append(Mention(start=match.start(), end=match.end(), handle=match.group(1)))
        else:
            found.append(Mention(start=match.start(), end=match.end(), handle=known.acct,
                                 person=Ref(network=NETWORK, id=known.id)))
    for match in _SOURCE_TAG.finditer(text):
        if free(match.start()):
            found.append(Hashtag(start=match.start(), end=match.end(), tag=match.group(1)))
    found.sort(key=lambda entity: entity.start)
    return text, tuple(found)


def status_text(status: Status) -> tuple[str, tuple[Entity, ...]]:
    """The plain text and entities of a status: its HTML ``content``, else its source ``text``.

    Raises:
        PayloadError: The status has neither (path ``content``): never an empty message.
    """
    if status.content is not None:
        return content_to_text(status.content, status.mentions)
    if status.text is not None:
        return source_to_text(status.text, status.mentions)
    raise PayloadError("a status without content or text", network=NETWORK, path="content")


def person(account: Account | StatusMention) -> Person:
    """Build a ``Person`` from an account (or the thinner entry of ``mentions[]``)."""
    if isinstance(account, StatusMention):
        return Person(
            ref=Ref(network=NETWORK, id=account.id),
            handle=account.acct,
            profile_url=account.url,
        )
    return Person(
        ref=Ref(network=NETWORK, id=account.id),
        handle=account.acct,
        display_name=account.display_name or None,
        profile_url=account.url,
        avatar_url=account.avatar,
        followers=account.followers_count,
        bot=account.bot,
    )


def _attachment(media: MediaAttachment) -> Attachment | None:
    url = media.url or media.remote_url
    if url is None:
        return None
    size = media.meta.original if media.meta is not None else None
    return Attachment(
        kind=_MEDIA_KINDS.get(media.type, "file"),
        url=url,
        alt_text=media.description or None,
        preview_url=media.preview_url,
        width=size.width if size is not None else None,
        height=size.height if size is not None else None,
    )


def _attachments(status: Status) -> tuple[Attachment, ...]:
    found = [a for a in map(_attachment, status.media_attachments) if a is not None]
    if status.card is not None:
        card = status.card
        found.append(
            Attachment(
                kind="link_card",
                url=card.url,
                title=card.title or None,
                description=card.description or None,
                preview_url=card.image,
                width=card.width,
                height=card.height,
            )
        )
    return tuple(found)


def direct_ref(status: Status, *, our_id: str | None) -> Ref:
    """The conversation of a direct status: everyone in it but us, by account id."""
    ids = {status.account.id, *(m.id for m in status.mentions)}
    ids.discard(our_id or "")
    if not ids:  # a note to ourselves
        ids = {status.account.id}
    return Ref(network=NETWORK, id="direct:" + ",".join(sorted(ids)))


class ThreadRoots:
    """A bounded memory of which thread root each status belongs to.

    Args:
        size: How many statuses to remember; the oldest are forgotten first.
    """

    def __init__(self, *, size: int = 10_000) -> None:
        self._size = size
        self._roots: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._roots)

    def get(self, status_id: str) -> str | None:
        """The root of ``status_id``, when known."""
        root = self._roots.get(status_id)
        if root is not None:
            self._roots.move_to_end(status_id)
        return root

    def put(self, status_id: str, root: str) -> None:
        """Remember that ``status_id`` belongs to the thread rooted at ``root``."""
        self._roots[status_id] = root
        self._roots.move_to_end(status_id)
        while len(self._roots) > self._size:
            self._roots.popitem(last=False)

    def root_of(self, status: Status) -> str | None:
        """The thread root of ``status`` from what is known, or ``None`` if unknown."""
        if status.in_reply_to_id is None:
            return status.id
        known = self.get(status.id)
        if known is not None:
            return known
        return self.get(status.in_reply_to_id)


class Converter:
    """Turns Mastodon entities into core messages and events for one account.

    Args:
        our_id: Our own account id, to tell our statuses apart and to leave us
            out of direct conversations.
        roots: Known thread roots; every converted public status is added.
        keep_raw: Whether ``Message.raw`` carries the native status.
    """

    def __init__(
        self, *, our_id: str | None, roots: ThreadRoots | None = None, keep_raw: bool = True
    ) -> None:
        self.our_id = our_id
        self.roots = roots if roots is not None else ThreadRoots()
        self.keep_raw = keep_raw

    @property
    def account_ref(self) -> Ref | None:
        """Our account as a ``Ref``, when known."""
        return Ref(network=NETWORK, id=self.our_id) if self.our_id else None

    # statuses -------------------------------------------------------------

    def conversation_ref(self, status: Status) -> Ref:
        """The conversation ``status`` belongs to, recording its thread root.

        A reply whose root is unknown is filed under the status it answers
        (the adapter looks the root up first when it can).
        """
        if status.visibility == "direct":
            return direct_ref(status, our_id=self.our_id)
        root = self.roots.root_of(status) or status.in_reply_to_id or status.id
        self.roots.put(status.id, root)
        return Ref(network=NETWORK, id=root)

    def message(self, status: Status, *, raw: Mapping[str, Any] | None = None) -> Message:
        """Build the core ``Message`` of a status.

        Args:
            status: The parsed status.
            raw: The status as decoded JSON, kept in ``Message.raw``.
        """
        text, entities = status_text(status)
        message = Message(
            ref=Ref(network=NETWORK, id=status.id),
            conversation=self.conversation_ref(status),
            author=person(status.account),
            text=text,
            entities=entities,
            attachments=_attachments(status),
            created_at=status.created_at,
            edited_at=status.edited_at,
            visibility=from_mastodon_visibility(status.visibility),
            in_reply_to=(
                Ref(network=NETWORK, id=status.in_reply_to_id) if status.in_reply_to_id else None
            ),
            from_us=self.our_id is not None and status.account.id == self.our_id,
            raw=None,
        )
        return with_decoded_raw(message, raw if self.keep_raw else None)

    def conversation(self, status: Status, message: Message) -> Conversation:
        """The ``Conversation`` a received status is in, with the people we know in it."""
        people: dict[str, Person] = {}
        if status.account.id != self.our_id:
            people[status.account.id] = message.author
        for mention in status.mentions:
            if mention.id != self.our_id and mention.id not in people:
                people[mention.id] = person(mention)
        return Conversation(
            ref=message.conversation,
            kind="direct" if status.visibility == "direct" else "thread",
            account=self.account_ref,
            participants=tuple(people.values()),
        )

    def direct_conversation(self, conversation: DirectConversation) -> Conversation:
        """The core ``Conversation`` of one entry of ``/api/v1/conversations``.

        Its ref is the same ``direct:<ids>`` as the statuses in it get.
        """
        people = [person(a) for a in conversation.accounts if a.id != self.our_id]
        ids = sorted({p.ref.id for p in people})
        if ids:
            ref = Ref(network=NETWORK, id="direct:" + ",".join(ids))
        elif conversation.last_status is not None:
            ref = direct_ref(conversation.last_status, our_id=self.our_id)
        else:
            raise PayloadError("a conversation without accounts", network=NETWORK, path="accounts")
        return Conversation(
            ref=ref, kind="direct", account=self.account_ref, participants=tuple(people)
        )

    def involves_us(self, status: Status) -> bool:
        """Whether we wrote, were mentioned in, or were answered by ``status``."""
        if self.our_id is None:
            return True
        return (
            status.account.id == self.our_id
            or status.in_reply_to_account_id == self.our_id
            or any(m.id == self.our_id for m in status.mentions)
        )

    # events -----------------------------------------------------------------

    def received(self, status: Status, *, raw: Mapping[str, Any] | None = None) -> MessageReceived:
        """A ``MessageReceived`` for a status that mentions us."""
        message = self.message(status, raw=raw)
        return MessageReceived(
            id=event_id("message.received", message.ref),
            network=NETWORK,
            account=self.our_id,
            occurred_at=status.created_at,
            message=message,
            conversation=self.conversation(status, message),
        )

    def updated(self, status: Status, *, raw: Mapping[str, Any] | None = None) -> MessageUpdated:
        """A ``MessageUpdated`` for an edited status (the event id names the edit)."""
        message = self.message(status, raw=raw)
        when = status.edited_at or status.created_at
        return MessageUpdated(
            id=event_id("message.updated", message.ref, when.isoformat()),
            network=NETWORK,
            account=self.our_id,
            occurred_at=when,
            message=message,
        )

    def deleted(self, status_id: str, *, occurred_at: datetime) -> MessageDeleted:
        """A ``MessageDeleted`` for the status ``status_id``."""
        ref = Ref(network=NETWORK, id=status_id)
        root = self.roots.get(status_id)
        return MessageDeleted(
            id=event_id("message.deleted", ref),
            network=NETWORK,
            account=self.our_id,
            occurred_at=occurred_at,
            message=ref,
            conversation=Ref(network=NETWORK, id=root) if root is not None else None,
        )

    def notification_events(
        self, notification: Notification, *, raw: Mapping[str, Any] | None = None
    ) -> list[Event]:
        """The events one notification stands for (none for kinds we do not follow).

        ``mention`` is a received message (a DM too: it is a direct status),
        ``favourite`` a like on our status, ``update`` an edit of a status we
        interacted with.
        """
        status = notification.status
        if status is None:
            return []
        raw_status = raw.get("status") if raw is not None else None
        status_raw = raw_status if isinstance(raw_status, Mapping) else None
        match notification.type:
            case "mention":
                return [self.received(status, raw=status_raw)]
            case "update":
                return [self.updated(status, raw=status_raw)]
            case "favourite":
                by = person(notification.account)
                target = Ref(network=NETWORK, id=status.id)
                return [
                    ReactionAdded(
                        id=event_id("reaction.added", target, by.ref.id, "like"),
                        network=NETWORK,
                        account=self.our_id,
                        occurred_at=notification.created_at,
                        target=target,
                        by=by,
                        reaction="like",
                    )
                ]
            case _:
                return []

    def notifications(self, page: Iterable[Mapping[str, Any]]) -> list[Event]:
        """The events of a page of notifications (decoded JSON), oldest first.

        Raises:
            PayloadError: An entry is not a notification.
        """
        items = list(page)
        parsed = [parse_notification(item, path=str(index)) for index, item in enumerate(items)]
        events: list[Event] = []
        # Mastodon lists the newest first; events go out oldest first.
        for notification, raw in zip(reversed(parsed), reversed(items), strict=True):
            events.extend(self.notification_events(notification, raw=raw))
        return events


def parse(model: type[_M], data: object, *, path: str = "") -> _M:
    """Validate decoded JSON as one of the wire models.

    Args:
        model: The wire model (``Status``, ``Account``...).
        data: The decoded JSON.
        path: Where ``data`` sits in the answer, for the error.

    Raises:
        PayloadError: ``data`` does not fit; ``path`` leads to the first bad field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc


def parse_status(data: object, *, path: str = "") -> Status:
    """Validate one status.

    Raises:
        PayloadError: ``data`` is not a status.
    """
    return parse(Status, data, path=path)


def parse_notification(data: object, *, path: str = "") -> Notification:
    """Validate one notification.

    Raises:
        PayloadError: ``data`` is not a notification.
    """
    return parse(Notification, data, path=path)
