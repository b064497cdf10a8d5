"""Reads of the directory: a community with its counts, its directory lists, its households, and one
household with its ledger completeness, visit counts and — where the reader may — personal fields."""

from __future__ import annotations

import json
from typing import Any

from shared.auth import Principal
from shared.errors import Forbidden, NotFound

from ..aggregates import HOUSEHOLD
from ..bootstrap import VisitsDeps
from ..domain.households import ERASED, PERSONAL_FIELDS, ledger_missing, may_read_personal
from ..pii import unseal
from ..projections import ACTIVITY, DIRECTORY
from ..schemas import HouseholdOut


async def community_summary(community: str, *, deps: VisitsDeps) -> dict[str, Any]:
    """The community, with how many grids, buildings, workers and households it has."""
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


#: What each directory list shows.
LISTINGS: dict[str, str] = {
    "grids": "SELECT grid_id, name, worker_id, buildings, version FROM {s}.grids WHERE community = $1 ORDER BY 1",
    "buildings": "SELECT building_id, compound, phase, number, units, grid_id, version FROM {s}.buildings "
    "WHERE community = $1 ORDER BY 1",
    "workers": "SELECT worker_id, name, role, grid_id, version FROM {s}.workers WHERE community = $1 ORDER BY 1",
    "persons": "SELECT person_id, role, building_id, household_id, display_name, version FROM {s}.persons "
    "WHERE community = $1 ORDER BY 1",
}


async def directory_entries(community: str, what: str, *, deps: VisitsDeps) -> list[dict[str, Any]]:
    """The community's grids, buildings, workers or persons (``what``, one of :data:`LISTINGS`)."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(LISTINGS[what].format(s=DIRECTORY), community)
    return [dict(r) for r in rows]


async def list_households(
    community: str, *, grid: str | None, building: str | None, after: str | None, limit: int, deps: VisitsDeps
) -> list[dict[str, Any]]:
    """Households (no personal data) with tags and ledger fields, by household id after ``after``."""
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


async def household_view(
    community: str, household_id: str, principal: Principal, *, reveal: bool, deps: VisitsDeps
) -> HouseholdOut:
    """A household with its ledger completeness, its visit counts and, where allowed, its personal fields."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT h.*, a.visits, a.special_visits, a.last_visit_at FROM {DIRECTORY}.households h "
            f"LEFT JOIN {ACTIVITY}.household_visits a ON a.community = h.community AND a.household_id = h.household_id "
            "WHERE h.community = $1 AND h.household_id = $2",
            community,
            household_id,
        )
    if row is None:
        loaded = await deps.store.load(HOUSEHOLD, community, household_id)
        if not loaded.state.registered:
            raise NotFound(f"household {household_id} is not registered", field="household_id")
        s = loaded.state
        item: dict[str, Any] = {
            **s.model_dump(),
            "version": loaded.version,
            "visits": 0,
            "special_visits": 0,
            "last_visit_at": None,
        }
    else:
        item = dict(row)
        item["sealed"] = _json(item["sealed"])
    if principal.role == "grid_worker" and item["grid_id"] != principal.grid:
        raise Forbidden(f"household {household_id} is not in grid {principal.grid}", field="household_id")
    allowed, audited = may_read_personal(principal.role, principal.grid, item["grid_id"])
    personal: dict[str, str] | None = None
    owner = allowed and not audited
    if allowed and (reveal or owner):
        if item["erased"]:
            personal = dict.fromkeys(PERSONAL_FIELDS, ERASED)
        else:
            key = await deps.keys.key(community, household_id)
            personal = unseal(key.key, community, household_id, item["sealed"])
            if audited and key.key is not None:
                await deps.audit.record(principal, community, [(household_id, sorted(personal))], "household_view")
    elif reveal:
        raise Forbidden(f"role {principal.role} may not read residents' personal data", field="reveal")
    missing = ledger_missing(item["fields_present"], item["erased"])
    return HouseholdOut(
        household_id=household_id,
        building_id=item["building_id"],
        unit=item["unit"],
        room=item["room"],
        grid_id=item["grid_id"],
        members=item["members"],
        tags=list(item["tags"]),
        fields_present=list(item["fields_present"]),
        missing=missing,
        complete=not missing,
        erased=item["erased"],
        version=item["version"],
        visits=item["visits"] or 0,
        special_visits=item["special_visits"] or 0,
        last_visit_at=item["last_visit_at"],
        personal=personal,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
