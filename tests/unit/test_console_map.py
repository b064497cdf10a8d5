"""The console's plan of a community, drawn without a browser: which building an open problem
belongs to, the colour bands, the grid layout, and the one tile linked when a tile server is set."""

from __future__ import annotations

from services.console.web.household_pages import shanghai_time
from services.console.web.map_pages import (
    CELL_H,
    COLUMNS,
    Cell,
    count_problems,
    coverage_band,
    plan_layout,
    problem_band,
    tiled_map,
)

BUILDINGS = [
    {"building_id": "p1b01", "number": "1", "phase": "1"},
    {"building_id": "p1b02", "number": "2", "phase": "1"},
    {"building_id": "p2b01", "number": "1", "phase": "2"},
    {"building_id": "x9", "number": "9", "phase": "2"},
]


def test_a_problem_is_placed_by_building_id_or_by_phase_and_number() -> None:
    issues = [
        {"place": {"building": "p1b02"}},
        {"place": {"building": "1", "phase": "2"}},  # the number repeats: the phase tells which
        {"place": {"building": "9"}},  # a number found once
        {"place": {"building": "1"}},  # a number found twice, no phase: not placed
        {"place": None},
        {},
    ]
    counts, unplaced = count_problems(issues, BUILDINGS)
    assert counts == {"p1b02": 1, "p2b01": 1, "x9": 1}
    assert unplaced == 3


def test_bands() -> None:
    assert [problem_band(n) for n in (0, 1, 2, 3, 10)] == ["ok", "warn", "warn", "bad", "bad"]
    assert [coverage_band(c) for c in (None, 0.0, 0.49, 0.5, 0.89, 0.9, 1.0)] == [
        "none",
        "bad",
        "bad",
        "warn",
        "warn",
        "ok",
        "ok",
    ]


def test_each_phase_is_a_band_of_rows_and_buildings_go_in_number_order() -> None:
    plan = {
        "phases": [
            {"phase": "1", "buildings": [{"building_id": f"p1b{n:02d}", "number": str(n)} for n in (10, 2, 1, 3, 4)]},
            {"phase": None, "buildings": [{"building_id": "odd", "number": None, "coverage": 0.95}]},
        ]
    }
    phases, height = plan_layout(plan, {"p1b02": 4}, "problems")
    first, second = phases
    assert [c.number for c in first.cells] == ["1", "2", "3", "4", "10"]
    assert first.cells[0].y == first.cells[COLUMNS - 1].y < first.cells[COLUMNS].y  # a new row after COLUMNS
    assert first.cells[1].band == "bad" and first.cells[0].band == "ok"
    assert second.y >= first.y + first.height and height >= second.y + second.height
    assert second.cells[0].number == "odd" and second.cells[0].y + CELL_H <= height
    coverage, _ = plan_layout(plan, {}, "coverage")
    assert coverage[1].cells[0].band == "ok" and coverage[0].cells[0].band == "none"


def test_buildings_with_coordinates_are_pinned_on_the_tiles_around_them() -> None:
    def cell(building_id: str) -> Cell:
        return Cell(building_id, building_id[-1], "1", 0, 0, 10, 5, 0.5, 1, "warn")

    cells = [cell("b1"), cell("b2"), cell("b3")]
    assert tiled_map("https://tiles.example/{z}/{x}/{y}.png", cells, {}) is None
    assert tiled_map("", cells, {"b1": (30.52, 114.33)}) is None
    # two buildings of a Wuhan compound 200 m apart, the third without coordinates
    where = {"b1": (30.5200, 114.3300), "b2": (30.5215, 114.3315)}
    tiled = tiled_map("https://{s}.tiles.example/{z}/{x}/{y}.png", cells, where)
    assert tiled is not None and tiled.zoom == 18  # the closest zoom still holds both
    assert len(tiled.tiles) == 9 and tiled.tiles[0]["url"].startswith("https://a.tiles.example/18/")
    assert [p["cell"].building_id for p in tiled.pins] == ["b1", "b2"]
    assert all(0 <= p["left"] <= 100 and 0 <= p["top"] <= 100 for p in tiled.pins)
    # north is up and east is right: b2 (north-east of b1) is higher and further right
    b1, b2 = tiled.pins
    assert b2["left"] > b1["left"] and b2["top"] < b1["top"]
    # buildings far apart: a lower zoom, so that both still fit the 3 × 3 tiles
    far = tiled_map("https://t/{z}/{x}/{y}.png", cells, {"b1": (30.52, 114.33), "b2": (30.60, 114.45)})
    assert far is not None and far.zoom < 18 and len(far.pins) == 2


def test_audit_times_read_as_shanghai_wall_time() -> None:
    assert shanghai_time("2026-03-01T16:30:00+00:00") == "2026-03-02 00:30"
    assert shanghai_time(None) == ""
