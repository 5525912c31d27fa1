"""``omnichannel demo``: sandboxes on loopback, scripted customers, the quick bot, a summary."""

from __future__ import annotations

import importlib.util
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TextIO

import anyio

from ..actions import PrivateReply, Reply
from ..bot import Bot
from ..cli._table import shorten
from ..errors import ConfigurationError
from ..events import Event, MessageReceived
from ..hub import CallNext, Context, Hub
from ..policy import normalize_text
from ..registry import install_hint
from ..store import SQLiteStore
from ._helpdesk import HelpdeskDemo, helpdesk_table
from ._report import LEGEND, Outcome, collect_outcomes, figures, figures_table
from ._sandboxes import SandboxNetwork, StepRun, open_sandbox_networks
from ._scenario import AFTER_OUTAGE, CUSTOMERS, Written, write, write_history

__all__ = ["load_quickbot", "run_demo"]

_STEP_TIMEOUT = 20.0
# The whole script's limit: a demo that stops making progress reports it and ends.
_DEMO_TIMEOUT = 120.0


def _quickbot_file() -> Path | None:
    packaged = resources.files("omnichannel._demo").joinpath("quickbot.py")
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "examples" / "quickbot.py"
    return checkout if checkout.is_file() else None


def load_quickbot(path: Path | None = None) -> Bot:
    """Import ``examples/quickbot.py`` (or its installed copy) and return its ``bot``.

    Raises:
        ConfigurationError: The file is not there, or defines no ``Bot`` named ``bot``.
    """
    found = path or _quickbot_file()
    if found is None:
        raise ConfigurationError(
            "the quick bot (examples/quickbot.py) is not installed with this copy of omnichannel"
        )
    spec = importlib.util.spec_from_file_location("omnichannel_quickbot", found)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ConfigurationError(f"cannot load {found}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bot = getattr(module, "bot", None)
    if not isinstance(bot, Bot):
        raise ConfigurationError(f"{found} defines no Bot named `bot`")
    return bot


@dataclass
class _Check:
    network: str
    what: str
    ok: bool
    detail: str = ""


@dataclass
class _Progress:
    """Prints what happens as it happens: inbound messages, answers, drafts, retries."""

    out: TextIO
    started: float
    hub: Hub
    width: int = 9
    _seen: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)
    _drafts: set[str] = field(default_factory=set)
    _failed: dict[str, int] = field(default_factory=dict)  # key -> attempt whose failure was shown

    def line(self, network: str, mark: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"{elapsed:6.2f}s  {network:<{self.width}} {mark} {text}", file=self.out, flush=True)

    async def inbound(self, event: Event, ctx: Context, call_next: CallNext) -> None:
        if isinstance(event, MessageReceived):
            message = event.message
            where = "DM" if message.is_private else "public"
            who = message.author.handle or message.author.ref.id
            self.line(event.network, "<-", f"@{who} ({where}): {shorten(message.text, 64)}")
        await call_next()

    async def poll_once(self) -> None:
        store = self.hub.store
        for item in await store.list_outbox(limit=100_000):
            state = (item.status, item.attempts, item.last_error)
            before = self._seen.get(item.key)
            if before == state:
                continue
            self._seen[item.key] = state
            action = item.action
            if not isinstance(action, Reply | PrivateReply):
                continue
            who = "@" + (action.to.author.handle or action.to.author.ref.id)
            private = isinstance(action, PrivateReply) or (
                (action.visibility or action.to.visibility) == "private"
            )
            if item.status in ("pending", "ambiguous") and item.last_error:
                if self._failed.get(item.key) != item.attempts:
                    self._failed[item.key] = item.attempts
                    self.line(item.network, "!!", f"delivery to {who} failed "
                              f"(attempt {item.attempts}: {shorten(item.last_error, 48)}); "
                              "the outbox will retry")
            elif item.status == "sent":
                if item.attempts > 1 and item.last_error and item.key not in self._failed:
                    # The failed attempt and its retry both happened between two
                    # looks at the outbox: the item kept its last error, say it now.
                    self._failed[item.key] = item.attempts - 1
                    self.line(item.network, "!!", f"delivery to {who} failed "
                              f"(attempt {item.attempts - 1}: {shorten(item.last_error, 48)}); "
                              "the outbox retried")
                how = "privately" if private else "publicly"
                tries = f" (after {item.attempts} attempts)" if item.attempts > 1 else ""
                self.line(item.network, "->", f"answered {who} {how}{tries}: "
                          f"{shorten(action.text, 56)}")
            elif item.status == "failed":
                self.line(item.network, "xx", f"gave up answering {who}: {item.last_error}")
        for draft in await store.list_drafts(status=None, limit=100_000):
            if draft.id in self._drafts:
                continue
            self._drafts.add(draft.id)
            action = draft.action
            if not isinstance(action, Reply | PrivateReply):
                continue
            who = "@" + (action.to.author.handle or action.to.author.ref.id)
            note = f" ({draft.note})" if draft.note else ""
            self.line(draft.action.network, "..",
                      f"drafted for a human{note}, to {who}: {shorten(draft.action.text, 44)}")

    async def watch(self) -> None:
        while True:
            await self.poll_once()
            await anyio.sleep(0.05)


async def _answered(hub: Hub, written: Sequence[Written]) -> dict[str, Outcome]:
    """Wait until each written message has a final outcome; return them by record id."""
    wanted = {w.record.id for w in written}
    while True:
        outcomes = {
            o.message.ref.id: o for o in await collect_outcomes(hub.store)
            if o.message.ref.id in wanted
        }
        settled = all(
            oid in outcomes and (
                outcomes[oid].drafts
                or any(i.status in ("sent", "failed") for i in outcomes[oid].sent)
            )
            for oid in wanted
        )
        if settled:
            return outcomes
        await anyio.sleep(0.05)


class _Script:
    """One network's scripted conversations and the checks on what the bot did."""

    def __init__(self, net: SandboxNetwork, hub: Hub, progress: _Progress,
                 checks: list[_Check], history: Sequence[Written] = (),
                 helpdesk: HelpdeskDemo | None = None) -> None:
        self.history = list(history)
        self.helpdesk = helpdesk
        self.net = net
        self.hub = hub
        self.progress = progress
        self.checks = checks

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append(_Check(self.net.network, what, ok, detail))

    async def run(self) -> None:
        network = self.net.network
        sandbox = self.net.sandbox
        if self.history:
            self.progress.line(network, "**", f"{len(self.history)} messages from days before "
                               "the bot's first start (" + ", ".join(
                                   w.line.about for w in self.history) + "): history, left alone")
        # Where a worker's poll stands before the customers write (the hub
        # keeps one cursor per source; a second worker's poll has its own).
        async with self.net.new_adapter() as probe:
            page_start = (await probe.backlog()).cursor
        written = [write(sandbox, line) for line in CUSTOMERS]
        self.progress.line(network, "**", f"{len(written)} customers write: "
                           + ", ".join(w.line.about for w in written))
        outcomes: dict[str, Outcome] = {}
        with anyio.move_on_after(_STEP_TIMEOUT):
            outcomes = await _answered(self.hub, written)
        for w in written:
            self._check_line(w, outcomes.get(w.record.id))

        # A second worker polls the same page and hands it to the hub again.
        before = self._duplicates()
        async with self.net.new_adapter() as second:
            batch = await second.poll(page_start)
        new = await self.hub.ingest(network, batch.events)
        dropped = self._duplicates() - before
        self.progress.line(network, "**", f"a second worker delivers {len(batch.events)} events "
                           f"again; the store suppresses {dropped}")
        await self.hub.wait_idle()
        thanks = written[0]
        replies = [r for r in sandbox.sent() if r.in_reply_to == thanks.record.id]
        self.check("a duplicate delivery is suppressed and answered once",
                   dropped >= 1 and not new and len(replies) == 1,
                   f"{dropped} suppressed, {len(new)} new, {len(replies)} replies to the original")

        attempts = self.net.http_attempts + 1
        for route in sandbox.create_routes:
            sandbox.faults.fail(route, 503, times=attempts)
        self.progress.line(network, "**", f"the network fails: the next {attempts} writes "
                           f"get HTTP 503 ({', '.join(sandbox.create_routes)})")
        late = write(sandbox, AFTER_OUTAGE)
        got: dict[str, Outcome] = {}
        with anyio.move_on_after(_STEP_TIMEOUT):
            got = await _answered(self.hub, [late])
        outcome = got.get(late.record.id)
        delivered = outcome.delivered() if outcome else []
        tries = max((i.attempts for i in delivered), default=0)
        self.check("the network fails and recovers: the answer is retried and lands once",
                   len(delivered) == 1 and tries >= 2
                   and len([r for r in sandbox.sent() if r.in_reply_to == late.record.id]) == 1,
                   f"{len(delivered)} delivered after {tries} outbox attempts, "
                   f"{len(sandbox.faults.hits)} faults injected")
        sandbox.faults.clear()
        complaint = next((outcomes[w.record.id].message for w in written
                          if w.line.expect == "draft" and w.record.id in outcomes), None)
        if self.helpdesk is not None and complaint is not None:
            await self.helpdesk.run(self.hub, complaint, line=self.progress.line,
                                    check=lambda what, ok, detail: self.check(what, ok, detail))
        for step in self.net.steps:
            await step(StepRun(self.hub, self.net.adapter,
                               partial(self.progress.line, network), self.check))
        self._check_no_copy_paste()
        await self._check_history_left_alone()

    async def _check_history_left_alone(self) -> None:
        if not self.history:
            return
        sandbox = self.net.sandbox
        old = {w.record.id for w in self.history}
        people = {w.customer.id for w in self.history}
        answered = [r for r in sandbox.sent() if r.in_reply_to in old or r.recipient in people]
        known = [o for o in await collect_outcomes(self.hub.store) if o.message.ref.id in old]
        self.check(f"{len(old)} messages from before the first start are not answered",
                   not answered and not known,
                   f"{len(answered)} answers on the network, {len(known)} handled by the bot")

    def _duplicates(self) -> int:
        return self.hub.statistics().networks[self.net.network].duplicates_dropped

    def _check_line(self, w: Written, outcome: Outcome | None) -> None:
        sandbox = self.net.sandbox
        sent = sandbox.sent()
        public = [r for r in sent if r.in_reply_to == w.record.id and not r.private]
        private = [r for r in sent if r.private and r.recipient == w.customer.id]
        delivered = outcome.delivered() if outcome else []
        drafts = outcome.drafts if outcome else []
        expect = w.line.expect
        if expect == "public":
            ok = len(public) == 1 and not private and len(delivered) == 1
            what = f"{w.line.about} gets one public reply in its thread"
        elif expect == "private":
            ok = len(private) == 1 and not public and len(delivered) == 1
            what = f"{w.line.about} is answered privately, once"
        else:
            ok = bool(drafts) and not delivered and not public and not private
            what = f"{w.line.about} is drafted for a human, nothing sent"
        detail = (f"{len(public)} public, {len(private)} private on the network; "
                  f"{len(delivered)} delivered, {len(drafts)} drafts in the store")
        self.check(what, ok, detail)

    def _check_no_copy_paste(self) -> None:
        sandbox = self.net.sandbox
        posts = {p.id: p for p in sandbox.world.posts.values()}
        to_whom: dict[str, set[str]] = {}
        for record in sandbox.sent():
            recipient = record.recipient
            if recipient is None and record.in_reply_to in posts:
                recipient = posts[record.in_reply_to].author_id
            # Compared as the guardrail compares: @mentions and spacing do not count.
            to_whom.setdefault(normalize_text(record.text), set()).add(recipient or "?")
        repeated = [text for text, people in to_whom.items() if len(people) > 1]
        detail = f"{len(to_whom)} distinct texts" + (f"; repeated: {repeated}" if repeated else "")
        self.check("no text is sent to two different people", not repeated, detail)


async def _demo(*, in_process: bool, seed: int, networks: Sequence[str] | None,
                out: TextIO, bot: Bot | None) -> int:
    started = time.monotonic()
    bot = bot or load_quickbot()
    with tempfile.TemporaryDirectory(prefix="omnichannel-demo-") as folder:
        path = Path(folder) / "demo.db"
        async with open_sandbox_networks(networks=networks, seed=seed, loopback=not in_process,
                                         poll_interval=0.2) as nets:
            if not nets:
                print("No installed adapter ships a sandbox; from a clone of the repository: "
                      f"{install_hint()}", file=out)
                return 1
            print("omnichannel demo: the quick bot answers scripted customers on "
                  f"{len(nets)} sandboxed network{'s' if len(nets) > 1 else ''}", file=out)
            for net in nets:
                where = net.url or (
                    "in-process (pip install uvicorn to serve on 127.0.0.1)"
                )
                print(f"  {net.network:<9} {where}", file=out)
            print(f"  store     {path} (SQLite, removed at the end)", file=out)
            print(file=out, flush=True)
            store = SQLiteStore(path, synchronous="normal")
            hub = bot.build_hub(adapters=[n.adapter for n in nets], store=store)
            hub.outbox.backoff_initial = timedelta(seconds=0.25)
            hub.outbox.ambiguous_delay = timedelta(seconds=0.25)
            hub.outbox.poll_interval = 0.1
            progress = _Progress(out, started, hub, width=max(len(n.network) for n in nets))
            hub.use(progress.inbound)
            helpdesk = HelpdeskDemo(store)
            hub.use(helpdesk.workflow.middleware)
            checks: list[_Check] = []
            # The accounts have history: the bot's first start must not answer it.
            history = {net.network: write_history(net.sandbox) for net in nets}
            async with hub:
                async with anyio.create_task_group() as tg:
                    await tg.start(lambda task_status: hub.run(task_status=task_status))
                    tg.start_soon(progress.watch)
                    with anyio.move_on_after(_DEMO_TIMEOUT) as limit:
                        async with anyio.create_task_group() as scripts:
                            for net in nets:
                                script = _Script(net, hub, progress, checks,
                                                 history[net.network], helpdesk)
                                scripts.start_soon(script.run)
                        await hub.wait_idle()
                    checks.append(_Check("all", f"the script ends within {_DEMO_TIMEOUT:.0f} s",
                                         not limit.cancelled_caught, "it stopped making progress"))
                    tg.cancel_scope.cancel()
                # The watcher has stopped, so this last look cannot print a line twice.
                await progress.poll_once()
            statistics = hub.statistics()
            async with SQLiteStore(path, read_only=True) as reader:
                outcomes = await collect_outcomes(reader)
                failures = await reader.failures()
            checks.append(_Check("all", "no handler failed",
                                 not failures and not statistics.total.handler_failures,
                                 "; ".join(f.error for f in failures[:3])))
            rows = figures(outcomes, statistics, networks=[n.network for n in nets])
    elapsed = time.monotonic() - started
    print(file=out)
    print("Scripted expectations", file=out)
    for check in sorted(checks, key=lambda c: (c.network == "all", c.network)):
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {mark} {check.network:<9} {check.what}"
              + ("" if check.ok else f" ({check.detail})"), file=out)
    print(file=out)
    print(figures_table(rows), file=out)
    print(file=out)
    print(helpdesk_table(helpdesk.rows), file=out)
    print(file=out)
    print(LEGEND, file=out)
    failed = [c for c in checks if not c.ok]
    print(file=out)
    verdict = "all expectations met" if not failed else f"{len(failed)} expectation(s) FAILED"
    print(f"{len(checks)} checks, {verdict}; finished in {elapsed:.1f} s", file=out, flush=True)
    return 1 if failed else 0


def run_demo(
    *,
    in_process: bool = False,
    seed: int = 7,
    networks: Sequence[str] | None = None,
    verbose: int = 0,
    out: TextIO | None = None,
    bot: Bot | None = None,
) -> int:
    """Run the offline demo; return ``0`` when every scripted expectation held, else ``1``.

    Args:
        in_process: Answer from the sandboxes in-process instead of over loopback HTTP.
        seed: Seeds the sandboxes.
        networks: Only these networks (default: every installed adapter with a sandbox).
        verbose: Show the library's log messages (``1``: info, ``2``: debug).
        out: Where to print (default: standard output).
        bot: The bot to run (default: the quick bot from ``examples/quickbot.py``).
    """
    library = logging.getLogger("omnichannel")
    level = library.level
    if not verbose:
        # The progress lines tell the story; the library's own warnings would repeat it.
        library.setLevel(logging.ERROR)
    try:
        return anyio.run(partial(_demo, in_process=in_process, seed=seed, networks=networks,
                                 out=out or sys.stdout, bot=bot))
    finally:
        library.setLevel(level)
