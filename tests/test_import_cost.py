"""What a bot's first import loads: nothing only the network, text measuring or another store needs.

``from omnichannel import Hub, Reply, SQLiteStore`` is what every bot pays at
start. The modules below are loaded where they are first used (an adapter
talking to its network, a reply measured against a limit, a PostgreSQL store
opened), and every model builds its validator on first use; a module-level
import or an eagerly built model that comes back into the bot's start is caught
here. Each check runs in a fresh interpreter, since this test session has
imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BOT_CORE = "from omnichannel import Hub, Reply, SQLiteStore"

LOADED_ON_FIRST_USE = (
    "httpx",  # talking to the network: adapters and omnichannel.http
    "httpcore",
    "omnichannel.http",
    "tenacity",  # retrying requests
    "regex",  # counting graphemes, finding links and mentions
    "omnichannel.text._counters",
    "omnichannel.text._links",
    "omnichannel.store.postgres",  # PostgresStore, store_for
    "omnichannel.store.memory",  # MemoryStore
    "psycopg",
    "uvicorn",  # serving webhooks
    "omnichannel.registry",  # adapters found by entry point
    "omnichannel.capabilities",  # declared by adapters; the hub reads their instances
    "omnichannel.text._rules",
    "socket",  # the outbox's worker id takes the host name from platform.node()
    "pydantic.networks",  # AnyUrl, when a model with a URL builds its validator
    "importlib.metadata",  # loaded by pydantic.networks and pydantic's plugin lookup
)


def _modules_after(code: str) -> set[str]:
    shown = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True, capture_output=True, text=True,
    )
    return set(shown.stdout.split())


def test_the_bot_core_leaves_out_what_is_loaded_on_first_use() -> None:
    loaded = _modules_after(BOT_CORE)
    assert "omnichannel.hub" in loaded  # the check itself sees what was imported
    assert sorted(name for name in LOADED_ON_FIRST_USE if name in loaded) == []


_BUILT_MODELS = """
from pydantic import BaseModel

def built(cls):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("omnichannel") and sub.__dict__.get("__pydantic_complete__"):
            yield f"{sub.__module__}.{sub.__qualname__}"
        yield from built(sub)

print(" ".join(sorted(set(built(BaseModel)))))
"""


def _built_after(code: str) -> list[str]:
    shown = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_BUILT_MODELS}"],
        check=True, capture_output=True, text=True,
    )
    return shown.stdout.split()


def test_the_bot_core_builds_no_validator_at_import() -> None:
    assert _built_after(BOT_CORE) == []  # each model builds on first use (defer_build)
    first_use = f"{BOT_CORE}\nfrom omnichannel.text import TextRule\nTextRule.mastodon()"
    assert _built_after(first_use) == ["omnichannel.text._rules.TextRule"]


ADAPTERS = (  # what a bot imports, and an adapter class it declares
    ("import omnichannel_mastodon", "omnichannel_mastodon.MastodonAdapter"),
    ("import omnichannel_bluesky", "omnichannel_bluesky.BlueskyAdapter"),
    ("import omnichannel_x", "omnichannel_x.XAdapter"),
    ("import omnichannel_meta", "omnichannel_meta.FacebookAdapter"),
)


@pytest.mark.parametrize(("adapter", "declared"), ADAPTERS)
def test_an_adapters_import_builds_no_validator(adapter: str, declared: str) -> None:
    """Declared capabilities, wire models and defaults build on first use.

    The first validator built also makes pydantic look for plugins through
    ``importlib.metadata``, which would put both into the adapter's import.
    """
    imported = f"{BOT_CORE}\n{adapter}\n{declared}"  # omnichannel_x loads XAdapter here
    assert _built_after(imported) == []
    first_use = f"{imported}.capabilities.text.limit"
    assert "omnichannel.capabilities.Capabilities" in _built_after(first_use)


@pytest.mark.parametrize(("adapter", "declared"), ADAPTERS)
def test_regex_waits_for_the_first_text_an_adapter_measures_or_maps(
    adapter: str, declared: str
) -> None:
    """Graphemes, UTF-16 offsets, Bluesky's tags and X's weights compile patterns on first use."""
    loaded = _modules_after(f"{BOT_CORE}\n{adapter}\n{declared}")
    assert "regex" not in loaded


@pytest.mark.parametrize(
    ("code", "module"),
    [
        ("from omnichannel.text import TextRule; TextRule.mastodon().count('é')",
         "omnichannel.text._counters"),
        ("from omnichannel.store import PostgresStore", "omnichannel.store.postgres"),
        ("from omnichannel import MemoryStore", "omnichannel.store.memory"),
        ("from omnichannel.store import store_for; store_for('bot.db')",
         "omnichannel.store.postgres"),
        ("import omnichannel.text; omnichannel.text.count_graphemes('é')", "regex"),
    ],
)
def test_each_is_loaded_when_first_used(code: str, module: str) -> None:
    assert module in _modules_after(code)


def test_a_lazy_attribute_is_made_once_and_an_instance_may_replace_it() -> None:
    """The class's value is made on first access and kept; an instance's own value wins."""
    from omnichannel._lazy import lazy_attribute

    made: list[int] = []

    def make() -> int:
        made.append(1)
        return 42

    class Declared:
        value = lazy_attribute(make)

    class Sub(Declared):
        pass

    assert made == []
    assert Sub.value == 42
    assert Declared.value == 42
    assert Declared().value == 42
    assert made == [1]  # kept on the declaring class
    instance = Declared()
    vars(instance)["value"] = 7
    assert instance.value == 7
    assert Declared.value == 42
