"""Adapter settings from a TOML file and ``OMNICHANNEL_<NETWORK>_<SETTING>`` variables."""

from __future__ import annotations

import json
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from .adapter import Adapter
from .errors import AuthenticationError, ConfigurationError, OmnichannelError, TransientError
from .registry import adapters as installed_adapters
from .registry import load_adapter
from .store import PostgresStore, SQLiteStore, store_for

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_STORE",
    "Config",
    "adapters_from_settings",
    "env_name",
    "store_from_settings",
]

DEFAULT_CONFIG = "omnichannel.toml"
"""The config file read from the working directory when no other is named."""

DEFAULT_STORE = "omnichannel.db"
"""The SQLite store used when neither ``--store``, ``OMNICHANNEL_STORE`` nor the config name one."""

_SEQUENCES = (tuple, list, frozenset, set)


def env_name(network: str, setting: str) -> str:
    """Return the environment variable that holds ``setting`` of ``network``.

    Examples:
        >>> env_name("mastodon", "access_token")
        'OMNICHANNEL_MASTODON_ACCESS_TOKEN'
    """
    return f"{_env_prefix(network)}{setting.upper()}"


def _env_prefix(network: str) -> str:
    return "OMNICHANNEL_" + re.sub(r"[^0-9A-Za-z]", "_", network).upper() + "_"


_NOT_NETWORKS = frozenset({"helpdesk"})
"""Tables of the settings file that configure no network."""


@dataclass(frozen=True)
class Config:
    """What a config file and the environment say, before any adapter is built.

    Attributes:
        path: The config file read, or ``None`` when there was none.
        sections: Per network, the settings found in the file.
        store: The store path the file or ``OMNICHANNEL_STORE`` names, if any.
        environ: The environment variables consulted.
    """

    path: Path | None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Read the config file (``path``, ``OMNICHANNEL_CONFIG`` or ``./omnichannel.toml``).

        A missing default file is fine (everything may come from the
        environment); a file named explicitly must exist.

        Raises:
            ConfigurationError: The named file does not exist, or is not valid TOML.
        """
        env = dict(os.environ if environ is None else environ)
        named = path if path is not None else env.get("OMNICHANNEL_CONFIG") or None
        chosen = Path(named) if named is not None else Path(DEFAULT_CONFIG)
        if not chosen.is_file():
            if named is not None:
                raise ConfigurationError(f"config file {chosen} does not exist")
            return cls(path=None, store=env.get("OMNICHANNEL_STORE") or None, environ=env)
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"config file {chosen} is not valid TOML: {exc}") from None
        sections = {k: dict(v) for k, v in data.items() if isinstance(v, dict)}
        store = env.get("OMNICHANNEL_STORE") or data.get("store")
        if store is not None and not isinstance(store, str):
            raise ConfigurationError(f"config file {chosen}: `store` must be a string (a path)")
        return cls(path=chosen, sections=sections, store=store, environ=env)

    def store_path(self, explicit: str | None = None) -> str:
        """Return the store path: ``explicit``, else the configured one, else ``omnichannel.db``."""
        return explicit or self.store or DEFAULT_STORE

    @property
    def helpdesk(self) -> dict[str, Any]:
        """The ``[helpdesk]`` table (``canned``, ``triage``... lists of tables), or empty."""
        return self.sections.get("helpdesk", {})

    def configured_networks(self) -> list[str]:
        """Networks with a section in the file or at least one environment variable."""
        found = set(self.sections) - _NOT_NETWORKS
        for info in installed_adapters():
            prefix = _env_prefix(info.network)
            if any(name.startswith(prefix) for name in self.environ):
                found.add(info.network)
        return sorted(found)

    def _where(self, network: str, setting: str) -> str:
        env = env_name(network, setting)
        if self.path is None:
            return f"set {env}, or `{setting} = ...` under [{network}] in {DEFAULT_CONFIG}"
        return f"set {env}, or `{setting} = ...` under [{network}] in {self.path}"

    def settings_for(self, adapter: type[Adapter]) -> dict[str, Any]:
        """Collect the raw settings of one adapter: the file's section, then the environment.

        Raises:
            ConfigurationError: An environment variable names no setting of the adapter.
        """
        network = adapter.network
        fields = adapter.settings_model.model_fields
        values: dict[str, Any] = dict(self.sections.get(network, {}))
        prefix = _env_prefix(network)
        unknown: list[str] = []
        for name, raw in self.environ.items():
            if not name.startswith(prefix):
                continue
            setting = name[len(prefix):].lower()
            info = fields.get(setting)
            if info is None:
                unknown.append(name)
                continue
            values[setting] = _from_env(raw, info.annotation)
        if unknown:
            known = ", ".join(env_name(network, f) for f in fields)
            raise ConfigurationError(
                f"unknown setting {', '.join(sorted(unknown))} (known: {known})", network=network
            )
        return values

    def build(self, adapter: type[Adapter]) -> Adapter:
        """Validate the settings of one adapter and build it.

        Raises:
            ConfigurationError: A setting is missing, unknown or invalid; the
                message names each one and where to set it (never its value).
        """
        values = self.settings_for(adapter)
        try:
            settings = adapter.settings_model.model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(
                self._explain(adapter.network, exc), network=adapter.network
            ) from None
        return adapter(settings)

    def hint(self, adapter: type[Adapter], exc: OmnichannelError) -> str | None:
        """Name the settings to check when ``adapter`` could not start because of ``exc``.

        A refused login points at the adapter's credentials (its ``SecretStr``
        settings); a network that could not be reached points at the URLs
        given in the settings. The hint says where each is set, never its value.

        Returns:
            ``check <setting>: set ..., or ...``, or ``None`` when no setting
            is to blame.
        """
        network = adapter.network
        fields = adapter.settings_model.model_fields
        if isinstance(exc, AuthenticationError):
            suspects = [name for name, info in fields.items() if _is_secret(info.annotation)]
        elif isinstance(exc, TransientError):
            given = self.settings_for(adapter)
            suspects = [
                name for name, value in given.items()
                if isinstance(value, str) and value.startswith(_URL_SCHEMES)
            ]
        else:
            return None
        if not suspects:
            return None
        return "; ".join(f"check {name}: {self._where(network, name)}" for name in suspects)

    def _explain(self, network: str, exc: ValidationError) -> str:
        problems: list[str] = []
        for error in exc.errors(include_input=False, include_url=False):
            loc = error.get("loc") or ("settings",)
            setting = str(loc[0])
            if error["type"] == "missing":
                problems.append(f"missing setting {setting}: {self._where(network, setting)}")
            elif error["type"] == "extra_forbidden":
                where = f" in {self.path}" if self.path is not None else ""
                problems.append(f"unknown setting {setting} under [{network}]{where}")
            else:
                message = str(error.get("msg", "invalid"))
                where = self._where(network, setting)
                problems.append(f"setting {setting} is invalid ({message}): {where}")
        if len(problems) == 1:
            return problems[0]
        return "settings are incomplete:\n  - " + "\n  - ".join(problems)


_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def _is_secret(annotation: Any) -> bool:
    """Whether a settings annotation is ``SecretStr`` or an optional ``SecretStr``."""
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _from_env(raw: str, annotation: Any) -> Any:
    text = raw.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            return raw
    origin = typing.get_origin(annotation)
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def adapters_from_settings(
    *,
    config: str | Path | None = None,
    networks: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Adapter]:
    """Build one adapter per configured network, from a config file and the environment.

    Settings come from ``[network]`` tables of a TOML file (``config``,
    ``OMNICHANNEL_CONFIG``, or ``./omnichannel.toml`` when it exists) and
    from environment variables named ``OMNICHANNEL_<NETWORK>_<SETTING>``,
    which win over the file.

    ```toml
    [mastodon]
    base_url = "https://mastodon.social"
    access_token = "..."
    ```

    Args:
        config: The config file to read.
        networks: Build these networks only (each must be configured);
            default: every installed network that has settings.
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The adapters, not yet opened, sorted by network.

    Raises:
        ConfigurationError: No network is configured, or a setting is missing
            or invalid (the message names the setting and where to set it).
        UnknownNetwork: A network asked for has no installed adapter.
    """
    loaded = Config.load(config, environ=environ)
    wanted = sorted(set(networks)) if networks is not None else loaded.configured_networks()
    if not wanted:
        available = ", ".join(info.network for info in installed_adapters() if info.ok)
        example = env_name("mastodon", "access_token")
        raise ConfigurationError(
            "no network is configured: give settings in "
            f"{loaded.path or DEFAULT_CONFIG} or environment variables such as {example} "
            f"(installed adapters: {available or 'none'}), or try the sandboxes with --sandbox"
        )
    return [loaded.build(load_adapter(network)) for network in wanted]


def store_from_settings(
    *,
    config: str | Path | None = None,
    default: str = DEFAULT_STORE,
    environ: Mapping[str, str] | None = None,
) -> SQLiteStore | PostgresStore:
    """Return the store the settings name, not yet opened.

    A ``postgresql://`` URL gives a [`PostgresStore`][omnichannel.store.PostgresStore],
    anything else is a SQLite file. The target is ``OMNICHANNEL_STORE`` when it is
    set, else the config file's top-level ``store = "..."`` (the file is found as for
    [`adapters_from_settings`][omnichannel.settings.adapters_from_settings]),
    else ``default``. It is the store a [`Bot`][omnichannel.bot.Bot] and
    ``omnichannel inbox`` use, so an application built on it shares their
    settings:

    ```python
    from omnichannel.settings import store_from_settings

    store = store_from_settings(default="helpdesk.db", environ={"OMNICHANNEL_STORE": "bot.db"})
    print(store)
    #> <SQLiteStore 'bot.db' closed>
    ```

    Args:
        config: The config file to read.
        default: The path or URL when neither the environment nor the file names one.
        environ: The environment to read (default: ``os.environ``).

    Raises:
        ConfigurationError: A config file named explicitly does not exist, is
            not valid TOML, or its ``store`` is not a string.
    """
    return store_for(Config.load(config, environ=environ).store or default)
