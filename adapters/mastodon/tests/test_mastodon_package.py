"""The package installs like any plugin and exposes a small, declared surface."""

from __future__ import annotations

import omnichannel_mastodon
import omnichannel_mastodon.sandbox
from omnichannel import load_adapter
from omnichannel.adapter import AdapterSettings
from omnichannel_mastodon import MastodonAdapter, MastodonSettings
from omnichannel_mastodon.sandbox import MastodonSandbox


def test_public_names() -> None:
    """The package exports the adapter and its settings; the sandbox module its sandbox."""
    assert omnichannel_mastodon.__all__ == ["MastodonAdapter", "MastodonSettings"]
    assert omnichannel_mastodon.sandbox.__all__ == ["MastodonSandbox"]
    assert issubclass(MastodonSettings, AdapterSettings)


def test_entry_point_loads_the_adapter() -> None:
    """The omnichannel.adapters entry point 'mastodon' resolves to MastodonAdapter."""
    assert load_adapter("mastodon") is MastodonAdapter


def test_declared_capabilities() -> None:
    """Mastodon declares private replies, favourites, deletion, polling and streaming, no hide."""
    caps = MastodonAdapter.capabilities
    assert caps.private_reply is True
    assert caps.reactions == ("like",)
    assert caps.delete is True
    assert caps.hide is False
    assert caps.inbound == frozenset({"poll", "stream"})
    assert caps.native_idempotency is True
    assert caps.text.limit == 500
    assert caps.text.url_length == 23


def test_sandbox_and_adapter_agree_on_the_limit() -> None:
    """The sandbox enforces the limit the adapter declares by default."""
    assert MastodonSandbox.text_limit == MastodonAdapter.capabilities.text.limit
    assert MastodonSandbox.create_routes == ("POST /api/v1/statuses",)
