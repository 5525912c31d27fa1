"""Token health: an Instagram Login token refreshed before it expires, and each step reported."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from omnichannel.errors import AuthenticationError, ConfigurationError
from omnichannel.events import AuthHealth
from omnichannel.http import RetryPolicy
from omnichannel_meta import FacebookAdapter, InstagramAdapter, TokenHealth
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox

REFRESH = "GET /refresh_access_token"


@asynccontextmanager
async def opened(
    sandbox: InstagramSandbox, seen: list[TokenHealth],
    reports: list[AuthHealth] | None = None, **extra: Any,
) -> AsyncIterator[InstagramAdapter]:
    adapter = InstagramAdapter(
        {**sandbox.adapter_settings(base_url="https://graph.instagram.test"), "login": "instagram",
         **extra},
        transport=sandbox.transport(), clock=sandbox.clock.peek,
        retry=RetryPolicy(attempts=1), on_token_health=seen.append,
    )
    if reports is not None:
        adapter.auth_health_sink = reports.append  # what a hub does
    async with adapter:
        yield adapter


async def test_a_token_near_expiry_is_refreshed_and_the_new_one_used() -> None:
    """5 days left: open refreshes it, the hook gets the new token, the old one is not needed."""
    sandbox = InstagramSandbox(base_url="https://graph.instagram.test")
    old = sandbox.long_lived_token(expires_in=timedelta(days=5))
    seen: list[TokenHealth] = []
    async with opened(sandbox, seen) as adapter:
        assert sandbox.request_count(REFRESH) == 1
        (health,) = seen
        assert health.status == "refreshed"
        assert health.access_token is not None
        new = health.access_token.get_secret_value()
        assert new != old
        info = sandbox.token_info(new)
        assert info is not None
        assert health.expires_at == adapter.token_expires_at == info.expires_at
        sandbox.expire_token(old)
        dm = sandbox.customer_dm("still there?")
        batch = await adapter.poll(None)
    assert dm.id in {e.id.rsplit(":", 1)[-1] for e in batch.events}
    assert sandbox.request_count(REFRESH) == 1


async def test_a_token_far_from_expiry_is_left_alone() -> None:
    """30 days left (more than refresh_before): no refresh on open or poll, nothing reported."""
    sandbox = InstagramSandbox(base_url="https://graph.instagram.test")
    sandbox.long_lived_token(expires_in=timedelta(days=30))
    seen: list[TokenHealth] = []
    async with opened(sandbox, seen) as adapter:
        await adapter.poll(None)
    assert (sandbox.request_count(REFRESH), seen) == (0, [])


async def test_a_failed_refresh_is_reported_and_tried_again_an_hour_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Meta fails the refresh: refresh_failed (logged), polling goes on, a retry after an hour."""
    sandbox = InstagramSandbox(base_url="https://graph.instagram.test")
    token = sandbox.long_lived_token(expires_in=timedelta(days=2))
    sandbox.faults.fail(REFRESH, 500, times=1, retry_after=0)
    seen: list[TokenHealth] = []
    reports: list[AuthHealth] = []
    with caplog.at_level(logging.INFO, logger="omnichannel"):
        async with opened(sandbox, seen, reports) as adapter:
            await adapter.poll(None)
            assert [h.status for h in seen] == ["refresh_failed"]
            assert seen[0].error is not None
            assert seen[0].error.startswith("TransientError")
            sandbox.clock.advance(timedelta(minutes=61))
            await adapter.poll(None)
    assert [h.status for h in seen] == ["refresh_failed", "refreshed"]
    assert [r.kind for r in reports] == ["refresh_failed", "refreshed"]
    assert all(token not in r.detail for r in reports)
    assert sandbox.request_count(REFRESH) == 2
    warned = [r for r in caplog.records if "refresh failed" in r.getMessage()]
    assert warned
    assert warned[0].levelno == logging.WARNING
    assert token not in caplog.text
    refreshed = seen[1].access_token
    assert refreshed is not None
    assert refreshed.get_secret_value() not in caplog.text


async def test_an_expired_token_cannot_be_refreshed() -> None:
    """Past expiry Meta refuses the refresh (190): a person must log in again."""
    sandbox = InstagramSandbox(base_url="https://graph.instagram.test")
    sandbox.long_lived_token(expires_in=timedelta(days=30))
    seen: list[TokenHealth] = []
    async with opened(sandbox, seen) as adapter:
        sandbox.expire_token()
        with pytest.raises(AuthenticationError):
            await adapter.refresh_token()


async def test_a_page_token_near_expiry_is_reported_expiring_once_a_day() -> None:
    """Not refreshable (a Page token): "expiring" on open, not again until a day has passed."""
    sandbox = FacebookSandbox()
    seen: list[TokenHealth] = []
    expires = sandbox.clock.peek() + timedelta(days=3)
    adapter = FacebookAdapter({**sandbox.adapter_settings(), "token_expires_at": expires},
                              transport=sandbox.transport(), clock=sandbox.clock.peek,
                              on_token_health=seen.append)
    async with adapter:
        await adapter.poll(None)
        sandbox.clock.advance(timedelta(hours=25))
        await adapter.poll(None)
        with pytest.raises(ConfigurationError):
            await adapter.refresh_token()
    assert [(h.status, h.expires_at) for h in seen] == [("expiring", expires)] * 2
    assert sandbox.request_count("*/refresh_access_token") == 0


async def test_a_hook_that_raises_does_not_stop_the_adapter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hook's error is logged by type; the token is refreshed and used all the same."""
    sandbox = InstagramSandbox(base_url="https://graph.instagram.test")
    sandbox.long_lived_token(expires_in=timedelta(days=1))

    async def broken(health: TokenHealth) -> None:
        raise RuntimeError(f"cannot store {health.access_token}")

    adapter = InstagramAdapter(
        {**sandbox.adapter_settings(), "login": "instagram"}, transport=sandbox.transport(),
        clock=sandbox.clock.peek, on_token_health=broken,
    )
    async with adapter:
        await adapter.poll(None)
    assert sandbox.request_count(REFRESH) == 1
    assert "the token health hook raised RuntimeError" in caplog.text
