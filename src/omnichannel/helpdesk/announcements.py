"""Broadcast: one announcement (an outage, say) posted to every connected network, fitted to each.

Each network gets the text as it is when it fits that network's rule; when it
does not, it is shortened at a word boundary (never inside a grapheme, an
emoji or a link) with an ellipsis, and the link to the full announcement is
kept. The posts are queued in the outbox with idempotency keys derived from
the broadcast's key, so running the same broadcast twice posts once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..actions import Post
from ..errors import ConfigurationError
from ..text import TextRule, graphemes

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..hub import Hub
    from ..store import OutboxItem

__all__ = ["broadcast", "fit_text"]

_ELLIPSIS = "…"


def fit_text(text: str, rule: TextRule, *, link: str | None = None) -> str:
    """Return ``text`` (plus `` link``) as it fits ``rule``: whole, or shortened with ``…``.

    Shortening cuts at the last space that leaves room (or, in a text with no
    space to cut at, at a grapheme boundary), so no word, emoji or link is cut.

    Raises:
        ConfigurationError: Not even the link fits the rule.
    """
    tail = f" {link}" if link else ""
    whole = text + tail
    if rule.fits(whole):
        return whole
    if link and not rule.fits(_ELLIPSIS + tail):
        raise ConfigurationError(f"the link {link!r} alone is over the network's limit")
    clusters = graphemes(text)
    low, high = 0, len(clusters)  # the longest prefix (in graphemes) that fits
    while low < high:
        middle = (low + high + 1) // 2
        if rule.fits("".join(clusters[:middle]).rstrip() + _ELLIPSIS + tail):
            low = middle
        else:
            high = middle - 1
    prefix = "".join(clusters[:low])
    cut = prefix.rfind(" ")
    if cut > 0:  # end at a word boundary: no word or link is cut
        prefix = prefix[:cut]
    return prefix.rstrip() + _ELLIPSIS + tail


async def broadcast(
    hub: Hub,
    text: str,
    *,
    key: str,
    by: str,
    link: str | None = None,
    networks: Sequence[str] | None = None,
) -> dict[str, OutboxItem]:
    """Queue ``text`` as a new public post on each network, fitted to its rule.

    Args:
        hub: The hub whose adapters and outbox to use.
        text: The announcement.
        key: Names this broadcast (``"outage-2026-12-04"``): the same key
            queues nothing twice.
        by: Who sends it, for the audit log (``"agent:anna"``).
        link: Where the full announcement is; kept whole when the text is shortened.
        networks: Only these networks (default: every adapter of the hub that can post).

    Returns:
        The queued outbox item per network.
    """
    chosen = list(networks) if networks is not None else [
        name for name, adapter in sorted(hub.adapters.items()) if adapter.capabilities.post
    ]
    queued: dict[str, OutboxItem] = {}
    for network in chosen:
        adapter = hub.adapters.get(network)
        if adapter is None:
            raise ConfigurationError(f"no adapter for network {network!r} is configured",
                                     network=network)
        fitted = fit_text(text, adapter.capabilities.text, link=link)
        digest = hashlib.sha256(f"broadcast:{key}:{network}".encode()).hexdigest()[:32]
        post = Post(network=network, text=fitted, idempotency_key=digest)
        queued[network] = await hub.queue_as_agent(post, by=by, allow_duplicate=True)
    return queued
