"""`omnichannel.testing.faults`: seeded, reproducible fault injection."""

from __future__ import annotations

import httpx
import pytest

from omnichannel.testing import Faults, HandlerResult, Sandbox, SandboxRequest, route
from omnichannel.testing.faults import route_matcher


class CounterSandbox(Sandbox):
    """Counts writes, so a test can tell whether a request was applied."""

    network = "counter"

    def setup(self) -> None:
        self.writes = 0

    @route("POST", "/items")
    def create(self, request: SandboxRequest) -> HandlerResult:
        self.writes += 1
        return {"n": self.writes}

    @route("GET", "/items/{id}")
    def read(self, request: SandboxRequest) -> HandlerResult:
        return {"id": request.params["id"]}


async def run_script(sandbox: Sandbox, requests: int = 40) -> list[str]:
    """Send a fixed sequence of requests; return what each one came to."""
    outcomes: list[str] = []
    async with sandbox.client() as http:
        for n in range(requests):
            try:
                if n % 2:
                    response = await http.post("/items")
                else:
                    response = await http.get(f"/items/{n}")
                outcomes.append(str(response.status_code))
            except httpx.TransportError as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def plan(sandbox: Sandbox) -> None:
    """The same mixed fault plan for every run."""
    sandbox.faults.fail("*", 503, rate=0.2)
    sandbox.faults.rate_limit("GET /items/{id}", rate=0.1)
    sandbox.faults.lose_response("POST /items", rate=0.2)
    sandbox.faults.reset("*", rate=0.05)


async def test_same_seed_same_faults() -> None:
    """Two sandboxes with one seed inject the same faults on the same requests."""
    first, second = CounterSandbox(seed=42), CounterSandbox(seed=42)
    plan(first)
    plan(second)
    outcomes = await run_script(first), await run_script(second)
    assert outcomes[0] == outcomes[1]
    assert first.faults.hits == second.faults.hits
    assert first.writes == second.writes
    assert {h.kind for h in first.faults.hits} == {"status", "rate_limit", "lost_response", "reset"}


async def test_another_seed_other_faults() -> None:
    """A different seed draws a different fault sequence."""
    first, second = CounterSandbox(seed=1), CounterSandbox(seed=2)
    plan(first)
    plan(second)
    await run_script(first)
    await run_script(second)
    assert first.faults.hits != second.faults.hits


async def test_reseed_replays_the_sequence() -> None:
    """reseed() restarts the random draws: the same requests get the same faults again."""
    sandbox = CounterSandbox(seed=5)
    plan(sandbox)
    once = await run_script(sandbox, 20)
    hits = list(sandbox.faults.hits)
    sandbox.faults.reseed(5)
    assert await run_script(sandbox, 20) == once
    assert [(h.kind, h.path) for h in sandbox.faults.hits] == [(h.kind, h.path) for h in hits]


async def test_times_fires_exactly_that_often() -> None:
    """A rule with times=2 fails the next two matching requests, then never again."""
    sandbox = CounterSandbox()
    rule = sandbox.faults.fail("POST /items", 502, times=2)
    async with sandbox.client() as http:
        statuses = [(await http.post("/items")).status_code for _ in range(4)]
        assert (await http.get("/items/1")).status_code == 200
    assert statuses == [502, 502, 200, 200]
    assert rule.fired == 2
    assert not rule.active
    assert sandbox.writes == 2


async def test_lost_response_applies_the_write_then_times_out() -> None:
    """A lost response: the write happens, the client gets ReadTimeout."""
    sandbox = CounterSandbox()
    sandbox.faults.lose_response("POST /items", times=1)
    async with sandbox.client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/items")
    assert sandbox.writes == 1
    record = sandbox.requests[-1]
    assert (record.fault, record.applied, record.delivered, record.status) == (
        "lost_response", True, False, 200)
    assert sandbox.served(200) == 0


@pytest.mark.parametrize(("kind", "error"), [("reset", httpx.RemoteProtocolError),
                                             ("timeout", httpx.ReadTimeout)])
async def test_dropped_connections_apply_nothing(kind: str, error: type[Exception]) -> None:
    """Resets and timeouts raise httpx's error and leave the world untouched."""
    sandbox = CounterSandbox()
    sandbox.faults.add("POST /items", kind, times=1)  # type: ignore[arg-type]
    async with sandbox.client() as http:
        with pytest.raises(error):
            await http.post("/items")
    assert sandbox.writes == 0
    assert sandbox.requests[-1].status is None


async def test_status_and_rate_limit_faults_use_the_network_shapes() -> None:
    """Injected 5xx and 429 come from the sandbox's server_error and rate_limited hooks."""
    sandbox = CounterSandbox()
    sandbox.faults.fail("POST /items", 500, times=1)
    sandbox.faults.rate_limit("POST /items", retry_after=7, times=1)
    async with sandbox.client() as http:
        failed = await http.post("/items")
        limited = await http.post("/items")
    assert (failed.status_code, failed.json()) == (500, {"error": "Internal server error"})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert sandbox.writes == 0
    assert sandbox.served(429) == 1


async def test_latency_is_recorded_and_the_answer_still_comes() -> None:
    """A latency fault delays but does not change the answer."""
    sandbox = CounterSandbox()
    sandbox.faults.latency("GET /items/{id}", 0.01, times=1)
    async with sandbox.client() as http:
        response = await http.get("/items/9")
    assert response.json() == {"id": "9"}
    assert [(h.kind, h.seconds) for h in sandbox.faults.hits] == [("latency", 0.01)]


@pytest.mark.parametrize(
    ("pattern", "request_line", "matches"),
    [
        ("POST /items", "POST /items", True),
        ("POST /items", "GET /items", False),
        ("/items/{id}", "DELETE /items/42", True),
        ("/items/{id}", "GET /items/42/like", False),
        ("/api/*", "GET /api/v1/statuses", True),
        ("*", "PATCH /anything/at/all", True),
        ("get /items", "GET /items", True),
    ],
)
def test_route_patterns(pattern: str, request_line: str, matches: bool) -> None:
    """Patterns take an optional method, {param} for one segment and * for anything."""
    assert bool(route_matcher(pattern).match(request_line)) is matches


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "explode"}, {"kind": "status", "rate": 1.5}, {"kind": "status", "times": -1},
     {"kind": "latency", "seconds": -1.0}, {"kind": "status", "status": 429}],
)
def test_bad_rules_are_refused(kwargs: dict[str, object]) -> None:
    """Unknown kinds, rates outside [0, 1], negative counts and non-5xx statuses raise."""
    with pytest.raises(ValueError):
        Faults().add("*", **kwargs)  # type: ignore[arg-type]
