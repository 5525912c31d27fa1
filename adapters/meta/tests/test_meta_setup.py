"""Installing the app on a Page or an Instagram account: subscribe_webhooks and its command."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from omnichannel.errors import ConfigurationError, RequestRejected
from omnichannel.http import RetryPolicy
from omnichannel_meta import FacebookAdapter, InstagramAdapter, MetaAdapter
from omnichannel_meta.__main__ import main
from omnichannel_meta.sandbox import FacebookSandbox, InstagramSandbox


@asynccontextmanager
async def opened(
    sandbox: FacebookSandbox | InstagramSandbox, **extra: Any
) -> AsyncIterator[MetaAdapter]:
    cls = FacebookAdapter if isinstance(sandbox, FacebookSandbox) else InstagramAdapter
    adapter = cls({**sandbox.adapter_settings(), **extra}, transport=sandbox.transport(),
                  retry=RetryPolicy(attempts=1))
    async with adapter:
        yield adapter


async def test_a_page_is_subscribed_to_feed_and_messages() -> None:
    """POST /{page}/subscribed_apps with feed,messages; Meta then lists them; nothing missing."""
    sandbox = FacebookSandbox()
    page = sandbox.our_account.id
    async with opened(sandbox) as adapter:
        report = await adapter.subscribe_webhooks()
    assert sandbox.subscribed_apps == {page: ("feed", "messages")}
    assert (report.object_id, report.requested, report.subscribed) == (
        page, ("feed", "messages"), ("feed", "messages"))
    assert report.missing_permissions == ()
    assert report.ok
    assert sandbox.request_count(f"POST /v25.0/{page}/subscribed_apps") == 1


async def test_a_missing_permission_is_reported() -> None:
    """Without pages_messaging the subscription lands but the report names the permission."""
    sandbox = FacebookSandbox()
    sandbox.granted_permissions.discard("pages_messaging")
    async with opened(sandbox) as adapter:
        report = await adapter.subscribe_webhooks()
    assert report.missing_permissions == ("pages_messaging",)
    assert not report.ok


async def test_permissions_a_token_cannot_list_are_unknown_not_missing() -> None:
    """A token that cannot read /me/permissions: the fields are checked, permissions unknown."""
    sandbox = FacebookSandbox()
    sandbox.permissions_readable = False
    async with opened(sandbox) as adapter:
        report = await adapter.subscribe_webhooks(fields=["feed"])
    assert (report.subscribed, report.missing_permissions, report.ok) == (("feed",), None, True)


async def test_meta_refusals_are_typed_errors() -> None:
    """No pages_manage_metadata: Meta's (#200); an unknown field: (#100). Both RequestRejected."""
    sandbox = FacebookSandbox()
    async with opened(sandbox) as adapter:
        with pytest.raises(RequestRejected) as unknown:
            await adapter.subscribe_webhooks(fields=["comments"])
        sandbox.granted_permissions.discard("pages_manage_metadata")
        with pytest.raises(RequestRejected) as refused:
            await adapter.subscribe_webhooks()
    assert (unknown.value.code, refused.value.code) == ("100", "200")
    assert sandbox.subscribed_apps == {}


async def test_instagram_login_subscribes_the_account_facebook_login_the_linked_page() -> None:
    """Instagram Login: the account, Instagram's fields; Facebook Login: the linked Page."""
    sandbox = InstagramSandbox()
    account = sandbox.our_account.id
    async with opened(sandbox, login="instagram") as adapter:
        direct = await adapter.subscribe_webhooks()
    async with opened(sandbox) as adapter:
        linked = await adapter.subscribe_webhooks()
    assert (direct.object_id, direct.subscribed) == (
        account, ("comments", "mentions", "messages", "message_reactions"))
    assert (linked.object_id, linked.subscribed) == (sandbox.linked_page_id, ("feed",))
    assert direct.ok
    assert linked.ok


async def test_facebook_login_without_the_page_is_a_configuration_error() -> None:
    """Instagram with Facebook Login and no page_id: refused before any request."""
    sandbox = InstagramSandbox()
    async with opened(sandbox, page_id=None) as adapter:
        before = sandbox.request_count()
        with pytest.raises(ConfigurationError, match="page_id"):
            await adapter.subscribe_webhooks()
        assert sandbox.request_count() == before


def _config(tmp_path: Path, network: str, settings: dict[str, object]) -> Path:
    lines = [f"[{network}]"]
    for key, value in settings.items():
        if value is None:
            continue
        shown = str(value).lower() if isinstance(value, bool) else f'"{value}"'
        lines.append(f"{key} = {shown}")
    path = tmp_path / "omnichannel.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("granted", [True, False], ids=["all-granted", "missing"])
def test_the_command_subscribes_and_prints_what_is_missing(
    tmp_path: Path, granted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m omnichannel_meta subscribe facebook`: exit 0 when set up, 1 with a gap."""
    for name in [n for n in os.environ if n.startswith("OMNICHANNEL_")]:
        monkeypatch.delenv(name)
    sandbox = FacebookSandbox()
    if not granted:
        sandbox.granted_permissions.discard("pages_messaging")
    out = io.StringIO()
    with sandbox.serve_in_thread() as url:
        config = _config(tmp_path, "facebook", sandbox.adapter_settings(base_url=url))
        status = main(["subscribe", "facebook", "--config", str(config)], out=out)
    page = sandbox.our_account.id
    lines = out.getvalue().splitlines()
    assert lines[0] == f"facebook {page}: subscribed feed, messages"
    if granted:
        assert (status, lines[1:]) == (0, ["  permissions: all granted"])
    else:
        assert (status, lines[1:]) == (1, ["  missing permissions: pages_messaging"])
    assert sandbox.subscribed_apps == {page: ("feed", "messages")}
    assert sandbox.token not in out.getvalue()


def test_the_command_reports_a_settings_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config without the Page id: exit 2, the setting named, no request."""
    config = tmp_path / "omnichannel.toml"
    config.write_text('[facebook]\naccess_token = "EAA-secret"\n', encoding="utf-8")
    assert main(["subscribe", "facebook", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "page_id" in err
    assert "EAA-secret" not in err
