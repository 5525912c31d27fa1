"""Persistence for the hub: events, messages, outbox, drafts and audit.

[`Store`][omnichannel.store.Store] is the protocol the hub talks to: the union of
the roles a store plays ([`EventStore`][omnichannel.store.EventStore],
[`MessageStore`][omnichannel.store.MessageStore],
[`OutboxStore`][omnichannel.store.OutboxStore],
[`DraftStore`][omnichannel.store.DraftStore],
[`AuditStore`][omnichannel.store.AuditStore],
[`LeaseStore`][omnichannel.store.LeaseStore]).
[`MemoryStore`][omnichannel.store.MemoryStore] keeps everything in memory (for
tests); [`SQLiteStore`][omnichannel.store.SQLiteStore] is the embedded default;
[`PostgresStore`][omnichannel.store.PostgresStore] keeps them on a PostgreSQL
server (the ``omnichannel[postgres]`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ._held import held_lease as held_lease
from .base import AuditEntry as AuditEntry
from .base import DeadLetter as DeadLetter
from .base import Draft as Draft
from .base import DraftAction as DraftAction
from .base import DraftStatus as DraftStatus
from .base import HandlerFailure as HandlerFailure
from .base import OutboxItem as OutboxItem
from .base import OutboxStatus as OutboxStatus
from .roles import DEFAULT_LEASE as DEFAULT_LEASE
from .roles import AuditStore as AuditStore
from .roles import DraftStore as DraftStore
from .roles import EventStore as EventStore
from .roles import LeaseStore as LeaseStore
from .roles import MessageStore as MessageStore
from .roles import OutboxStore as OutboxStore
from .roles import Store as Store
from .roles import ValueStore as ValueStore
from .sqlite import SQLiteStore as SQLiteStore
from .states import ConversationState as ConversationState
from .states import ConversationStateStore as ConversationStateStore
from .states import ConversationStatus as ConversationStatus
from .states import StateChange as StateChange

if TYPE_CHECKING:
    from ._choose import store_for as store_for
    from .memory import MemoryStore as MemoryStore
    from .postgres import PostgresStore as PostgresStore
    from .postgres import is_postgres_url as is_postgres_url

# Loaded on first use (module ``__getattr__``): a store needs no other store's module.
_HOMES: dict[str, str] = {
    "MemoryStore": ".memory",
    "PostgresStore": ".postgres",
    "is_postgres_url": ".postgres",
    "store_for": "._choose",
}

__all__ = [
    "DEFAULT_LEASE",
    "AuditEntry",
    "AuditStore",
    "ConversationState",
    "ConversationStateStore",
    "ConversationStatus",
    "DeadLetter",
    "Draft",
    "DraftAction",
    "DraftStatus",
    "DraftStore",
    "EventStore",
    "HandlerFailure",
    "LeaseStore",
    "MemoryStore",
    "MessageStore",
    "OutboxItem",
    "OutboxStatus",
    "OutboxStore",
    "PostgresStore",
    "SQLiteStore",
    "StateChange",
    "Store",
    "ValueStore",
    "held_lease",
    "is_postgres_url",
    "store_for",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
