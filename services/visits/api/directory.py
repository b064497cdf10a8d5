"""Who and where: communities, buildings, grids, workers, persons, households."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from shared.auth import Principal, require
from shared.events import now

from .. import bootstrap, handlers, queries
from ..domain.definitions import MoveCommunity
from ..domain.households import TAG_PATTERN
from ..pii import AuditKind
from ..queries.households import LISTINGS
from ..schemas import (
    BuildingIn,
    Changed,
    CommunityIn,
    CommunityMoveIn,
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
from .commands import (
    building_definition,
    community_definition,
    erasure,
    grid_definition,
    household_registration,
    person_definition,
    profile_update,
    tagging,
    worker_definition,
)
from .common import ERRORS, created, own_grid

router = APIRouter(prefix="/v1/communities", tags=["directory"], responses=ERRORS)

COMMUNITY = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Community id", examples=["bairuijing"])
READERS = ("grid_worker", "secretary", "street_admin", "ops")
TAG_QUERY = TAG_PATTERN.pattern


@router.put("/{community}", response_model=Defined, status_code=201)
async def register_community(
    request: Request,
    response: Response,
    body: CommunityIn,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("ops", "street_admin", scoped=False)),
) -> Defined:
    """Register a community (社区) under its street (CommunityRegistered), once: a street admin only
    under their own street.  Same body again: 200, no change; its details may be corrected by its
    street's admin or ops, but its street changes only by a move (409 naming ``street``)."""
    cmd = community_definition(community, body)
    out = await handlers.register_community(cmd, principal, deps=bootstrap.deps(request))
    created(response, out.duplicate)
    return out


@router.post("/{community}/street", response_model=Defined)
async def move_community(
    request: Request,
    body: CommunityMoveIn,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("ops")),
) -> Defined:
    """Move a community to another street (CommunityMoved, with who, when, from where and why):
    an operations action.  Already under that street: 200, duplicate."""
    cmd = MoveCommunity(community=community, street=body.street, reason=body.reason, at=now())
    return await handlers.move_community(cmd, principal, deps=bootstrap.deps(request))


@router.get("/{community}")
async def get_community(
    request: Request, community: str = COMMUNITY, principal: Principal = Depends(require(*READERS))
) -> dict[str, Any]:
    """The community, with how many grids, buildings, workers and households it has."""
    deps = bootstrap.deps(request)
    return await queries.community_summary(community, deps=deps)


@router.put("/{community}/buildings/{building_id}", response_model=Defined, status_code=201)
async def register_building(
    request: Request,
    response: Response,
    body: BuildingIn,
    building_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("secretary", "ops")),
) -> Defined:
    """Register a building (楼栋) — BuildingRegistered."""
    deps = bootstrap.deps(request)
    out = await handlers.define_entry(building_definition(community, building_id, body), principal, deps=deps)
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
    principal: Principal = Depends(require("secretary", "ops")),
) -> Defined:
    """Define or redraw a grid (网格): its buildings and worker — GridDefined.  Stale If-Match → 409."""
    deps = bootstrap.deps(request)
    cmd = grid_definition(community, grid_id, body, parse_version(if_match, body.expected_version))
    out = await handlers.define_entry(cmd, principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.put("/{community}/workers/{worker_id}", response_model=Defined, status_code=201)
async def register_worker(
    request: Request,
    response: Response,
    body: WorkerIn,
    worker_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("secretary", "ops")),
) -> Defined:
    """Register a community worker (网格员…) with their grid — WorkerRegistered."""
    deps = bootstrap.deps(request)
    out = await handlers.define_entry(worker_definition(community, worker_id, body), principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.put("/{community}/persons/{person_id}", response_model=Defined, status_code=201)
async def register_person(
    request: Request,
    response: Response,
    body: PersonIn,
    person_id: Id,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("secretary")),
) -> Defined:
    """Register a party member, building leader (楼栋长), resident backbone or volunteer — PersonRegistered."""
    deps = bootstrap.deps(request)
    out = await handlers.define_entry(person_definition(community, person_id, body), principal, deps=deps)
    created(response, out.duplicate)
    return out


#: Residents on the roster (party members, building leaders, volunteers) are people, not the
#: community's structure: ops, who operates the system, does not read them.
PEOPLE_READERS = ("grid_worker", "secretary", "street_admin")


def _lister(what: str) -> Any:
    readers = PEOPLE_READERS if what == "persons" else READERS

    async def list_entries(
        request: Request, community: str = COMMUNITY, principal: Principal = Depends(require(*readers))
    ) -> list[dict[str, Any]]:
        deps = bootstrap.deps(request)
        return await queries.directory_entries(community, what, deps=deps)

    list_entries.__doc__ = f"The community's {what}."
    list_entries.__name__ = f"list_{what}"
    return list_entries


for _what in LISTINGS:
    router.add_api_route(f"/{{community}}/{_what}", _lister(_what), methods=["GET"], name=f"list_{_what}")


@router.get("/{community}/map", tags=["directory"])
async def community_map(
    request: Request,
    community: str = COMMUNITY,
    month: str | None = Query(
        default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (Shanghai); default this month"
    ),
    principal: Principal = Depends(require("secretary", "street_admin", "grid_worker")),
) -> dict[str, Any]:
    """The community's plan: phases (期) and their buildings (楼栋) — number, grid, coordinates if known —
    with households and visit coverage in the month (households visited in person at least once, a
    regular or priority knock that found someone, / households).  A building's phase is the directory's;
    without one, the prefix of its number ("4-4" → "4", ``phase_from`` says which); else it is drawn in
    the phase ``null`` with every other building that has none."""
    deps = bootstrap.deps(request)
    return await queries.community_map(community, month or queries.this_month(), deps=deps)


# ---------------------------------------------------------------- households


@router.post("/{community}/households", response_model=Changed, status_code=201, tags=["households"])
async def register_household(
    request: Request,
    response: Response,
    body: HouseholdIn,
    community: str = COMMUNITY,
    principal: Principal = Depends(require("secretary", "grid_worker")),
) -> Changed:
    """Enter a household in the ledger (HouseholdRegistered); personal fields are sealed, never stored in clear."""
    deps = bootstrap.deps(request)
    out = await handlers.register_household(household_registration(community, body), principal, deps=deps)
    created(response, out.duplicate)
    return out


@router.get("/{community}/households", tags=["households"])
async def list_households(
    request: Request,
    community: str = COMMUNITY,
    q: str | None = Query(
        default=None,
        max_length=100,
        description="Search words (all must match): part of the household id, or exactly a room, a building's "
        "number or id, or a tag.  Personal data (name, phone, ID number, address) is sealed and never searched.",
        examples=["4 301"],
    ),
    tag: str | None = Query(default=None, pattern=TAG_QUERY, description="Only households with this tag"),
    incomplete: bool = Query(default=False, description="Only households lacking a required ledger field"),
    grid: str | None = Query(default=None, description="Only this grid"),
    building: str | None = Query(default=None),
    limit: int = Query(default=200, ge=1, le=5000),
    after: str | None = Query(default=None, description="Page on: the last household_id of the previous page"),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> list[dict[str, Any]]:
    """Households (no personal data) with tags, ledger fields and the required fields each lacks
    (``missing``), by household id; a grid worker sees their grid only.  ``q`` matches household id,
    room, building number or tag — never personal data, which is sealed per household."""
    deps = bootstrap.deps(request)
    return await queries.list_households(
        community,
        grid=own_grid(principal, grid),
        building=building,
        after=after,
        limit=limit,
        q=q,
        tag=tag,
        incomplete=incomplete,
        deps=deps,
    )


@router.get("/{community}/households/{household_id}", response_model=HouseholdOut, tags=["households"])
async def get_household(
    request: Request,
    response: Response,
    household_id: Id,
    community: str = COMMUNITY,
    reveal: bool = Query(
        default=False, description=("Secretary / street admin: include decrypted personal fields (audited)")
    ),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> HouseholdOut:
    """One household: ledger completeness, visit counts, version (ETag); personal fields for the owning grid
    worker, or with ``reveal=true`` for a secretary (every such read is audited)."""
    deps = bootstrap.deps(request)
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
    principal: Principal = Depends(require("secretary", "grid_worker")),
) -> Changed:
    """Complete or correct the ledger entry (HouseholdProfileUpdated).  Stale expected_version / If-Match → 409."""
    deps = bootstrap.deps(request)
    cmd = profile_update(community, household_id, body, parse_version(if_match, body.expected_version))
    return await handlers.update_household(cmd, principal, deps=deps)


@router.post("/{community}/households/{household_id}/tags", response_model=Changed, tags=["households"])
async def tag_household(
    request: Request,
    body: HouseholdTags,
    household_id: Id,
    community: str = COMMUNITY,
    if_match: str | None = Header(default=None, alias="If-Match"),
    principal: Principal = Depends(require("secretary", "grid_worker")),
) -> Changed:
    """Add or remove tags (special_assistance 特殊帮扶对象, elderly_alone…) — HouseholdTagged."""
    deps = bootstrap.deps(request)
    cmd = tagging(community, household_id, body, parse_version(if_match, body.expected_version))
    return await handlers.tag_household(cmd, principal, deps=deps)


@router.post("/{community}/households/{household_id}/erasure", response_model=Changed, tags=["households", "pipl"])
async def erase_household(
    request: Request,
    household_id: Id,
    community: str = COMMUNITY,
    body: ErasureIn | None = None,
    principal: Principal = Depends(require("secretary")),
) -> Changed:
    """PIPL erasure: the household key is destroyed (ResidentDataErased).  Personal fields read "erased"
    everywhere afterwards; visit counts and quotas stay."""
    deps = bootstrap.deps(request)
    cmd = erasure(community, household_id, body or ErasureIn())
    return await handlers.erase_household(cmd, principal, deps=deps)


@router.get("/{community}/audit-log", tags=["pipl"])
async def audit_log(
    request: Request,
    community: str = COMMUNITY,
    household: str | None = Query(default=None, description="Only this household"),
    kind: AuditKind | None = Query(
        default=None, description="reveal (personal fields shown), export, import (fields written), erasure"
    ),
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(
        default=None, ge=1, le=2**63 - 1, description="Page on: the last ``id`` of the previous page"
    ),
    principal: Principal = Depends(require("secretary")),
) -> list[dict[str, Any]]:
    """Who revealed, exported, imported or erased which household's personal fields, when and why (newest
    first): ``id``, ``at``, ``kind``, ``household_id``, ``actor``, ``role``, ``fields`` (names only),
    ``purpose``."""
    deps = bootstrap.deps(request)
    return await deps.audit.entries(community, household_id=household, kind=kind, limit=limit, before_id=before)
