"""Where X's OAuth 2.0 tokens live between runs, and the account's auth health.

X rotates the refresh token on every refresh: the old one stops working the
moment the new one is issued. A rotated token that is not saved before the
process stops locks the account out until someone authorizes the app again,
so the adapter saves every new pair through a `TokenStore` right after the
refresh, before the request that needed it goes on.

`FileTokenStore` keeps the pair in a JSON file readable by its owner only
(mode ``0600``), replaced atomically (written beside it, flushed, renamed), so
a crash mid-write leaves the previous pair, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from omnichannel.errors import ConfigurationError

__all__ = ["AuthProblem", "AuthProblemKind", "FileTokenStore", "TokenStore", "XTokens"]


class XTokens(BaseModel):
    """An OAuth 2.0 user-context token pair, as issued by ``POST /2/oauth2/token``.

    Attributes:
        access_token: The bearer token (valid for 2 hours).
        refresh_token: The refresh token; X issues a new one on every refresh and
            the old one stops working, so persist each new pair at once.
        expires_at: When the access token expires, when X said.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: datetime | None = None


@runtime_checkable
class TokenStore(Protocol):
    """Keeps the current `XTokens` across restarts (a file, a secrets manager, a vault).

    ``save`` must not return before the pair is durable: the adapter calls it
    right after each refresh, and the previous refresh token is already dead.
    """

    async def load(self) -> XTokens | None:
        """Return the saved pair, or ``None`` when nothing was saved yet."""
        ...

    async def save(self, tokens: XTokens) -> None:
        """Persist ``tokens`` in place of the previous pair."""
        ...


class FileTokenStore:
    """A `TokenStore` in a JSON file only its owner can read (``0600``), replaced atomically.

    Args:
        path: The file. Its folder must exist; the file is created on the first save.

    Raises:
        ConfigurationError: From ``load``, when the file exists but is not a
            token file (its content is never quoted).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    async def load(self) -> XTokens | None:
        """Read the pair, or ``None`` when the file does not exist yet."""
        return await anyio.to_thread.run_sync(self._load)

    async def save(self, tokens: XTokens) -> None:
        """Write the pair to a new file beside the old one, flush it, rename it over."""
        await anyio.to_thread.run_sync(self._save, tokens)

    def _load(self) -> XTokens | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            return XTokens.model_validate(data)
        except (ValueError, ValidationError):
            raise ConfigurationError(
                f"{self.path} is not an X token file (expected access_token, refresh_token)",
                network="x",
            ) from None

    def _save(self, tokens: XTokens) -> None:
        data = {
            "access_token": tokens.access_token.get_secret_value(),
            "refresh_token": (
                tokens.refresh_token.get_secret_value() if tokens.refresh_token else None
            ),
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        }
        body = json.dumps(data).encode("utf-8")
        folder = self.path.parent
        # mkstemp creates the file with mode 0600 whatever the umask.
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable where possible
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


AuthProblemKind = Literal["reauthorization_required", "revoked", "not_persisted"]
"""What went wrong with the account's authorization:

- ``reauthorization_required``: refreshing failed (X refused the refresh token,
  or there is none); someone must authorize the app again.
- ``revoked``: X refused the access token itself (401 after a refresh, or
  on OAuth 1.0a): the app's access was revoked or the token is invalid.
- ``not_persisted``: a refresh worked but saving the new pair failed; the
  process holds the only copy of the new refresh token.
"""


@dataclass(frozen=True)
class AuthProblem:
    """An auth-health signal: the adapter cannot (or soon will not) act for the account.

    Attributes:
        kind: What went wrong.
        detail: A short reason, never a token.
        network: ``"x"``.
    """

    kind: AuthProblemKind
    detail: str
    network: str = "x"


AuthProblemHook = Callable[[AuthProblem], Awaitable[None] | None]
"""Called with each `AuthProblem` (page someone, mark the account in a dashboard)."""
