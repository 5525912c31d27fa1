"""The adapter base class: settings, defaults for undeclared features, dispatch, listening."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import MAX_BACKFILL, Adapter, AdapterSettings, Batch, WebhookRequest
from omnichannel.capabilities import Capabilities
from omnichannel.errors import CapabilityNotSupported, ConfigurationError
from omnichannel.events import MessageDeleted, event_id
from omnichannel.model import Ref
from omnichannel.text import TextRule


class EchoSettings(AdapterSettings):
    token: SecretStr
    poll_interval: float = 0.01


class EchoAdapter(Adapter):
    """Polls three pages, then nothing; records what it sends."""

    network = "echo"
    capabilities = Capabilities(text=TextRule.code_points(50), reactions=("like",))
    settings_model = EchoSettings

    def __init__(self, settings: EchoSettings | dict[str, object]) -> None:
        super().__init__(settings)
        self.cursors: list[str | None] = []
        self.sent: list[str] = []

    async def open(self) -> None:
        return None

    async def poll(self, cursor: str | None) -> Batch:
        self.cursors.append(cursor)
        page = int(cursor or "0")
        if page >= 3:
            return Batch(cursor=None)
        ref = Ref(network="echo", id=str(page))
        event = MessageDeleted(
            id=event_id("message.deleted", ref), network="echo", message=ref,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return Batch(events=(event,), cursor=str(page + 1), more=page < 1)

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        self.sent.append(action.type)
        return Sent(idempotency_key=action.idempotency_key, ref=Ref(network="echo", id="s1"))

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        return None

    async def react(self, action: React) -> Sent:
        self.sent.append("react")
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)


def test_settings_are_validated_from_a_mapping() -> None:
    """A plain mapping becomes the adapter's settings model; the token stays secret."""
    adapter = EchoAdapter({"token": "s3cr3t-token"})
    assert isinstance(adapter.settings, EchoSettings)
    assert "s3cr3t-token" not in repr(adapter.settings)
    assert "s3cr3t-token" not in repr(adapter)


def test_wrong_settings_class_is_a_configuration_error() -> None:
    """Passing another adapter's settings fails with a clear configuration error."""
    with pytest.raises(ConfigurationError, match="expected EchoSettings"):
        EchoAdapter(AdapterSettings())  # type: ignore[arg-type]


async def test_undeclared_features_raise_capability_not_supported() -> None:
    """Hide, delete, stream and webhooks are refused by default, naming the capability."""
    adapter = EchoAdapter({"token": "t"})
    target = Ref(network="echo", id="1")
    with pytest.raises(CapabilityNotSupported) as info:
        await adapter.execute(Hide(network="echo", target=target))
    assert info.value.capability == "hide"
    with pytest.raises(CapabilityNotSupported):
        await adapter.execute(Delete(network="echo", target=target))
    with pytest.raises(CapabilityNotSupported):
        await adapter.verify(WebhookRequest(method="POST"))
    with pytest.raises(CapabilityNotSupported):
        adapter.parse(WebhookRequest(method="POST"))
    with pytest.raises(CapabilityNotSupported):
        adapter.stream(None)


async def test_execute_dispatches_on_action_type() -> None:
    """execute() routes messages to send() and reactions to react()."""
    adapter = EchoAdapter({"token": "t"})
    await adapter.execute(Post(network="echo", text="hello"))
    await adapter.execute(React(network="echo", target=Ref(network="echo", id="1")))
    assert adapter.sent == ["post", "react"]


async def test_listen_polls_forward_from_each_cursor() -> None:
    """listen() resumes from every batch's cursor and keeps the last one on empty pages."""
    adapter = EchoAdapter({"token": "t"})
    seen: list[str] = []
    async with adapter, contextlib.aclosing(adapter.listen("0", use_stream=False)) as stream:
        async for batch in stream:
            seen.extend(e.id for e in batch.events)
            if len(adapter.cursors) >= 5:
                break
    assert adapter.cursors == ["0", "1", "2", "3", "3"]
    assert seen == [
        "echo:message.deleted:0", "echo:message.deleted:1", "echo:message.deleted:2",
    ]


def test_webhook_request_headers_are_case_insensitive() -> None:
    """header() finds a header whatever case the caller uses."""
    request = WebhookRequest(method="POST", headers={"X-Hub-Signature-256": "sha256=ab"})
    assert request.header("X-Hub-Signature-256") == "sha256=ab"
    assert request.header("missing") is None


def test_webhook_request_repr_hides_tokens_signatures_and_body() -> None:
    """A webhook request's repr shows method and path, not its verify token, signature or body."""
    request = WebhookRequest(
        method="GET", path="/facebook",
        query={"hub.mode": "subscribe", "hub.verify_token": "vt-5be1a9"},
        headers={"X-Hub-Signature-256": "sha256=9f2c41"}, body=b'{"customer": "secret"}',
    )
    shown = repr(request)
    assert "/facebook" in shown
    for secret in ("vt-5be1a9", "9f2c41", "secret"):
        assert secret not in shown


async def test_backlog_reads_to_the_current_position_and_keeps_the_newest_events() -> None:
    """The default backlog polls from None while pages say more; its cursor is the newest."""
    adapter = EchoAdapter({"token": "t"})
    async with adapter:
        position = await adapter.backlog()
        backfill = await adapter.backlog(limit=1)
    assert adapter.cursors == [None, "1", None, "1"]  # page 0 says more, page 1 does not
    assert position.cursor == "2"
    assert position.events == ()
    assert backfill.cursor == "2"
    assert [e.id for e in backfill.events] == ["echo:message.deleted:1"]


def test_backfill_settings_give_a_count_and_an_oldest_time() -> None:
    """backfill alone counts, backfill_age alone reads up to MAX_BACKFILL, both combine."""
    now = datetime(2026, 1, 10, tzinfo=UTC)
    day = timedelta(days=1)
    assert EchoSettings(token=SecretStr("t")).backfill_plan(now) == (0, None)
    assert EchoSettings(token=SecretStr("t"), backfill=20).backfill_plan(now) == (20, None)
    assert EchoSettings(token=SecretStr("t"), backfill_age=day).backfill_plan(now) == (
        MAX_BACKFILL, now - day)
    assert EchoSettings.model_validate(
        {"token": "t", "backfill": 5, "backfill_age": "P1D"}
    ).backfill_plan(now) == (5, now - day)
    with pytest.raises(ValidationError):
        EchoSettings(token=SecretStr("t"), backfill=MAX_BACKFILL + 1)
