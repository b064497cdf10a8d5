"""The issue aggregate (问题): a problem's life as two pure functions, ``decide`` and ``evolve``.

Lifecycle (the digital city-management case flow 信息收集→案卷建立→任务派遣→任务处理→处理反馈→核查结案)::

    reported → accepted (受理) → assigned (派遣) → resolved (处理反馈) → verified (核查) → closed (结案)
                   ↑                                     │ not satisfied          │ came back
                   └──────────── reopened ←──────────────┴────────────────────────┘
    reported / accepted / assigned / reopened ── merged (duplicate of another open issue)

Escalation moves an open issue up the ladder building → compound → community → street (and to an
outside agency) without changing its status.  Nothing here does I/O: the handlers load the
history, call ``decide`` and append what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import singledispatch
from typing import Any, Literal, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import Conflict, Invalid, NotFound
from shared.events import Category, Event, Level, Place, Severity, Target
from shared.events.issues import (
    AssigneeKind,
    EscalationReason,
    HotlineFeedbackSent,
    HotlineFeedbackSentData,
    HotlineOrderReceived,
    HotlineOrderReceivedData,
    IssueAccepted,
    IssueAcceptedData,
    IssueAssigned,
    IssueAssignedData,
    IssueClosed,
    IssueClosedData,
    IssueEscalated,
    IssueEscalatedData,
    IssueMerged,
    IssueMergedData,
    IssueOverdue,
    IssueOverdueData,
    IssueReopened,
    IssueReopenedData,
    IssueReported,
    IssueReportedData,
    IssueResolved,
    IssueResolvedData,
    IssueSource,
    IssueVerified,
    IssueVerifiedData,
)

from .policy import LEVEL_INDEX, Policy, next_level

Status = Literal["new", "reported", "accepted", "assigned", "resolved", "verified", "reopened", "closed", "merged"]
#: States in which an issue waits for someone to act, and so can be escalated or fall overdue.
OPEN_STATES = frozenset({"reported", "accepted", "assigned", "reopened"})
#: Where each command may start from.
ALLOWED: dict[str, frozenset[str]] = {
    "accept": frozenset({"reported", "reopened"}),
    "assign": frozenset({"accepted", "assigned", "reopened"}),
    "escalate": OPEN_STATES,
    "resolve": frozenset({"assigned"}),
    "verify": frozenset({"resolved"}),
    "reopen": frozenset({"resolved", "verified", "closed"}),
    "close": frozenset({"verified"}),
    "merge": OPEN_STATES,
    "callback": frozenset({"resolved"}),
}


# ---------------------------------------------------------------- errors


class IllegalTransition(Conflict):
    """The command does not apply in the issue's current state (HTTP 409 with that state)."""

    code = "illegal_transition"


class StaleVersion(Conflict):
    """The caller's version of the issue is not the current one (HTTP 409)."""

    code = "stale_version"


# ---------------------------------------------------------------- state


class Assignment(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    id: str
    note: str | None = None
    at: datetime


class EscalationStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_level: str
    to_level: str
    target: str | None = None
    reason: str
    note: str | None = None
    at: datetime


class IssueState(BaseModel):
    """What the issue's history says about it now."""

    model_config = ConfigDict(frozen=True)

    issue_id: str = ""
    community: str = ""
    status: Status = "new"
    #: Counts the issue's own changes; delivery receipts (HotlineFeedbackSent) do not bump it.
    revision: int = 0
    category: str | None = None
    subcategory: str | None = None
    severity: str = "medium"
    place: Place = Field(default_factory=Place)
    address: str | None = None
    description: str = ""
    photos: list[str] = Field(default_factory=list)
    source: str | None = None
    reported_by: str | None = None
    reported_at: datetime | None = None
    updated_at: datetime | None = None
    caused_by_visit: str | None = None
    level: str = "building"
    target: str | None = None
    assignees: list[Assignment] = Field(default_factory=list)
    escalations: list[EscalationStep] = Field(default_factory=list)
    resolutions: int = 0
    resolution: str | None = None
    verified_by: str | None = None
    satisfied: bool | None = None
    satisfaction: int | None = None
    reopened: int = 0
    last_note: str | None = None
    duplicate_of: str | None = None
    hotline_order_no: str | None = None
    response_deadline: datetime | None = None
    resolution_deadline: datetime | None = None
    overdue: bool = False
    rules_applied: list[str] = Field(default_factory=list)
    timers_fired: list[str] = Field(default_factory=list)
    unacknowledged: list[str] = Field(default_factory=list)
    feedback_sent: list[str] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


def initial_state() -> IssueState:
    return IssueState()


@singledispatch
def _evolve(event: Event, state: IssueState) -> IssueState:
    return state  # an event this aggregate does not fold


@_evolve.register
def _(event: HotlineOrderReceived, state: IssueState) -> IssueState:
    d = event.data
    return state.model_copy(
        update={
            "hotline_order_no": d.order_no,
            "response_deadline": d.response_deadline,
            "resolution_deadline": d.resolution_deadline,
        }
    )


@_evolve.register
def _(event: IssueReported, state: IssueState) -> IssueState:
    d = event.data
    return state.model_copy(
        update={
            "issue_id": d.issue_id,
            "community": event.community,
            "status": "reported",
            "category": d.category,
            "subcategory": d.subcategory,
            "severity": d.severity,
            "place": d.place,
            "address": d.address,
            "description": d.description,
            "photos": list(d.photos),
            "source": d.source,
            "reported_by": d.reported_by,
            "reported_at": event.occurred_at,
            "level": d.level,
            "caused_by_visit": d.caused_by_visit,
            "hotline_order_no": d.hotline_order_no or state.hotline_order_no,
        }
    )


@_evolve.register
def _(event: IssueAccepted, state: IssueState) -> IssueState:
    return state.model_copy(update={"status": "accepted"})


@_evolve.register
def _(event: IssueAssigned, state: IssueState) -> IssueState:
    d = event.data
    step = Assignment(kind=d.assignee_kind, id=d.assignee_id, note=d.note, at=event.occurred_at)
    return state.model_copy(update={"status": "assigned", "assignees": [*state.assignees, step]})


@_evolve.register
def _(event: IssueEscalated, state: IssueState) -> IssueState:
    d = event.data
    step = EscalationStep(
        from_level=d.from_level,
        to_level=d.to_level,
        target=d.target,
        reason=d.reason,
        note=d.note,
        at=event.occurred_at,
    )
    update: dict[str, Any] = {
        "level": d.to_level,
        "target": d.target or state.target,
        "escalations": [*state.escalations, step],
    }
    if d.rule:
        update["rules_applied"] = [*state.rules_applied, d.rule]
    if d.notification_id:
        update["unacknowledged"] = [*state.unacknowledged, d.notification_id]
    if d.to_level != d.from_level:
        update["overdue"] = False  # a fresh level, a fresh clock
    return state.model_copy(update=update)


@_evolve.register
def _(event: IssueResolved, state: IssueState) -> IssueState:
    return state.model_copy(
        update={
            "status": "resolved",
            "resolutions": state.resolutions + 1,
            "resolution": event.data.resolution,
            "overdue": False,
        }
    )


@_evolve.register
def _(event: IssueVerified, state: IssueState) -> IssueState:
    d = event.data
    return state.model_copy(
        update={
            "status": "verified" if d.satisfied else state.status,
            "verified_by": d.verified_by,
            "satisfied": d.satisfied,
            "satisfaction": d.satisfaction,
            "last_note": d.note or state.last_note,
        }
    )


@_evolve.register
def _(event: IssueReopened, state: IssueState) -> IssueState:
    return state.model_copy(
        update={"status": "reopened", "reopened": state.reopened + 1, "last_note": event.data.reason}
    )


@_evolve.register
def _(event: IssueClosed, state: IssueState) -> IssueState:
    return state.model_copy(update={"status": "closed"})


@_evolve.register
def _(event: IssueMerged, state: IssueState) -> IssueState:
    return state.model_copy(update={"status": "merged", "duplicate_of": event.data.duplicate_of})


@_evolve.register
def _(event: IssueOverdue, state: IssueState) -> IssueState:
    key = event.data.timer or f"{event.data.level}:{event.data.deadline.isoformat()}"
    return state.model_copy(update={"overdue": True, "timers_fired": [*state.timers_fired, key]})


@_evolve.register
def _(event: HotlineFeedbackSent, state: IssueState) -> IssueState:
    key = str(event.causation_id) if event.causation_id else event.data.status
    return state.model_copy(update={"feedback_sent": [*state.feedback_sent, key]})


def evolve(state: IssueState, event: Event) -> IssueState:
    """Fold one event into the state (pure)."""
    new = _evolve(event, state)
    if isinstance(event, HotlineFeedbackSent):
        return new
    return new.model_copy(update={"revision": state.revision + 1, "updated_at": event.occurred_at})


def fold(events: list[Event], state: IssueState | None = None) -> IssueState:
    """Fold a history."""
    state = state or initial_state()
    for event in events:
        state = evolve(state, event)
    return state


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Context:
    """Who acts, when, under which policy; ``key`` makes the produced event ids deterministic."""

    community: str
    actor: str
    at: datetime
    policy: Policy = field(default_factory=Policy)
    key: str | None = None
    causation_id: UUID | None = None
    correlation_id: UUID | None = None


@dataclass(frozen=True)
class ReportIssue:
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
    """A 12345 work order (工单) arrives: it becomes the issue ``hl-<order_no>``."""

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
    pass


@dataclass(frozen=True)
class AssignIssue:
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
    resolution: str


@dataclass(frozen=True)
class VerifyIssue:
    verified_by: Literal["worker", "resident_callback"]
    satisfied: bool
    satisfaction: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class ReopenIssue:
    reason: str


@dataclass(frozen=True)
class CloseIssue:
    pass


@dataclass(frozen=True)
class MergeIssue:
    """Merge into ``into``, an open issue in the same category (its state is loaded by the caller)."""

    into: IssueState


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
        return f"{self.kind}:{self.level}:{int(self.due_at.timestamp() * 1000)}"


@dataclass(frozen=True)
class MarkOverdue:
    timer: Timer


@dataclass(frozen=True)
class EscalateUnacknowledged:
    notification_id: str


@dataclass(frozen=True)
class RecordHotlineFeedback:
    feedback_id: str  # the id of the status-change event being reported
    status: str
    note: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class HotlineCallback:
    """The hotline called the resident back: satisfied closes the case, not satisfied reopens it."""

    satisfied: bool
    satisfaction: int | None = None
    note: str | None = None


# ---------------------------------------------------------------- decide


def _new(
    cls: type[Event], state: IssueState, ctx: Context, data: Any, suffix: str, at: datetime | None = None
) -> Event:
    issue_id = getattr(data, "issue_id", None) or state.issue_id
    return cls.new(
        community=ctx.community,
        aggregate_id=issue_id,
        actor=ctx.actor,
        data=data,
        occurred_at=at or ctx.at,
        causation_id=ctx.causation_id,
        correlation_id=ctx.correlation_id,
        idempotency_key=f"{ctx.key}:{suffix}" if ctx.key else None,
    )


def _require(state: IssueState, action: str) -> None:
    if state.status == "new":
        raise NotFound(f"issue {state.issue_id or '?'} not found", field="issue_id")
    if state.status not in ALLOWED[action]:
        allowed = ", ".join(sorted(ALLOWED[action]))
        raise IllegalTransition(
            f"cannot {action} an issue that is {state.status} (only when {allowed})",
            current_state=state.status,
            version=state.revision,
        )


def _escalated(
    state: IssueState,
    ctx: Context,
    suffix: str,
    *,
    to_level: str,
    target: str | None,
    reason: EscalationReason,
    note: str | None = None,
    at: datetime | None = None,
    **extra: Any,
) -> Event:
    # The state and the policy only hold values that were validated against these literals (and the
    # model validates them again): the casts only tell the type checker so.
    data = IssueEscalatedData(
        issue_id=state.issue_id,
        from_level=cast(Level, state.level),
        to_level=cast(Level, to_level),
        target=cast(Target | None, target),
        reason=reason,
        note=note,
        category=cast(Category | None, state.category),
        subcategory=state.subcategory,
        severity=cast(Severity, state.severity),
        **extra,
    )
    return _new(IssueEscalated, state, ctx, data, suffix, at)


@singledispatch
def _decide(command: object, state: IssueState, ctx: Context) -> list[Event]:
    raise TypeError(f"unknown command {type(command).__name__}")


@_decide.register
def _(cmd: ReportIssue, state: IssueState, ctx: Context) -> list[Event]:
    if state.status != "new":
        raise IllegalTransition(
            f"issue {cmd.issue_id} was already reported", current_state=state.status, version=state.revision
        )
    data = IssueReportedData(
        issue_id=cmd.issue_id,
        category=cmd.category,
        subcategory=cmd.subcategory,
        severity=cmd.severity,
        place=cmd.place,
        description=cmd.description,
        photos=list(cmd.photos),
        source=cmd.source,
        reported_by=cmd.reported_by,
        level=cmd.level,
        caused_by_visit=cmd.caused_by_visit,
        address=cmd.address,
    )
    return [_new(IssueReported, state, ctx, data, "reported")]


@_decide.register
def _(cmd: ReceiveHotlineOrder, state: IssueState, ctx: Context) -> list[Event]:
    if state.status != "new":
        raise IllegalTransition(
            f"work order {cmd.order_no} was already received", current_state=state.status, version=state.revision
        )
    if cmd.resolution_deadline < cmd.response_deadline:
        raise Invalid("the resolution deadline comes before the response deadline", field="resolution_deadline")
    order = HotlineOrderReceivedData(
        order_no=cmd.order_no,
        issue_id=cmd.issue_id,
        request=cmd.request,
        category=cmd.category,
        subcategory=cmd.subcategory,
        place=cmd.place,
        response_deadline=cmd.response_deadline,
        resolution_deadline=cmd.resolution_deadline,
        severity=cmd.severity,
    )
    report = IssueReportedData(
        issue_id=cmd.issue_id,
        category=cmd.category,
        subcategory=cmd.subcategory,
        severity=cmd.severity,
        place=cmd.place,
        description=cmd.request,
        source="hotline",
        reported_by="12345",
        hotline_order_no=cmd.order_no,
    )
    return [_new(HotlineOrderReceived, state, ctx, order, "order"), _new(IssueReported, state, ctx, report, "reported")]


@_decide.register
def _(cmd: AcceptIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "accept")
    return [
        _new(IssueAccepted, state, ctx, IssueAcceptedData(issue_id=state.issue_id, accepted_by=ctx.actor), "accepted")
    ]


@_decide.register
def _(cmd: AssignIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "assign")
    data = IssueAssignedData(
        issue_id=state.issue_id,
        assignee_kind=cmd.assignee_kind,
        assignee_id=cmd.assignee_id,
        note=cmd.note,
    )
    return [_new(IssueAssigned, state, ctx, data, "assigned")]


@_decide.register
def _(cmd: EscalateIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "escalate")
    to_level: str | None = cmd.to_level
    if to_level is None:
        by_target = ctx.policy.level_of_target(cmd.target) if cmd.target else None
        if by_target and LEVEL_INDEX[by_target] > LEVEL_INDEX[state.level]:
            to_level = by_target
        elif cmd.target and cmd.target != state.target:
            to_level = state.level  # hand over to the agency where the case stands
        else:
            to_level = next_level(state.level)
    if to_level is None:
        raise IllegalTransition(
            f"issue is at the top of the ladder ({state.level}); name another target",
            current_state=state.status,
            version=state.revision,
            level=state.level,
        )
    if LEVEL_INDEX[to_level] < LEVEL_INDEX[state.level]:
        raise IllegalTransition(
            f"cannot escalate down from {state.level} to {to_level}",
            current_state=state.status,
            version=state.revision,
            level=state.level,
        )
    target = cmd.target or (ctx.policy.target_on(to_level) if to_level != state.level else None)
    if to_level == state.level and (target is None or target == state.target):
        raise IllegalTransition(
            f"issue is already at {state.level} with {state.target or 'no agency'}",
            current_state=state.status,
            version=state.revision,
            level=state.level,
        )
    return [_escalated(state, ctx, "escalated", to_level=to_level, target=target, reason="manual", note=cmd.note)]


@_decide.register
def _(cmd: ResolveIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "resolve")
    data = IssueResolvedData(issue_id=state.issue_id, resolved_by=ctx.actor, resolution=cmd.resolution)
    return [_new(IssueResolved, state, ctx, data, "resolved")]


@_decide.register
def _(cmd: VerifyIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "verify")
    verified = _new(
        IssueVerified,
        state,
        ctx,
        IssueVerifiedData(
            issue_id=state.issue_id,
            verified_by=cmd.verified_by,
            satisfied=cmd.satisfied,
            satisfaction=cmd.satisfaction,
            note=cmd.note,
        ),
        "verified",
    )
    if cmd.satisfied:
        return [verified]
    reason = f"verification failed: {cmd.note}" if cmd.note else "verification failed"
    return [
        verified,
        _new(IssueReopened, state, ctx, IssueReopenedData(issue_id=state.issue_id, reason=reason[:1000]), "reopened"),
    ]


@_decide.register
def _(cmd: ReopenIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "reopen")
    return [_new(IssueReopened, state, ctx, IssueReopenedData(issue_id=state.issue_id, reason=cmd.reason), "reopened")]


@_decide.register
def _(cmd: CloseIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "close")
    return [_new(IssueClosed, state, ctx, IssueClosedData(issue_id=state.issue_id, closed_by=ctx.actor), "closed")]


@_decide.register
def _(cmd: MergeIssue, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "merge")
    into = cmd.into
    if into.status == "new":
        raise NotFound(f"issue {into.issue_id} not found", field="duplicate_of")
    if into.issue_id == state.issue_id:
        raise Invalid("an issue cannot be merged into itself", field="duplicate_of")
    if not into.is_open:
        raise IllegalTransition(
            f"issue {into.issue_id} is {into.status}; merge only into an open issue",
            current_state=state.status,
            version=state.revision,
            duplicate_state=into.status,
        )
    if into.category != state.category:
        raise Invalid(f"issue {into.issue_id} is {into.category}, not {state.category}", field="duplicate_of")
    return [
        _new(IssueMerged, state, ctx, IssueMergedData(issue_id=state.issue_id, duplicate_of=into.issue_id), "merged")
    ]


@_decide.register
def _(cmd: ApplyEscalationRules, state: IssueState, ctx: Context) -> list[Event]:
    if not state.is_open or state.category is None or state.reported_at is None:
        return []
    rule = ctx.policy.rule_for(
        category=state.category,
        subcategory=state.subcategory,
        severity=state.severity,
        source=state.source,
        reported_at=state.reported_at,
    )
    if rule is None or rule.name in state.rules_applied:
        return []
    to_level = rule.to_level if LEVEL_INDEX[rule.to_level] > LEVEL_INDEX[state.level] else state.level
    if to_level == state.level and (rule.target is None or rule.target == state.target):
        return []  # already where the rule would send it
    return [
        _escalated(
            state,
            ctx,
            f"rule:{rule.name}",
            to_level=to_level,
            target=rule.target,
            reason="rule",
            note=rule.note,
            rule=rule.name,
        )
    ]


@_decide.register
def _(cmd: MarkOverdue, state: IssueState, ctx: Context) -> list[Event]:
    timer = cmd.timer
    if timer.key in state.timers_fired or not state.is_open:
        return []
    if timer.kind == "level" and state.level != timer.level:
        return []  # it climbed meanwhile: this level's clock no longer runs
    if timer.kind == "response" and state.status != "reported":
        return []  # the community responded (accepted) in time
    overdue = _new(
        IssueOverdue,
        state,
        ctx,
        IssueOverdueData(
            issue_id=state.issue_id,
            level=cast(Level, state.level),
            deadline=timer.due_at,
            state=state.status,
            timer=timer.key,
        ),
        f"overdue:{timer.key}",
        at=timer.due_at,
    )
    up = next_level(state.level)
    if up is None:
        return [overdue]  # nowhere left to climb: the overdue mark is the signal
    note = f"waited past its {timer.kind} deadline at {state.level}"
    return [
        overdue,
        _escalated(
            state,
            ctx,
            f"overdue-escalated:{timer.key}",
            to_level=up,
            target=ctx.policy.target_on(up) or state.target,
            reason="overdue",
            note=note,
            at=timer.due_at,
            timer=timer.key,
        ),
    ]


@_decide.register
def _(cmd: EscalateUnacknowledged, state: IssueState, ctx: Context) -> list[Event]:
    if not state.is_open or cmd.notification_id in state.unacknowledged:
        return []
    up = next_level(state.level)
    if up is None:
        return []
    return [
        _escalated(
            state,
            ctx,
            f"unacknowledged:{cmd.notification_id}",
            to_level=up,
            target=ctx.policy.target_on(up) or state.target,
            reason="unacknowledged",
            note=f"notification {cmd.notification_id} was not acknowledged",
            notification_id=cmd.notification_id,
        )
    ]


@_decide.register
def _(cmd: RecordHotlineFeedback, state: IssueState, ctx: Context) -> list[Event]:
    if state.hotline_order_no is None or cmd.feedback_id in state.feedback_sent:
        return []
    data = HotlineFeedbackSentData(
        order_no=state.hotline_order_no,
        issue_id=state.issue_id,
        status=cmd.status,
        note=cmd.note,
        attempts=cmd.attempts,
    )
    # The feedback id is the id of the status change reported: the receipt's cause.
    return [
        _new(
            HotlineFeedbackSent,
            state,
            replace(ctx, causation_id=UUID(cmd.feedback_id)),
            data,
            f"feedback:{cmd.feedback_id}",
        )
    ]


@_decide.register
def _(cmd: HotlineCallback, state: IssueState, ctx: Context) -> list[Event]:
    _require(state, "callback")
    verified = _new(
        IssueVerified,
        state,
        ctx,
        IssueVerifiedData(
            issue_id=state.issue_id,
            verified_by="hotline",
            satisfied=cmd.satisfied,
            satisfaction=cmd.satisfaction,
            note=cmd.note,
        ),
        "verified",
    )
    if cmd.satisfied:
        return [
            verified,
            _new(IssueClosed, state, ctx, IssueClosedData(issue_id=state.issue_id, closed_by=ctx.actor), "closed"),
        ]
    reason = (
        f"resident not satisfied on the 12345 call-back: {cmd.note}"
        if cmd.note
        else "resident not satisfied on the 12345 call-back"
    )
    return [
        verified,
        _new(IssueReopened, state, ctx, IssueReopenedData(issue_id=state.issue_id, reason=reason[:1000]), "reopened"),
    ]


def decide(state: IssueState, command: object, ctx: Context) -> list[Event]:
    """The events a command produces on this state (pure; raises on an illegal command)."""
    return _decide(command, state, ctx)


def same_effect(a: list[Event], b: list[Event]) -> bool:
    """Whether two event lists record the same facts (types and payloads), ignoring ids and times."""
    return len(a) == len(b) and all(x.type == y.type and x.data == y.data for x, y in zip(a, b, strict=True))


def timer_for_level(policy: Policy, category: str, severity: str, level: str, since: datetime) -> Timer | None:
    """The deadline of a case that arrived at ``level`` at ``since`` (None: no deadline configured)."""
    wait: timedelta | None = policy.deadline(category, severity, level)
    return Timer("level", level, since + wait) if wait is not None else None
