"""Account health: adapters' reports become AuthHealth events, handled once a day, in the inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, eventually, running
from tests.test_cli import run

from omnichannel.events import AuthHealth
from omnichannel.hub import Context, Hub
from omnichannel.store import SQLiteStore


async def test_reports_reach_handlers_once_per_kind_and_day_and_are_audited(
    tmp_path: Path,
) -> None:
    fake = FakeNetwork()
    adapter = adapter_for(fake)
    store = SQLiteStore(tmp_path / "bot.db")
    hub = Hub(adapters=[adapter], store=store)
    heard: list[str] = []

    @hub.on(AuthHealth)
    async def page_someone(event: AuthHealth, ctx: Context) -> None:
        heard.append(f"{event.network} {event.kind}: {event.detail}")

    expires = datetime.now(UTC) + timedelta(days=3)
    # Reported before the hub runs (while opening, say): kept until it does.
    adapter.report_auth_health("expiring", "the token expires in 3 days", expires_at=expires)
    async with running(hub, listen=False):
        await eventually(lambda: bool(heard))
        adapter.report_auth_health("expiring", "the token expires in 3 days")  # same day
        adapter.report_auth_health("refresh_failed", "TransientError: 503")
        await eventually(lambda: len(heard) >= 2)
        await hub.wait_idle()
        audit = [e for e in await store.audit_log() if e.action_type == "auth.health"]
    assert heard == ["testnet expiring: the token expires in 3 days",
                     "testnet refresh_failed: TransientError: 503"]
    assert sorted(e.detail or "" for e in audit) == [
        "expiring: the token expires in 3 days", "refresh_failed: TransientError: 503"]


def test_the_inbox_shows_the_latest_report_per_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bot.db"

    async def report() -> None:
        fake = FakeNetwork()
        adapter = adapter_for(fake)
        async with SQLiteStore(path) as store:
            hub = Hub(adapters=[adapter], store=store)
            async with running(hub, listen=False):
                adapter.report_auth_health("reauthorization_required",
                                           "the account owner must authorize the app again")
                async def audited() -> bool:
                    return any(e.action_type == "auth.health" for e in await store.audit_log())

                await eventually(audited)

    anyio.run(report)
    status, out, _ = run(["inbox", "--store", str(path)], capsys)
    assert status == 0
    assert ("Account health: testnet: reauthorization_required: the account owner must "
            "authorize the app again") in out
