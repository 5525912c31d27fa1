"""Pick the store a setting names: a PostgreSQL URL or a SQLite file."""

from __future__ import annotations

import os

from .postgres import PostgresStore, is_postgres_url
from .sqlite import SQLiteStore

__all__ = ["store_for"]


def store_for(
    target: str | os.PathLike[str], *, read_only: bool = False
) -> SQLiteStore | PostgresStore:
    """Return the store ``target`` names, not yet opened.

    A ``postgresql://`` (or ``postgres://``) URL gives a
    [`PostgresStore`][omnichannel.store.PostgresStore]; anything else is a SQLite
    file path. With ``read_only`` the store only reads beside a running bot: a
    read-only `SQLiteStore`; a `PostgresStore` opens beside running bots either
    way (it takes no lock and resets nothing).

    Example:
        ```python
        from omnichannel.store import PostgresStore, SQLiteStore, store_for

        assert isinstance(store_for("helpdesk.db"), SQLiteStore)
        assert isinstance(store_for("postgresql://bot@db.internal/helpdesk"), PostgresStore)
        ```
    """
    text = os.fspath(target)
    if is_postgres_url(text):
        return PostgresStore(text, shared=read_only)
    return SQLiteStore(text, read_only=read_only)
