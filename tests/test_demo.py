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
from omnichannel._demo._run import _Progress
from omnichannel.cli import Bot
from omnichannel.hub import Context
from omnichannel.policy import AutoSend

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["received", "replied", "drafted", "private", "duplicates", "retries"]


def _summary(output: str) -> dict[str, dict[str, str]]:
    """Read the per-network rows of the summary table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"network +received", line))
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
    """Per network: 5 received, 5 replied (2 privately; the complaint by an agent), 1 drafted.

    Facebook and Instagram have one customer more: a DM 30 hours old, drafted
    when the bot's answer is refused for the window, then answered by an agent.
    """
    _, output = demo_output
    rows = _summary(output)
    assert {"mastodon", "bluesky", "facebook", "instagram", "total"} <= set(rows)
    for network in ("mastodon", "bluesky", "facebook", "instagram"):
        row = rows[network]
        late = 1 if network in ("facebook", "instagram") else 0
        assert row["received"] == str(5 + late), (network, row)
        assert row["replied"] == str(5 + late), (network, row)
        assert row["drafted"] == str(1 + late), (network, row)
        assert row["private"] == str(2 + late), (network, row)
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
    for network in ("mastodon", "bluesky"):  # each network's outage, and its retry
        assert re.search(network + r"\s+!! delivery to @\S+ failed \(attempt 1: TransientError",
                         output), network
        assert re.search(network + r"\s+-> answered @\S+ publicly \(after 2 attempts\)",
                         output), network


def test_demo_explains_its_markers(demo_output: tuple[int, str]) -> None:
    """The summary ends with a legend naming every marker the progress lines use."""
    _, output = demo_output
    legend = next(line for line in output.splitlines() if line.startswith("Markers: "))
    for mark, meaning in [("<-", "a customer wrote"), ("->", "the bot answered"),
                          ("..", "drafted for a human"), ("!!", "a delivery failed"),
                          ("xx", "the outbox gave up"), ("**", "a scripted step")]:
        assert f"{mark} {meaning}" in legend
    docs = (REPO / "docs" / "demo.md").read_text(encoding="utf-8")
    assert legend in docs


async def _sent_on_the_second_attempt() -> str:
    """An outbox item that failed once and was then sent, both before anyone looked."""
    from datetime import UTC, datetime

    from omnichannel.actions import Reply
    from omnichannel.hub import Hub
    from omnichannel.model import Message, Person, Ref
    from omnichannel.store import MemoryStore, OutboxItem

    store = MemoryStore()
    author = Person(ref=Ref(network="mastodon", id="7"), handle="erin")
    message = Message(ref=Ref(network="mastodon", id="m1"), author=author, text="thanks!",
                      conversation=Ref(network="mastodon", id="m1"),
                      created_at=datetime.now(UTC), visibility="public")
    action = Reply(network="mastodon", to=message, text="You're welcome!")
    async with store:
        await store.enqueue(OutboxItem.for_action(action, origin="handler:answer"))
        await store.claim_due(now=datetime.now(UTC))
        await store.update_outbox(action.idempotency_key, status="pending",
                                  last_error="TransientError: HTTP 503")
        await store.claim_due(now=datetime.now(UTC))
        await store.update_outbox(action.idempotency_key, status="sent")
        out = io.StringIO()
        progress = _Progress(out, 0.0, Hub(store=store))
        await progress.poll_once()
        await progress.poll_once()  # a second look prints nothing again
    return out.getvalue()


def test_a_failure_between_two_looks_is_still_printed() -> None:
    """The !! line shows even when the failed attempt and its retry fell between two polls."""
    import anyio

    lines = [line.split(None, 1)[1] for line in anyio.run(_sent_on_the_second_attempt)
             .splitlines()]
    assert lines == [
        "mastodon  !! delivery to @erin failed (attempt 1: TransientError: HTTP 503); "
        "the outbox retried",
        "mastodon  -> answered @erin publicly (after 2 attempts): You're welcome!",
    ]


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


def test_demo_summary_shows_the_helpdesk_step(demo_output: tuple[int, str]) -> None:
    """Triage, an assignment, a refused collision, an SLA warning, a canned reply per network."""
    _, output = demo_output
    table = output.split("Helpdesk: the sarcastic complaint, taken over by two agents")[1]
    rows = [line for line in table.splitlines()[3:] if line.strip()][:4]
    for network in ("bluesky", "facebook", "instagram", "mastodon"):
        [row] = [r for r in rows if r.startswith(network)]
        assert "high (complaint)" in row
        assert re.search(r"(anna|ben) refused \((ben|anna) typing\)", row), row
        assert "warning at 25 min" in row
    assert re.search(r"mastodon\s+\*\* (ben|anna) tries to answer while (anna|ben) types: refused",
                     output)


def test_demo_meta_window_and_human_agent(demo_output: tuple[int, str]) -> None:
    """Facebook and Instagram: a DM 30 hours old is refused to the bot, then tagged HUMAN_AGENT."""
    _, output = demo_output
    for network in ("facebook", "instagram"):
        assert re.search(network + r"\s+\*\* a DM from 30 hours ago is delivered late", output)
        assert re.search(network + r"\s+\.\. drafted for a human \(window closed\)", output)
        assert f"ok   {network:<9} a DM 30 hours old: the automated answer is refused " \
            "(WindowClosed) and drafted for a human" in output
        assert f"ok   {network:<9} an agent answers it after 30 hours, tagged HUMAN_AGENT" in output
