"""Credentials as ``httpx.Auth`` flows: bearer tokens, refreshed tokens, OAuth 1.0a."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from urllib.parse import parse_qsl, quote

import anyio
import httpx
from pydantic import SecretStr

from omnichannel.errors import ConfigurationError, OmnichannelError, TokenExpired

__all__ = ["BearerAuth", "OAuth1Auth", "RefreshingBearerAuth"]


def _secret(value: SecretStr | str) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


def _has_explicit_authorization(request: httpx.Request) -> bool:
    return "authorization" in request.headers


class BearerAuth(httpx.Auth):
    """Sends a fixed ``Authorization: Bearer <token>`` (Mastodon, X app-only).

    A request that already carries an ``Authorization`` header is sent as it is.

    Args:
        token: The access token.
    """

    def __init__(self, token: SecretStr | str) -> None:
        self._token = _secret(token)

    def __repr__(self) -> str:
        return f"BearerAuth(token={self._token!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer header and send the request."""
        if not _has_explicit_authorization(request):
            request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request


class RefreshingBearerAuth(httpx.Auth):
    """A bearer token that is refreshed once when the network says it expired.

    The request is sent with the current token. When the answer is 401, or
    ``is_expired(response)`` is true (Bluesky answers ``400 ExpiredToken``), the
    token is refreshed and the request is sent once more with the new one.
    Concurrent requests that meet the same expired token share one refresh.
    With no initial token, the first request refreshes first (log in lazily).
    A request that already carries an ``Authorization`` header is sent as it is
    and never triggers a refresh (the refresh call itself, for instance).

    Args:
        access: The current access token, or ``None`` to obtain one on first use.
        refresh: Coroutine function returning a fresh access token. It raises
            ``AuthenticationError`` (or ``TokenExpired``) when it cannot.
        is_expired: Extra test for an expired-token answer besides 401; the
            response body is read before it is called.
        network: Network named in the errors raised here.

    Raises:
        TokenExpired: From a request, when ``refresh`` failed with an error that
            is not an ``OmnichannelError``.
    """

    requires_response_body = True

    def __init__(
        self,
        access: SecretStr | str | None,
        *,
        refresh: Callable[[], Awaitable[SecretStr | str]],
        is_expired: Callable[[httpx.Response], bool] | None = None,
        network: str | None = None,
    ) -> None:
        self._token = _secret(access) if access is not None else None
        self._refresh = refresh
        self._is_expired = is_expired
        self._network = network
        self._generation = 0
        self._lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"RefreshingBearerAuth(access={self._token!r}, network={self._network!r})"

    @property
    def refresh_count(self) -> int:
        """How many times the token was refreshed."""
        return self._generation

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Refuse synchronous clients: refreshing is asynchronous."""
        raise ConfigurationError(
            "RefreshingBearerAuth needs an async client", network=self._network
        )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the current token; on an expired answer refresh and send once more."""
        if _has_explicit_authorization(request):
            yield request
            return
        if self._token is None:
            await self._renew(self._generation)
        seen = self._generation
        self._authorize(request)
        response = yield request
        if self._is_expired is not None and response.status_code >= 400:
            await response.aread()  # httpx reads it only in the default async_auth_flow
        if not self._expired(response):
            return
        await self._renew(seen)
        self._authorize(request)
        yield request

    def _expired(self, response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        return self._is_expired is not None and self._is_expired(response)

    def _authorize(self, request: httpx.Request) -> None:
        if self._token is None:  # pragma: no cover - _renew sets it or raises
            raise TokenExpired("no access token", network=self._network)
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"

    async def _renew(self, seen: int) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._generation != seen and self._token is not None:
                return  # another request refreshed while this one waited
            try:
                token = await self._refresh()
            except OmnichannelError:
                raise
            except Exception as exc:
                raise TokenExpired(
                    f"access token expired and refreshing it failed ({type(exc).__name__})",
                    network=self._network,
                ) from None
            self._token = _secret(token)
            self._generation += 1


def _percent(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as OAuth 1.0a requires (RFC 5849 3.6)."""
    return quote(value.encode("utf-8"), safe="-._~")


def _base_url(url: httpx.URL) -> str:
    """Scheme, host, non-default port and path, lowercased where RFC 5849 3.4.1.2 says."""
    scheme = url.scheme.lower()
    host = url.host.lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    port = f":{url.port}" if url.port is not None and url.port != default_port else ""
    return f"{scheme}://{host}{port}{url.raw_path.split(b'?', 1)[0].decode('ascii')}"


class OAuth1Auth(httpx.Auth):
    """Signs requests with OAuth 1.0a HMAC-SHA1 (RFC 5849), as X user context needs.

    Query parameters and ``application/x-www-form-urlencoded`` body parameters
    are signed; JSON bodies are not (RFC 5849 3.4.1.3). A request that already
    carries an ``Authorization`` header is sent as it is.

    Args:
        consumer_key: The app's API key.
        consumer_secret: The app's API secret.
        token: The user's access token.
        token_secret: The user's access token secret.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: SecretStr | str,
        token: str,
        token_secret: SecretStr | str,
    ) -> None:
        self._consumer_key = consumer_key
        self._consumer_secret = _secret(consumer_secret)
        self._token = token
        self._token_secret = _secret(token_secret)

    def __repr__(self) -> str:
        return (
            f"OAuth1Auth(consumer_key={self._consumer_key!r}, "
            f"consumer_secret={self._consumer_secret!r}, token_secret={self._token_secret!r})"
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request with a fresh nonce and the current time, then send it."""
        if not _has_explicit_authorization(request):
            request.headers["Authorization"] = self.sign(
                request, nonce=secrets.token_hex(16), timestamp=int(time.time())
            )
        yield request

    def sign(self, request: httpx.Request, *, nonce: str, timestamp: int) -> str:
        """The ``Authorization`` header value for ``request``.

        Args:
            request: The request to sign; its body must have been read.
            nonce: A value never used before with this timestamp.
            timestamp: Seconds since the epoch.

        Returns:
            ``OAuth oauth_consumer_key="...", ..., oauth_version="1.0"``.
        """
        oauth = {
            "oauth_consumer_key": self._consumer_key,
            "oauth_nonce": nonce,
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_timestamp": str(timestamp),
            "oauth_token": self._token,
            "oauth_version": "1.0",
        }
        params = list(oauth.items())
        params += parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
            params += parse_qsl(request.content.decode("utf-8"), keep_blank_values=True)
        normalized = "&".join(
            f"{key}={value}"
            for key, value in sorted((_percent(k), _percent(v)) for k, v in params)
        )
        base = "&".join(
            (request.method.upper(), _percent(_base_url(request.url)), _percent(normalized))
        )
        key = (
            f"{_percent(self._consumer_secret.get_secret_value())}&"
            f"{_percent(self._token_secret.get_secret_value())}"
        )
        digest = hmac.new(key.encode("ascii"), base.encode("ascii"), hashlib.sha1).digest()
        oauth["oauth_signature"] = base64.b64encode(digest).decode("ascii")
        fields = ", ".join(f'{_percent(k)}="{_percent(v)}"' for k, v in sorted(oauth.items()))
        return f"OAuth {fields}"
