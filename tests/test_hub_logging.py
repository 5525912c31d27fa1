"""One readable line per message received, reply sent, draft held, delivery retried or failed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.runtime_adapter import FakeClock, FakeNetwork, RuntimeAdapter, adapter_for, received

from omnichannel._logging import short_text
from omnichannel.actions import Reply
from omnichannel.adapter import WebhookRequest
from omnichannel.events import MessageReceived
from omnichannel.hub import Context, Hub
from omnichannel.model import Conversation, Message, Ref
from omnichannel.policy import AutoSend
from omnichannel.store import MemoryStore

SECRET = "whsec-never-logged"


def _records(caplog: pytest.LogCaptureFixture, kind: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "omnichannel_event", None) == kind]


def _fields(record: logging.LogRecord, *names: str) -> dict[str, Any]:
    return {name: getattr(record, name) for name in names}


def _conversation(message: Message) -> Conversation:
    return Conversation(ref=message.conversation, kind="thread",
                        account=Ref(network="testnet", id="us"))


def make_hub(fake: FakeNetwork, **options: Any) -> tuple[Hub, RuntimeAdapter]:
    """A hub over a memory store and one testnet adapter whose secret must never be logged."""
    fake.secret = SECRET
    adapter = adapter_for(fake)
    return Hub(adapters=[adapter], store=MemoryStore(), **options), adapter


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record at INFO and above, and check no secret was logged."""
    caplog.set_level(logging.INFO)
    yield caplog
    assert SECRET not in caplog.text


async def test_a_received_message_is_one_line_with_its_fields(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A new inbound message logs one INFO line on omnichannel.hub; a repeat logs none."""
    fake = FakeNetwork()
    hub, adapter = make_hub(fake)
    item = fake.message_item("where is my parcel?\nIt was due Monday", author="alice")
    [event] = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
    assert isinstance(event, MessageReceived)
    async with hub:
        await hub.ingest("testnet", [event])
        await hub.ingest("testnet", [event])  # delivered again: a duplicate, not logged
    [record] = _records(logs, "message.received")
    assert (record.name, record.levelno) == ("omnichannel.hub", logging.INFO)
    assert record.getMessage() == (
        'testnet: message received from alice in conversation '
        f'{item["conversation"]}: "where is my parcel? It was due Monday"'
    )
    assert _fields(record, "network", "conversation", "event_id", "text", "outcome") == {
        "network": "testnet", "conversation": item["conversation"], "event_id": event.id,
        "text": "where is my parcel? It was due Monday", "outcome": "recorded",
    }


async def test_a_received_message_builds_no_line_when_info_is_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below INFO nothing of the line is built: its text is not cut (it runs per delivery)."""
    import omnichannel._logging as log_lines

    cut: list[str] = []
    monkeypatch.setattr(log_lines, "short_text", lambda text, limit=60: cut.append(text) or text)
    fake = FakeNetwork()
    hub, adapter = make_hub(fake)
    item = fake.message_item("where is my parcel?", author="alice")
    [event] = adapter.parse(WebhookRequest(method="POST", body=fake.webhook_body([item])))
    caplog.set_level(logging.WARNING, logger="omnichannel.hub")
    async with hub:
        await hub.ingest("testnet", [event])
    assert _records(caplog, "message.received") == []
    assert cut == []
    caplog.set_level(logging.INFO, logger="omnichannel.hub")
    [again] = adapter.parse(WebhookRequest(
        method="POST", body=fake.webhook_body([fake.message_item("and now?", author="alice")])))
    async with hub:
        await hub.ingest("testnet", [again])
    assert len(_records(caplog, "message.received")) == 1
    assert "and now?" in cut


async def test_a_sent_reply_and_a_held_draft_are_one_line_each(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A reply the network accepted and a reply held for approval each log their own line."""
    fake = FakeNetwork()
    clock = FakeClock()
    hub, adapter = make_hub(fake, clock=clock, policy=AutoSend())
    message = received(fake, adapter, "hi", author="bob")
    async with hub:
        event = MessageReceived(
            id="e1", network="testnet", account="us", occurred_at=message.created_at,
            message=message, conversation=_conversation(message),
        )
        ctx = Context(hub, event, "tests.answer")
        sent = await ctx.reply("Thanks Bob, " + "we are on it " * 10)
        held = await ctx.reply("Let me check with the team.", hold=True)
        await hub.outbox.run_once()
    assert sent.item is not None
    assert held.draft is not None
    [record] = _records(logs, "reply.sent")
    assert (record.name, record.levelno) == ("omnichannel.outbox", logging.INFO)
    assert record.getMessage().startswith(
        f'testnet: reply sent in conversation {message.conversation.id}: "Thanks Bob, we are'
    )
    assert _fields(record, "network", "conversation", "action_id", "outcome") == {
        "network": "testnet", "conversation": message.conversation.id,
        "action_id": sent.item.key, "outcome": "sent",
    }
    text = getattr(record, "text", "")
    assert text.endswith("…")
    assert len(text) == 60
    [draft] = _records(logs, "draft.held")
    assert (draft.name, draft.levelno) == ("omnichannel.hub", logging.INFO)
    assert draft.getMessage() == (
        f'testnet: draft held in conversation {message.conversation.id}: '
        '"Let me check with the team." (held by the handler)'
    )
    assert _fields(draft, "network", "draft_id", "action_id", "text", "outcome") == {
        "network": "testnet", "draft_id": held.draft.id, "action_id": held.draft.id,
        "text": "Let me check with the team.", "outcome": "held",
    }


async def test_a_sent_reply_builds_no_line_when_info_is_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below INFO the reply.sent line is not built (it runs per reply); at INFO it is."""
    import omnichannel._logging as log_lines

    cut: list[str] = []
    monkeypatch.setattr(log_lines, "short_text", lambda text, limit=60: cut.append(text) or text)
    fake = FakeNetwork()
    hub, adapter = make_hub(fake, clock=FakeClock(), policy=AutoSend())
    message = received(fake, adapter, "hi", author="bob")
    event = MessageReceived(
        id="e1", network="testnet", account="us", occurred_at=message.created_at,
        message=message, conversation=_conversation(message),
    )
    caplog.set_level(logging.WARNING, logger="omnichannel.outbox")
    async with hub:
        await Context(hub, event, "tests.answer").reply("Thanks Bob, we are on it")
        await hub.outbox.run_once()
    assert _records(caplog, "reply.sent") == []
    assert cut == []
    caplog.set_level(logging.INFO, logger="omnichannel.outbox")
    async with hub:
        await Context(hub, event.model_copy(update={"id": "e2"}), "tests.answer").reply(
            "Thanks again Bob, on its way"
        )
        await hub.outbox.run_once()
    assert len(_records(caplog, "reply.sent")) == 1
    assert set(cut) == {"Thanks again Bob, on its way"}


async def test_a_retried_and_a_failed_delivery_are_one_line_each(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A lost response logs a retry (then the reconciled send); a refusal logs a failure."""
    fake = FakeNetwork()
    clock = FakeClock()
    hub, adapter = make_hub(fake, clock=clock)
    message = received(fake, adapter, "hello", author="carol")
    fake.faults.extend(["lose", "422"])
    async with hub:
        lost = await hub.send(Reply(network="testnet", to=message, text="First answer"),
                              by="agent:anna")
        await hub.outbox.run_once()
        refused = await hub.send(Reply(network="testnet", to=message, text="Second answer"),
                                 by="agent:anna")
        clock.advance(5)
        await hub.outbox.run_once()
    [retried] = _records(logs, "delivery.retried")
    assert (retried.name, retried.levelno) == ("omnichannel.outbox", logging.INFO)
    assert retried.getMessage().startswith(
        f'testnet: reply delivery retried in conversation {message.conversation.id}: '
        '"First answer" (attempt 1: AmbiguousDelivery: '
    )
    assert _fields(retried, "action_id", "outcome", "attempt", "text") == {
        "action_id": lost.key, "outcome": "ambiguous", "attempt": 1, "text": "First answer",
    }
    [failed] = _records(logs, "delivery.failed")
    assert (failed.name, failed.levelno) == ("omnichannel.outbox", logging.ERROR)
    assert failed.getMessage().startswith(
        f'testnet: reply delivery failed in conversation {message.conversation.id}: '
        '"Second answer" (attempt 1: '
    )
    assert _fields(failed, "action_id", "outcome", "network") == {
        "action_id": refused.key, "outcome": "failed", "network": "testnet",
    }
    [reconciled] = _records(logs, "reply.sent")
    assert _fields(reconciled, "action_id", "outcome") == {
        "action_id": lost.key, "outcome": "reconciled",
    }


def test_short_text_is_one_line_cut_at_whole_graphemes() -> None:
    """Texts become one line; long ones are cut at a grapheme boundary and end with an ellipsis."""
    assert short_text("a\n b\t c") == "a b c"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    cut = short_text(family * 100, limit=5)
    assert cut == family * 4 + "…"
    assert short_text("x" * 60) == "x" * 60
    assert short_text("x" * 61) == "x" * 59 + "…"
