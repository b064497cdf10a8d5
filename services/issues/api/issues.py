"""The issues API: report a problem, move an issue through its life, query the board.

Every route is a thin translator: parse, call a handler, shape the answer.  ``require`` has
checked the role and the community; the case-level rules (a worker's grid, an agency's cases, the
hotline's own steps — :mod:`services.issues.domain.access`) are checked on the issue as read.
Writes carry the caller's ``version`` of the issue; a stale one is answered with 409 and the
current state, an illegal step with 409 and the state it is in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from shared.auth import Principal, require
from shared.errors import DomainError, Forbidden, Invalid
from shared.events import TOKEN_PATTERN, Category, Level, Place, Severity, Target, now
from shared.events.issues import AssigneeKind
from shared.timerules import SaneAwareDatetime, check_occurred_at

from .. import bootstrap, queries
from ..domain import (
    AcceptIssue,
    AssignIssue,
    CloseIssue,
    CommandMeta,
    EscalateIssue,
    IssueState,
    MergeIssue,
    RedactIssue,
    ReopenIssue,
    ReportIssue,
    ResolveIssue,
    VerifyIssue,
    access,
)
from ..domain.lifecycle import redaction_repeats
from ..domain.open311 import request_view
from ..handlers import Outcome, execute, existing_history, new_issue_id
from .common import Community, IssueId, Token, issue_view, outcome_view

#: Who reads a community's issues (each within their scope: a worker's grid, an agency's cases).
READERS = ("grid_worker", "secretary", "street_admin", "agency")
#: Who does the community's casework.  Ops operates the system and does none.
WRITERS = ("grid_worker", "secretary")

router = APIRouter(prefix="/v1", tags=["issues"])


def guard(principal: Principal, action: str) -> Callable[[IssueState], None]:
    """The case-level check of ``action`` on an issue for ``principal`` (403 naming ``issue_id``)."""

    def check(state: IssueState) -> None:
        reason = access.refusal(principal, action, state)
        if reason is not None:
            raise Forbidden(reason, field="issue_id")

    return check


def _meta(principal: Principal, community: str, at: datetime | None = None) -> CommandMeta:
    return CommandMeta(community=community, actor=principal.worker_id or principal.sub, at=at or now())


# ---------------------------------------------------------------- bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportBody(_Body):
    issue_id: str | None = Field(
        default=None,
        pattern=r"^is-[A-Za-z0-9_-]{1,61}$",
        description="Client-chosen id, starting with is- (hl- and o311- belong to the 12345 hotline and "
        "Open311); a re-send is stored once",
    )
    category: Category
    subcategory: str | None = Field(default=None, max_length=64)
    severity: Severity = "medium"
    place: Place = Field(default_factory=Place)
    description: str = Field(min_length=1, max_length=4000)
    photos: list[HttpUrl] = Field(default_factory=list, max_length=20)
    source: Literal["grid_worker", "resident"] = "grid_worker"
    level: Level = "building"
    occurred_at: SaneAwareDatetime | None = Field(
        default=None,
        description="When the problem was found (default: now); at most 5 minutes ahead of the server's clock "
        "and 30 days back (GRIDWORK_CLOCK_SKEW_SECONDS, GRIDWORK_MAX_BACKDATE_DAYS), else 422",
    )


class VersionBody(_Body):
    version: int = Field(ge=0, le=2**31 - 1, description="The version of the issue the caller last saw")


class AssignBody(VersionBody):
    assignee_kind: AssigneeKind
    assignee_id: str = Field(
        pattern=TOKEN_PATTERN, description="The id of the worker, building leader, team or agency (not a name)"
    )
    note: str | None = Field(default=None, max_length=1000)


class EscalateBody(VersionBody):
    reason: str = Field(min_length=1, max_length=1000, description="Why it must go up (manual escalation)")
    to_level: Level | None = None
    target: Target | None = None


class ResolveBody(VersionBody):
    resolution: str = Field(min_length=1, max_length=4000)


class VerifyBody(VersionBody):
    verified_by: Literal["worker", "resident_callback"] = "worker"
    satisfied: bool
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    note: str | None = Field(default=None, max_length=1000)


class ReopenBody(VersionBody):
    reason: str = Field(min_length=1, max_length=1000)


class MergeBody(VersionBody):
    duplicate_of: IssueId


class BulkAssignBody(_Body):
    issue_ids: list[IssueId] = Field(min_length=1, max_length=100, description="At most 100 issues, each once")
    assignee_kind: AssigneeKind
    assignee_id: str = Field(
        pattern=TOKEN_PATTERN, description="The id of the worker, building leader, team or agency (not a name)"
    )
    note: str | None = Field(default=None, max_length=1000)


class RedactBody(_Body):
    description: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="What the public Open311 feed shows instead of the description (omitted: unchanged)",
    )
    hide_photos: bool | Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=20)] = Field(
        default=False, description="true: withhold every photo from the public feed; or the photo URLs to withhold"
    )
    reason: str = Field(min_length=1, max_length=1000, description="Why (kept in the issue's history)")


# ---------------------------------------------------------------- writes


@router.post("/communities/{community}/issues", status_code=201)
async def report_issue(
    request: Request,
    response: Response,
    community: Community,
    body: ReportBody,
    principal: Principal = Depends(require(*WRITERS)),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=200),
) -> dict[str, Any]:
    """Report a problem (a grid worker's find or a resident's complaint); suggests likely duplicates.

    The reporter — who is credited with the day's problem — is the caller (the token's worker);
    a grid worker's report without a grid is placed in their grid."""
    deps = bootstrap.deps(request)
    deps.catalogue.check(body.category, body.subcategory)
    if body.occurred_at is not None:  # the visits API's window: a phone's clock drift ahead, 30 days back
        s = deps.settings
        check_occurred_at(body.occurred_at, now(), skew_seconds=s.clock_skew_seconds, max_days=s.max_backdate_days)
    issue_id = body.issue_id or new_issue_id(community, idempotency_key)
    place = body.place
    if principal.role == "grid_worker" and place.grid is None and principal.grid:
        place = place.model_copy(update={"grid": principal.grid})
    meta = _meta(principal, community, body.occurred_at)
    # Everything that reads PostgreSQL comes before the event is stored (#15 item 17): once it is,
    # the answer is a success — a database failing after the append would make a 5xx mean "stored".
    # The likely duplicates are those of the issue as it will be (same category, place, time).
    provisional = IssueState(
        issue_id=issue_id,
        community=community,
        category=body.category,
        subcategory=body.subcategory,
        place=place,
        reported_at=meta.at,
    )
    async with deps.pool.acquire() as conn:
        duplicates = await queries.possible_duplicates(
            conn,
            provisional,
            days=deps.settings.issues_duplicate_days,
            radius_m=deps.settings.issues_duplicate_radius_m,
            visible_to=principal,
        )
    similar = await deps.vault.reveal(community, [issue_view(d) for d in duplicates])
    command = ReportIssue(
        issue_id=issue_id,
        category=body.category,
        subcategory=body.subcategory,
        severity=body.severity,
        place=place,
        description=body.description,
        photos=tuple(str(p) for p in body.photos),
        source=body.source,
        reported_by=principal.worker_id or principal.sub,
        level=body.level,
    )
    outcome = await execute(
        deps=deps,
        community=community,
        issue_id=issue_id,
        command=command,
        meta=meta,
        expected_revision=0,
    )
    if outcome.duplicate:
        response.status_code = 200
    answer = {**outcome_view(outcome), "possible_duplicates": similar}
    if not outcome.duplicate:
        return answer  # the new issue's texts are as the caller typed them: nothing to read back
    # A retry of a report stored before: its state is read back with the texts sealed, and a
    # failure here is a 503 the client answers by sending the same report again (it is idempotent).
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


async def _command(
    request: Request,
    principal: Principal,
    community: str,
    issue_id: str,
    command: object,
    version: int,
    action: str,
) -> dict[str, Any]:
    deps = bootstrap.deps(request)
    outcome = await execute(
        deps=deps,
        community=community,
        issue_id=issue_id,
        command=command,
        meta=_meta(principal, community),
        expected_revision=version,
        authorize=guard(principal, action),
    )
    revealed: dict[str, Any] = await deps.vault.reveal(community, outcome_view(outcome))
    return revealed


@router.post("/communities/{community}/issues/{issue_id}/accept")
async def accept_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: VersionBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """The community takes the case on (受理)."""
    return await _command(request, principal, community, issue_id, AcceptIssue(), body.version, "accept")


@router.post("/communities/{community}/issues/{issue_id}/assign")
async def assign_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: AssignBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """Give the case to a worker, the building leader (楼栋长), a volunteer team or an agency (派遣)."""
    return await _command(
        request,
        principal,
        community,
        issue_id,
        AssignIssue(body.assignee_kind, body.assignee_id, body.note),
        body.version,
        "assign",
    )


@router.post("/communities/{community}/issues/assign")
async def assign_issues(
    request: Request,
    community: Community,
    body: BulkAssignBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """Give many cases to one assignee at once (批量派遣), each by the rule of the single assign — the
    caller's case-level rights (a worker: their grid's, not a case with an agency) and the issue's
    state — answering per issue ``{issue_id, ok, status, version, duplicate, error}`` with 200, in the
    order asked.  Idempotent under retry: an issue whose latest assignment is already this assignee is
    answered ok (``duplicate``) and not assigned again.  Each issue is assigned at its current version."""
    if len(set(body.issue_ids)) != len(body.issue_ids):
        raise Invalid("an issue is listed twice", field="issue_ids")
    deps = bootstrap.deps(request)
    command = AssignIssue(body.assignee_kind, body.assignee_id, body.note)
    results = []
    for issue_id in body.issue_ids:
        state: IssueState | None = None
        try:
            history = await existing_history(community, issue_id, deps=deps)
            state = history.state
            guard(principal, "assign")(state)
            last = state.assignees[-1] if state.assignees else None
            if state.status == "assigned" and last and (last.kind, last.id) == (body.assignee_kind, body.assignee_id):
                outcome = Outcome(state, [], duplicate=True)
            else:
                outcome = await execute(
                    deps=deps,
                    community=community,
                    issue_id=issue_id,
                    command=command,
                    meta=_meta(principal, community),
                    authorize=guard(principal, "assign"),
                )
        except DomainError as err:
            results.append(
                {
                    "issue_id": issue_id,
                    "ok": False,
                    "status": getattr(state, "status", None),
                    "version": getattr(state, "revision", None),
                    "duplicate": False,
                    "error": err.body()["error"],
                }
            )
            continue
        results.append(
            {
                "issue_id": issue_id,
                "ok": True,
                "status": outcome.state.status,
                "version": outcome.state.revision,
                "duplicate": outcome.duplicate,
                "error": None,
            }
        )
    assigned = sum(r["ok"] for r in results)
    return {"assigned": assigned, "refused": len(results) - assigned, "results": results}


@router.post("/communities/{community}/issues/{issue_id}/escalate")
async def escalate_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: EscalateBody,
    principal: Principal = Depends(require(*WRITERS, "street_admin")),
) -> dict[str, Any]:
    """Send the case up the ladder and/or to an outside agency, with a reason."""
    return await _command(
        request,
        principal,
        community,
        issue_id,
        EscalateIssue(note=body.reason, to_level=body.to_level, target=body.target),
        body.version,
        "escalate",
    )


@router.post("/communities/{community}/issues/{issue_id}/resolve")
async def resolve_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: ResolveBody,
    principal: Principal = Depends(require(*WRITERS, "agency")),
) -> dict[str, Any]:
    """Whoever handled the case reports it solved (处理反馈)."""
    return await _command(
        request, principal, community, issue_id, ResolveIssue(body.resolution), body.version, "resolve"
    )


@router.post("/communities/{community}/issues/{issue_id}/verify")
async def verify_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: VerifyBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """Check the solution on site or by calling the resident back (核查); not satisfied reopens it."""
    command = VerifyIssue(body.verified_by, body.satisfied, body.satisfaction, body.note)
    return await _command(request, principal, community, issue_id, command, body.version, "verify")


@router.post("/communities/{community}/issues/{issue_id}/reopen")
async def reopen_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: ReopenBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """The problem came back."""
    return await _command(request, principal, community, issue_id, ReopenIssue(body.reason), body.version, "reopen")


@router.post("/communities/{community}/issues/{issue_id}/close")
async def close_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: VersionBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """Close a verified case (结案)."""
    return await _command(request, principal, community, issue_id, CloseIssue(), body.version, "close")


@router.post("/communities/{community}/issues/{issue_id}/merge")
async def merge_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: MergeBody,
    principal: Principal = Depends(require(*WRITERS)),
) -> dict[str, Any]:
    """Merge a duplicate into the open issue it repeats (same category)."""
    into = await existing_history(community, body.duplicate_of, deps=bootstrap.deps(request), field="duplicate_of")
    reason = access.refusal(principal, "read", into.state)
    if reason is not None:
        raise Forbidden(reason, field="duplicate_of")
    return await _command(request, principal, community, issue_id, MergeIssue(into.state), body.version, "merge")


@router.post("/communities/{community}/issues/{issue_id}/redact")
async def redact_issue(
    request: Request,
    community: Community,
    issue_id: IssueId,
    body: RedactBody,
    principal: Principal = Depends(require("secretary")),
) -> dict[str, Any]:
    """Redact what the public Open311 feed shows of the issue (a name in the text, a face in a photo):
    replacement text and/or photos withheld, with the reason.  Appended to the issue's history
    (``IssueRedacted``: who, when, why); the staff API still shows the original and the redaction.
    A redaction only hides more; it does not change the issue's version.  The answer carries the
    issue and ``open311``, the service request as the public feed now shows it."""
    deps = bootstrap.deps(request)
    hide = tuple(body.hide_photos) if isinstance(body.hide_photos, list) else body.hide_photos
    command = RedactIssue(reason=body.reason, description=body.description, hide_photos=hide)
    history = await existing_history(community, issue_id, deps=deps)
    guard(principal, "redact")(history.state)
    # The same redaction sent again (its answer lost) appends nothing: compared with the texts revealed.
    if redaction_repeats(await deps.vault.reveal(community, history.state), command):
        outcome = Outcome(history.state, [], duplicate=True)
    else:
        outcome = await execute(
            deps=deps,
            community=community,
            issue_id=issue_id,
            command=command,
            meta=_meta(principal, community),
            authorize=guard(principal, "redact"),
        )
    async with deps.pool.acquire() as conn:
        deadline = await queries.pending_deadline(conn, community, issue_id)
    answer = {**outcome_view(outcome), "open311": request_view(outcome.state, deadline, deps.catalogue)}
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


# ---------------------------------------------------------------- reads


@router.get("/communities/{community}/issues")
async def list_issues(
    request: Request,
    community: Community,
    state: Annotated[list[str], Query(description="status filter, repeatable")] = [],  # noqa: B006
    category: Annotated[list[Category], Query()] = [],  # noqa: B006
    subcategory: str | None = None,
    level: Annotated[list[Level], Query()] = [],  # noqa: B006
    source: str | None = None,
    open: bool = False,
    agency: Annotated[
        list[Token],
        Query(
            description="repeatable: an outside agency assigned the case (its id, e.g. police-a, or its kind, "
            "e.g. police), or the agency kind the case was escalated to",
        ),
    ] = [],  # noqa: B006
    grid: Annotated[list[Token], Query(description="repeatable: the grid of the issue's place")] = [],  # noqa: B006
    overdue: bool = Query(
        default=False,
        description="only issues overdue now: open, and a pending deadline is past, or marked overdue at the top "
        "of the ladder, or a 12345 order past its resolution (or, not accepted, its response) deadline",
    ),
    sort: Literal["newest", "overdue"] = Query(
        default="newest", description="newest first, or overdue first, then the soonest next deadline"
    ),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=1_000_000_000),
    principal: Principal = Depends(require(*READERS)),
) -> dict[str, Any]:
    """Issues of a community filtered by state, category, level, source, agency, grid and overdue — those
    the caller may see (a grid worker: their grid's, reported by or assigned to them; an agency: those
    routed or assigned to it); newest first or ``sort=overdue``."""
    deps = bootstrap.deps(request)
    async with deps.pool.acquire() as conn:
        issues, total = await queries.list_issues(
            conn,
            community,
            visible_to=principal,
            statuses=state,
            categories=category,
            subcategory=subcategory,
            levels=level,
            source=source,
            open_only=open,
            agencies=agency,
            grids=grid,
            overdue_only=overdue,
            sort=sort,
            limit=limit,
            offset=offset,
        )
        deadlines = await queries.pending_deadlines(conn, [(i.community, i.issue_id) for i in issues])
    answer = {
        "total": total,
        "limit": limit,
        "offset": offset,
        "issues": [issue_view(i, deadlines.get((i.community, i.issue_id))) for i in issues],
    }
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


@router.get("/communities/{community}/issues/{issue_id}")
async def get_issue(
    request: Request, community: Community, issue_id: IssueId, principal: Principal = Depends(require(*READERS))
) -> dict[str, Any]:
    """One issue, read from its own history (always current), with that history."""
    deps = bootstrap.deps(request)
    history = await existing_history(community, issue_id, deps=deps)
    guard(principal, "read")(history.state)
    async with deps.pool.acquire() as conn:
        deadline = await queries.pending_deadline(conn, community, issue_id)
    answer = {
        "issue": issue_view(history.state, deadline),
        "history": [
            {
                "type": e.type,
                "version": e.aggregate_version,
                "occurred_at": e.occurred_at.isoformat(),
                "actor": e.actor,
                "data": e.data.model_dump(mode="json"),
            }
            for e in history.events
        ],
    }
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


@router.get("/communities/{community}/issues/{issue_id}/duplicates")
async def issue_duplicates(
    request: Request, community: Community, issue_id: IssueId, principal: Principal = Depends(require(*READERS))
) -> dict[str, Any]:
    """Open issues nearby in the same category that this one may duplicate."""
    deps = bootstrap.deps(request)
    state = (await existing_history(community, issue_id, deps=deps)).state
    guard(principal, "read")(state)
    s = deps.settings
    async with deps.pool.acquire() as conn:
        found = await queries.possible_duplicates(
            conn, state, days=s.issues_duplicate_days, radius_m=s.issues_duplicate_radius_m, visible_to=principal
        )
    answer = {"issue_id": issue_id, "possible_duplicates": [issue_view(d) for d in found]}
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


@router.get("/communities/{community}/problems/open")
async def open_problems(
    request: Request, community: Community, principal: Principal = Depends(require(*READERS, "ops"))
) -> dict[str, Any]:
    """Open problems by category and level (the monthly five categories, where they stand): counts only."""
    deps = bootstrap.deps(request)
    async with deps.pool.acquire() as conn:
        rows = await queries.open_problems(conn, community)
    by_category: dict[str, dict[str, int]] = {}
    for r in rows:
        by_category.setdefault(r["category"], {})[r["level"]] = r["open"]
    return {
        "community": community,
        "total": sum(r["open"] for r in rows),
        "overdue": sum(r["overdue"] for r in rows),
        "by_category": by_category,
        "rows": rows,
    }


@router.get("/categories")
async def categories(request: Request, principal: Principal = Depends(require())) -> dict[str, Any]:
    """The five categories, their subcategories and their response templates (``templates``: the
    ``resolution`` of a case and the ``feedback`` to the 12345 hotline, each ``{zh, en}``), which the
    console prefills its forms with."""
    del principal
    return {
        "categories": [
            {
                "code": c.code,
                "name": c.name,
                "name_zh": c.name_zh,
                "subcategories": [
                    {"code": s.code, "name": s.name, "description": s.description} for s in c.subcategories
                ],
                "templates": {kind: {"zh": t.zh, "en": t.en} for kind, t in c.templates},
            }
            for c in bootstrap.deps(request).catalogue.categories
        ]
    }
