"""omnichannel: one typed conversation model for social customer service.

The names here are the helpdesk developer's surface; each has one canonical
home module (``omnichannel.model``, ``omnichannel.events``, ...) where the
reference documents it. Adapter authors import from ``omnichannel.adapter``,
``omnichannel.http``, ``omnichannel.text`` and ``omnichannel.testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_names

if TYPE_CHECKING:
    from .actions import Delete as Delete
    from .actions import Hide as Hide
    from .actions import Post as Post
    from .actions import PrivateReply as PrivateReply
    from .actions import React as React
    from .actions import Reply as Reply
    from .actions import Sent as Sent
    from .capabilities import Capabilities as Capabilities
    from .errors import ActionError as ActionError
    from .errors import AmbiguousDelivery as AmbiguousDelivery
    from .errors import AuthenticationError as AuthenticationError
    from .errors import CapabilityNotSupported as CapabilityNotSupported
    from .errors import ConfigurationError as ConfigurationError
    from .errors import ConversationClaimed as ConversationClaimed
    from .errors import DraftNotPending as DraftNotPending
    from .errors import DuplicateContent as DuplicateContent
    from .errors import DuplicateReply as DuplicateReply
    from .errors import NetworkError as NetworkError
    from .errors import NotFound as NotFound
    from .errors import OmnichannelError as OmnichannelError
    from .errors import PayloadError as PayloadError
    from .errors import PrivateReplyUsed as PrivateReplyUsed
    from .errors import RateLimited as RateLimited
    from .errors import RequestRejected as RequestRejected
    from .errors import TextTooLong as TextTooLong
    from .errors import TokenExpired as TokenExpired
    from .errors import TransientError as TransientError
    from .errors import UnknownNetwork as UnknownNetwork
    from .errors import WebhookSignatureError as WebhookSignatureError
    from .errors import WindowClosed as WindowClosed
    from .events import AuthHealth as AuthHealth
    from .events import Event as Event
    from .events import MessageDeleted as MessageDeleted
    from .events import MessageReceived as MessageReceived
    from .events import MessageUpdated as MessageUpdated
    from .events import ReactionAdded as ReactionAdded
    from .events import ReactionRemoved as ReactionRemoved
    from .events import SlaBreached as SlaBreached
    from .events import SlaWarning as SlaWarning
    from .hub import Context as Context
    from .hub import Hub as Hub
    from .hub import HubStatistics as HubStatistics
    from .hub import NetworkStatistics as NetworkStatistics
    from .model import Attachment as Attachment
    from .model import Conversation as Conversation
    from .model import Hashtag as Hashtag
    from .model import Link as Link
    from .model import Mention as Mention
    from .model import Message as Message
    from .model import Person as Person
    from .model import Ref as Ref
    from .model import Visibility as Visibility
    from .registry import AdapterInfo as AdapterInfo
    from .registry import adapters as adapters
    from .registry import load_adapter as load_adapter
    from .routing import Router as Router
    from .store import MemoryStore as MemoryStore
    from .store import SQLiteStore as SQLiteStore
    from .store import Store as Store

# The names are imported on first use (module ``__getattr__``): ``import
# omnichannel`` stays cheap, and what serves or listens is loaded only by who
# uses it. Each name's home module is its canonical place in the reference.
_HOMES: dict[str, str] = {
    "Delete": "actions",
    "Hide": "actions",
    "Post": "actions",
    "PrivateReply": "actions",
    "React": "actions",
    "Reply": "actions",
    "Sent": "actions",
    "Capabilities": "capabilities",
    "ActionError": "errors",
    "AmbiguousDelivery": "errors",
    "AuthenticationError": "errors",
    "CapabilityNotSupported": "errors",
    "ConfigurationError": "errors",
    "ConversationClaimed": "errors",
    "DraftNotPending": "errors",
    "DuplicateContent": "errors",
    "DuplicateReply": "errors",
    "NetworkError": "errors",
    "NotFound": "errors",
    "OmnichannelError": "errors",
    "PayloadError": "errors",
    "PrivateReplyUsed": "errors",
    "RateLimited": "errors",
    "RequestRejected": "errors",
    "TextTooLong": "errors",
    "TokenExpired": "errors",
    "TransientError": "errors",
    "UnknownNetwork": "errors",
    "WebhookSignatureError": "errors",
    "WindowClosed": "errors",
    "Event": "events",
    "MessageDeleted": "events",
    "MessageReceived": "events",
    "MessageUpdated": "events",
    "ReactionAdded": "events",
    "ReactionRemoved": "events",
    "AuthHealth": "events",
    "SlaBreached": "events",
    "SlaWarning": "events",
    "Context": "hub",
    "Hub": "hub",
    "HubStatistics": "hub",
    "NetworkStatistics": "hub",
    "Attachment": "model",
    "Conversation": "model",
    "Hashtag": "model",
    "Link": "model",
    "Mention": "model",
    "Message": "model",
    "Person": "model",
    "Ref": "model",
    "Visibility": "model",
    "AdapterInfo": "registry",
    "adapters": "registry",
    "load_adapter": "registry",
    "Router": "routing",
    "MemoryStore": "store",
    "SQLiteStore": "store",
    "Store": "store",
}

__all__ = [
    "ActionError",
    "AdapterInfo",
    "AmbiguousDelivery",
    "Attachment",
    "AuthHealth",
    "AuthenticationError",
    "Capabilities",
    "CapabilityNotSupported",
    "ConfigurationError",
    "Context",
    "Conversation",
    "ConversationClaimed",
    "Delete",
    "DraftNotPending",
    "DuplicateContent",
    "DuplicateReply",
    "Event",
    "Hashtag",
    "Hide",
    "Hub",
    "HubStatistics",
    "Link",
    "MemoryStore",
    "Mention",
    "Message",
    "MessageDeleted",
    "MessageReceived",
    "MessageUpdated",
    "NetworkError",
    "NetworkStatistics",
    "NotFound",
    "OmnichannelError",
    "PayloadError",
    "Person",
    "Post",
    "PrivateReply",
    "PrivateReplyUsed",
    "RateLimited",
    "React",
    "ReactionAdded",
    "ReactionRemoved",
    "Ref",
    "Reply",
    "RequestRejected",
    "Router",
    "SQLiteStore",
    "Sent",
    "SlaBreached",
    "SlaWarning",
    "Store",
    "TextTooLong",
    "TokenExpired",
    "TransientError",
    "UnknownNetwork",
    "Visibility",
    "WebhookSignatureError",
    "WindowClosed",
    "adapters",
    "load_adapter",
]


_load, __dir__ = lazy_names(
    __name__, globals(), {name: f".{home}" for name, home in _HOMES.items()}
)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import __version__

        return __version__
    return _load(name)
