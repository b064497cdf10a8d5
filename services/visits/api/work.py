"""The work a grid worker logs (the 5+1 quotas), and the offline sync of a phone."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from shared.auth import Principal, require
from shared.errors import Invalid
from shared.events import now, shanghai_day
from shared.timerules import check_day

from .. import bootstrap, handlers, queries
from ..bootstrap import VisitsDeps
from ..projections import RECORD_KINDS
from ..schemas import (
    BefriendIn,
    CouncilIn,
    Id,
    Recorded,
    RedemptionIn,
    SessionIn,
    ShiftEndIn,
    ShiftStartIn,
    SurveyIn,
    SyncAnswer,
    SyncBatch,
    TalentIn,
    TrainingIn,
    VisitIn,
    VolunteerServiceIn,
    Work,
    parse_version,
)
from .commands import account_command, end_shift_command, log_command, start_shift_command
from .common import ERRORS, created, own_records, own_worker
from .sync import sync_for

router = APIRouter(prefix="/v1/communities", tags=["work"], responses=ERRORS)
COMMUNITY = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["bairuijing"])
LOGGERS = ("grid_worker", "secretary")
SYNCERS = ("grid_worker",)
IDEMPOTENCY = Header(
    default=None,
    alias="Idempotency-Key",
    description="Used as the record id when the body has none: a retry lands once",
)


async def log(
    kind: str, community: str, body: Work, principal: Principal, idempotency_key: str | None, deps: VisitsDeps
) -> Recorded:
    """One piece of work for an authenticated caller (this route and the ingest fast path)."""
    cmd = log_command(kind, community, body, idempotency_key, deps.settings)
    return await handlers.log_work(cmd, principal, deps=deps)


async def _log(
    kind: str,
    request: Request,
    response: Response,
    community: str,
    body: Work,
    principal: Principal,
    idempotency_key: str | None,
) -> Recorded:
    out = await log(kind, community, body, principal, idempotency_key, bootstrap.deps(request))
    created(response, out.duplicate)
    return out


@router.post("/{community}/visits", response_model=Recorded, status_code=201)
async def log_visit(
    request: Request,
    response: Response,
    body: VisitIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A household contact (VisitLogged): regular / online / priority knock.  Problems found are filed by the
    issues service as IssueReported with this visit as the cause.  Unknown household → 404; outside the
    worker's grid → 403; occurred_at in the future or > 30 days back → 422."""
    return await _log("visit", request, response, community, body, principal, idempotency_key)


@router.post("/{community}/sync", response_model=SyncAnswer, tags=["sync"])
async def sync_records(
    request: Request,
    body: SyncBatch,
    community: str = COMMUNITY,
    principal: Principal = Depends(require(*SYNCERS)),
) -> SyncAnswer:
    """Offline sync: up to 500 records from a phone, each answered accepted / duplicate / rejected (with field
    and reason).  Re-sending a batch stores nothing twice; occurred_at is the phone's.  Kinds: visit,
    shift_started, shift_ended (data.shift_id), face_to_face_session, building_council, resident_befriended,
    training_attended, talent_discovered, resident_surveyed, volunteer_service."""
    return await sync_for(community, body, principal, bootstrap.deps(request))


@router.post("/{community}/shifts", response_model=Recorded, status_code=201)
async def start_shift(
    request: Request,
    response: Response,
    body: ShiftStartIn,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """Start a shift in the grid (ShiftStarted).  A worker with an open shift gets 409."""
    deps = bootstrap.deps(request)
    # who is acting is answered first (403/404), then the body's time and id (422)
    worker = await handlers.acting_worker(principal, community, body.worker_id, deps=deps)
    expected = parse_version(if_match, body.expected_version)
    cmd = start_shift_command(community, body, expected, idempotency_key, deps.settings)
    out = await handlers.start_shift(cmd, principal, deps=deps, worker=worker)
    created(response, out.duplicate)
    return out


@router.post("/{community}/shifts/{shift_id}/end", response_model=Recorded, status_code=201)
async def end_shift(
    request: Request,
    response: Response,
    shift_id: Id,
    body: ShiftEndIn | None = None,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """End the shift (ShiftEnded with its minutes).  Over 16 h → 422; stale version → 409."""
    deps = bootstrap.deps(request)
    body = body or ShiftEndIn()
    worker = await handlers.acting_worker(principal, community, body.worker_id, deps=deps)
    expected = parse_version(if_match, body.expected_version)
    cmd = end_shift_command(community, shift_id, body, expected, deps.settings)
    out = await handlers.end_shift(cmd, principal, deps=deps, worker=worker)
    created(response, out.duplicate)
    return out


@router.get("/{community}/shifts/open")
async def open_shifts(
    request: Request,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("secretary", "street_admin")),
) -> dict[str, Any]:
    """Who is in the grid now: every open shift of the community, longest first."""
    return {"community": community, "shifts": await queries.open_shifts(community, deps=bootstrap.deps(request))}


@router.get("/{community}/workers/{worker_id}/shift")
async def shift_status(
    request: Request, worker_id: Id, community: str = COMMUNITY, principal: Principal = Depends(require(*LOGGERS))
) -> dict[str, Any]:
    """The worker's open shift and the shift log's version (send it as expected_version)."""
    deps = bootstrap.deps(request)
    own_worker(principal, worker_id)
    return await queries.shift_status(community, worker_id, deps=deps)


@router.post("/{community}/face-to-face-sessions", response_model=Recorded, status_code=201)
async def hold_session(
    request: Request,
    response: Response,
    body: SessionIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A weekly residents face-to-face session (FaceToFaceSessionHeld).  Recorded even without party members;
    ``counts_for_quota`` says whether ≥ 1 sinking or directly-managed party member took part."""
    return await _log("face_to_face_session", request, response, community, body, principal, idempotency_key)


@router.get("/{community}/face-to-face-sessions")
async def list_sessions(
    request: Request,
    community: str = COMMUNITY,
    worker: str | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> list[dict[str, Any]]:
    """Sessions, newest first, with ``counts_for_quota``."""
    deps = bootstrap.deps(request)
    return await queries.list_sessions(community, own_records(principal, worker), deps=deps, limit=limit)


@router.post("/{community}/building-councils", response_model=Recorded, status_code=201)
async def hold_council(
    request: Request,
    response: Response,
    body: CouncilIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A monthly building council meeting (BuildingCouncilHeld) in a building of the worker's grid."""
    return await _log("building_council", request, response, community, body, principal, idempotency_key)


@router.post("/{community}/befriended-residents", response_model=Recorded, status_code=201)
async def befriend(
    request: Request,
    response: Response,
    body: BefriendIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A resident friend befriended (ResidentBefriended; quarterly quota: 5)."""
    return await _log("resident_befriended", request, response, community, body, principal, idempotency_key)


@router.post("/{community}/trainings", response_model=Recorded, status_code=201)
async def attend_training(
    request: Request,
    response: Response,
    body: TrainingIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A professional training attended (TrainingAttended; quarterly quota: 1)."""
    return await _log("training_attended", request, response, community, body, principal, idempotency_key)


@router.post("/{community}/talents", response_model=Recorded, status_code=201)
async def discover_talent(
    request: Request,
    response: Response,
    body: TalentIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A community talent discovered (TalentDiscovered; yearly quota: 5)."""
    return await _log("talent_discovered", request, response, community, body, principal, idempotency_key)


@router.post("/{community}/surveys", response_model=Recorded, status_code=201)
async def survey(
    request: Request,
    response: Response,
    body: SurveyIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """A resident survey (ResidentSurveyed): visited? knows the grid worker? satisfaction 1–5."""
    return await _log("resident_surveyed", request, response, community, body, principal, idempotency_key)


async def _account(
    request: Request,
    response: Response,
    community: str,
    body: VolunteerServiceIn | RedemptionIn,
    principal: Principal,
    idempotency_key: str | None,
) -> Recorded:
    deps = bootstrap.deps(request)
    cmd = account_command(community, body, idempotency_key, deps.settings)
    out = await handlers.change_account(cmd, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.post("/{community}/volunteer-services", response_model=Recorded, status_code=201)
async def volunteer_service(
    request: Request,
    response: Response,
    body: VolunteerServiceIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """Volunteer service earning points (VolunteerServiceLogged); the answer carries the new balance."""
    return await _account(request, response, community, body, principal, idempotency_key)


@router.post("/{community}/volunteer-redemptions", response_model=Recorded, status_code=201)
async def redeem(
    request: Request,
    response: Response,
    body: RedemptionIn,
    community: str = COMMUNITY,
    idempotency_key: str | None = IDEMPOTENCY,
    principal: Principal = Depends(require(*LOGGERS)),
) -> Recorded:
    """Redeem volunteer points (VolunteerPointsRedeemed).  More than the balance → 409 insufficient_points."""
    return await _account(request, response, community, body, principal, idempotency_key)


@router.get("/{community}/households/{household_id}/volunteer-points")
async def volunteer_points(
    request: Request, household_id: Id, community: str = COMMUNITY, principal: Principal = Depends(require(*LOGGERS))
) -> dict[str, Any]:
    """A household's volunteer points: earned, redeemed, balance."""
    deps = bootstrap.deps(request)
    return await queries.volunteer_balance(community, household_id, principal, deps=deps)


@router.get("/{community}/workers/{worker_id}/days/{day}")
async def worker_day(
    request: Request,
    worker_id: Id,
    day: date,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> dict[str, Any]:
    """One worker's day: visits, special-assistance visits, hours in the grid, problems found…"""
    deps = bootstrap.deps(request)
    own_worker(principal, worker_id)
    return await queries.worker_day(community, worker_id, day, deps=deps)


@router.get("/{community}/workers/{worker_id}/records")
async def worker_records(
    request: Request,
    worker_id: Id,
    community: str = COMMUNITY,
    first: date | None = Query(
        default=None, alias="from", description="First day (Asia/Shanghai); default: the 1st of this month"
    ),
    last: date | None = Query(default=None, alias="to", description="Last day, at most 366 days on; default: today"),
    kind: list[str] = Query(default=[], description=f"Only these kinds: {', '.join(RECORD_KINDS)}"),
    limit: int = Query(default=200, ge=1, le=1000),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> dict[str, Any]:
    """A worker's records between two days — the evidence behind each 5+1 item: visits, sessions,
    councils, friends, trainings, talents, surveys, shifts and problems reported (codes and numbers;
    no free text), newest first, with the count of each kind."""
    own_worker(principal, worker_id)
    today = shanghai_day(now())
    last = last or today
    first = first or last.replace(day=1)
    check_day(first, "from")
    check_day(last, "to")
    if last < first or (last - first).days > 366:
        raise Invalid("from..to must be a span of at most 366 days", field="to")
    unknown = sorted(set(kind) - set(RECORD_KINDS))
    if unknown:
        raise Invalid(f"unknown kind {unknown[0]}; one of {', '.join(RECORD_KINDS)}", field="kind")
    return await queries.worker_records(community, worker_id, first, last, kind, limit, deps=bootstrap.deps(request))
