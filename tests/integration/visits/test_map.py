"""The console's map: Bairuijing's phases and buildings drawn from the directory, each building with its
grid, its coordinates where the directory holds them, its households and this month's visit coverage —
households visited in person at least once / households."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import SHANGHAI
from tests.harness import eventually

from .conftest import WAIT, Field

ELDERLY, FAMILY, MICROPHONE = "h-p4-b4-2-301", "h-p4-b4-1-101", "h-p2-b3-1-602"


def buildings(plan: dict) -> dict[str, dict]:
    return {b["building_id"]: b for phase in plan["phases"] for b in phase["buildings"]}


async def test_the_map_shows_phases_buildings_and_this_months_visit_coverage(bairuijing: Field) -> None:
    f = bairuijing
    # The priority knock at the elderly resident's door counts; an online knock (WeChat) is not in
    # person, and a knock that found nobody home is a try, not a visit.
    await f.post("/visits", {"visit_id": "v-1", "household_id": ELDERLY, "mode": "priority", "minutes": 20})
    await f.post("/visits", {"visit_id": "v-1b", "household_id": ELDERLY, "mode": "regular", "minutes": 5})
    await f.post("/visits", {"visit_id": "v-2", "household_id": FAMILY, "mode": "online", "minutes": 5})
    await f.post(
        "/visits", {"visit_id": "v-3", "household_id": FAMILY, "mode": "regular", "minutes": 1, "outcome": "not_home"}
    )
    await f.post("/visits", {"visit_id": "v-4", "household_id": MICROPHONE, "mode": "regular", "minutes": 15}, f.w02)

    async def covered() -> dict:
        plan = await f.get("/map")
        return plan if plan["visited_in_person"] == 2 else {}

    plan = await eventually(covered, timeout=WAIT, what="two households visited in person on the map")
    now = datetime.now(SHANGHAI)
    assert plan["month"] == now.strftime("%Y-%m") and plan["households"] == 3 and plan["coverage"] == 0.6667
    assert [p["phase"] for p in plan["phases"]] == ["2", "4"]  # from the directory, in number order
    by_id = buildings(plan)
    assert by_id["p4-b4"] == {
        "building_id": "p4-b4",
        "number": "4",
        "compound": "百瑞景",
        "phase": "4",
        "phase_from": "directory",
        "grid_id": "g-p4-east",
        "lat": None,
        "lon": None,
        "households": 2,
        "visited_in_person": 1,
        "coverage": 0.5,
    }
    assert (by_id["p2-b3"]["visited_in_person"], by_id["p2-b3"]["coverage"]) == (1, 1.0)
    assert (by_id["p4-b5"]["households"], by_id["p4-b5"]["coverage"]) == (0, None)  # nobody lives there yet
    assert {g["grid_id"]: g["worker_id"] for g in plan["grids"]} == {"g-p4-east": "w-07", "g-p2-east": "w-02"}
    # Another month has its own coverage: last month nobody was visited (visits can't go that far back).
    last = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert (await f.get("/map", month=last))["visited_in_person"] == 0
    # A grid worker sees the whole community's plan; the street admin too; an agency does not.
    assert (await f.get("/map", headers=f.w02))["households"] == 3
    street = f.token("street_admin", street="zhongnanlu")
    assert (await f.get("/map", headers=street))["households"] == 3
    r = await f.client.get(f.url("/map"), headers=f.token("agency", community="bairuijing", agency="police"))
    assert r.status_code == 403
    r = await f.client.get(f.url("/map"), params={"month": "2026-13"}, headers=f.secretary)
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.month"


async def test_buildings_carry_coordinates_and_a_phase_from_their_number(bairuijing: Field) -> None:
    f = bairuijing
    await f.put("/buildings/b-1-7", {"number": "1-7", "units": 2, "lat": 30.5236, "lon": 114.3412})
    await f.put("/buildings/b-gate", {"number": "门卫室"})
    for body, field in (
        ({"number": "1-8", "lat": 91, "lon": 114.3}, "lat"),
        ({"number": "1-8", "lat": 30.5, "lon": -181}, "lon"),
        ({"number": "1-8", "lat": 30.5}, "lon"),
    ):
        r = await f.client.put(f.url("/buildings/b-1-8"), json=body, headers=f.secretary)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"].endswith(field), r.text

    async def drawn() -> dict:
        plan = await f.get("/map")
        return plan if {"b-1-7", "b-gate"} <= set(buildings(plan)) else {}

    plan = await eventually(drawn, timeout=WAIT, what="the new buildings on the map")
    by_id = buildings(plan)
    assert (by_id["b-1-7"]["phase"], by_id["b-1-7"]["phase_from"]) == ("1", "number_prefix")
    assert (by_id["b-1-7"]["lat"], by_id["b-1-7"]["lon"]) == (30.5236, 114.3412)
    assert (by_id["b-gate"]["phase"], by_id["b-gate"]["phase_from"]) == (None, "none")
    assert [p["phase"] for p in plan["phases"]] == ["1", "2", "4", None]  # the buildings without a phase last
    listed = {b["building_id"]: b for b in await f.get("/buildings")}
    assert (listed["b-1-7"]["lat"], listed["b-1-7"]["lon"]) == (30.5236, 114.3412)
