"""The console's plan of a community, drawn without a browser: which building an open problem
belongs to, the colour bands, the grid layout, and the one tile linked when a tile server is set."""

from __future__ import annotations

from services.console.web.household_pages import shanghai_time
from services.console.web.map_pages import (
    CELL_H,
    COLUMNS,
    count_problems,
    coverage_band,
    plan_layout,
    problem_band,
    tile_link,
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


def test_the_tile_of_the_centre_is_linked_only_with_coordinates() -> None:
    assert tile_link("https://tiles.example/{z}/{x}/{y}.png", BUILDINGS) is None
    assert tile_link("", [{"lat": 30.5, "lon": 114.3}]) is None
    placed = [{"lat": 30.52, "lon": 114.33}, {"lat": 30.54, "lon": 114.35}, {"lat": None, "lon": None}]
    link = tile_link("https://{s}.tiles.example/{z}/{x}/{y}.png", placed)
    # Wuhan at zoom 17: x = floor((114.34 + 180) / 360 * 2^17), y = floor((1 - ln(tan φ + sec φ) / π) / 2 * 2^17)
    assert link == "https://a.tiles.example/17/107165/53853.png"


def test_audit_times_read_as_shanghai_wall_time() -> None:
    assert shanghai_time("2026-03-01T16:30:00+00:00") == "2026-03-02 00:30"
    assert shanghai_time(None) == ""
