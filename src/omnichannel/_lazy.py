"""What is imported or made on first use: a package's names, class attributes, ``AnyUrl``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema


def lazy_names(
    package: str, namespace: dict[str, Any], homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, loading each name from its home.

    ``homes`` maps each lazily exported name to the module it lives in,
    relative to ``package`` (``".memory"``). A name is imported when first
    asked for, then kept in ``namespace`` (the package's ``globals()``), so
    the next access does not come here again.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__


_T = TypeVar("_T")


class lazy_attribute(Generic[_T]):
    """A class attribute made by ``make()`` on first access, then kept on the class.

    For values whose making builds a pydantic validator (an adapter's
    ``capabilities``): importing the class builds nothing. An instance may
    still set its own value (``vars(self)[name] = ...``), which wins.
    """

    def __init__(self, make: Callable[[], _T]) -> None:
        self._make = make
        self._owner: type | None = None
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._owner, self._name = owner, name

    def __get__(self, instance: object, owner: type | None = None) -> _T:
        value = self._make()
        if self._owner is not None:
            setattr(self._owner, self._name, value)  # later reads find the value itself
        return value


class AnyUrl:
    """Stands for ``pydantic.AnyUrl`` in model annotations; imports it when a model builds.

    Validation, values (``pydantic.AnyUrl`` instances), serialization and JSON
    schema are ``AnyUrl``'s own: the schema is pydantic's for ``AnyUrl``. Only
    the import waits: ``pydantic.networks`` imports ``importlib.metadata`` (zipfile,
    email, csv) at its top, a large share of a bot's start that nothing needs
    until the first URL is validated. Type checkers see ``pydantic.AnyUrl``.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic import AnyUrl

        return handler.generate_schema(AnyUrl)
