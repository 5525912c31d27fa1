"""Every distribution of the repository ships its licence, its py.typed and its entry point."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from omnichannel.registry import load_adapter

REPO = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = [REPO, *sorted(p for p in (REPO / "adapters").iterdir() if p.is_dir())]


def _project(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("root", DISTRIBUTIONS, ids=lambda p: p.name)
def test_distribution_ships_the_licence_and_py_typed(root: Path) -> None:
    """The wheel built from each folder carries the MIT licence text and a py.typed marker."""
    data = _project(root)
    assert data["project"]["license"] == "MIT"
    # hatchling puts LICENSE* files found next to pyproject.toml into the wheel's metadata.
    licence = root / "LICENSE"
    assert licence.is_file(), f"{root.name}: no LICENSE beside pyproject.toml"
    assert licence.read_text(encoding="utf-8") == (REPO / "LICENSE").read_text(encoding="utf-8")
    packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packages
    for package in packages:
        assert (root / package / "py.typed").is_file(), f"{package} has no py.typed"


_NETWORKS = {"meta": ["facebook", "instagram"]}
"""Distributions that register more than one network, and which."""


@pytest.mark.parametrize("root", DISTRIBUTIONS[1:], ids=lambda p: p.name)
def test_adapter_distribution_registers_its_network(root: Path) -> None:
    """Each adapter distribution registers an entry point named after its folder.

    Further entry points are old names of the network the adapter declares in
    ``network_aliases`` (the X adapter is also found as ``twitter``); the Meta
    distribution registers the two networks it bundles instead.
    """
    data = _project(root)
    entry_points = data["project"]["entry-points"]["omnichannel.adapters"]
    if root.name in _NETWORKS:
        assert list(entry_points) == _NETWORKS[root.name]
        assert data["project"]["name"] == f"omnichannel-{root.name}"
        return
    first, *aliases = list(entry_points)
    assert first == root.name
    assert data["project"]["name"] == f"omnichannel-{root.name}"
    if aliases:
        adapter = load_adapter(root.name)
        assert set(aliases) <= set(getattr(adapter, "network_aliases", ()))
        assert {entry_points[name] for name in aliases} == {entry_points[first]}
