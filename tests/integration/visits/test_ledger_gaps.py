"""The ledger's gaps by building: the secretary sees, building by building, how complete the resident
basic-information ledger (居民基础信息底册) is and which fields each incomplete household lacks — by
name only, never a resident's value."""

from __future__ import annotations

import json

from tests.harness import eventually

from .conftest import WAIT, Field

FAMILY, MICROPHONE = "h-p4-b4-1-101", "h-p2-b3-1-602"


async def test_completion_by_building_names_each_households_missing_fields(bairuijing: Field) -> None:
    f = bairuijing
    by = await f.get("/ledger/completion", by="building")
    assert by["households"] == 3 and by["complete"] == 1  # the community's figures stay as they were
    buildings = {b["building_id"]: b for b in by["buildings"]}
    assert set(buildings) == {"p4-b4", "p2-b3"}  # buildings with households
    p4b4 = buildings["p4-b4"]
    assert (p4b4["number"], p4b4["phase"], p4b4["grid_id"]) == ("4", "4", "g-p4-east")
    assert (p4b4["households"], p4b4["complete"], p4b4["rate"]) == (2, 1, 0.5)
    assert p4b4["gaps"] == [
        {
            "household_id": FAMILY,
            "unit": "1",
            "room": "101",
            "erased": False,
            "missing": ["phone", "id_number", "address", "members"],
        }
    ]
    assert p4b4["missing"] == {"name": 0, "phone": 1, "id_number": 1, "address": 1, "members": 1}
    p2b3 = buildings["p2-b3"]
    assert (p2b3["households"], p2b3["complete"], p2b3["rate"]) == (1, 0, 0.0)
    assert [g["missing"] for g in p2b3["gaps"]] == [["name", "phone", "id_number", "address"]]
    # Field names only: no resident's value appears anywhere in the answer.
    assert "周建国" not in json.dumps(by, ensure_ascii=False)
    # Without by=building the answer has no buildings (the grid view as before).
    assert (await f.get("/ledger/completion"))["buildings"] is None


async def test_completing_a_household_closes_its_gap_and_the_list_can_be_capped(bairuijing: Field) -> None:
    f = bairuijing
    capped = await f.get("/ledger/completion", by="building", gaps=0)
    assert all(b["gaps"] == [] for b in capped["buildings"])
    assert {b["building_id"]: b["gaps_truncated"] for b in capped["buildings"]} == {"p4-b4": True, "p2-b3": True}
    personal = {"phone": "13907110001", "id_number": "420106198001010015", "address": "4-1-101"}
    r = await f.client.patch(
        f.url(f"/households/{FAMILY}"), json={"members": 4, "personal": personal}, headers=f.secretary
    )
    assert r.status_code == 200, r.text

    async def closed() -> bool:
        by = await f.get("/ledger/completion", by="building")
        return {b["building_id"]: b["complete"] for b in by["buildings"]} == {"p4-b4": 2, "p2-b3": 0}

    await eventually(closed, timeout=WAIT, what="building 4-4's ledger complete")
    # A grid worker sees their own grid's buildings only.
    mine = await f.get("/ledger/completion", headers=f.w02, by="building")
    assert [b["building_id"] for b in mine["buildings"]] == ["p2-b3"]
