"""The 12345 city service hotline's rules (接诉即办): which issue a work order is, what is reported
back to the hotline, and when a call-back answer is a repeat."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import Event
from shared.events.issues import (
    IssueAccepted,
    IssueAssigned,
    IssueClosed,
    IssueEscalated,
    IssueMerged,
    IssueReopened,
    IssueResolved,
    IssueVerified,
)

from .commands import RecordResidentCallback


def order_issue_id(order_no: str) -> str:
    """The issue a work order becomes: the order number is its key, so a re-sent order is stored once."""
    return f"hl-{order_no}"


def already_answered(events: Sequence[Event], callback: RecordResidentCallback) -> bool:
    """Whether the last resolution was already verified by this same call-back answer (a re-send)."""
    for event in reversed(events):
        if isinstance(event, IssueResolved):
            return False
        if isinstance(event, IssueVerified):
            d = event.data
            return (
                d.verified_by == "hotline"
                and d.satisfied == callback.satisfied
                and d.satisfaction == callback.satisfaction
            )
    return False


def feedback_for(event: object) -> tuple[str, str | None] | None:
    """The (status, note) a status-changing event reports back to the hotline, if any."""
    match event:
        case IssueAccepted():
            return "accepted", f"accepted by {event.data.accepted_by}"
        case IssueAssigned():
            return "assigned", f"assigned to {event.data.assignee_kind} {event.data.assignee_id}"
        case IssueEscalated():
            d = event.data
            return "escalated", f"escalated {d.from_level} → {d.to_level}" + (
                f" ({d.target})" if d.target else ""
            ) + f", reason {d.reason}"
        case IssueResolved():
            return "resolved", event.data.resolution
        case IssueVerified() if event.data.satisfied:
            return "verified", event.data.note
        case IssueReopened():
            return "reopened", event.data.reason
        case IssueClosed():
            return "closed", None
        case IssueMerged():
            return "merged", f"merged into {event.data.duplicate_of}"
    return None
