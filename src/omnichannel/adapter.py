"""The adapter contract: what a network plugin implements.

An adapter is a subclass of [`Adapter`][omnichannel.adapter.Adapter] registered
under the entry-point group ``omnichannel.adapters`` with the network id as
its name. It declares three class attributes and implements a few async
methods over the core's HTTP layer (`omnichannel.http`); retries, rate limits,
de-duplication, persistence, ordering, approval and audit live in the core.

```python
class MyAdapter(Adapter):
    network = "myspace"
    capabilities = Capabilities(text=TextRule.code_points(500))
    settings_model = MySettings

    async def open(self) -> None: ...            # log in, resolve self.account
    async def poll(self, cursor): ...            # one page of events + next cursor
    async def send(self, action): ...            # Reply / PrivateReply / Post -> Sent
    async def find_sent(self, action): ...       # Sent | None, after an ambiguous send
```

Long because: it is the whole contract an adapter implements (the base class, its
settings, batches, rejected items, webhook requests and answers), kept on one page for
adapter authors.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .actions import Action, Delete, Hide, Post, PrivateReply, React, Reply, Sent
from .errors import CapabilityNotSupported, ConfigurationError, PayloadError
from .events import AuthHealth, AuthHealthKind, Event
from .model import Message, Person, Ref
from .sources import DEFAULT_SOURCE, PollSource, Source, StreamSource
from .spend import SpendMeter

if TYPE_CHECKING:  # pragma: no cover - typing only
    import httpx

    from .capabilities import Capabilities  # each adapter imports it to declare its own

__all__ = [
    "MAX_BACKFILL",
    "Adapter",
    "AdapterSettings",
    "Batch",
    "Rejected",
    "WebhookRequest",
    "WebhookResponse",
    "convert_item",
    "decode_json",
    "newest_events",
    "poll_backlog",
]

logger = logging.getLogger("omnichannel.adapter")


MAX_BACKFILL = 1000
"""The most events a first run reads from before it started (``backfill_age`` alone)."""

_MAX_BACKLOG_PAGES = 1000
_T = TypeVar("_T")
_R = TypeVar("_R")


class AdapterSettings(BaseModel):
    """Base of every adapter's settings model.

    Credentials are ``pydantic.SecretStr`` so they never show in a repr or log.

    A listener's first run (no cursor stored for a source) starts from
    now: it reads the network's current position and hands nothing older to
    the handlers. ``backfill`` and ``backfill_age`` ask for some of that
    history too; it comes as events with ``backfilled=True``, and the default
    reply policies hold every reply to them as a draft. Once a cursor is
    stored, neither setting does anything.

    Attributes:
        poll_interval: Seconds between polls when no new events came.
        backfill: On a first run, hand the handlers up to this many of the
            newest events from before it (``0``: none), per source. Each
            adapter documents what reading them costs in requests.
        backfill_age: On a first run, hand the handlers only events younger
            than this. Alone (``backfill`` 0) it reads every event that young,
            up to `MAX_BACKFILL`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    poll_interval: float = Field(default=30.0, gt=0)
    backfill: int = Field(default=0, ge=0, le=MAX_BACKFILL)
    backfill_age: timedelta | None = Field(default=None, gt=timedelta(0))

    def backfill_plan(self, now: datetime) -> tuple[int, datetime | None]:
        """Return how many events a first run reads from before ``now``, and since when.

        ``(0, None)`` unless a backfill is asked for.
        """
        if self.backfill_age is None:
            return self.backfill, None
        return self.backfill or MAX_BACKFILL, now - self.backfill_age


class Rejected(BaseModel):
    """An inbound item an adapter could not use, reported instead of failing its page.

    One malformed notification must neither hide the good ones next to it nor
    stop the listener on the same page forever. So an adapter skips the item,
    reports it in `Batch.rejected` and still moves the cursor past it; the hub
    keeps it as a dead letter (``store.dead_letters()``) before the cursor is
    stored. A page that cannot be read at all (not JSON, not a list) is still
    a `PayloadError` from ``poll``: the hub logs it and polls again later.

    Attributes:
        reason: What is wrong (a `PayloadError`'s ``reason``).
        path: Where, as a dotted path in the page (``"notifications.3.account"``).
        body: The item itself, as raw bytes (JSON), to inspect or replay.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    reason: str
    path: str = ""
    body: bytes = Field(default=b"", repr=False)

    @classmethod
    def from_error(cls, error: PayloadError, item: object) -> Rejected:
        """Report ``item`` as refused for ``error``.

        Args:
            error: Why the item cannot be used.
            item: The item as received: raw bytes or text, or decoded JSON.
        """
        return cls(reason=error.reason, path=error.path, body=_raw_bytes(item))

    def error(self, *, network: str | None = None) -> PayloadError:
        """The `PayloadError` this rejection stands for, to raise where one item is all.

        A webhook ``parse`` or a ``parse_payload`` has no ``Batch.rejected``
        to report in: it raises this instead.
        """
        return PayloadError(self.reason, network=network, path=self.path)


def _raw_bytes(item: object) -> bytes:
    """An inbound item as bytes to keep, whatever it holds.

    JSON where it can be (escaping lone surrogates, which UTF-8 cannot hold),
    else the item's ``repr``, so keeping a dead letter never fails.
    """
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8", "backslashreplace")
    for ascii_only in (False, True):
        try:
            return json.dumps(item, ensure_ascii=ascii_only, default=str).encode("utf-8")
        except UnicodeEncodeError:
            continue
        except (ValueError, TypeError, RecursionError):
            break
    try:
        return repr(item).encode("utf-8", "backslashreplace")
    except (ValueError, RecursionError):
        return f"<unreadable {type(item).__name__}>".encode()


def decode_json(body: bytes | str, *, network: str | None = None, path: str = "") -> Any:
    """Decode a JSON body, raising only `PayloadError` whatever the body holds.

    Not UTF-8, not JSON, or nested deeper than Python can decode
    (``b"[" * 100_000``): each is a `PayloadError` at ``path``, never a
    ``UnicodeDecodeError`` or a ``RecursionError`` that would escape an
    adapter's error handling.

    ```python
    from omnichannel.adapter import decode_json
    from omnichannel.errors import PayloadError

    assert decode_json(b'{"id": "1"}', network="chirp") == {"id": "1"}
    try:
        decode_json(b"[" * 100_000, network="chirp", path="posts")
    except PayloadError as exc:
        print(exc)
    #> chirp: bad payload at posts: the body is not JSON
    ```

    Args:
        body: The raw body.
        network: The network it came from, for the error.
        path: What it is (an endpoint, ``"lines.3"``), for the error.

    Raises:
        PayloadError: The body is not JSON text.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise PayloadError("the body is not JSON", network=network, path=path) from None


def convert_item(
    convert: Callable[[_T], _R], item: _T, *, network: str | None = None, path: str = ""
) -> _R | Rejected:
    """Convert one inbound item, turning anything that goes wrong into a `Rejected`.

    Items are written by customers and their clients and relayed unchanged, so
    any shape can arrive: a conversion that trips over one (a ``TypeError``
    on a number where a list belongs, a ``ValueError`` from a date out of
    range, a pydantic ``ValidationError``, a ``RecursionError``) must cost that
    item only. ``poll``, ``stream`` and webhook ``parse`` call this per item
    and report what comes back as a `Rejected` in ``Batch.rejected``; the
    cursor moves on and the hub keeps the item as a dead letter.

    ```python
    from omnichannel.adapter import Rejected, convert_item

    def text_of(item: object) -> str:
        return item["text"].strip()  # type: ignore[index]  # trusts the shape

    items = [{"text": " hello "}, {"text": 42}, "oops"]
    results = [convert_item(text_of, item, network="chirp", path=f"posts.{index}")
               for index, item in enumerate(items)]
    for result in results:
        print(result if isinstance(result, str) else f"{result.path}: {result.reason}")
    #> hello
    #> posts.1: unreadable item (AttributeError)
    #> posts.2: unreadable item (TypeError)
    assert isinstance(results[1], Rejected) and results[1].body == b'{"text": 42}'
    ```

    Args:
        convert: Turns the item into what the adapter needs (an event, a list
            of events, a wire model...).
        item: The item as received: raw bytes or text, or decoded JSON.
            A rejection keeps it as its ``body``.
        network: The network, for the error and the log.
        path: Where the item sits (``"notifications.3"``); a `PayloadError`'s
            own path is put after it.

    Returns:
        What ``convert`` returned, or the item's `Rejected`.
    """
    try:
        return convert(item)
    except PayloadError as exc:
        where = ".".join(part for part in (path, exc.path) if part)
        error = PayloadError(exc.reason, network=exc.network or network, path=where)
    except ValidationError as exc:
        error = PayloadError.from_validation(exc, network=network, path=path)
    except Exception as exc:  # one item never stops the rest
        logger.debug(
            "%s: converting an inbound item at %s raised %s; it is rejected",
            network or "adapter", path or "(top)", type(exc).__name__,
            exc_info=True, extra={"network": network, "path": path},
        )
        error = PayloadError(f"unreadable item ({type(exc).__name__})",
                             network=network, path=path)
    return Rejected.from_error(error, item)


class Batch(BaseModel):
    """One page of inbound events and the cursor to resume after it.

    Attributes:
        events: The events, oldest first.
        cursor: Where to resume after this batch (store it only once the
            events are persisted). ``None`` keeps the previous cursor.
        more: Whether another page is ready at once (the hub polls again
            without waiting).
        rejected: Items of the page the adapter could not use; the cursor
            moves past them and the hub keeps them as dead letters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    events: tuple[Event, ...] = ()
    cursor: str | None = None
    more: bool = False
    rejected: tuple[Rejected, ...] = ()


def newest_events(
    events: Sequence[Event], *, limit: int, since: datetime | None = None
) -> tuple[Event, ...]:
    """Return up to ``limit`` of the newest ``events`` not older than ``since``, oldest first.

    A helper for `Adapter.backlog`; the hub applies it again to what
    ``backlog`` returns, so an adapter may read a little more than asked.
    """
    if limit <= 0:
        return ()
    kept = [event for event in events if since is None or event.occurred_at >= since]
    kept.sort(key=lambda event: event.occurred_at)
    return tuple(kept[-limit:])


async def poll_backlog(
    poll: Callable[[str | None], Awaitable[Batch]], *, limit: int = 0,
    since: datetime | None = None, network: str = "adapter",
) -> Batch:
    """Read a position by polling from ``None`` while ``Batch.more`` says a page is ready.

    What `Adapter.backlog` does by default, and what the hub does on a first
    run of a [`PollSource`][omnichannel.sources.PollSource] with no
    ``backlog`` of its own: the last cursor is the position, and up to
    ``limit`` of the newest events read on the way (none older than
    ``since``) are the backfill.
    """
    batch = await poll(None)
    cursor, events, rejected = batch.cursor, list(batch.events), list(batch.rejected)
    pages = 1
    while batch.more and pages < _MAX_BACKLOG_PAGES:
        batch = await poll(cursor)
        pages += 1
        cursor = batch.cursor if batch.cursor is not None else cursor
        events.extend(batch.events)
        rejected.extend(batch.rejected)
    if batch.more:
        logger.warning(
            "%s: history has more than %d pages; the listener starts before now",
            network, _MAX_BACKLOG_PAGES,
        )
    kept = newest_events(events, limit=limit, since=since)
    return Batch(events=kept, cursor=cursor, rejected=tuple(rejected) if kept else ())


class WebhookRequest(BaseModel):
    """A webhook request as the webhook app received it, body unparsed.

    Header names are lower-case. ``body`` is the raw bytes: signatures are
    computed over them. The repr leaves out the query, the headers and the
    body: they carry verify tokens and signatures.

    Attributes:
        method: ``"GET"`` (a handshake) or ``"POST"`` (a delivery).
        path: The request path.
        query: The query string's parameters.
        headers: The headers, names lower-cased.
        body: The body, exactly as received.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    method: str
    path: str = "/"
    query: Mapping[str, str] = Field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = Field(default_factory=dict, repr=False)
    body: bytes = Field(default=b"", repr=False)

    @field_validator("headers", mode="after")
    @classmethod
    def _lower_names(cls, headers: Mapping[str, str]) -> dict[str, str]:
        return {name.lower(): value for name, value in headers.items()}

    def header(self, name: str) -> str | None:
        """Return a header's value by case-insensitive name, or ``None``."""
        return self.headers.get(name.lower())


class WebhookResponse(BaseModel):
    """What to answer a handshake (challenge) request with.

    Attributes:
        status: The HTTP status.
        body: The body (the echoed challenge, a signed CRC token...).
        content_type: The ``Content-Type`` header.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


class Adapter(ABC):
    """Base class of every network adapter.

    Subclasses set ``network``, ``capabilities`` and ``settings_model`` and
    implement at least ``open``, ``poll``, ``send`` and ``find_sent``. Methods for
    what ``capabilities`` does not declare keep the default, which raises
    [`CapabilityNotSupported`][omnichannel.errors.CapabilityNotSupported].

    Args:
        settings: An instance of ``settings_model`` (or a mapping to validate).
        transport: An httpx transport to use instead of the network (a
            sandbox's, or respx's); passed to `omnichannel.http`.
    """

    network: ClassVar[str]
    capabilities: Capabilities
    """What the network allows. Declared on the class; an adapter may replace it
    on the instance in ``open`` when the network says more (a Mastodon instance's
    own character limit)."""
    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings
    signature_headers: ClassVar[frozenset[str]] = frozenset()
    """Names (lower-case) of the headers that carry a webhook delivery's signature
    (``x-hub-signature-256``). A signature is computed from the body and the
    secret but does not reveal the secret, so these headers are kept with a
    dead letter (the body can be verified again), while every header neither
    declared here nor on the webhook app's short allowlist (content type and
    length, user agent, delivery ids) is dropped. A ``POST`` that carries none
    of them and fails ``verify`` is answered ``401`` (missing) rather than
    ``403``. Never list a header that carries a token or key."""

    account: Person | None
    """Our own account on the network, resolved by ``open``."""

    auth_health_sink: Callable[[AuthHealth], None] | None = None
    """Where `report_auth_health` sends reports; the hub sets it."""

    spend: SpendMeter | None = None
    """What the network charged, for an adapter of a network that bills each
    request: the adapter records each price on this
    [`SpendMeter`][omnichannel.spend.SpendMeter] and checks its budgets with
    it. The hub keeps the meter's figures in its store (``bind`` when it
    opens) and shows them per day in ``hub.statistics()``. ``None``: the
    network charges nothing per request."""

    def __init__(
        self,
        settings: AdapterSettings | Mapping[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(settings, self.settings_model):
            if isinstance(settings, AdapterSettings):
                raise ConfigurationError(
                    f"expected {self.settings_model.__name__}, got {type(settings).__name__}",
                    network=self.network,
                )
            settings = self.settings_model.model_validate(settings)
        self.settings = settings
        self.transport = transport
        self.account = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} network={self.network!r}>"

    @classmethod
    def status_lines(cls, settings: AdapterSettings, *, now: datetime) -> list[str]:
        """Lines `omnichannel inbox` prints about this network, from its settings alone.

        No network call and no open adapter: what the settings point at (a
        spend ledger, a token's expiry) read as it is on disk. The default
        has nothing to say.
        """
        return []

    def report_auth_health(
        self, kind: AuthHealthKind, detail: str = "", *, expires_at: datetime | None = None
    ) -> AuthHealth:
        """Tell the hub something happened to the credentials (never put a token in ``detail``).

        Call it when a token will expire soon, a refresh failed, the network
        revoked the token or wants the owner to authorize again, or a rotated
        token could not be saved. The hub persists the report as an
        [`AuthHealth`][omnichannel.events.AuthHealth] event (one per kind and
        day) for handlers and `omnichannel inbox`. Without a hub it is only
        returned.
        """
        account = self.account.ref.id if self.account is not None else None
        report = AuthHealth.report(self.network, kind, detail, expires_at=expires_at,
                                   account=account)
        if self.auth_health_sink is not None:
            self.auth_health_sink(report)
        return report

    # lifecycle -----------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Log in, open the HTTP client and resolve ``self.account``.

        Raises:
            AuthenticationError: The credentials were refused.
            ConfigurationError: The settings cannot work.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close sessions and the HTTP client. Safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    # inbound --------------------------------------------------------------

    @abstractmethod
    async def poll(self, cursor: str | None) -> Batch:
        """Fetch the events after ``cursor`` (``None``: start from now or the newest page).

        Returns at most one page; the hub calls again after ``Batch.cursor``.
        An item of the page that is not what the network sends goes in
        ``Batch.rejected`` (see [`Rejected`][omnichannel.adapter.Rejected]),
        never stopping the rest of the page.

        Raises:
            PayloadError: The page as a whole cannot be read.
        """

    async def backlog(self, *, limit: int = 0, since: datetime | None = None) -> Batch:
        """Read where the network stands now, and the newest events before it.

        The hub calls this once per network, on a first run (no stored
        cursor): ``Batch.cursor`` must be the network's current position, so
        that polling (or streaming) from it yields only what happens after
        this call. ``Batch.events`` holds up to ``limit`` of the newest events
        before that position, none older than ``since``, oldest first; they
        are the backfill (``limit`` is ``0`` when none is asked for, and
        then nothing needs converting).

        The default polls from ``None`` and then while ``Batch.more`` says
        another page is ready, so it suits a ``poll`` whose first page is the
        newest one (one request) as well as one that starts at the oldest (a
        request per page of history). An adapter overrides it when its
        network can say where it stands more cheaply, or when a backfill
        needs older pages than ``poll(None)`` reads.

        Args:
            limit: The most events to return (``0``: only the position).
            since: Return no event that occurred before this.

        Raises:
            PayloadError: A page as a whole cannot be read.
        """
        return await poll_backlog(self.poll, limit=limit, since=since, network=self.network)

    def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        """Yield batches from the network's push stream, resuming after ``cursor``.

        Only for adapters whose capabilities list ``"stream"``. The hub runs it
        as the ``"default"`` source unless ``sources()`` says otherwise. A
        stream that drops should catch up (by polling from the last cursor)
        before it yields again; the hub restarts it with the last stored cursor
        if it ends. (A [`StreamSource`][omnichannel.sources.StreamSource] is
        simpler: one connection per call, and the hub reconnects and catches up.)
        Open connections with `ApiClient.open_stream` and pace reconnections
        with `ApiClient.reconnects` (never sleep in an adapter). An event that
        cannot be used comes back in ``Batch.rejected``, never stopping the stream.

        Raises:
            CapabilityNotSupported: The network has no stream.
        """
        raise CapabilityNotSupported("stream", network=self.network)

    def sources(self) -> Sequence[Source]:
        """The places the hub reads this adapter's events from, each with its own cursor.

        The hub runs each source in its own task and stores its cursor under
        ``(network, source.name)``. The default is one source named
        ``"default"`` (the name cursors were stored under before sources, so
        they keep working): ``stream`` when the capabilities list
        ``"stream"``, else ``poll`` every ``settings.poll_interval`` seconds
        (and an adapter that overrides ``listen`` gets that, as a stream).
        An adapter that reads several places overrides this; see
        [`omnichannel.sources`][omnichannel.sources].
        """
        if type(self).listen is not Adapter.listen:
            return (StreamSource(DEFAULT_SOURCE, self.listen, backlog=self.backlog),)
        if "stream" in self.capabilities.inbound:
            return (StreamSource(DEFAULT_SOURCE, self.stream, backlog=self.backlog),)
        return (PollSource(DEFAULT_SOURCE, self.poll, interval=self.settings.poll_interval,
                           backlog=self.backlog),)

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        """Split a cursor stored under ``"default"`` into the cursors of ``sources()``.

        An adapter that once packed every place into one cursor and now
        declares several sources implements this, so an upgrade resumes each
        source where the packed cursor stood instead of starting from now.
        The hub calls it once: when none of the sources has a cursor stored
        yet and a ``"default"`` one is. A source left out starts with a first
        run. The default splits nothing.

        Raises:
            ConfigurationError: ``cursor`` is not one of this adapter's.
        """
        return {}

    async def listen(
        self, cursor: str | None, *, use_stream: bool | None = None
    ) -> AsyncGenerator[Batch, None]:
        """Yield batches forever: from the stream where there is one, else by polling.

        One place only, for a script reading an adapter by itself; the hub
        runs ``sources()`` instead. Polling waits ``settings.poll_interval``
        seconds between empty pages.
        ``use_stream=None`` streams when the capabilities declare it.
        """
        if use_stream is None:
            use_stream = "stream" in self.capabilities.inbound
        if use_stream:
            async for batch in self.stream(cursor):
                yield batch
            return
        while True:
            batch = await self.poll(cursor)
            if batch.cursor is not None:
                cursor = batch.cursor
            yield batch
            if not batch.more:
                await anyio.sleep(self.settings.poll_interval)

    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Check a webhook request before it is parsed.

        A handshake (Meta's ``hub.challenge``, X's CRC) returns the answer to
        send. A delivery has its signature checked in constant time and returns
        ``None`` when it is good.

        Raises:
            WebhookSignatureError: The signature is missing or wrong.
            CapabilityNotSupported: The network has no webhooks.
        """
        raise CapabilityNotSupported("webhook", network=self.network)

    def parse(self, request: WebhookRequest) -> Sequence[Event] | Batch:
        """Turn a verified webhook delivery into events.

        A delivery that holds many items (Meta batches entries and changes)
        returns a [`Batch`][omnichannel.adapter.Batch] instead of a list: an
        item that cannot be used goes in ``Batch.rejected`` and is kept as a
        dead letter while the others are stored and acknowledged. Its
        ``cursor`` and ``more`` are ignored. Raise `PayloadError` only when the
        body as a whole cannot be read.

        Raises:
            PayloadError: The body is not what the network sends.
            CapabilityNotSupported: The network has no webhooks.
        """
        raise CapabilityNotSupported("webhook", network=self.network)

    @classmethod
    def parse_payload(
        cls, body: bytes, *, path: str | None = None, account: str | None = None
    ) -> Sequence[Event]:
        """Turn a recorded API answer or stream frames into events, without the network.

        ``body`` is what a ``GET`` to ``path`` answered (``/api/v1/notifications``,
        ``/xrpc/app.bsky.notification.listNotifications``...) or frames of the
        network's push stream (server-sent events, Jetstream JSON lines).
        ``omnichannel replay NETWORK FILE`` calls it to show what an adapter
        makes of a recorded payload, and tests use it to feed real payloads
        through the adapter's conversion without a sandbox.

        An adapter implements it by routing ``path`` to the conversion
        functions its ``poll`` and ``stream`` already use, never to a copy of
        them. Nothing is requested, so what those would look up on the network
        (a thread's root status, a chat member's profile) stays as the payload
        has it. A webhook adapter keeps this default and is replayed through
        ``parse`` instead.

        Args:
            body: The raw body, as recorded.
            path: The endpoint's URL path, a query string allowed (an adapter
                may need it: Bluesky's ``getMessages`` names its conversation
                there only). ``None`` lets the adapter recognise the body where
                it can; its documentation says how.
            account: Our own account's native id, when known: messages it wrote
                get ``from_us``. Without it nothing is from us.

        Returns:
            The events, oldest first.

        Raises:
            PayloadError: The body is malformed, or ``path`` is an endpoint the
                adapter does not replay; the error names the network and where.
            CapabilityNotSupported: The adapter cannot replay payloads (the default).
        """
        raise CapabilityNotSupported("replay", network=cls.network)

    async def fetch_conversation(self, ref: Ref, *, limit: int = 50) -> Sequence[Message]:
        """Fetch the messages of a conversation, oldest first (for ``Context.history``)."""
        raise CapabilityNotSupported("fetch_conversation", network=self.network)

    # outbound -------------------------------------------------------------

    @abstractmethod
    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Deliver a message and return what the network created.

        Use ``action.idempotency_key`` for the network's native idempotency
        where it has one.

        Raises:
            AmbiguousDelivery: The request went out and no answer came back.
            NetworkError: The network refused it.
        """

    @abstractmethod
    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look for a message this action may already have created.

        Called before retrying an action whose first try may have landed.
        Returns ``None`` only when the network shows it did not land.
        """

    async def react(self, action: React) -> Sent:
        """React to a message."""
        raise CapabilityNotSupported("react", network=self.network)

    async def hide(self, action: Hide) -> Sent:
        """Hide or unhide a comment."""
        raise CapabilityNotSupported("hide", network=self.network)

    async def delete(self, action: Delete) -> Sent:
        """Delete something we posted."""
        raise CapabilityNotSupported("delete", network=self.network)

    def outgoing_text(self, action: Reply | PrivateReply | Post) -> str:
        """Return the text the network will actually receive for ``action``.

        The default is ``action.text``. An adapter that adds to it (Mastodon
        puts the customer's ``@acct`` before a reply so they are notified)
        overrides this, so limits are checked on what is really sent.
        """
        return action.text

    def check(
        self, action: Action, *, now: datetime | None = None, human_agent: bool = False
    ) -> None:
        """Check ``action`` against this adapter's capabilities, before any network call.

        Raises:
            CapabilityNotSupported: The network cannot do this kind of action.
            TextTooLong: The text, as it will be sent, is over the limit.
            WindowClosed: The messaging window for this recipient has closed.
        """
        text = (
            self.outgoing_text(action)
            if isinstance(action, Reply | PrivateReply | Post)
            else None
        )
        self.capabilities.check(
            action, network=self.network, now=now, human_agent=human_agent, text=text
        )

    async def execute(self, action: Action) -> Sent:
        """Carry out any action by dispatching on its type (the outbox calls this)."""
        match action:
            case Reply() | PrivateReply() | Post():
                return await self.send(action)
            case React():
                return await self.react(action)
            case Hide():
                return await self.hide(action)
            case Delete():
                return await self.delete(action)
