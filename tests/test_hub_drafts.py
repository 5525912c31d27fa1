"""Humans in the loop: drafts, approval, rejection, reply policy and the copy-paste guardrail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.runtime_adapter import (
    FakeClock,
    FakeNetwork,
    RuntimeAdapter,
    adapter_for,
    eventually,
    received,
    running,
)

from omnichannel.actions import PrivateReply, Reply
from omnichannel.adapter import WebhookRequest
from omnichannel.errors import DraftNotPending, DuplicateReply, TextTooLong
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Delivery, Hub
from omnichannel.model import Message
from omnichannel.policy import (
    AutoReplyCaps,
    AutoSend,
    Decision,
    HoldPublic,
    hold_when,
    normalize_text,
)
from omnichannel.store import Draft, MemoryStore


def make_hub(fake: FakeNetwork, **options: object) -> Hub:
    """A hub over a memory store and one testnet adapter."""
    return Hub(adapters=[adapter_for(fake)], store=MemoryStore(), **options)  # type: ignore[arg-type]


def collect_drafts(hub: Hub) -> list[Delivery]:
    """Register a handler that drafts one reply per message; return where its outcomes go."""
    outcomes: list[Delivery] = []

    @hub.on(MessageReceived)
    async def propose(event: MessageReceived, ctx: Context) -> None:
        outcomes.append(await ctx.draft(f"Sorry to hear about {event.message.text}."))

    return outcomes


async def test_approved_draft_is_sent_with_the_edit_and_audited() -> None:
    """Approving a draft with edited text sends the edit once and audits sender and approver."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    outcomes = collect_drafts(hub)
    async with running(hub):
        fake.customer_says("the broken zip", author="carol")
        await eventually(lambda: len(outcomes) == 1)
        [draft] = await hub.drafts.pending()
        assert outcomes[0].held
        assert outcomes[0].draft == draft
        item = await hub.drafts.approve(
            draft.id, by="agent:anna", text="So sorry about the zip, a new one is on its way."
        )
        assert item.approved_by == "agent:anna"
        await eventually(lambda: len(fake.posted) == 1)
        await eventually(lambda: _audited(hub))
        audit = await hub.store.audit_log()
        assert await hub.drafts.pending() == []
        decided = await hub.drafts.get(draft.id)

    assert fake.posted[0]["text"] == "So sorry about the zip, a new one is on its way."
    assert decided is not None
    assert decided.status == "approved"
    assert decided.decided_by == "agent:anna"
    assert draft.origin is not None
    assert draft.origin.startswith("handler:")
    assert draft.origin.endswith(".propose")
    assert item.origin == draft.origin
    [entry] = audit
    assert entry.approved_by == "agent:anna"
    assert entry.actor == draft.origin
    assert entry.result_ref == f"testnet:{fake.posted[0]['id']}"


async def _audited(hub: Hub) -> bool:
    return len(await hub.store.audit_log()) == 1


async def test_reply_held_by_policy_is_audited_as_its_handler() -> None:
    """A reply the policy holds remembers its handler, which the audit names once approved."""
    fake = FakeNetwork()
    hub = make_hub(fake)  # HoldPublic: public replies wait for a human

    @hub.on(MessageReceived)
    async def answer(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("Sorry about that, we are on it.")

    async with running(hub):
        fake.customer_says("my parcel is late", author="dave")
        await eventually(lambda: _pending_count(hub, 1))
        [draft] = await hub.drafts.pending()
        await hub.drafts.approve(draft.id, by="agent:ben")
        await eventually(lambda: _audited(hub))
        [entry] = await hub.store.audit_log()

    assert draft.origin is not None
    assert draft.origin.endswith(".answer")
    assert (entry.actor, entry.approved_by) == (draft.origin, "agent:ben")


async def test_draft_without_origin_is_attributed_to_the_draft() -> None:
    """Approving a draft stored without an origin queues it as ``draft:<id>``, approved by `by`."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    async with hub:
        adapter = hub.adapters["testnet"]
        assert isinstance(adapter, RuntimeAdapter)
        action = Reply(network="testnet", to=received(fake, adapter), text="We are looking.")
        draft = Draft(action=action)
        await hub.store.add_draft(draft)
        item = await hub.drafts.approve(draft.id, by="agent:anna")
    assert (item.origin, item.approved_by) == (f"draft:{draft.id}", "agent:anna")


async def test_rejected_draft_is_never_sent_and_cannot_be_approved() -> None:
    """A rejected draft sends nothing, is audited, and approving it afterwards raises."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    outcomes = collect_drafts(hub)
    async with running(hub):
        fake.customer_says("a rude remark")
        await eventually(lambda: len(outcomes) == 1)
        [draft] = await hub.drafts.pending()
        rejected = await hub.drafts.reject(draft.id, by="agent:ben", reason="tone")
        with pytest.raises(DraftNotPending) as info:
            await hub.drafts.approve(draft.id, by="agent:anna")
        with pytest.raises(DraftNotPending) as unknown:
            await hub.drafts.reject("no-such-draft", by="agent:ben")
        await hub.outbox.run_once()
        audit = await hub.store.audit_log()
        outbox = await hub.store.list_outbox()

    assert rejected.status == "rejected"
    assert rejected.reason == "tone"
    assert info.value.status == "rejected"
    assert unknown.value.status is None
    assert fake.posted == []
    assert outbox == []
    assert [(e.actor, e.detail) for e in audit] == [
        ("agent:ben", f"draft {draft.id} rejected: tone")
    ]


async def test_approval_checks_the_edited_text_again() -> None:
    """An edit over the network's limit is refused and the draft stays pending."""
    fake = FakeNetwork()
    hub = make_hub(fake)
    outcomes = collect_drafts(hub)
    async with running(hub):
        fake.customer_says("a long story")
        await eventually(lambda: len(outcomes) == 1)
        [draft] = await hub.drafts.pending()
        with pytest.raises(TextTooLong):
            await hub.drafts.approve(draft.id, by="agent:anna", text="x" * 281)
        assert [d.id for d in await hub.drafts.pending()] == [draft.id]
        assert await hub.store.list_outbox() == []


async def test_same_text_to_two_customers_is_refused_unless_allowed() -> None:
    """The guardrail refuses a copy-pasted reply to another customer; allow_duplicate overrides."""
    fake = FakeNetwork()
    hub = make_hub(fake, policy=AutoSend())
    results: list[tuple[str, str]] = []

    @hub.on(MessageReceived)
    async def canned(event: MessageReceived, ctx: Context) -> None:
        author = event.message.author.handle or "?"
        text = f"@{author}  Thanks for reaching out, we will look into it."
        try:
            await ctx.reply(text, allow_duplicate=author == "carol")
            results.append((author, "queued"))
        except DuplicateReply as exc:
            results.append((author, f"refused (already sent to {exc.previous_recipient})"))

    async with running(hub):
        fake.customer_says("my order", author="alice")
        await eventually(lambda: len(results) == 1)
        fake.customer_says("still waiting", author="alice")
        await eventually(lambda: len(results) == 2)
        fake.customer_says("my parcel", author="bob")
        await eventually(lambda: len(results) == 3)
        fake.customer_says("my refund", author="carol")
        await eventually(lambda: len(results) == 4)
        await eventually(lambda: len(fake.posted) == 3)

    assert results == [
        ("alice", "queued"),
        ("alice", "queued"),
        ("bob", "refused (already sent to u-alice)"),
        ("carol", "queued"),
    ]
    assert {p["text"] for p in fake.posted} == {
        "@alice  Thanks for reaching out, we will look into it.",
        "@carol  Thanks for reaching out, we will look into it.",
    }


async def test_guardrail_window_expires() -> None:
    """Outside the guardrail window the same text may go to another customer."""
    fake = FakeNetwork()
    clock = FakeClock()
    hub = make_hub(fake, policy=AutoSend(), clock=clock, copy_paste_window=timedelta(hours=1))
    text = "Thanks for reaching out, we will look into it."
    async with hub:
        adapter = hub.adapters["testnet"]
        assert isinstance(adapter, RuntimeAdapter)
        first = received(fake, adapter, author="alice")
        second = received(fake, adapter, author="bob")
        await hub.send(Reply(network="testnet", to=first, text=text), by="agent:anna")
        with pytest.raises(DuplicateReply):
            await hub.send(Reply(network="testnet", to=second, text=text.upper()), by="agent:anna")
        clock.advance(3601)
        item = await hub.send(Reply(network="testnet", to=second, text=text), by="agent:anna")
    assert item.origin == "agent:anna"


async def test_approving_a_copy_pasted_draft_is_refused() -> None:
    """Two drafts with the same text: approving the second for another customer raises."""
    fake = FakeNetwork()
    hub = make_hub(fake)

    @hub.on(MessageReceived)
    async def propose(event: MessageReceived, ctx: Context) -> None:
        await ctx.draft("We are sorry, please send us your order number.")

    async with running(hub):
        fake.customer_says("help", author="alice")
        fake.customer_says("help!", author="bob")
        await eventually(lambda: _pending_count(hub, 2))
        first, second = await hub.drafts.pending()
        await hub.drafts.approve(first.id, by="agent:anna")
        with pytest.raises(DuplicateReply):
            await hub.drafts.approve(second.id, by="agent:anna")
        await hub.drafts.approve(second.id, by="agent:anna", allow_duplicate=True)
        await eventually(lambda: len(fake.posted) == 2)


async def _pending_count(hub: Hub, count: int) -> bool:
    return len(await hub.drafts.pending()) == count


def test_normalize_text_ignores_mentions_case_and_spacing() -> None:
    """Mentions, letter case and runs of white space do not make a text different."""
    assert normalize_text("@alice Thanks  for\nWAITING!") == normalize_text(
        "@bob@mastodon.example thanks for waiting!"
    )
    assert normalize_text("@anna.bsky.social hi there") == "hi there"
    assert normalize_text("mail me at help@example.com") == "mail me at help@example.com"


def test_policies_decide_send_or_hold() -> None:
    """HoldPublic holds public replies, sends private ones; hold_when holds on its predicate."""
    fake = FakeNetwork()
    public = Message.model_validate(_message(fake, "public"))
    private = Message.model_validate(_message(fake, "private"))
    reply_public = Reply(network="testnet", to=public, text="hi")
    reply_private = Reply(network="testnet", to=private, text="hi")
    assert HoldPublic().decide(None, reply_public).verdict == "hold"
    assert HoldPublic().decide(None, reply_private).verdict == "send"
    assert AutoSend().decide(None, reply_public) == Decision.send("auto-send")
    careful = hold_when(lambda event, action: "refund" in action.text, reason="money")
    assert careful.decide(None, reply_public.model_copy(update={"text": "refund"})) == (
        Decision.hold("money")
    )
    assert careful.decide(None, reply_public).verdict == "send"


def _message(fake: FakeNetwork, visibility: str) -> dict[str, object]:
    item = fake.message_item("x", visibility=visibility)
    return {
        "ref": {"network": "testnet", "id": item["id"]},
        "conversation": {"network": "testnet", "id": item["conversation"]},
        "author": {"ref": {"network": "testnet", "id": item["author"]["id"]}},
        "text": item["text"],
        "created_at": item["created_at"],
        "visibility": visibility,
    }


async def test_guardrail_holds_when_customers_write_at_the_same_moment() -> None:
    """Concurrent handlers cannot all pass the copy-paste check: one canned reply is queued."""
    fake = FakeNetwork()
    hub = make_hub(fake, policy=AutoSend(), max_concurrency=16)
    results: list[str] = []

    @hub.on(MessageReceived)
    async def canned(event: MessageReceived, ctx: Context) -> None:
        try:
            await ctx.reply("Thanks for reaching out, we will look into it.")
            results.append("queued")
        except DuplicateReply:
            results.append("refused")

    async with running(hub):
        for author in ("alice", "bob", "carol", "dave"):
            fake.customer_says(f"help, it's {author}", author=author)
        await eventually(lambda: len(results) == 4)
        await eventually(lambda: len(fake.posted) == 1)
    assert sorted(results) == ["queued", "refused", "refused", "refused"]
    assert len(fake.posted) == 1


def test_default_policies_hold_every_reply_to_a_backfilled_event() -> None:
    """HoldPublic, AutoSend and hold_when draft replies to history, private ones included."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    item = fake.customer_says("an old DM", visibility="private")
    [live] = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
    old = live.model_copy(update={"backfilled": True})
    assert isinstance(live, MessageReceived)
    private = PrivateReply(network="testnet", to=live.message, text="Thanks for writing")
    public = Reply(network="testnet", to=live.message, text="Thanks", visibility="public")
    never = hold_when(lambda event, action: False)
    for policy in (HoldPublic(), AutoSend(), never):
        assert policy.decide(old, private).held, policy
        assert policy.decide(old, public).held, policy
        assert "backfilled" in policy.decide(old, private).reason
    assert not HoldPublic().decide(live, private).held
    assert not AutoSend().decide(live, public).held
    assert not never.decide(live, public).held


def test_default_policies_hold_replies_to_automated_accounts() -> None:
    """A message from an account the network marks automated: no bot answers it on its own."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    item = fake.customer_says("beep, I am a bot")
    [live] = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
    assert isinstance(live, MessageReceived)
    message = live.message
    bot = live.model_copy(update={"message": message.model_copy(
        update={"author": message.author.model_copy(update={"bot": True})})})
    reply = Reply(network="testnet", to=bot.message, text="Hello!", visibility="public")
    private = PrivateReply(network="testnet", to=bot.message, text="Hello!")
    for policy in (HoldPublic(), AutoSend(), hold_when(lambda event, action: False)):
        assert policy.decide(bot, private).held, policy
        assert "automated account" in policy.decide(bot, reply).reason
    assert not AutoSend(automated_accounts="send").decide(bot, reply).held
    assert not HoldPublic(automated_accounts="send").decide(bot, private).held
    assert not AutoSend().decide(live, reply).held


def test_automatic_replies_are_capped_per_thread_and_per_customer() -> None:
    """Past the caps, replies are held for a human; the window frees them again."""
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    now = [datetime(2026, 12, 4, 9, 0, tzinfo=UTC)]
    caps = AutoReplyCaps(per_thread=2, per_customer=3, clock=lambda: now[0])
    policy = AutoSend(caps=caps)
    items = [fake.customer_says(f"message {n}") for n in range(5)]
    events = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body(items)))
    messages = [e.message for e in events if isinstance(e, MessageReceived)]
    first = messages[0]
    in_thread = [first.model_copy(update={"ref": first.ref.model_copy(update={"id": f"t{n}"})})
                 for n in range(3)]
    verdicts = [policy.decide(None, Reply(network="testnet", to=m, text="Thanks!")).verdict
                for m in in_thread]
    assert verdicts == ["send", "send", "hold"]
    held = policy.decide(None, Reply(network="testnet", to=in_thread[0], text="Thanks!"))
    assert "2 automatic replies in this thread" in held.reason
    # The same customer in other threads: the third reply reaches the customer cap.
    other_threads = [m.model_copy(update={"conversation": m.conversation.model_copy(
        update={"id": f"other-{n}"})}) for n, m in enumerate(in_thread)]
    verdicts = [policy.decide(None, PrivateReply(network="testnet", to=m, text="Hi")).verdict
                for m in other_threads]
    assert verdicts == ["send", "hold", "hold"]
    assert "customer" in policy.decide(
        None, PrivateReply(network="testnet", to=other_threads[0], text="Hi")).reason
    now[0] += timedelta(hours=25)
    assert policy.decide(None, Reply(network="testnet", to=in_thread[0], text="Hi")).verdict == (
        "send")
    assert AutoSend(caps=None).decide(None, Reply(network="testnet", to=first, text="x")).verdict \
        == "send"
