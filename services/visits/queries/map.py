"""The community's plan for the console's map: phases (期) and buildings (楼栋) from the directory, each
building with its grid, its coordinates if the directory holds them, its households and how many of
them were visited in person in a month."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shared.errors import NotFound
from shared.events import SHANGHAI

from ..bootstrap import VisitsDeps
from ..projections import COVERAGE, DIRECTORY

#: A phase written at the front of a building's number: "4-4", "4.4", "4_4", "4 4" (phase 4) or "一期4栋".
_PREFIX = re.compile(r"^(?:(?P<cn>[^\s]+?)期|(?P<head>[0-9A-Za-z]+)[-_.\s]+\S)")


def phase_of(phase: str | None, number: str | None) -> tuple[str | None, str]:
    """A building's phase and where it came from: the directory's ``phase`` ("directory"); else the
    prefix of its number, "4-4" → "4", "一期4栋" → "一" ("number_prefix"); else none ("none": the
    building is drawn in the one phase of buildings without a phase)."""
    if phase:
        return phase, "directory"
    match = _PREFIX.match(number or "")
    if match:
        return match.group("cn") or match.group("head"), "number_prefix"
    return None, "none"


def this_month() -> str:
    """The current month in Shanghai, ``YYYY-MM``."""
    return datetime.now(SHANGHAI).strftime("%Y-%m")


def _order(phase: str | None) -> tuple[int, int, str]:
    if phase is None:
        return (2, 0, "")
    return (0, int(phase), "") if phase.isdigit() else (1, 0, phase)


async def community_map(community: str, month: str, *, deps: VisitsDeps) -> dict[str, Any]:
    """The plan of ``community``: its phases with their buildings, and visit coverage in ``month``."""
    async with deps.pool.acquire() as conn:
        known = await conn.fetchval(f"SELECT 1 FROM {DIRECTORY}.communities WHERE community = $1", community)
        if not known:
            raise NotFound(f"community {community} is not registered", field="community")
        grids = await conn.fetch(
            f"SELECT grid_id, name, worker_id FROM {DIRECTORY}.grids WHERE community = $1 ORDER BY grid_id", community
        )
        rows = await conn.fetch(
            "SELECT b.building_id, b.number, b.compound, b.phase, b.grid_id, b.lat, b.lon, "
            "count(h.household_id) AS households, count(m.household_id) AS visited_in_person "
            f"FROM {DIRECTORY}.buildings b "
            f"LEFT JOIN {DIRECTORY}.households h ON h.community = b.community AND h.building_id = b.building_id "
            f"LEFT JOIN {COVERAGE}.household_months m ON m.community = h.community AND m.month = $2 "
            "AND m.household_id = h.household_id "
            "WHERE b.community = $1 GROUP BY b.building_id, b.number, b.compound, b.phase, b.grid_id, b.lat, b.lon "
            "ORDER BY b.building_id",
            community,
            month,
        )
    phases: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        phase, source = phase_of(r["phase"], r["number"])
        n, seen = r["households"], r["visited_in_person"]
        phases.setdefault(phase, []).append(
            {
                "building_id": r["building_id"],
                "number": r["number"],
                "compound": r["compound"],
                "phase": phase,
                "phase_from": source,
                "grid_id": r["grid_id"],
                "lat": r["lat"],
                "lon": r["lon"],
                "households": n,
                "visited_in_person": seen,
                "coverage": round(seen / n, 4) if n else None,
            }
        )
    households = sum(r["households"] for r in rows)
    visited = sum(r["visited_in_person"] for r in rows)
    return {
        "community": community,
        "month": month,
        "households": households,
        "visited_in_person": visited,
        "coverage": round(visited / households, 4) if households else None,
        "grids": [dict(g) for g in grids],
        "phases": [
            {
                "phase": phase,
                "buildings": buildings,
                "households": sum(b["households"] for b in buildings),
                "visited_in_person": sum(b["visited_in_person"] for b in buildings),
            }
            for phase, buildings in sorted(phases.items(), key=lambda item: _order(item[0]))
        ],
    }
