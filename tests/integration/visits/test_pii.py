"""Residents' personal information (PIPL): sealed in events, audited when read, erasable."""

from __future__ import annotations

import csv
import io

import asyncpg
import pytest

from shared.eventstore import EventStore, connect
from tests.harness import eventually

from .conftest import WAIT, Field

NAME, PHONE, ID_NUMBER = "王秀英", "13907110000", "42010619500101002X"


async def raw_stream(f: Field) -> bytes:
    nc = await connect(f.settings, "test")
    try:
        stored = await EventStore(nc, f.settings).read(f"{f.settings.namespace}.>")
    finally:
        await nc.close()
    return b"\n".join(s.data for s in stored)


async def audit_rows(f: Field) -> list:
    return await f.get("/audit-log")


async def test_personal_fields_never_reach_the_stream_in_clear(
    bairuijing: Field, capfd: pytest.CaptureFixture[str]
) -> None:
    f = bairuijing
    stream = await raw_stream(f)
    assert b'"sealed"' in stream
    for secret in (NAME, PHONE, ID_NUMBER):
        assert secret.encode() not in stream
        assert secret.encode("unicode_escape") not in stream
    out, err = capfd.readouterr()
    assert NAME not in out + err and PHONE not in out + err  # nor in the logs


async def test_only_reads_by_others_than_the_owning_grid_worker_are_audited(bairuijing: Field) -> None:
    f = bairuijing
    mine = await f.household("h-p4-b4-2-301", headers=f.w07)
    assert mine["personal"] == {
        "name": NAME,
        "phone": PHONE,
        "id_number": ID_NUMBER,
        "address": "百瑞景四期4栋2单元301",
    }
    assert await audit_rows(f) == []

    plain = await f.household("h-p4-b4-2-301")  # a secretary, without asking to reveal
    assert plain["personal"] is None and await audit_rows(f) == []
    revealed = await f.household("h-p4-b4-2-301", reveal="true")
    assert revealed["personal"]["phone"] == PHONE
    [entry] = await audit_rows(f)
    assert (entry["actor"], entry["role"], entry["household_id"], entry["purpose"]) == (
        "sec-liu",
        "secretary",
        "h-p4-b4-2-301",
        "household_view",
    )
    assert sorted(entry["fields"]) == ["address", "id_number", "name", "phone"]

    export = (await f.client.get(f.url("/ledger/export.csv"), headers=f.secretary)).text
    assert NAME in export
    exported = [e for e in await audit_rows(f) if e["purpose"] == "ledger_export"]
    assert {e["household_id"] for e in exported} == {"h-p4-b4-2-301", "h-p4-b4-1-101"}  # those with personal data

    # Another grid's worker cannot read it; nobody but the secretary reads the audit log.
    assert (await f.client.get(f.url("/households/h-p4-b4-2-301"), headers=f.w02)).status_code == 403
    assert (await f.client.get(f.url("/audit-log"), headers=f.w07)).status_code == 403
    r = await f.client.get(f.url("/households/h-p4-b4-2-301"), headers=f.token("agency", community="bairuijing"))
    assert r.status_code == 403


async def test_erasure_removes_the_personal_data_everywhere_but_keeps_the_visit_count(bairuijing: Field) -> None:
    f = bairuijing
    for i in range(2):
        await f.post(
            "/visits", {"visit_id": f"v-care-{i}", "household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 20}
        )

    async def visited() -> bool:
        return (await f.household("h-p4-b4-2-301", headers=f.w07))["visits"] == 2

    await eventually(visited, timeout=WAIT, what="two visits counted")
    r = await f.client.post(f.url("/households/h-p4-b4-2-301/erasure"), headers=f.w07, json={})
    assert r.status_code == 403  # only the secretary erases
    erased = await f.post("/households/h-p4-b4-2-301/erasure", {"reason": "moved_away"}, headers=f.secretary)
    assert erased["duplicate"] is False
    again = await f.post("/households/h-p4-b4-2-301/erasure", {}, headers=f.secretary)
    assert again["duplicate"] is True

    # The key is gone from PostgreSQL: the ciphertext in the stream can never be opened again.
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT key, erased_at FROM visits.visits_household_keys WHERE household_id = $1", "h-p4-b4-2-301"
        )
    finally:
        await conn.close()
    assert row["key"] is None and row["erased_at"] is not None
    assert b"ResidentDataErased" in await raw_stream(f)

    async def shows_erased() -> dict:
        h = await f.household("h-p4-b4-2-301", headers=f.w07)
        return h if h["erased"] else {}

    h = await eventually(shows_erased, timeout=WAIT, what="projection shows the erasure")
    assert h["personal"] == {"name": "erased", "phone": "erased", "id_number": "erased", "address": "erased"}
    assert h["visits"] == 2 and h["special_visits"] == 2  # the counts stay
    assert h["fields_present"] == ["members"] and h["complete"] is False
    export = (await f.client.get(f.url("/ledger/export.csv"), headers=f.secretary)).text
    line = next(row for row in export.splitlines() if row.startswith("h-p4-b4-2-301"))
    assert NAME not in export and "erased,erased,erased,erased" in line

    # Personal data cannot be written back; visits go on being logged.
    r = await f.client.patch(f.url("/households/h-p4-b4-2-301"), headers=f.secretary, json={"personal": {"name": NAME}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "erased"
    assert (await f.post("/visits", {"household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 5}))[
        "special_assistance"
    ] is True


async def test_the_ledger_export_is_safe_to_open_in_a_spreadsheet(bairuijing: Field) -> None:
    """#15 item 2: a household named as a formula lands as text, not as a live formula."""
    f = bairuijing
    personal = {"name": '=HYPERLINK("http://x.example","click")', "phone": "+8613907110000", "address": "@SUM(1)"}
    household = {"household_id": "h-formula", "building_id": "p4-b4", "room": "-1", "personal": personal}
    await f.post("/households", household, headers=f.secretary)

    async def exported() -> list[list[str]]:
        export = (await f.client.get(f.url("/ledger/export.csv"), headers=f.secretary)).text
        return [r for r in csv.reader(io.StringIO(export)) if r and r[0] == "h-formula"]

    [row] = await eventually(exported, timeout=WAIT, what="the household in the ledger")
    assert '\'=HYPERLINK("http://x.example","click")' in row and "'@SUM(1)" in row
    assert "'-1" in row  # the room
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
