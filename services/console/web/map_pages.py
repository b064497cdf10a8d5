"""The community's plan: phases and buildings drawn server-side as inline SVG (no internet, no
script), each building coloured by its open problems or, switched, by this month's in-person visit
coverage, and a link to its households.

The geometry is computed here (:func:`plan_layout`, :func:`tiled_map`); the template only writes it
out.  Where buildings have coordinates and ``console_tile_url`` names a tile server, the real map is
drawn too — 3 × 3 tiles around the buildings and a pin per building, placed in percent by Web
Mercator — still with no script and no map library.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..bootstrap import deps
from .guard import signed_in
from .household_pages import community_of, community_query
from .render import render
from .sessions import Person

router = APIRouter(include_in_schema=False)

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: The plan's grid: columns of buildings per phase, a cell's size and the gaps (SVG user units).
COLUMNS, CELL_W, CELL_H, GAP, PHASE_HEAD = 4, 120, 76, 10, 40
WIDTH = COLUMNS * CELL_W + (COLUMNS + 1) * GAP


def problem_band(count: int) -> str:
    """Open problems of a building: none, a few (1–2) or many (3 or more)."""
    return "ok" if count == 0 else ("warn" if count < 3 else "bad")


def coverage_band(coverage: float | None) -> str:
    """This month's in-person coverage: no households, under half, under 90 %, or 90 % and more."""
    if coverage is None:
        return "none"
    return "bad" if coverage < 0.5 else ("warn" if coverage < 0.9 else "ok")


@dataclass
class Cell:
    building_id: str
    number: str
    phase: str | None
    x: int
    y: int
    households: int
    visited: int
    coverage: float | None
    problems: int
    band: str


@dataclass
class Phase:
    phase: str | None
    y: int
    height: int
    cells: list[Cell] = field(default_factory=list)


def count_problems(issues: list[dict[str, Any]], buildings: list[dict[str, Any]]) -> tuple[dict[str, int], int]:
    """Open problems per building id, and how many could not be placed on a building.

    An issue's ``place.building`` is a building id, or a number (with ``place.phase`` where a
    number repeats across phases)."""
    by_id = {b["building_id"] for b in buildings}
    by_phase_number = {(str(b.get("phase")), str(b.get("number"))): b["building_id"] for b in buildings}
    numbers: dict[str, list[str]] = {}
    for b in buildings:
        numbers.setdefault(str(b.get("number")), []).append(b["building_id"])
    counts: dict[str, int] = {}
    unplaced = 0
    for issue in issues:
        place = issue.get("place") or {}
        name = str(place.get("building") or "")
        found = None
        if name in by_id:
            found = name
        elif place.get("phase") is not None and (str(place["phase"]), name) in by_phase_number:
            found = by_phase_number[(str(place["phase"]), name)]
        elif len(numbers.get(name, [])) == 1:
            found = numbers[name][0]
        if found is None:
            unplaced += 1
        else:
            counts[found] = counts.get(found, 0) + 1
    return counts, unplaced


def plan_layout(plan: dict[str, Any], problems: dict[str, int], by: str) -> tuple[list[Phase], int]:
    """Each phase a band of rows, each building a cell in reading order; the drawing's height."""
    phases: list[Phase] = []
    y = GAP
    for group in plan.get("phases", []):
        buildings = sorted(group.get("buildings", []), key=_building_order)
        rows = max(1, math.ceil(len(buildings) / COLUMNS))
        height = PHASE_HEAD + rows * (CELL_H + GAP)
        phase = Phase(group.get("phase"), y, height)
        for i, b in enumerate(buildings):
            count = problems.get(b["building_id"], 0)
            band = coverage_band(b.get("coverage")) if by == "coverage" else problem_band(count)
            phase.cells.append(
                Cell(
                    building_id=b["building_id"],
                    number=str(b.get("number") or b["building_id"]),
                    phase=group.get("phase"),
                    x=GAP + (i % COLUMNS) * (CELL_W + GAP),
                    y=y + PHASE_HEAD + (i // COLUMNS) * (CELL_H + GAP),
                    households=int(b.get("households") or 0),
                    visited=int(b.get("visited_in_person") or 0),
                    coverage=b.get("coverage"),
                    problems=count,
                    band=band,
                )
            )
        phases.append(phase)
        y += height + GAP
    return phases, y


def _building_order(b: dict[str, Any]) -> tuple[int, str]:
    number = str(b.get("number") or "")
    return (int(number) if number.isdigit() else 10**6, b["building_id"])


def _has_coordinates(b: dict[str, Any]) -> bool:
    return b.get("lat") is not None and b.get("lon") is not None


@dataclass
class TiledMap:
    """A 3 × 3 block of map tiles around the buildings, and a pin per building on it, in percent of
    the block (so it scales with the page, with no script and no map library)."""

    zoom: int
    tiles: list[dict[str, Any]]
    pins: list[dict[str, Any]]


def _world(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator: the position in tiles (fractional) of a point at ``zoom``."""
    n = 2**zoom
    lat_r = math.radians(max(-85.0511, min(85.0511, lat)))
    return (lon + 180.0) / 360.0 * n, (1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n


def tiled_map(template: str, cells: list[Cell], coordinates: dict[str, tuple[float, float]]) -> TiledMap | None:
    """The tiles and pins for the buildings with coordinates, at the largest zoom (≤ 18) at which
    they all fit in the 3 × 3 tiles around their centre; None without a template or coordinates."""
    placed = [(c, coordinates[c.building_id]) for c in cells if c.building_id in coordinates]
    if not template or not placed:
        return None
    lat = sum(p[1][0] for p in placed) / len(placed)
    lon = sum(p[1][1] for p in placed) / len(placed)
    for zoom in range(18, 1, -1):
        cx, cy = _world(lat, lon, zoom)
        x0, y0 = int(cx) - 1, int(cy) - 1
        spots = [(c, *_world(la, lo, zoom)) for c, (la, lo) in placed]
        if all(x0 <= x < x0 + 3 and y0 <= y < y0 + 3 for _, x, y in spots):
            break
    tiles = [
        {
            "url": template.replace("{s}", "a").replace("{z}", str(zoom)).replace("{x}", str(x0 + i))
            .replace("{y}", str(y0 + j)),
            "left": round(i * 100 / 3, 4),
            "top": round(j * 100 / 3, 4),
        }
        for j in range(3)
        for i in range(3)
    ]  # fmt: skip
    pins = [{"cell": c, "left": round((x - x0) * 100 / 3, 4), "top": round((y - y0) * 100 / 3, 4)} for c, x, y in spots]
    return TiledMap(zoom, tiles, pins)


@router.get("/map")
async def community_map(
    request: Request, person: Person = Depends(signed_in("secretary", "street_admin", "grid_worker"))
) -> Response:
    d = deps(request)
    me = person.principal
    community = community_of(person, request)
    by = "coverage" if request.query_params.get("by") == "coverage" else "problems"
    month = request.query_params.get("month") or ""
    month = month if MONTH.match(month) else ""
    plan, issues = await asyncio.gather(
        d.gateway.get(me, "visits", f"/v1/communities/{community}/map", month=month or None),
        d.gateway.get(me, "issues", f"/v1/communities/{community}/issues", open="true", limit=1000),
    )
    buildings = [b for group in plan.get("phases", []) for b in group.get("buildings", [])]
    problems, unplaced = count_problems(issues.get("issues", []), buildings)
    phases, height = plan_layout(plan, problems, by)
    placed = sum(1 for b in buildings if _has_coordinates(b))
    cq = community_query(person, community)
    return render(
        request,
        "map.html",
        person,
        plan=plan,
        phases=phases,
        width=WIDTH,
        height=height,
        cell_w=CELL_W,
        cell_h=CELL_H,
        by=by,
        month=month or plan.get("month", ""),
        community=community,
        cq=cq,
        open_total=sum(problems.values()) + unplaced,
        unplaced=unplaced,
        placed=placed,
        tile_url=d.settings.console_tile_url,
        tiled=tiled_map(
            d.settings.console_tile_url,
            [c for phase in phases for c in phase.cells],
            {b["building_id"]: (float(b["lat"]), float(b["lon"])) for b in buildings if _has_coordinates(b)},
        ),
    )
