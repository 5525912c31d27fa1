"""The public surface as users write it: type-checked by mypy --strict, never run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, SecretStr, ValidationError

import omnichannel
from omnichannel import (
    Capabilities,
    Conversation,
    Message,
    MessageReceived,
    Person,
    PrivateReply,
    Ref,
    Reply,
    TextTooLong,
)
from omnichannel.adapter import Adapter, AdapterSettings, Batch, Rejected
from omnichannel.errors import PayloadError, TransientError
from omnichannel.events import Event, event_id, parse_event
from omnichannel.http import ApiClient, BearerAuth, Reconnects, RetryPolicy
from omnichannel.sources import PollSource, Source, SourceLease, StreamSource, check_sources
from omnichannel.text import TextRule, count_graphemes, split_thread, utf8_to_index


def model_usage() -> str:
    ref: Ref = Ref(network="bluesky", id="at://did:plc:x/app.bsky.feed.post/1", extra={"cid": "b"})
    author = Person(ref=Ref(network="bluesky", id="did:plc:x"), handle="alice.bsky.social")
    message = Message(
        ref=ref, conversation=ref, author=author, text="hi 👋",
        created_at=datetime.now(UTC),
    )
    conversation = Conversation(ref=ref, kind="thread")
    event: Event = MessageReceived(
        id=event_id("message.received", ref), network="bluesky",
        occurred_at=message.created_at, message=message, conversation=conversation,
    )
    again = parse_event(event.model_dump_json())
    reply = Reply(network="bluesky", to=message, text="Hello!")
    private = PrivateReply(network="bluesky", to=message, text="DM sent")
    key: str = reply.idempotency_key + private.idempotency_key
    return again.id + key


def text_usage() -> int:
    rule = TextRule.bluesky_post()
    parts: list[str] = split_thread("long text " * 100, rule)
    try:
        rule.check("x" * 400, network="bluesky")
    except TextTooLong as exc:
        return exc.length - exc.limit
    return len(parts) + count_graphemes("👨‍👩‍👧") + utf8_to_index("é", 2)


class MySettings(AdapterSettings):
    token: SecretStr


class MyAdapter(Adapter):
    network = "myspace"
    capabilities = Capabilities(text=TextRule.code_points(500), dm_window=timedelta(hours=24))
    settings_model = MySettings

    async def open(self) -> None:
        self.auth = BearerAuth(SecretStr("t"))

    async def poll(self, cursor: str | None) -> Batch:
        return Batch(cursor=cursor)

    async def send(self, action: Reply | PrivateReply | omnichannel.Post) -> omnichannel.Sent:
        return omnichannel.Sent(idempotency_key=action.idempotency_key, ref=action_ref(action))

    async def find_sent(
        self, action: Reply | PrivateReply | omnichannel.Post
    ) -> omnichannel.Sent | None:
        return None


def action_ref(action: Reply | PrivateReply | omnichannel.Post) -> Ref:
    return Ref(network=action.network, id=action.idempotency_key)


def registry_usage() -> list[str]:
    policy = RetryPolicy()
    names = [info.network for info in omnichannel.adapters() if info.ok]
    cls: type[Adapter] = omnichannel.load_adapter("mastodon")
    return [*names, cls.network, str(policy)]


def hub_usage(adapter: Adapter) -> omnichannel.Hub:
    hub = omnichannel.Hub(adapters=[adapter], store=omnichannel.MemoryStore())

    @hub.on(MessageReceived, network="mastodon", visibility="private")
    async def triage(event: MessageReceived, ctx: omnichannel.Context) -> None:
        if "refund" in event.message.text.casefold():
            await ctx.draft("A teammate will follow up here.")
        else:
            delivery = await ctx.reply("Thanks!", hold=False)
            assert delivery.queued or delivery.held
        history: list[Message] = await ctx.history(limit=10)
        assert history is not None

    return hub


async def drafts_usage(hub: omnichannel.Hub) -> None:
    for draft in await hub.drafts.pending():
        await hub.drafts.approve(draft.id, by="agent:anna")


class _Item(BaseModel):
    id: str


def page_usage(page: list[object]) -> Batch:
    items: list[_Item] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(page):
        try:
            items.append(_Item.model_validate(raw))
        except ValidationError as exc:
            error = PayloadError.from_validation(exc, network="myspace", path=f"items.{index}")
            rejected.append(Rejected.from_error(error, raw))
    return Batch(cursor=items[-1].id if items else None, rejected=tuple(rejected))


async def stream_usage(api: ApiClient) -> list[str]:
    lines: list[str] = []
    reconnects: Reconnects = api.reconnects(limit=3)
    while len(lines) < 10:
        try:
            async with api.open_stream("GET", "/stream", read_timeout=60.0) as response:
                reconnects.connected()
                lines += [line async for line in response.aiter_lines()]
        except TransientError as exc:
            await reconnects.wait(exc)
        else:
            await reconnects.wait()
    return lines


class _TwoPlaces(Adapter):
    """An adapter declaring sources, as an author writes one."""

    async def mentions(self, cursor: str | None) -> Batch:
        return Batch(cursor=cursor)

    async def live(self, cursor: str | None) -> AsyncIterator[Batch]:
        yield Batch(cursor=cursor)

    def sources(self) -> Sequence[Source]:
        return (
            PollSource("mentions", self.mentions, interval=30.0, max_pages=10,
                       backlog=self.backlog),
            StreamSource("live", self.live, catch_up="mentions"),
        )

    def split_cursor(self, cursor: str) -> Mapping[str, str]:
        return {"mentions": cursor}


@asynccontextmanager
async def _lease(network: str, source: str) -> AsyncIterator[None]:
    yield


def sources_usage(adapter: Adapter, store: omnichannel.MemoryStore) -> omnichannel.Hub:
    lease: SourceLease = _lease
    check_sources(adapter.network, adapter.sources())
    return omnichannel.Hub(adapters=[adapter], store=store, source_lease=lease)
