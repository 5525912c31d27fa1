"""A reply policy for X's pay-per-use prices: a public post with a link waits for a human."""

from __future__ import annotations

from omnichannel.actions import Post, PrivateReply, Reply
from omnichannel.events import Event
from omnichannel.policy import ReplyPolicy, hold_when

from ._convert import NETWORK
from ._costs import has_url

__all__ = ["hold_link_posts"]

LINK_REASON = "a public X post with a link costs 0.20 USD on pay-per-use (15 times a plain one)"


def _public_link_post(event: Event | None, action: Reply | PrivateReply | Post) -> bool:
    if action.network != NETWORK or isinstance(action, PrivateReply):
        return False
    if isinstance(action, Reply) and (
        action.to.is_private or (action.visibility or action.to.visibility) == "private"
    ):
        return False
    return has_url(action.text)


def hold_link_posts(
    *, otherwise: ReplyPolicy | None = None, reason: str = LINK_REASON
) -> ReplyPolicy:
    """Hold a public X reply or post with a link as a draft; ``otherwise`` decides the rest.

    On pay-per-use X bills a post with a URL (bare domains included, as X
    finds them) 0.20 USD against 0.015, or 0.010 for a summoned reply, so a
    person decides whether the link is worth it. DMs, and other networks'
    replies, go to ``otherwise`` (default `AutoSend`, as for ``hold_when``).

    Args:
        otherwise: The policy for everything else.
        reason: The note stored on the held draft.
    """
    return hold_when(_public_link_post, reason=reason, otherwise=otherwise)
