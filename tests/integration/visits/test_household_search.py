"""The console's households page: a secretary looks a household up by what is not personal — its id,
room, building number or tag — filters by tag or by gaps in the ledger, and pages through."""

from __future__ import annotations

from .conftest import Field

ELDERLY, FAMILY, MICROPHONE = "h-p4-b4-2-301", "h-p4-b4-1-101", "h-p2-b3-1-602"


async def ids(f: Field, headers: dict[str, str] | None = None, **params: object) -> list[str]:
    return [h["household_id"] for h in await f.get("/households", headers=headers, **params)]


async def test_search_matches_household_id_room_building_number_and_tag(bairuijing: Field) -> None:
    f = bairuijing
    assert await ids(f, q="301") == [ELDERLY]  # a room
    assert await ids(f, q="4 101") == [FAMILY]  # building number 4, room 101
    assert await ids(f, q="p2-b3") == [MICROPHONE]  # part of the household id
    assert await ids(f, q="elderly_alone") == [ELDERLY]  # a tag
    assert await ids(f, q="p2-b3") == [MICROPHONE]
    assert await ids(f, q="4") == [FAMILY, ELDERLY]
    # Wildcards are taken literally: "_" is not "any character".
    assert await ids(f, q="p4_b4") == []
    [row] = await f.get("/households", q="602")
    assert row["building_number"] == "3" and row["room"] == "602" and "personal" not in row


async def test_personal_data_is_never_searchable(bairuijing: Field) -> None:
    f = bairuijing
    for secret in ("王秀英", "13907110000", "42010619500101002X", "百瑞景四期4栋2单元301"):
        assert await ids(f, q=secret) == []


async def test_tag_and_ledger_gap_filters(bairuijing: Field) -> None:
    f = bairuijing
    assert await ids(f, tag="elderly_alone") == [ELDERLY]
    assert await ids(f, tag="young") == []
    gaps = {h["household_id"]: h["missing"] for h in await f.get("/households", incomplete="true")}
    assert gaps == {
        FAMILY: ["phone", "id_number", "address", "members"],
        MICROPHONE: ["name", "phone", "id_number", "address"],
    }
    assert await ids(f, incomplete="true", q="4") == [FAMILY]
    [complete] = await f.get("/households", q="301")
    assert complete["missing"] == []
    r = await f.client.get(f.url("/households"), params={"tag": "独居老人"}, headers=f.secretary)
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.tag", r.text


async def test_search_pages_by_household_id_and_keeps_a_worker_to_their_grid(bairuijing: Field) -> None:
    f = bairuijing
    first = await ids(f, q="4", limit=1)
    assert first == [FAMILY]
    assert await ids(f, q="4", limit=1, after=first[-1]) == [ELDERLY]
    assert await ids(f, q="4", limit=1, after=ELDERLY) == []
    # Phase 2 east's worker finds nothing of phase 4, whatever they search.
    assert await ids(f, headers=f.w02, q="4") == []
    assert await ids(f, headers=f.w02, q="602") == [MICROPHONE]
