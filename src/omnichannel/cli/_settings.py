"""Moved to [`omnichannel.settings`][omnichannel.settings]; this path keeps working."""

from __future__ import annotations

from ..settings import DEFAULT_CONFIG as DEFAULT_CONFIG
from ..settings import DEFAULT_STORE as DEFAULT_STORE
from ..settings import Config as Config
from ..settings import adapters_from_settings as adapters_from_settings
from ..settings import env_name as env_name
from ..settings import store_from_settings as store_from_settings

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_STORE",
    "Config",
    "adapters_from_settings",
    "env_name",
    "store_from_settings",
]
