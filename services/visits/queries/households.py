"""Reads of the directory: a community with its counts, its directory lists, its households, and one
household with its ledger completeness, visit counts and — where the reader may — personal fields."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import NotFound

from ..bootstrap import VisitsDeps
from ..domain.households import REQUIRED_LEDGER_FIELDS, ledger_missing
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
    "buildings": "SELECT building_id, compound, phase, number, units, grid_id, lat, lon, version FROM {s}.buildings "
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


#: How many words a household search may hold (each must match; see :func:`list_households`).
MAX_SEARCH_TERMS = 5


def _like(term: str) -> str:
    """``term`` as a LIKE pattern matching it anywhere, its own wildcards taken literally."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_households(
    community: str,
    *,
    grid: str | None,
    building: str | None,
    after: str | None,
    limit: int,
    deps: VisitsDeps,
    q: str | None = None,
    tag: str | None = None,
    incomplete: bool = False,
) -> list[dict[str, Any]]:
    """Households (no personal data) with tags, ledger fields and the required fields each lacks, by
    household id after ``after``.

    ``q`` searches what is not personal: each of its words (up to :data:`MAX_SEARCH_TERMS`, all of
    which must match) is part of the household id, or exactly its room, its building's number or id,
    or one of its tags.  Names, phones, ID numbers and addresses are sealed per household and never
    searchable.  ``tag`` keeps households holding that tag; ``incomplete`` those lacking a required
    ledger field (an erased household lacks its personal fields).
    """
    params: list[Any] = [community, grid, building, after, tag, incomplete, list(REQUIRED_LEDGER_FIELDS)]
    where = [
        "h.community = $1",
        "($2::text IS NULL OR h.grid_id = $2)",
        "($3::text IS NULL OR h.building_id = $3)",
        "($4::text IS NULL OR h.household_id > $4)",
        "($5::text IS NULL OR $5 = ANY(h.tags))",
        "(NOT $6 OR h.erased OR NOT h.fields_present @> $7::text[])",
    ]
    for term in (q or "").split()[:MAX_SEARCH_TERMS]:
        params += [_like(term), term]
        a, b = f"${len(params) - 1}", f"${len(params)}"
        where.append(
            f"(h.household_id ILIKE {a} OR h.room = {b} OR b.number = {b} OR h.building_id = {b} OR {b} = ANY(h.tags))"
        )
    params.append(limit)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT h.household_id, h.building_id, b.number AS building_number, h.unit, h.room, h.grid_id, h.members, "
            f"h.tags, h.fields_present, h.erased, h.version FROM {DIRECTORY}.households h "
            f"LEFT JOIN {DIRECTORY}.buildings b ON b.community = h.community AND b.building_id = h.building_id "
            f"WHERE {' AND '.join(where)} ORDER BY h.household_id LIMIT ${len(params)}",
            *params,
        )
    out = []
    for r in rows:
        item = dict(r)
        item["missing"] = ledger_missing(item["fields_present"], item["erased"])
        out.append(item)
    return out


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
