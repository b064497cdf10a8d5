"""HTTP API of the scoring service (/v1): progress, boards, exports, figures, awards, rulebooks.

Routes are thin: parse the request, check the caller's scope, call a query or a handler, shape
the answer.  The rules and the clock come from :class:`~..bootstrap.ScoringDeps` (``Depends(deps)``;
the clock is injectable for tests).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.auth import Principal, require
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import SHANGHAI, TOKEN_PATTERN, shanghai_day
from shared.timerules import SaneDatetime, check_day

from .. import handlers, queries
from ..bootstrap import ScoringDeps
from ..bootstrap import deps as scoring_deps
from ..domain import AwardPoints
from ..domain.calendar import Period, parse_period, period_of
from . import exports

router = APIRouter(prefix="/v1", tags=["scoring"])

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: What an export answers: a file, CSV or XLSX as ``format`` asks — never JSON.
EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment (Content-Disposition names it)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            MEDIA["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _json_default(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json(payload: dict[str, Any]) -> Response:
    """Serialise straight with json.dumps: a street board is ~500 rows, and FastAPI's generic encoder
    walking them costs more than the query."""
    return Response(json.dumps(payload, default=_json_default, ensure_ascii=False), media_type="application/json")


def _period(deps: ScoringDeps, key: str | None) -> Period:
    if key is None:
        return period_of("month", shanghai_day(deps.clock()))
    try:
        period = parse_period(key)
    except (ValueError, OverflowError) as err:
        raise Invalid(str(err), field="period") from err
    check_day(period.start, "period")
    check_day(period.end, "period")
    return period


def _as_of(deps: ScoringDeps, as_of: date | None) -> date:
    if as_of is not None:
        check_day(as_of, "as_of")
    return as_of or shanghai_day(deps.clock())


@router.get("/communities/{community}/workers/{worker_id}/progress")
async def worker_progress(
    community: str,
    worker_id: str,
    at: datetime | None = Query(default=None, description="Moment to report on (default: now, Asia/Shanghai)"),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """A grid worker's progress now: today 3/5 households, 4.2/5 h… and the week, month, quarter, year."""
    if principal.role == "grid_worker" and principal.worker_id != worker_id:
        raise Forbidden("a grid worker sees only their own progress", field="worker_id")
    if at is not None:
        check_day(at, "at")
    moment = at or deps.clock()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return _json(await queries.worker_progress(deps.pool, deps.rules, community, worker_id, moment))


@router.get("/communities/{community}/board")
async def community_board(
    community: str,
    period: str | None = Query(default=None, description="2025-10-09, 2025-W41, 2025-10, 2025-Q4 or 2025"),
    as_of: date | None = Query(default=None, description="Count quota items due up to this day (default: today)"),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """The community's points evaluation (评优积分制), ranked, for a period (default: this month)."""
    return _json(
        await queries.community_board(deps.pool, deps.rules, community, _period(deps, period), _as_of(deps, as_of))
    )


@router.get("/communities/{community}/board/export", response_class=Response, responses=EXPORTED)
async def community_board_export(
    community: str,
    period: str | None = None,
    as_of: date | None = None,
    format: Literal["csv", "xlsx"] = "xlsx",
    principal: Principal = Depends(require("secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """The 评优表 to print, as CSV or XLSX."""
    p = _period(deps, period)
    board = await queries.community_board(deps.pool, deps.rules, community, p, _as_of(deps, as_of))
    return Response(
        exports.community_board_file(board, format),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="pingyou-{community}-{p.key}.{format}"'},
    )


@router.get("/streets/{street}/board")
async def street_board(
    street: str,
    period: str | None = None,
    as_of: date | None = None,
    principal: Principal = Depends(require("street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """The street roll-up across its communities (community → street from CommunityRegistered)."""
    return _json(await queries.street_board(deps.pool, deps.rules, street, _period(deps, period), _as_of(deps, as_of)))


@router.get("/streets/{street}/board/export", response_class=Response, responses=EXPORTED)
async def street_board_export(
    street: str,
    period: str | None = None,
    as_of: date | None = None,
    format: Literal["csv", "xlsx"] = "xlsx",
    principal: Principal = Depends(require("street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """The street roll-up to print: communities and workers (XLSX: two sheets; CSV: workers)."""
    p = _period(deps, period)
    board = await queries.street_board(deps.pool, deps.rules, street, p, _as_of(deps, as_of))
    return Response(
        exports.street_board_file(board, format),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="pingyou-{street}-{p.key}.{format}"'},
    )


@router.get("/communities/{community}/figures")
async def community_figures(
    community: str,
    year: int | None = Query(default=None, ge=2000, le=2100),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> Response:
    """Visits this year vs 63,000, ledger completion vs 90%, trainings vs 25, survey rates, open problems."""
    return _json(
        await queries.community_figures(deps.pool, deps.rules, community, year or shanghai_day(deps.clock()).year)
    )


class AwardIn(BaseModel):
    """A publicity or award entry (宣传和获奖) for a grid worker."""

    award_id: str = Field(pattern=TOKEN_PATTERN, max_length=60, description="Client-chosen id: a retry is a no-op")
    worker_id: str = Field(min_length=1, max_length=64)
    points: float = Field(ge=-100, le=100)
    kind: Literal["award", "publicity"] = "award"
    reason: str = Field(min_length=1, max_length=200)
    occurred_at: SaneDatetime | None = None


@router.post("/communities/{community}/awards", status_code=201)
async def award_points(
    community: str,
    body: AwardIn,
    principal: Principal = Depends(require("secretary")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> JSONResponse:
    """Record publicity-and-awards points for a worker (idempotent on ``award_id``)."""
    when = body.occurred_at or deps.clock()
    if when.tzinfo is None:
        when = when.replace(tzinfo=SHANGHAI)
    command = AwardPoints(
        community=community,
        award_id=body.award_id,
        worker_id=body.worker_id,
        points=body.points,
        kind=body.kind,
        reason=body.reason,
        awarded_by=principal.sub,
        at=when,
    )
    recorded = await handlers.award_points(command, deps=deps)
    payload = {"award_id": recorded.award_id, "event_id": recorded.event_id, "duplicate": recorded.duplicate}
    return JSONResponse(payload, status_code=200 if recorded.duplicate else 201)


@router.get("/communities/{community}/rulebook")
async def community_rulebook(
    community: str,
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> dict[str, Any]:
    """The rulebook (items, targets, points) this community is scored by."""
    return deps.rules.for_community(community).model_dump()


@router.get("/rulebooks")
async def rulebooks(
    principal: Principal = Depends(require("secretary", "street_admin", "ops")),
    deps: ScoringDeps = Depends(scoring_deps),
) -> dict[str, Any]:
    """Every loaded rulebook with its version, and which communities run a non-default one."""
    rules = deps.rules
    if not rules.books:
        raise NotFound("no rulebooks loaded")
    return {
        "default": rules.default.ref,
        "rulebooks": [
            {"id": b.id, "version": b.version, "name": b.name, "name_zh": b.name_zh, "items": len(b.items)}
            for b in rules.books.values()
        ],
        "assigned": {c: b.ref for c, b in sorted(rules.assigned.items())},
    }
