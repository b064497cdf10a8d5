"""The issue's lifecycle: which command applies in which state, and the events it produces (``decide``).

    reported → accepted (受理) → assigned (派遣) → resolved (处理反馈) → verified (核查) → closed (结案)
                   ↑                                     │ not satisfied          │ came back
                   └──────────── reopened ←──────────────┴────────────────────────┘
    reported / accepted / assigned / reopened ── merged (duplicate of another open issue)

Escalation moves an open issue up the ladder building → compound → community → street (and to an
outside agency) without changing its status; the escalation policy says where rules, deadlines
and unacknowledged notifications send it.  ``decide`` is one function per command type (a
``singledispatch``); it raises on an illegal command and returns no events when a reaction's
command has nothing left to do (a rule already applied, a timer already fired).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import singledispatch
from typing import Any, cast
from uuid import UUID

from shared.errors import Conflict, Invalid, NotFound
from shared.events import Category, Event, Level, Severity, Target
from shared.events.issues import (
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
    IssueRedacted,
    IssueRedactedData,
    IssueReopened,
    IssueReopenedData,
    IssueReported,
    IssueReportedData,
    IssueResolved,
    IssueResolvedData,
    IssueVerified,
    IssueVerifiedData,
)

from .commands import (
    AcceptIssue,
    ApplyEscalationRules,
    AssignIssue,
    CloseIssue,
    CommandMeta,
    EscalateIssue,
    EscalateUnacknowledged,
    MarkOverdue,
    MergeIssue,
    ReceiveHotlineOrder,
    RecordHotlineFeedback,
    RecordResidentCallback,
    RedactIssue,
    ReopenIssue,
    ReportIssue,
    ResolveIssue,
    Timer,
    VerifyIssue,
)
from .policy import LEVEL_INDEX, Policy, next_level
from .state import OPEN_STATES, IssueState

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


# ---------------------------------------------------------------- decide


def _new(
    cls: type[Event], state: IssueState, meta: CommandMeta, data: Any, suffix: str, at: datetime | None = None
) -> Event:
    issue_id = getattr(data, "issue_id", None) or state.issue_id
    return cls.new(
        community=meta.community,
        aggregate_id=issue_id,
        actor=meta.actor,
        data=data,
        occurred_at=at or meta.at,
        causation_id=meta.causation_id,
        correlation_id=meta.correlation_id,
        idempotency_key=f"{meta.key}:{suffix}" if meta.key else None,
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
    meta: CommandMeta,
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
    return _new(IssueEscalated, state, meta, data, suffix, at)


@singledispatch
def _decide(command: object, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    raise TypeError(f"unknown command {type(command).__name__}")


@_decide.register
def _(cmd: ReportIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
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
    return [_new(IssueReported, state, meta, data, "reported")]


@_decide.register
def _(cmd: ReceiveHotlineOrder, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
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
    return [
        _new(HotlineOrderReceived, state, meta, order, "order"),
        _new(IssueReported, state, meta, report, "reported"),
    ]


@_decide.register
def _(cmd: AcceptIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "accept")
    return [
        _new(IssueAccepted, state, meta, IssueAcceptedData(issue_id=state.issue_id, accepted_by=meta.actor), "accepted")
    ]


@_decide.register
def _(cmd: AssignIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "assign")
    data = IssueAssignedData(
        issue_id=state.issue_id,
        assignee_kind=cmd.assignee_kind,
        assignee_id=cmd.assignee_id,
        note=cmd.note,
    )
    return [_new(IssueAssigned, state, meta, data, "assigned")]


@_decide.register
def _(cmd: EscalateIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "escalate")
    to_level: str | None = cmd.to_level
    if to_level is None:
        by_target = policy.level_of_target(cmd.target) if cmd.target else None
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
    target = cmd.target or (policy.target_on(to_level) if to_level != state.level else None)
    if to_level == state.level and (target is None or target == state.target):
        raise IllegalTransition(
            f"issue is already at {state.level} with {state.target or 'no agency'}",
            current_state=state.status,
            version=state.revision,
            level=state.level,
        )
    return [_escalated(state, meta, "escalated", to_level=to_level, target=target, reason="manual", note=cmd.note)]


@_decide.register
def _(cmd: ResolveIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "resolve")
    data = IssueResolvedData(issue_id=state.issue_id, resolved_by=meta.actor, resolution=cmd.resolution)
    return [_new(IssueResolved, state, meta, data, "resolved")]


@_decide.register
def _(cmd: VerifyIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "verify")
    verified = _new(
        IssueVerified,
        state,
        meta,
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
        _new(IssueReopened, state, meta, IssueReopenedData(issue_id=state.issue_id, reason=reason[:1000]), "reopened"),
    ]


@_decide.register
def _(cmd: ReopenIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "reopen")
    return [_new(IssueReopened, state, meta, IssueReopenedData(issue_id=state.issue_id, reason=cmd.reason), "reopened")]


@_decide.register
def _(cmd: CloseIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "close")
    return [_new(IssueClosed, state, meta, IssueClosedData(issue_id=state.issue_id, closed_by=meta.actor), "closed")]


@_decide.register
def _(cmd: MergeIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
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
        _new(IssueMerged, state, meta, IssueMergedData(issue_id=state.issue_id, duplicate_of=into.issue_id), "merged")
    ]


def redaction_repeats(state: IssueState, cmd: RedactIssue) -> bool:
    """Whether the issue's redaction already says all that ``cmd`` says (its texts compared as given:
    the caller reveals the state's sealed texts first)."""
    before = state.redaction
    if before is None:
        return False
    hide = state.photos if cmd.hide_photos is True else () if cmd.hide_photos is False else cmd.hide_photos
    same_text = cmd.description is None or cmd.description == before.description
    return same_text and set(hide) <= set(before.hidden_photos) and cmd.reason == before.reason


@_decide.register
def _(cmd: RedactIssue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    if state.status == "new":
        raise NotFound(f"issue {state.issue_id or '?'} not found", field="issue_id")
    if cmd.hide_photos is True:
        hidden = list(state.photos)
    elif cmd.hide_photos is False:
        hidden = []
    else:
        unknown = [p for p in cmd.hide_photos if p not in state.photos]
        if unknown:
            raise Invalid(f"issue {state.issue_id} has no photo {unknown[0]}", field="hide_photos")
        hidden = [p for p in state.photos if p in cmd.hide_photos]
    if cmd.description is None and not hidden:
        raise Invalid("a redaction replaces the description or hides photos (or both)", field="description")
    if redaction_repeats(state, cmd):
        return []  # said already: a retry, nothing to add
    data = IssueRedactedData(
        issue_id=state.issue_id,
        redacted_by=meta.actor,
        description=cmd.description,
        hidden_photos=hidden,
        reason=cmd.reason,
    )
    return [_new(IssueRedacted, state, meta, data, "redacted")]


@_decide.register
def _(cmd: ApplyEscalationRules, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    if not state.is_open or state.category is None or state.reported_at is None:
        return []
    rule = policy.rule_for(
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
            meta,
            f"rule:{rule.name}",
            to_level=to_level,
            target=rule.target,
            reason="rule",
            note=rule.note,
            rule=rule.name,
        )
    ]


@_decide.register
def _(cmd: MarkOverdue, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
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
        meta,
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
            meta,
            f"overdue-escalated:{timer.key}",
            to_level=up,
            target=policy.target_on(up) or state.target,
            reason="overdue",
            note=note,
            at=timer.due_at,
            timer=timer.key,
        ),
    ]


@_decide.register
def _(cmd: EscalateUnacknowledged, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    if not state.is_open or cmd.notification_id in state.unacknowledged:
        return []
    up = next_level(state.level)
    if up is None:
        return []
    return [
        _escalated(
            state,
            meta,
            f"unacknowledged:{cmd.notification_id}",
            to_level=up,
            target=policy.target_on(up) or state.target,
            reason="unacknowledged",
            note=f"notification {cmd.notification_id} was not acknowledged",
            notification_id=cmd.notification_id,
        )
    ]


@_decide.register
def _(cmd: RecordHotlineFeedback, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
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
            replace(meta, causation_id=UUID(cmd.feedback_id)),
            data,
            f"feedback:{cmd.feedback_id}",
        )
    ]


@_decide.register
def _(cmd: RecordResidentCallback, state: IssueState, meta: CommandMeta, policy: Policy) -> list[Event]:
    _require(state, "callback")
    verified = _new(
        IssueVerified,
        state,
        meta,
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
            _new(IssueClosed, state, meta, IssueClosedData(issue_id=state.issue_id, closed_by=meta.actor), "closed"),
        ]
    reason = (
        f"resident not satisfied on the 12345 call-back: {cmd.note}"
        if cmd.note
        else "resident not satisfied on the 12345 call-back"
    )
    return [
        verified,
        _new(IssueReopened, state, meta, IssueReopenedData(issue_id=state.issue_id, reason=reason[:1000]), "reopened"),
    ]


def decide(state: IssueState, command: object, meta: CommandMeta, *, policy: Policy) -> list[Event]:
    """The events a command produces on this state under this escalation policy (pure; raises on an
    illegal command)."""
    return _decide(command, state, meta, policy)


def same_effect(a: list[Event], b: list[Event]) -> bool:
    """Whether two event lists record the same facts (types and payloads), ignoring ids and times."""
    return len(a) == len(b) and all(x.type == y.type and x.data == y.data for x, y in zip(a, b, strict=True))


def timer_for_level(policy: Policy, category: str, severity: str, level: str, since: datetime) -> Timer | None:
    """The deadline of a case that arrived at ``level`` at ``since`` (None: no deadline configured)."""
    wait: timedelta | None = policy.deadline(category, severity, level)
    return Timer("level", level, since + wait) if wait is not None else None
