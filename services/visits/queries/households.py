"""Reads of the directory: a community with its counts, its directory lists, its households, and one
household with its ledger completeness, visit counts and — where the reader may — personal fields."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import NotFound

from ..bootstrap import VisitsDeps
from ..projections import ACTIVITY, DIRECTORY


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


async def household_row(community: str, household_id: str, *, deps: VisitsDeps) -> dict[str, Any] | None:
    """A household's directory row with its visit counts (``sealed`` parsed), or None when the
    projection has not seen it (yet)."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT h.*, a.visits, a.special_visits, a.last_visit_at FROM {DIRECTORY}.households h "
            f"LEFT JOIN {ACTIVITY}.household_visits a ON a.community = h.community AND a.household_id = h.household_id "
            "WHERE h.community = $1 AND h.household_id = $2",
            community,
            household_id,
        )
    if row is None:
        return None
    item = dict(row)
    item["sealed"] = _json(item["sealed"])
    return item


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
