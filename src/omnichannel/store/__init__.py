"""Persistence for the hub: events, messages, outbox, drafts and audit.

[`Store`][omnichannel.store.Store] is the protocol the hub talks to.
[`MemoryStore`][omnichannel.store.MemoryStore] keeps everything in memory (for
tests); [`SQLiteStore`][omnichannel.store.SQLiteStore] is the embedded default;
[`PostgresStore`][omnichannel.store.PostgresStore] keeps them on a PostgreSQL
server (the ``omnichannel[postgres]`` extra).
"""

from __future__ import annotations

from ._choose import store_for as store_for
from .base import AuditEntry as AuditEntry
from .base import DeadLetter as DeadLetter
from .base import Draft as Draft
from .base import DraftAction as DraftAction
from .base import DraftStatus as DraftStatus
from .base import HandlerFailure as HandlerFailure
from .base import OutboxItem as OutboxItem
from .base import OutboxStatus as OutboxStatus
from .base import Store as Store
from .memory import MemoryStore as MemoryStore
from .postgres import PostgresStore as PostgresStore
from .postgres import is_postgres_url as is_postgres_url
from .sqlite import SQLiteStore as SQLiteStore
from .states import ConversationState as ConversationState
from .states import ConversationStateStore as ConversationStateStore
from .states import ConversationStatus as ConversationStatus
from .states import StateChange as StateChange

__all__ = [
    "AuditEntry",
    "ConversationState",
    "ConversationStateStore",
    "ConversationStatus",
    "DeadLetter",
    "Draft",
    "DraftAction",
    "DraftStatus",
    "HandlerFailure",
    "MemoryStore",
    "OutboxItem",
    "OutboxStatus",
    "PostgresStore",
    "SQLiteStore",
    "StateChange",
    "Store",
    "is_postgres_url",
    "store_for",
]
