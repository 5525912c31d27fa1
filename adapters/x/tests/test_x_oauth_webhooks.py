"""The PKCE authorization against XSandbox, and the webhook CRC and signature helpers."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from omnichannel.errors import AuthenticationError, WebhookSignatureError
from omnichannel_x import XAdapter
from omnichannel_x.oauth import code_from_redirect, exchange_code, main, start_authorization
from omnichannel_x.sandbox import XSandbox
from omnichannel_x.webhooks import SIGNATURE_HEADER, crc_response, sign, verify_signature

pytestmark = pytest.mark.anyio

# Computed with: printf 'challenge' | openssl dgst -sha256 -hmac 'consumer-secret' -binary | base64
CRC_VECTOR = "sha256=2RUZDVKjSpEV/C/r9ivMsVZJ4DFPAawjJFQQzY+6ba4="
BODY = b'{"for_user_id":"2244994945","tweet_create_events":[]}'
# printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'consumer-secret' -binary | base64
BODY_SIGNATURE = "sha256=8ZKMZJQlQBLCsGiw/q1yrNQyXpR6DZy3vh/q8ZeFj7M="


def test_crc_answer_matches_an_independent_hmac() -> None:
    """The CRC answer is JSON {"response_token": "sha256=<base64 HMAC-SHA256>"}."""
    response = crc_response("challenge", "consumer-secret")
    assert response.status == 200
    assert json.loads(response.body) == {"response_token": CRC_VECTOR}
    assert response.content_type.startswith("application/json")
    with pytest.raises(WebhookSignatureError):
        crc_response("", "consumer-secret")


def test_delivery_signature_is_checked() -> None:
    """A good signature passes; a tampered body, another secret or no header is refused."""
    assert SIGNATURE_HEADER == "x-twitter-webhooks-signature"
    assert sign(BODY, "consumer-secret") == BODY_SIGNATURE
    verify_signature(BODY, BODY_SIGNATURE, "consumer-secret")
    with pytest.raises(WebhookSignatureError) as wrong:
        verify_signature(BODY.replace(b"2244", b"2245"), BODY_SIGNATURE, "consumer-secret")
    assert not wrong.value.missing
    with pytest.raises(WebhookSignatureError):
        verify_signature(BODY, BODY_SIGNATURE, "another-secret")
    with pytest.raises(WebhookSignatureError) as missing:
        verify_signature(BODY, None, "consumer-secret")
    assert missing.value.missing


async def test_pkce_authorization_gives_tokens_that_open_the_adapter() -> None:
    """URL with an S256 challenge -> approval -> code -> tokens -> the adapter opens."""
    sandbox = XSandbox(seed=1)
    request = start_authorization(sandbox.client_id, "https://shop.example/cb",
                                  authorize_url="https://x.com/i/oauth2/authorize")
    query = parse_qs(urlsplit(request.authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["tweet.read tweet.write users.read dm.read dm.write offline.access"]
    assert request.code_verifier not in request.authorize_url
    assert request.code_verifier not in repr(request)
    redirected = sandbox.authorize(request.authorize_url)
    code = code_from_redirect(request, redirected)
    tokens = await exchange_code(request, code, client_id=sandbox.client_id,
                                 token_url=f"{sandbox.base_url}/2/oauth2/token",
                                 transport=sandbox.transport())
    assert tokens.refresh_token is not None
    assert tokens.access_token.get_secret_value() == sandbox.token
    settings = {**sandbox.adapter_settings(), "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token}
    async with XAdapter(settings, transport=sandbox.transport()) as x:
        assert x.account is not None
        assert x.account.handle == "shop"
    with pytest.raises(AuthenticationError, match="refused the code"):
        await exchange_code(request, code, client_id=sandbox.client_id,
                            token_url=f"{sandbox.base_url}/2/oauth2/token",
                            transport=sandbox.transport())


def test_redirect_with_another_state_or_a_refusal_is_an_error() -> None:
    """The state must be this request's; a declined authorization says so."""
    sandbox = XSandbox(seed=2)
    request = start_authorization(sandbox.client_id, "https://shop.example/cb")
    other = start_authorization(sandbox.client_id, "https://shop.example/cb")
    with pytest.raises(AuthenticationError, match="state"):
        code_from_redirect(request, sandbox.authorize(other.authorize_url))
    with pytest.raises(AuthenticationError, match="access_denied"):
        code_from_redirect(request, sandbox.authorize(request.authorize_url, approve=False))


def test_terminal_flow_writes_the_tokens_privately(tmp_path: Path) -> None:
    """python -m omnichannel_x.oauth: URL out, redirect in, tokens in a 0600 file, never printed."""
    sandbox = XSandbox(seed=3)
    out = tmp_path / "tokens.json"

    class Approving(io.StringIO):
        """Stands for the person: approves the URL printed, pastes the redirect."""

        def readline(self, size: int | None = -1) -> str:
            url = next(line for line in printed.getvalue().splitlines()
                       if line.startswith("https://"))
            return sandbox.authorize(url) + "\n"

    printed = io.StringIO()
    status = main(["--client-id", sandbox.client_id, "--redirect-uri", "https://shop.example/cb",
                   "--out", str(out), "--token-url", f"{sandbox.base_url}/2/oauth2/token"],
                  stdin=Approving(), stdout=printed, transport=sandbox.transport())
    assert status == 0
    saved = json.loads(out.read_text("utf-8"))
    assert saved["access_token"] == sandbox.token
    assert saved["refresh_token"] == sandbox.refresh_token
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert sandbox.token not in printed.getvalue()
    assert sandbox.refresh_token not in printed.getvalue()
