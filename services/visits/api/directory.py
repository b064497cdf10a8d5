"""Who and where: communities, buildings, grids, workers, persons, households."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from shared.auth import Principal
from shared.errors import NotFound

from .. import handlers
from ..directory import DIRECTORY
from ..schemas import (
    BuildingIn,
    Changed,
    CommunityIn,
    Defined,
    ErasureIn,
    GridIn,
    HouseholdIn,
    HouseholdOut,
    HouseholdTags,
    HouseholdUpdate,
    Id,
    PersonIn,
    WorkerIn,
    parse_version,
)
from .common import ERRORS, allow, created, deps_of, in_scope

router = APIRouter(prefix="/v1/communities", tags=["directory"], responses=ERRORS)

COMMUNITY = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Community id", examples=["bairuijing"])
READERS = ("grid_worker", "secretary", "street_admin", "ops")


@router.put("/{community}", response_model=Defined, status_code=201)
async def register_community(
    request: Request,
    response: Response,
    body: CommunityIn,
    community: str = COMMUNITY,
    principal: Principal = Depends(allow("ops", "street_admin")),
) -> Defined:
    """Register a community (社区) under its street (CommunityRegistered).  Same body again: 200, no change."""
    out = await handlers.register_community(community, body, principal, deps=deps_of(request))
    created(response, out.duplicate)
    return out


@router.get("/{community}")
async def get_community(
    request: Request, community: str = COMMUNITY, principal: Principal = Depends(allow(*READERS))
) -> dict[str, Any]:
    """The community, with how many grids, buildings, workers and households it has."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT * FROM {DIRECTORY}.communities WHERE community = $1", community)
        if row is None:
            raise NotFound(f"community {community} is not registered", field="community")
        counts = await conn.fetchrow(
            f"SELECT (SELECT count(*) FROM {DIRECTORY}.grids WHERE community = $1) AS grids, "
            f"(SELECT count(*) FROM {DIRECTORY}.buildings WHERE community = $1) AS buildings, "
            f"(SELECT count(*) FROM {DIRECTORY}.workers WHERE community = $1) AS workers, "
            f"(SELECT count(*) FROM {DIRECTORY}.households WHERE community = $1) AS households",
            community,
        )
    assert counts is not None  # a SELECT without FROM always returns its row
    return {**dict(row), **dict(counts)}


@router.put("/{community}/buildings/{building_id}", response_model=Defined, status_code=201)
async def register_building(
    request: Request,
    response: Response,
    body: BuildingIn,
    building_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(allow("secretary", "ops")),
) -> Defined:
    """Register a building (楼栋) — BuildingRegistered."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    out = await handlers.register_building(community, building_id, body, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.put("/{community}/grids/{grid_id}", response_model=Defined, status_code=201)
async def define_grid(
    request: Request,
    response: Response,
    body: GridIn,
    grid_id: Id,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    principal: Principal = Depends(allow("secretary", "ops")),
) -> Defined:
    """Define or redraw a grid (网格): its buildings and worker — GridDefined.  Stale If-Match → 409."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    body = body.model_copy(update={"expected_version": parse_version(if_match, body.expected_version)})
    out = await handlers.define_grid(community, grid_id, body, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.put("/{community}/workers/{worker_id}", response_model=Defined, status_code=201)
async def register_worker(
    request: Request,
    response: Response,
    body: WorkerIn,
    worker_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(allow("secretary", "ops")),
) -> Defined:
    """Register a community worker (网格员…) with their grid — WorkerRegistered."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    out = await handlers.register_worker(community, worker_id, body, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.put("/{community}/persons/{person_id}", response_model=Defined, status_code=201)
async def register_person(
    request: Request,
    response: Response,
    body: PersonIn,
    person_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(allow("secretary", "ops")),
) -> Defined:
    """Register a party member, building leader (楼栋长), resident backbone or volunteer — PersonRegistered."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    out = await handlers.register_person(community, person_id, body, principal, deps=deps)
    created(response, out.duplicate)
    return out


_LISTS = {
    "grids": "SELECT grid_id, name, worker_id, buildings, version FROM {s}.grids WHERE community = $1 ORDER BY 1",
    "buildings": "SELECT building_id, compound, phase, number, units, grid_id, version FROM {s}.buildings "
    "WHERE community = $1 ORDER BY 1",
    "workers": "SELECT worker_id, name, role, grid_id, version FROM {s}.workers WHERE community = $1 ORDER BY 1",
    "persons": "SELECT person_id, role, building_id, household_id, display_name, version FROM {s}.persons "
    "WHERE community = $1 ORDER BY 1",
}


def _lister(what: str) -> Any:
    async def list_entries(
        request: Request, community: str = COMMUNITY, principal: Principal = Depends(allow(*READERS))
    ) -> list[dict[str, Any]]:
        deps = deps_of(request)
        await in_scope(principal, community, deps)
        async with deps.pool.acquire() as conn:
            rows = await conn.fetch(_LISTS[what].format(s=DIRECTORY), community)
        return [dict(r) for r in rows]

    list_entries.__doc__ = f"The community's {what}."
    list_entries.__name__ = f"list_{what}"
    return list_entries


for _what in _LISTS:
    router.add_api_route(f"/{{community}}/{_what}", _lister(_what), methods=["GET"], name=f"list_{_what}")


# ---------------------------------------------------------------- households


@router.post("/{community}/households", response_model=Changed, status_code=201, tags=["households"])
async def register_household(
    request: Request,
    response: Response,
    body: HouseholdIn,
    community: str = COMMUNITY,
    principal: Principal = Depends(allow("secretary", "grid_worker")),
) -> Changed:
    """Enter a household in the ledger (HouseholdRegistered); personal fields are sealed, never stored in clear."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    out = await handlers.register_household(community, body, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.get("/{community}/households", tags=["households"])
async def list_households(
    request: Request,
    community: str = COMMUNITY,
    grid: str | None = Query(default=None, description="Only this grid"),
    building: str | None = Query(default=None),
    limit: int = Query(default=200, ge=1, le=5000),
    after: str | None = Query(default=None),
    principal: Principal = Depends(allow("grid_worker", "secretary", "street_admin")),
) -> list[dict[str, Any]]:
    """Households (no personal data) with tags and ledger fields; a grid worker sees their grid only."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    if principal.role == "grid_worker":
        grid = principal.grid or "-"
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT household_id, building_id, unit, room, grid_id, members, tags, fields_present, erased, version "
            f"FROM {DIRECTORY}.households WHERE community = $1 AND ($2::text IS NULL OR grid_id = $2) "
            "AND ($3::text IS NULL OR building_id = $3) AND ($4::text IS NULL OR household_id > $4) "
            "ORDER BY household_id LIMIT $5",
            community,
            grid,
            building,
            after,
            limit,
        )
    return [dict(r) for r in rows]


@router.get("/{community}/households/{household_id}", response_model=HouseholdOut, tags=["households"])
async def get_household(
    request: Request,
    response: Response,
    household_id: Id,
    community: str = COMMUNITY,
    reveal: bool = Query(
        default=False, description=("Secretary / street admin: include decrypted personal fields (audited)")
    ),
    principal: Principal = Depends(allow("grid_worker", "secretary", "street_admin")),
) -> HouseholdOut:
    """One household: ledger completeness, visit counts, version (ETag); personal fields for the owning grid
    worker, or with ``reveal=true`` for a secretary (every such read is audited)."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    out = await handlers.household_view(community, household_id, principal, reveal=reveal, deps=deps)
    response.headers["ETag"] = f'"{out.version}"'
    return out


@router.patch("/{community}/households/{household_id}", response_model=Changed, tags=["households"])
async def update_household(
    request: Request,
    body: HouseholdUpdate,
    household_id: Id,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    principal: Principal = Depends(allow("secretary", "grid_worker")),
) -> Changed:
    """Complete or correct the ledger entry (HouseholdProfileUpdated).  Stale expected_version / If-Match → 409."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    expected = parse_version(if_match, body.expected_version)
    return await handlers.update_household(community, household_id, body, expected, principal, deps=deps)


@router.post("/{community}/households/{household_id}/tags", response_model=Changed, tags=["households"])
async def tag_household(
    request: Request,
    body: HouseholdTags,
    household_id: Id,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    principal: Principal = Depends(allow("secretary", "grid_worker")),
) -> Changed:
    """Add or remove tags (special_assistance 特殊帮扶对象, elderly_alone…) — HouseholdTagged."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    expected = parse_version(if_match, body.expected_version)
    return await handlers.tag_household(community, household_id, body, expected, principal, deps=deps)


@router.post("/{community}/households/{household_id}/erasure", response_model=Changed, tags=["households", "pipl"])
async def erase_household(
    request: Request,
    household_id: Id,
    community: str = COMMUNITY,
    body: ErasureIn | None = None,
    principal: Principal = Depends(allow("secretary")),
) -> Changed:
    """PIPL erasure: the household key is destroyed (ResidentDataErased).  Personal fields read "erased"
    everywhere afterwards; visit counts and quotas stay."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    return await handlers.erase_household(community, household_id, body or ErasureIn(), principal, deps=deps)


@router.get("/{community}/audit-log", tags=["pipl"])
async def audit_log(
    request: Request,
    community: str = COMMUNITY,
    household: str | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None),
    principal: Principal = Depends(allow("secretary")),
) -> list[dict[str, Any]]:
    """Who read which residents' personal fields, when and why (newest first)."""
    deps = deps_of(request)
    await in_scope(principal, community, deps)
    return await deps.audit.entries(community, household_id=household, limit=limit, before_id=before)
