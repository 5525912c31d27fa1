"""The Facebook and Instagram step of ``omnichannel demo``: a DM answered after 30 hours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol

import anyio

from omnichannel.actions import PrivateReply, Reply
from omnichannel.adapter import Adapter, Batch, WebhookRequest
from omnichannel.testing import DirectMessage, Sandbox

if TYPE_CHECKING:  # pragma: no cover - typing only
    from omnichannel.hub import Hub

    from .sandbox import _GraphSandbox

__all__ = ["DemoRun", "DemoStep", "demo_steps"]

LATE = timedelta(hours=30)
"""How long before the demo the late customer wrote: past 24 hours, inside 7 days."""

_WAIT = 20.0


class DemoRun(Protocol):
    """What ``omnichannel demo`` hands a network's own scripted step.

    Attributes:
        hub: The running hub (its store, drafts and outbox).
        adapter: The hub's adapter for the sandbox.
    """

    @property
    def hub(self) -> Hub: ...

    @property
    def adapter(self) -> Adapter: ...

    def line(self, mark: str, text: str) -> None:
        """Print a progress line (``"**"`` for a scripted step)."""

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        """Record one scripted expectation for the summary."""


DemoStep = Callable[[DemoRun], Awaitable[None]]
"""One scripted step ``omnichannel demo`` runs after its common script."""


def demo_steps(sandbox: Sandbox) -> tuple[DemoStep, ...]:
    """The steps ``omnichannel demo`` adds for Facebook and Instagram.

    Called before the demo builds the adapter, so the app it builds has the
    Human Agent permission (`human_agent_permission`, and ``human_agent`` in
    the adapter's settings). The step: a customer's DM from 30 hours ago is
    delivered late by a webhook; the bot's automated answer is refused for the
    24-hour window (`WindowClosed`, before any request) and held as a draft;
    an agent edits and approves it, and it goes out tagged ``HUMAN_AGENT``.
    """
    from .sandbox import _GraphSandbox

    if not isinstance(sandbox, _GraphSandbox):
        return ()
    sandbox.human_agent_permission = True
    return (partial(_late_dm, sandbox),)


async def _late_dm(sandbox: _GraphSandbox, run: DemoRun) -> None:
    hub, network = run.hub, sandbox.network
    customer = sandbox.customer("ivan", display_name="Ivan")
    record = sandbox.customer_dm(
        "Hello, I wrote yesterday morning: can the parcel go to my office instead?",
        author=customer,
    )
    if not isinstance(record, DirectMessage):  # pragma: no cover - Meta DMs are messages
        raise TypeError("a Meta sandbox DM is a DirectMessage")
    record.created_at -= LATE  # written 30 hours ago, while nobody answered
    run.line("**", "a DM from 30 hours ago is delivered late by a webhook")
    delivered = 0
    for d in sandbox.webhook_deliveries():
        if record.id.encode() not in d.body:
            continue
        request = WebhookRequest(method=d.method, path=d.path, query=d.query,
                                 headers=d.headers, body=d.body)
        await run.adapter.verify(request)
        parsed = run.adapter.parse(request)
        events = parsed.events if isinstance(parsed, Batch) else parsed
        delivered += len(await hub.ingest(network, events))
    draft = None
    with anyio.move_on_after(_WAIT):
        while draft is None:
            draft = next((x for x in await hub.store.list_drafts(status="pending")
                          if isinstance(x.action, Reply | PrivateReply)
                          and x.action.to.ref.id == record.id), None)
            if draft is None:
                await anyio.sleep(0.05)
    queued = [i for i in await hub.store.list_outbox(limit=100_000)
              if isinstance(i.action, Reply | PrivateReply) and i.action.to.ref.id == record.id]
    ours = [m for m in sandbox.world.conversations[record.conversation_id].messages
            if m.sender_id == sandbox.our_account.id]
    run.check("a DM 30 hours old: the automated answer is refused (WindowClosed) "
              "and drafted for a human",
              delivered == 1 and draft is not None and draft.note == "window closed"
              and not queued and not ours,
              f"{delivered} delivered, draft {draft.note if draft else None!r}, "
              f"{len(queued)} queued, {len(ours)} sent")
    if draft is None:
        return
    run.line("**", "the bot's answer was refused for the 24-hour window (WindowClosed); "
                   "anna edits its draft and approves it")
    item = await hub.drafts.approve(
        draft.id, by="agent:anna",
        text="Hi Ivan, Anna here. Sorry for the wait: yes, it's now going to your office.")
    status: str = item.status
    with anyio.move_on_after(_WAIT):
        while status not in ("sent", "failed"):
            await anyio.sleep(0.05)
            current = await hub.store.get_outbox(item.key)
            status = current.status if current is not None else "missing"
    tags = [m.extra.get("tag") for m in sandbox.world.conversations[record.conversation_id]
            .messages if m.sender_id == sandbox.our_account.id]
    run.check("an agent answers it after 30 hours, tagged HUMAN_AGENT",
              status == "sent" and tags == ["HUMAN_AGENT"],
              f"outbox {status}, sent tags {tags}")
