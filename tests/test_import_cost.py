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
