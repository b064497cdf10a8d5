"""Reads of the resident basic-information ledger (居民基础信息底册): how complete it is, per grid and
for the community, and the whole ledger as CSV (the import's own columns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..bootstrap import VisitsDeps
from ..domain.households import REQUIRED_LEDGER_FIELDS, HouseholdState
from ..projections import DIRECTORY
from ..schemas import Completion, CompletionGroup


async def completion(community: str, grid_id: str | None, *, deps: VisitsDeps) -> Completion:
    """Ledger completion per grid and for the community: households holding every required field."""
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
    )


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
