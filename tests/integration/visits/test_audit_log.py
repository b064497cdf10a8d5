"""The audit log page: every reveal, export, import and erasure of residents' personal data is listed
with who, when and which household — by kind, newest first, page by page."""

from __future__ import annotations

from datetime import datetime

from .conftest import Field

ELDERLY, FAMILY = "h-p4-b4-2-301", "h-p4-b4-1-101"

SHEET = (
    "户编号,楼栋,单元,房号,姓名,电话,人数\n"
    "p4-b5-1-202,p4-b5,1,202,王五,13800001111,2\n"
    "p4-b5-1-203,p4-b5,1,203,,,3\n"  # no personal field: nothing of a resident is written, nothing audited
).encode()


async def test_reveal_export_import_and_erasure_are_each_audited_and_listed_by_kind(bairuijing: Field) -> None:
    f = bairuijing
    before = datetime.now().astimezone()
    revealed = await f.household(ELDERLY, reveal="true")
    assert revealed["personal"]["name"] == "王秀英"
    [reveal] = await f.get("/audit-log", kind="reveal")
    assert (reveal["kind"], reveal["actor"], reveal["role"], reveal["household_id"]) == (
        "reveal",
        "sec-liu",
        "secretary",
        ELDERLY,
    )
    assert datetime.fromisoformat(reveal["at"]) >= before
    assert sorted(reveal["fields"]) == ["address", "id_number", "name", "phone"]  # names, not values

    r = await f.client.post(f.url("/ledger/import"), headers=f.secretary, files={"file": ("ledger.csv", SHEET)})
    assert r.status_code == 200 and r.json()["registered"] == 2, r.text
    [imported] = await f.get("/audit-log", kind="import")
    assert (imported["household_id"], imported["fields"], imported["purpose"]) == (
        "p4-b5-1-202",
        ["name", "phone"],
        "ledger_import",
    )
    # The same sheet again writes nothing, so it audits nothing.
    await f.client.post(f.url("/ledger/import"), headers=f.secretary, files={"file": ("ledger.csv", SHEET)})
    assert len(await f.get("/audit-log", kind="import")) == 1

    assert (await f.client.get(f.url("/ledger/export.csv"), headers=f.secretary)).status_code == 200
    exported = await f.get("/audit-log", kind="export")
    assert {e["household_id"] for e in exported} >= {ELDERLY, FAMILY}

    await f.post(f"/households/{FAMILY}/erasure", {"reason": "moved_away"}, headers=f.secretary)
    await f.post(f"/households/{FAMILY}/erasure", {}, headers=f.secretary)  # already erased: not again
    [erasure] = await f.get("/audit-log", kind="erasure")
    assert (erasure["household_id"], erasure["fields"], erasure["purpose"], erasure["actor"]) == (
        FAMILY,
        ["name"],
        "moved_away",
        "sec-liu",
    )
    everything = await f.get("/audit-log")
    assert everything[0]["kind"] == "erasure"  # newest first
    assert {e["kind"] for e in everything} == {"reveal", "import", "export", "erasure"}
    assert await f.get("/audit-log", household=FAMILY, kind="erasure") == [erasure]
    r = await f.client.get(f.url("/audit-log"), params={"kind": "peek"}, headers=f.secretary)
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.kind", r.text


async def test_the_audit_log_pages_back_by_id(bairuijing: Field) -> None:
    f = bairuijing
    for _ in range(3):
        await f.household(ELDERLY, reveal="true")
    first = await f.get("/audit-log", limit=2)
    assert len(first) == 2 and first[0]["id"] > first[1]["id"]
    rest = await f.get("/audit-log", limit=2, before=first[-1]["id"])
    assert len(rest) == 1 and rest[0]["id"] < first[-1]["id"]
    assert await f.get("/audit-log", limit=2, before=rest[-1]["id"]) == []
