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
"""

# ruff: noqa: S101 - this module is a test suite: assert is how it reports
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import anyio
import httpx
import pytest

from omnichannel.actions import Action, Delete, Hide, PrivateReply, React, Reply, Sent
from omnichannel.adapter import Adapter, Batch, WebhookRequest
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    RateLimited,
    TextTooLong,
    WebhookSignatureError,
)
from omnichannel.events import Event, MessageReceived
from omnichannel.model import Link, Mention, Message

from ._transport import Receive, Scope, Send, answer_lifespan, serve_async, serve_in_thread
from .pytest_plugin import _seed
from .sandbox import DirectMessage, Post, Sandbox, SentRecord

__all__ = [
    "ENTITY_TEXT",
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

ENTITY_TEXT = "🎉🇫🇷 hey {us} 👩‍👩‍👧 my order is late: https://example.com/orders/42?ref=a1 #help"
"""The inbound text of the entity scenario: emoji (flags, ZWJ) before each entity."""

REPLY_ENTITY_TEXT = "Thanks {them} 🙏🏽 track it at https://example.com/t/42 #help"
"""The outbound text of the entity scenario."""


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
    """

    adapter_class: ClassVar[type[Adapter]]
    sandbox_class: ClassVar[type[Sandbox]]
    transport_mode: ClassVar[TransportMode | tuple[TransportMode, ...]] = "inprocess"
    seed: ClassVar[int | None] = None
    rate_limit_reset: ClassVar[float] = 0.3

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
