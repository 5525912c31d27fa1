"""The helpdesk workflow on every store: state, triage, SLA clocks, claims, notices once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from tests.runtime_adapter import FakeNetwork, adapter_for, running

from omnichannel.actions import PrivateReply, Reply
from omnichannel.errors import ConfigurationError, ConversationClaimed
from omnichannel.events import MessageReceived
from omnichannel.helpdesk import (
    Agent,
    SlaPolicy,
    SlaTargets,
    Triage,
    TriageRule,
    Workflow,
)
from omnichannel.hub import Context, Hub
from omnichannel.model import Message, Person, Ref
from omnichannel.store import MemoryStore, SQLiteStore
from omnichannel.store.states import ConversationStateStore

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CONV = Ref(network="testnet", id="thread-1")
ALICE = Person(ref=Ref(network="testnet", id="u-alice"), handle="alice")


class Clock:
    """A virtual clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], ConversationStateStore]]:
    """Builds store objects over one database of the parametrized backend."""
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda: memory
    elif request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "helpdesk.db")
    else:
        pytest.importorskip("psycopg", reason='psycopg is not installed: pip install -e ".[test]"')
        from omnichannel.store import PostgresStore

        server = request.getfixturevalue("postgres_server")
        schema = request.getfixturevalue("postgres_empty_schema")
        yield lambda: PostgresStore(server.url, schema=schema, shared=True)


@pytest.fixture
async def store(
    store_factory: Callable[[], ConversationStateStore],
) -> AsyncIterator[ConversationStateStore]:
    opened = store_factory()
    async with opened:  # type: ignore[attr-defined]
        yield opened


def message(text: str, *, at: datetime = T0, id_: str = "m-1", author: Person = ALICE,
            from_us: bool = False) -> Message:
    return Message(ref=Ref(network="testnet", id=id_), conversation=CONV, author=author,
                   text=text, created_at=at, from_us=from_us)


TRIAGE = Triage([TriageRule(name="upset", signs=["🙄"], words=["refund"], priority="high",
                            tags=["complaint"], queue="escalations")])
SLA = SlaPolicy(targets={
    "high": SlaTargets(first_response=timedelta(hours=1), next_response=timedelta(hours=2),
                       resolution=timedelta(hours=24)),
    "normal": SlaTargets(first_response=timedelta(hours=4)),
})


async def test_a_customer_message_opens_triages_and_starts_the_clocks(
    store: ConversationStateStore,
) -> None:
    clock = Clock()
    workflow = Workflow(store, triage=TRIAGE, sla=SLA, clock=clock)
    state = await workflow.customer_wrote(message("Still no refund 🙄"))
    assert (state.status, state.priority, state.tags, state.queue) == (
        "open", "high", ("complaint",), "escalations")
    assert state.customer == "u-alice"
    assert state.waiting_since == T0
    assert state.due["first_response"]["due_at"] == T0 + timedelta(hours=1)
    assert state.due["first_response"]["warn_at"] == T0 + timedelta(minutes=45)
    assert state.due["resolution"]["due_at"] == T0 + timedelta(hours=24)

    # A second message does not move the clock that is already running.
    clock.advance(minutes=10)
    again = await workflow.customer_wrote(message("hello??", at=clock.now, id_="m-2"))
    assert again.due["first_response"] == state.due["first_response"]
    assert again.waiting_since == T0

    history = await workflow.history(CONV)
    assert [(c.what, c.by) for c in history][:3] == [
        ("priority", "customer"), ("tags", "customer"), ("queue", "customer")]


async def test_answering_stops_the_response_clock_and_the_next_message_reopens(
    store: ConversationStateStore,
) -> None:
    clock = Clock()
    workflow = Workflow(store, triage=TRIAGE, sla=SLA, clock=clock)
    await workflow.customer_wrote(message("refund please"))
    clock.advance(minutes=20)
    answered = await workflow.we_answered(CONV, by="agent:anna")
    assert answered.status == "pending"
    assert answered.first_response_at == T0 + timedelta(minutes=20)
    assert set(answered.due) == {"resolution"}
    assert answered.waiting_since is None

    clock.advance(hours=1)
    reopened = await workflow.customer_wrote(message("any news?", at=clock.now, id_="m-2"))
    assert reopened.status == "open"
    assert reopened.due["next_response"]["due_at"] == clock.now + timedelta(hours=2)
    assert reopened.first_response_at == T0 + timedelta(minutes=20)

    resolved = await workflow.resolve(CONV, by="agent:anna", why="refund issued")
    assert resolved.status == "resolved"
    assert resolved.due == {}
    clock.advance(days=3)
    back = await workflow.customer_wrote(message("it broke again", at=clock.now, id_="m-3"))
    assert back.status == "open"
    assert back.due["resolution"]["due_at"] == clock.now + timedelta(hours=24)
    whys = [c.why for c in await workflow.history(CONV) if c.what == "status"]
    assert "refund issued" in whys


async def test_snoozed_conversations_wake_in_the_queue_or_on_a_message(
    store: ConversationStateStore,
) -> None:
    clock = Clock()
    workflow = Workflow(store, clock=clock)
    await workflow.customer_wrote(message("hi"))
    await workflow.snooze(CONV, T0 + timedelta(hours=2), by="agent:anna")
    assert await workflow.queue() == []
    clock.advance(hours=3)
    assert [s.conversation for s in await workflow.queue()] == [CONV]
    await workflow.snooze(CONV, clock.now + timedelta(days=1), by="agent:anna")
    woken = await workflow.customer_wrote(message("hello?", at=clock.now, id_="m-2"))
    assert woken.status == "open"
    assert woken.snoozed_until is None


async def test_a_colleagues_claim_refuses_an_answer_unless_forced(
    store: ConversationStateStore,
) -> None:
    clock = Clock()
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), clock=clock)
    workflow = Workflow(store, clock=clock)
    seen: list[Message] = []

    @hub.on(MessageReceived)
    async def keep(event: MessageReceived, ctx: Context) -> None:
        seen.append(event.message)

    fake.customer_says("where is my parcel?", author="carol")
    async with running(hub, listen=False):
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()
        [customer] = seen
        conv = customer.conversation

        await workflow.claim(conv, "anna", activity="typing")
        with pytest.raises(ConversationClaimed) as refused:
            await workflow.claim(conv, "ben")
        assert refused.value.holder == "anna"
        assert "anna" in str(refused.value)

        reply = Reply(network="testnet", to=customer, text="Ben here, checking now!")
        with pytest.raises(ConversationClaimed, match="anna"):
            await workflow.answer(hub, reply, agent="ben")
        assert await hub.store.list_outbox() == []

        forced = await workflow.answer(hub, reply, agent="ben", force=True)
        assert forced.origin == "agent:ben"
        history = await workflow.history(conv)
        assert ("forced send", "anna", "ben") in [(c.what, c.old, c.new) for c in history]

        # Anna's claim lapses unless renewed; then Ben may take it.
        clock.advance(seconds=31)
        taken = await workflow.claim(conv, "ben")
        assert taken.holder(clock.now) == "ben"
        await workflow.release(conv, "ben")
        private = PrivateReply(network="testnet", to=customer, text="Details by DM 📦")
        await workflow.answer(hub, private, agent="anna")
        assert len(await hub.store.list_outbox()) == 2


async def test_two_workers_contending_for_a_claim_one_wins(
    store_factory: Callable[[], ConversationStateStore], store: ConversationStateStore,
) -> None:
    """Workflows on two store objects (two workers) claim at once: exactly one agent gets it.

    SQLite has one writing process, so its two workers share the store object.
    """
    clock = Clock()
    shared = isinstance(store, MemoryStore | SQLiteStore)
    second_store = store if shared else store_factory()
    if not shared:
        await second_store.open()  # type: ignore[attr-defined]
    try:
        for round_ in range(5):
            conv = Ref(network="testnet", id=f"contended-{round_}")
            workers = [Workflow(store, clock=clock), Workflow(second_store, clock=clock)]
            outcomes: dict[str, str] = {}

            async def claim(workflow: Workflow, agent: str, conv: Ref = conv,
                            outcomes: dict[str, str] = outcomes) -> None:
                try:
                    await workflow.claim(conv, agent)
                    outcomes[agent] = "won"
                except ConversationClaimed as exc:
                    outcomes[agent] = f"refused: {exc.holder}"

            async with anyio.create_task_group() as tg:
                for index, agent in enumerate(["anna", "ben", "cleo", "dev"]):
                    tg.start_soon(claim, workers[index % 2], agent)
            winners = [a for a, o in outcomes.items() if o == "won"]
            assert len(winners) == 1, outcomes
            assert all(o == f"refused: {winners[0]}" for a, o in outcomes.items()
                       if a not in winners)
    finally:
        if not shared:
            await second_store.aclose()  # type: ignore[attr-defined]


async def test_sla_notices_fire_once_across_workers_and_restarts(
    store_factory: Callable[[], ConversationStateStore], tmp_path: Path,
) -> None:
    clock = Clock()
    store = store_factory()
    async with store:  # type: ignore[attr-defined]
        workflow = Workflow(store, triage=TRIAGE, sla=SLA, clock=clock)
        await workflow.customer_wrote(message("refund 🙄"))
        assert await workflow.sla_notices() == []
        clock.advance(minutes=50)  # past the warning (45 min), before the due time
        [warning] = await workflow.sla_notices()
        assert (warning.metric, warning.state, warning.priority) == (
            "first_response", "warning", "high")
        assert await workflow.sla_notices() == []
        other_worker = Workflow(store, sla=SLA, clock=clock)
        assert await other_worker.sla_notices() == []
    store = store_factory()  # a restart
    async with store:  # type: ignore[attr-defined]
        workflow = Workflow(store, sla=SLA, clock=clock)
        assert await workflow.sla_notices() == []
        clock.advance(minutes=20)
        notices = await workflow.sla_notices()
        assert [(n.metric, n.state) for n in notices] == [("first_response", "breached")]
        assert await workflow.sla_notices() == []
        history = await workflow.history(CONV)
        assert [c.what for c in history if c.by == "sla"] == ["sla warning", "sla breached"]


async def test_assignment_by_least_load_and_the_queue_order(
    store: ConversationStateStore,
) -> None:
    clock = Clock()
    team = [Agent(id="anna", capacity=2), Agent(id="ben", capacity=2), Agent(id="cleo", away=True)]
    workflow = Workflow(store, triage=TRIAGE, sla=SLA, agents=team, clock=clock)
    refs = []
    for number, text in enumerate(["hello", "refund 🙄", "question", "another"]):
        ref = Ref(network="testnet", id=f"t-{number}")
        refs.append(ref)
        msg = message(text, id_=f"m-{number}", at=clock.now).model_copy(
            update={"conversation": ref})
        await workflow.customer_wrote(msg)
        clock.advance(minutes=1)
    assigned = [(await workflow.assign_next(ref)).assignee for ref in refs]
    assert assigned == ["anna", "ben", "anna", "ben"]
    # The refund complaint (high: 1 h) is due first; the rest by their 4 h targets.
    queue = [s.conversation.id for s in await workflow.queue()]
    assert queue == ["t-1", "t-0", "t-2", "t-3"]
    assert [s.conversation.id for s in await workflow.queue(assignee="anna")] == ["t-0", "t-2"]
    with pytest.raises(ConfigurationError, match="no agents"):
        await Workflow(store).assign_next(refs[0])


async def test_hub_middleware_keeps_state_for_every_customer_message(
    store: ConversationStateStore,
) -> None:
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore())
    workflow = Workflow(store, triage=TRIAGE)
    hub.use(workflow.middleware)

    @hub.on(MessageReceived)
    async def noop(event: MessageReceived, ctx: Context) -> None:
        pass

    fake.customer_says("I want a refund 🙄", author="dora")
    fake.customer_says("thanks!", author="erin")
    async with running(hub, listen=False):
        batch = await hub.adapters["testnet"].poll(None)
        await hub.ingest("testnet", batch.events, cursor=batch.cursor)
        await hub.wait_idle()
    states = await workflow.queue()
    assert sorted(s.priority for s in states) == ["high", "normal"]


async def test_a_rise_in_priority_tightens_the_running_clock(
    store: ConversationStateStore,
) -> None:
    """A thread that starts calm and turns into a complaint is due under the tighter target."""
    clock = Clock()
    workflow = Workflow(store, triage=TRIAGE, sla=SLA, clock=clock)
    calm = await workflow.customer_wrote(message("hello there"))
    assert calm.due["first_response"]["due_at"] == T0 + timedelta(hours=4)
    clock.advance(minutes=5)
    angry = await workflow.customer_wrote(
        message("still no refund 🙄", at=clock.now, id_="m-2"))
    assert angry.priority == "high"
    # Counted from the first unanswered message, under the high target (1 h).
    assert angry.due["first_response"]["due_at"] == T0 + timedelta(hours=1)
    assert angry.due["resolution"]["due_at"] == T0 + timedelta(hours=24)


async def test_sla_events_reach_handlers_once_across_timer_ticks_and_a_second_worker(
    store: ConversationStateStore,
) -> None:
    """The timer's SlaWarning and SlaBreached events are persisted and handled once each."""
    from omnichannel.events import SlaBreached, SlaWarning

    clock = Clock()
    fake = FakeNetwork()
    hub = Hub(adapters=[adapter_for(fake)], store=MemoryStore(), clock=clock)
    heard: list[str] = []

    @hub.on(SlaWarning)
    async def warn(event: SlaWarning, ctx: Context) -> None:
        heard.append(f"warning {event.metric} {event.conversation.id} {event.priority}")

    @hub.on(SlaBreached)
    async def breached(event: SlaBreached, ctx: Context) -> None:
        heard.append(f"breached {event.metric} {event.conversation.id}")

    workflow = Workflow(store, triage=TRIAGE, sla=SLA, clock=clock)
    other_worker = Workflow(store, sla=SLA, clock=clock)
    await workflow.customer_wrote(message("refund 🙄"))
    async with running(hub, listen=False):
        assert await workflow.fire_sla(hub) == []
        clock.advance(minutes=50)
        [event] = await workflow.fire_sla(hub)
        assert await other_worker.fire_sla(hub) == []
        await hub.wait_idle()
        # The same event delivered again (a retried ingest) is recognised by its id.
        assert await hub.ingest("testnet", [event]) == []
        clock.advance(minutes=15)
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: workflow.run_sla_timer(
                hub, interval=0.01, task_status=task_status))
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        await hub.wait_idle()
    assert heard == ["warning first_response thread-1 high", "breached first_response thread-1"]


SETTINGS = """
assignment = "round_robin"

[[triage]]
name = "upset"
signs = ["🙄"]
priority = "high"
tags = ["complaint"]

[hours]
timezone = "Europe/Berlin"

[hours.weekly]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]

[sla.high]
first_response = "PT1H"

[sla.networks.x.high]
first_response = 1800

[[agents]]
id = "anna"
capacity = 5

[[agents]]
id = "ben"
"""


async def test_a_workflow_from_the_settings_file(store: ConversationStateStore) -> None:
    import tomllib

    from omnichannel.helpdesk import RoundRobin

    workflow = Workflow.from_settings(store, tomllib.loads(SETTINGS), clock=Clock())
    assert isinstance(workflow.strategy, RoundRobin)
    assert [a.id for a in workflow.agents] == ["anna", "ben"]
    assert workflow.sla is not None
    assert workflow.sla.hours is not None
    friday_evening = datetime(2026, 12, 4, 17, 30, tzinfo=UTC)  # 18:30 in Berlin
    state = await workflow.customer_wrote(message("late again 🙄", at=friday_evening))
    assert state.priority == "high"
    # Business hours: due on Monday at 10:00 Berlin time (09:00 UTC).
    assert state.due["first_response"]["due_at"] == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    on_x = workflow.sla.due("first_response", since=friday_evening, network="x",
                            priority="high")
    assert on_x is not None
    assert on_x.due_at == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(("text", "named"), [
    ('assignment = "random"', "assignment"),
    ('[[triage]]\nname = "x"\npriority = "soon"', "triage"),
    ('[hours]\ntimezone = "Mars/Base"\nweekly = { mon = ["09:00-17:00"] }', "hours"),
    ('[sla.high]\nfirst_response = -5', "sla"),
])
def test_settings_errors_name_their_table(text: str, named: str) -> None:
    import tomllib

    with pytest.raises(ConfigurationError, match=named):
        Workflow.from_settings(MemoryStore(), tomllib.loads(text))
