"""Reads of the resident basic-information ledger (居民基础信息底册): how complete it is, per grid and
for the community, and the whole ledger as CSV (the import's own columns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..bootstrap import VisitsDeps
from ..domain.households import REQUIRED_LEDGER_FIELDS, HouseholdState, ledger_missing
from ..projections import DIRECTORY
from ..schemas import BuildingCompletion, Completion, CompletionGroup, LedgerGap


async def completion(
    community: str, grid_id: str | None, *, deps: VisitsDeps, by_building: bool = False, gaps: int = 200
) -> Completion:
    """Ledger completion per grid and for the community: households holding every required field;
    ``by_building`` adds each building's figures and its incomplete households (``gaps`` at most each)."""
    present = ", ".join(
        f"count(*) FILTER (WHERE NOT '{f}' = ANY(fields_present)) AS missing_{f}" for f in REQUIRED_LEDGER_FIELDS
    )
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT grid_id, count(*) AS households, "
            f"count(*) FILTER (WHERE fields_present @> $2::text[]) AS complete, {present} "
            f"FROM {DIRECTORY}.households WHERE community = $1 AND ($3::text IS NULL OR grid_id = $3) "
            "GROUP BY grid_id ORDER BY grid_id NULLS LAST",
            community,
            list(REQUIRED_LEDGER_FIELDS),
            grid_id,
        )
    grids = []
    for r in rows:
        n = r["households"]
        grids.append(
            CompletionGroup(
                grid_id=r["grid_id"],
                households=n,
                complete=r["complete"],
                rate=round(r["complete"] / n, 4) if n else 0,
                missing={f: r[f"missing_{f}"] for f in REQUIRED_LEDGER_FIELDS},
            )
        )
    total = sum(g.households for g in grids)
    complete = sum(g.complete for g in grids)
    rate = round(complete / total, 4) if total else 0.0
    bar = deps.settings.ledger_completion_bar
    return Completion(
        community=community,
        required_fields=list(REQUIRED_LEDGER_FIELDS),
        bar=bar,
        households=total,
        complete=complete,
        rate=rate,
        meets_bar=total > 0 and complete / total > bar,
        missing={f: sum(g.missing[f] for g in grids) for f in REQUIRED_LEDGER_FIELDS},
        grids=grids,
        buildings=await _by_building(community, grid_id, gaps, deps=deps) if by_building else None,
    )


async def _by_building(community: str, grid_id: str | None, gaps: int, *, deps: VisitsDeps) -> list[BuildingCompletion]:
    """Each building's completion, and its incomplete households with the names of the fields they lack.
    An erased household lacks its personal fields (the erasure removed them from ``fields_present``)."""
    required = list(REQUIRED_LEDGER_FIELDS)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT h.building_id, b.number, b.phase, b.grid_id AS building_grid, count(*) AS households, "
            "count(*) FILTER (WHERE h.fields_present @> $2::text[] AND NOT h.erased) AS complete, "
            "coalesce(jsonb_agg(jsonb_build_object('household_id', h.household_id, 'unit', h.unit, 'room', h.room, "
            "'erased', h.erased, 'fields_present', h.fields_present) ORDER BY h.household_id) "
            "FILTER (WHERE NOT h.fields_present @> $2::text[] OR h.erased), '[]') AS incomplete "
            f"FROM {DIRECTORY}.households h LEFT JOIN {DIRECTORY}.buildings b "
            "ON b.community = h.community AND b.building_id = h.building_id "
            "WHERE h.community = $1 AND ($3::text IS NULL OR h.grid_id = $3) "
            "GROUP BY h.building_id, b.number, b.phase, b.grid_id ORDER BY h.building_id",
            community,
            required,
            grid_id,
        )
    out = []
    for r in rows:
        incomplete = json.loads(r["incomplete"]) if isinstance(r["incomplete"], str) else r["incomplete"]
        listed = [
            LedgerGap(
                household_id=h["household_id"],
                unit=h["unit"],
                room=h["room"],
                erased=h["erased"],
                missing=ledger_missing(h["fields_present"], h["erased"]),
            )
            for h in incomplete
        ]
        n = r["households"]
        out.append(
            BuildingCompletion(
                building_id=r["building_id"],
                number=r["number"],
                phase=r["phase"],
                grid_id=r["building_grid"],
                households=n,
                complete=r["complete"],
                rate=round(r["complete"] / n, 4) if n else 0,
                missing={f: sum(f in g.missing for g in listed) for f in REQUIRED_LEDGER_FIELDS},
                gaps=listed[:gaps],
                gaps_truncated=len(listed) > gaps,
            )
        )
    return out


EXPORT_COLUMNS = (
    "household_id",
    "building",
    "unit",
    "room",
    "grid",
    "name",
    "phone",
    "id_number",
    "address",
    "members",
    "tags",
    "complete",
)


async def ledger_export_rows(community: str, *, deps: VisitsDeps) -> list[Any]:
    """Every household of the community with its sealed personal data, for the ledger export."""
    async with deps.pool.acquire() as conn:
        return list(
            await conn.fetch(
                f"SELECT household_id, building_id, unit, room, grid_id, members, tags, fields_present, sealed, erased "
                f"FROM {DIRECTORY}.households WHERE community = $1 ORDER BY household_id",
                community,
            )
        )


async def ledger_entries(
    community: str, household_ids: Sequence[str], *, deps: VisitsDeps
) -> dict[str, tuple[HouseholdState, int]]:
    """The directory's view of these households (those it knows) as states with their versions, in one
    query: what a ledger import compares its rows with."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT household_id, building_id, unit, room, grid_id, members, tags, fields_present, sealed, "
            f"erased, version FROM {DIRECTORY}.households WHERE community = $1 AND household_id = ANY($2)",
            community,
            list(household_ids),
        )
    found: dict[str, tuple[HouseholdState, int]] = {}
    for row in rows:
        sealed = row["sealed"]
        state = HouseholdState(
            registered=True,
            household_id=row["household_id"],
            building_id=row["building_id"],
            unit=row["unit"],
            room=row["room"],
            grid_id=row["grid_id"],
            members=row["members"],
            tags=list(row["tags"]),
            fields_present=list(row["fields_present"]),
            sealed=json.loads(sealed) if isinstance(sealed, str) else sealed,
            erased=row["erased"],
        )
        found[row["household_id"]] = (state, row["version"])
    return found
