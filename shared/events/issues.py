"""Events of the issues context: a problem's life and its travel up the escalation ladder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from .common import Category, Level, Place, Severity, Target
from .envelope import Event, Payload

IssueSource = Literal["grid_worker", "resident", "hotline", "open311", "face_to_face", "council"]
AssigneeKind = Literal[
    "worker",
    "building_leader",
    "volunteer_team",
    "property_management",
    "police",
    "street_office",
    "urban_management",
]
EscalationReason = Literal["manual", "severity", "overdue", "unacknowledged", "rule"]


class _IssueEvent(Event):
    context: ClassVar[str] = "issues"
    aggregate_kind: ClassVar[str] = "issue"


class IssueReportedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("description", "address")

    issue_id: str
    category: Category
    subcategory: str | None = Field(default=None, max_length=64)
    severity: Severity = "medium"
    place: Place = Field(default_factory=Place)
    description: str = Field(max_length=4000)
    photos: list[str] = Field(default_factory=list, max_length=20)
    source: IssueSource = "grid_worker"
    reported_by: str | None = None
    level: Level = "building"
    hotline_order_no: str | None = None
    caused_by_visit: str | None = Field(default=None, description="Visit id when found on a visit")
    address: str | None = Field(default=None, max_length=500, description="Free-text address (Open311)")


class IssueReported(_IssueEvent):
    """A problem was reported: found on a visit, raised by a resident, the hotline or an Open311 app."""

    type: Literal["IssueReported"] = "IssueReported"
    data: IssueReportedData


class IssueAcceptedData(Payload):
    issue_id: str
    accepted_by: str


class IssueAccepted(_IssueEvent):
    """The community accepted the problem as its own to handle (受理)."""

    type: Literal["IssueAccepted"] = "IssueAccepted"
    data: IssueAcceptedData


class IssueAssignedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("note",)

    issue_id: str
    assignee_kind: AssigneeKind
    assignee_id: str
    note: str | None = Field(default=None, max_length=1000)


class IssueAssigned(_IssueEvent):
    """The problem was given to someone to handle (派遣)."""

    type: Literal["IssueAssigned"] = "IssueAssigned"
    data: IssueAssignedData


class IssueEscalatedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("note",)

    issue_id: str
    from_level: Level
    to_level: Level
    target: Target | None = None
    reason: EscalationReason
    note: str | None = Field(default=None, max_length=1000)
    category: Category | None = None
    subcategory: str | None = None
    severity: Severity | None = None
    rule: str | None = Field(default=None, description="Name of the escalation rule (reason rule)")
    notification_id: str | None = Field(default=None, description="Unacknowledged notification (reason unacknowledged)")
    timer: str | None = Field(default=None, description="Deadline timer that fired (reason overdue)")


class IssueEscalated(_IssueEvent):
    """The problem went up the ladder, possibly to an outside agency (police, property management…)."""

    type: Literal["IssueEscalated"] = "IssueEscalated"
    data: IssueEscalatedData


class IssueResolvedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("resolution",)

    issue_id: str
    resolved_by: str
    resolution: str = Field(max_length=4000)


class IssueResolved(_IssueEvent):
    """Whoever handled the problem reports it solved (处理反馈)."""

    type: Literal["IssueResolved"] = "IssueResolved"
    data: IssueResolvedData


class IssueVerifiedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("note",)

    issue_id: str
    verified_by: Literal["worker", "resident_callback", "hotline"]
    satisfied: bool
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    note: str | None = Field(default=None, max_length=1000)


class IssueVerified(_IssueEvent):
    """The solution was checked, on site by the grid worker or by calling the resident back (核查)."""

    type: Literal["IssueVerified"] = "IssueVerified"
    data: IssueVerifiedData


class IssueReopenedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("reason",)

    issue_id: str
    reason: str = Field(max_length=1000)


class IssueReopened(_IssueEvent):
    """The problem came back or the resident was not satisfied."""

    type: Literal["IssueReopened"] = "IssueReopened"
    data: IssueReopenedData


class IssueClosedData(Payload):
    issue_id: str
    closed_by: str


class IssueClosed(_IssueEvent):
    """The case was closed (结案)."""

    type: Literal["IssueClosed"] = "IssueClosed"
    data: IssueClosedData


class IssueMergedData(Payload):
    issue_id: str
    duplicate_of: str


class IssueMerged(_IssueEvent):
    """The problem duplicated another open one nearby and was merged into it."""

    type: Literal["IssueMerged"] = "IssueMerged"
    data: IssueMergedData


class IssueOverdueData(Payload):
    issue_id: str
    level: Level
    deadline: AwareDatetime
    state: str
    timer: str | None = Field(default=None, description="Which deadline: level, response or resolution, and its key")


class IssueOverdue(_IssueEvent):
    """The problem waited past its deadline at its level."""

    type: Literal["IssueOverdue"] = "IssueOverdue"
    data: IssueOverdueData


class HotlineOrderReceivedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("request",)

    order_no: str = Field(max_length=64)
    issue_id: str
    request: str = Field(max_length=4000)
    category: Category
    subcategory: str | None = None
    place: Place = Field(default_factory=Place)
    response_deadline: datetime
    resolution_deadline: datetime
    severity: Severity = "medium"


class HotlineOrderReceived(_IssueEvent):
    """A 12345 city hotline work order (工单) arrived and became an issue."""

    type: Literal["HotlineOrderReceived"] = "HotlineOrderReceived"
    data: HotlineOrderReceivedData


class HotlineFeedbackSentData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("note",)

    order_no: str
    issue_id: str
    status: str
    note: str | None = None
    attempts: int = Field(default=1, ge=1)


class HotlineFeedbackSent(_IssueEvent):
    """A status change went back to the 12345 hotline and the hotline accepted it."""

    type: Literal["HotlineFeedbackSent"] = "HotlineFeedbackSent"
    data: HotlineFeedbackSentData


class IssueRedactedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("description", "reason")

    issue_id: str
    redacted_by: str
    description: str | None = Field(
        default=None,
        max_length=4000,
        description="What the public feed shows instead of the description (None: as before)",
    )
    hidden_photos: list[str] = Field(default_factory=list, max_length=20, description="Photos the public feed omits")
    reason: str = Field(max_length=1000)


class IssueRedacted(_IssueEvent):
    """The community redacted what the public Open311 feed shows of a problem: replacement text for its
    description and/or photos withheld, with the reason.  The case itself and its history are unchanged."""

    type: Literal["IssueRedacted"] = "IssueRedacted"
    data: IssueRedactedData


EVENTS: tuple[type[Event], ...] = (
    IssueReported,
    IssueAccepted,
    IssueAssigned,
    IssueEscalated,
    IssueResolved,
    IssueVerified,
    IssueReopened,
    IssueClosed,
    IssueMerged,
    IssueOverdue,
    HotlineOrderReceived,
    HotlineFeedbackSent,
    IssueRedacted,
)
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
