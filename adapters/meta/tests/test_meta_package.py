"""The distribution installs like any plugin: two networks, one package, a declared surface."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

import omnichannel_meta
from omnichannel import load_adapter
from omnichannel_meta import (
    GRAPH_VERSION,
    FacebookAdapter,
    FacebookSettings,
    InstagramAdapter,
    InstagramSettings,
)


def test_public_names() -> None:
    """Both adapters, their settings, the Graph version, the usage parser, the setup report."""
    assert omnichannel_meta.__all__ == [
        "DEFAULT_FIELDS", "FIELD_PERMISSIONS", "GRAPH_VERSION", "FacebookAdapter",
        "FacebookSettings", "InstagramAdapter", "InstagramSettings", "MetaAdapter",
        "MetaSettings", "TokenHealth", "TokenHealthHook", "WebhookSubscription",
        "parse_meta_headers",
    ]
    assert GRAPH_VERSION == "v25.0"


def test_entry_points_load_both_adapters() -> None:
    """The omnichannel.adapters entry points 'facebook' and 'instagram' resolve."""
    assert load_adapter("facebook") is FacebookAdapter
    assert load_adapter("instagram") is InstagramAdapter


def test_declared_capabilities() -> None:
    """Meta's windows: private reply 7 days, DMs 24 hours, webhook and poll inbound."""
    for caps in (FacebookAdapter.capabilities, InstagramAdapter.capabilities):
        assert caps.private_reply is True
        assert caps.private_reply_window == timedelta(days=7)
        assert caps.dm_window == timedelta(hours=24)
        assert caps.hide is True
        assert caps.delete is True
        assert caps.post is False
        assert caps.inbound == frozenset({"webhook", "poll"})
        assert caps.native_idempotency is False
    assert FacebookAdapter.capabilities.reactions == ("like",)
    assert InstagramAdapter.capabilities.reactions == ()
    assert FacebookAdapter.capabilities.dm_text is not None
    assert FacebookAdapter.capabilities.dm_text.limit == 2000


def test_human_agent_window_only_with_the_permission(kit: Any) -> None:
    """Without human_agent in the settings no 7-day human window is declared."""
    without = FacebookAdapter(kit.fb_settings())
    granted = FacebookAdapter(kit.fb_settings(human_agent=True))
    assert without.capabilities.human_agent_window is None
    assert granted.capabilities.human_agent_window == timedelta(days=7)


def test_graph_version_is_overridable_and_checked(kit: Any) -> None:
    """graph_version defaults to GRAPH_VERSION, may be set, and must look like vNN.N."""
    assert FacebookSettings.model_validate(kit.fb_settings()).graph_version == GRAPH_VERSION
    assert InstagramSettings.model_validate(
        kit.ig_settings(graph_version="v26.0")).graph_version == "v26.0"
    with pytest.raises(ValidationError):
        FacebookSettings.model_validate(kit.fb_settings(graph_version="latest"))


def test_secrets_stay_out_of_reprs(kit: Any) -> None:
    """Token, app secret and verify token never show in the settings' or adapter's repr."""
    adapter = FacebookAdapter(kit.fb_settings())
    shown = repr(adapter) + repr(adapter.settings) + str(adapter.settings)
    for secret in ("EAA-test-token", kit.app_secret, kit.verify_token):
        assert secret not in shown
