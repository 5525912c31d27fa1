"""Persistence for the hub: events, messages, outbox, drafts and audit.

[`Store`][omnichannel.store.Store] is the protocol the hub talks to.
[`MemoryStore`][omnichannel.store.MemoryStore] keeps everything in memory (for
tests); [`SQLiteStore`][omnichannel.store.SQLiteStore] is the embedded default.
"""

from __future__ import annotations

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
from .sqlite import SQLiteStore as SQLiteStore

__all__ = [
    "AuditEntry",
    "DeadLetter",
    "Draft",
    "DraftAction",
    "DraftStatus",
    "HandlerFailure",
    "MemoryStore",
    "OutboxItem",
    "OutboxStatus",
    "SQLiteStore",
    "Store",
]
