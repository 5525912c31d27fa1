"""Auth flows of `omnichannel.http`: bearer, refresh on expiry, OAuth 1.0a signing."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from urllib.parse import unquote

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx
from pydantic import SecretStr

from omnichannel.errors import AuthenticationError, ConfigurationError, TokenExpired
from omnichannel.http import (
    ApiClient,
    BearerAuth,
    OAuth1Auth,
    RefreshingBearerAuth,
    RetryPolicy,
    open_client,
)

BSKY = "https://bsky.social"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture
def router() -> respx.Router:
    """A respx router for a Bluesky PDS, plugged in as the client's transport."""
    return respx.Router(base_url=BSKY, assert_all_called=False)


class Refresher:
    """A refresh callback handing out numbered tokens and counting its calls."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.calls = 0
        self.fail_with = fail_with

    async def __call__(self) -> SecretStr:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        if self.fail_with is not None:
            raise self.fail_with
        return SecretStr(f"access-{self.calls}")


class TokenGate:
    """A handler answering 200 to ``Bearer <valid>`` and an expired answer otherwise.

    It records the Authorization header of each request as it arrives (the auth
    flow re-sends the same request object with a new header).
    """

    def __init__(self, valid: str, *, expired: httpx.Response | None = None) -> None:
        self.valid = valid
        self.expired = expired
        self.seen: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") == f"Bearer {self.valid}":
            return httpx.Response(200, json={"ok": True})
        return self.expired if self.expired is not None else httpx.Response(401, json={})


def client_for(router: respx.Router, auth: httpx.Auth) -> AbstractAsyncContextManager[ApiClient]:
    """Open a Bluesky client on the router with the given auth and no backoff."""
    return open_client(
        network="bluesky",
        base_url=BSKY,
        auth=auth,
        transport=httpx.MockTransport(router.handler),
        retry=RetryPolicy.testing(),
    )


async def test_bearer_auth_sets_header(router: respx.Router) -> None:
    """BearerAuth sends Authorization: Bearer <token>."""
    route = router.get("/xrpc/app.bsky.actor.getProfile").mock(return_value=httpx.Response(200))
    async with client_for(router, BearerAuth(SecretStr("tok"))) as client:
        await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
    assert route.calls.last.request.headers["authorization"] == "Bearer tok"


async def test_explicit_authorization_header_is_kept(router: respx.Router) -> None:
    """A request that brings its own Authorization (a refresh JWT) is not overwritten."""
    route = router.post("/xrpc/com.atproto.server.refreshSession").mock(
        return_value=httpx.Response(200, json={})
    )
    async with client_for(router, BearerAuth("access")) as client:
        await client.request("POST", "/xrpc/com.atproto.server.refreshSession",
                             headers={"Authorization": "Bearer refresh-jwt"})
    assert route.calls.last.request.headers["authorization"] == "Bearer refresh-jwt"


async def test_refresh_on_401_repeats_the_request_once(router: respx.Router) -> None:
    """A 401 refreshes the token once and the same request is sent again with the new one."""
    gate = TokenGate("access-1")
    route = router.post("/xrpc/com.atproto.repo.createRecord").mock(side_effect=gate)
    refresh = Refresher()
    auth = RefreshingBearerAuth(SecretStr("stale"), refresh=refresh, network="bluesky")
    async with client_for(router, auth) as client:
        response = await client.request("POST", "/xrpc/com.atproto.repo.createRecord",
                                        json={"collection": "app.bsky.feed.post"})
        await client.request("POST", "/xrpc/com.atproto.repo.createRecord", json={})
    assert response.status_code == 200
    assert refresh.calls == 1
    assert auth.refresh_count == 1
    assert gate.seen == ["Bearer stale", "Bearer access-1", "Bearer access-1"]
    assert route.call_count == 3
    assert json.loads(route.calls[1].request.content) == {"collection": "app.bsky.feed.post"}


async def test_refresh_on_predicate_for_bluesky_expired_token(router: respx.Router) -> None:
    """is_expired catches Bluesky's 400 ExpiredToken, which is not a 401."""
    expired = httpx.Response(400, json={"error": "ExpiredToken", "message": "Token has expired"})
    router.get("/xrpc/app.bsky.notification.listNotifications").mock(
        side_effect=TokenGate("access-1", expired=expired)
    )

    def is_expired(response: httpx.Response) -> bool:
        return response.status_code == 400 and response.json().get("error") == "ExpiredToken"

    refresh = Refresher()
    auth = RefreshingBearerAuth("stale", refresh=refresh, is_expired=is_expired)
    async with client_for(router, auth) as client:
        response = await client.request("GET", "/xrpc/app.bsky.notification.listNotifications")
    assert response.status_code == 200
    assert refresh.calls == 1


async def test_still_401_after_refresh_is_authentication_error(router: respx.Router) -> None:
    """If the fresh token is refused too, AuthenticationError comes after one refresh only."""
    route = router.get("/xrpc/app.bsky.actor.getProfile").mock(
        return_value=httpx.Response(401, json={})
    )
    refresh = Refresher()
    async with client_for(router, RefreshingBearerAuth("stale", refresh=refresh)) as client:
        with pytest.raises(AuthenticationError):
            await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
    assert refresh.calls == 1
    assert route.call_count == 2


async def test_failed_refresh_raises_token_expired(router: respx.Router) -> None:
    """A refresh callback that blows up becomes TokenExpired, without its message."""
    router.get("/xrpc/app.bsky.actor.getProfile").mock(side_effect=TokenGate("never"))
    refresh = Refresher(fail_with=RuntimeError("refresh-jwt-secret-in-message"))
    auth = RefreshingBearerAuth("stale", refresh=refresh, network="bluesky")
    async with client_for(router, auth) as client:
        with pytest.raises(TokenExpired) as caught:
            await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
    assert caught.value.network == "bluesky"
    assert "refresh-jwt-secret" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_refresh_authentication_error_passes_through(router: respx.Router) -> None:
    """An AuthenticationError raised by the callback (revoked session) reaches the caller as is."""
    router.get("/xrpc/app.bsky.actor.getProfile").mock(side_effect=TokenGate("never"))
    revoked = AuthenticationError("session revoked", network="bluesky")
    auth = RefreshingBearerAuth("stale", refresh=Refresher(fail_with=revoked))
    async with client_for(router, auth) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
    assert caught.value is revoked


async def test_without_initial_token_the_first_request_logs_in(router: respx.Router) -> None:
    """With access=None the token is obtained before the first request is sent."""
    route = router.get("/xrpc/app.bsky.actor.getProfile").mock(side_effect=TokenGate("access-1"))
    refresh = Refresher()
    async with client_for(router, RefreshingBearerAuth(None, refresh=refresh)) as client:
        await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
    assert refresh.calls == 1
    assert route.call_count == 1


async def test_concurrent_expired_requests_share_one_refresh(router: respx.Router) -> None:
    """Several requests meeting the same expired token trigger a single refresh."""
    router.get("/xrpc/app.bsky.actor.getProfile").mock(side_effect=TokenGate("access-1"))
    refresh = Refresher()
    statuses: list[int] = []
    async with client_for(router, RefreshingBearerAuth("stale", refresh=refresh)) as client:

        async def fetch() -> None:
            response = await client.request("GET", "/xrpc/app.bsky.actor.getProfile")
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(fetch)
    assert statuses == [200] * 5
    assert refresh.calls == 1


def test_refreshing_auth_refuses_sync_clients() -> None:
    """RefreshingBearerAuth is async-only and says so on a sync client."""
    auth = RefreshingBearerAuth("t", refresh=Refresher())
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with httpx.Client(transport=transport) as client, pytest.raises(ConfigurationError):
        client.get("https://bsky.social/", auth=auth)


def test_auth_reprs_hide_secrets() -> None:
    """No auth object shows a token or secret in its repr."""
    secrets = ["bearer-secret", "refresh-secret", "consumer-secret", "token-secret"]
    shown = [
        repr(BearerAuth(secrets[0])),
        repr(RefreshingBearerAuth(secrets[1], refresh=Refresher())),
        repr(OAuth1Auth(consumer_key="ck", consumer_secret=secrets[2], token="t",
                        token_secret=secrets[3])),
    ]
    for text in shown:
        assert all(secret not in text for secret in secrets)
        assert "**********" in text


# --- OAuth 1.0a ---------------------------------------------------------------------------

# The worked example of X's "Creating a signature" page (developer docs for OAuth 1.0a).
# The published signature was computed for host api.twitter.com, which the base URL
# below therefore keeps (the page now shows api.x.com in its prose).
EXAMPLE = OAuth1Auth(
    consumer_key="xvz1evFS4wEEPTGEFPHBog",
    consumer_secret=SecretStr("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"),
    token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
    token_secret=SecretStr("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"),
)
EXAMPLE_NONCE = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"
EXAMPLE_TIMESTAMP = 1318622958


def example_request() -> httpx.Request:
    """The documented request: query include_entities=true and a form status."""
    return httpx.Request(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json",
        params={"include_entities": "true"},
        data={"status": "Hello Ladies + Gentlemen, a signed OAuth request!"},
    )


def test_oauth1_signature_matches_documented_example() -> None:
    """The documented inputs sign to hCtSmYh+iHYCEqBWrE7C7hYmtUk= in a complete header."""
    header = EXAMPLE.sign(example_request(), nonce=EXAMPLE_NONCE, timestamp=EXAMPLE_TIMESTAMP)
    assert header == (
        'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", '
        'oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", '
        'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D", '
        'oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="1318622958", '
        'oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", '
        'oauth_version="1.0"'
    )


def test_oauth1_signature_covers_body_query_and_method() -> None:
    """Changing the form body, the query or the method changes the signature."""
    def signature(request: httpx.Request) -> str:
        return EXAMPLE.sign(request, nonce=EXAMPLE_NONCE, timestamp=EXAMPLE_TIMESTAMP)

    base = signature(example_request())
    url = "https://api.twitter.com/1.1/statuses/update.json"
    other_body = httpx.Request("POST", url, params={"include_entities": "true"},
                               data={"status": "Hello"})
    other_query = httpx.Request("POST", url, data={
        "status": "Hello Ladies + Gentlemen, a signed OAuth request!"})
    json_body = httpx.Request("POST", url, params={"include_entities": "true"},
                              json={"status": "ignored"})
    json_body_2 = httpx.Request("POST", url, params={"include_entities": "true"},
                                json={"status": "other"})
    assert signature(other_body) != base
    assert signature(other_query) != base
    assert signature(json_body) == signature(json_body_2)  # JSON bodies are not signed


async def test_oauth1_flow_signs_each_request_freshly() -> None:
    """Sent requests carry an OAuth header that verifies, with a new nonce every time."""
    router = respx.Router(base_url="https://api.x.com")
    route = router.post("/2/tweets").mock(return_value=httpx.Response(201, json={}))
    async with open_client(network="x", base_url="https://api.x.com", auth=EXAMPLE,
                           transport=httpx.MockTransport(router.handler)) as client:
        await client.request("POST", "/2/tweets", json={"text": "hi"})
        await client.request("POST", "/2/tweets", json={"text": "hi"})
    nonces = []
    for call in route.calls:
        header = call.request.headers["authorization"]
        assert header.startswith("OAuth ")
        fields = {
            key: unquote(value.strip('"'))
            for key, value in (part.split("=", 1) for part in header[6:].split(", "))
        }
        expected = EXAMPLE.sign(call.request, nonce=fields["oauth_nonce"],
                                timestamp=int(fields["oauth_timestamp"]))
        assert header == expected
        nonces.append(fields["oauth_nonce"])
    assert len(set(nonces)) == 2
