"""`omnichannel.http`: retries, ambiguity, rate-limit waits, error mapping and logging."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

import omnichannel.http
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    ConfigurationError,
    NotFound,
    OmnichannelError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from omnichannel.http import (
    ApiClient,
    BearerAuth,
    RateLimitState,
    RetryPolicy,
    open_client,
    parse_mastodon_headers,
)
from omnichannel_x import parse_x_headers  # the X adapter's parser drives these X-shaped tests

X_API = "https://api.x.com"
START = datetime.fromtimestamp(1635976418 - 12, UTC)  # 12 s before a recorded X reset


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


class FakeTime:
    """A clock that only moves when the client sleeps; records every sleep."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    """A fresh fake clock per test."""
    return FakeTime()


@pytest.fixture
def router() -> respx.Router:
    """A respx router for the X API, plugged in as the client's transport."""
    return respx.Router(base_url=X_API, assert_all_called=False)


@pytest.fixture
def make_client(
    router: respx.Router, fake_time: FakeTime
) -> Callable[..., Any]:
    """Open an X client on the router with the fake clock and no jitter."""

    @asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[ApiClient]:
        settings: dict[str, Any] = {
            "network": "x",
            "base_url": X_API,
            "transport": httpx.MockTransport(router.handler),
            "rate_limit_parser": parse_x_headers,
            "retry": RetryPolicy(wait_initial=0.2, wait_max=5.0, wait_jitter=0.0),
            "clock": fake_time.clock,
            "sleep": fake_time.sleep,
        }
        settings.update(options)
        async with open_client(**settings) as client:
            yield client

    return make


def x_limit_headers(*, remaining: int, reset: int = 1635976418) -> dict[str, str]:
    """X rate-limit headers with the recorded POST /2/tweets limit and reset."""
    return {
        "x-rate-limit-limit": "200",
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(reset),
    }


CREATED = httpx.Response(201, json={"data": {"id": "1456012973835788293", "text": "hi"}})


# --- 429 and rate limits -------------------------------------------------------------


async def test_429_with_reset_header_is_waited_out_and_retried(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A 429 on POST /2/tweets waits exactly until x-rate-limit-reset, then sends again."""
    route = router.post("/2/tweets").mock(
        side_effect=[httpx.Response(429, headers=x_limit_headers(remaining=0)), CREATED]
    )
    async with make_client() as client:
        response = await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert response.status_code == 201
    assert route.call_count == 2
    assert fake_time.sleeps == [12.0]


async def test_429_retry_after_seconds_is_honoured(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """Retry-After in seconds sets the wait when the 429 names no reset."""
    route = router.post("/2/tweets").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), CREATED]
    )
    async with make_client() as client:
        await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert route.call_count == 2
    assert fake_time.sleeps == [7.0]


@pytest.mark.parametrize(
    "when", ["Wed, 03 Nov 2021 21:53:58 GMT", "Wed, 03 Nov 2021 21:53:58 -0000"]
)
async def test_429_retry_after_http_date_is_honoured(
    router: respx.Router, make_client: Any, fake_time: FakeTime, when: str
) -> None:
    """Retry-After as an HTTP date waits until that moment."""
    router.post("/2/tweets").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), CREATED]
    )
    async with make_client() as client:
        await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert fake_time.sleeps == [32.0]  # START is 21:53:26 UTC


async def test_429_reset_beyond_bound_raises_rate_limited_at_once(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A reset an hour away is not waited for: RateLimited carries the reset, one call made."""
    reset = 1635976418 + 3600
    route = router.post("/2/tweets").mock(
        return_value=httpx.Response(429, headers=x_limit_headers(remaining=0, reset=reset))
    )
    async with make_client() as client:
        with pytest.raises(RateLimited) as caught:
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert caught.value.reset_at == datetime.fromtimestamp(reset, UTC)
    assert caught.value.status == 429
    assert caught.value.network == "x"
    assert route.call_count == 1
    assert fake_time.sleeps == []


async def test_429_without_reset_backs_off_and_raises_after_attempts(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A 429 with no reset information backs off, and the last one raises RateLimited."""
    route = router.get("/2/users/me").mock(return_value=httpx.Response(429))
    async with make_client(retry=RetryPolicy(attempts=3, wait_jitter=0.0)) as client:
        with pytest.raises(RateLimited) as caught:
            await client.request("GET", "/2/users/me")
    assert caught.value.reset_at is None
    assert route.call_count == 3
    assert fake_time.sleeps == [0.2, 0.4]


async def test_exhausted_bucket_is_waited_for_before_sending(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """After a response with remaining 0, the next request waits for the reset before it is sent."""
    reset = START + timedelta(seconds=20)
    sent_at: list[datetime] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake_time.now)
        return httpx.Response(
            200,
            json={},
            headers={
                "x-ratelimit-limit": "300",
                "x-ratelimit-remaining": "0" if len(sent_at) == 1 else "299",
                "x-ratelimit-reset": reset.isoformat().replace("+00:00", "Z"),
            },
        )

    router.get("/api/v1/notifications").mock(side_effect=answer)
    async with make_client(
        network="mastodon", rate_limit_parser=parse_mastodon_headers, default_bucket="account"
    ) as client:
        await client.request("GET", "/api/v1/notifications")
        await client.request("GET", "/api/v1/notifications")
        assert client.rate_limits.get("mastodon", "account") is not None
    assert fake_time.sleeps == [20.0]
    assert sent_at == [START, reset]


async def test_exhausted_bucket_beyond_bound_raises_without_sending(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """When the known reset is further than the policy waits, RateLimited comes before any call."""
    from omnichannel.http import RateLimitInfo

    state = RateLimitState()
    reset = START + timedelta(minutes=15)
    state.update("x", "POST /2/tweets", RateLimitInfo(limit=200, remaining=0, reset_at=reset))
    route = router.post("/2/tweets").mock(return_value=CREATED)
    async with make_client(rate_limits=state) as client:
        with pytest.raises(RateLimited) as caught:
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert caught.value.reset_at == reset
    assert route.call_count == 0
    assert fake_time.sleeps == []


async def test_buckets_default_to_method_and_path_template(
    router: respx.Router, make_client: Any
) -> None:
    """Without a bucket, X responses are recorded under "<METHOD> <template>"."""
    router.get("/2/users/783214/mentions").mock(
        return_value=httpx.Response(200, json={}, headers=x_limit_headers(remaining=448))
    )
    async with make_client() as client:
        await client.request("GET", "/2/users/{id}/mentions", path_params={"id": "783214"})
        info = client.rate_limits.get("x", "GET /2/users/{id}/mentions")
    assert info is not None
    assert info.remaining == 448


# --- 5xx -----------------------------------------------------------------------------


async def test_503_is_retried_with_growing_backoff(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """Two 503s then a 200: the request succeeds after backoffs of 0.2 s and 0.4 s."""
    route = router.get("/2/users/me").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, json={})]
    )
    async with make_client() as client:
        response = await client.request("GET", "/2/users/me")
    assert response.status_code == 200
    assert route.call_count == 3
    assert fake_time.sleeps == [0.2, 0.4]


async def test_5xx_after_last_attempt_raises_transient_error(
    router: respx.Router, make_client: Any
) -> None:
    """A GET that keeps failing with 500 raises TransientError after every attempt is spent."""
    route = router.get("/2/users/me").mock(return_value=httpx.Response(500))
    async with make_client() as client:
        with pytest.raises(TransientError) as caught:
            await client.request("GET", "/2/users/me")
    assert caught.value.status == 500
    assert route.call_count == 4


async def test_post_503_is_retried_because_it_was_not_processed(
    router: respx.Router, make_client: Any
) -> None:
    """503 says the server did not handle the request, so even a POST is sent again."""
    route = router.post("/2/tweets").mock(side_effect=[httpx.Response(503), CREATED])
    async with make_client() as client:
        response = await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert response.status_code == 201
    assert route.call_count == 2


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_5xx_that_may_have_landed_is_ambiguous(
    router: respx.Router, make_client: Any, fake_time: FakeTime, status: int
) -> None:
    """A POST answered 500, 502 or 504 may have landed: AmbiguousDelivery, sent once."""
    route = router.post("/2/tweets").mock(return_value=httpx.Response(status))
    async with make_client() as client:
        with pytest.raises(AmbiguousDelivery) as caught:
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert caught.value.status == status
    assert route.call_count == 1
    assert fake_time.sleeps == []


async def test_503_retry_after_is_honoured(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A 503 with Retry-After waits that long instead of the backoff."""
    router.get("/2/users/me").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200)]
    )
    async with make_client() as client:
        await client.request("GET", "/2/users/me")
    assert fake_time.sleeps == [3.0]


# --- failures without a response -----------------------------------------------------


async def test_post_read_timeout_is_ambiguous_and_not_retried(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A POST that timed out after sending raises AmbiguousDelivery after exactly one call."""
    route = router.post("/2/tweets").mock(side_effect=httpx.ReadTimeout)
    async with make_client() as client:
        with pytest.raises(AmbiguousDelivery) as caught:
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert route.call_count == 1
    assert fake_time.sleeps == []
    assert caught.value.network == "x"
    assert "ReadTimeout" in str(caught.value)


@pytest.mark.parametrize("failure", [httpx.RemoteProtocolError, httpx.ReadError])
async def test_post_dropped_connection_is_ambiguous(
    router: respx.Router, make_client: Any, failure: type[Exception]
) -> None:
    """A connection dropped after a POST was sent is ambiguous too, and not retried."""
    route = router.post("/2/tweets").mock(side_effect=failure)
    async with make_client() as client:
        with pytest.raises(AmbiguousDelivery):
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert route.call_count == 1


async def test_post_connect_error_is_retried_because_nothing_was_sent(
    router: respx.Router, make_client: Any
) -> None:
    """A POST whose connection failed never left, so it is sent again and succeeds."""
    route = router.post("/2/tweets").mock(side_effect=[httpx.ConnectError, CREATED])
    async with make_client() as client:
        response = await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert response.status_code == 201
    assert route.call_count == 2


async def test_connect_timeout_exhausted_raises_transient_error(
    router: respx.Router, make_client: Any
) -> None:
    """Connect timeouts on every attempt end in TransientError, not AmbiguousDelivery."""
    route = router.post("/2/tweets").mock(side_effect=httpx.ConnectTimeout)
    async with make_client(retry=RetryPolicy.testing(attempts=3)) as client:
        with pytest.raises(TransientError) as caught:
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert not isinstance(caught.value, AmbiguousDelivery)
    assert route.call_count == 3


async def test_get_read_timeout_is_retried(router: respx.Router, make_client: Any) -> None:
    """A GET is idempotent, so a read timeout is simply tried again."""
    route = router.get("/2/users/me").mock(side_effect=[httpx.ReadTimeout, httpx.Response(200)])
    async with make_client() as client:
        response = await client.request("GET", "/2/users/me")
    assert response.status_code == 200
    assert route.call_count == 2


async def test_post_with_idempotency_key_is_retried_after_read_timeout(
    router: respx.Router, make_client: Any
) -> None:
    """An Idempotency-Key header makes a POST safe to send again after a timeout."""
    route = router.post("/api/v1/statuses").mock(
        side_effect=[httpx.ReadTimeout, httpx.Response(200, json={"id": "1"})]
    )
    async with make_client(network="mastodon") as client:
        await client.request(
            "POST", "/api/v1/statuses", data={"status": "hi"},
            headers={"Idempotency-Key": "k-1"},
        )
    assert route.call_count == 2
    assert route.calls[0].request.headers["idempotency-key"] == "k-1"
    assert route.calls[1].request.headers["idempotency-key"] == "k-1"


async def test_explicitly_idempotent_post_is_retried_after_500(
    router: respx.Router, make_client: Any
) -> None:
    """idempotent=True (a Bluesky record key chosen by us) lets a POST be retried after a 500."""
    route = router.post("/xrpc/com.atproto.repo.createRecord").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json={})]
    )
    async with make_client(network="bluesky", rate_limit_parser=None) as client:
        await client.request(
            "POST", "/xrpc/com.atproto.repo.createRecord", json={"rkey": "3kexwuoyqj32g"},
            idempotent=True,
        )
    assert route.call_count == 2


async def test_explicitly_non_idempotent_put_is_ambiguous(
    router: respx.Router, make_client: Any
) -> None:
    """idempotent=False overrides the method default: a PUT read timeout is ambiguous."""
    route = router.put("/2/tweets/1/hidden").mock(side_effect=httpx.ReadTimeout)
    async with make_client() as client:
        with pytest.raises(AmbiguousDelivery):
            await client.request("PUT", "/2/tweets/1/hidden", json={"hidden": True},
                                 idempotent=False)
    assert route.call_count == 1


async def test_retries_after_the_first_attempt_wait_and_count_as_one_loop(
    router: respx.Router, make_client: Any, fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A first 503 with Retry-After waits exactly that; the next failure backs off as attempt 2."""
    route = router.get("/2/users/me").mock(side_effect=[
        httpx.Response(503, headers={"retry-after": "7"}), httpx.Response(500),
        httpx.Response(200, json={"n": 3}),
    ])
    caplog.set_level(logging.DEBUG, logger="omnichannel.http")
    async with make_client() as client:
        response = await client.request("GET", "/2/users/me")
    assert response.json() == {"n": 3}
    assert route.call_count == 3
    assert fake_time.sleeps == [7.0, 0.4]
    records = [r for r in caplog.records if r.name == "omnichannel.http"]
    assert [(r.status, r.attempt, r.outcome) for r in records] == [  # type: ignore[attr-defined]
        (503, 1, "retry"), (500, 2, "retry"), (200, 3, "ok")
    ]


async def test_last_attempt_failing_raises_its_own_error(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """With two attempts, a 503 then a 500 raises the 500's error after one backoff."""
    route = router.get("/2/users/me").mock(
        side_effect=[httpx.Response(503), httpx.Response(500)]
    )
    async with make_client(retry=RetryPolicy(attempts=2, wait_jitter=0.0)) as client:
        with pytest.raises(TransientError) as caught:
            await client.request("GET", "/2/users/me")
    assert caught.value.status == 500
    assert route.call_count == 2
    assert fake_time.sleeps == [0.2]


async def test_repeated_requests_to_one_path_keep_their_own_query_and_host() -> None:
    """A path asked again gets its own parameters, follows a new base URL, keeps the base path."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    async with open_client(network="x", base_url="https://x.test/api/",
                           transport=httpx.MockTransport(answer)) as client:
        await client.request("GET", "/v1/items", params={"page": 1})
        await client.request("GET", "/v1/items", params={"page": 2})
        await client.request("GET", "/v1/items")
        await client.request("GET", "https://other.test/v1/items")
        client.http.base_url = httpx.URL("https://moved.test/api/")
        await client.request("GET", "/v1/items")
    assert seen == [
        "https://x.test/api/v1/items?page=1",
        "https://x.test/api/v1/items?page=2",
        "https://x.test/api/v1/items",
        "https://other.test/v1/items",
        "https://moved.test/api/v1/items",
    ]


async def test_a_client_with_default_query_parameters_sends_each_once() -> None:
    """Query parameters the underlying client adds go out once, beside the request's own."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(base_url="https://x.test", params={"lang": ["en", "de"]},
                                 transport=httpx.MockTransport(answer)) as http:
        client = ApiClient(http, network="x")
        await client.request("GET", "/v1/items", params={"page": 2})
        await client.request("GET", "/v1/items")
    assert seen == ["https://x.test/v1/items?lang=en&lang=de&page=2",
                    "https://x.test/v1/items?lang=en&lang=de"]


def test_the_retry_loop_loads_only_when_a_retry_is_needed() -> None:
    """A request answered at once never loads tenacity; one that is retried does."""
    code = """
import sys, anyio, httpx
from omnichannel.http import RetryPolicy, open_client
answers = [httpx.Response(200), httpx.Response(503), httpx.Response(200)]
async def main():
    async with open_client(network="x", base_url="https://x.test",
                           transport=httpx.MockTransport(lambda request: answers.pop(0)),
                           retry=RetryPolicy.testing(attempts=2)) as client:
        await client.request("GET", "/a")
        print("tenacity" in sys.modules)
        await client.request("GET", "/a")
        print("tenacity" in sys.modules)
anyio.run(main)
"""
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.split() == ["False", "True"]


async def test_attempts_one_disables_retries(router: respx.Router, make_client: Any) -> None:
    """RetryPolicy(attempts=1) sends once and raises the first retryable failure."""
    route = router.get("/2/users/me").mock(return_value=httpx.Response(503))
    async with make_client(retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(TransientError):
            await client.request("GET", "/2/users/me")
    assert route.call_count == 1


# --- error mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFound),
        (400, RequestRejected),
        (422, RequestRejected),
        (501, TransientError),
    ],
)
async def test_default_mapping_of_error_statuses(
    router: respx.Router, make_client: Any, status: int, error: type[OmnichannelError]
) -> None:
    """Without an adapter mapper, each error status raises its default error, sent once."""
    route = router.get("/2/tweets/1").mock(return_value=httpx.Response(status, json={}))
    async with make_client() as client:
        with pytest.raises(error) as caught:
            await client.request("GET", "/2/tweets/{id}", path_params={"id": "1"})
    assert caught.value.network == "x"
    assert "GET /2/tweets/{id}" in str(caught.value)
    assert route.call_count == 1
    assert getattr(caught.value, "status", status) == status


async def test_adapter_error_mapper_wins_and_none_falls_back(
    router: respx.Router, make_client: Any
) -> None:
    """The adapter's mapper decides the error; when it returns None the default applies."""
    from omnichannel.errors import DuplicateContent

    def mapper(response: httpx.Response) -> OmnichannelError | None:
        if "duplicate" in response.json().get("detail", ""):
            return DuplicateContent("duplicate post", network="x", status=response.status_code)
        return None

    router.post("/2/tweets").mock(
        side_effect=[
            httpx.Response(403, json={"detail": "You are not allowed to create a Tweet with "
                                                "duplicate content."}),
            httpx.Response(403, json={"detail": "Forbidden"}),
        ]
    )
    async with make_client(error_mapper=mapper) as client:
        with pytest.raises(DuplicateContent):
            await client.request("POST", "/2/tweets", json={"text": "hi"})
        with pytest.raises(AuthenticationError):
            await client.request("POST", "/2/tweets", json={"text": "hi"})


async def test_mapper_rate_limited_is_waited_like_a_429(
    router: respx.Router, make_client: Any, fake_time: FakeTime
) -> None:
    """A throttling error the mapper recognises (Meta code 4 on a 403) waits and retries."""

    def mapper(response: httpx.Response) -> OmnichannelError | None:
        if response.json().get("error", {}).get("code") == 4:
            return RateLimited(network="facebook", reset_at=fake_time.now + timedelta(seconds=30),
                               status=response.status_code, code="4")
        return None

    route = router.post("/123/comments").mock(
        side_effect=[
            httpx.Response(403, json={"error": {"code": 4, "message": "(#4) limit reached"}}),
            httpx.Response(200, json={"id": "123_456"}),
        ]
    )
    async with make_client(network="facebook", error_mapper=mapper,
                           rate_limit_parser=None) as client:
        await client.request("POST", "/{id}/comments", path_params={"id": "123"},
                             data={"message": "hi"})
    assert route.call_count == 2
    assert fake_time.sleeps == [30.0]


async def test_mapper_transient_error_on_non_idempotent_500_is_ambiguous(
    router: respx.Router, make_client: Any
) -> None:
    """A mapper's TransientError for a POST 500 still means the write may have landed."""

    def mapper(response: httpx.Response) -> OmnichannelError | None:
        return TransientError("temporary", network="facebook", status=response.status_code,
                              code="2")

    router.post("/123/comments").mock(return_value=httpx.Response(500, json={}))
    async with make_client(network="facebook", error_mapper=mapper) as client:
        with pytest.raises(AmbiguousDelivery) as caught:
            await client.request("POST", "/123/comments", data={"message": "hi"})
    assert caught.value.code == "2"


async def test_mapper_can_vouch_that_a_post_500_did_not_land(
    router: respx.Router, make_client: Any
) -> None:
    """When the mapper knows the failure (a non-transient error), it is raised, not ambiguity."""

    def mapper(response: httpx.Response) -> OmnichannelError | None:
        return RequestRejected("invalid parameter", network="facebook", status=500, code="100")

    router.post("/123/comments").mock(return_value=httpx.Response(500, json={}))
    async with make_client(network="facebook", error_mapper=mapper) as client:
        with pytest.raises(RequestRejected):
            await client.request("POST", "/123/comments", data={"message": "hi"})


async def test_mapper_that_raises_on_html_502_still_gives_ambiguity(
    router: respx.Router, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapper choking on a gateway's HTML page is ignored: the POST 502 stays ambiguous."""

    def mapper(response: httpx.Response) -> OmnichannelError | None:
        response.json()  # raises on HTML
        return None

    router.post("/2/tweets").mock(
        return_value=httpx.Response(502, text="<html>Bad Gateway</html>")
    )
    async with make_client(error_mapper=mapper) as client:
        with pytest.raises(AmbiguousDelivery):
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert "error mapper raised JSONDecodeError" in caplog.text


async def test_parser_that_raises_does_not_fail_a_success(
    router: respx.Router, make_client: Any
) -> None:
    """A broken rate-limit parser cannot turn a landed POST into an error."""

    def parser(headers: Any, /, *, now: datetime) -> None:
        raise KeyError("x-rate-limit-reset")

    route = router.post("/2/tweets").mock(return_value=CREATED)
    async with make_client(rate_limit_parser=parser) as client:
        response = await client.request("POST", "/2/tweets", json={"text": "hi"})
    assert response.status_code == 201
    assert route.call_count == 1


# --- requests as built ------------------------------------------------------------------


async def test_path_params_are_percent_encoded(router: respx.Router, make_client: Any) -> None:
    """Path parameter values are encoded, so an id cannot change the path."""
    route = router.get(url__startswith=f"{X_API}/2/tweets/").mock(return_value=httpx.Response(200))
    async with make_client() as client:
        await client.request("GET", "/2/tweets/{id}", path_params={"id": "1/../../admin"})
    assert route.calls.last.request.url.raw_path == b"/2/tweets/1%2F..%2F..%2Fadmin"


async def test_missing_or_unknown_path_params_are_configuration_errors(
    make_client: Any,
) -> None:
    """A placeholder without a value, or a value without a placeholder, is refused."""
    async with make_client() as client:
        with pytest.raises(ConfigurationError, match="missing"):
            await client.request("GET", "/2/tweets/{id}")
        with pytest.raises(ConfigurationError, match="not in"):
            await client.request("GET", "/2/tweets", path_params={"id": "1"})


async def test_user_agent_and_default_headers_are_sent(
    router: respx.Router, make_client: Any
) -> None:
    """Every request carries the User-Agent and the client's default headers."""
    route = router.get("/2/users/me").mock(return_value=httpx.Response(200))
    async with make_client(user_agent="helpdesk/1.0",
                           headers={"atproto-proxy": "did:web:api.bsky.chat#bsky_chat"}) as client:
        await client.request("GET", "/2/users/me")
    sent = route.calls.last.request
    assert sent.headers["user-agent"] == "helpdesk/1.0"
    assert sent.headers["atproto-proxy"] == "did:web:api.bsky.chat#bsky_chat"


async def test_unauthenticated_request_carries_no_credentials(
    router: respx.Router, make_client: Any
) -> None:
    """authenticated=False sends the request without the client's auth."""
    route = router.post("/xrpc/com.atproto.server.createSession").mock(
        return_value=httpx.Response(200, json={})
    )
    async with make_client(auth=BearerAuth("access-token")) as client:
        await client.request("POST", "/xrpc/com.atproto.server.createSession",
                             json={"identifier": "h"}, authenticated=False)
    assert "authorization" not in route.calls.last.request.headers


async def test_default_transport_is_mockable_with_respx() -> None:
    """Without an injected transport the client uses httpx's own, which respx can stand in for."""
    with respx.mock(base_url="https://mastodon.example") as mock:
        route = mock.get("/api/v1/instance").mock(return_value=httpx.Response(200, json={}))
        async with open_client(network="mastodon", base_url="https://mastodon.example") as client:
            response = await client.request("GET", "/api/v1/instance")
    assert response.status_code == 200
    assert route.called


# --- logging and secrets -----------------------------------------------------------------


async def test_one_log_record_per_exchange_with_fields(
    router: respx.Router, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each exchange logs network, method, endpoint template, status, timing and attempt."""
    router.get("/2/users/783214/mentions").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={})]
    )
    caplog.set_level(logging.DEBUG, logger="omnichannel.http")
    async with make_client() as client:
        await client.request("GET", "/2/users/{id}/mentions", path_params={"id": "783214"},
                             params={"since_id": "1293593516040269825"})
    records = [r for r in caplog.records if r.name == "omnichannel.http"]
    assert [(r.status, r.attempt, r.outcome) for r in records] == [  # type: ignore[attr-defined]
        (503, 1, "retry"), (200, 2, "ok")
    ]
    for record in records:
        assert record.network == "x"  # type: ignore[attr-defined]
        assert record.method == "GET"  # type: ignore[attr-defined]
        assert record.endpoint == "/2/users/{id}/mentions"  # type: ignore[attr-defined]
        assert isinstance(record.elapsed_ms, float)  # type: ignore[attr-defined]
        assert "783214" not in record.getMessage()
        assert "since_id" not in record.getMessage()


async def test_ambiguous_failure_is_logged_with_error_name(
    router: respx.Router, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure without a response logs the exception name and outcome "ambiguous"."""
    router.post("/2/tweets").mock(side_effect=httpx.ReadTimeout)
    caplog.set_level(logging.DEBUG, logger="omnichannel.http")
    async with make_client() as client:
        with pytest.raises(AmbiguousDelivery):
            await client.request("POST", "/2/tweets", json={"text": "hi"})
    (record,) = [r for r in caplog.records if r.name == "omnichannel.http"]
    assert record.levelno == logging.WARNING
    assert (record.status, record.error, record.outcome) == (  # type: ignore[attr-defined]
        None, "ReadTimeout", "ambiguous"
    )


async def test_bearer_token_never_leaks(
    router: respx.Router, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The token is sent, but is in no log line, repr or error message."""
    token = "AAAA-very-secret-bearer-token-1234"
    route = router.get("/2/users/me").mock(
        side_effect=[httpx.Response(503), httpx.Response(401, json={"title": "Unauthorized"})]
    )
    caplog.set_level(logging.DEBUG)
    auth = BearerAuth(token)
    async with make_client(auth=auth) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.request("GET", "/2/users/me")
        shown = [repr(client), repr(auth), str(caught.value), repr(caught.value), caplog.text]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {token}"
    for text in shown:
        assert token not in text


# --- long-lived streams --------------------------------------------------------------------


class _DropsAfter(httpx.AsyncByteStream):
    """A body that sends ``data`` and then loses the connection."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset by peer")


async def test_open_stream_yields_the_body_and_logs_the_template(
    router: respx.Router, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream is read line by line, with its read timeout, and logged without its query."""
    route = router.get("/2/tweets/search/stream").respond(200, content=b"one\ntwo\n")
    caplog.set_level(logging.DEBUG, logger="omnichannel.http")
    async with make_client() as client, client.open_stream(
        "GET", "/2/tweets/search/stream", params={"since_id": "1456012973835788293"},
        read_timeout=90.0,
    ) as response:
        lines = [line async for line in response.aiter_lines()]
    assert lines == ["one", "two"]
    assert route.calls.last.request.extensions["timeout"]["read"] == 90.0
    (record,) = [r for r in caplog.records if r.name == "omnichannel.http"]
    assert (record.status, record.outcome) == (200, "ok")  # type: ignore[attr-defined]
    assert record.endpoint == "/2/tweets/search/stream"  # type: ignore[attr-defined]
    assert "since_id" not in record.getMessage()


async def test_open_stream_maps_error_answers(router: respx.Router, make_client: Any) -> None:
    """An error answer raises our error through the mapper, without retrying."""
    route = router.get("/2/tweets/search/stream").mock(
        side_effect=[httpx.Response(401), httpx.Response(503)]
    )
    async with make_client() as client:
        with pytest.raises(AuthenticationError):
            async with client.open_stream("GET", "/2/tweets/search/stream"):
                pass
        with pytest.raises(TransientError):
            async with client.open_stream("GET", "/2/tweets/search/stream"):
                pass
    assert route.call_count == 2


async def test_dropped_or_unreachable_stream_is_transient_error(
    router: respx.Router, make_client: Any
) -> None:
    """A connection lost while reading, or never made, is a TransientError, not an httpx error."""
    router.get("/2/tweets/search/stream").mock(side_effect=[
        httpx.Response(200, stream=_DropsAfter(b"one\n")), httpx.ConnectError("refused"),
    ])
    async def read_all(client: ApiClient) -> None:
        async with client.open_stream("GET", "/2/tweets/search/stream") as response:
            async for _ in response.aiter_lines():
                pass

    async with make_client() as client:
        with pytest.raises(TransientError, match="dropped") as dropped:
            await read_all(client)
        with pytest.raises(TransientError, match="could not be opened"):
            async with client.open_stream("GET", "/2/tweets/search/stream"):
                pass
    assert dropped.value.network == "x"


async def test_reconnects_back_off_with_the_client_sleep_and_give_up(
    make_client: Any, fake_time: FakeTime
) -> None:
    """Drops in a row wait a growing backoff; one more than the limit raises TransientError."""
    drop = TransientError("the stream dropped", network="x")
    async with make_client(retry=RetryPolicy(wait_initial=0.5, wait_max=3.0, wait_jitter=0.0)) as (
        client
    ):
        reconnects = client.reconnects(limit=2)
        await reconnects.wait(drop)
        await reconnects.wait(drop)
        with pytest.raises(TransientError, match="dropped 3 times in a row") as gave_up:
            await reconnects.wait(drop)
        reconnects.connected()
        await reconnects.wait()  # a clean end: the shortest wait, no drop counted
        await reconnects.wait(drop)
    assert fake_time.sleeps == [0.5, 1.0, 0.5, 0.5]
    assert gave_up.value.__cause__ is drop
    assert reconnects.drops == 1


# --- policy and surface ----------------------------------------------------------------------


def test_retry_policy_backoff_grows_and_caps() -> None:
    """Backoff doubles from wait_initial and never exceeds wait_max."""
    policy = RetryPolicy(wait_initial=0.5, wait_max=3.0, wait_jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(wait_initial=0.5, wait_max=3.0, wait_jitter=0.25)
    assert all(0.5 <= jittered.backoff(1) <= 0.75 for _ in range(50))


def test_retry_policy_testing_has_no_backoff() -> None:
    """RetryPolicy.testing() keeps the attempts but never waits between them."""
    policy = RetryPolicy.testing(attempts=3)
    assert policy.attempts == 3
    assert [policy.backoff(n) for n in range(1, 4)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "options", [{"attempts": 0}, {"wait_initial": -1}, {"wait_initial": 9, "wait_max": 1}]
)
def test_retry_policy_refuses_nonsense(options: dict[str, Any]) -> None:
    """Zero attempts, negative waits or an initial wait above the maximum are refused."""
    with pytest.raises(ValueError, match="validation error"):
        RetryPolicy(**options)


def test_public_names_are_exactly_all() -> None:
    """omnichannel.http exports exactly its public names; each class and function is documented."""
    public = {
        name
        for name, value in vars(omnichannel.http).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(omnichannel.http.__all__) == public
    assert list(omnichannel.http.__all__) == sorted(omnichannel.http.__all__)
    for name in omnichannel.http.__all__:
        value = getattr(omnichannel.http, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
