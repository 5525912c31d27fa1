"""X (Twitter) for omnichannel: mentions and DMs in (polling, webhooks), replies and DMs out.

```python
from omnichannel_x import XAdapter

async with XAdapter({"access_token": token, "tier": "pay_per_use"}) as x:
    batch = await x.poll(None)
```

The adapter is registered as ``x`` and also found as ``twitter``. The sandbox
for tests lives in `omnichannel_x.sandbox`, the PKCE authorization in
`omnichannel_x.oauth`, the webhook CRC and signature check in
`omnichannel_x.webhooks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnichannel._lazy import lazy_names

if TYPE_CHECKING:
    from ._adapter import Tier as Tier
    from ._adapter import XAdapter as XAdapter
    from ._adapter import XSettings as XSettings
    from ._adapter import capabilities_for as capabilities_for
    from ._costs import BudgetExceeded as BudgetExceeded
    from ._costs import CostLedger as CostLedger
    from ._costs import Prices as Prices
    from ._errors import ClientForbidden as ClientForbidden
    from ._errors import DirectMessageRefused as DirectMessageRefused
    from ._errors import NotAuthorizedForResource as NotAuthorizedForResource
    from ._errors import NotSummoned as NotSummoned
    from ._errors import ReauthorizationRequired as ReauthorizationRequired
    from ._errors import UsageCapped as UsageCapped
    from ._policy import hold_link_posts as hold_link_posts
    from ._ratelimit import parse_x_headers as parse_x_headers
    from ._store_tokens import StoreTokenStore as StoreTokenStore
    from ._text import XTextRule as XTextRule
    from ._text import x_weighted_length as x_weighted_length
    from ._tokens import AuthProblem as AuthProblem
    from ._tokens import AuthProblemKind as AuthProblemKind
    from ._tokens import FileTokenStore as FileTokenStore
    from ._tokens import TokenStore as TokenStore
    from ._tokens import XTokens as XTokens
    from ._wire import Subscription as Subscription

# Each public name's home module, imported on first use: importing the package
# (the entry point, a type annotation) costs nothing until a name is used.
_HOMES: dict[str, str] = {
    "AuthProblem": "._tokens",
    "AuthProblemKind": "._tokens",
    "BudgetExceeded": "._costs",
    "ClientForbidden": "._errors",
    "CostLedger": "._costs",
    "DirectMessageRefused": "._errors",
    "FileTokenStore": "._tokens",
    "NotAuthorizedForResource": "._errors",
    "NotSummoned": "._errors",
    "Prices": "._costs",
    "ReauthorizationRequired": "._errors",
    "StoreTokenStore": "._store_tokens",
    "Subscription": "._wire",
    "Tier": "._adapter",
    "TokenStore": "._tokens",
    "UsageCapped": "._errors",
    "XAdapter": "._adapter",
    "XSettings": "._adapter",
    "XTextRule": "._text",
    "XTokens": "._tokens",
    "capabilities_for": "._adapter",
    "hold_link_posts": "._policy",
    "parse_x_headers": "._ratelimit",
    "x_weighted_length": "._text",
}

__all__ = [
    "AuthProblem",
    "AuthProblemKind",
    "BudgetExceeded",
    "ClientForbidden",
    "CostLedger",
    "DirectMessageRefused",
    "FileTokenStore",
    "NotAuthorizedForResource",
    "NotSummoned",
    "Prices",
    "ReauthorizationRequired",
    "StoreTokenStore",
    "Subscription",
    "Tier",
    "TokenStore",
    "UsageCapped",
    "XAdapter",
    "XSettings",
    "XTextRule",
    "XTokens",
    "capabilities_for",
    "hold_link_posts",
    "parse_x_headers",
    "x_weighted_length",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
