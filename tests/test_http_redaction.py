"""No log line (ours, httpx's, httpcore's) holds a URL's password, a query token or a cookie."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import respx
from tests.runtime_adapter import serve_in_thread

from omnichannel.http import RetryPolicy, open_client
from omnichannel.http._redact import redact_text, redact_url

PASSWORD = "pa55-w0rd-xyz"
TOKEN = "tok-0123456789"
COOKIE = "sid-abcdef0123"


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True}, headers={"set-cookie": f"session={COOKIE}"})


async def test_userinfo_and_query_tokens_stay_out_of_info_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx's INFO line shows host and path, never the URL's password or a query token."""
    caplog.set_level(logging.DEBUG)
    async with open_client(
        network="testnet", base_url=f"https://anna:{PASSWORD}@api.test",
        transport=httpx.MockTransport(_ok), retry=RetryPolicy.testing(attempts=1),
    ) as client:
        await client.request("GET", "/v1/items", params={"access_token": TOKEN, "limit": 5})
        shown = repr(client)
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines == ['HTTP Request: GET https://api.test/v1/items?access_token=***&limit=***'
                           ' "HTTP/1.1 200 OK"']
    ours = [r for r in caplog.records if r.name == "omnichannel.http"]
    assert ours, "the client logs its own line for the exchange"
    assert PASSWORD not in caplog.text
    assert TOKEN not in caplog.text
    assert "anna" not in caplog.text
    assert PASSWORD not in shown
    assert "api.test" in shown


async def test_respx_requests_are_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    """A request mocked by respx (not a MockTransport) is logged without its credentials."""
    caplog.set_level(logging.INFO)
    with respx.mock(assert_all_called=True) as router:
        router.get("https://api.test/v2/search").respond(200, json={})
        async with open_client(network="testnet", base_url=f"https://anna:{PASSWORD}@api.test",
                               retry=RetryPolicy.testing(attempts=1)) as client:
            await client.request("GET", "/v2/search", params={"token": TOKEN, "q": "x"})
    assert any(r.name == "httpx" for r in caplog.records)
    assert PASSWORD not in caplog.text
    assert TOKEN not in caplog.text


async def test_httpcore_debug_lines_hide_header_values(caplog: pytest.LogCaptureFixture) -> None:
    """Over a real loopback connection, httpcore's DEBUG lines keep header names, not values."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"set-cookie", f"session={COOKIE}".encode()),
                                (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    caplog.set_level(logging.DEBUG)
    with serve_in_thread(app) as url:
        base = url.replace("http://", f"http://anna:{PASSWORD}@")
        async with open_client(network="testnet", base_url=base,
                               retry=RetryPolicy.testing(attempts=1)) as client:
            await client.request("GET", "/me", params={"access_token": TOKEN})
    core_lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpcore")]
    assert any("receive_response_headers.complete" in line for line in core_lines)
    assert any("b'set-cookie', b'***'" in line for line in core_lines)
    for secret in (PASSWORD, TOKEN, COOKIE):
        assert secret not in caplog.text


def test_redact_url_and_text() -> None:
    """URLs lose userinfo, query values and fragment; other text is left alone."""
    assert redact_url("https://u:p@h.test:8443/a/b?x=1&flag#frag") == "https://h.test:8443/a/b?x=***&flag"
    assert redact_url(httpx.URL("http://h.test/")) == "http://h.test/"
    assert redact_text("GET wss://u:p@h.test/s?t=1 done") == "GET wss://h.test/s?t=*** done"
    assert redact_text("nothing to hide (attempt 1, ok)") == "nothing to hide (attempt 1, ok)"
