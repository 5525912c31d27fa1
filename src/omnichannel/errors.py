"""One error tree for every network.

```text
OmnichannelError
├── ConfigurationError (ValueError)
│   ├── UnknownNetwork (LookupError)
│   └── StoreError             the store's file cannot be used (path)
│       ├── StoreDamaged       not a database, or damaged pages
│       └── StoreLocked        another process has it open read-write
├── RecordNotFound (KeyError)  no outbox item or draft with this key
├── StoreConflict (ValueError) a change the stored records refuse (duplicate id, decided draft)
├── AuthenticationError
│   └── TokenExpired
├── ActionError                refused before any network call
│   ├── CapabilityNotSupported
│   ├── TextTooLong
│   ├── WindowClosed
│   ├── DuplicateReply         same text already sent to another customer
│   ├── DraftNotPending        no such draft, or it was already decided
│   ├── PrivateReplyUsed       the message's one private reply was already sent
│   └── ConversationClaimed    another agent is answering this conversation
├── NetworkError
│   ├── RateLimited
│   ├── DuplicateContent
│   ├── NotFound
│   ├── RequestRejected        the network refused the request (4xx)
│   ├── TransientError         worth retrying (5xx, connection failures)
│   └── AmbiguousDelivery      may have landed: reconcile, never blind-retry
├── PayloadError (ValueError)  bad webhook or API body (network, path)
└── WebhookSignatureError
```

Every error carries its data as attributes. Messages never contain a token, a
query string or a request body.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pydantic import ValidationError

__all__ = [
    "ActionError",
    "AmbiguousDelivery",
    "AuthenticationError",
    "CapabilityNotSupported",
    "ConfigurationError",
    "ConversationClaimed",
    "DraftNotPending",
    "DuplicateContent",
    "DuplicateReply",
    "NetworkError",
    "NotFound",
    "OmnichannelError",
    "PayloadError",
    "PrivateReplyUsed",
    "RateLimited",
    "RecordNotFound",
    "RequestRejected",
    "StoreConflict",
    "StoreDamaged",
    "StoreError",
    "StoreLocked",
    "TextTooLong",
    "TokenExpired",
    "TransientError",
    "UnknownNetwork",
    "WebhookSignatureError",
    "WindowClosed",
]


class OmnichannelError(Exception):
    """Base of every error raised by omnichannel and its adapters.

    Attributes:
        network: The network the error concerns, or ``None`` when it is not
            tied to one.
    """

    network: str | None

    def __init__(self, message: str, *, network: str | None = None) -> None:
        self.network = network
        prefix = f"{network}: " if network else ""
        super().__init__(f"{prefix}{message}")


class ConfigurationError(OmnichannelError, ValueError):
    """Settings are missing or invalid."""


class UnknownNetwork(ConfigurationError, LookupError):
    """No installed adapter serves this network.

    Attributes:
        requested: The network name that was asked for.
        installed: The networks whose adapters are installed.
        package: The distribution that provides it, when one ships with
            omnichannel (e.g. ``omnichannel-mastodon``), else ``None``.
    """

    def __init__(
        self,
        requested: str,
        *,
        installed: tuple[str, ...] = (),
        reason: str | None = None,
        package: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.requested = requested
        self.installed = installed
        self.package = package
        if reason is not None:
            super().__init__(f"the adapter for network {requested!r} failed to load: {reason}")
            return
        have = ", ".join(installed) if installed else "none"
        message = f"no adapter for network {requested!r} is installed (installed: {have})"
        super().__init__(f"{message}; {hint}" if hint else message)


class StoreError(ConfigurationError):
    """The store's file cannot be used: it is not an omnichannel store, or of another version.

    Raised when a store is opened, before anything in the file is changed: a
    file that belongs to another application (a SQLite database with tables
    of its own), a folder that does not exist, a schema older or newer than
    this version reads. The message names the file and what is wrong with it.

    Attributes:
        path: The store's file, as it was given.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class StoreDamaged(StoreError):
    """The store's file is damaged: not a database at all, truncated, or with bad pages.

    Found when the store is opened (an integrity check runs then), or later
    if the file is damaged while in use. Restore the file from a backup.
    """


class StoreLocked(StoreError):
    """Another process has this store open read-write.

    One process writes a SQLite store at a time: a second writer would take
    the first one's sends under way for crashed ones and deliver them again.
    Stop the other process, give each bot its own store, or open the store
    with ``read_only=True`` to read it beside a running bot.

    Attributes:
        pid: The process id of the holder, when it could be read.
    """

    def __init__(self, message: str, *, path: str, pid: int | None = None) -> None:
        self.pid = pid
        super().__init__(message, path=path)


class RecordNotFound(OmnichannelError, KeyError):
    """A store has no record with this key: no outbox item, no draft.

    Also a ``KeyError``, so code written against the builtin keeps working.

    Attributes:
        record: What was looked for: ``"outbox item"`` or ``"draft"``.
        key: The key or id that was asked for.
    """

    def __init__(self, record: str, key: str) -> None:
        self.record = record
        self.key = key
        super().__init__(f"no {record} with key {key!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class StoreConflict(OmnichannelError, ValueError):
    """A store refused a change that its records or rules forbid.

    A draft id that exists already, a draft that was already decided, a
    decision that neither approves nor rejects. Nothing was changed. Also a
    ``ValueError``, so code written against the builtin keeps working.

    Attributes:
        record: What the change was about: ``"draft"``, say.
        key: Its key or id.
    """

    def __init__(self, message: str, *, record: str, key: str) -> None:
        self.record = record
        self.key = key
        super().__init__(message)


class AuthenticationError(OmnichannelError):
    """The network refused our credentials (invalid, revoked, refresh failed)."""


class TokenExpired(AuthenticationError):
    """The access token expired and could not be refreshed."""


class ActionError(OmnichannelError):
    """An outgoing action was refused before any network call."""


class CapabilityNotSupported(ActionError):
    """The network (or this adapter) cannot do what was asked.

    Attributes:
        capability: Name of the missing capability, e.g. ``"hide"``.
    """

    def __init__(self, capability: str, *, network: str | None = None, detail: str = "") -> None:
        self.capability = capability
        extra = f": {detail}" if detail else ""
        super().__init__(f"{capability} is not supported{extra}", network=network)


class TextTooLong(ActionError):
    """The text is over the network's limit, counted the network's way.

    Attributes:
        length: The counted length.
        limit: The limit it was counted against.
        unit: What was counted (``"graphemes"``, ``"weighted"``, ``"bytes"``...).
    """

    def __init__(
        self, *, length: int, limit: int, unit: str, network: str | None = None
    ) -> None:
        self.length = length
        self.limit = limit
        self.unit = unit
        super().__init__(f"text is {length} {unit}, over the limit of {limit}", network=network)


class WindowClosed(ActionError):
    """The private-messaging window for this recipient is closed.

    Attributes:
        closed_at: When the window closed, when known.
    """

    def __init__(
        self, message: str = "messaging window is closed", *,
        network: str | None = None, closed_at: datetime | None = None,
    ) -> None:
        self.closed_at = closed_at
        super().__init__(message, network=network)


class ConversationClaimed(ActionError):
    """Another agent holds this conversation (viewing or typing); nothing was sent.

    Raised by the helpdesk workflow when an agent answers, or claims, a
    conversation that a colleague has claimed; pass ``force=True`` to go
    ahead anyway (the override is audited).

    Attributes:
        holder: The agent holding it.
        until: When their claim lapses unless renewed.
        conversation: ``"<network>:<id>"`` of the conversation.
    """

    def __init__(self, *, holder: str, until: datetime, conversation: str,
                 network: str | None = None) -> None:
        self.holder = holder
        self.until = until
        self.conversation = conversation
        super().__init__(
            f"{holder} is answering conversation {conversation} (claimed until "
            f"{until.isoformat(timespec='seconds')}); pass force=True to answer anyway",
            network=network,
        )


class PrivateReplyUsed(ActionError):
    """The network allows one private reply per public message, and it was used.

    Meta answers one private reply per comment; the hub remembers each (in
    the store, so across restarts and workers) and refuses a second one
    before any request, unless the first failed for good or was cancelled.
    Answer in the private conversation it opened instead.

    Attributes:
        message: ``"<network>:<id>"`` of the public message.
        previous_key: The idempotency key of the private reply already queued.
    """

    def __init__(self, *, message: str, previous_key: str, network: str | None = None) -> None:
        self.message = message
        self.previous_key = previous_key
        super().__init__(
            f"message {message} already had its one private reply (outbox item "
            f"{previous_key[:12]}); continue in that private conversation",
            network=network,
        )


class DuplicateReply(ActionError):
    """The same reply text went to a different customer a short while ago.

    Raised by the copy-paste guardrail before anything is queued; pass
    ``allow_duplicate=True`` to send it anyway.

    Attributes:
        digest: SHA-256 hex digest of the normalized text.
        recipient: Native id of the customer this reply was for.
        previous_recipient: Native id of a customer who already got it.
    """

    def __init__(
        self, *, digest: str, recipient: str | None, previous_recipient: str,
        network: str | None = None,
    ) -> None:
        self.digest = digest
        self.recipient = recipient
        self.previous_recipient = previous_recipient
        super().__init__(
            f"the same reply text (sha256 {digest[:12]}) was already sent to another "
            "customer within the guardrail window; pass allow_duplicate=True to send it anyway",
            network=network,
        )


class DraftNotPending(ActionError):
    """A draft cannot be approved or rejected: it does not exist or was already decided.

    Attributes:
        draft_id: The id that was asked for.
        status: The draft's current status, or ``None`` when there is no such draft.
    """

    def __init__(self, draft_id: str, *, status: str | None) -> None:
        self.draft_id = draft_id
        self.status = status
        what = "no such draft" if status is None else f"draft is already {status}"
        super().__init__(f"{what}: {draft_id}")


class NetworkError(OmnichannelError):
    """The network answered with an error, or could not be reached.

    Attributes:
        status: HTTP status code, when there was a response.
        code: The network's own error code or name, when it gave one.
    """

    def __init__(
        self, message: str, *, network: str | None = None,
        status: int | None = None, code: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        super().__init__(message, network=network)


class RateLimited(NetworkError):
    """Too many requests; try again at ``reset_at``.

    Attributes:
        reset_at: When the limit resets (timezone-aware), when known.
    """

    def __init__(
        self, *, network: str | None = None, reset_at: datetime | None = None,
        status: int | None = 429, code: str | None = None,
    ) -> None:
        self.reset_at = reset_at
        when = reset_at.isoformat() if reset_at else "unknown"
        super().__init__(f"rate limited until {when}", network=network, status=status, code=code)


class DuplicateContent(NetworkError):
    """The network refused the post as a duplicate of an earlier one."""


class NotFound(NetworkError):
    """The thing addressed does not exist, or is not visible to us."""


class RequestRejected(NetworkError):
    """The network refused the request as invalid (a 4xx that is not retried)."""


class TransientError(NetworkError):
    """A failure worth retrying: 5xx, connection refused, timeout before sending."""


class AmbiguousDelivery(NetworkError):
    """A write may or may not have landed (timeout after sending, dropped connection).

    Never retried blindly: the outbox reconciles it with ``Adapter.find_sent``.
    """


class PayloadError(OmnichannelError, ValueError):
    """A webhook or API body does not have the shape we expect.

    Attributes:
        path: Dotted path to the bad field (``"entry.0.changes"``), or ``""``.
        reason: What is wrong with it.
    """

    def __init__(self, reason: str, *, network: str | None = None, path: str = "") -> None:
        self.path = path
        self.reason = reason
        where = f" at {path}" if path else ""
        super().__init__(f"bad payload{where}: {reason}", network=network)

    @classmethod
    def from_validation(
        cls, error: ValidationError, *, network: str | None = None, path: str = ""
    ) -> PayloadError:
        """Build the error for the first problem a pydantic validation found.

        Adapters validate native payloads with pydantic models; this turns the
        ``ValidationError`` into our error, with the dotted path of the first
        bad field under ``path``. The message names the problem, never the
        bad value (``str(error)`` would quote the input).

        ```python
        try:
            status = Status.model_validate(raw)
        except ValidationError as exc:
            raise PayloadError.from_validation(exc, network="mastodon", path="statuses.0") from exc
        ```

        Args:
            error: What pydantic raised.
            network: The network the payload came from.
            path: Where the validated object sits in the payload (``""``: at the top).
        """
        problems = error.errors(include_url=False, include_input=False)
        if not problems:
            return cls("invalid payload", network=network, path=path)
        first = problems[0]
        where = ".".join(str(part) for part in (path, *first["loc"]) if part != "")
        return cls(first["msg"], network=network, path=where)


class WebhookSignatureError(OmnichannelError):
    """A webhook request's signature is missing or wrong.

    Attributes:
        missing: ``True`` when the request carried no signature at all (the
            webhook app answers 401), ``False`` when it carried a wrong one
            (answered 403).
    """

    def __init__(
        self, message: str = "webhook signature is wrong", *,
        network: str | None = None, missing: bool = False,
    ) -> None:
        self.missing = missing
        super().__init__(message, network=network)
