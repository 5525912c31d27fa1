"""`omnichannel inbox`: assign, claim (collision), tag, snooze, resolve, reply; --json, --stats."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from tests.test_cli import _fill, run

from omnichannel.store import SQLiteStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A SQLite store with two Mastodon conversations (c1: a complaint, c2: thanks)."""
    path = tmp_path / "bot.db"
    anyio.run(_fill, path)
    return path


def test_actions_change_the_state_and_are_audited(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", str(store_path)]
    status, out, _ = run(["inbox", "assign", "mastodon:c1", "anna", "--by", "agent:lead",
                          "--why", "speaks German", *store], capsys)
    assert (status, out.strip()) == (0, "mastodon:c1: assigned to anna")
    status, out, _ = run(["inbox", "tag", "mastodon:c1", "billing", "vip", *store], capsys)
    assert out.strip() == "mastodon:c1: tags: billing, vip"
    run(["inbox", "tag", "mastodon:c1", "vip", "--remove", *store], capsys)
    status, out, _ = run(["inbox", "snooze", "mastodon:c2", "+2h", "--json", *store], capsys)
    snoozed = json.loads(out)
    assert (snoozed["conversation"], snoozed["status"]) == ("mastodon:c2", "snoozed")
    status, out, _ = run(["inbox", "resolve", "mastodon:c1", "--why", "refunded", "--json",
                          *store], capsys)
    resolved = json.loads(out)
    assert (resolved["status"], resolved["assignee"], resolved["tags"]) == (
        "resolved", "anna", ["billing"])

    async def history() -> list[tuple[str, str, str | None]]:
        async with SQLiteStore(store_path, read_only=True) as reader:
            from omnichannel.model import Ref

            changes = await reader.state_changes(Ref(network="mastodon", id="c1"))
            return [(c.what, c.by, c.why) for c in changes]

    assert anyio.run(history) == [
        ("assignee", "agent:lead", "speaks German"), ("tags", _me(), None),
        ("tags", _me(), None), ("status", _me(), "refunded"),
    ]


def _me() -> str:
    from omnichannel.cli._drafts import _default_agent

    return _default_agent()


def test_a_colleagues_claim_refuses_a_reply_by_name_until_released(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", str(store_path)]
    status, out, _ = run(["inbox", "claim", "mastodon:c1", "anna", "--typing", *store], capsys)
    assert status == 0
    assert "claimed by anna" in out
    status, _, err = run(["inbox", "claim", "mastodon:c1", "ben", *store], capsys)
    assert status == 1  # refused: the command failed (2 is for usage and settings)
    assert "anna is answering conversation mastodon:c1" in err
    status, _, err = run(["inbox", "reply", "mastodon:c1", "ben", "--text",
                          "Hi Alice, Ben here: a refund is on its way.", *store], capsys)
    assert status == 1
    assert "anna" in err
    run(["inbox", "release", "mastodon:c1", "anna", *store], capsys)
    status, out, _ = run(["inbox", "reply", "mastodon:c1", "ben", "--text",
                          "Hi Alice, Ben here: a refund is on its way.", "--json", *store],
                         capsys)
    assert status == 0
    answered = json.loads(out)
    assert answered["state"]["status"] == "pending"
    status, out, _ = run(["inbox", *store], capsys)
    assert "Outbox: 1 pending" in out
    assert "pending" in out.split("Pending drafts")[0]  # the conversation's status column


def test_reply_with_a_canned_reply_from_the_settings(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omnichannel.toml"
    config.write_text(
        f'store = "{store_path}"\n\n'
        "[[helpdesk.canned]]\n"
        'name = "late"\n'
        'text = "Hi {name}, sorry order {order_id} is late: it ships today 📦"\n',
        encoding="utf-8",
    )
    status, out, _ = run(["inbox", "reply", "mastodon:c1", "anna", "--canned", "late",
                          "--var", "order_id=4411", "--json", "--config", str(config)], capsys)
    assert status == 0
    assert json.loads(out)["text"] == "Hi Alice, sorry order 4411 is late: it ships today 📦"
    status, _, err = run(["inbox", "reply", "mastodon:c1", "anna", "--canned", "late",
                          "--config", str(config)], capsys)
    assert status == 2
    assert "order_id" in err
    status, _, err = run(["inbox", "reply", "mastodon:c1", "anna", "--canned", "nope",
                          "--config", str(config)], capsys)
    assert status == 2
    assert "no canned reply named 'nope'" in err


def test_json_view_and_stats(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", str(store_path)]
    run(["inbox", "assign", "mastodon:c1", "anna", *store], capsys)
    status, out, _ = run(["inbox", "--json", *store], capsys)
    assert status == 0
    document = json.loads(out)
    by_id = {c["conversation"]: c for c in document["conversations"]}
    assert by_id["mastodon:c1"]["state"]["assignee"] == "anna"
    assert by_id["mastodon:c2"]["state"] is None
    assert document["drafts"][0]["note"] == "complaint"
    assert document["outbox"] == {}
    status, out, _ = run(["inbox", "--stats", *store], capsys)
    assert status == 0
    assert "By agent" in out
    assert "anna" in out
    status, out, _ = run(["inbox", "--stats", "--json", *store], capsys)
    metrics = json.loads(out)
    assert metrics["agents"]["anna"]["conversations"] == 1


def test_bad_conversation_and_snooze_time_are_explained(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--store", str(store_path)]
    status, _, err = run(["inbox", "resolve", "c1", *store], capsys)
    assert status == 2
    assert "NETWORK:ID" in err
    status, _, err = run(["inbox", "snooze", "mastodon:c1", "tomorrow", *store], capsys)
    assert status == 2
    assert "+30m" in err
    status, _, err = run(["inbox", "snooze", "mastodon:c1", "2026-12-05T09:00", *store], capsys)
    assert status == 2
    assert "offset" in err
