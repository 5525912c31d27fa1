"""The in-memory world a sandbox serves: accounts, posts, DMs, notifications, likes.

Long because: the fake network's state and every change a sandbox can make to it must
stay consistent with each other, under one lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from .clock import VirtualClock

__all__ = [
    "Account",
    "Change",
    "ChangeKind",
    "DirectConversation",
    "DirectMessage",
    "Facet",
    "FacetKind",
    "IdFactory",
    "Like",
    "Notification",
    "NotificationKind",
    "Post",
    "PostVisibility",
    "RecordKind",
    "World",
    "parse_facets",
]

RecordKind = Literal["account", "post", "message", "conversation", "notification", "like"]
"""What an id is being made for."""

PostVisibility = Literal["public", "unlisted", "followers", "direct"]
"""Who sees a post: ``direct`` is a post only its mentioned accounts see (Mastodon DMs)."""

FacetKind = Literal["mention", "link", "hashtag"]
NotificationKind = Literal["mention", "reply", "like", "dm"]
ChangeKind = Literal[
    "post.created", "post.edited", "post.deleted", "post.hidden", "post.unhidden",
    "message.created", "message.deleted", "like.added", "like.removed",
]


class IdFactory(Protocol):
    """Makes native ids: ``factory(kind, author)`` returns a new, unique id string."""

    def __call__(self, kind: RecordKind, author: Account | None, /) -> str: ...


@dataclass(frozen=True)
class Facet:
    """A mention, link or hashtag in a text, spanning ``text[start:end]`` (``str`` indices).

    Attributes:
        kind: ``mention``, ``link`` or ``hashtag``.
        start: First index (inclusive).
        end: Last index (exclusive).
        value: The handle without ``@``, the full URL, or the tag without ``#``.
        account_id: For a mention, the account it resolves to, when known.
    """

    kind: FacetKind
    start: int
    end: int
    value: str
    account_id: str | None = None

    def text_in(self, text: str) -> str:
        """Return the part of ``text`` the facet covers."""
        return text[self.start : self.end]


@dataclass
class Account:
    """A person on the sandbox network (a customer, or our own account).

    Attributes:
        id: Native id.
        handle: The handle, without ``@``.
        display_name: The name shown.
        created_at: Virtual time of creation.
        extra: Network-specific data (a Bluesky DID...).
    """

    id: str
    handle: str
    display_name: str
    created_at: datetime
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class Post:
    """A public post, comment, reply, or a ``direct`` post.

    Attributes:
        id: Native id.
        author_id: The author's account id.
        text: Plain text.
        created_at: Virtual time of creation.
        in_reply_to: The post it answers.
        root: The thread's first post (its own id for a root).
        visibility: Who sees it.
        mentions: Ids of the accounts it mentions.
        facets: Mentions, links and hashtags with ``str`` spans.
        hidden: Hidden by the owner of the thread.
        deleted_at: When it was deleted, if it was.
        edited_at: When it was last edited, if ever.
        idempotency_key: The key the client sent with it, if any.
        seq: World-wide creation order (for cursors).
        extra: Network-specific data (a Bluesky ``cid``, a chirp URL...).
    """

    id: str
    author_id: str
    text: str
    created_at: datetime
    in_reply_to: str | None = None
    root: str = ""
    visibility: PostVisibility = "public"
    mentions: tuple[str, ...] = ()
    facets: tuple[Facet, ...] = ()
    hidden: bool = False
    deleted_at: datetime | None = None
    edited_at: datetime | None = None
    idempotency_key: str | None = None
    seq: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        """Whether the post was deleted."""
        return self.deleted_at is not None


@dataclass
class DirectMessage:
    """One message in a direct conversation.

    Attributes:
        id: Native id.
        conversation_id: The conversation it belongs to.
        sender_id: Who sent it.
        text: Plain text.
        created_at: Virtual time of creation.
        facets: Mentions, links and hashtags with ``str`` spans.
        deleted_at: When it was deleted, if it was.
        idempotency_key: The key the client sent with it, if any.
        seq: World-wide creation order (for cursors).
        extra: Network-specific data.
    """

    id: str
    conversation_id: str
    sender_id: str
    text: str
    created_at: datetime
    facets: tuple[Facet, ...] = ()
    deleted_at: datetime | None = None
    idempotency_key: str | None = None
    seq: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        """Whether the message was deleted."""
        return self.deleted_at is not None


@dataclass
class DirectConversation:
    """A private conversation between accounts.

    Attributes:
        id: Native id.
        members: Ids of the accounts in it.
        created_at: Virtual time of creation.
        messages: Its messages, oldest first.
        extra: Network-specific data.
    """

    id: str
    members: tuple[str, ...]
    created_at: datetime
    messages: list[DirectMessage] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def others(self, account_id: str) -> tuple[str, ...]:
        """Return the members other than ``account_id``."""
        return tuple(m for m in self.members if m != account_id)


@dataclass
class Notification:
    """Something that happened to an account: mentioned, replied to, liked, messaged.

    Attributes:
        id: Native id.
        recipient_id: The account notified.
        kind: ``mention``, ``reply``, ``like`` or ``dm``.
        actor_id: Who did it.
        subject_id: The post, like or message it is about.
        created_at: Virtual time of creation.
        seq: World-wide creation order (for cursors).
        read: Whether the recipient marked it read.
    """

    id: str
    recipient_id: str
    kind: NotificationKind
    actor_id: str
    subject_id: str
    created_at: datetime
    seq: int = 0
    read: bool = False


@dataclass
class Like:
    """A like (or another reaction) by ``account_id`` on a post.

    Attributes:
        id: Native id.
        account_id: Who liked.
        post_id: The post liked.
        created_at: Virtual time of creation.
        reaction: ``"like"``, or the emoji.
        seq: World-wide creation order (for cursors).
        extra: Network-specific data.
    """

    id: str
    account_id: str
    post_id: str
    created_at: datetime
    reaction: str = "like"
    seq: int = 0
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One entry of the world's change log (for networks with change feeds).

    Attributes:
        seq: Position in the log.
        kind: What changed (``post.created``, ``like.removed``...).
        subject_id: The record that changed.
        actor_id: Who changed it.
        at: Virtual time of the change.
    """

    seq: int
    kind: ChangeKind
    subject_id: str
    actor_id: str
    at: datetime


_MENTION = re.compile(
    r"(?<![\w@/])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
    r"(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?)"
)
_LINK = re.compile(r"https?://[^\s<>\"]+")
_HASHTAG = re.compile(r"(?<![\w#&/])#(\w+)")
_TRAILING = ".,;:!?)]}'\""


def parse_facets(
    text: str, resolve: Callable[[str], str | None] = lambda _handle: None
) -> tuple[Facet, ...]:
    """Find mentions, links and hashtags in ``text``, with ``str`` index spans.

    Args:
        text: The text.
        resolve: Maps a handle (without ``@``) to an account id, or ``None``.

    Returns:
        The facets sorted by start; hashtags and mentions inside links are dropped.
    """
    found: list[Facet] = []
    for m in _LINK.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        found.append(Facet("link", m.start(), m.start() + len(url), url))
    links = [(f.start, f.end) for f in found]

    def inside_link(start: int) -> bool:
        return any(a <= start < b for a, b in links)

    for m in _MENTION.finditer(text):
        if not inside_link(m.start()):
            handle = m.group(1)
            found.append(Facet("mention", m.start(), m.end(), handle, resolve(handle)))
    for m in _HASHTAG.finditer(text):
        if not inside_link(m.start()):
            found.append(Facet("hashtag", m.start(), m.end(), m.group(1)))
    return tuple(sorted(found, key=lambda f: f.start))


class _SequentialIds:
    def __init__(self) -> None:
        self._n = 100

    def __call__(self, kind: RecordKind, author: Account | None, /) -> str:
        self._n += 1
        return str(self._n)


class World:
    """The stateful in-memory network: every record a sandbox serves.

    Mutating methods are thread-safe (one re-entrant lock, ``world.lock``),
    so a sandbox served by uvicorn in a thread and a test driving customers
    from the main thread can share one world.

    Args:
        clock: Stamps every record.
        ids: Makes native ids; the default gives increasing decimal strings.
    """

    def __init__(self, *, clock: VirtualClock, ids: IdFactory | None = None) -> None:
        self.clock = clock
        self.ids: IdFactory = ids or _SequentialIds()
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.posts: dict[str, Post] = {}
        self.conversations: dict[str, DirectConversation] = {}
        self.notifications: list[Notification] = []
        self.likes: list[Like] = []
        self.changes: list[Change] = []
        self._seq = 0

    # plumbing -------------------------------------------------------------

    def next_seq(self) -> int:
        """Return the next world-wide sequence number."""
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest record (0 when empty)."""
        return self._seq

    def _log(self, kind: ChangeKind, subject_id: str, actor_id: str, at: datetime) -> None:
        self.changes.append(Change(self.next_seq(), kind, subject_id, actor_id, at))

    def resolve_handle(self, handle: str) -> str | None:
        """Return the id of the account with ``handle`` (``@`` and domain optional)."""
        account = self.account_by_handle(handle)
        return account.id if account else None

    def facets_for(self, text: str) -> tuple[Facet, ...]:
        """Parse ``text`` into facets, resolving mentions against known accounts."""
        return parse_facets(text, self.resolve_handle)

    # accounts -------------------------------------------------------------

    def add_account(
        self, handle: str, *, display_name: str | None = None, id: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> Account:
        """Create an account; return it.

        Raises:
            ValueError: The handle or id is taken.
        """
        handle = handle.lstrip("@")
        with self.lock:
            if self.account_by_handle(handle, exact=True) is not None:
                raise ValueError(f"handle {handle!r} is taken")
            account = Account(
                id=id or self.ids("account", None), handle=handle,
                display_name=display_name or handle.split("@")[0].split(".")[0].title(),
                created_at=self.clock.now(), extra=dict(extra or {}),
            )
            if account.id in self.accounts:
                raise ValueError(f"account id {account.id!r} is taken")
            self.accounts[account.id] = account
            return account

    def account(self, account_id: str) -> Account:
        """Return the account with this id.

        Raises:
            KeyError: No such account.
        """
        return self.accounts[account_id]

    def account_by_handle(self, handle: str, *, exact: bool = False) -> Account | None:
        """Find an account by handle; ``@shop``, ``shop`` and ``shop@host`` all find ``shop``."""
        wanted = handle.lstrip("@").casefold()
        local = wanted.split("@")[0]
        loose: Account | None = None
        for account in self.accounts.values():
            have = account.handle.casefold()
            if have == wanted:
                return account
            if not exact and loose is None and (
                have.split("@")[0] == local or have.split(".")[0] == local
            ):
                loose = account
        return loose

    # posts ----------------------------------------------------------------

    def add_post(
        self, author: Account | str, text: str, *, in_reply_to: str | None = None,
        visibility: PostVisibility = "public", id: str | None = None,
        facets: Iterable[Facet] | None = None, idempotency_key: str | None = None,
        extra: dict[str, object] | None = None, notify: bool = True,
    ) -> Post:
        """Create a post (a reply when ``in_reply_to`` is given); notify who it concerns.

        Mentions are taken from ``facets`` (parsed from the text when ``None``).
        Mentioned accounts get a ``mention`` notification; the author of the
        post answered gets a ``reply`` one (unless also mentioned).

        Raises:
            KeyError: ``in_reply_to`` is not a known post.
            ValueError: The id is taken.
        """
        author_id = author if isinstance(author, str) else author.id
        with self.lock:
            parent = self.posts[in_reply_to] if in_reply_to is not None else None
            post_id = id or self.ids("post", self.accounts.get(author_id))
            if post_id in self.posts:
                raise ValueError(f"post id {post_id!r} is taken")
            spans = tuple(facets) if facets is not None else self.facets_for(text)
            mentions = tuple(dict.fromkeys(
                f.account_id for f in spans if f.kind == "mention" and f.account_id
            ))
            post = Post(
                id=post_id, author_id=author_id, text=text, created_at=self.clock.now(),
                in_reply_to=in_reply_to, root=parent.root if parent else post_id,
                visibility=visibility, mentions=mentions, facets=spans,
                idempotency_key=idempotency_key, seq=self.next_seq(), extra=dict(extra or {}),
            )
            self.posts[post.id] = post
            self._log("post.created", post.id, author_id, post.created_at)
            if notify:
                for account_id in mentions:
                    if account_id != author_id:
                        self._notify(account_id, "mention", author_id, post.id)
                if parent and parent.author_id != author_id and parent.author_id not in mentions:
                    self._notify(parent.author_id, "reply", author_id, post.id)
            return post

    def post(self, post_id: str) -> Post:
        """Return the post with this id (deleted ones included).

        Raises:
            KeyError: No such post.
        """
        return self.posts[post_id]

    def edit_post(
        self, post_id: str, text: str, *, facets: Iterable[Facet] | None = None
    ) -> Post:
        """Change a post's text; stamp ``edited_at``.

        Raises:
            KeyError: No such post.
        """
        with self.lock:
            post = self.posts[post_id]
            post.text = text
            post.facets = tuple(facets) if facets is not None else self.facets_for(text)
            post.edited_at = self.clock.now()
            self._log("post.edited", post.id, post.author_id, post.edited_at)
            return post

    def delete_post(self, post_id: str) -> Post:
        """Mark a post deleted (it stays in ``posts`` with ``deleted_at`` set).

        Raises:
            KeyError: No such post.
        """
        with self.lock:
            post = self.posts[post_id]
            if post.deleted_at is None:
                post.deleted_at = self.clock.now()
                self._log("post.deleted", post.id, post.author_id, post.deleted_at)
            return post

    def set_hidden(self, post_id: str, hidden: bool, *, by: str | None = None) -> Post:
        """Hide or unhide a post.

        Raises:
            KeyError: No such post.
        """
        with self.lock:
            post = self.posts[post_id]
            if post.hidden != hidden:
                post.hidden = hidden
                kind: ChangeKind = "post.hidden" if hidden else "post.unhidden"
                self._log(kind, post.id, by or post.author_id, self.clock.now())
            return post

    def posts_by(self, author: Account | str, *, include_deleted: bool = False) -> list[Post]:
        """Return the posts an account wrote, oldest first."""
        author_id = author if isinstance(author, str) else author.id
        return [
            p for p in sorted(self.posts.values(), key=lambda p: p.seq)
            if p.author_id == author_id and (include_deleted or not p.deleted)
        ]

    def thread(self, root_id: str) -> list[Post]:
        """Return the posts of the thread under ``root_id``, oldest first."""
        return sorted((p for p in self.posts.values() if p.root == root_id), key=lambda p: p.seq)

    def replies_to(self, post_id: str) -> list[Post]:
        """Return the direct replies to a post, oldest first."""
        return sorted(
            (p for p in self.posts.values() if p.in_reply_to == post_id), key=lambda p: p.seq
        )

    def find_post(self, *, author: Account | str, idempotency_key: str) -> Post | None:
        """Return the post ``author`` made with ``idempotency_key``, if any."""
        author_id = author if isinstance(author, str) else author.id
        for post in self.posts.values():
            if post.author_id == author_id and post.idempotency_key == idempotency_key:
                return post
        return None

    # likes ----------------------------------------------------------------

    def like(
        self, account: Account | str, post_id: str, *, reaction: str = "like",
        id: str | None = None, notify: bool = True,
    ) -> Like:
        """Like (or react to) a post; liking twice returns the first like.

        Raises:
            KeyError: No such post.
        """
        account_id = account if isinstance(account, str) else account.id
        key = (account_id, post_id, reaction)
        with self.lock:
            post = self.posts[post_id]
            for like in self.likes:
                if (like.account_id, like.post_id, like.reaction) == key:
                    return like
            like = Like(
                id=id or self.ids("like", self.accounts.get(account_id)), account_id=account_id,
                post_id=post_id, created_at=self.clock.now(), reaction=reaction,
                seq=self.next_seq(),
            )
            self.likes.append(like)
            self._log("like.added", post_id, account_id, like.created_at)
            if notify and post.author_id != account_id:
                self._notify(post.author_id, "like", account_id, post_id)
            return like

    def unlike(self, account: Account | str, post_id: str, *, reaction: str = "like") -> bool:
        """Take a like back; return whether there was one."""
        account_id = account if isinstance(account, str) else account.id
        key = (account_id, post_id, reaction)
        with self.lock:
            for like in self.likes:
                if (like.account_id, like.post_id, like.reaction) == key:
                    self.likes.remove(like)
                    self._log("like.removed", post_id, account_id, self.clock.now())
                    return True
            return False

    def likes_by(self, account: Account | str) -> list[Like]:
        """Return the likes an account made, oldest first."""
        account_id = account if isinstance(account, str) else account.id
        return [like for like in self.likes if like.account_id == account_id]

    # direct messages ------------------------------------------------------

    def conversation_between(
        self, *members: Account | str, id: str | None = None, create: bool = True
    ) -> DirectConversation | None:
        """Return the conversation with exactly these members (created if asked)."""
        ids = tuple(sorted({m if isinstance(m, str) else m.id for m in members}))
        with self.lock:
            for convo in self.conversations.values():
                if tuple(sorted(convo.members)) == ids:
                    return convo
            if not create:
                return None
            convo = DirectConversation(
                id=id or self.ids("conversation", None), members=ids,
                created_at=self.clock.now(),
            )
            self.conversations[convo.id] = convo
            return convo

    def add_message(
        self, sender: Account | str, conversation_id: str, text: str, *,
        id: str | None = None, facets: Iterable[Facet] | None = None,
        idempotency_key: str | None = None, extra: dict[str, object] | None = None,
        notify: bool = True,
    ) -> DirectMessage:
        """Add a message to a conversation; notify the other members (``dm``).

        Raises:
            KeyError: No such conversation.
            ValueError: The sender is not a member.
        """
        sender_id = sender if isinstance(sender, str) else sender.id
        with self.lock:
            convo = self.conversations[conversation_id]
            if sender_id not in convo.members:
                raise ValueError("the sender is not in this conversation")
            message = DirectMessage(
                id=id or self.ids("message", self.accounts.get(sender_id)),
                conversation_id=convo.id, sender_id=sender_id, text=text,
                created_at=self.clock.now(),
                facets=tuple(facets) if facets is not None else self.facets_for(text),
                idempotency_key=idempotency_key, seq=self.next_seq(), extra=dict(extra or {}),
            )
            convo.messages.append(message)
            self._log("message.created", message.id, sender_id, message.created_at)
            if notify:
                for other in convo.others(sender_id):
                    self._notify(other, "dm", sender_id, message.id)
            return message

    def message(self, message_id: str) -> DirectMessage:
        """Return the direct message with this id.

        Raises:
            KeyError: No such message.
        """
        for convo in self.conversations.values():
            for message in convo.messages:
                if message.id == message_id:
                    return message
        raise KeyError(message_id)

    def delete_message(self, message_id: str) -> DirectMessage:
        """Mark a direct message deleted.

        Raises:
            KeyError: No such message.
        """
        with self.lock:
            message = self.message(message_id)
            if message.deleted_at is None:
                message.deleted_at = self.clock.now()
                self._log("message.deleted", message.id, message.sender_id, message.deleted_at)
            return message

    def messages_by(
        self, account: Account | str, *, include_deleted: bool = False
    ) -> list[DirectMessage]:
        """Return the direct messages an account sent, oldest first."""
        account_id = account if isinstance(account, str) else account.id
        found = [
            m for c in self.conversations.values() for m in c.messages
            if m.sender_id == account_id and (include_deleted or not m.deleted)
        ]
        return sorted(found, key=lambda m: m.seq)

    # notifications --------------------------------------------------------

    def _notify(
        self, recipient_id: str, kind: NotificationKind, actor_id: str, subject_id: str
    ) -> None:
        self.notifications.append(Notification(
            id=self.ids("notification", self.accounts.get(actor_id)), recipient_id=recipient_id,
            kind=kind, actor_id=actor_id, subject_id=subject_id, created_at=self.clock.now(),
            seq=self.next_seq(),
        ))

    def notifications_for(
        self, account: Account | str, *, after_seq: int = 0,
        kinds: Iterable[NotificationKind] | None = None,
    ) -> list[Notification]:
        """Return an account's notifications after ``after_seq``, oldest first."""
        account_id = account if isinstance(account, str) else account.id
        wanted = set(kinds) if kinds is not None else None
        return [
            n for n in self.notifications
            if n.recipient_id == account_id and n.seq > after_seq
            and (wanted is None or n.kind in wanted)
        ]
