"""Exactly-once delivery survives SIGKILL: a real worker process killed at random moments."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import PostgresServer
from tests.crash_worker import soak, soak_shared
from tests.runtime_adapter import FakeNetwork, serve_in_thread


async def test_killed_workers_deliver_every_action_exactly_once(tmp_path: Path) -> None:
    """Workers killed mid-send, against a lossy network: none lost or doubled, each audited once."""
    fake = FakeNetwork(lose_rate=0.25, latency=0.004, seed=11)
    with serve_in_thread(fake) as url:
        result = await soak(
            db=tmp_path / "outbox.db", url=url, fake=fake, actions=24, kills=4, seed=5
        )
    print(result.line())
    assert result.kills == 4
    assert (result.lost, result.doubled, result.stray) == (0, 0, 0)
    assert result.sent == result.accepted == 24
    assert result.unfinished == 0
    assert result.lost_responses > 0  # the reconciliation path was exercised
    # Exactly one audit line per delivered key: none missing, none repeated.
    assert (result.unaudited, result.audit_repeats) == (0, 0)


async def test_killed_workers_sharing_a_postgres_store_deliver_every_action_exactly_once(
    tmp_path: Path, postgres_server: PostgresServer, postgres_schema: str
) -> None:
    """Two workers at once on one database, one SIGKILLed at random again and again: leases
    hand each dead worker's items to the others, who reconcile them; none lost or doubled."""
    fake = FakeNetwork(lose_rate=0.25, latency=0.2, seed=13)  # sends slow enough to cut
    with serve_in_thread(fake) as url:
        result = await soak_shared(
            db=f"{postgres_server.url}#{postgres_schema}", log=tmp_path / "workers.log",
            url=url, fake=fake, actions=60, workers=2, kills=3, seed=7, lease=1.0,
        )
    print(result.line())
    # Each kill takes a worker mid-run; on a fast run the work may be done after the first.
    assert result.kills >= 1
    assert (result.lost, result.doubled, result.stray) == (0, 0, 0)
    assert result.sent == result.accepted == 60
    # Every lost response is looked up once (so reconciliation ran); the lookups beyond
    # those are the dead workers' claimed items, taken over once their leases ran out. A
    # kill can come before its worker claimed anything, so there may be none beyond.
    assert result.lookups >= result.lost_responses > 0, result.line()
    assert result.unfinished == 0
    assert (result.unaudited, result.audit_repeats) == (0, 0)


async def test_whole_hubs_sharing_a_postgres_store_survive_kills(
    tmp_path: Path, postgres_server: PostgresServer, postgres_schema: str
) -> None:
    """Four hubs (listeners, handlers, outboxes) on one database, SIGKILLed at random and
    replaced, their database connections ended at random moments (mid-transaction or
    idle) and the server restarted once (when the tests own it), on a network that fails
    about 12% of sends (8% committed with the response lost, 4% refused): every message
    handled and answered, its side effect and its answer once, each conversation's answers
    in its messages' order, and never two workers polling the account at the same moment."""
    from tests.hub_worker import hub_soak

    fake = FakeNetwork(lose_rate=0.08, refuse_rate=0.04, latency=0.01, seed=5)
    with serve_in_thread(fake) as url:
        result = await hub_soak(
            db=f"{postgres_server.url}#{postgres_schema}", url=url, fake=fake,
            log=tmp_path / "hubs.log", workers=4, kills=4, messages=40, conversations=5,
            seed=3, lease=1.0, connection_kills=3, restart=postgres_server.restart,
        )
    print(result.line())
    assert result.kills == 4
    assert (result.unanswered, result.doubled) == (0, 0), result.line()
    assert result.out_of_order == 0, result.line()
    assert result.handled == result.messages, result.line()  # no event lost
    assert result.effects_doubled == 0, result.line()
    assert result.pollers_overlapping == 0, result.line()
    assert result.lost_responses + result.refused > 0, result.line()  # the faults happened
    assert result.connections_killed > 0, result.line()
    assert result.restarts == (0 if postgres_server.restart is None else 1), result.line()


def test_pollers_overlapping_counts_two_readers_at_once() -> None:
    """The soak's own check: a takeover after the last poll is fine, side by side is not."""
    from tests.hub_worker import pollers_overlapping

    takeover = [("w1", 0.0), ("w1", 0.5), ("w1", 0.9), ("w2", 2.0), ("w2", 2.5)]
    assert pollers_overlapping(takeover, 1.0) == 0
    side_by_side = [("w1", 0.0), ("w1", 0.5), ("w2", 0.6), ("w1", 1.0), ("w2", 1.2)]
    assert pollers_overlapping(side_by_side, 1.0) == 1
