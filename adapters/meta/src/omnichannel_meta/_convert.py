"""Meta payloads (webhook deliveries, Graph API objects) turned into omnichannel events.

Pure functions: nothing here does I/O, so the webhook path, the reconciliation
poll and ``parse_payload`` all share them. Event ids name the comment or the
message (``facebook:message.received:<comment id>``), so an item seen by both a
webhook and the poll is handled once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from omnichannel.adapter import Batch, Rejected, decode_json
from omnichannel.errors import PayloadError
from omnichannel.events import (
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
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
)
from omnichannel.text import OffsetMap

__all__ = [
    "UNKNOWN_AUTHOR",
    "Converter",
    "parse_time",
]

logger = logging.getLogger("omnichannel.meta")

UNKNOWN_AUTHOR = "unknown"
"""The author id of a comment whose webhook carries no ``from.id`` (seen with
Instagram Login): the comment is still delivered, answerable by its comment id."""

# Webhook attachment types and the kinds they become.
_KINDS: dict[str, AttachmentKind] = {
    "image": "image", "video": "video", "audio": "audio", "file": "file",
    "sticker": "sticker", "animated_image": "gif", "ig_reel": "video", "reel": "video",
    "share": "link_card", "story_mention": "image",
}

_LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
_AT = re.compile(r"(?<![\w@])@([A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)")

# Feed items that are posts on the Page.
_POST_ITEMS = frozenset({"status", "post", "photo", "video", "share", "link"})


def parse_time(value: object, *, network: str, path: str) -> datetime:
    """A Graph timestamp as an aware datetime.

    Meta uses Unix seconds (feed ``created_time``, entry ``time`` of feed
    deliveries), Unix milliseconds (Messenger ``timestamp``) and ISO 8601 with a
    ``+0000`` offset (Graph API objects); a number over 10^11 is milliseconds.

    Raises:
        PayloadError: ``value`` is none of these.
    """
    if isinstance(value, bool):
        raise PayloadError("expected a timestamp", network=network, path=path)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError("timestamp out of range", network=network, path=path) from None
    if isinstance(value, str) and value:
        if value.isdigit():
            return parse_time(int(value), network=network, path=path)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise PayloadError("expected a timestamp", network=network, path=path)


def _id(value: object, *, network: str, path: str) -> str:
    """A Graph id (a string, or a number in older payloads) as a string."""
    if isinstance(value, bool) or value is None:
        raise PayloadError("expected an id", network=network, path=path)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise PayloadError("expected an id", network=network, path=path)


def _obj(value: object, *, network: str, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError("expected an object", network=network, path=path)
    return value


def _text(value: object, *, network: str, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError("expected text", network=network, path=path)
    return value


@dataclass
class Converter:
    """Turns one account's Meta payloads into events.

    Attributes:
        network: ``"facebook"`` or ``"instagram"``.
        account: Our Page id (Facebook) or Instagram professional account id,
            when known; items it wrote get ``from_us``. Without it a delivery's
            ``entry.id`` stands for it.
        handle: Our account's name or username, for the `Person` of our echoes.
    """

    network: str
    account: str | None = None
    handle: str | None = None

    # people and refs ---------------------------------------------------------

    def ref(self, native: str) -> Ref:
        """A ref on this network."""
        return Ref(network=self.network, id=native)

    def person(self, raw: object, *, path: str) -> Person:
        """The author of a comment or message (``from``, ``sender``), or the unknown author."""
        if raw is None:
            return Person(ref=self.ref(UNKNOWN_AUTHOR))
        data = _obj(raw, network=self.network, path=path)
        if data.get("id") is None:
            return Person(ref=self.ref(UNKNOWN_AUTHOR), handle=data.get("username") or None)
        native = _id(data.get("id"), network=self.network, path=f"{path}.id")
        username = data.get("username")
        name = data.get("name")
        return Person(
            ref=self.ref(native),
            handle=username if isinstance(username, str) and username else None,
            display_name=name if isinstance(name, str) and name else None,
        )

    def _ours(self, owner: str) -> Person:
        return Person(ref=self.ref(owner), handle=self.handle)

    def entities(self, text: str, tags: object, *, path: str) -> tuple[Entity, ...]:
        """Mentions, links and hashtags of a text, with ``str`` spans.

        Facebook names mentions in ``message_tags`` (``offset``/``length`` in
        UTF-16 units); Instagram writes ``@username`` in the text. Links
        (``http(s)://``) and ``#hashtags`` are found in the text.
        """
        found: list[Entity] = []
        links: list[tuple[int, int]] = []
        for match in _LINK.finditer(text):
            url = match.group(0).rstrip(_TRAILING)
            links.append((match.start(), match.start() + len(url)))
            found.append(Link(start=match.start(), end=match.start() + len(url), url=url))

        def in_link(start: int) -> bool:
            return any(a <= start < b for a, b in links)

        if isinstance(tags, list):
            offsets = OffsetMap(text)
            for index, tag in enumerate(tags):
                where = f"{path}.{index}"
                data = _obj(tag, network=self.network, path=where)
                offset, length = data.get("offset"), data.get("length")
                if not isinstance(offset, int) or not isinstance(length, int):
                    raise PayloadError("expected offset and length", network=self.network,
                                       path=where)
                start = offsets.utf16_to_index(offset, network=self.network, path=where)
                end = offsets.utf16_to_index(offset + length, network=self.network, path=where)
                covered = text[start:end]
                name = data.get("name")
                handle = covered[1:] if covered.startswith("@") else (
                    name if isinstance(name, str) and name else covered)
                tagged = data.get("id")
                found.append(Mention(
                    start=start, end=end, handle=handle,
                    person=self.ref(_id(tagged, network=self.network, path=f"{where}.id"))
                    if tagged is not None else None,
                ))
        elif self.network == "instagram":
            for match in _AT.finditer(text):
                if not in_link(match.start()):
                    found.append(Mention(start=match.start(), end=match.end(),
                                         handle=match.group(1)))
        for match in _HASHTAG.finditer(text):
            if not in_link(match.start()):
                found.append(Hashtag(start=match.start(), end=match.end(), tag=match.group(1)))
        return tuple(sorted(found, key=lambda e: e.start))

    # webhook deliveries ------------------------------------------------------

    def delivery(self, body: bytes) -> Batch:
        """The events of one webhook delivery; an item that cannot be used is rejected alone.

        Raises:
            PayloadError: The body is not JSON, or not an object with an ``entry`` list.
        """
        data = decode_json(body, network=self.network)
        if not isinstance(data, Mapping) or not isinstance(data.get("entry"), list):
            raise PayloadError(
                "expected an object with an entry list", network=self.network, path="entry"
            )
        events: list[Event] = []
        rejected: list[Rejected] = []
        for e_index, entry in enumerate(data["entry"]):
            path = f"entry.{e_index}"
            try:
                entry_obj = _obj(entry, network=self.network, path=path)
                owner = _id(entry_obj.get("id"), network=self.network, path=f"{path}.id")
                when = entry_obj.get("time")
            except Exception as exc:
                rejected.append(self.rejection(exc, entry, path=path))
                continue
            items: list[tuple[str, str, object]] = []
            for key in ("changes", "messaging", "standby"):
                found = entry_obj.get(key)
                if found is None:
                    continue
                if not isinstance(found, list):
                    error = PayloadError("expected a list", network=self.network,
                                         path=f"{path}.{key}")
                    rejected.append(Rejected.from_error(error, found))
                    continue
                items.extend((key, f"{path}.{key}.{i}", item) for i, item in enumerate(found))
            for key, item_path, item in items:
                try:
                    if key == "changes":
                        events.extend(self.change(item, owner=owner, time=when, path=item_path))
                    elif key == "messaging":
                        events.extend(self.messaging(item, owner=owner, path=item_path))
                    else:  # another app holds the thread (handover): not ours to answer
                        logger.debug("%s: skipped a standby item at %s", self.network, item_path)
                except Exception as exc:  # one item never stops the rest
                    rejected.append(self.rejection(exc, item, path=item_path))
        return Batch(events=tuple(events), rejected=tuple(rejected))

    def rejection(self, exc: Exception, item: object, *, path: str) -> Rejected:
        """The `Rejected` of an item whose conversion raised ``exc``."""
        if isinstance(exc, PayloadError):
            return Rejected.from_error(exc, item)
        if isinstance(exc, ValidationError):
            error = PayloadError.from_validation(exc, network=self.network, path=path)
        else:
            logger.debug("%s: converting the item at %s raised %s; it is rejected",
                         self.network, path, type(exc).__name__, exc_info=True)
            error = PayloadError(f"unreadable item ({type(exc).__name__})",
                                 network=self.network, path=path)
        return Rejected.from_error(error, item)

    def change(self, raw: object, *, owner: str, time: object, path: str) -> list[Event]:
        """The events of one ``changes`` item (Page feed, mention, Instagram comment)."""
        item = _obj(raw, network=self.network, path=path)
        field = item.get("field")
        value = item.get("value")
        if field in ("feed", "mention"):
            return self._feed(_obj(value, network=self.network, path=f"{path}.value"),
                              owner=owner, time=time, path=f"{path}.value")
        if field in ("comments", "live_comments"):
            value_obj = _obj(value, network=self.network, path=f"{path}.value")
            return [self._ig_comment(value_obj, owner=owner, time=time, path=f"{path}.value")]
        if field == "mentions":
            value_obj = _obj(value, network=self.network, path=f"{path}.value")
            return [self._ig_mention(value_obj, owner=owner, time=time, path=f"{path}.value")]
        logger.debug("%s: skipped a %r change at %s", self.network, field, path)
        return []

    # Facebook Page feed ---------------------------------------------------------

    def _feed(
        self, value: Mapping[str, Any], *, owner: str, time: object, path: str
    ) -> list[Event]:
        item, verb = value.get("item"), value.get("verb")
        post_id = _id(value.get("post_id"), network=self.network, path=f"{path}.post_id")
        account = self.account or owner
        if item == "comment" or (item in _POST_ITEMS and verb in ("add", "edited", "remove")):
            native = (
                _id(value.get("comment_id"), network=self.network, path=f"{path}.comment_id")
                if item == "comment" else post_id
            )
            ref = self.ref(native)
            thread = self.ref(post_id)
            if verb == "remove":
                when = self._when(value.get("created_time"), time, path=path)
                return [MessageDeleted(
                    id=event_id("message.deleted", ref), network=self.network, account=account,
                    occurred_at=when, message=ref, conversation=thread,
                )]
            message = self._feed_message(value, ref=ref, thread=thread, account=account,
                                         time=time, path=path)
            if verb == "add":
                return [self.received(message, account=account)]
            if verb == "edited":
                stamp = str(int(message.created_at.timestamp()))
                edited = message.model_copy(update={"edited_at": message.created_at})
                return [MessageUpdated(
                    id=event_id("message.updated", ref, stamp), network=self.network,
                    account=account, occurred_at=message.created_at, message=edited,
                )]
            if verb in ("hide", "unhide"):
                # Hidden comments stay visible to the Page; the event says the
                # state changed. raw["verb"] tells which.
                stamp = str(int(message.created_at.timestamp()))
                return [MessageUpdated(
                    id=event_id("message.updated", ref, str(verb), stamp), network=self.network,
                    account=account, occurred_at=message.created_at, message=message,
                )]
            logger.debug("%s: skipped feed verb %r at %s", self.network, verb, path)
            return []
        if item in ("reaction", "like"):
            target = self.ref(
                _id(value.get("comment_id") or post_id, network=self.network, path=path)
            )
            by = self.person(value.get("from"), path=f"{path}.from")
            reaction = str(value.get("reaction_type") or "like")
            when = self._when(value.get("created_time"), time, path=path)
            if verb == "add":
                return [ReactionAdded(
                    id=event_id("reaction.added", target, by.ref.id, reaction),
                    network=self.network, account=account, occurred_at=when, target=target,
                    by=by, reaction=reaction,
                )]
            if verb == "remove":
                return [ReactionRemoved(
                    id=event_id("reaction.removed", target, by.ref.id, reaction,
                                str(int(when.timestamp()))),
                    network=self.network, account=account, occurred_at=when, target=target,
                    by=by, reaction=reaction,
                )]
        logger.debug("%s: skipped feed item %r/%r at %s", self.network, item, verb, path)
        return []

    def _feed_message(
        self, value: Mapping[str, Any], *, ref: Ref, thread: Ref, account: str, time: object,
        path: str,
    ) -> Message:
        author_raw: object = value.get("from")
        if author_raw is None and value.get("sender_id") is not None:
            # Older deliveries name the author with sender_id / sender_name.
            author_raw = {"id": value.get("sender_id"), "name": value.get("sender_name")}
        author = self.person(author_raw, path=f"{path}.from")
        parent = value.get("parent_id")
        in_reply_to = (
            self.ref(_id(parent, network=self.network, path=f"{path}.parent_id"))
            if parent is not None and ref != thread else None
        )
        if in_reply_to is None and ref != thread:
            in_reply_to = thread
        attachments: tuple[Attachment, ...] = ()
        photo = value.get("photo")
        if isinstance(photo, str) and photo:
            attachments = (Attachment(kind="image", url=photo),)
        text = _text(value.get("message"), network=self.network, path=f"{path}.message")
        return Message(
            ref=ref, conversation=thread, author=author, text=text,
            entities=self.entities(text, value.get("message_tags"), path=f"{path}.message_tags"),
            attachments=attachments,
            created_at=self._when(value.get("created_time"), time, path=path),
            in_reply_to=in_reply_to, from_us=author.ref.id == account,
            raw=dict(value),
        )

    def _when(self, created: object, fallback: object, *, path: str) -> datetime:
        if created is not None:
            return parse_time(created, network=self.network, path=f"{path}.created_time")
        return parse_time(fallback, network=self.network, path=f"{path}.time")

    def received(self, message: Message, *, account: str) -> MessageReceived:
        """The event of a new message, its conversation a thread or a direct one."""
        kind = "direct" if message.is_private else "thread"
        participants = (
            () if message.from_us or message.author.ref.id == UNKNOWN_AUTHOR
            else (message.author,)
        )
        return MessageReceived(
            id=event_id("message.received", message.ref), network=self.network,
            account=account, occurred_at=message.created_at, message=message,
            conversation=Conversation(
                ref=message.conversation, kind=kind, account=self.ref(account),
                participants=participants,
            ),
        )

    # Instagram comments and mentions -----------------------------------------------

    def _ig_comment(
        self, value: Mapping[str, Any], *, owner: str, time: object, path: str
    ) -> Event:
        account = self.account or owner
        message = self.ig_comment(value, account=account, time=time, path=path)
        return self.received(message, account=account)

    def ig_comment(
        self, value: Mapping[str, Any], *, account: str, time: object = None, path: str,
        media: str | None = None,
    ) -> Message:
        """An Instagram comment (webhook ``value`` or Graph ``IGComment``) as a message."""
        native = _id(value.get("id"), network=self.network, path=f"{path}.id")
        media_raw = value.get("media")
        if media is None and isinstance(media_raw, Mapping) and media_raw.get("id") is not None:
            media = _id(media_raw.get("id"), network=self.network, path=f"{path}.media.id")
        author_raw: object = value.get("from")
        if author_raw is None and (value.get("user") is not None or value.get("username")):
            user = value.get("user")
            author_raw = {
                "id": user.get("id") if isinstance(user, Mapping) else None,
                "username": value.get("username"),
            }
        author = self.person(author_raw, path=f"{path}.from")
        parent = value.get("parent_id")
        thread = self.ref(media) if media is not None else self.ref(native)
        # A top-level comment starts its own thread on the media: it answers
        # no message. A reply names its comment in parent_id.
        in_reply_to = (
            self.ref(_id(parent, network=self.network, path=f"{path}.parent_id"))
            if parent is not None else None
        )
        created = value.get("timestamp") if value.get("timestamp") is not None else time
        text = _text(value.get("text"), network=self.network, path=f"{path}.text")
        return Message(
            ref=self.ref(native), conversation=thread, author=author, text=text,
            entities=self.entities(text, None, path=f"{path}.text"),
            created_at=parse_time(created, network=self.network, path=f"{path}.timestamp"),
            in_reply_to=in_reply_to, from_us=author.ref.id == account,
            raw=dict(value),
        )

    def _ig_mention(
        self, value: Mapping[str, Any], *, owner: str, time: object, path: str
    ) -> Event:
        """A mention of us in a comment: its text needs a lookup, so it is delivered empty."""
        account = self.account or owner
        media = _id(value.get("media_id"), network=self.network, path=f"{path}.media_id")
        if value.get("comment_id") is None:  # a caption that mentions us: the media itself
            native, answers = media, None
        else:
            native = _id(value.get("comment_id"), network=self.network,
                         path=f"{path}.comment_id")
            answers = self.ref(media)
        message = Message(
            ref=self.ref(native), conversation=self.ref(media),
            author=Person(ref=self.ref(UNKNOWN_AUTHOR)), text="",
            created_at=parse_time(time, network=self.network, path=f"{path}.time"),
            in_reply_to=answers, raw=dict(value),
        )
        return self.received(message, account=account)

    # Messenger and Instagram messaging ------------------------------------------

    def messaging(self, raw: object, *, owner: str, path: str) -> list[Event]:
        """The events of one ``messaging`` item (message, echo, reaction, edit)."""
        item = _obj(raw, network=self.network, path=path)
        account = self.account or owner
        sender = _id(_obj(item.get("sender"), network=self.network, path=f"{path}.sender")
                     .get("id"), network=self.network, path=f"{path}.sender.id")
        recipient_obj = item.get("recipient")
        recipient = (
            _id(recipient_obj.get("id"), network=self.network, path=f"{path}.recipient.id")
            if isinstance(recipient_obj, Mapping) else account
        )
        raw_message = item.get("message")
        if raw_message is None and item.get("reaction") is None and (
            item.get("message_edit") is None
        ):
            logger.debug("%s: skipped a messaging item (%s) at %s", self.network,
                         ",".join(sorted(k for k in item if k not in (
                             "sender", "recipient", "timestamp"))), path)
            return []
        when = parse_time(item.get("timestamp"), network=self.network, path=f"{path}.timestamp")
        if raw_message is not None:
            message = _obj(raw_message, network=self.network, path=f"{path}.message")
            mid = _id(message.get("mid"), network=self.network, path=f"{path}.message.mid")
            echo = message.get("is_echo") is True
            # The customer is the other side: the recipient of our echoes.
            customer = recipient if echo and recipient != account else sender
            if echo and customer == account:
                customer = sender
            if message.get("is_deleted") is True:
                return [MessageDeleted(
                    id=event_id("message.deleted", self.ref(mid)), network=self.network,
                    account=account, occurred_at=when, message=self.ref(mid),
                    conversation=self.ref(customer),
                )]
            author = self._ours(account) if echo else Person(ref=self.ref(sender))
            reply_to = message.get("reply_to")
            in_reply_to = None
            if isinstance(reply_to, Mapping) and reply_to.get("mid") is not None:
                in_reply_to = self.ref(_id(reply_to.get("mid"), network=self.network,
                                           path=f"{path}.message.reply_to.mid"))
            msg = Message(
                ref=self.ref(mid), conversation=self.ref(customer), author=author,
                text=_text(message.get("text"), network=self.network,
                           path=f"{path}.message.text"),
                attachments=self._attachments(message.get("attachments"),
                                              path=f"{path}.message.attachments"),
                created_at=when, visibility="private", in_reply_to=in_reply_to,
                from_us=echo, raw=dict(item),
            )
            return [self.received(msg, account=account)]
        reaction = item.get("reaction")
        if reaction is not None:
            data = _obj(reaction, network=self.network, path=f"{path}.reaction")
            target = self.ref(_id(data.get("mid"), network=self.network,
                                  path=f"{path}.reaction.mid"))
            emoji = str(data.get("emoji") or data.get("reaction") or "like")
            by = Person(ref=self.ref(sender))
            if data.get("action") == "unreact":
                return [ReactionRemoved(
                    id=event_id("reaction.removed", target, sender, emoji,
                                str(int(when.timestamp() * 1000))),
                    network=self.network, account=account, occurred_at=when, target=target,
                    by=by, reaction=emoji,
                )]
            return [ReactionAdded(
                id=event_id("reaction.added", target, sender, emoji), network=self.network,
                account=account, occurred_at=when, target=target, by=by, reaction=emoji,
            )]
        edit = item.get("message_edit")
        if edit is not None:
            data = _obj(edit, network=self.network, path=f"{path}.message_edit")
            mid = _id(data.get("mid"), network=self.network, path=f"{path}.message_edit.mid")
            msg = Message(
                ref=self.ref(mid), conversation=self.ref(sender), author=Person(
                    ref=self.ref(sender)),
                text=_text(data.get("text"), network=self.network,
                           path=f"{path}.message_edit.text"),
                created_at=when, edited_at=when, visibility="private", raw=dict(item),
            )
            return [MessageUpdated(
                id=event_id("message.updated", msg.ref, str(data.get("num_edit", ""))),
                network=self.network, account=account, occurred_at=when, message=msg,
            )]
        return []

    def _attachments(self, raw: object, *, path: str) -> tuple[Attachment, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise PayloadError("expected a list", network=self.network, path=path)
        found: list[Attachment] = []
        for index, item in enumerate(raw):
            data = _obj(item, network=self.network, path=f"{path}.{index}")
            kind = _KINDS.get(str(data.get("type")), "file")
            payload = data.get("payload")
            url = payload.get("url") if isinstance(payload, Mapping) else None
            found.append(Attachment(
                kind=kind, url=url if isinstance(url, str) and "://" in url else None,
            ))
        return tuple(found)

    # Graph API objects (the reconciliation poll) ----------------------------------

    def fb_comment(
        self, raw: object, *, post: str, account: str, path: str
    ) -> MessageReceived:
        """A Facebook comment read from ``GET /{post-id}/comments`` (or a post, its own thread)."""
        data = _obj(raw, network=self.network, path=path)
        native = _id(data.get("id"), network=self.network, path=f"{path}.id")
        parent = data.get("parent")
        parent_id = parent.get("id") if isinstance(parent, Mapping) else None
        value = {
            "from": data.get("from"), "message": data.get("message"),
            "created_time": data.get("created_time"), "message_tags": data.get("message_tags"),
            "parent_id": parent_id if parent_id is not None else post,
        }
        message = self._feed_message(value, ref=self.ref(native), thread=self.ref(post),
                                     account=account, time=None, path=path)
        return self.received(message.model_copy(update={"raw": dict(data)}), account=account)

    def graph_message(
        self, raw: object, *, account: str, path: str, customer: str | None = None
    ) -> MessageReceived:
        """A Messenger or Instagram message read from ``GET /{conversation-id}/messages``.

        The conversation is the customer's id (the side that is not ``account``),
        as in webhook deliveries.
        """
        data = _obj(raw, network=self.network, path=path)
        native = _id(data.get("id"), network=self.network, path=f"{path}.id")
        author = self.person(data.get("from"), path=f"{path}.from")
        ours = author.ref.id == account
        if customer is None:
            if not ours:
                customer = author.ref.id
            else:
                to = data.get("to")
                people = to.get("data") if isinstance(to, Mapping) else None
                if isinstance(people, list):
                    for person in people:
                        if isinstance(person, Mapping) and person.get("id") is not None:
                            pid = _id(person.get("id"), network=self.network, path=f"{path}.to")
                            if pid != account:
                                customer = pid
                                break
        if customer is None:
            raise PayloadError("cannot tell whom the message is with", network=self.network,
                               path=f"{path}.to")
        text = data.get("message") if "message" in data else data.get("text")
        msg = Message(
            ref=self.ref(native), conversation=self.ref(customer),
            author=self._ours(account) if ours else author,
            text=_text(text, network=self.network, path=f"{path}.message"),
            created_at=parse_time(data.get("created_time"), network=self.network,
                                  path=f"{path}.created_time"),
            visibility="private", from_us=ours, raw=dict(data),
        )
        return self.received(msg, account=account)


def page_items(body: object, *, network: str, path: str) -> Sequence[object]:
    """The ``data`` list of a Graph API page.

    Raises:
        PayloadError: The page has no ``data`` list.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise PayloadError("expected a page with a data list", network=network, path=path)
    items: list[object] = body["data"]
    return items
