"""The commands an issue takes (imperatives, frozen) and the metadata every command comes with.

A command says what someone wants done; :class:`CommandMeta` says who asks, for which community,
and when — the time comes in with the command, the domain never reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.events import Category, Level, Place, Severity, Target
from shared.events.issues import AssigneeKind, IssueSource

from .state import IssueState


@dataclass(frozen=True)
class CommandMeta:
    """Who acts, for which community, when; ``key`` makes the produced event ids deterministic (a
    retried command appends nothing new), the causation and correlation ids link the events to what
    caused them."""

    community: str
    actor: str
    at: datetime
    key: str | None = None
    causation_id: UUID | None = None
    correlation_id: UUID | None = None


@dataclass(frozen=True)
class ReportIssue:
    """Record a problem found by a grid worker, told by a resident, or noted at a session or council."""

    issue_id: str
    category: Category
    description: str
    subcategory: str | None = None
    severity: Severity = "medium"
    place: Place = field(default_factory=Place)
    photos: tuple[str, ...] = ()
    source: IssueSource = "grid_worker"
    reported_by: str | None = None
    level: Level = "building"
    caused_by_visit: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class ReceiveHotlineOrder:
    """Take a 12345 work order (工单): it becomes the issue ``hl-<order_no>``."""

    order_no: str
    issue_id: str
    request: str
    category: Category
    response_deadline: datetime
    resolution_deadline: datetime
    subcategory: str | None = None
    severity: Severity = "medium"
    place: Place = field(default_factory=Place)


@dataclass(frozen=True)
class AcceptIssue:
    """The community takes the case on (受理)."""


@dataclass(frozen=True)
class AssignIssue:
    """Give the case to a worker, the building leader, a volunteer team or an agency (派遣)."""

    assignee_kind: AssigneeKind
    assignee_id: str
    note: str | None = None


@dataclass(frozen=True)
class EscalateIssue:
    """Manual escalation: up to ``to_level`` and/or to an outside agency, with a reason."""

    note: str
    to_level: Level | None = None
    target: Target | None = None


@dataclass(frozen=True)
class ResolveIssue:
    """Report the case solved (处理反馈)."""

    resolution: str


@dataclass(frozen=True)
class VerifyIssue:
    """Check the solution on site or by calling the resident back (核查); not satisfied reopens it."""

    verified_by: Literal["worker", "resident_callback"]
    satisfied: bool
    satisfaction: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class ReopenIssue:
    """The problem came back."""

    reason: str


@dataclass(frozen=True)
class CloseIssue:
    """Close a verified case (结案)."""


@dataclass(frozen=True)
class MergeIssue:
    """Merge into ``into``, an open issue in the same category (its state is loaded by the caller)."""

    into: IssueState


@dataclass(frozen=True)
class RedactIssue:
    """Redact what the public Open311 feed shows: replacement text for the description (None: keep
    it) and photos to withhold (True: every photo), with the reason."""

    reason: str
    description: str | None = None
    hide_photos: bool | tuple[str, ...] = False


@dataclass(frozen=True)
class ApplyEscalationRules:
    """Reaction to IssueReported: escalate when a rule of the policy applies."""


@dataclass(frozen=True)
class Timer:
    """A deadline: ``level`` (waited too long at a level), ``response`` or ``resolution`` (hotline)."""

    kind: Literal["level", "response", "resolution"]
    level: str
    due_at: datetime

    @property
    def key(self) -> str:
        """The timer's identity on its issue: kind, level and due time (milliseconds)."""
        return f"{self.kind}:{self.level}:{int(self.due_at.timestamp() * 1000)}"


@dataclass(frozen=True)
class MarkOverdue:
    """A deadline ran out: mark the issue overdue and, while it can still climb, escalate it."""

    timer: Timer


@dataclass(frozen=True)
class EscalateUnacknowledged:
    """Nobody acknowledged an escalation's notification in time: climb one level."""

    notification_id: str


@dataclass(frozen=True)
class RecordHotlineFeedback:
    """The hotline took a status update on its work order: keep the receipt."""

    feedback_id: str  # the id of the status-change event being reported
    status: str
    note: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class RecordResidentCallback:
    """Record the resident's answer on the hotline's call-back (回访): satisfied closes the case, not
    satisfied reopens it."""

    satisfied: bool
    satisfaction: int | None = None
    note: str | None = None
