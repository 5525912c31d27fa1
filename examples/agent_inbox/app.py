"""The agent inbox app: Starlette, Jinja2 templates (autoescaped), a little plain JavaScript.

    pip install -e '.[inbox]' -e ./adapters/mastodon -e ./adapters/bluesky
    python -m examples.agent_inbox --sandbox        # sandboxes, scripted customers writing
    python -m examples.agent_inbox                  # accounts from omnichannel.toml

Agents come from ``OMNICHANNEL_INBOX_AGENTS`` (``name=scrypt$...;name2=scrypt$...``);
``--sandbox`` without it signs in ``anna`` and ``ben`` with the password ``demo``.
Live updates go out as server-sent events on ``/events``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from omnichannel import MessageReceived
from omnichannel.actions import PrivateReply, Reply
from omnichannel.adapter import Adapter
from omnichannel.errors import ActionError, ConversationClaimed, DraftNotPending
from omnichannel.helpdesk import CannedReply, SlaPolicy, SlaTargets, Workflow
from omnichannel.hub import Context, Hub
from omnichannel.model import Ref
from omnichannel.store import ConversationState, MemoryStore, OutboxItem, Store
from omnichannel.testing import VirtualClock

from .auth import Sessions, check_password, hash_password

HERE = Path(__file__).parent
COOKIE = "inbox_session"
PRE = "inbox_pre"

CANNED = [
    CannedReply(name="parcel", text="Hi {name}, sorry for the wait! Your parcel is on its way; "
                "I've sent the tracking link by private message. 📦",
                variants={"bluesky": "Hi {name}, sorry for the wait! Your parcel is on its "
                                     "way 📦"}),
    CannedReply(name="dm", text="Hi {name}, could you send us your order number privately? "
                "We'll sort it out there."),
]
SLA = SlaPolicy(targets={
    "high": SlaTargets(first_response=timedelta(minutes=30)),
    "normal": SlaTargets(first_response=timedelta(hours=4)),
    "low": SlaTargets(first_response=timedelta(hours=24)),
})


@dataclass
class Inbox:
    """What the app runs on: the hub, its workflow, the agents and their sessions."""

    hub: Hub
    workflow: Workflow
    agents: Mapping[str, str]  # agent id -> scrypt hash
    sessions: Sessions = field(default_factory=Sessions)
    canned: list[CannedReply] = field(default_factory=lambda: list(CANNED))
    version: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def bump(self) -> None:
        """Tell every open page that something changed."""
        self.version += 1
        self.changed.set()
        self.changed = anyio.Event()

    def adapter(self, network: str) -> Adapter:
        """The adapter for ``network``."""
        return self.hub.adapters[network]


# --8<-- [start:hub]
def build_hub(adapters: Iterable[Adapter], store: Store) -> tuple[Hub, Workflow]:
    """A hub whose handler suggests an answer to every customer message, held as a draft."""
    hub = Hub(adapters=adapters, store=store)
    workflow = Workflow(store, sla=SLA)
    hub.use(workflow.middleware)

    @hub.on(MessageReceived)
    async def suggest(event: MessageReceived, ctx: Context) -> None:
        name = event.message.author.display_name or event.message.author.handle or "there"
        await ctx.draft(f"Hi {name}, thanks for writing! Let me check that for you.",
                        note="suggested answer")

    return hub, workflow
# --8<-- [end:hub]


def _label(ref: Ref) -> str:
    return f"{ref.network}:{ref.id}"


def _sla(state: ConversationState, now: datetime) -> str:
    due = state.next_due()
    if due is None or state.waiting_since is None:
        return "ok"
    warn = min((d["warn_at"] for d in state.due.values() if d.get("warn_at")), default=due)
    return "breached" if now >= due else "warning" if now >= warn else "ok"


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["when"] = lambda at: at.astimezone(UTC).strftime("%d %b %H:%M") if at else "—"
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


def create_app(inbox: Inbox, *, run_hub: bool = True,
               started: Callable[[], Coroutine[Any, Any, None]] | None = None) -> Starlette:
    """The Starlette app; its lifespan runs the hub and watches the store for changes."""
    env = _templates()
    hub, workflow = inbox.hub, inbox.workflow

    async def fingerprint() -> tuple[Any, ...]:
        states = await workflow.queue(status=None, limit=500)
        drafts = await hub.drafts.pending(limit=500)
        outbox = await hub.store.list_outbox(limit=500)
        now = workflow.clock()  # an SLA warning or breach is a change too
        return (tuple((_label(s.conversation), s.version, _sla(s, now)) for s in states),
                tuple(d.id for d in drafts), tuple((o.key, o.status) for o in outbox))

    async def watch() -> None:
        seen: tuple[Any, ...] = ()
        while True:
            now = await fingerprint()
            if now != seen:
                seen = now
                inbox.bump()
            await anyio.sleep(0.3)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if run_hub:
                await hub.__aenter__()
                await tg.start(hub.run)
            tg.start_soon(watch)
            if started is not None:
                tg.start_soon(started)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        if run_hub:
            await hub.__aexit__(None, None, None)

    def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        cookie = request.cookies.get(COOKIE) or request.cookies.get(PRE) or ""
        values.setdefault("agent", inbox.sessions.agent(request.cookies.get(COOKIE)))
        html = env.get_template(name).render(csrf=inbox.sessions.csrf(cookie) if cookie else "",
                                             request=request, **values)
        return HTMLResponse(html, status_code=status)

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode()
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

    async def agent_and_form(request: Request) -> tuple[str, dict[str, str]] | Response:
        agent = inbox.sessions.agent(request.cookies.get(COOKIE))
        if agent is None:
            return PlainTextResponse("sign in first", status_code=401)
        data = await form(request)
        token = data.get("csrf") or request.headers.get("x-csrf-token")
        if not inbox.sessions.csrf_ok(request.cookies.get(COOKIE), token):
            return PlainTextResponse("the form's CSRF token is missing or wrong", status_code=403)
        return agent, data

    def signed_in(request: Request) -> str | None:
        return inbox.sessions.agent(request.cookies.get(COOKIE))

    async def login_page(request: Request) -> Response:
        return render_with_pre(request, secrets.token_hex(16))

    def render_with_pre(request: Request, pre: str, error: str | None = None) -> Response:
        html = env.get_template("login.html").render(csrf=inbox.sessions.csrf(pre), agent=None,
                                                     error=error, request=request)
        response = HTMLResponse(html, status_code=401 if error else 200)
        response.set_cookie(PRE, pre, httponly=True, samesite="strict")
        return response

    async def login(request: Request) -> Response:
        data = await form(request)
        pre = request.cookies.get(PRE)
        if not inbox.sessions.csrf_ok(pre, data.get("csrf")):
            return PlainTextResponse("the form's CSRF token is missing or wrong", status_code=403)
        name = data.get("agent", "")
        stored = inbox.agents.get(name)
        if stored is None or not check_password(data.get("password", ""), stored):
            return render_with_pre(request, pre or secrets.token_hex(16),
                                   error="Unknown agent or wrong password.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, inbox.sessions.issue(name), httponly=True, samesite="strict")
        return response

    async def logout(request: Request) -> Response:
        checked = await agent_and_form(request)
        if isinstance(checked, Response):
            return checked
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def queue_rows(request: Request) -> list[dict[str, Any]]:
        params = request.query_params
        status = params.get("status") or "open"
        states = await workflow.queue(
            status=None if status == "all" else [status],  # type: ignore[list-item]
            network=params.get("network") or None, assignee=params.get("assignee") or None,
        )
        tag = params.get("tag")
        if tag:
            states = [s for s in states if tag in s.tags]
        query = params.get("q", "").strip()
        if query:
            hits = {_label(m.conversation) for m in await hub.store.search(query, limit=100)}
            states = [s for s in states if _label(s.conversation) in hits]
        now = workflow.clock()
        rows = []
        for state in states:
            messages = await hub.store.conversation_messages(state.conversation, limit=20)
            last = messages[-1] if messages else None
            customer = next((m.author for m in messages if not m.from_us), None)
            rows.append({"state": state, "last": last, "customer": customer,
                         "sla": _sla(state, now), "holder": state.holder(now),
                         "private": bool(last and last.is_private)})
        return rows

    def queue_context(request: Request) -> dict[str, Any]:
        params = request.query_params
        return {"filters": {k: params.get(k, "") for k in ("network", "status", "assignee",
                                                           "tag", "q")},
                "networks": sorted(hub.adapters), "query": urlencode(dict(params))}

    async def home(request: Request) -> Response:
        if signed_in(request) is None:
            return RedirectResponse("/login", status_code=303)
        return render(request, "inbox.html", rows=await queue_rows(request), current=None,
                      **queue_context(request))

    async def queue_part(request: Request) -> Response:
        if signed_in(request) is None:
            return PlainTextResponse("sign in first", status_code=401)
        return render(request, "_queue.html", rows=await queue_rows(request), current=None)

    async def thread_values(ref: Ref, agent: str) -> dict[str, Any]:
        messages = await hub.store.conversation_messages(ref, limit=200)
        state = await workflow.state(ref)
        now = workflow.clock()
        key = _label(ref)
        drafts = [d for d in await hub.drafts.pending(limit=500)
                  if d.action.type != "post" and _label(d.action.to.conversation) == key]
        sent = [o for o in await hub.store.list_outbox(limit=500) if _about(o, key)]
        customer = next((m.author for m in messages if not m.from_us), None)
        earlier = []
        if customer is not None:
            local = (customer.handle or "").split("@")[0].split(".")[0].lower()
            for other in await workflow.queue(status=None, limit=500):
                if _label(other.conversation) == key:
                    continue
                theirs = await hub.store.conversation_messages(other.conversation, limit=5)
                first = next((m for m in theirs if not m.from_us), None)
                handle = (first.author.handle or "").split("@")[0].split(".")[0].lower() \
                    if first else ""
                if first and (first.author.ref == customer.ref or (local and handle == local)):
                    earlier.append({"state": other, "first": first})
        adapter = inbox.adapter(ref.network)
        private = bool(messages and messages[-1].is_private)
        rule = adapter.capabilities.dm_text if private and adapter.capabilities.dm_text \
            else adapter.capabilities.text
        return {"ref": ref, "messages": messages, "state": state, "drafts": drafts, "sent": sent,
                "customer": customer, "earlier": earlier, "holder": state.holder(now),
                "private": private, "rule": rule, "me": agent, "sla": _sla(state, now)}

    async def conversation(request: Request) -> Response:
        agent = signed_in(request)
        if agent is None:
            return RedirectResponse("/login", status_code=303)
        ref = Ref(network=request.path_params["network"], id=request.path_params["cid"])
        if ref.network not in hub.adapters or await hub.store.get_conversation(ref) is None:
            return render(request, "error.html", status=404, message="No such conversation.")
        values = await thread_values(ref, agent)
        return render(request, "inbox.html", rows=await queue_rows(request), current=ref,
                      notice=request.query_params.get("notice"),
                      error=request.query_params.get("error"), canned=inbox.canned,
                      **values, **queue_context(request))

    async def thread_part(request: Request) -> Response:
        agent = signed_in(request)
        if agent is None:
            return PlainTextResponse("sign in first", status_code=401)
        ref = Ref(network=request.path_params["network"], id=request.path_params["cid"])
        return render(request, "_thread.html", **await thread_values(ref, agent))

    def back(ref: Ref, **message: str) -> RedirectResponse:
        return RedirectResponse(f"/c/{quote(ref.network)}/{quote(ref.id, safe='')}?"
                                f"{urlencode(message)}", status_code=303)

    async def reply(request: Request) -> Response:
        checked = await agent_and_form(request)
        if isinstance(checked, Response):
            return checked
        agent, data = checked
        ref = Ref(network=request.path_params["network"], id=request.path_params["cid"])
        messages = await hub.store.conversation_messages(ref, limit=200)
        to = next((m for m in reversed(messages) if not m.from_us), None)
        text = data.get("text", "").strip()
        if to is None or not text:
            return back(ref, error="Write a reply first.")
        mode = data.get("mode", "public")
        try:
            if mode == "private" and not to.is_private:
                await workflow.hand_off(hub, to, public=data.get("public_line") or
                                        "We've sent you a private message 💬",
                                        private=text, agent=agent)
                done = "Moved to a private conversation; both replies are queued."
            elif mode == "private" or to.is_private:
                await workflow.answer(hub, PrivateReply(network=to.network, to=to, text=text)
                                      if not to.is_private else
                                      Reply(network=to.network, to=to, text=text), agent=agent)
                done = "Private reply queued."
            else:
                await workflow.answer(hub, Reply(network=to.network, to=to, text=text,
                                                 visibility="public"), agent=agent)
                done = "Public reply queued."
        except ConversationClaimed as exc:
            return back(ref, error=f"Not sent: {exc.holder} is working on this conversation.")
        except ActionError as exc:
            return back(ref, error=f"Not sent: {exc}")
        inbox.bump()
        return back(ref, notice=done)

    async def claim(request: Request) -> Response:
        checked = await agent_and_form(request)
        if isinstance(checked, Response):
            return checked
        agent, data = checked
        ref = Ref(network=request.path_params["network"], id=request.path_params["cid"])
        activity: Literal["viewing", "typing"] = (
            "typing" if data.get("activity") == "typing" else "viewing")
        try:
            state = await workflow.claim(ref, agent, activity=activity,
                                         ttl=timedelta(seconds=45))
        except ConversationClaimed as exc:
            return JSONResponse({"holder": exc.holder, "mine": False}, status_code=409)
        return JSONResponse({"holder": state.claimed_by, "mine": True})

    async def decide(request: Request) -> Response:
        checked = await agent_and_form(request)
        if isinstance(checked, Response):
            return checked
        agent, data = checked
        draft = await hub.drafts.get(request.path_params["draft_id"])
        if draft is None or draft.action.type == "post":
            return render(request, "error.html", status=404, message="No such draft.")
        ref = draft.action.to.conversation
        state = await workflow.state(ref)
        holder = state.holder(workflow.clock())
        if holder is not None and holder != agent:
            return back(ref, error=f"Not sent: {holder} is working on this conversation.")
        try:
            if request.path_params["decision"] == "approve":
                await hub.drafts.approve(draft.id, by=f"agent:{agent}",
                                         text=data.get("text") or None)
                await workflow.we_answered(ref, by=f"agent:{agent}", release=agent)
                done = "Draft approved and queued."
            else:
                await hub.drafts.reject(draft.id, by=f"agent:{agent}",
                                        reason=data.get("reason") or None)
                done = "Draft rejected."
        except (DraftNotPending, ActionError) as exc:
            return back(ref, error=f"Not done: {exc}")
        inbox.bump()
        return back(ref, notice=done)

    async def count(request: Request) -> Response:
        checked = await agent_and_form(request)
        if isinstance(checked, Response):
            return checked
        _, data = checked
        adapter = hub.adapters.get(data.get("network", ""))
        if adapter is None:
            return JSONResponse({"error": "unknown network"}, status_code=404)
        caps = adapter.capabilities
        rule = caps.dm_text if data.get("private") == "1" and caps.dm_text else caps.text
        text = data.get("text", "")
        return JSONResponse({"count": rule.count(text), "limit": rule.limit,
                             "unit": str(rule.unit)})

    async def canned_text(request: Request) -> Response:
        if signed_in(request) is None:
            return PlainTextResponse("sign in first", status_code=401)
        params = request.query_params
        chosen = next((c for c in inbox.canned if c.name == params.get("name")), None)
        if chosen is None:
            return PlainTextResponse("no such canned reply", status_code=404)
        text = chosen.render(params.get("network", ""), private=params.get("private") == "1",
                             name=params.get("customer") or "there")
        return PlainTextResponse(text)

    async def events(request: Request) -> Response:
        if signed_in(request) is None:
            return PlainTextResponse("sign in first", status_code=401)

        async def stream() -> AsyncIterator[str]:
            yield f"event: changed\ndata: {json.dumps({'version': inbox.version})}\n\n"
            while True:
                with anyio.move_on_after(15):
                    await inbox.changed.wait()
                    yield f"event: changed\ndata: {json.dumps({'version': inbox.version})}\n\n"
                    continue
                yield ": still here\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    conv = "/c/{network}/{cid:path}"
    routes = [
        Route("/", home), Route("/login", login_page), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]), Route("/events", events),
        Route("/part/queue", queue_part), Route("/part/thread/{network}/{cid:path}", thread_part),
        Route("/canned", canned_text), Route("/count", count, methods=["POST"]),
        Route("/claim/{network}/{cid:path}", claim, methods=["POST"]),
        Route("/reply/{network}/{cid:path}", reply, methods=["POST"]),
        Route("/drafts/{draft_id}/{decision:str}", decide, methods=["POST"]),
        Route(conv, conversation),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.inbox = inbox
    return app


def _about(item: OutboxItem, key: str) -> bool:
    action = item.action
    return isinstance(action, Reply | PrivateReply) and _label(action.to.conversation) == key


# Scripted customers -------------------------------------------------------------------------

SCRIPT = [
    ("alice", "Alice", "mention", "where is my parcel? 📦 ordered last week"),
    ("bob", "Bob", "mention", "the jacket arrived in the wrong colour 🙄 thanks for nothing"),
    ("carol", "Carol", "dm", "can I change my delivery address?"),
    ("mallory", "Mallory", "mention", "<script>alert('hi')</script> is this escaped?"),
    ("alice", "Alice", "dm", "also, can I get a refund for the shipping?"),
]


def sandbox_inbox(*, agents: Mapping[str, str] | None = None) -> tuple[Inbox, list[Any]]:
    """An inbox on the Mastodon and Bluesky sandboxes and a memory store; nothing leaves."""
    from omnichannel_bluesky import BlueskyAdapter
    from omnichannel_bluesky.sandbox import BlueskySandbox
    from omnichannel_mastodon import MastodonAdapter
    from omnichannel_mastodon.sandbox import MastodonSandbox

    # The sandboxes' clocks start at the wall clock's time, so the SLA timers mean something.
    mastodon = MastodonSandbox(seed=1, clock=VirtualClock(datetime.now(UTC)))
    bluesky = BlueskySandbox(seed=1, clock=VirtualClock(datetime.now(UTC)))
    adapters: list[Adapter] = [
        MastodonAdapter({**mastodon.adapter_settings(), "poll_interval": 0.5},
                        transport=mastodon.transport()),
        BlueskyAdapter({**bluesky.adapter_settings(), "poll_interval": 0.5},
                       transport=bluesky.transport()),
    ]
    hub, workflow = build_hub(adapters, MemoryStore())
    if agents is None:
        demo = hash_password("demo")
        agents = {"anna": demo, "ben": demo}
    return Inbox(hub=hub, workflow=workflow, agents=agents), [mastodon, bluesky]


def customers_write(
    sandboxes: list[Any], *, pause: float = 4.0
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Scripted customers writing on every sandbox, one message each ``pause`` seconds."""

    async def run() -> None:
        for index, (handle, name, kind, text) in enumerate(SCRIPT * 50):
            sandbox = sandboxes[index % len(sandboxes)]
            now = datetime.now(UTC)
            if now > sandbox.clock.peek():
                sandbox.clock.set(now)
            author = sandbox.customer(handle, display_name=name)
            if kind == "dm":
                sandbox.customer_dm(text, author=author)
            else:
                sandbox.customer_mention(text, author=author)
            await anyio.sleep(pause)

    return run


def agents_from_env() -> dict[str, str]:
    """Agents from ``OMNICHANNEL_INBOX_AGENTS``: ``name=scrypt$...;name2=scrypt$...``."""
    raw = os.environ.get("OMNICHANNEL_INBOX_AGENTS", "")
    pairs = (part.split("=", 1) for part in raw.split(";") if "=" in part)
    return {name.strip(): stored.strip() for name, stored in pairs}


def cli(argv: list[str] | None = None) -> None:
    """``python -m examples.agent_inbox [--sandbox] [--port N] [--hash-password]``."""
    parser = argparse.ArgumentParser(prog="python -m examples.agent_inbox")
    parser.add_argument("--sandbox", action="store_true", help="run on the sandboxes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password and print its stored form")
    args = parser.parse_args(argv)
    if args.hash_password:
        import getpass

        print(hash_password(getpass.getpass("password: ")))
        return
    import uvicorn

    agents = agents_from_env()
    if args.sandbox:
        inbox, sandboxes = sandbox_inbox(agents=agents or None)
        app = create_app(inbox, started=customers_write(sandboxes))
        print(f"agent inbox on http://{args.host}:{args.port}/ (sandbox: anna / demo)")
    else:
        from omnichannel.settings import adapters_from_settings, store_from_settings

        if not agents:
            parser.error("set OMNICHANNEL_INBOX_AGENTS (see --hash-password)")
        hub, workflow = build_hub(adapters_from_settings(),
                                  store_from_settings(default="helpdesk.db"))
        app = create_app(Inbox(hub=hub, workflow=workflow, agents=agents))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
