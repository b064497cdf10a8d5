"""Who and where: registering Bairuijing's people and places, and who may do it."""

from __future__ import annotations

from tests.harness import eventually

from .conftest import WAIT, Field


async def test_bairuijing_is_registered_and_served_from_the_directory(bairuijing: Field) -> None:
    f = bairuijing
    community = await f.get("", headers=f.token("street_admin", street="zhongnanlu"))
    assert community["street"] == "zhongnanlu" and community["households"] == 3

    grids = {g["grid_id"]: g for g in await f.get("/grids")}
    assert grids["g-p4-east"]["buildings"] == ["p4-b4", "p4-b5"] and grids["g-p4-east"]["worker_id"] == "w-07"
    buildings = {b["building_id"]: b["grid_id"] for b in await f.get("/buildings")}
    assert buildings == {"p4-b4": "g-p4-east", "p4-b5": "g-p4-east", "p2-b3": "g-p2-east"}
    roles = {p["person_id"]: p["role"] for p in await f.get("/persons")}
    assert roles["pm-12"] == "sinking_party_member" and roles["bl-1"] == "building_leader"

    # Households take the grid of their building; a grid worker lists only their own grid.
    mine = {h["household_id"]: h["grid_id"] for h in await f.get("/households", headers=f.w07)}
    assert mine == {"h-p4-b4-1-101": "g-p4-east", "h-p4-b4-2-301": "g-p4-east"}


async def test_the_same_definition_sent_again_changes_nothing(bairuijing: Field) -> None:
    f = bairuijing
    again = await f.put("/buildings/p4-b4", {"compound": "百瑞景", "phase": "4", "number": "4", "units": 3}, expect=200)
    assert again == {"id": "p4-b4", "version": 1, "duplicate": True}
    changed = await f.put(
        "/buildings/p4-b4", {"compound": "百瑞景", "phase": "4", "number": "4", "units": 4}, expect=201
    )
    assert changed["version"] == 2


async def test_redrawing_a_grid_moves_the_buildings_households(bairuijing: Field) -> None:
    f = bairuijing
    await f.put(
        "/grids/g-p4-east", {"name": "四期东网格", "worker_id": "w-07", "buildings": ["p4-b5"], "expected_version": 1}
    )
    await f.put("/grids/g-p4-west", {"name": "四期西网格", "buildings": ["p4-b4"]})

    async def moved() -> bool:
        return (await f.household("h-p4-b4-1-101"))["grid_id"] == "g-p4-west"

    await eventually(moved, timeout=WAIT, what="household follows its building to the new grid")
    # A stale version of the grid is refused.
    r = await f.client.put(
        f.url("/grids/g-p4-east"), headers={**f.secretary, "If-Match": '"1"'}, json={"name": "x", "buildings": []}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"


async def test_registering_a_household_twice_is_idempotent_but_a_different_one_conflicts(bairuijing: Field) -> None:
    f = bairuijing
    body = {
        "household_id": "h-p4-b4-1-101",
        "building_id": "p4-b4",
        "unit": "1",
        "room": "101",
        "personal": {"name": "周建国"},
    }
    assert (await f.post("/households", body, headers=f.secretary, expect=200))["duplicate"] is True
    other = {**body, "personal": {"name": "别人"}}
    r = await f.client.post(f.url("/households"), json=other, headers=f.secretary)
    assert r.status_code == 409 and r.json()["error"]["field"] == "household_id"
    r = await f.client.post(
        f.url("/households"), json={**body, "household_id": "h-x", "building_id": "p9-b9"}, headers=f.secretary
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "building_id"


async def test_every_endpoint_needs_a_token_and_the_right_role_and_scope(bairuijing: Field) -> None:
    f = bairuijing
    c = f.client
    assert (await c.get(f.url("/households"))).status_code == 401
    assert (await c.get(f.url("/households"), headers={"Authorization": "Bearer nonsense"})).status_code == 401
    # A grid worker cannot define grids; an agency cannot read households.
    r = await c.put(f.url("/grids/g-new"), json={"name": "n"}, headers=f.w07)
    assert r.status_code == 403
    assert (
        await c.get(f.url("/households"), headers=f.token("agency", agency="police", community="bairuijing"))
    ).status_code == 403
    # A secretary of another community, a street admin of another street.
    other = f.token("secretary", community="shuiguohu")
    assert (await c.get(f.url("/households"), headers=other)).status_code == 403
    assert (await c.get(f.url(""), headers=f.token("street_admin", street="donghu"))).status_code == 403
    # A street admin registers communities of their own street only.
    r = await c.put(
        "/v1/communities/shuiguohu",
        json={"name": "水果湖", "street": "shuiguohu-st"},
        headers=f.token("street_admin", street="zhongnanlu"),
    )
    assert r.status_code == 403 and r.json()["error"]["field"] == "street"
    # Grid workers see households of their own grid only.
    r = await c.get(f.url("/households/h-p2-b3-1-602"), headers=f.w07)
    assert r.status_code == 403 and r.json()["error"]["field"] == "household_id"


async def test_openapi_documents_every_route_with_examples(field: Field) -> None:
    spec = (await field.client.get("/openapi.json")).json()
    visits = spec["paths"]["/v1/communities/{community}/visits"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(visits["responses"])
    schema = spec["components"]["schemas"]["VisitIn"]
    assert schema["examples"][0]["mode"] == "regular"
    assert "examples" in spec["components"]["schemas"]["SyncBatch"]
    asyncapi = (await field.client.get("/asyncapi")).json()
    assert any("VisitLogged" in name for name in asyncapi["channels"])
