"""Erasing a household erases it everywhere (#13 item 9).

A resident's name, phone and ID number are written into every free-text field a grid worker, the
12345 hotline and an Open311 app can fill — notes, problem descriptions, session topics, council
decisions, a training's title, talents, volunteer work, an issue's notes and resolution, a work
order's request and call-back note, an Open311 description and address — and travel on: filed as
issues, escalated to property management (notify's facts and the webhook it sends), folded into
every board.  Then the secretary erases the household.  Every table of every schema, the event
stream, the dead-letter stream and the snapshot bucket are searched for those strings: none is
found; the texts read ``[erased]``; the boards count what they counted before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.notify.receiver import LocalReceiver
from shared.eventstore import connect
from shared.settings import Settings
from tests.harness import auth, eventually, four_services

C = "erasure"
NAME, PHONE, ID_NUMBER, ADDRESS = "王秀英", "13907110000", "42010619500101002X", "百瑞景四期4栋2单元301"
SAID = f"{NAME} ({PHONE}, ID {ID_NUMBER}) of {ADDRESS} says the lift is broken"
SECRET = "whsec-property-0123456789abcdef"
API_KEY = "erasure-311-key"


def forms(value: str) -> list[bytes]:
    """How a string can sit in storage: UTF-8, or escaped in JSON."""
    return sorted({value.encode(), json.dumps(value)[1:-1].encode(), value.lower().encode()})


NEEDLES = [form for value in (NAME, PHONE, ID_NUMBER, ADDRESS) for form in forms(value)]


def leaks(blob: bytes) -> list[bytes]:
    return [n for n in NEEDLES if n in blob]


@pytest.fixture
async def receiver() -> AsyncIterator[LocalReceiver]:
    r = LocalReceiver(webhook_secrets={"property": [SECRET]})
    await r.start()
    yield r
    await r.stop()


async def ok(r: httpx.Response) -> Any:
    assert r.status_code in (200, 201), f"{r.request.method} {r.request.url} → {r.status_code} {r.text}"
    return r.json()


async def test_erasing_a_household_leaves_its_name_phone_and_id_nowhere(
    settings: Settings, receiver: LocalReceiver
) -> None:
    async with four_services(settings, issues={"open311_api_keys": {API_KEY: C}}) as (_apps, c):
        sec = auth(settings, "secretary", community=C)
        w1 = auth(settings, "grid_worker", community=C, grid="g1", worker_id="w1")
        hotline = auth(settings, "hotline")
        v, i = c["visits"], c["issues"]
        base = f"/v1/communities/{C}"

        # The community, its grid, worker, the household, and property management's webhook.
        await ok(await v.put(base, json={"name": "Erasure", "street": "s-e"}, headers=auth(settings, "ops")))
        await ok(await v.put(f"{base}/buildings/b1", json={"number": "4", "grid_id": "g1", "units": 2}, headers=sec))
        await ok(await v.put(f"{base}/workers/w1", json={"name": "李网格", "grid_id": "g1"}, headers=sec))
        await ok(
            await v.put(f"{base}/grids/g1", json={"name": "G1", "worker_id": "w1", "buildings": ["b1"]}, headers=sec)
        )
        personal = {"name": NAME, "phone": PHONE, "id_number": ID_NUMBER, "address": ADDRESS}
        household = {"household_id": "hh", "building_id": "b1", "room": "301", "personal": personal}
        await ok(await v.post(f"{base}/households", json=household, headers=sec))
        webhook = {"url": f"{receiver.url}/webhook/property", "secret": SECRET}
        recipient = {"kind": "property_management", "name": "Property", "channels": {"webhook": webhook}}
        await ok(await c["notify"].put(f"{base}/recipients/pm", json=recipient, headers=sec))

        async def household_known() -> bool:
            return (await v.get(f"{base}/households/hh", headers=w1)).status_code == 200

        await eventually(household_known, what="the household in the directory", timeout=30)

        # Every free-text field a worker fills.
        problem = {"category": "safety_hazards", "subcategory": "stairwell_clutter", "description": SAID}
        visit = {"household_id": "hh", "mode": "regular", "minutes": 10, "notes": SAID, "problems": [problem]}
        await ok(await v.post(f"{base}/visits", json=visit, headers=w1))
        session = {"station": SAID, "topics": [SAID], "residents_attending": 3}
        await ok(await v.post(f"{base}/face-to-face-sessions", json=session, headers=w1))
        council = {"building_id": "b1", "attendees": 9, "decisions": [SAID], "problems": [problem]}
        await ok(await v.post(f"{base}/building-councils", json=council, headers=w1))
        await ok(await v.post(f"{base}/trainings", json={"training_id": "t1", "title": SAID}, headers=w1))
        talent = {"field": "culture_sports", "household_id": "hh", "description": SAID}
        await ok(await v.post(f"{base}/talents", json=talent, headers=w1))
        service = {"household_id": "hh", "activity": SAID, "hours": 3}
        await ok(await v.post(f"{base}/volunteer-services", json=service, headers=w1))
        redemption = {"household_id": "hh", "points": 1, "item": SAID}
        await ok(await v.post(f"{base}/volunteer-redemptions", json=redemption, headers=w1))
        # Text about the household that does not name it: erased with it all the same.
        about = {"household_id": "hh", "mode": "priority", "minutes": 20, "notes": "lives alone; diabetic"}
        await ok(await v.post(f"{base}/visits", json=about, headers=w1))

        # An issue through its life, every note of it naming the resident.
        issues = f"{base}/issues"
        report = {"category": "conflicts_disputes", "description": SAID, "place": {"building": "b1"}}
        issue = (await ok(await i.post(issues, json=report, headers=w1)))["issue"]
        iid, ver = issue["issue_id"], issue["version"]
        ver = (await ok(await i.post(f"{issues}/{iid}/accept", json={"version": ver}, headers=w1)))["version"]
        step = {"version": ver, "assignee_kind": "worker", "assignee_id": "w1", "note": SAID}
        ver = (await ok(await i.post(f"{issues}/{iid}/assign", json=step, headers=w1)))["version"]
        step = {"version": ver, "reason": SAID, "target": "property_management"}
        ver = (await ok(await i.post(f"{issues}/{iid}/escalate", json=step, headers=w1)))["version"]
        step = {"version": ver, "resolution": SAID}
        ver = (await ok(await i.post(f"{issues}/{iid}/resolve", json=step, headers=w1)))["version"]
        step = {"version": ver, "satisfied": False, "note": SAID}
        ver = (await ok(await i.post(f"{issues}/{iid}/verify", json=step, headers=w1)))["version"]  # reopened
        step = {"version": ver, "assignee_kind": "worker", "assignee_id": "w1", "note": SAID}
        ver = (await ok(await i.post(f"{issues}/{iid}/assign", json=step, headers=w1)))["version"]
        step = {"version": ver, "resolution": SAID}
        ver = (await ok(await i.post(f"{issues}/{iid}/resolve", json=step, headers=w1)))["version"]
        step = {"version": ver, "reason": SAID}
        await ok(await i.post(f"{issues}/{iid}/reopen", json=step, headers=w1))

        # A 12345 work order and its call-back.
        order = {
            "order_no": "GD-ERASE-1",
            "request": SAID,
            "category": "public_facilities",
            "place": {"grid": "g1"},
            "response_deadline": "2030-01-01T10:00:00+08:00",
            "resolution_deadline": "2030-01-03T10:00:00+08:00",
        }
        received = await ok(await i.post(f"{base}/hotline/orders", json=order, headers=hotline))
        hid, ver = received["issue_id"], received["issue"]["version"]
        ver = (await ok(await i.post(f"{issues}/{hid}/accept", json={"version": ver}, headers=w1)))["version"]
        step = {"version": ver, "assignee_kind": "worker", "assignee_id": "w1"}
        ver = (await ok(await i.post(f"{issues}/{hid}/assign", json=step, headers=w1)))["version"]
        ver = (
            await ok(await i.post(f"{issues}/{hid}/resolve", json={"version": ver, "resolution": SAID}, headers=w1))
        )["version"]
        callback = {"satisfied": False, "note": SAID}
        await ok(await i.post(f"{base}/hotline/orders/GD-ERASE-1/callback", json=callback, headers=hotline))

        # An Open311 report.
        code = (await ok(await i.get("/open311/v2/services.json")))[0]["service_code"]
        form = {"api_key": API_KEY, "service_code": code, "description": SAID, "address_string": SAID}
        open311 = (await ok(await i.post("/open311/v2/requests.json", data=form)))[0]["service_request_id"]

        # The texts travel: the visit's and the council's problems are filed as issues, property
        # management gets the escalation (notify keeps its facts), every board folds.
        async def filed() -> Any:
            listed = await ok(await i.get(issues, headers=sec))
            by_source = sorted(x["source"] for x in listed["issues"])
            return (
                by_source
                if by_source.count("council") == 1 and any(x["caused_by_visit"] for x in listed["issues"])
                else None
            )

        await eventually(filed, what="the visit's problem filed as an issue", timeout=30)
        await eventually(lambda: _delivered(receiver), what="property management's webhook", timeout=30)
        shown = await ok(await i.get(f"{issues}/{iid}", headers=sec))
        assert shown["issue"]["description"] == SAID  # revealed for the reader, stored as a reference

        async def settled() -> Any:  # the boards have folded everything: two readings agree
            first = await _counts(c, sec, settings)
            await asyncio.sleep(0.5)
            return first if first == await _counts(c, sec, settings) else None

        board_before = await eventually(settled, what="the boards settled", timeout=30)
        # ----------------------------------------------------------------- erase
        await ok(await v.post(f"{base}/households/hh/erasure", json={"reason": "moved_away"}, headers=sec))

        shown = await ok(await i.get(f"{issues}/{iid}", headers=sec))
        assert shown["issue"]["description"] == "[erased]"
        assert {h["data"].get("note") for h in shown["history"] if h["type"] == "IssueAssigned"} == {"[erased]"}
        [request] = await ok(await i.get(f"/open311/v2/requests/{open311}.json"))
        assert (request["description"], request["address"]) == ("[erased]", "[erased]")

        async def counts_settled() -> bool:
            return await _counts(c, sec, settings) == board_before

        await eventually(counts_settled, what="the boards count what they counted", timeout=30)

    found = await _search_database(settings) + await _search_streams(settings)
    assert found == [], "\n".join(found)
    conn = await asyncpg.connect(settings.database_url)
    try:
        about = await conn.fetch("SELECT sealed FROM vault.texts WHERE community = $1 AND subject = 'hh'", C)
    finally:
        await conn.close()
    assert len(about) == 6 and all(r["sealed"] is None for r in about)  # every text written about it


async def _delivered(receiver: LocalReceiver) -> bool:
    return any(SAID in json.dumps(r.json(), ensure_ascii=False) for r in receiver.on("/webhook/property"))


async def _counts(c: dict[str, httpx.AsyncClient], sec: dict[str, str], settings: Settings) -> Any:
    """What the boards count: open problems, the workers' 5+1 items, the community's figures."""
    base = f"/v1/communities/{C}"
    problems = await ok(await c["issues"].get(f"{base}/problems/open", headers=sec))
    board = await ok(await c["scoring"].get(f"{base}/board", headers=sec))
    figures = await ok(await c["scoring"].get(f"{base}/figures", headers=sec))
    rows = [{k: v for k, v in row.items() if "ledger" not in k} for row in board.get("workers", board.get("rows", []))]
    kept = {k: v for k, v in figures.items() if "ledger" not in k and "household" not in k}
    return problems["total"], problems["by_category"], rows, kept


async def _search_database(settings: Settings) -> list[str]:
    """Every table of every schema, every row as text."""
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    found = []
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        assert len(tables) > 20, tables  # every service's schema was searched
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            for row in await conn.fetch(f"SELECT t::text AS row FROM {name} t"):
                hit = leaks(row["row"].encode())
                if hit:
                    found.append(f"{name}: {hit} in {row['row'][:200]}")
    finally:
        await conn.close()
    return found


async def _search_streams(settings: Settings) -> list[str]:
    """The event stream, the dead-letter stream and the snapshot bucket, message by message."""
    nc = await connect(settings, "tests-erasure-search")
    found = []
    try:
        js = nc.jetstream()
        names = [settings.stream_name(), settings.dlq_stream_name(), f"KV_{settings.snapshot_bucket()}"]
        for stream in names:
            state = (await js.stream_info(stream)).state
            if stream == settings.stream_name():
                assert state.messages > 20  # the events were searched, not an empty stream
            for seq in range(state.first_seq, state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except Exception:  # a deleted or expired message
                    continue
                blob = (msg.data or b"") + json.dumps(msg.headers or {}).encode()
                hit = leaks(blob)
                if hit:
                    found.append(f"{stream} #{seq} ({msg.subject}): {hit}")
    finally:
        await nc.close()
    return found
