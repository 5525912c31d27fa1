"""``omnichannel demo``: the offline demo runs to its summary and checks what the bot did."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omnichannel import MessageReceived
from omnichannel._demo import run_demo
from omnichannel.cli import Bot
from omnichannel.hub import Context
from omnichannel.policy import AutoSend

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["received", "replied", "drafted", "private", "duplicates", "retries"]


def _summary(output: str) -> dict[str, dict[str, str]]:
    """Read the per-network rows of the summary table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("network   received"))
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip([*COLUMNS, "first"], cells[1:], strict=True))
    return rows


@pytest.fixture(scope="module")
def demo_output() -> tuple[int, str]:
    """Run the demo once, as the README runs it (sandboxes on loopback)."""
    out = io.StringIO()
    status = run_demo(out=out)
    return status, out.getvalue()


def test_demo_meets_every_scripted_expectation(demo_output: tuple[int, str]) -> None:
    """Every check passes and the demo exits 0."""
    status, output = demo_output
    assert status == 0, output
    assert "FAIL" not in output
    assert re.search(r"\d+ checks, all expectations met; finished in [\d.]+ s", output)


def test_demo_summary_figures_come_from_the_run(demo_output: tuple[int, str]) -> None:
    """Per network: 5 received, 4 replied (2 privately), 1 drafted, duplicates and a retry."""
    _, output = demo_output
    rows = _summary(output)
    assert {"mastodon", "bluesky", "total"} <= set(rows)
    for network in ("mastodon", "bluesky"):
        row = rows[network]
        assert row["received"] == "5", (network, row)
        assert row["replied"] == "4", (network, row)
        assert row["drafted"] == "1", (network, row)
        assert row["private"] == "2", (network, row)
        assert int(row["duplicates"]) >= 3, (network, row)
        assert int(row["retries"]) >= 1, (network, row)
        assert re.fullmatch(r"\d+\.\d\d s", row["first"]), (network, row)
    assert rows["total"]["received"] == str(sum(int(rows[n]["received"]) for n in rows
                                                if n != "total"))


def test_demo_shows_live_progress(demo_output: tuple[int, str]) -> None:
    """Progress lines show messages arriving, answers, the draft, the failure and its retry."""
    _, output = demo_output
    assert re.search(r"mastodon\s+<- @alice \(public\): @shop Got my replacement kettle", output)
    assert re.search(r"-> answered @\S+ privately", output)
    assert re.search(r"\.\. drafted for a human \(complaint\)", output)
    assert re.search(r"!! delivery to @\S+ failed \(attempt 1: TransientError", output)
    assert re.search(r"-> answered @\S+ publicly \(after 2 attempts\)", output)


def test_demo_fails_when_the_bot_misbehaves() -> None:
    """A bot that answers everyone with one canned text breaks expectations: exit 1."""
    careless = Bot("careless", policy=AutoSend(), copy_paste_window=None)

    @careless.on(MessageReceived)
    async def canned(event: MessageReceived, ctx: Context) -> None:
        await ctx.reply("Thank you for contacting us, we value your feedback!")

    out = io.StringIO()
    status = run_demo(out=out, bot=careless, networks=["mastodon"], in_process=True)
    output = out.getvalue()
    assert status == 1
    assert "FAIL mastodon  a complaint with sarcasm and emoji is drafted for a human" in output
    assert "FAIL mastodon  no text is sent to two different people" in output


def test_console_script_and_module_agree() -> None:
    """`python -m omnichannel demo --help` describes the demo (the README's command)."""
    done = subprocess.run(
        [sys.executable, "-m", "omnichannel", "demo", "--help"], capture_output=True,
        text=True, timeout=60, check=False, cwd=REPO,
    )
    assert done.returncode == 0
    assert "scripted customers" in done.stdout
