"""X tokens kept in the hub's store: rotation survives a restart, encrypted at rest with a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from omnichannel.errors import ConfigurationError
from omnichannel.store import SQLiteStore
from omnichannel_x import StoreTokenStore, XAdapter, XTokens
from omnichannel_x.sandbox import XSandbox


async def test_rotated_tokens_in_the_store_survive_a_restart_encrypted(tmp_path: Path) -> None:
    """Refresh through a store-kept pair; a new adapter on the same store starts from it."""
    sandbox = XSandbox(seed=21)
    key = SecretStr(Fernet.generate_key().decode())
    path = tmp_path / "bot.db"
    first_refresh = sandbox.refresh_token
    async with SQLiteStore(path) as store:
        tokens = StoreTokenStore(store, key=key)
        async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                            token_store=tokens) as x:
            sandbox.expire_token()
            await x.poll(None)
        stored = await store.get_value("x.tokens", "default")
    assert stored is not None
    assert sandbox.refresh_token not in stored  # encrypted at rest
    assert sandbox.token not in stored
    assert sandbox.refresh_token != first_refresh
    reopened = SQLiteStore(path)
    async with reopened, XAdapter(sandbox.adapter_settings() | {"refresh_token": first_refresh},
                                  transport=sandbox.transport(),
                                  token_store=StoreTokenStore(reopened, key=key)) as again:
        assert again.tokens is not None
        assert again.tokens.refresh_token == SecretStr(sandbox.refresh_token)
        sandbox.expire_token()
        await again.poll(None)
        assert again.auth_problem is None
    assert sandbox.refreshes == 2


async def test_a_wrong_key_or_a_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "bot.db") as store:
        pair = XTokens(access_token=SecretStr("a-secret-token"),
                       refresh_token=SecretStr("a-secret-refresh"))
        await StoreTokenStore(store, key=SecretStr(Fernet.generate_key().decode())).save(pair)
        other = StoreTokenStore(store, key=SecretStr(Fernet.generate_key().decode()))
        with pytest.raises(ConfigurationError, match="with this key") as wrong:
            await other.load()
        with pytest.raises(ConfigurationError, match="give the key"):
            await StoreTokenStore(store).load()
        assert "a-secret" not in str(wrong.value)
        plain = StoreTokenStore(store, account="second")
        await plain.save(pair)
        assert await plain.load() == pair
    with pytest.raises(ConfigurationError, match="Fernet key"):
        StoreTokenStore(store, key=SecretStr("not a key"))
