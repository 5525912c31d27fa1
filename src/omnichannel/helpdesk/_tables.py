"""Settings tables (``[[helpdesk.triage]]``, ``[[helpdesk.canned]]``) validated into models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from pydantic import BaseModel

from ..errors import ConfigurationError

__all__ = ["validate_tables"]

_M = TypeVar("_M", bound=BaseModel)


def validate_tables(model: type[_M], tables: Iterable[Mapping[str, object]], what: str) -> list[_M]:
    """Each table as a ``model``; a bad one is a `ConfigurationError` naming it (``what name``).

    Raises:
        ConfigurationError: A table is not valid; the message names the table by
            its ``name`` (or its position) and says what is wrong.
    """
    built = []
    for index, table in enumerate(tables):
        try:
            built.append(model.model_validate(table))
        except ConfigurationError:
            raise
        except ValueError as exc:
            name = table.get("name", f"#{index + 1}") if isinstance(table, Mapping) else index
            raise ConfigurationError(f"{what} {name}: {exc}") from None
    return built
