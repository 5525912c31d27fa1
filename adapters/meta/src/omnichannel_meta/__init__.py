"""Facebook Pages and Instagram for omnichannel: comments and DMs in, replies out.

```python
from omnichannel_meta import FacebookAdapter

page = FacebookAdapter({
    "page_id": "1234567890321", "access_token": "EAA...",
    "app_secret": "...", "verify_token": "...",
})
```

The Graph API version is `GRAPH_VERSION`; set ``graph_version`` in the settings
to use another.
"""

from __future__ import annotations

from ._adapter import GRAPH_VERSION as GRAPH_VERSION
from ._adapter import FacebookAdapter as FacebookAdapter
from ._adapter import FacebookSettings as FacebookSettings
from ._adapter import InstagramAdapter as InstagramAdapter
from ._adapter import InstagramSettings as InstagramSettings
from ._adapter import MetaAdapter as MetaAdapter
from ._adapter import MetaSettings as MetaSettings
from ._ratelimit import parse_meta_headers as parse_meta_headers
from ._setup import DEFAULT_FIELDS as DEFAULT_FIELDS
from ._setup import FIELD_PERMISSIONS as FIELD_PERMISSIONS
from ._setup import WebhookSubscription as WebhookSubscription
from ._tokens import TokenHealth as TokenHealth
from ._tokens import TokenHealthHook as TokenHealthHook

__all__ = [
    "DEFAULT_FIELDS",
    "FIELD_PERMISSIONS",
    "GRAPH_VERSION",
    "FacebookAdapter",
    "FacebookSettings",
    "InstagramAdapter",
    "InstagramSettings",
    "MetaAdapter",
    "MetaSettings",
    "TokenHealth",
    "TokenHealthHook",
    "WebhookSubscription",
    "parse_meta_headers",
]
