"""Helpdesk building blocks: conversation state, triage, SLAs, canned replies, assignment.

Each piece is plain data and functions that a helpdesk composes in its
handlers, its CLI or its web app; none needs a running hub.

Example:
    ```python
    from omnichannel.helpdesk import Triage, TriageRule

    triage = Triage([TriageRule(name="upset", signs=["🙄"], priority="high")])
    ```
"""

from .announcements import broadcast, fit_text
from .assign import Agent, AssignmentStrategy, LeastLoaded, RoundRobin, Work, eligible
from .canned import CannedReplies, CannedReply
from .hours import BusinessHours, Clock, WallClock, Weekday
from .metrics import GroupMetrics, HelpdeskMetrics, QueueMetrics, measure
from .sla import PRIORITIES, Priority, SlaDue, SlaMetric, SlaPolicy, SlaState, SlaTargets
from .triage import Triage, TriageResult, TriageRule
from .workflow import SlaNotice, Workflow

__all__ = [
    "PRIORITIES",
    "Agent",
    "AssignmentStrategy",
    "BusinessHours",
    "CannedReplies",
    "CannedReply",
    "Clock",
    "GroupMetrics",
    "HelpdeskMetrics",
    "LeastLoaded",
    "Priority",
    "QueueMetrics",
    "RoundRobin",
    "SlaDue",
    "SlaMetric",
    "SlaNotice",
    "SlaPolicy",
    "SlaState",
    "SlaTargets",
    "Triage",
    "TriageResult",
    "TriageRule",
    "WallClock",
    "Weekday",
    "Work",
    "Workflow",
    "broadcast",
    "eligible",
    "fit_text",
    "measure",
]
