"""Who may see and act on which issue — the case-level half of authorization, pure.

``shared.auth.require`` has already checked the caller's role for the route and that the token
covers the community.  What remains depends on the issue itself:

* a **grid worker** sees and works the issues of their own grid, those they reported and those
  assigned to them — but an issue assigned to an outside agency is that agency's to resolve;
* an **agency** (police duty desk, property management…) sees and resolves only the issues routed
  to its kind by an escalation (``agency_kind``) or assigned to it by name (``agency``);
* a **12345 work order** is verified and closed by the hotline's call-back alone: nobody else may
  verify or close it (a secretary or worker closing it first would leave the hotline's real
  call-back a 409, and the hotline a false answer);
* a secretary does the community's casework; a street admin reads and escalates; ops operates the
  system and does no casework (the routes do not admit it).
"""

from __future__ import annotations

from shared.auth import Principal

from .state import IssueState

#: Assignee kinds that are outside agencies (an issue assigned to one is theirs to resolve).
AGENCY_KINDS = frozenset({"property_management", "police", "street_office", "urban_management"})

#: What a grid worker may not do to a case assigned to an outside agency (taking it back by
#: reassigning it, closing it by a merge, or resolving it is the agency's or the secretary's).
WITH_THE_AGENCY = frozenset({"resolve", "assign", "merge"})

#: Actions on a 12345 work order that belong to the hotline's call-back.
HOTLINE_ONLY = frozenset({"verify", "close"})


def worker_involved(who: Principal, state: IssueState) -> bool:
    """Whether the issue lies in the worker's grid, was reported by them or was assigned to them."""
    return bool(
        (who.grid and state.place.grid == who.grid)
        or (who.worker_id and state.reported_by == who.worker_id)
        or any(a.kind == "worker" and a.id == who.worker_id for a in state.assignees)
    )


def agency_reached(who: Principal, state: IssueState) -> bool:
    """Whether the issue was routed to the agency's kind or assigned to the agency by name."""
    if who.agency and any(a.id == who.agency for a in state.assignees):
        return True
    kind = who.agency_kind
    return bool(kind) and (state.target == kind or any(step.target == kind for step in state.escalations))


def with_agency(state: IssueState) -> str | None:
    """The outside agency the issue is currently assigned to and with (kind and id), if it is —
    once the agency's resolution was found wanting (reopened), the community takes it back."""
    if state.status == "assigned" and state.assignees and state.assignees[-1].kind in AGENCY_KINDS:
        last = state.assignees[-1]
        return f"{last.kind} {last.id}"
    return None


def refusal(who: Principal, action: str, state: IssueState) -> str | None:
    """Why ``who`` may not ``action`` (read, accept, assign, escalate, resolve, verify, reopen, close,
    merge) this issue — or None when they may."""
    if who.role == "grid_worker":
        if not worker_involved(who, state):
            return (
                f"issue {state.issue_id} is not in grid {who.grid or '-'}, "
                f"nor reported by or assigned to {who.worker_id or who.sub}"
            )
        agency = with_agency(state)
        if action in WITH_THE_AGENCY and agency:
            return f"issue {state.issue_id} is assigned to {agency}: it is theirs to {action}"
    elif who.role == "agency":
        if not agency_reached(who, state):
            return f"issue {state.issue_id} was not routed or assigned to agency {who.agency or who.agency_kind}"
    if state.hotline_order_no and action in HOTLINE_ONLY and who.role != "hotline":
        return f"12345 work order {state.hotline_order_no} is verified and closed by the hotline's call-back"
    return None
