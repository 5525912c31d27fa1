"""``python -m omnichannel_x.activity``: subscriptions and replays from a terminal, on XSandbox."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest

from omnichannel_x import activity
from omnichannel_x.sandbox import XSandbox

HOW_TO = Path(__file__).resolve().parents[3] / "docs" / "how-to" / "x.md"


def _env(sandbox: XSandbox) -> dict[str, str]:
    return {"OMNICHANNEL_X_BASE_URL": sandbox.base_url,
            "OMNICHANNEL_X_ACCESS_TOKEN": sandbox.token,
            "OMNICHANNEL_X_DM_POLL_INTERVAL": "0"}


def _run(sandbox: XSandbox, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = activity.main(list(argv), stdout=out, stderr=err, environ=_env(sandbox),
                         transport=sandbox.transport())
    return code, out.getvalue(), err.getvalue()


def test_subscribe_list_delete_and_replay() -> None:
    """Each command does its request and prints ids only, never a token."""
    sandbox = XSandbox(seed=21)
    code, out, _ = _run(sandbox, "subscribe", "post.mention.create", "dm.received",
                        "--webhook-id", sandbox.webhook_id, "--tag", "helpdesk")
    assert code == 0
    ids = re.findall(r"subscribed \S+: (\d+)", out)
    assert len(ids) == 2
    assert {s["event_type"] for s in sandbox.subscriptions.values()} == {
        "post.mention.create", "dm.received"}
    code, out, _ = _run(sandbox, "list")
    assert (code, out.splitlines()[-1]) == (0, "2 subscriptions")
    assert f"user {sandbox.our_account.id}  webhook {sandbox.webhook_id}" in out
    code, out, _ = _run(sandbox, "delete", ids[0])
    assert (code, out) == (0, f"deleted {ids[0]}\n")
    assert list(sandbox.subscriptions) == [ids[1]]
    code, out, _ = _run(sandbox, "replay", "--webhook-id", sandbox.webhook_id,
                        "--since", "2026-12-04T09:00Z", "--until", "2026-12-04T11:30")
    assert code == 0
    job = out.split()[-1]
    assert sandbox.replay_jobs[job][0].isoformat() == "2026-12-04T09:00:00+00:00"
    assert sandbox.token not in out


def test_errors_are_one_line_without_secrets() -> None:
    """A refused request or a bad setting: exit 1 and a reason; an unknown command: usage."""
    sandbox = XSandbox(seed=22)
    code, _, err = _run(sandbox, "delete", "999")
    assert code == 1
    assert err.startswith("error: ")
    out, errors = io.StringIO(), io.StringIO()
    bad = {**_env(sandbox), "OMNICHANNEL_X_TIER": "platinum"}
    assert activity.main(["list"], stdout=out, stderr=errors, environ=bad) == 1
    assert "tier" in errors.getvalue()
    assert sandbox.token not in errors.getvalue()
    with pytest.raises(SystemExit):
        activity.parser().parse_args(["replay", "--webhook-id", "1", "--since", "yesterday",
                                      "--until", "now"])


def test_the_how_to_commands_parse() -> None:
    """Every ``python -m omnichannel_x.activity`` line of the how-to parses."""
    lines = [line.strip() for line in HOW_TO.read_text("utf-8").splitlines()
             if line.strip().startswith("python -m omnichannel_x.activity")]
    assert len(lines) >= 3
    for line in lines:
        activity.parser().parse_args(shlex.split(line)[3:])
