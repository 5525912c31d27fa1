"""Test kit for adapter authors: sandboxes, faults, a virtual clock, the conformance suite.

The names here are re-exported from their canonical modules:
[`omnichannel.testing.sandbox`][omnichannel.testing.sandbox],
[`omnichannel.testing.faults`][omnichannel.testing.faults] and
[`omnichannel.testing.clock`][omnichannel.testing.clock]. The conformance
suite lives in ``omnichannel.testing.conformance`` (imported on demand: it
needs pytest).
"""

from __future__ import annotations

from .clock import VirtualClock as VirtualClock
from .faults import Fault as Fault
from .faults import FaultHit as FaultHit
from .faults import FaultKind as FaultKind
from .faults import FaultRule as FaultRule
from .faults import Faults as Faults
from .sandbox import Account as Account
from .sandbox import DirectConversation as DirectConversation
from .sandbox import DirectMessage as DirectMessage
from .sandbox import Facet as Facet
from .sandbox import HandlerResult as HandlerResult
from .sandbox import Like as Like
from .sandbox import Notification as Notification
from .sandbox import Post as Post
from .sandbox import RateLimits as RateLimits
from .sandbox import RateLimitWindow as RateLimitWindow
from .sandbox import RecordedRequest as RecordedRequest
from .sandbox import Sandbox as Sandbox
from .sandbox import SandboxAbort as SandboxAbort
from .sandbox import SandboxRequest as SandboxRequest
from .sandbox import SandboxResponse as SandboxResponse
from .sandbox import SentRecord as SentRecord
from .sandbox import WebhookDelivery as WebhookDelivery
from .sandbox import World as World
from .sandbox import route as route

__all__ = [
    "Account",
    "DirectConversation",
    "DirectMessage",
    "Facet",
    "Fault",
    "FaultHit",
    "FaultKind",
    "FaultRule",
    "Faults",
    "HandlerResult",
    "Like",
    "Notification",
    "Post",
    "RateLimitWindow",
    "RateLimits",
    "RecordedRequest",
    "Sandbox",
    "SandboxAbort",
    "SandboxRequest",
    "SandboxResponse",
    "SentRecord",
    "VirtualClock",
    "WebhookDelivery",
    "World",
    "route",
]
