"""The public surface: every public module lists its names on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import omnichannel

PUBLIC_MODULES = [
    "omnichannel",
    *sorted(
        info.name
        for info in pkgutil.walk_packages(omnichannel.__path__, prefix="omnichannel.")
        if not any(part.startswith("_") for part in info.name.split("."))
        and info.name != "omnichannel.testing.pytest_plugin"
    ),
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_declares_all(name: str) -> None:
    """Each public module has an ``__all__`` without repeats whose names all exist."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    # The order itself is ruff's RUF022 (isort-style, natural); here: no duplicates.
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_classes_and_functions_are_exported(name: str) -> None:
    """A public class or function defined in a public module is in its ``__all__``."""
    module = importlib.import_module(name)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    missing = defined - set(getattr(module, "__all__", ()))
    assert not missing, f"{name} defines public names not in __all__: {sorted(missing)}"


def test_top_level_names_have_a_public_home() -> None:
    """Every name re-exported by ``omnichannel`` is also exported by a public module."""
    homes = {
        attr
        for name in PUBLIC_MODULES
        if name != "omnichannel"
        for attr in getattr(importlib.import_module(name), "__all__", ())
    }
    assert set(omnichannel.__all__) <= homes


def test_version_comes_from_metadata() -> None:
    """``omnichannel.__version__`` is the installed distribution's version."""
    from importlib.metadata import version

    assert omnichannel.__version__ == version("omnichannel")


def test_reference_page_lists_every_top_level_name() -> None:
    """docs/reference/omnichannel.md links each name of ``omnichannel.__all__`` to its home."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "reference" / "omnichannel.md")
    linked = set(re.findall(r"\]\[omnichannel\.[a-z_.]+\.(\w+)\]", page.read_text("utf-8")))
    assert set(omnichannel.__all__) == linked
