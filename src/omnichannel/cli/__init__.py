"""The ``omnichannel`` command line; it re-exports [`Bot`][omnichannel.bot.Bot] and the settings.

```text
omnichannel adapters              installed adapters and their capabilities
omnichannel demo                  the offline demo: sandboxes, scripted customers, the quick bot
omnichannel serve module:hub      run a hub (listeners, outbox, webhooks) or an ASGI app
omnichannel inbox                 conversations and pending drafts from the store
omnichannel drafts list|approve|reject   decide held replies (approve ID --text "...": edited)
omnichannel replay NETWORK FILE   a recorded payload through an adapter, as normalized events
```

``-v`` (before or after the command) adds one log line per HTTP request;
``--log-config FILE`` takes a logging ``dictConfig`` instead (see the
reference page's *Logging*).

Adapter settings come from a TOML file and ``OMNICHANNEL_<NETWORK>_<SETTING>``
environment variables; see
[`adapters_from_settings`][omnichannel.settings.adapters_from_settings].
"""

from __future__ import annotations

from ..bot import Bot as Bot
from ..settings import adapters_from_settings as adapters_from_settings
from ..settings import env_name as env_name
from ..settings import store_from_settings as store_from_settings
from ._main import main as main

__all__ = ["Bot", "adapters_from_settings", "env_name", "main", "store_from_settings"]
