"""The issue's state: what its history says about it now, folded by the pure ``evolve``.

``evolve`` handles one event type per function (a ``singledispatch``) and ignores the types the
aggregate does not fold.  Every event bumps the revision — the version a caller's write must name
— except ``HotlineFeedbackSent``, a delivery receipt, and ``IssueRedacted``, a change to what the
public feed shows: neither changes anything a caller decides on.
"""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Event, Place
from shared.events.issues import (
    HotlineFeedbackSent,
    HotlineOrderReceived,
    IssueAccepted,
    IssueAssigned,
    IssueClosed,
    IssueEscalated,
    IssueMerged,
    IssueOverdue,
    IssueRedacted,
    IssueReopened,
    IssueReported,
    IssueResolved,
    IssueVerified,
)

Status = Literal["new", "reported", "accepted", "assigned", "resolved", "verified", "reopened", "closed", "merged"]
#: States in which an issue waits for someone to act, and so can be escalated or fall overdue.
OPEN_STATES = frozenset({"reported", "accepted", "assigned", "reopened"})


class Assignment(BaseModel):
    """Who the case was given to (派遣), when, with what note."""

    model_config = ConfigDict(frozen=True)

    kind: str
    id: str
    note: str | None = None
    at: datetime


class EscalationStep(BaseModel):
    """One step of the case up the ladder or to an outside agency."""

    model_config = ConfigDict(frozen=True)

    from_level: str
    to_level: str
    target: str | None = None
    reason: str
    note: str | None = None
    at: datetime


class Redaction(BaseModel):
    """What the public Open311 feed shows of the issue instead of what was reported (the latest
    redaction, with the text and photos of earlier ones kept: a redaction only ever hides more)."""

    model_config = ConfigDict(frozen=True)

    description: str | None = None
    hidden_photos: list[str] = Field(default_factory=list)
    reason: str
    by: str
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
    redaction: Redaction | None = None

    @property
    def is_open(self) -> bool:
        """Whether someone still has to act (it can be escalated, it can fall overdue)."""
        return self.status in OPEN_STATES


def overdue_at(state: IssueState, next_deadline: datetime | None, at: datetime) -> bool:
    """Whether the issue is overdue at ``at`` (the queue's ``overdue`` filter, in Python): still open and
    its next pending deadline is past, or it is marked overdue (a deadline ran out where it could climb
    no further), or it is a 12345 work order past its resolution deadline, or past its response
    deadline and not yet accepted."""
    if not state.is_open:
        return False
    if state.overdue or (next_deadline is not None and next_deadline <= at):
        return True
    if state.hotline_order_no is None:
        return False
    late = state.resolution_deadline is not None and state.resolution_deadline <= at
    unanswered = state.status == "reported" and state.response_deadline is not None and state.response_deadline <= at
    return late or unanswered


def initial_state() -> IssueState:
    """The state of an issue with no history (status ``new``)."""
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


@_evolve.register
def _(event: IssueRedacted, state: IssueState) -> IssueState:
    d = event.data
    before = state.redaction
    hidden = set(d.hidden_photos) | set(before.hidden_photos if before else ())
    redaction = Redaction(
        description=d.description if d.description is not None else (before.description if before else None),
        hidden_photos=[p for p in state.photos if p in hidden],
        reason=d.reason,
        by=d.redacted_by,
        at=event.occurred_at,
    )
    return state.model_copy(update={"redaction": redaction})


#: Events that change nothing a caller decides casework on: they do not bump the revision (a
#: hotline delivery receipt, a redaction of the public feed), so no one's pending write goes stale.
UNVERSIONED = (HotlineFeedbackSent, IssueRedacted)


def evolve(state: IssueState, event: Event) -> IssueState:
    """Fold one event into the state (pure)."""
    new = _evolve(event, state)
    if isinstance(event, HotlineFeedbackSent):
        return new
    if isinstance(event, IssueRedacted):  # what the public sees changed: Open311's updated_datetime moves
        return new.model_copy(update={"updated_at": event.occurred_at})
    return new.model_copy(update={"revision": state.revision + 1, "updated_at": event.occurred_at})


def fold(events: list[Event], state: IssueState | None = None) -> IssueState:
    """Fold a history."""
    state = state or initial_state()
    for event in events:
        state = evolve(state, event)
    return state
