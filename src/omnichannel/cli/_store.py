"""``omnichannel store migrate``: create or migrate a store's schema, then exit."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO

import anyio

from ..store import PostgresStore, SQLiteStore, is_postgres_url

__all__ = ["add_store_parser", "cmd_store_migrate"]


def add_store_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``store`` and its ``migrate`` command."""
    store = add(
        "store", help="manage a store's schema",
        description="Manage the schema of a store: a SQLite file or a PostgreSQL database.",
    )
    verbs = store.add_subparsers(dest="verb", metavar="VERB", required=True)
    migrate = verbs.add_parser(
        "migrate", help="create or migrate the schema, then exit",
        description="Apply the migrations the store has not had, once, and print its schema "
                    "version. On PostgreSQL it runs beside working bots (several may start "
                    "at the same moment: the migrations run once, under an advisory lock) "
                    "and changes no data; a SQLite file must not be open in a bot.",
    )
    migrate.add_argument("--store", metavar="FILE|URL",
                         help="the store (default: OMNICHANNEL_STORE, the config's, "
                              "omnichannel.db)")
    migrate.add_argument("--config", metavar="FILE", help="settings file naming the store")
    migrate.set_defaults(func=cmd_store_migrate)


async def _migrate(target: str) -> tuple[str, int]:
    if is_postgres_url(target):
        # A PostgreSQL store takes no lock and resets nothing: it runs beside working bots.
        postgres = PostgresStore(target, min_connections=0)
        async with postgres:
            return postgres.url, postgres.schema_version or 0
    from ..store._sqlite_schema import MIGRATIONS

    async with SQLiteStore(target):
        return target, len(MIGRATIONS)


def cmd_store_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """Create or migrate the named store's schema and print its version."""
    from ..settings import Config

    target = Config.load(args.config).store_path(args.store)
    where, version = anyio.run(_migrate, target)
    print(f"store {where}: schema version {version}", file=out)
    return 0
