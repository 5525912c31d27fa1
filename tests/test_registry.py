"""Adapter discovery through the ``omnichannel.adapters`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnichannel.errors import ConfigurationError, UnknownNetwork
from omnichannel.registry import install_hint, load_adapter, unknown_network

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_adapter"

PROBE = """
import json, omnichannel
from omnichannel.errors import UnknownNetwork
infos = omnichannel.adapters()
out = {i.network: {"ok": i.ok, "dist": i.distribution, "error": i.error,
                   "reactions": list(i.capabilities.reactions) if i.capabilities else None}
       for i in infos}
cls = omnichannel.load_adapter("tiny")
out["_loaded"] = cls.__name__
try:
    omnichannel.load_adapter("broken")
except UnknownNetwork as exc:
    out["_broken_error"] = str(exc)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def installed_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the tiny adapter distribution into a private target folder with pip."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(FIXTURE)],
        check=True, capture_output=True, timeout=120,
    )
    return target


def _probe(site: Path, **env: str) -> dict[str, object]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True,
        env=environ, timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_installed_adapter_is_listed_and_loaded(installed_tiny: Path) -> None:
    """An installed distribution's entry point shows up with its capabilities."""
    out = _probe(installed_tiny)
    assert out["tiny"] == {
        "ok": True, "dist": "omnichannel-tiny", "error": None, "reactions": ["like"],
    }
    assert out["_loaded"] == "TinyAdapter"


def test_broken_plugin_is_reported_not_fatal(installed_tiny: Path) -> None:
    """A plugin that fails to import is listed with its error; the others still load."""
    out = _probe(installed_tiny)
    broken = out["broken"]
    assert isinstance(broken, dict)
    assert broken["ok"] is False
    assert "broken on purpose" in broken["error"]
    assert "broken on purpose" in str(out["_broken_error"])
    assert out["tiny"]["ok"] is True  # type: ignore[index]


def test_env_restricts_loaded_adapters(installed_tiny: Path) -> None:
    """OMNICHANNEL_ADAPTERS limits discovery to the named networks."""
    out = _probe(installed_tiny, OMNICHANNEL_ADAPTERS="tiny")
    assert "broken" not in out
    assert "tiny" in out


def test_unknown_network_names_no_unpublished_package() -> None:
    """A network no adapter ships for gets the installed list, not a package name to guess."""
    with pytest.raises(UnknownNetwork) as info:
        load_adapter("myspace")
    message = str(info.value)
    assert "no adapter for network 'myspace' is installed (installed: " in message
    assert "pip install" not in message
    assert "omnichannel-myspace" not in message
    assert info.value.package is None
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, ConfigurationError)


def test_a_bundled_adapter_that_is_missing_installs_from_a_clone() -> None:
    """An adapter that ships in the repository is installed from the clone's folder."""
    error = unknown_network("mastodon", installed=["bluesky"])
    assert str(error) == (
        "no adapter for network 'mastodon' is installed (installed: bluesky); install it "
        "from a clone of the repository: pip install -e ./adapters/mastodon"
    )
    assert error.package == "omnichannel-mastodon"
    assert install_hint() == (
        "pip install -e ./adapters/mastodon -e ./adapters/bluesky -e ./adapters/meta "
        "-e ./adapters/x"
    )
    assert install_hint("facebook", "instagram") == "pip install -e ./adapters/meta"
    assert unknown_network("instagram", installed=[]).package == "omnichannel-meta"


def test_import_omnichannel_loads_no_adapter() -> None:
    """Importing the core imports no adapter package and no optional dependency."""
    code = (
        "import sys, omnichannel; "
        "bad = [m for m in sys.modules if m.startswith('omnichannel_') "
        "or m in ('uvicorn', 'wsproto', 'omnichannel.testing')]; "
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == ""
