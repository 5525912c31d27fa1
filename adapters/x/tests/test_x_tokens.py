"""Token persistence across restarts (TokenStore, FileTokenStore, token_file) and auth health."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from omnichannel.errors import AuthenticationError, ConfigurationError
from omnichannel.events import AuthHealth
from omnichannel.settings import Config
from omnichannel_x import (
    AuthProblem,
    FileTokenStore,
    ReauthorizationRequired,
    TokenStore,
    XAdapter,
    XTokens,
)
from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


# FileTokenStore -----------------------------------------------------------------------------


async def test_file_store_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    """The pair is written 0600, read back equal, and no temporary file is left behind."""
    store = FileTokenStore(tmp_path / "x-tokens.json")
    assert isinstance(store, TokenStore)
    assert await store.load() is None
    pair = XTokens(access_token=SecretStr("acc-1"), refresh_token=SecretStr("ref-1"))
    await store.save(pair)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert await store.load() == pair
    newer = XTokens(access_token=SecretStr("acc-2"), refresh_token=SecretStr("ref-2"))
    await store.save(newer)
    assert await store.load() == newer
    assert sorted(os.listdir(tmp_path)) == ["x-tokens.json"]
    assert "ref-2" not in repr(store)
    assert "ref-2" not in repr(newer)


async def test_a_failed_write_keeps_the_previous_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash before the rename leaves the old file whole and no temporary file."""
    store = FileTokenStore(tmp_path / "tokens.json")
    old = XTokens(access_token=SecretStr("a"), refresh_token=SecretStr("old"))
    await store.save(old)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        await store.save(XTokens(access_token=SecretStr("b"), refresh_token=SecretStr("new")))
    monkeypatch.undo()
    assert await store.load() == old
    assert os.listdir(tmp_path) == ["tokens.json"]


async def test_a_file_that_is_not_a_token_file_is_refused_without_quoting_it(
    tmp_path: Path,
) -> None:
    """A broken file is a ConfigurationError naming the path, never the content."""
    path = tmp_path / "tokens.json"
    path.write_text('{"access_token": 5, "secret": "do-not-print"}')
    with pytest.raises(ConfigurationError) as caught:
        await FileTokenStore(path).load()
    assert "do-not-print" not in str(caught.value)
    assert str(path) in str(caught.value)


# rotation survives a restart ---------------------------------------------------------------


async def test_rotated_refresh_token_survives_a_restart(tmp_path: Path) -> None:
    """Refresh, stop, start again from the same settings: the saved pair is used, not the dead one.

    Without the token file the second adapter would refresh with the first
    refresh token, which X revoked at the first rotation.
    """
    sandbox = XSandbox(seed=11)
    settings = {**sandbox.adapter_settings(), "token_file": str(tmp_path / "x.json")}
    first_refresh = sandbox.refresh_token
    async with XAdapter(settings, transport=sandbox.transport()) as x:
        sandbox.expire_token()
        await x.poll(None)
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["refresh_token"] == sandbox.refresh_token != first_refresh
    async with XAdapter(settings, transport=sandbox.transport()) as again:
        assert again.tokens is not None
        assert again.tokens.refresh_token == SecretStr(sandbox.refresh_token)
        sandbox.expire_token()
        await again.poll(None)
        assert again.auth_problem is None
    assert sandbox.refreshes == 2
    assert json.loads((tmp_path / "x.json").read_text())["refresh_token"] == sandbox.refresh_token
    # The same start without the file is locked out: the settings' refresh token is dead.
    async with XAdapter(sandbox.adapter_settings() | {"access_token": sandbox.token,
                                                      "refresh_token": first_refresh},
                        transport=sandbox.transport()) as stale:
        sandbox.expire_token()
        with pytest.raises(ReauthorizationRequired):
            await stale.poll(None)


async def test_token_file_comes_from_the_environment(tmp_path: Path) -> None:
    """OMNICHANNEL_X_TOKEN_FILE (with no token in the environment) builds a file store."""
    path = tmp_path / "env-tokens.json"
    await FileTokenStore(path).save(XTokens(access_token=SecretStr("from-file")))
    config = Config.load(environ={"OMNICHANNEL_X_TOKEN_FILE": str(path),
                                  "OMNICHANNEL_X_CLIENT_ID": "c"})
    adapter = config.build(XAdapter)
    assert isinstance(adapter, XAdapter)
    assert isinstance(adapter.token_store, FileTokenStore)
    assert adapter.token_store.path == path


# auth health -------------------------------------------------------------------------------


async def test_refused_refresh_is_one_auth_problem_logged_without_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """reauthorization_required: hook once per state change, an error log line, no token."""
    sandbox = XSandbox(seed=12)
    problems: list[AuthProblem] = []
    caplog.set_level(logging.DEBUG)
    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                        on_auth_problem=problems.append) as x:
        secrets = (sandbox.token, sandbox.refresh_token)
        sandbox.revoke_credentials()
        for _ in range(2):
            with pytest.raises(ReauthorizationRequired):
                await x.poll(None)
    assert [p.kind for p in problems] == ["reauthorization_required"]
    assert x.auth_problem == problems[0]
    assert "x auth: reauthorization required" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in repr(problems[0])


async def test_unsaved_rotation_is_an_auth_problem(tmp_path: Path) -> None:
    """A token store that cannot write: not_persisted, and the adapter goes on."""
    sandbox = XSandbox(seed=13)
    problems: list[AuthProblem] = []

    class Broken:
        async def load(self) -> XTokens | None:
            return None

        async def save(self, tokens: XTokens) -> None:
            raise PermissionError("read-only volume")

    async with XAdapter(sandbox.adapter_settings(), transport=sandbox.transport(),
                        token_store=Broken(), on_auth_problem=problems.append) as x:
        sandbox.expire_token()
        await x.poll(None)
        assert [p.kind for p in problems] == ["not_persisted"]
        assert "PermissionError" in problems[0].detail


async def test_revoked_token_is_an_auth_problem_until_a_request_works() -> None:
    """X answering 401 to a token that cannot be refreshed (OAuth 1.0a): revoked, then clear."""
    problems: list[AuthProblem] = []
    refusing = {"now": False}

    async def hook(problem: AuthProblem) -> None:
        problems.append(problem)

    def answer(request: httpx.Request) -> httpx.Response:
        if refusing["now"]:
            return httpx.Response(401, json={"title": "Unauthorized", "type": "about:blank",
                                             "status": 401, "detail": "Unauthorized"})
        if request.url.path.endswith("/users/me"):
            return httpx.Response(200, json={"data": {"id": "7", "username": "shop"}})
        return httpx.Response(200, json={"meta": {"result_count": 0}})

    settings = {"consumer_key": "ck", "consumer_secret": "cs", "oauth1_token": "7-t",
                "oauth1_token_secret": "ts", "dm_poll_interval": 0}
    reports: list[AuthHealth] = []
    async with XAdapter(settings, transport=httpx.MockTransport(answer),
                        on_auth_problem=hook) as x:
        x.auth_health_sink = reports.append  # what a hub does
        refusing["now"] = True
        with pytest.raises(AuthenticationError):
            await x.poll(None)
        assert x.auth_problem is not None
        assert x.auth_problem.kind == "revoked"
        refusing["now"] = False
        await x.poll(None)
        assert x.auth_problem is None
    assert [p.kind for p in problems] == ["revoked"]
    assert [(r.network, r.kind) for r in reports] == [("x", "revoked")]
    assert "7-t" not in reports[0].detail
