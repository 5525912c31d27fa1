"""Logging for the command line: readable event lines by default, or the user's own config."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["HANDLER_NAME", "LOG_CONFIG_ENV", "configure_logging"]

HANDLER_NAME = "omnichannel-cli"
"""The name of the handler the command line installs on the root logger."""

LOG_CONFIG_ENV = "OMNICHANNEL_LOG_CONFIG"
"""The environment variable naming a logging configuration file (like ``--log-config``)."""

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"

# Third-party loggers that would repeat, less readably, what omnichannel.http says
# (and httpx's INFO line carries the whole URL): shown only as warnings.
_QUIET = ("httpx", "httpcore", "hpack", "websockets", "uvicorn.access")


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigurationError(f"logging config {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigurationError(f"logging config {path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"logging config {path} must hold a table (a dictConfig)")
    data.setdefault("version", 1)
    data.setdefault("disable_existing_loggers", False)
    return data


def configure_logging(verbose: int = 0, *, config: str | Path | None = None) -> None:
    """Set up logging for a command: the user's config, or one readable stderr handler.

    With a logging config (``config``, else the file ``OMNICHANNEL_LOG_CONFIG``
    names), that file is a :func:`logging.config.dictConfig` in JSON (or TOML
    when it ends in ``.toml``) and is applied as it is: handlers, formatters
    (a JSON formatter, say) and levels are the user's; ``verbose`` is ignored.

    Otherwise one handler named ``omnichannel-cli`` writes to standard error;
    it is added only when the root logger has no handler yet, so a program
    that configured logging before calling ``Bot.main()`` keeps its own.
    Levels:

    - ``0``: omnichannel's INFO lines (message received, reply sent, draft
      held, delivery retried or failed) and everyone's warnings;
    - ``1`` (``-v``): also one line per HTTP request (``omnichannel.http``);
    - ``2`` (``-vv``): omnichannel's DEBUG lines.

    httpx and httpcore never log below WARNING here: their request lines
    repeat ``omnichannel.http``'s with the full URL.

    Raises:
        ConfigurationError: The logging config file is missing or invalid.
    """
    named = config if config is not None else os.environ.get(LOG_CONFIG_ENV) or None
    if named is not None:
        data = _read_config(Path(named))
        try:
            logging.config.dictConfig(data)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ConfigurationError(f"logging config {named} was refused: {exc}") from None
        return
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if not root.handlers or ours:
        handler = ours[0] if ours else logging.StreamHandler()
        handler.set_name(HANDLER_NAME)
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)  # the current one (tests swap it)
        handler.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
        if not ours:
            root.addHandler(handler)
        root.setLevel(logging.WARNING)
    library = logging.getLogger("omnichannel")
    library.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    # NOTSET: without -v the HTTP layer follows "omnichannel" (which a command may quieten).
    logging.getLogger("omnichannel.http").setLevel(
        logging.DEBUG if verbose >= 1 else logging.NOTSET
    )
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
