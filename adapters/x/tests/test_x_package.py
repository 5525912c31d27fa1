"""The package installs like any plugin, under ``x`` and ``twitter``, with a declared surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

import omnichannel_x
from omnichannel import adapters, load_adapter
from omnichannel.adapter import AdapterSettings
from omnichannel_x import XAdapter, XSettings, capabilities_for


def test_public_names() -> None:
    """The package exports the adapter, its settings, tiers, text and rate-limit rules, errors."""
    assert omnichannel_x.__all__ == [
        "AuthProblem", "AuthProblemKind", "BudgetExceeded", "ClientForbidden", "CostLedger",
        "DirectMessageRefused", "FileTokenStore", "NotAuthorizedForResource", "NotSummoned",
        "Prices", "ReauthorizationRequired", "StoreTokenStore", "Subscription", "Tier",
        "TokenStore", "UsageCapped",
        "XAdapter", "XSettings", "XTextRule", "XTokens", "capabilities_for", "hold_link_posts",
        "parse_x_headers",
        "x_weighted_length",
    ]
    assert issubclass(XSettings, AdapterSettings)


def test_entry_points_load_the_adapter_under_both_names() -> None:
    """``x`` and its alias ``twitter`` resolve to XAdapter; the listing shows the network once."""
    assert load_adapter("x") is XAdapter
    assert load_adapter("twitter") is XAdapter
    networks = [info.network for info in adapters()]
    assert "x" in networks
    assert "twitter" not in networks


def test_declared_capabilities_follow_the_tier() -> None:
    """Likes only on Enterprise; replies, DMs, hiding and deleting on every tier; polling only."""
    for tier in ("pay_per_use", "basic", "pro"):
        assert capabilities_for(tier).reactions == ()
    enterprise = capabilities_for("enterprise")
    assert enterprise.reactions == ("like",)
    caps = XAdapter.capabilities
    assert caps.private_reply
    assert caps.hide
    assert caps.delete
    assert caps.inbound == frozenset({"poll"})
    assert caps.native_idempotency is False
    assert caps.text.limit == 280
    assert caps.text.url_length == 23
    assert caps.dm_text is not None
    assert caps.dm_text.limit == 10_000
    adapter = XAdapter({"access_token": "t", "tier": "enterprise"})
    assert adapter.capabilities.reactions == ("like",)


def test_importing_the_package_loads_nothing_heavy() -> None:
    """``import omnichannel_x`` imports no HTTP client or model: each name loads on first use."""
    code = ("import sys, omnichannel_x; heavy = ['httpx', 'pydantic', 'omnichannel_x._adapter']; "
            "print([m for m in heavy if m in sys.modules]); "
            "omnichannel_x.XAdapter; print('omnichannel_x._adapter' in sys.modules); "
            "print(sorted(set(omnichannel_x.__all__) - set(dir(omnichannel_x))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split("\n")[:3] == ["[]", "True", "[]"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        omnichannel_x.Nope  # noqa: B018
