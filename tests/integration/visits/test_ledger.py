"""The resident basic-information ledger (居民基础信息底册): import, re-import, completion."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from services.cli.main import main as gridwork
from tests.harness import eventually

from .conftest import WAIT, Field
from .test_sync import stored_events

LEDGER = """户编号,楼栋,单元,房号,户主姓名,联系电话,身份证号,详细地址,家庭人数,标签
,p4-b5,1,201,李四,13800138000,420106198005120035,百瑞景四期5栋1单元201,3,青年
,p4-b5,1,202,王五,13800138001,420106199203110043,百瑞景四期5栋1单元202,1,独居老人、特殊帮扶
,p4-b5,1,203,赵六,12345,,百瑞景四期5栋1单元203,2,
,p9-b9,1,101,钱七,13800138002,,,1,
,p4-b5,1,201,李四,13800138000,420106198005120035,百瑞景四期5栋1单元201,3,青年
,p4-b5,,204,孙八,13800138003,,,2,
,p4-b5,2,301,周九,13800138003,420106200107070050,百瑞景四期5栋2单元301,2,
,p4-b5,2,302,吴十,13800138004,420106200107070059,百瑞景四期5栋2单元302,abc,
h-p2-b3-2-101,p2-b3,2,101,郑一,027-88886666,11010519491231002X,百瑞景二期3栋2单元101,4,
"""

REJECTED = [
    (4, "phone"),  # not a phone number
    (5, "building"),  # no such building
    (6, "household_id"),  # the same household as line 2
    (7, "unit"),  # no unit and no household_id
    (8, "id_number"),  # wrong check digit
    (9, "members"),  # not a number
]


async def upload(f: Field, content: bytes, name: str = "ledger.csv") -> dict:
    r = await f.client.post(f.url("/ledger/import"), headers=f.secretary, files={"file": (name, content)})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_ledger_with_bad_rows_reports_each_by_line_and_a_reimport_adds_nothing(bairuijing: Field) -> None:
    f = bairuijing
    report = await upload(f, LEDGER.encode())
    assert (report["rows"], report["registered"], report["updated"], report["unchanged"]) == (9, 3, 0, 0)
    assert [(r["line"], r["field"]) for r in report["rejected"]] == REJECTED
    assert all(r["reason"] for r in report["rejected"])
    events = len(await stored_events(f))

    again = await upload(f, LEDGER.encode())
    assert (again["registered"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert [(r["line"], r["field"]) for r in again["rejected"]] == REJECTED
    assert len(await stored_events(f)) == events  # nothing stored twice

    await f.wait_households(6)
    imported = await f.household("p4-b5-1-202", headers=f.w07)
    assert imported["grid_id"] == "g-p4-east" and imported["complete"] is True
    assert sorted(imported["tags"]) == ["elderly_alone", "special_assistance"]  # Chinese labels mapped
    assert imported["personal"]["name"] == "王五"

    # The community corrects a phone number in its sheet: only that household changes.
    changed = await upload(f, LEDGER.replace("13800138000", "13800138099", 1).encode())
    assert (changed["registered"], changed["updated"], changed["unchanged"]) == (0, 1, 2)
    assert len(await stored_events(f)) == events + 1


async def test_an_excel_ledger_with_english_headers_imports_too(bairuijing: Field) -> None:
    from openpyxl import Workbook

    f = bairuijing
    book = Workbook()
    sheet = book.active
    sheet.append(["Building", "Unit", "Room", "Name", "Phone", "Members", "Tags"])
    sheet.append(["p4-b5", 3, 501, "钱学森", "13900000001", 2, "young"])
    sheet.append(["p4-b5", 3, 502, "", "1390000", 1, ""])
    buffer = io.BytesIO()
    book.save(buffer)
    report = await upload(f, buffer.getvalue(), "ledger.xlsx")
    assert report["registered"] == 1
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [(3, "phone")]
    await f.wait_households(4)
    assert (await f.household("p4-b5-3-501"))["members"] == 2  # 3 / 501 read from numeric cells

    broken = await upload(f, b"not a spreadsheet", "ledger.xlsx")
    assert broken["rejected"][0]["line"] == 1


async def test_ledger_completion_per_grid_and_community_against_the_90_percent_bar(bairuijing: Field) -> None:
    f = bairuijing
    await upload(f, LEDGER.encode())
    await f.wait_households(6)
    report = await f.get("/ledger/completion")
    # Complete: 4-4-2-301 (seeded with everything) and the three imported rows; not 4-4-1-101, 2-3-1-602.
    assert (report["households"], report["complete"], report["meets_bar"]) == (6, 4, False)
    assert report["rate"] == pytest.approx(4 / 6, abs=1e-4)
    grids = {g["grid_id"]: (g["households"], g["complete"]) for g in report["grids"]}
    assert grids == {"g-p2-east": (2, 1), "g-p4-east": (4, 3)}
    assert report["missing"] == {"name": 1, "phone": 2, "id_number": 2, "address": 2, "members": 1}
    mine = await f.get("/ledger/completion", headers=f.w07)  # a grid worker sees their own grid
    assert [g["grid_id"] for g in mine["grids"]] == ["g-p4-east"]

    await f.client.patch(
        f.url("/households/h-p4-b4-1-101"),
        headers=f.w07,
        json={
            "members": 2,
            "personal": {"phone": "13907110001", "id_number": "420106199203110043", "address": "4栋1单元101"},
        },
    )
    await f.client.patch(
        f.url("/households/h-p2-b3-1-602"),
        headers=f.w02,
        json={
            "personal": {
                "name": "孙某",
                "phone": "13907110002",
                "id_number": "420106200107070059",
                "address": "2期3栋1单元602",
            }
        },
    )

    async def complete() -> dict:
        r = await f.get("/ledger/completion")
        return r if r["complete"] == 6 else {}

    done = await eventually(complete, timeout=WAIT, what="every household complete")
    assert done["rate"] == 1.0 and done["meets_bar"] is True


async def test_gridwork_import_on_the_command_line(
    bairuijing: Field, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = bairuijing
    s = f.settings
    for name, value in (
        ("NATS_URL", s.nats_url),
        ("DATABASE_URL", s.database_url),
        ("NAMESPACE", s.namespace),
        ("JWT_SECRET", s.jwt_secret),
        ("KEK", s.kek),
        ("LOG_LEVEL", "WARNING"),
    ):
        monkeypatch.setenv(f"GRIDWORK_{name}", str(value))
    sheet = tmp_path / "bairuijing.csv"
    sheet.write_bytes(LEDGER.encode("gb18030"))  # as Excel saves a CSV in China
    code = await asyncio.to_thread(gridwork, ["import", str(sheet), "--community", "bairuijing", "--json"])
    assert code == 2  # rows were rejected
    out = capsys.readouterr().out
    assert '"registered": 3' in out and '"line": 8' in out
    code = await asyncio.to_thread(gridwork, ["import", str(sheet), "--community", "bairuijing"])
    assert "0 registered" in capsys.readouterr().out
    await f.wait_households(6)
