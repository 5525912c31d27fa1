"""Authorize the app as the brand account: OAuth 2.0 Authorization Code with PKCE.

Three steps: `start_authorization` makes the authorize URL (a person opens it
and approves), `code_from_redirect` reads the code from the URL X redirected
to (checking ``state``), and `exchange_code` trades it for an `XTokens`
within X's 30 seconds. From a terminal::

    python -m omnichannel_x.oauth --client-id ID --redirect-uri https://example.com/cb \
        --out tokens.json

prints the URL, reads the redirected URL pasted back (or, with ``--listen``
and a ``http://127.0.0.1:<port>/...`` redirect URI, receives it on a
loopback listener: `receive_redirect`), and writes the tokens (mode 0600).
Keep that file, or better your secret store, as the adapter's ``on_tokens``
hook keeps it afterwards: the refresh token rotates.

```python
from omnichannel_x.oauth import start_authorization

request = start_authorization("client-id", "https://example.com/callback")
print(request.authorize_url.startswith("https://x.com/i/oauth2/authorize?response_type=code"))
#> True
```
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import anyio.abc
import httpx
from pydantic import SecretStr

from omnichannel.errors import AuthenticationError, ConfigurationError

from ._tokens import FileTokenStore, XTokens

__all__ = [
    "AUTHORIZE_URL",
    "SCOPES",
    "TOKEN_URL",
    "AuthorizationRequest",
    "code_from_redirect",
    "exchange_code",
    "main",
    "receive_redirect",
    "start_authorization",
]

AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
"""Where a person approves the app."""
TOKEN_URL = "https://api.x.com/2/oauth2/token"  # noqa: S105 - a URL, not a secret
"""Where codes and refresh tokens are traded for tokens."""
SCOPES = ("tweet.read", "tweet.write", "users.read", "dm.read", "dm.write", "offline.access")
"""The scopes the adapter needs (add ``like.write`` on Enterprise)."""

_NETWORK = "x"


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization in progress: the URL to open and what must be kept until the code comes.

    Attributes:
        authorize_url: The URL a person opens to approve the app.
        redirect_uri: The callback URL registered with the app.
        state: The value X hands back, to tie the redirect to this request.
        code_verifier: The PKCE secret whose SHA-256 the URL carries.
    """

    authorize_url: str
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def start_authorization(
    client_id: str, redirect_uri: str, *, scopes: Sequence[str] = SCOPES,
    authorize_url: str = AUTHORIZE_URL,
) -> AuthorizationRequest:
    """Make the authorize URL with a fresh ``state`` and PKCE verifier (S256).

    Args:
        client_id: The app's OAuth 2.0 client id.
        redirect_uri: The callback URL registered with the app.
        scopes: The scopes to ask for.
        authorize_url: The authorize endpoint (a sandbox's, in tests).
    """
    verifier = secrets.token_urlsafe(64)[:96]
    state = secrets.token_urlsafe(24)
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": " ".join(scopes), "state": state, "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    })
    return AuthorizationRequest(f"{authorize_url}?{query}", redirect_uri, state, verifier)


def code_from_redirect(request: AuthorizationRequest, redirected: str) -> str:
    """The authorization code in the URL X redirected to, once ``state`` is checked.

    Raises:
        AuthenticationError: The person declined, or the URL carries no code or
            a ``state`` that is not this request's.
    """
    params = parse_qs(urlsplit(redirected.strip()).query)
    if "error" in params:
        raise AuthenticationError(f"authorization refused ({params['error'][0]})",
                                  network=_NETWORK)
    state = params.get("state", [""])[0]
    if not hmac.compare_digest(state.encode(), request.state.encode()):
        raise AuthenticationError("the redirect's state is not this request's", network=_NETWORK)
    code = params.get("code", [""])[0]
    if not code:
        raise AuthenticationError("the redirect carries no code", network=_NETWORK)
    return code


async def exchange_code(
    request: AuthorizationRequest, code: str, *, client_id: str,
    client_secret: SecretStr | str | None = None, token_url: str = TOKEN_URL,
    transport: httpx.AsyncBaseTransport | None = None,
) -> XTokens:
    """Trade the code for tokens (X allows 30 seconds).

    Args:
        request: The authorization the code answers.
        code: From `code_from_redirect`.
        client_id: The app's OAuth 2.0 client id.
        client_secret: A confidential client's secret (sent with HTTP Basic).
        token_url: The token endpoint.
        transport: An httpx transport instead of the network (a sandbox's).

    Raises:
        AuthenticationError: X refused the code (expired, used, wrong verifier).
    """
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id,
            "redirect_uri": request.redirect_uri, "code_verifier": request.code_verifier}
    auth: httpx.BasicAuth | None = None
    if client_secret is not None:
        secret = (client_secret.get_secret_value() if isinstance(client_secret, SecretStr)
                  else client_secret)
        auth = httpx.BasicAuth(client_id, secret)
    async with httpx.AsyncClient(transport=transport, timeout=10.0) as http:
        try:
            response = await http.post(token_url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"the token endpoint failed ({type(exc).__name__})",
                                      network=_NETWORK) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    access = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(access, str):
        reason = body.get("error") if isinstance(body, dict) else None
        raise AuthenticationError(
            f"X refused the code (HTTP {response.status_code}"
            f"{', ' + reason if isinstance(reason, str) else ''})", network=_NETWORK)
    refresh = body.get("refresh_token")
    expires = body.get("expires_in")
    return XTokens(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh) if isinstance(refresh, str) else None,
        expires_at=(datetime.now(UTC) + timedelta(seconds=expires)
                    if isinstance(expires, int) else None),
    )


_BODY = b"Authorization received: you may close this window.\n"
_PAGE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
         + f"Content-Length: {len(_BODY)}\r\n\r\n".encode() + _BODY)
_NOT_HERE = (b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")


async def receive_redirect(
    request: AuthorizationRequest, *, within: float = 300.0,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> str:
    """Wait for X's redirect on a loopback listener; return the URL it asked for.

    Instead of pasting the URL, register a redirect URI such as
    ``http://127.0.0.1:8765/callback``: this listens on that address and
    port only (never on another interface), answers the browser's one
    request to the redirect's path with a short page, then closes. Requests
    to another path are answered 404 and do not count. Pass what it returns to
    `code_from_redirect`, which checks ``state``. ``task_status`` reports
    when it listens (``TaskGroup.start``).

    Raises:
        ConfigurationError: The redirect URI is not ``http://127.0.0.1:<port>/...``.
        AuthenticationError: No redirect came within ``within`` seconds.
    """
    target = urlsplit(request.redirect_uri)
    if target.scheme != "http" or target.hostname != "127.0.0.1" or not target.port:
        raise ConfigurationError(
            "a loopback redirect URI is http://127.0.0.1:<port>/<path>", network=_NETWORK)
    path = target.path or "/"
    listeners = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=target.port)
    async with listeners:
        task_status.started()
        listener = listeners.listeners[0]
        if not isinstance(listener, anyio.abc.SocketListener):  # pragma: no cover
            raise TypeError("a TCP listener accepts sockets")
        with anyio.move_on_after(within):
            while True:
                async with await listener.accept() as client:
                    asked = await _request_target(client)
                    if asked is not None and urlsplit(asked).path == path:
                        await client.send(_PAGE)
                        return f"http://127.0.0.1:{target.port}{asked}"
                    await client.send(_NOT_HERE)
    raise AuthenticationError(f"no redirect arrived within {within:g} s", network=_NETWORK)


async def _request_target(client: anyio.abc.SocketStream) -> str | None:
    """The target of the HTTP request line (``/callback?code=...``), or ``None``."""
    head = b""
    with anyio.move_on_after(10):
        while b"\r\n\r\n" not in head and len(head) < 16_384:
            try:
                head += await client.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[1].startswith(b"/"):
        return None
    return parts[1].decode("ascii", "replace")


def _write(tokens: XTokens, path: str) -> None:
    # The file the adapter's ``token_file`` reads: mode 0600, replaced atomically.
    FileTokenStore(path)._save(tokens)


def main(
    argv: Sequence[str] | None = None, *, stdin: TextIO | None = None,
    stdout: TextIO | None = None, transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run the authorization from a terminal; return the exit status.

    Prints the authorize URL, reads the redirected URL, exchanges the code and
    writes the tokens to ``--out`` (created with mode 0600). Tokens are never
    printed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m omnichannel_x.oauth",
        description="Authorize the X app as the brand account (OAuth 2.0 with PKCE).")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--out", required=True, help="file to write the tokens to (mode 0600)")
    parser.add_argument("--client-secret-env", default=None,
                        help="environment variable holding a confidential client's secret")
    parser.add_argument("--listen", action="store_true",
                        help="receive the redirect on the loopback --redirect-uri "
                             "(http://127.0.0.1:<port>/<path>) instead of a pasted URL")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the redirect with --listen")
    parser.add_argument("--authorize-url", default=AUTHORIZE_URL)
    parser.add_argument("--token-url", default=TOKEN_URL)
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    secret = os.environ.get(args.client_secret_env) if args.client_secret_env else None
    request = start_authorization(args.client_id, args.redirect_uri,
                                  authorize_url=args.authorize_url)
    try:
        if args.listen:
            print("Open this URL and approve the app; the redirect is received on "
                  f"{args.redirect_uri}:", file=stdout)
            print(request.authorize_url, file=stdout, flush=True)
            redirected = anyio.run(lambda: receive_redirect(request, within=args.timeout))
        else:
            print("Open this URL, approve the app, then paste the URL you were sent to:",
                  file=stdout)
            print(request.authorize_url, file=stdout)
            redirected = stdin.readline()
        code = code_from_redirect(request, redirected)
        tokens = anyio.run(lambda: exchange_code(
            request, code, client_id=args.client_id, client_secret=secret,
            token_url=args.token_url, transport=transport))
    except (AuthenticationError, ConfigurationError) as exc:
        print(f"error: {exc}", file=stdout)
        return 1
    _write(tokens, args.out)
    print(f"tokens written to {args.out}", file=stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover - the terminal entry
    raise SystemExit(main())
