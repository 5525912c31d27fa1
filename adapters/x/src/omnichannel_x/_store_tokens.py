"""X's OAuth 2.0 tokens kept in the hub's store, encrypted at rest when a key is given.

With several workers, or a container whose disk does not last, a token file is
the wrong place: `StoreTokenStore` keeps the pair in the store every worker
shares (its `ValueStore` role: SQLite, PostgreSQL, or memory in tests). With
``key`` set (a Fernet key, from the ``cryptography`` package), what is stored
is encrypted and authenticated: a database dump holds no usable token, and a
value changed in the database is refused rather than used.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr, ValidationError

from omnichannel.errors import ConfigurationError
from omnichannel.store import ValueStore

from ._tokens import XTokens

__all__ = ["StoreTokenStore"]

SCOPE = "x.tokens"
"""The store scope the pairs are kept under."""


class StoreTokenStore:
    """A `TokenStore` in the hub's store (``store.put_value``), optionally encrypted.

    Args:
        store: The store the hub uses (any with the `ValueStore` role).
        account: Names the pair in the store, for several X accounts on one store.
        key: A Fernet key (``Fernet.generate_key()``; 32 url-safe base64 bytes)
            to encrypt the pair with; ``None`` stores it as JSON text.

    Raises:
        ConfigurationError: ``key`` is given but ``cryptography`` is not
            installed (``pip install -e "./adapters/x[encryption]"``) or the
            key is not a Fernet key.

    Example:
        ```python
        x = XAdapter(settings, token_store=StoreTokenStore(
            store, key=SecretStr(os.environ["OMNICHANNEL_X_TOKEN_KEY"])))
        ```
    """

    def __init__(
        self, store: ValueStore, *, account: str = "default", key: SecretStr | None = None
    ) -> None:
        self.store = store
        self.account = account
        self._fernet = _fernet(key) if key is not None else None

    def __repr__(self) -> str:
        return f"StoreTokenStore(account={self.account!r}, encrypted={self._fernet is not None})"

    async def load(self) -> XTokens | None:
        """Read the pair, or ``None`` when none was saved yet.

        Raises:
            ConfigurationError: What is stored cannot be read with this key (or
                was stored encrypted and no key is given); never quoted.
        """
        stored = await self.store.get_value(SCOPE, self.account)
        if stored is None:
            return None
        try:
            text = stored if self._fernet is None else self._decrypt(stored)
            return XTokens.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            raise ConfigurationError(
                f"the X tokens stored for {self.account!r} cannot be read "
                + ("with this key" if self._fernet is not None else "(encrypted? give the key)"),
                network="x",
            ) from None

    async def save(self, tokens: XTokens) -> None:
        """Store the pair in place of the previous one (returns once the store has it)."""
        text = json.dumps({
            "access_token": tokens.access_token.get_secret_value(),
            "refresh_token": (
                tokens.refresh_token.get_secret_value() if tokens.refresh_token else None
            ),
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        })
        if self._fernet is not None:
            text = self._fernet.encrypt(text.encode("utf-8")).decode("ascii")
        await self.store.put_value(SCOPE, self.account, text)

    def _decrypt(self, stored: str) -> str:
        from cryptography.fernet import InvalidToken

        assert self._fernet is not None  # noqa: S101 - checked by the caller
        try:
            plain: bytes = self._fernet.decrypt(stored.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise ValueError("not readable with this key") from None
        return plain.decode("utf-8")


def _fernet(key: SecretStr) -> Any:
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        raise ConfigurationError(
            'encrypting X tokens needs cryptography: pip install -e "./adapters/x[encryption]"',
            network="x",
        ) from None
    try:
        return Fernet(key.get_secret_value().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigurationError(
            "the X token key is not a Fernet key (32 url-safe base64-encoded bytes)",
            network="x",
        ) from None
