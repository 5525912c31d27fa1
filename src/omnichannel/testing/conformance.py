"""The adapter conformance suite: the same named scenarios, run against any adapter.

An adapter's test module opts in by subclassing
[`AdapterConformance`][omnichannel.testing.conformance.AdapterConformance]
(the base has no ``Test`` prefix, so pytest collects only the subclass):

```python
from omnichannel.testing.conformance import AdapterConformance

from omnichannel_chirp import ChirpAdapter
from omnichannel_chirp.sandbox import ChirpSandbox


class TestChirpConformance(AdapterConformance):
    adapter_class = ChirpAdapter
    sandbox_class = ChirpSandbox
    transport_mode = ("inprocess", "loopback")   # run every scenario both ways
```

Every scenario builds a fresh sandbox and adapter, drives the customer side
through the sandbox, and acts through the adapter as the hub would (checking
``capabilities`` first). The scenarios need the sandbox to follow the
contract in ``docs/reference/testing.md``: inbound ``message.ref.id`` and
``Sent.ref.id`` are the sandbox records' ids, ``create_routes`` names the
routes that create messages, and ``adapter_settings(base_url=...)`` returns
settings the adapter accepts.

Long because: the conformance suite is one class of named scenarios that adapters
subclass; splitting it would scatter the list an adapter author reads.
"""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal
from unittest import mock

import anyio
import httpx
import pytest

from omnichannel.actions import Action, Delete, Hide, PrivateReply, React, Reply, Sent
from omnichannel.adapter import Adapter, Batch, WebhookRequest, poll_backlog
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    NetworkError,
    OmnichannelError,
    RateLimited,
    TextTooLong,
    TransientError,
    WebhookSignatureError,
)
from omnichannel.events import Event, MessageDeleted, MessageReceived, MessageUpdated
from omnichannel.hub import Context, Hub
from omnichannel.model import Link, Mention, Message
from omnichannel.policy import AutoSend
from omnichannel.sources import PollSource, StreamSource, check_sources
from omnichannel.store import MemoryStore, Store

from ._transport import Receive, Scope, Send, answer_lifespan, serve_async, serve_in_thread
from .faults import route_matcher
from .pytest_plugin import _seed
from .sandbox import DirectMessage, Post, Sandbox, SentRecord

__all__ = [
    "ENTITY_TEXT",
    "LIMIT_FILLERS",
    "OPTIONAL_CAPABILITIES",
    "REPLY_ENTITY_TEXT",
    "AdapterConformance",
    "Conformance",
    "TransportMode",
]

TransportMode = Literal["inprocess", "loopback"]
"""How the adapter reaches the sandbox: the in-process transport, or uvicorn on loopback."""

OPTIONAL_CAPABILITIES = ("react", "hide", "delete", "private_reply", "webhook", "stream")
"""Capabilities whose declaration the suite checks against behaviour."""

_TIMEOUT = 10.0
_POLL_ROUNDS = 25
_HISTORY = 20

ENTITY_TEXT = "🎉🇫🇷 hey {us} 👩‍👩‍👧 my order is late: https://example.com/orders/42?ref=a1 #help"
"""The inbound text of the entity scenario: emoji (flags, ZWJ) before each entity."""

REPLY_ENTITY_TEXT = "Thanks {them} 🙏🏽 track it at https://example.com/t/42 #help"
"""The outbound text of the entity scenario."""

LIMIT_FILLERS: dict[str, str] = {
    "astral emoji": "😀",
    "skin-tone sequence": "👍🏽",
    "combining mark": "e\u0301",
}
"""What the limit scenario fills replies with: each counts differently in
code points, UTF-16 units, bytes and graphemes."""

_PAGE = 2
"""The page size the burst scenario gives adapters whose settings have ``page_size``."""


class _Relay:
    """An ASGI app that forwards to the current scenario's sandbox (one server per class)."""

    def __init__(self) -> None:
        self.target: Sandbox | None = None
        self.url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if self.target is None:
            raise RuntimeError("no sandbox is being served")
        await self.target.asgi(scope, receive, send)


@dataclass
class Conformance:
    """One scenario's world: a sandbox, an open adapter, and the inbound cursor.

    Attributes:
        sandbox: The network sandbox.
        adapter: The adapter under test, open.
        mode: How the adapter reaches the sandbox.
        reopen: Builds a new adapter (not opened) on the same sandbox.
        cursor: The inbound cursor, moved by every poll.
        inbox: Events polled but not consumed yet.
    """

    sandbox: Sandbox
    adapter: Adapter
    mode: TransportMode
    reopen: Callable[[], Adapter]
    cursor: str | None = None
    inbox: list[Event] = field(default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        """The adapter's declared capabilities."""
        return self.adapter.capabilities

    @property
    def network(self) -> str:
        """The adapter's network id."""
        return self.adapter.network

    async def start(self) -> None:
        """Take the initial cursor ("from now"), as the hub does on first run."""
        await self.drain()
        self.inbox.clear()

    async def poll_once(self) -> Sequence[Event]:
        """Poll one page from the cursor; keep the events in ``inbox``."""
        batch = await self.adapter.poll(self.cursor)
        if batch.cursor is not None:
            self.cursor = batch.cursor
        self.inbox.extend(batch.events)
        return batch.events

    async def drain(self) -> list[Event]:
        """Poll until the adapter says no page is ready; return the new events."""
        found: list[Event] = []
        for _ in range(_POLL_ROUNDS):
            batch = await self.adapter.poll(self.cursor)
            if batch.cursor is not None:
                self.cursor = batch.cursor
            found.extend(batch.events)
            if not batch.more:
                break
        self.inbox.extend(found)
        return found

    async def receive(self, record: Post | DirectMessage, *, what: str) -> MessageReceived:
        """Poll until the adapter delivers ``MessageReceived`` for ``record``; return it."""
        for _ in range(3):
            for event in self.inbox:
                if isinstance(event, MessageReceived) and event.message.ref.id == record.id:
                    self.inbox.remove(event)
                    return event
            if not await self.drain():
                break
        seen = [
            e.message.ref.id if isinstance(e, MessageReceived) else e.type for e in self.inbox
        ]
        raise AssertionError(
            f"adapter.poll did not deliver {what} (record id {record.id!r}); "
            f"unconsumed events: {seen}"
        )

    async def act(self, action: Action) -> Sent:
        """Check ``action`` against the capabilities (as the hub does), then execute it."""
        self.adapter.check(action, now=self.sandbox.clock.peek())
        return await self.adapter.execute(action)

    def record(self, sent: Sent) -> SentRecord:
        """Return the sandbox record ``sent`` points at (our account's)."""
        for record in self.sandbox.sent(include_deleted=True):
            if record.id == sent.ref.id:
                return record
        ours = [r.id for r in self.sandbox.sent(include_deleted=True)]
        raise AssertionError(
            f"Sent.ref.id {sent.ref.id!r} is not a record our account created (ours: {ours})"
        )

    def reply_action(self, message: Message, text: str) -> Reply:
        """Build a ``Reply`` to ``message``."""
        return Reply(network=self.network, to=message, text=text)


def _modes(value: TransportMode | Sequence[TransportMode]) -> list[TransportMode]:
    modes: list[TransportMode] = [value] if isinstance(value, str) else list(value)
    for mode in modes:
        if mode not in ("inprocess", "loopback"):
            raise ValueError(f"unknown transport_mode {mode!r}")
    return modes


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[Batch]) -> AsyncIterator[AsyncIterator[Batch]]:
    """Iterate ``stream`` and close it on the way out, whatever ends the iteration.

    A ``break`` (or a timeout, or a failed assertion) leaves an async
    generator suspended; left to the garbage collector, its ``finally`` (which
    may close a connection or a task group) would run later, in another task,
    or not at all. Closing it here runs it now, in this task. (``aclose`` is
    awaited in no new cancel scope: a generator suspended inside a task group
    must unwind that group's scope first.) ``contextlib.aclosing`` does the
    same for objects typed as having ``aclose``; adapters type ``stream`` as
    a plain ``AsyncIterator``.
    """
    try:
        yield stream
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def _expect_unsupported(call: Callable[[], Awaitable[object]], capability: str) -> None:
    try:
        await call()
    except CapabilityNotSupported:
        return
    except Exception as exc:
        raise AssertionError(
            f"{capability} is not declared, so the adapter must raise "
            f"CapabilityNotSupported; it raised {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(
        f"{capability} works but is not declared in capabilities: declare it"
    )


class AdapterConformance:
    """The conformance scenarios; subclass it (with a ``Test`` name) to run them.

    Attributes:
        adapter_class: The adapter under test.
        sandbox_class: Its network's sandbox.
        transport_mode: ``"inprocess"``, ``"loopback"`` or both (a tuple):
            each mode runs every scenario.
        seed: Fault seed of the sandboxes (``None``: the ``--fault-seed`` option).
        rate_limit_reset: Seconds the rate-limit scenario keeps the limit
            exhausted (real time: keep it short).
        burst_size: Mentions the burst scenario writes between two polls when
            the adapter's settings have no ``page_size`` (more than one page).
    """

    adapter_class: ClassVar[type[Adapter]]
    sandbox_class: ClassVar[type[Sandbox]]
    transport_mode: ClassVar[TransportMode | tuple[TransportMode, ...]] = "inprocess"
    seed: ClassVar[int | None] = None
    rate_limit_reset: ClassVar[float] = 0.3
    burst_size: ClassVar[int] = 120

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [
        pytest.mark.conformance, pytest.mark.anyio,
    ]

    # plumbing -------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run every scenario once per ``transport_mode``."""
        if "conformance_transport" in metafunc.fixturenames:
            modes = _modes(type(self).transport_mode)
            metafunc.parametrize("conformance_transport", modes, ids=modes, scope="class")

    def expected_text(self, conformance: Conformance, action: Reply | PrivateReply) -> str:
        """Return the text the network should hold after ``action`` is sent.

        The default is the adapter's own
        [`outgoing_text`][omnichannel.adapter.Adapter.outgoing_text] (which is
        ``action.text`` unless the adapter adds to it on purpose, as Mastodon
        puts the @mention of whom it answers in front); every scenario that
        compares stored text, counts copies or fills a reply to the limit goes
        through it, so the hub's limit check and the network agree.
        """
        return conformance.adapter.outgoing_text(action)

    def make_sandbox(self, *, seed: int) -> Sandbox:
        """Build the scenario's sandbox (override to configure it)."""
        return self.sandbox_class(seed=seed)

    def make_adapter(
        self, sandbox: Sandbox, *, base_url: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> Adapter:
        """Build the adapter pointed at ``sandbox`` (override for extra settings)."""
        return self.adapter_class(sandbox.adapter_settings(base_url=base_url), transport=transport)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_server(cls, conformance_transport: TransportMode) -> Iterator[_Relay | None]:
        """One uvicorn server per class in loopback mode (scenarios swap its sandbox)."""
        if conformance_transport != "loopback":
            yield None
            return
        relay = _Relay()
        with serve_in_thread(relay, host="127.0.0.1", port=0) as url:
            relay.url = url
            yield relay

    @contextlib.asynccontextmanager
    async def open_conformance(
        self, mode: TransportMode = "inprocess", *, seed: int = 0, server: _Relay | None = None,
    ) -> AsyncIterator[Conformance]:
        """Build a sandbox and an open adapter reaching it; yield the scenario world.

        The ``conformance`` fixture uses this; call it yourself to run one
        scenario outside pytest collection (``await suite.test_reacts(env)``).

        Args:
            mode: ``"inprocess"`` (the sandbox's transport) or ``"loopback"``
                (uvicorn on 127.0.0.1; started here unless ``server`` is given).
            seed: The sandbox's fault seed.
            server: A running relay server to reuse (the class-scoped fixture's).
        """
        sandbox = self.make_sandbox(seed=seed)
        async with contextlib.AsyncExitStack() as stack:
            if mode == "loopback" and server is None:
                server = _Relay()
                server.url = await stack.enter_async_context(
                    serve_async(server, host="127.0.0.1", port=0))
            if mode == "loopback" and server is not None:
                server.target = sandbox
                base_url = server.url

                def build() -> Adapter:
                    return self.make_adapter(sandbox, base_url=base_url, transport=None)
            else:

                def build() -> Adapter:
                    return self.make_adapter(sandbox, base_url=None,
                                             transport=sandbox.transport())

            adapter = build()
            try:
                with anyio.fail_after(_TIMEOUT):
                    await adapter.open()
                env = Conformance(sandbox, adapter, mode, build)
                with anyio.fail_after(_TIMEOUT):
                    await env.start()
                yield env
            finally:
                with anyio.CancelScope(shield=True):
                    await adapter.aclose()
                if server is not None:
                    server.target = None

    @pytest.fixture
    async def conformance(
        self, conformance_transport: TransportMode, conformance_server: _Relay | None,
        anyio_backend: object, request: pytest.FixtureRequest,
    ) -> AsyncIterator[Conformance]:
        """A fresh sandbox and an open adapter reaching it the configured way."""
        seed = self.seed if self.seed is not None else _seed(request.config)
        async with self.open_conformance(
            conformance_transport, seed=seed, server=conformance_server
        ) as env:
            yield env

    # receiving ------------------------------------------------------------

    async def test_opens_and_resolves_our_account(self, conformance: Conformance) -> None:
        """open() resolves our own account: its id is the sandbox's account id."""
        account = conformance.adapter.account
        assert account is not None, "open() must set adapter.account"
        assert account.ref.network == conformance.network
        assert account.ref.id == conformance.sandbox.our_account.id

    async def test_bad_credentials_raise_authentication_error(
        self, conformance: Conformance
    ) -> None:
        """Revoked credentials surface as AuthenticationError, not a generic error."""
        conformance.sandbox.revoke_credentials()
        fresh = conformance.reopen()
        async def first_contact() -> None:
            with anyio.fail_after(_TIMEOUT):
                await fresh.open()
                await fresh.poll(None)

        try:
            with pytest.raises(AuthenticationError):
                await first_contact()
        finally:
            with anyio.CancelScope(shield=True):
                await fresh.aclose()

    async def test_receives_public_mention(self, conformance: Conformance) -> None:
        """A customer's public mention arrives as MessageReceived with its exact text."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        post = sandbox.customer_mention("where is my order? 📦", author=customer)
        event = await conformance.receive(post, what="the public mention")
        message = event.message
        assert message.text == post.text
        assert message.visibility == "public"
        assert not message.from_us
        assert message.in_reply_to is None
        assert message.author.ref.id == customer.id
        assert event.conversation.kind == "thread"
        assert event.network == conformance.network

    async def test_receives_reply_in_thread(self, conformance: Conformance) -> None:
        """A customer's reply to our reply arrives pointing at our reply."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        first = await conformance.receive(
            sandbox.customer_mention("my parcel is lost", author=customer), what="the mention")
        ours = await conformance.act(conformance.reply_action(first.message, "Order number?"))
        follow_up = sandbox.customer_reply(ours.ref.id, "It is 1234", author=customer)
        event = await conformance.receive(follow_up, what="the reply in the thread")
        assert event.message.text == "It is 1234"
        assert event.message.in_reply_to is not None, "a reply must carry in_reply_to"
        assert event.message.in_reply_to.id == ours.ref.id
        assert event.conversation.kind == "thread"
        assert event.message.visibility != "private"

    async def test_receives_direct_message(self, conformance: Conformance) -> None:
        """A customer's direct message arrives private, in a direct conversation."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        dm = sandbox.customer_dm("hi, can you check my account? 🙏", author=customer)
        event = await conformance.receive(dm, what="the direct message")
        assert event.message.text == dm.text
        assert event.message.visibility == "private"
        assert event.message.is_private
        assert event.conversation.kind == "direct"
        assert event.message.author.ref.id == customer.id

    # replying -------------------------------------------------------------

    async def test_replies_in_thread(self, conformance: Conformance) -> None:
        """A reply lands publicly, answering exactly the message replied to (not the root)."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        first = await conformance.receive(
            sandbox.customer_mention("hello?", author=customer), what="the mention")
        ours = await conformance.act(conformance.reply_action(first.message, "Hi, can we help?"))
        record = conformance.record(ours)
        assert record.in_reply_to == first.message.ref.id
        assert not record.private
        deeper = sandbox.customer_reply(ours.ref.id, "my order is late", author=customer)
        second = await conformance.receive(deeper, what="the customer's answer")
        answer = conformance.reply_action(second.message, "Checking now.")
        again = await conformance.act(answer)
        record = conformance.record(again)
        assert record.text == self.expected_text(conformance, answer)
        assert record.in_reply_to == deeper.id, (
            f"the reply answers {record.in_reply_to!r}, not the message replied to {deeper.id!r}"
        )
        assert not record.private
        assert record.conversation == sandbox.world.post(deeper.id).root

    async def test_replies_to_direct_message_privately(self, conformance: Conformance) -> None:
        """A reply to a direct message stays private and goes to its author."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_dm("refund please", author=customer), what="the direct message")
        action = conformance.reply_action(event.message, "On it, sorry!")
        record = conformance.record(await conformance.act(action))
        assert record.private, "a reply to a DM must be private"
        assert record.recipient == customer.id
        assert record.text == self.expected_text(conformance, action)

    async def test_replies_privately(self, conformance: Conformance) -> None:
        """A private reply to a public mention reaches its author privately (where declared)."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_mention("my card was charged twice", author=customer),
            what="the mention")
        action = PrivateReply(network=conformance.network, to=event.message,
                              text="Let's sort this privately.")
        if not conformance.capabilities.private_reply:
            await _expect_unsupported(lambda: conformance.adapter.execute(action), "private_reply")
            return
        record = conformance.record(await conformance.act(action))
        assert record.private
        assert record.recipient == customer.id
        assert record.text == self.expected_text(conformance, action)

    # other actions --------------------------------------------------------

    async def test_reacts(self, conformance: Conformance) -> None:
        """Reacting to a mention records our reaction on it (where declared)."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("love it"), what="the mention")
        reactions = conformance.capabilities.reactions
        action = React(network=conformance.network, target=event.message.ref,
                       reaction=reactions[0] if reactions else "like")
        if not reactions:
            await _expect_unsupported(lambda: conformance.adapter.execute(action), "react")
            return
        await conformance.act(action)
        liked = [like.post_id for like in sandbox.reactions()]
        assert liked == [event.message.ref.id], (
            f"react is declared but the network recorded reactions on {liked}, "
            f"not one on the mention {event.message.ref.id!r}"
        )

    async def test_hides_comment(self, conformance: Conformance) -> None:
        """Hiding a customer's comment on our post sets, then clears, its hidden flag."""
        sandbox = conformance.sandbox
        ours = sandbox.our_post("We are live! Questions below 👇")
        comment = sandbox.customer_comment(ours, "this is spam http://spam.example")
        event = await conformance.receive(comment, what="the comment on our post")
        hide = Hide(network=conformance.network, target=event.message.ref, hidden=True)
        if not conformance.capabilities.hide:
            await _expect_unsupported(lambda: conformance.adapter.execute(hide), "hide")
            assert not sandbox.is_hidden(comment)
            return
        await conformance.act(hide)
        assert sandbox.is_hidden(comment)
        await conformance.act(Hide(network=conformance.network, target=event.message.ref,
                                   hidden=False))
        assert not sandbox.is_hidden(comment)

    async def test_deletes_own_message(self, conformance: Conformance) -> None:
        """Deleting our own reply removes it on the network (where declared)."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("hi"), what="the mention")
        sent = await conformance.act(conformance.reply_action(event.message, "Oops, wrong one"))
        action = Delete(network=conformance.network, target=sent.ref)
        if not conformance.capabilities.delete:
            await _expect_unsupported(lambda: conformance.adapter.execute(action), "delete")
            return
        await conformance.act(action)
        assert conformance.record(sent).deleted

    # text -----------------------------------------------------------------

    async def test_inbound_entities_keep_offsets(self, conformance: Conformance) -> None:
        """Mentions, links and hashtags after emoji arrive with spans that cover them exactly."""
        sandbox = conformance.sandbox
        text = ENTITY_TEXT.format(us=sandbox.mention_of(sandbox.our_account))
        post = sandbox.customer_mention(text)
        message = (await conformance.receive(post, what="the mention with entities")).message
        assert message.text == text, "the text must arrive exactly, emoji and all"
        mentions = [e for e in message.entities if isinstance(e, Mention)]
        links = [e for e in message.entities if isinstance(e, Link)]
        assert mentions, "the mention of our account has no Mention entity"
        assert links, "the link has no Link entity"
        ours = sandbox.mention_of(sandbox.our_account)
        assert any(m.text_in(text) == ours for m in mentions), (
            f"no Mention spans {ours!r}; spans cover {[m.text_in(text) for m in mentions]}"
        )
        for entity in message.entities:
            covered = entity.text_in(text)
            if isinstance(entity, Mention):
                assert covered.startswith("@"), f"Mention span covers {covered!r}"
            elif isinstance(entity, Link):
                assert covered == entity.url == "https://example.com/orders/42?ref=a1", (
                    f"Link span covers {covered!r} (url {entity.url!r})"
                )
            else:
                assert covered == f"#{entity.tag}", f"Hashtag span covers {covered!r}"
                assert entity.tag == "help", f"Hashtag tag is {entity.tag!r}"

    async def test_outbound_entities_keep_offsets(self, conformance: Conformance) -> None:
        """Our reply's emoji, mention and link reach the network exactly, spans included."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        event = await conformance.receive(
            sandbox.customer_mention("any news?", author=customer), what="the mention")
        them = sandbox.mention_of(customer)
        text = REPLY_ENTITY_TEXT.format(them=them)
        action = conformance.reply_action(event.message, text)
        record = conformance.record(await conformance.act(action))
        assert record.text == self.expected_text(conformance, action)
        covered = [(f.kind, f.text_in(record.text)) for f in record.facets]
        assert ("mention", them) in covered, f"no mention facet covers {them!r}: {covered}"
        assert ("link", "https://example.com/t/42") in covered, (
            f"no link facet covers the URL: {covered}"
        )
        offset = record.text.index(text)
        assert record.text[offset:] == text, "the emoji or the link were changed"

    async def test_too_long_reply_fails_before_any_request(
        self, conformance: Conformance
    ) -> None:
        """A reply over the declared limit fails with TextTooLong before any request is made.

        The limit counts what the network holds (``expected_text``): a reply
        filled exactly to it is accepted, one character more is refused by
        ``capabilities.check`` or by the adapter, with no request sent.
        """
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("hi"), what="the mention")
        empty = conformance.reply_action(event.message, "")
        rule = conformance.capabilities.rule_for(empty)
        room = rule.limit - rule.count(self.expected_text(conformance, empty))
        at_limit = conformance.reply_action(event.message, "a" * room)
        assert rule.count(self.expected_text(conformance, at_limit)) == rule.limit
        record = conformance.record(await conformance.act(at_limit))
        assert record.text == self.expected_text(conformance, at_limit), (
            "a text exactly at the declared limit must be accepted as is"
        )
        over = conformance.reply_action(event.message, "a" * (room + 1))
        before = sandbox.request_count()

        async def send_as_the_hub_does() -> None:
            conformance.adapter.check(over, now=sandbox.clock.peek())
            await conformance.adapter.send(over)

        with pytest.raises(TextTooLong):
            await send_as_the_hub_does()
        assert sandbox.request_count() == before, "a request was made for a too-long text"

    # delivery -------------------------------------------------------------

    async def test_rate_limit_is_waited_out(self, conformance: Conformance) -> None:
        """An exhausted rate limit is waited out: the reply lands and RateLimited never surfaces."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("quick!"), what="the mention")
        sandbox.exhaust_rate_limits(reset_in=self.rate_limit_reset)
        action = conformance.reply_action(event.message, "Here!")
        try:
            with anyio.fail_after(_TIMEOUT):
                sent = await conformance.act(action)
        except RateLimited as exc:  # pragma: no cover - the failure being tested for
            message = "RateLimited reached the caller instead of being waited out"
            raise AssertionError(message) from exc
        record = conformance.record(sent)
        assert record.in_reply_to == event.message.ref.id
        expected = self.expected_text(conformance, action)
        assert [r.text for r in sandbox.sent()].count(expected) == 1

    async def test_lost_response_does_not_double_post(self, conformance: Conformance) -> None:
        """A reply whose response was lost is found by find_sent, never posted twice."""
        sandbox = conformance.sandbox
        routes = type(sandbox).create_routes
        assert routes, f"{type(sandbox).__name__}.create_routes names no route"
        event = await conformance.receive(sandbox.customer_mention("hello"), what="the mention")
        for pattern in routes:
            sandbox.faults.lose_response(pattern, times=1)
        action = conformance.reply_action(event.message, "We're on it 🛠️")
        sent: Sent | None
        try:
            sent = await conformance.act(action)
        except AmbiguousDelivery:
            sent = None
        assert any(r.fault == "lost_response" for r in sandbox.requests), (
            "the create request never reached a route in create_routes"
        )
        if sent is None:
            sent = await conformance.adapter.find_sent(action)
            assert sent is not None, "find_sent did not find the reply whose response was lost"
            assert sent.idempotency_key == action.idempotency_key
        if conformance.capabilities.native_idempotency:
            again = await conformance.act(action)
            assert again.ref.id == sent.ref.id, "a resend with the same key created a new post"
        expected = self.expected_text(conformance, action)
        copies = [r for r in sandbox.sent() if r.text == expected]
        assert len(copies) == 1, f"the reply was posted {len(copies)} times"
        assert copies[0].id == sent.ref.id
        assert copies[0].in_reply_to == event.message.ref.id

    async def test_outbox_resend_after_lost_response_posts_once(
        self, conformance: Conformance
    ) -> None:
        """Reconcile-then-resend, as the outbox does, leaves exactly one copy."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("status?"), what="the mention")
        for pattern in type(sandbox).create_routes:
            sandbox.faults.lose_response(pattern, times=1)
        action = conformance.reply_action(event.message, "Shipped today 🚚")
        try:
            await conformance.act(action)
        except AmbiguousDelivery:
            if await conformance.adapter.find_sent(action) is None:
                await conformance.act(action)
        expected = self.expected_text(conformance, action)
        copies = [r for r in sandbox.sent() if r.text == expected]
        assert len(copies) == 1, f"the reply was posted {len(copies)} times"

    # inbound plumbing -----------------------------------------------------

    async def test_webhook_verifies_and_parses(self, conformance: Conformance) -> None:
        """A signed delivery verifies and parses into the event; a tampered one is refused."""
        sandbox = conformance.sandbox
        after = sandbox.world.last_seq
        post = sandbox.customer_mention("webhook me 🪝")
        if "webhook" not in conformance.capabilities.inbound:
            probe = WebhookRequest(method="POST", body=b"{}")
            await _expect_unsupported(lambda: conformance.adapter.verify(probe), "webhook")
            return
        deliveries = sandbox.webhook_deliveries(after_seq=after)
        assert deliveries, f"{type(sandbox).__name__} rendered no webhook delivery"
        delivery = deliveries[-1]
        request = WebhookRequest(
            method=delivery.method, path=delivery.path, query=delivery.query,
            headers={k.lower(): v for k, v in delivery.headers.items()}, body=delivery.body,
        )
        assert await conformance.adapter.verify(request) is None
        parsed = conformance.adapter.parse(request)
        events = parsed.events if isinstance(parsed, Batch) else parsed
        ids = [e.message.ref.id for e in events if isinstance(e, MessageReceived)]
        assert post.id in ids, f"parse() gave {ids}, not the mention {post.id!r}"
        body = delivery.body.replace(b"webhook", b"WEBHOOK")
        tampered = request.model_copy(update={"body": body})
        with pytest.raises(WebhookSignatureError):
            await conformance.adapter.verify(tampered)
        unsigned = request.model_copy(update={"headers": {"content-type": "application/json"}})
        with pytest.raises(WebhookSignatureError):
            await conformance.adapter.verify(unsigned)

    async def test_cursor_resume_skips_nothing_and_repeats_nothing(
        self, conformance: Conformance
    ) -> None:
        """Polling across pages and a restart from the stored cursor sees each message once."""
        sandbox = conformance.sandbox
        expected: list[str] = []
        expected += [sandbox.customer_mention(f"order {i} 🧾").id for i in range(3)]
        expected.append(sandbox.customer_dm("dm one").id)
        first = await conformance.drain()
        stored = conformance.cursor
        expected += [sandbox.customer_mention(f"order {i} 🧾").id for i in range(3, 6)]
        expected.append(sandbox.customer_dm("dm two").id)
        fresh = conformance.reopen()
        with anyio.fail_after(_TIMEOUT):
            await fresh.open()
        try:
            cursor = stored
            second: list[Event] = []
            for _ in range(_POLL_ROUNDS):
                batch = await fresh.poll(cursor)
                cursor = batch.cursor if batch.cursor is not None else cursor
                second.extend(batch.events)
                if not batch.more:
                    break
            tail = await fresh.poll(cursor)
        finally:
            with anyio.CancelScope(shield=True):
                await fresh.aclose()
        seen = [e.message.ref.id for e in (*first, *second) if isinstance(e, MessageReceived)]
        counts = Counter(seen)
        assert not [i for i in expected if counts[i] == 0], (
            f"skipped: {[i for i in expected if counts[i] == 0]}"
        )
        assert not [i for i, n in counts.items() if n > 1], (
            f"repeated: {[i for i, n in counts.items() if n > 1]}"
        )
        repeated = [e for e in tail.events if isinstance(e, MessageReceived)]
        assert not repeated, "polling again from the last cursor repeated messages"

    async def test_streams(self, conformance: Conformance) -> None:
        """A declared stream yields a new mention; undeclared, it raises CapabilityNotSupported."""
        sandbox = conformance.sandbox
        post = sandbox.customer_mention("streaming? 🌊")
        adapter = conformance.adapter

        async def first_batch_ids() -> list[str]:
            ids: list[str] = []
            with anyio.fail_after(_TIMEOUT):
                async with _closing(adapter.stream(conformance.cursor)) as stream:
                    async for batch in stream:
                        ids += [e.message.ref.id for e in batch.events
                                if isinstance(e, MessageReceived)]
                        if post.id in ids:
                            break
            return ids

        if "stream" not in conformance.capabilities.inbound:
            await _expect_unsupported(first_batch_ids, "stream")
            return
        assert post.id in await first_batch_ids()

    # sources ----------------------------------------------------------------

    async def test_sources_poll_and_their_cursors_round_trip(
        self, conformance: Conformance
    ) -> None:
        """Each poll source starts at its position, delivers what came once, and resumes."""
        adapter, sandbox = conformance.adapter, conformance.sandbox
        sources = list(adapter.sources())
        check_sources(adapter.network, sources)
        polled = [source for source in sources if isinstance(source, PollSource)]
        if not polled:
            pytest.skip("the adapter declares no poll source")
        cursors: dict[str, str | None] = {}
        with anyio.fail_after(_TIMEOUT):
            for source in polled:
                start = (await source.backlog() if source.backlog is not None
                         else await poll_backlog(source.poll, network=adapter.network))
                cursors[source.name] = start.cursor
        mention = sandbox.customer_mention("which source reads me? 🔎")
        dm = sandbox.customer_dm("and me, privately? 🔐")
        seen: list[str] = []
        with anyio.fail_after(_TIMEOUT):
            for source in polled:
                found: list[Event] = []
                cursor = await _drain_source(source, cursors[source.name], found)
                assert cursor is None or isinstance(cursor, str)
                cursors[source.name] = cursor
                seen += [e.message.ref.id for e in found if isinstance(e, MessageReceived)]
        assert mention.id in seen, f"no poll source delivered the mention (sources: {seen})"
        assert dm.id in seen, "no poll source delivered the direct message"
        counts = Counter(seen)
        assert not [i for i, n in counts.items() if n > 1], f"delivered twice: {seen}"
        with anyio.fail_after(_TIMEOUT):
            for source in polled:
                again = await source.poll(cursors[source.name])
                repeated = [e for e in again.events if isinstance(e, MessageReceived)]
                assert not repeated, (
                    f"source {source.name!r} repeated messages from its own cursor")

    async def test_stream_sources_stream(self, conformance: Conformance) -> None:
        """Each declared stream source yields a new mention from its cursor."""
        streams = [s for s in conformance.adapter.sources() if isinstance(s, StreamSource)]
        if not streams:
            pytest.skip("the adapter declares no stream source")
        for source in streams:
            written: list[str] = []
            found = False
            with anyio.fail_after(_TIMEOUT):
                async with anyio.create_task_group() as tg:
                    # A stream may start live: keep writing until one is read.
                    tg.start_soon(_keep_writing, conformance.sandbox, source.name, written)
                    # Found, the stream is cancelled where it waits for the network,
                    # not closed at a yield: what it reads through unwinds in place.
                    with anyio.CancelScope() as reading:
                        async with _closing(source.stream(None)) as stream:
                            async for batch in stream:
                                assert batch.cursor is None or isinstance(batch.cursor, str)
                                found = found or any(
                                    isinstance(e, MessageReceived) and e.message.ref.id in written
                                    for e in batch.events)
                                if found:
                                    reading.cancel()
                    tg.cancel_scope.cancel()
            assert found, f"stream source {source.name!r} ended before a new mention came"

    async def test_a_stream_drop_is_caught_up_by_polling(self, conformance: Conformance) -> None:
        """What comes while a stream source is down arrives through its catch-up poll."""
        adapter = conformance.reopen()
        streams = [s for s in adapter.sources()
                   if isinstance(s, StreamSource) and s.catch_up is not None]
        if not streams:
            pytest.skip("the adapter declares no stream source that a poll catches up")
        dropped = anyio.Event()
        sandbox = conformance.sandbox
        answered: list[MessageReceived] = []
        adapter.settings = adapter.settings.model_copy(update={"poll_interval": 3600.0})
        declared = adapter.sources()

        async def drops(cursor: str | None) -> AsyncIterator[Batch]:
            # The connection drops once asked to, and never comes back: only the
            # catch-up poll after the drop can deliver what was written.
            if dropped.is_set():
                await anyio.sleep_forever()
            await dropped.wait()
            if dropped.is_set():
                raise TransientError("the stream dropped", network=adapter.network)
            yield Batch()  # pragma: no cover - makes this a generator

        replaced = [dataclasses.replace(s, stream=drops) if s in streams else s
                    for s in declared]
        adapter.sources = lambda: replaced  # type: ignore[method-assign]
        hub = Hub(adapters=[adapter], store=MemoryStore(), policy=AutoSend(),
                  copy_paste_window=None, listener_backoff=(0.01, 0.05))

        @hub.on(MessageReceived)
        async def answer(event: MessageReceived, ctx: Context) -> None:
            answered.append(event)

        written: list[str] = []

        def write_then_drop() -> None:
            written.append(sandbox.customer_mention("sent while the stream was down").id)
            dropped.set()

        await self._run_until(hub, write_then_drop,
                              lambda: any(e.message.ref.id in written for e in answered))

    async def test_a_cursor_stored_before_sources_resumes_every_source(
        self, conformance: Conformance
    ) -> None:
        """A ``poll`` cursor stored under "default" resumes each source: nothing is lost."""
        if not conformance.capabilities.inbound & {"poll", "stream"}:
            pytest.skip("the adapter neither polls nor streams")
        sandbox = conformance.sandbox
        await conformance.start()
        packed = conformance.cursor
        if packed is None:
            pytest.skip("the adapter's poll gives no cursor")
        written = [sandbox.customer_mention("written across the upgrade").id,
                   sandbox.customer_dm("and a DM across the upgrade").id]
        store = MemoryStore()
        async with store:
            await store.record_batch(conformance.network, [], cursor=packed, stream="default")
        answered: list[MessageReceived] = []
        hub = self._listening_hub(conformance, store, answered)
        await self._run_until(hub, lambda: None,
                              lambda: {e.message.ref.id for e in answered} >= set(written))

    # first run --------------------------------------------------------------

    def _listening_hub(
        self, conformance: Conformance, store: Store, answered: list[MessageReceived],
        **settings: object,
    ) -> Hub:
        """A hub over a new adapter (polling often) whose handler answers every message."""
        adapter = conformance.reopen()
        adapter.settings = adapter.settings.model_copy(update={"poll_interval": 0.02, **settings})
        hub = Hub(adapters=[adapter], store=store, policy=AutoSend(), copy_paste_window=None)

        @hub.on(MessageReceived)
        async def answer(event: MessageReceived, ctx: Context) -> None:
            answered.append(event)
            await ctx.reply(f"Thanks for writing, message {len(answered)}!")

        return hub

    def _write_history(self, conformance: Conformance) -> list[str]:
        """Write `_HISTORY` mentions from different customers, two days before now."""
        sandbox = conformance.sandbox
        old = [
            sandbox.customer_mention(f"old question {n}", author=sandbox.customer(f"old{n}")).id
            for n in range(_HISTORY)
        ]
        sandbox.clock.advance(timedelta(days=2))
        return old

    async def _run_until(self, hub: Hub, write: Callable[[], object],
                         done: Callable[[], bool]) -> None:
        async with hub, anyio.create_task_group() as tg:
            await tg.start(hub.run)
            write()
            with anyio.fail_after(_TIMEOUT):
                while True:  # the hub reports nothing to wait on: look again shortly
                    if done():
                        break
                    await anyio.sleep(0.01)
            await hub.wait_idle()
            tg.cancel_scope.cancel()

    async def test_first_run_answers_nothing_old(self, conformance: Conformance) -> None:
        """A first run on an account with 20 old mentions answers none; a restart continues."""
        if not conformance.capabilities.inbound & {"poll", "stream"}:
            pytest.skip("the adapter neither polls nor streams")
        sandbox = conformance.sandbox
        old = self._write_history(conformance)
        store = MemoryStore()
        answered: list[MessageReceived] = []
        fresh: list[str] = []

        def sent_to() -> list[str | None]:
            return [record.in_reply_to for record in sandbox.sent()]

        def write_one(text: str) -> Callable[[], None]:
            return lambda: fresh.append(sandbox.customer_mention(text).id)

        hub = self._listening_hub(conformance, store, answered)
        await self._run_until(hub, write_one("a new question"), lambda: len(sandbox.sent()) >= 1)
        assert [e.message.ref.id for e in answered] == fresh, (
            f"a first run handled messages written before it: {len(answered)} handled, "
            f"{len(set(old) & {e.message.ref.id for e in answered})} of them old"
        )
        assert sent_to() == fresh, "a first run answered messages written before it"
        assert not any(e.backfilled for e in answered), "a live event was marked backfilled"

        # Restarted with the stored cursor: what came while away is new, and answered.
        hub = self._listening_hub(conformance, store, answered)
        await self._run_until(hub, write_one("written after the restart"),
                              lambda: len(sandbox.sent()) >= 2)
        assert [e.message.ref.id for e in answered] == fresh
        assert sent_to() == fresh
        assert not set(old) & set(sent_to())

    async def test_backfill_drafts_old_mentions_and_sends_none(
        self, conformance: Conformance
    ) -> None:
        """With a backfill the 20 old mentions are handled as drafts, even under AutoSend."""
        if not conformance.capabilities.inbound & {"poll", "stream"}:
            pytest.skip("the adapter neither polls nor streams")
        sandbox = conformance.sandbox
        old = self._write_history(conformance)
        answered: list[MessageReceived] = []
        fresh: list[str] = []
        hub = self._listening_hub(conformance, MemoryStore(), answered, backfill=_HISTORY)

        def held() -> int:
            return hub.statistics().total.drafts_held

        await self._run_until(
            hub, lambda: None, lambda: held() >= _HISTORY,
        )
        assert sorted(e.message.ref.id for e in answered) == sorted(old)
        assert all(e.backfilled for e in answered), "backfilled events must say so"
        assert sandbox.sent() == [], "a reply to a backfilled event was sent under AutoSend"
        async with hub.store as store:
            drafts = await store.list_drafts(status="pending", limit=100)
        assert sorted(d.action.to.ref.id for d in drafts if isinstance(d.action, Reply)) == (
            sorted(old)
        ), "every backfilled mention's reply must wait as a draft"

        # The backfill happens once: restarted, the hub answers only what is new.
        answered.clear()
        hub = self._listening_hub(conformance, hub.store, answered, backfill=_HISTORY)
        await self._run_until(hub, lambda: fresh.append(sandbox.customer_mention("new").id),
                              lambda: len(sandbox.sent()) >= 1)
        assert [e.message.ref.id for e in answered] == fresh
        assert not answered[0].backfilled
        assert [record.in_reply_to for record in sandbox.sent()] == fresh

    # outbound, in depth -----------------------------------------------------

    async def _find_sent_among_decoys(self, conformance: Conformance, *, private: bool) -> None:
        sandbox = conformance.sandbox
        customer, other = sandbox.customer(), sandbox.customer()

        async def incoming(text: str, author: Any) -> MessageReceived:
            record = (sandbox.customer_dm(text, author=author) if private
                      else sandbox.customer_mention(text, author=author))
            return await conformance.receive(record, what=f"the message {text!r}")

        first = await incoming("my parcel never came", customer)
        second = await incoming("order 1234, please hurry", customer)
        elsewhere = await incoming("hello? 👋", other)

        def reply(to: MessageReceived, text: str) -> Reply:
            return conformance.reply_action(to.message, text)

        before = [reply(first, "Decoy one 🧾"), reply(second, "Decoy two"),
                  reply(elsewhere, "Decoy three")]
        lost = reply(first, "This answer was lost on the way back 📦")
        after = [reply(first, "Decoy four"), reply(second, "Decoy five 🚚"),
                 reply(elsewhere, "Decoy six")]
        never = reply(first, "A reply that was never sent")
        ids: dict[str, str] = {}
        for action in before:
            ids[action.idempotency_key] = (await conformance.act(action)).ref.id
        # Its answer is "lost" by never showing it to find_sent: the lookup
        # runs on a fresh adapter, with only what the network shows.
        await conformance.act(lost)
        for action in after:
            ids[action.idempotency_key] = (await conformance.act(action)).ref.id
        expected = self.expected_text(conformance, lost)
        copies = [r for r in sandbox.sent() if r.text == expected]
        assert len(copies) == 1, f"the lost reply was posted {len(copies)} times"
        ids[lost.idempotency_key] = copies[0].id
        kind = "direct" if private else "public"
        fresh = conformance.reopen()  # what the network shows, not what the adapter remembers
        with anyio.fail_after(_TIMEOUT):
            await fresh.open()
        try:
            found = await fresh.find_sent(lost)
            assert found is not None, (
                f"find_sent answered None for a {kind} reply that was posted (its answer was "
                f"lost), with {len(before) + len(after)} other replies of ours around it: "
                "the outbox would post it twice"
            )
            assert found.ref.id == copies[0].id, (
                f"find_sent returned {found.ref.id!r}, another of our messages, for the lost "
                f"{kind} reply {copies[0].id!r}: find it by what identifies it, not by position"
            )
            assert found.idempotency_key == lost.idempotency_key
            for action in (*before, *after):
                again = await fresh.find_sent(action)
                got = again.ref.id if again is not None else None
                assert got == ids[action.idempotency_key], (
                    f"find_sent for our {kind} reply {action.text!r} returned {got!r}, "
                    f"not {ids[action.idempotency_key]!r}"
                )
            assert await fresh.find_sent(never) is None, (
                f"find_sent found something for a {kind} reply that was never sent: "
                "the outbox would drop it"
            )
        finally:
            with anyio.CancelScope(shield=True):
                await fresh.aclose()

    async def test_find_sent_finds_a_public_reply_among_decoys(
        self, conformance: Conformance
    ) -> None:
        """find_sent finds the lost public reply among our others; None for one never sent."""
        await self._find_sent_among_decoys(conformance, private=False)

    async def test_find_sent_finds_a_direct_reply_among_decoys(
        self, conformance: Conformance
    ) -> None:
        """find_sent finds the lost direct reply among our others; None for one never sent."""
        await self._find_sent_among_decoys(conformance, private=True)

    async def test_failed_create_is_not_retried_by_the_adapter(
        self, conformance: Conformance
    ) -> None:
        """One 500 on a create route: the adapter asks the HTTP layer once, never retries or sleeps.

        Retrying is the HTTP layer's job (``omnichannel.http``), which knows
        which requests are safe to send again; an answer that leaves the
        outcome open goes back to the outbox as ``AmbiguousDelivery``.
        """
        sandbox = conformance.sandbox
        routes = [route_matcher(p) for p in type(sandbox).create_routes]
        event = await conformance.receive(sandbox.customer_mention("anyone there?"),
                                          what="the mention")
        for pattern in type(sandbox).create_routes:
            sandbox.faults.fail(pattern, 500, times=1, retry_after=0)
        before = _count(sandbox, routes)
        action = conformance.reply_action(event.message, "Yes, we are here 🙋")
        with _HttpAttempts() as attempts, _Sleeps() as sleeps, contextlib.suppress(NetworkError):
            await conformance.act(action)
        made = _count(sandbox, routes) - before
        first_tries = attempts.count(routes, first_only=True)
        assert made >= 1, "the create request never reached a route in create_routes"
        assert first_tries <= 1, (
            f"after one 500 the adapter asked the HTTP client {first_tries} times to create "
            "the same message: it retries by itself; leave retries to omnichannel.http"
        )
        assert made == attempts.count(routes), (
            f"{made} requests reached create routes but the HTTP client sent "
            f"{attempts.count(routes)}: send through omnichannel.http, which retries safely"
        )
        assert not sleeps.calls, (
            f"the adapter slept ({sleeps.calls}) while sending: never sleep in an adapter"
        )
        copies = [r for r in sandbox.sent() if r.text == self.expected_text(conformance, action)]
        assert len(copies) <= 1, f"the reply was posted {len(copies)} times"

    async def test_text_limit_counts_the_networks_unit(self, conformance: Conformance) -> None:
        """Replies filled to the network's limit with emoji are accepted; one more is refused.

        The sandbox's own count (``Sandbox.count_text``) is the judge: a
        text exactly at its limit must pass ``check`` and be stored as is;
        one unit more must raise ``TextTooLong`` before any request.
        """
        sandbox = conformance.sandbox
        mention = await conformance.receive(sandbox.customer_mention("how long?"),
                                            what="the mention")
        dm = await conformance.receive(sandbox.customer_dm("how long, privately?"),
                                       what="the direct message")
        checked = 0
        for to, private in ((mention, False), (dm, True)):
            limit = (sandbox.dm_text_limit or sandbox.text_limit) if private else sandbox.text_limit
            if limit is None:
                continue
            for name, unit in LIMIT_FILLERS.items():
                at_limit = self._filled(conformance, to.message, unit, limit, private=private)
                stored = self.expected_text(conformance, at_limit)
                try:
                    record = conformance.record(await conformance.act(at_limit))
                except TextTooLong as exc:
                    raise AssertionError(
                        f"a {'direct' if private else 'public'} reply filled with {name}s to "
                        f"exactly the network's limit ({limit}, counted by the sandbox) was "
                        f"refused: the adapter counts the wrong unit ({exc})"
                    ) from exc
                assert record.text == stored, "a text at the limit must be stored as is"
                over = conformance.reply_action(to.message, at_limit.text + unit)
                before = _count(sandbox, [route_matcher(p) for p in type(sandbox).create_routes])
                where = "direct" if private else "public"
                try:
                    await conformance.act(over)
                except TextTooLong:
                    pass
                except Exception as exc:
                    raise AssertionError(
                        f"a {where} reply one {name} over the network's limit raised "
                        f"{type(exc).__name__} instead of TextTooLong: the adapter counts "
                        f"the wrong unit ({exc})"
                    ) from exc
                else:
                    raise AssertionError(
                        f"a {where} reply one {name} over the network's limit was sent: "
                        "the adapter counts the wrong unit"
                    )
                after = _count(sandbox, [route_matcher(p) for p in type(sandbox).create_routes])
                assert after == before, "a request was made for a too-long text"
                checked += 1
        if not checked:
            pytest.skip(f"{type(sandbox).__name__} enforces no text limit")

    def _filled(
        self, conformance: Conformance, to: Message, unit: str, limit: int, *, private: bool
    ) -> Reply:
        """A reply to ``to`` whose sent text is exactly ``limit`` by the sandbox's count."""
        sandbox = conformance.sandbox

        def length(text: str) -> int:
            action = conformance.reply_action(to, text)
            return sandbox.count_text(self.expected_text(conformance, action), private=private)

        base = length("")
        step = max(1, length(unit * 4) - base) / 4
        n = max(0, int((limit - base) / step) - 1)
        while n > 0 and length(unit * n) > limit:
            n -= 1
        while length(unit * (n + 1)) <= limit:
            n += 1
        pad = ""
        while length(pad + "a" + unit * n) <= limit:
            pad += "a"
        text = pad + unit * n
        assert length(text) == limit, f"cannot fill a reply to exactly {limit}"
        return conformance.reply_action(to, text)

    # credentials and failures ----------------------------------------------

    async def test_revoked_credentials_after_open_raise(self, conformance: Conformance) -> None:
        """Credentials revoked after open(): poll and send raise AuthenticationError."""
        sandbox = conformance.sandbox
        event = await conformance.receive(sandbox.customer_mention("still there?"),
                                          what="the mention")
        sandbox.customer_mention("one more question")
        sandbox.revoke_credentials()
        await _expect_auth_error(lambda: conformance.adapter.poll(conformance.cursor), "poll")
        action = conformance.reply_action(event.message, "Sorry for the wait")
        await _expect_auth_error(lambda: conformance.act(action), "send")

    async def test_expired_token_is_refreshed_once_or_raises(
        self, conformance: Conformance
    ) -> None:
        """A token expired after open(): refreshed once and the request repeated, or TokenExpired.

        An adapter with a refreshable session gets a new token (one, as the
        sandbox counts them) and delivers what was waiting; one without
        raises ``AuthenticationError``/``TokenExpired``. Never a transient
        error, never an empty page.
        """
        sandbox = conformance.sandbox
        us = sandbox.our_account.id
        event = await conformance.receive(sandbox.customer_mention("hello"), what="the mention")
        waiting = sandbox.customer_mention("are you still there?")
        for step in ("poll", "send"):
            issued = sandbox.tokens.issued(us)
            sandbox.expire_token()
            try:
                if step == "poll":
                    events = await conformance.drain()
                else:
                    sent = await conformance.act(
                        conformance.reply_action(event.message, "Still here 🙂"))
            except AuthenticationError:
                assert sandbox.tokens.issued(us) == issued, (
                    f"{step} raised AuthenticationError after getting a new token"
                )
                continue
            except Exception as exc:
                raise AssertionError(
                    f"{step} with an expired token raised {type(exc).__name__} ({exc}): "
                    "refresh it, or raise AuthenticationError/TokenExpired"
                ) from exc
            refreshed = sandbox.tokens.issued(us) - issued
            assert refreshed, (
                f"{step} with an expired token returned without refreshing it: an adapter that "
                "swallows errors hides a dead session; refresh it, or raise TokenExpired"
            )
            assert refreshed == 1, (
                f"{step} with an expired token succeeded after {refreshed} token refreshes: "
                "refresh once, or raise TokenExpired"
            )
            if step == "poll":
                ids = [e.message.ref.id for e in events if isinstance(e, MessageReceived)]
                assert waiting.id in ids, (
                    "poll with an expired token returned without the waiting mention: "
                    "refresh and repeat the request, or raise TokenExpired"
                )
            else:
                assert conformance.record(sent).text == self.expected_text(
                    conformance, conformance.reply_action(event.message, "Still here 🙂"))

    async def test_failing_poll_raises_instead_of_an_empty_page(
        self, conformance: Conformance
    ) -> None:
        """When every read fails, poll raises a typed error; it never answers an empty page."""
        sandbox = conformance.sandbox
        sandbox.customer_mention("can you hear me?")
        sandbox.faults.fail("GET *", 503, retry_after=0)
        try:
            with anyio.fail_after(_TIMEOUT):
                batch = await conformance.adapter.poll(conformance.cursor)
        except OmnichannelError:
            return
        except Exception as exc:
            raise AssertionError(
                f"poll raised {type(exc).__name__} ({exc}), not an omnichannel error"
            ) from exc
        finally:
            sandbox.faults.clear()
        raise AssertionError(
            f"every read failed with 503 but poll returned a page ({len(batch.events)} events): "
            "an adapter that swallows errors hides an outage; let them raise"
        )

    # inbound, in depth --------------------------------------------------------

    async def test_own_messages_are_marked_from_us(self, conformance: Conformance) -> None:
        """Every message our account wrote arrives with from_us, also from another client."""
        sandbox = conformance.sandbox
        world, us = sandbox.world, sandbox.our_account
        customer = sandbox.customer()
        mention = await conformance.receive(
            sandbox.customer_mention("hi there", author=customer), what="the mention")
        raw_dm = sandbox.customer_dm("a private question", author=customer)
        dm = await conformance.receive(raw_dm, what="the direct message")
        await conformance.act(conformance.reply_action(mention.message, "Hello from the shop"))
        await conformance.act(conformance.reply_action(dm.message, "Answering privately"))
        # Echoes: our account writing through another client (the network's own app).
        world.add_post(us, f"{sandbox.mention_of(customer)} typed in the app 📱",
                       in_reply_to=mention.message.ref.id)
        if isinstance(raw_dm, DirectMessage):
            world.add_message(us, raw_dm.conversation_id, "typed in the app, privately")
        else:
            world.add_post(us, f"{sandbox.mention_of(customer)} typed in the app, privately",
                           in_reply_to=raw_dm.id, visibility="direct")
        sandbox.customer_mention("and one more thing", author=customer)
        await conformance.drain()
        wrong = [
            (e.message.ref.id, e.message.author.ref.id, e.message.from_us)
            for e in conformance.inbox if isinstance(e, MessageReceived | MessageUpdated)
            and (e.message.author.ref.id == us.id) != e.message.from_us
        ]
        assert not wrong, (
            f"from_us does not say whether our account wrote these (id, author, from_us): "
            f"{wrong}; the bot would answer itself"
        )

    async def test_conversation_events_keep_order_and_network_times(
        self, conformance: Conformance
    ) -> None:
        """Messages of one conversation arrive oldest first, stamped with the network's times."""
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        us = sandbox.mention_of(sandbox.our_account)
        records: list[Post | DirectMessage] = []
        parent = sandbox.customer_mention("first 1️⃣", author=customer)
        records.append(parent)
        for n, word in enumerate(("second 2️⃣", "third 3️⃣", "fourth 4️⃣")):
            sandbox.clock.advance(timedelta(seconds=61 + n))
            records.append(sandbox.customer_dm(f"dm {word}", author=customer))
            sandbox.clock.advance(timedelta(seconds=67 + n))
            parent = sandbox.customer_reply(parent, f"{us} {word}", author=customer)
            records.append(parent)
        delivered: list[MessageReceived] = []
        for _ in range(3):
            delivered += [e for e in await conformance.drain() if isinstance(e, MessageReceived)]
            if {r.id for r in records} <= {e.message.ref.id for e in delivered}:
                break
        position = {e.message.ref.id: i for i, e in reversed(list(enumerate(delivered)))}
        missing = [r.id for r in records if r.id not in position]
        assert not missing, f"not delivered: {missing}"
        for record in records:
            message = delivered[position[record.id]].message
            assert abs(message.created_at - record.created_at) <= timedelta(seconds=1), (
                f"message {record.id!r} is stamped {message.created_at.isoformat()}, the "
                f"network says {record.created_at.isoformat()}: use the network's time"
            )
        for kind in (Post, DirectMessage):
            ours = [r.id for r in records if isinstance(r, kind)]
            order = sorted(ours, key=lambda i: position[i])
            assert order == ours, (
                f"the messages of one conversation arrived as {order}, written as {ours}: "
                "deliver each conversation oldest first"
            )

    async def test_burst_larger_than_a_page_is_delivered_whole(
        self, conformance: Conformance
    ) -> None:
        """Many pages of mentions between two polls: every one is delivered, none dropped.

        An adapter whose settings have ``page_size`` is reopened with a page
        of 2 and gets 12 pages; any other gets ``burst_size`` mentions.
        """
        sandbox = conformance.sandbox
        adapter = conformance.adapter
        model = type(adapter.settings)
        if "page_size" in model.model_fields:
            data = {**adapter.settings.model_dump(), "page_size": _PAGE}
            burst = _PAGE * 11 + 2
            fresh = type(adapter)(model.model_validate(data), transport=adapter.transport)
        else:
            burst = self.burst_size
            fresh = conformance.reopen()
        with anyio.fail_after(_TIMEOUT):
            await fresh.open()
        try:
            cursor = await _drain(fresh, conformance.cursor, [])
            expected = [sandbox.customer_mention(f"burst {i} 📣").id for i in range(burst)]
            seen: list[Event] = []
            for _ in range(3):
                cursor = await _drain(fresh, cursor, seen, rounds=burst + 5)
        finally:
            with anyio.CancelScope(shield=True):
                await fresh.aclose()
        got = {e.message.ref.id for e in seen if isinstance(e, MessageReceived)}
        dropped = [i for i in expected if i not in got]
        assert not dropped, (
            f"{len(dropped)} of {burst} mentions written between two polls were never "
            f"delivered (first: {dropped[:3]}): follow the pages back to the cursor"
        )

    async def test_malformed_item_is_rejected_and_the_rest_delivered(
        self, conformance: Conformance
    ) -> None:
        """A malformed item inside a page comes back in Batch.rejected; the rest is delivered."""
        sandbox = conformance.sandbox
        good: list[Post | DirectMessage] = [sandbox.customer_mention("before the bad one")]
        bad = sandbox.customer_mention("I will arrive malformed")
        good.append(sandbox.customer_mention("after the bad one"))
        good.append(sandbox.customer_dm("and a direct message"))
        sandbox.corrupt_item(bad)
        rejected: list[bytes] = []
        delivered: list[Event] = []
        adapter, cursor = conformance.adapter, conformance.cursor
        for _ in range(_POLL_ROUNDS):
            try:
                batch = await adapter.poll(cursor)
            except Exception as exc:
                raise AssertionError(
                    f"one malformed item made poll raise {type(exc).__name__} ({exc}): report "
                    "it in Batch.rejected and deliver the rest, or the inbox stalls"
                ) from exc
            cursor = batch.cursor if batch.cursor is not None else cursor
            delivered += batch.events
            rejected += [r.body for r in batch.rejected]
            if not batch.more:
                break
        ids = {e.message.ref.id for e in delivered if isinstance(e, MessageReceived)}
        assert not [g.id for g in good if g.id not in ids], (
            f"the good items next to a malformed one were not delivered: "
            f"{[g.id for g in good if g.id not in ids]}"
        )
        assert bad.id not in ids
        assert any(bad.id.encode() in body for body in rejected), (
            "the malformed item was not reported in Batch.rejected (the hub keeps it as a "
            f"dead letter); rejected: {rejected}"
        )
        again = await adapter.poll(cursor)
        assert not any(bad.id.encode() in r.body for r in again.rejected), (
            "the cursor did not move past the malformed item: it is reported again"
        )


    # Leaving a live stream mid-response: httpx's line, text, byte and stream
    # iterators nest async generators and close only the outermost; trio warns
    # when it collects the inner ones. The connection itself is closed.
    @pytest.mark.filterwarnings("ignore:Async generator 'httpx.:ResourceWarning")
    @pytest.mark.filterwarnings("ignore:Async generator 'httpcore.:ResourceWarning")
    async def test_inbound_edits_and_deletes(self, conformance: Conformance) -> None:
        """A customer's edit and deletion arrive (MessageUpdated, MessageDeleted) where declared.

        Read the way the hub listens: from the stream where one is declared,
        else by polling. Declared and missing fails; delivered but not
        declared fails too; neither declared nor delivered skips.
        """
        sandbox = conformance.sandbox
        customer = sandbox.customer()
        us = sandbox.mention_of(sandbox.our_account)
        post = sandbox.customer_mention("my order is 1234", author=customer)
        await conformance.receive(post, what="the mention")
        edited = f"{us} sorry, my order is 1243 ✏️"
        seen: list[Event] = []

        def edit() -> None:
            sandbox.clock.advance(timedelta(seconds=30))
            sandbox.customer_edit(post, edited)

        def delete() -> None:
            sandbox.clock.advance(timedelta(seconds=30))
            sandbox.customer_delete(post)

        if "stream" in conformance.capabilities.inbound:
            await _stream_around(conformance, [edit, delete], seen)
        else:
            for step in (edit, delete):
                step()
                conformance.cursor = await _drain(conformance.adapter, conformance.cursor, seen)
        updates = [e for e in seen if isinstance(e, MessageUpdated)
                   and e.message.ref.id == post.id]
        deletions = [e for e in seen if isinstance(e, MessageDeleted)
                     and e.message.id == post.id]
        caps = conformance.capabilities
        problems: list[str] = []
        for name, declared, found in (("inbound_edits", caps.inbound_edits, updates),
                                      ("inbound_deletes", caps.inbound_deletes, deletions)):
            if declared and not found:
                problems.append(f"{name} is declared but nothing arrived for {post.id!r}")
            if found and not declared:
                problems.append(f"{name} works but is not declared in capabilities: declare it")
        assert not problems, "; ".join(problems)
        for update in updates:
            assert update.message.text == edited, (
                f"MessageUpdated carries {update.message.text!r}, not the edited text"
            )
        if not (caps.inbound_edits or caps.inbound_deletes):
            pytest.skip("the adapter declares neither inbound_edits nor inbound_deletes")

    # the capability table -------------------------------------------------

    async def test_capabilities_match_behaviour(self, conformance: Conformance) -> None:
        """Each optional capability is declared exactly when the adapter can do it."""
        mismatches: list[str] = []
        for name in OPTIONAL_CAPABILITIES:
            declared = _declared(conformance.capabilities, name)
            outcome = await _probe(conformance, name)
            if declared and outcome != "works":
                mismatches.append(f"{name}: declared but {outcome}")
            if not declared and outcome == "works":
                mismatches.append(f"{name}: works but is not declared")
            if not declared and outcome not in ("works", "unsupported"):
                mismatches.append(f"{name}: not declared and raised {outcome} "
                                  "instead of CapabilityNotSupported")
        assert not mismatches, "; ".join(mismatches)


def _count(sandbox: Sandbox, routes: Sequence[Any]) -> int:
    """Requests the sandbox received on routes matching one of ``routes`` (compiled)."""
    return sum(1 for r in list(sandbox.requests)
               if any(rx.match(f"{r.method} {r.path}") for rx in routes))


async def _drain(
    adapter: Adapter, cursor: str | None, into: list[Event], *, rounds: int = _POLL_ROUNDS
) -> str | None:
    """Poll ``adapter`` from ``cursor`` until no page is ready; return the cursor."""
    for _ in range(rounds):
        batch = await adapter.poll(cursor)
        cursor = batch.cursor if batch.cursor is not None else cursor
        into.extend(batch.events)
        if not batch.more:
            break
    return cursor


async def _keep_writing(sandbox: Sandbox, name: str, written: list[str]) -> None:
    """Write a mention every 50 ms, keeping their ids in ``written``."""
    while True:
        written.append(sandbox.customer_mention(f"streamed by {name}?").id)
        await anyio.sleep(0.05)


async def _drain_source(
    source: PollSource, cursor: str | None, into: list[Event]
) -> str | None:
    """Poll ``source`` from ``cursor`` until no page is ready; return its cursor."""
    for _ in range(_POLL_ROUNDS):
        batch = await source.poll(cursor)
        cursor = batch.cursor if batch.cursor is not None else cursor
        into.extend(batch.events)
        if not batch.more:
            break
    return cursor


async def _stream_around(
    conformance: Conformance, steps: Sequence[Callable[[], None]], into: list[Event]
) -> None:
    """Read the adapter's stream while each of ``steps`` happens in turn.

    A first mention shows the stream is reading. Each step is followed by a
    mention, and the next step waits for it to arrive: by then whatever the
    step produced has arrived too (streams keep the network's order).
    """
    sandbox = conformance.sandbox
    waiting = sandbox.customer_mention("are you listening? 👂")
    todo = list(steps)
    with anyio.fail_after(_TIMEOUT):
        async with _closing(conformance.adapter.stream(conformance.cursor)) as stream:
            async for batch in stream:
                into.extend(batch.events)
                ids = {e.message.ref.id for e in batch.events if isinstance(e, MessageReceived)}
                if waiting.id not in ids:
                    continue
                if not todo:
                    break
                todo.pop(0)()
                waiting = sandbox.customer_mention(f"still there? ({len(todo)})")


async def _expect_auth_error(call: Callable[[], Awaitable[object]], what: str) -> None:
    try:
        with anyio.fail_after(_TIMEOUT):
            result = await call()
    except AuthenticationError:
        return
    except Exception as exc:
        raise AssertionError(
            f"{what} with revoked credentials raised {type(exc).__name__} ({exc}), not "
            "AuthenticationError: the hub would retry forever instead of saying so"
        ) from exc
    raise AssertionError(
        f"{what} with revoked credentials returned {type(result).__name__} instead of raising "
        "AuthenticationError: an adapter that swallows errors hides a dead account"
    )


class _HttpAttempts(logging.Handler):
    """Collects the attempts ``omnichannel.http`` logs (one record per request it sends)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, str, int]] = []
        self._logger = logging.getLogger("omnichannel.http")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        method, endpoint = getattr(record, "method", None), getattr(record, "endpoint", None)
        attempt = getattr(record, "attempt", None)
        if isinstance(method, str) and isinstance(endpoint, str) and isinstance(attempt, int):
            self.seen.append((method, endpoint, attempt))

    def __enter__(self) -> _HttpAttempts:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def count(self, routes: Sequence[Any], *, first_only: bool = False) -> int:
        """Attempts on routes matching ``routes``; with ``first_only``, calls of ``request``."""
        return sum(1 for method, endpoint, attempt in self.seen
                   if any(rx.match(f"{method} {endpoint}") for rx in routes)
                   and (attempt == 1 or not first_only))


class _Sleeps:
    """Records ``anyio.sleep`` calls made from this thread (the HTTP layer holds its own)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._thread = threading.get_ident()
        self._patch: Any = None

    def __enter__(self) -> _Sleeps:
        original = anyio.sleep

        async def sleep(delay: float) -> None:
            if threading.get_ident() == self._thread and delay > 0:
                self.calls.append(delay)
            await original(delay)

        self._patch = mock.patch.object(anyio, "sleep", sleep)
        self._patch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.stop()


def _declared(capabilities: Capabilities, name: str) -> bool:
    match name:
        case "react":
            return bool(capabilities.reactions)
        case "hide":
            return capabilities.hide
        case "delete":
            return capabilities.delete
        case "private_reply":
            return capabilities.private_reply
        case _:
            return name in capabilities.inbound


async def _probe(conformance: Conformance, name: str) -> str:
    """Try a capability, bypassing the check: ``works``, ``unsupported`` or what went wrong."""
    sandbox, adapter, network = conformance.sandbox, conformance.adapter, conformance.network
    try:
        with anyio.fail_after(_TIMEOUT):
            if name == "stream":
                cursor = conformance.cursor
                post = sandbox.customer_mention("probe stream")
                ok = False
                async with _closing(adapter.stream(cursor)) as stream:
                    async for batch in stream:
                        ids = [e.message.ref.id for e in batch.events
                               if isinstance(e, MessageReceived)]
                        if post.id in ids:
                            ok = True
                            break
            elif name in ("react", "private_reply", "delete"):
                post = sandbox.customer_mention(f"probe {name}")
                event = await conformance.receive(post, what=f"the {name} probe mention")
                if name == "react":
                    reaction = (conformance.capabilities.reactions or ("like",))[0]
                    await adapter.react(React(network=network, target=event.message.ref,
                                              reaction=reaction))
                    ok = any(like.post_id == post.id for like in sandbox.reactions())
                elif name == "private_reply":
                    sent = await adapter.send(PrivateReply(network=network, to=event.message,
                                                           text=f"probe {name}"))
                    ok = conformance.record(sent).private
                else:
                    sent = await adapter.send(Reply(network=network, to=event.message,
                                                    text="probe delete"))
                    await adapter.delete(Delete(network=network, target=sent.ref))
                    ok = conformance.record(sent).deleted
            elif name == "hide":
                comment = sandbox.customer_comment(sandbox.our_post("probe hide"), "probe comment")
                event = await conformance.receive(comment, what="the hide probe comment")
                await adapter.hide(Hide(network=network, target=event.message.ref))
                ok = sandbox.is_hidden(comment)
            else:
                after = sandbox.world.last_seq
                post = sandbox.customer_mention("probe webhook")
                deliveries = sandbox.webhook_deliveries(after_seq=after)
                if not deliveries:
                    await adapter.verify(WebhookRequest(method="POST", body=b"{}"))
                    return "unrendered"
                d = deliveries[-1]
                request = WebhookRequest(method=d.method, path=d.path, query=d.query, body=d.body,
                                         headers={k.lower(): v for k, v in d.headers.items()})
                verified = await adapter.verify(request) is None
                parsed = adapter.parse(request)
                ok = verified and any(
                    isinstance(e, MessageReceived) and e.message.ref.id == post.id
                    for e in (parsed.events if isinstance(parsed, Batch) else parsed)
                )
    except CapabilityNotSupported:
        return "unsupported"
    except Exception as exc:
        return f"failed ({type(exc).__name__}: {exc})"
    return "works" if ok else "had no effect"
