"""What the issues service's routers share: path parameters and the public shape of an issue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from shared.events import TOKEN_PATTERN, now

from ..domain import IssueState, overdue_at, service_code
from ..handlers import Outcome

Community = Annotated[str, Field(pattern=TOKEN_PATTERN)]
IssueId = Annotated[str, Field(pattern=TOKEN_PATTERN)]
#: An id in a query (an agency, a grid): letters, digits, - and _, at most 64.
Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]


def issue_view(state: IssueState, deadline: datetime | None = None) -> dict[str, Any]:
    """The public shape of an issue."""
    data = state.model_dump(
        mode="json", exclude={"revision", "rules_applied", "timers_fired", "unacknowledged", "feedback_sent"}
    )
    data["version"] = state.revision
    data["is_open"] = state.is_open
    data["service_code"] = service_code(state.category, state.subcategory) if state.category else None
    data["next_deadline"] = deadline.isoformat() if deadline else None
    data["overdue_now"] = overdue_at(state, deadline, now())
    return data


def outcome_view(outcome: Outcome) -> dict[str, Any]:
    """The answer to a write: the issue after it, its version, the events appended, whether a retry."""
    return {
        "issue": issue_view(outcome.state),
        "version": outcome.state.revision,
        "events": [e.type for e in outcome.events],
        "duplicate": outcome.duplicate,
    }
