"""Mastodon for omnichannel: mentions and DMs in, threaded and direct replies out.

```python
from omnichannel_mastodon import MastodonAdapter

async with MastodonAdapter({"base_url": "https://mastodon.example", "access_token": token}) as m:
    batch = await m.poll(None)
```

The sandbox for tests lives in `omnichannel_mastodon.sandbox`.
"""

from __future__ import annotations

from ._adapter import MastodonAdapter as MastodonAdapter
from ._adapter import MastodonSettings as MastodonSettings

__all__ = ["MastodonAdapter", "MastodonSettings"]
