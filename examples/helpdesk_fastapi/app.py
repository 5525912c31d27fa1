"""A helpdesk backend: FastAPI serves the hub's webhooks and a small JSON API for agents.

Every customer message gets a suggested answer held as a draft; agents list
conversations and drafts, then approve (optionally edited) or reject them.

    pip install -e '.[fastapi]' -e ./adapters/mastodon -e ./adapters/bluesky
    cd examples && omnichannel serve helpdesk_fastapi.app:sandbox --factory   # offline
    cd examples && omnichannel serve helpdesk_fastapi.app:main --factory      # real accounts

``sandbox`` runs on the Mastodon and Bluesky sandboxes, in memory, with a few
customers writing; ``main`` on the accounts configured in omnichannel.toml or
OMNICHANNEL_* variables, with the SQLite store that ``store =`` (or
OMNICHANNEL_STORE) names, else helpdesk.db. tests/test_examples.py runs both.

API (JSON):
    GET  /api/conversations?network=mastodon&limit=20
    GET  /api/conversations/{network}/{conversation_id}/messages
    GET  /api/drafts
    POST /api/drafts/{draft_id}/approve   {"agent": "anna", "text": "optional edit"}
    POST /api/drafts/{draft_id}/reject    {"agent": "anna", "reason": "optional"}
    POST /webhooks/{network}              the networks' webhook deliveries (hub.asgi)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from omnichannel import MessageReceived
from omnichannel.adapter import Adapter
from omnichannel.errors import ActionError, DraftNotPending, DuplicateReply
from omnichannel.hub import Context, Hub
from omnichannel.model import Message, Ref
from omnichannel.settings import adapters_from_settings, store_from_settings
from omnichannel.store import Draft, MemoryStore, Store
from omnichannel.testing import Sandbox


class MessageOut(BaseModel):
    """One message as agents see it."""

    id: str
    author: str
    text: str
    at: datetime
    private: bool
    from_us: bool

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        """Summarize a stored message."""
        return cls(
            id=message.ref.id, author=message.author.handle or message.author.ref.id,
            text=message.text, at=message.created_at, private=message.is_private,
            from_us=message.from_us,
        )


class ConversationOut(BaseModel):
    """A conversation and its latest message."""

    network: str
    id: str
    kind: str
    last: MessageOut | None


class DraftOut(BaseModel):
    """A reply waiting for an agent."""

    id: str
    network: str
    kind: str
    text: str
    note: str | None
    answering: MessageOut | None
    created_at: datetime

    @classmethod
    def of(cls, draft: Draft) -> DraftOut:
        """Summarize a stored draft."""
        action = draft.action
        answering = None if action.type == "post" else MessageOut.of(action.to)
        return cls(id=draft.id, network=action.network, kind=action.type, text=action.text,
                   note=draft.note, answering=answering, created_at=draft.created_at)


class Approve(BaseModel):
    """An agent approves a draft, optionally with edited text."""

    agent: str
    text: str | None = None


class Reject(BaseModel):
    """An agent rejects a draft."""

    agent: str
    reason: str | None = None


class Queued(BaseModel):
    """An approved draft, now in the outbox."""

    draft_id: str
    status: str
    idempotency_key: str


# --8<-- [start:hub]
def build_hub(adapters: Iterable[Adapter], store: Store) -> Hub:
    """A hub whose one handler suggests an answer to every customer message, as a draft."""
    hub = Hub(adapters=adapters, store=store)

    @hub.on(MessageReceived)
    async def suggest(event: MessageReceived, ctx: Context) -> None:
        name = event.message.author.display_name or event.message.author.handle or "there"
        await ctx.draft(f"Hi {name}, thanks for reaching out! Let me check that for you.",
                        note="suggested answer")

    return hub
# --8<-- [end:hub]


def create_app(hub: Hub, *, started: Callable[[], object] | None = None) -> FastAPI:
    """The FastAPI app: ``hub.asgi`` under ``/webhooks``, the agents' API under ``/api``.

    The app's lifespan enters the hub and runs it (listeners, dispatch,
    outbox), then calls ``started`` if given. The hub is ``app.state.hub``.
    """

    # --8<-- [start:mount]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with hub, anyio.create_task_group() as tg:
            await tg.start(hub.run)  # listeners, dispatch, outbox worker
            if started is not None:
                started()
            yield
            tg.cancel_scope.cancel()

    app = FastAPI(title="helpdesk", lifespan=lifespan)
    app.state.hub = hub
    app.mount("/webhooks", hub.asgi)
    # --8<-- [end:mount]

    @app.get("/api/conversations")
    async def conversations(network: str | None = None, limit: int = 20) -> list[ConversationOut]:
        found = []
        for conversation in await hub.store.list_conversations(network=network, limit=limit):
            messages = await hub.store.conversation_messages(conversation.ref, limit=1)
            found.append(ConversationOut(
                network=conversation.ref.network, id=conversation.ref.id, kind=conversation.kind,
                last=MessageOut.of(messages[-1]) if messages else None,
            ))
        return found

    @app.get("/api/conversations/{network}/{conversation_id:path}/messages")
    async def messages(network: str, conversation_id: str) -> list[MessageOut]:
        ref = Ref(network=network, id=conversation_id)
        if await hub.store.get_conversation(ref) is None:
            raise HTTPException(404, "no such conversation")
        return [MessageOut.of(m) for m in await hub.store.conversation_messages(ref)]

    @app.get("/api/drafts")
    async def drafts() -> list[DraftOut]:
        return [DraftOut.of(d) for d in await hub.drafts.pending()]

    @app.post("/api/drafts/{draft_id}/approve")
    async def approve(draft_id: str, body: Approve) -> Queued:
        try:
            item = await hub.drafts.approve(draft_id, by=f"agent:{body.agent}", text=body.text)
        except DraftNotPending as exc:
            raise HTTPException(404 if exc.status is None else 409, str(exc)) from None
        except DuplicateReply as exc:
            raise HTTPException(409, str(exc)) from None
        except ActionError as exc:  # too long, window closed, not supported
            raise HTTPException(422, str(exc)) from None
        return Queued(draft_id=draft_id, status=item.status, idempotency_key=item.key)

    @app.post("/api/drafts/{draft_id}/reject")
    async def reject(draft_id: str, body: Reject) -> DraftOut:
        try:
            draft = await hub.drafts.reject(draft_id, by=f"agent:{body.agent}", reason=body.reason)
        except DraftNotPending as exc:
            raise HTTPException(404 if exc.status is None else 409, str(exc)) from None
        return DraftOut.of(draft)

    return app


# --8<-- [start:main]
def main() -> FastAPI:
    """The app on the accounts configured in omnichannel.toml / OMNICHANNEL_* variables.

    The store is the SQLite file named by ``store =`` in omnichannel.toml (or
    OMNICHANNEL_STORE), as for the quick bot and ``omnichannel inbox``; else helpdesk.db.
    """
    store = store_from_settings(default="helpdesk.db")
    return create_app(build_hub(adapters_from_settings(), store))
# --8<-- [end:main]


# --8<-- [start:sandbox]
def sandbox() -> FastAPI:
    """The app offline: the Mastodon and Bluesky sandboxes, a memory store, customers writing.

    Nothing leaves the process. Three customers write on each network once the
    hub runs; approved drafts are posted to the sandboxes (``app.state.sandboxes``).
    """
    from omnichannel_bluesky import BlueskyAdapter
    from omnichannel_bluesky.sandbox import BlueskySandbox
    from omnichannel_mastodon import MastodonAdapter
    from omnichannel_mastodon.sandbox import MastodonSandbox

    mastodon, bluesky = MastodonSandbox(seed=1), BlueskySandbox(seed=1)
    sandboxes: list[Sandbox] = [mastodon, bluesky]
    adapters: list[Adapter] = [
        MastodonAdapter({**mastodon.adapter_settings(), "poll_interval": 1.0},
                        transport=mastodon.transport()),
        BlueskyAdapter({**bluesky.adapter_settings(), "poll_interval": 1.0},
                       transport=bluesky.transport()),
    ]

    def customers_write() -> None:
        for network in sandboxes:
            alice = network.customer("alice", display_name="Alice")
            network.customer_mention("where is my parcel? 📦 ordered last week", author=alice)
            network.customer_mention("the jacket arrived in the wrong colour",
                                     author=network.customer("bob", display_name="Bob"))
            network.customer_dm("can I change my delivery address?",
                                author=network.customer("carol", display_name="Carol"))

    app = create_app(build_hub(adapters, MemoryStore()), started=customers_write)
    app.state.sandboxes = sandboxes
    return app
# --8<-- [end:sandbox]
