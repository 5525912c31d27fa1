"""Reply policy and guardrail: which replies go out at once, which wait for a human.

A [`ReplyPolicy`][omnichannel.policy.ReplyPolicy] looks at the event a handler
is answering and at the reply it built, and decides ``"send"`` (queue it in the
outbox now) or ``"hold"`` (store it as a draft for an agent to approve). The
default, [`HoldPublic`][omnichannel.policy.HoldPublic], holds everything that
would be public and sends private answers at once: a public reply is a
permanent record, a private one reaches one customer.

Replies to a [backfilled][omnichannel.events]
event (read from before the listener's first run, when a backfill was asked
for) are held as drafts by every policy here, ``AutoSend`` included: an
answer days late is for a human to send or drop.

The [`CopyPasteGuard`][omnichannel.policy.CopyPasteGuard] refuses to send the
same text to a different customer within a time window: identical canned
answers to many people are the classic sign of a bot gone wrong. Texts are
compared after [`normalize_text`][omnichannel.policy.normalize_text], so a
different @mention or spacing does not make an answer original.

```python
careful = hold_when(lambda event, action: "refund" in action.text, reason="refunds")
hub = Hub(adapters=[...], store=store, policy=careful)
```
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from .actions import Post, PrivateReply, Reply
from .errors import ConfigurationError, DuplicateReply
from .events import Event, MessageReceived

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .store import OutboxStore

__all__ = [
    "AutoReplyCaps",
    "AutoSend",
    "CopyPasteGuard",
    "Decision",
    "HoldPublic",
    "ReplyPolicy",
    "Verdict",
    "hold_when",
    "normalize_text",
    "text_digest",
]

Verdict = Literal["send", "hold"]
"""``"send"`` queues the reply in the outbox; ``"hold"`` stores it as a draft."""

OutgoingMessage = Reply | PrivateReply | Post


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy decided about one reply, and why.

    Attributes:
        verdict: ``"send"`` or ``"hold"``.
        reason: A short human-readable reason, stored as the draft's note
            when the reply is held.
    """

    verdict: Verdict
    reason: str = ""

    @classmethod
    def send(cls, reason: str = "") -> Decision:
        """Return a decision to send at once."""
        return cls("send", reason)

    @classmethod
    def hold(cls, reason: str = "") -> Decision:
        """Return a decision to hold the reply as a draft."""
        return cls("hold", reason)

    @property
    def held(self) -> bool:
        """Whether the reply is held as a draft."""
        return self.verdict == "hold"


class ReplyPolicy(Protocol):
    """Decides, per reply, whether a handler's answer goes out at once or waits.

    Implement ``decide``; it must be quick and must not do I/O (it runs in the
    handler's call to ``Context.reply``).
    """

    def decide(self, event: Event | None, action: OutgoingMessage) -> Decision:
        """Return whether to send ``action`` (answering ``event``) or hold it.

        Args:
            event: The event the handler is answering, or ``None`` outside a handler.
            action: The reply, private reply or post the handler built.
        """
        ...  # pragma: no cover - protocol


def _backfilled(event: Event | None) -> bool:
    return event is not None and event.backfilled


_BACKFILL_HOLD = "a backfilled event: replies to history wait for approval"
_AUTOMATED_HOLD = "an automated account: a human decides whether to answer a bot"


def _automated(event: Event | None) -> bool:
    """Whether ``event`` is a message from an account its network marks automated."""
    return isinstance(event, MessageReceived) and event.message.author.bot is True


def _is_public(action: OutgoingMessage) -> bool:
    if isinstance(action, PrivateReply):
        return False
    if isinstance(action, Reply):
        return (action.visibility or action.to.visibility) != "private"
    return action.visibility != "private"


_caps_logger = logging.getLogger("omnichannel.policy")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AutoReplyCaps:
    """Caps on automatic replies: so many per thread, so many per customer, per window.

    A bot that answers every message of a long thread, or the same customer
    all day, is a bot gone wrong. Past a cap, replies are held as drafts (a
    human decides), and a log line says which cap acted. The counts are kept
    in this process: with several workers each counts its own replies.

    Args:
        per_thread: Automatic replies in one conversation per window.
        per_customer: Automatic replies to one customer (on one network) per window.
        window: How far back replies count (default a day).
        clock: Returns the current aware time (inject a fake one in tests).
    """

    def __init__(
        self,
        *,
        per_thread: int = 3,
        per_customer: int = 5,
        window: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if per_thread < 1 or per_customer < 1:
            raise ConfigurationError("reply caps must allow at least one reply")
        self.per_thread = per_thread
        self.per_customer = per_customer
        self.window = window
        self.clock = clock
        self._sent: dict[tuple[str, str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"AutoReplyCaps(per_thread={self.per_thread}, "
                f"per_customer={self.per_customer}, window={self.window})")

    def admit(self, action: OutgoingMessage) -> str | None:
        """Count ``action`` if it is within the caps; else return why it is held."""
        if not isinstance(action, Reply | PrivateReply):
            return None  # a new post answers nobody
        to = action.to
        keys = [
            (("thread", to.network, to.conversation.id), self.per_thread,
             f"cap: {self.per_thread} automatic replies in this thread per {self.window}"),
            (("customer", to.network, to.author.ref.id), self.per_customer,
             f"cap: {self.per_customer} automatic replies to this customer per {self.window}"),
        ]
        now = self.clock()
        with self._lock:
            for key, cap, reason in keys:
                times = self._sent.setdefault(key, deque())
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= cap:
                    _caps_logger.info(
                        "held an automatic reply on %s (%s)", to.network, reason,
                        extra={"network": to.network},
                    )
                    return reason
            for key, _, _ in keys:
                self._sent[key].append(now)
        return None


@dataclass(frozen=True, slots=True)
class HoldPublic:
    """The default policy: hold replies that would be public, send private ones.

    Every reply to a backfilled event is held, private ones included, and so
    is every reply to an automated account (Mastodon's ``bot`` flag, Bluesky's
    ``bot`` self-label: ``Person.bot``), so two bots never answer each other
    in a loop.

    Private replies it would send count against ``caps`` (see
    [`AutoReplyCaps`][omnichannel.policy.AutoReplyCaps]): past a cap they are
    held too.

    Attributes:
        automated_accounts: ``"hold"`` (default) or ``"send"``: whether
            replies to automated accounts wait for a human.
        caps: Caps on automatic replies (``None``: none).
    """

    automated_accounts: Literal["hold", "send"] = "hold"
    caps: AutoReplyCaps | None = field(default_factory=AutoReplyCaps, compare=False)

    def decide(self, event: Event | None, action: OutgoingMessage) -> Decision:
        """Hold a public reply or post as a draft; send a private one at once."""
        if _backfilled(event):
            return Decision.hold(_BACKFILL_HOLD)
        if self.automated_accounts == "hold" and _automated(event):
            return Decision.hold(_AUTOMATED_HOLD)
        if _is_public(action):
            return Decision.hold("public replies wait for approval")
        capped = self.caps.admit(action) if self.caps is not None else None
        if capped is not None:
            return Decision.hold(capped)
        return Decision.send("private reply")


@dataclass(frozen=True, slots=True)
class AutoSend:
    """Send every reply at once (bots and trusted automations).

    Except replies to a backfilled event, and replies to an automated account
    (``Person.bot``, unless ``automated_accounts="send"``): those are held as
    drafts.

    Past a cap of automatic replies per thread or per customer (``caps``,
    see [`AutoReplyCaps`][omnichannel.policy.AutoReplyCaps]) replies are held.

    Attributes:
        automated_accounts: ``"hold"`` (default) or ``"send"``.
        caps: Caps on automatic replies (``None``: none).
    """

    automated_accounts: Literal["hold", "send"] = "hold"
    caps: AutoReplyCaps | None = field(default_factory=AutoReplyCaps, compare=False)

    def decide(self, event: Event | None, action: OutgoingMessage) -> Decision:
        """Send, unless backfilled, from an automated account, or over a cap (then hold)."""
        if _backfilled(event):
            return Decision.hold(_BACKFILL_HOLD)
        if self.automated_accounts == "hold" and _automated(event):
            return Decision.hold(_AUTOMATED_HOLD)
        capped = self.caps.admit(action) if self.caps is not None else None
        if capped is not None:
            return Decision.hold(capped)
        return Decision.send("auto-send")


@dataclass(frozen=True, slots=True)
class _HoldWhen:
    predicate: Callable[[Event | None, OutgoingMessage], bool]
    reason: str
    otherwise: ReplyPolicy

    def decide(self, event: Event | None, action: OutgoingMessage) -> Decision:
        if self.predicate(event, action):
            return Decision.hold(self.reason)
        return self.otherwise.decide(event, action)


def hold_when(
    predicate: Callable[[Event | None, OutgoingMessage], bool],
    *,
    reason: str = "held by policy",
    otherwise: ReplyPolicy | None = None,
) -> ReplyPolicy:
    """Build a policy that holds a reply when ``predicate(event, action)`` is true.

    A reply to a backfilled event is held too, whatever ``otherwise`` says.

    Args:
        predicate: Called with the event being answered (``None`` outside a
            handler) and the reply; true holds it.
        reason: The note stored on drafts this policy holds.
        otherwise: The policy that decides when the predicate is false
            (default: [`AutoSend`][omnichannel.policy.AutoSend]).

    Example:
        ```python
        angry = hold_when(lambda event, action: "refund" in action.text, reason="refunds")
        ```
    """
    return _HoldWhen(predicate, reason, otherwise if otherwise is not None else AutoSend())


_MENTION = re.compile(r"(?<![\w@])@[\w.\-]+(?:@[\w.\-]+)?")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return the form of ``text`` the guardrail compares.

    @mentions (``@anna``, ``@anna@example.social``, ``@anna.bsky.social``) are
    removed, the text is case-folded and runs of white space become one space.

    Examples:
        >>> normalize_text("@anna  Thanks for\\nwaiting!")
        'thanks for waiting!'
    """
    without = _MENTION.sub(" ", text)
    return _SPACE.sub(" ", without.casefold()).strip()


def text_digest(text: str) -> str:
    """Return the SHA-256 hex digest of [`normalize_text`][omnichannel.policy.normalize_text]."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


class CopyPasteGuard:
    """Refuses the same reply text to a different customer within ``window``.

    Args:
        window: How far back identical texts count.
        min_length: Normalized texts shorter than this are never refused
            (``"thanks!"`` to two people is fine).

    Raises:
        ConfigurationError: ``window`` is not positive.
    """

    def __init__(self, *, window: timedelta = timedelta(hours=24), min_length: int = 20) -> None:
        if window <= timedelta(0):
            raise ConfigurationError("the guardrail window must be positive")
        self.window = window
        self.min_length = min_length

    def __repr__(self) -> str:
        return f"CopyPasteGuard(window={self.window!r}, min_length={self.min_length})"

    def applies_to(self, text: str) -> bool:
        """Whether ``text`` is long enough for the guardrail to compare it."""
        return len(normalize_text(text)) >= self.min_length

    async def check(
        self, store: OutboxStore, *, network: str, text: str, recipient: str | None, now: datetime
    ) -> None:
        """Raise if ``text`` already went to someone other than ``recipient``.

        Args:
            store: Where the outbox remembers what was sent to whom.
            network: The network the reply goes to.
            text: The reply text.
            recipient: Native id of the customer answered; ``None`` (a post,
                not addressed to anyone) is never refused.
            now: The current time.

        Raises:
            DuplicateReply: The same normalized text was queued for another
                customer since ``now - window``.
        """
        if recipient is None or not self.applies_to(text):
            return
        digest = text_digest(text)
        earlier = await store.recent_recipients(
            network=network, text_digest=digest, since=now - self.window
        )
        for previous in earlier:
            if previous != recipient:
                raise DuplicateReply(
                    digest=digest, recipient=recipient, previous_recipient=previous,
                    network=network,
                )
