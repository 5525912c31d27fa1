"""omnichannel-bluesky: the Bluesky (AT Protocol) adapter for omnichannel.

```python
from omnichannel_bluesky import BlueskyAdapter, BlueskySettings

settings = BlueskySettings(identifier="shop.example.com", app_password="xxxx-xxxx-xxxx-xxxx")
async with BlueskyAdapter(settings) as bluesky:
    batch = await bluesky.poll(None)
```

The sandbox for tests and demos is
[`omnichannel_bluesky.sandbox.BlueskySandbox`][omnichannel_bluesky.sandbox.BlueskySandbox].
"""

from __future__ import annotations

from ._adapter import BlueskyAdapter as BlueskyAdapter
from ._adapter import BlueskySettings as BlueskySettings
from ._adapter import record_key as record_key

__all__ = ["BlueskyAdapter", "BlueskySettings", "record_key"]
