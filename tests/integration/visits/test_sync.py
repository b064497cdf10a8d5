"""Offline sync: a phone uploads a day's work made without network."""

from __future__ import annotations

from datetime import datetime

from shared.events import decode
from shared.eventstore import EventStore, connect

from .conftest import Field, ago


def day_of_work() -> list[dict]:
    """w-07's day, recorded on the phone in a basement without signal."""
    return [
        {"client_id": "s-0414", "kind": "shift_started", "occurred_at": ago(hours=9), "data": {}},
        {
            "client_id": "v-0414-1",
            "kind": "visit",
            "occurred_at": ago(hours=8),
            "data": {"household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 25},
        },
        {
            "client_id": "v-0414-2",
            "kind": "visit",
            "occurred_at": ago(hours=7),
            "data": {
                "household_id": "h-p4-b4-1-101",
                "mode": "regular",
                "minutes": 10,
                "problems": [
                    {
                        "category": "safety_hazards",
                        "subcategory": "stairwell_clutter",
                        "severity": "high",
                        "description": "bicycles and boxes block the stairwell",
                    }
                ],
            },
        },
        {
            "client_id": "f-0414",
            "kind": "face_to_face_session",
            "occurred_at": ago(hours=6),
            "data": {"station": "四期党群服务驿站", "party_members_present": ["pm-12"], "residents_attending": 9},
        },
        {
            "client_id": "c-0414",
            "kind": "building_council",
            "occurred_at": ago(hours=5),
            "data": {
                "building_id": "p4-b4",
                "party_members": ["pm-12"],
                "resident_backbones": ["bl-1"],
                "decisions": ["residents' patrol team reports clutter in real time"],
            },
        },
        {
            "client_id": "fr-0414",
            "kind": "resident_befriended",
            "occurred_at": ago(hours=4),
            "data": {"household_id": "h-p4-b4-1-101"},
        },
        {
            "client_id": "t-0414",
            "kind": "training_attended",
            "occurred_at": ago(hours=4),
            "data": {"training_id": "t-fire", "title": "Fire safety in stairwells"},
        },
        {
            "client_id": "tl-0414",
            "kind": "talent_discovered",
            "occurred_at": ago(hours=3),
            "data": {"household_id": "h-p4-b4-1-101", "field": "repairs"},
        },
        {
            "client_id": "sv-0414",
            "kind": "resident_surveyed",
            "occurred_at": ago(hours=3),
            "data": {"household_id": "h-p4-b4-2-301", "visited": True, "knows_grid_worker": True, "satisfaction": 4},
        },
        {
            "client_id": "vs-0414",
            "kind": "volunteer_service",
            "occurred_at": ago(hours=2),
            "data": {"household_id": "h-p4-b4-1-101", "activity": "stairwell clearing", "hours": 1.5},
        },
        {"client_id": "e-0414", "kind": "shift_ended", "occurred_at": ago(hours=1), "data": {"shift_id": "s-0414"}},
    ]


async def stored_events(f: Field) -> list:
    nc = await connect(f.settings, "test")
    try:
        store = EventStore(nc, f.settings)
        return [decode(s.data, s.type) for s in await store.read(f"{f.settings.namespace}.bairuijing.>")]
    finally:
        await nc.close()


async def test_a_batch_sent_three_times_is_stored_once_with_the_phones_times(bairuijing: Field) -> None:
    f = bairuijing
    records = day_of_work()
    before = len(await stored_events(f))
    first = await f.post("/sync", {"device_id": "phone-w07", "records": records}, expect=200)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (len(records), 0, 0), first
    for _ in range(2):  # the phone never got the answer and sends the batch again, twice
        again = await f.post("/sync", {"device_id": "phone-w07", "records": records}, expect=200)
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, len(records), 0), again
        assert [r["status"] for r in again["results"]] == ["duplicate"] * len(records)

    events = (await stored_events(f))[before:]
    assert len(events) == len(records)  # one event per record, once
    by_type = {e.type: e for e in events}
    assert set(by_type) == {
        "ShiftStarted",
        "VisitLogged",
        "FaceToFaceSessionHeld",
        "BuildingCouncilHeld",
        "ResidentBefriended",
        "TrainingAttended",
        "TalentDiscovered",
        "ResidentSurveyed",
        "VolunteerServiceLogged",
        "ShiftEnded",
    }
    visit = next(e for e in events if e.aggregate_id == "v-0414-1")
    assert visit.occurred_at == datetime.fromisoformat(records[1]["occurred_at"])  # the phone's time, not upload
    assert visit.data.special_assistance is True
    ended = by_type["ShiftEnded"]
    assert abs(ended.data.minutes - 8 * 60) < 1


async def test_each_record_is_answered_on_its_own(bairuijing: Field) -> None:
    f = bairuijing
    good = {
        "client_id": "v-ok",
        "kind": "visit",
        "occurred_at": ago(hours=1),
        "data": {"household_id": "h-p4-b4-1-101", "mode": "online", "minutes": 3},
    }
    records = [
        good,
        {**good, "client_id": "v-unknown", "data": {**good["data"], "household_id": "h-nobody"}},
        {**good, "client_id": "v-other-grid", "data": {**good["data"], "household_id": "h-p2-b3-1-602"}},
        {**good, "client_id": "v-old", "occurred_at": ago(days=40)},
        {**good, "client_id": "v-future", "occurred_at": ago(hours=-2)},
        {**good, "client_id": "v-bad-mode", "data": {**good["data"], "mode": "shout"}},
        {**good, "client_id": "x-1", "kind": "karaoke"},
        {**good, "client_id": "bad id with spaces"},
        {"client_id": "e-1", "kind": "shift_ended", "occurred_at": ago(hours=1), "data": {}},
        good,  # the same record twice in one batch
    ]
    answer = await f.post("/sync", {"records": records}, expect=200)
    results = [(r["client_id"], r["status"], r.get("code"), r.get("field")) for r in answer["results"]]
    assert results == [
        ("v-ok", "accepted", None, None),
        ("v-unknown", "rejected", "not_found", "household_id"),
        ("v-other-grid", "rejected", "forbidden", "household_id"),
        ("v-old", "rejected", "invalid", "occurred_at"),
        ("v-future", "rejected", "invalid", "occurred_at"),
        ("v-bad-mode", "rejected", "invalid", "data.mode"),
        ("x-1", "rejected", "invalid", "kind"),
        ("bad id with spaces", "rejected", "invalid", "client_id"),
        ("e-1", "rejected", "invalid", "data.shift_id"),
        ("v-ok", "duplicate", None, None),
    ]
    assert all(r["reason"] for r in answer["results"] if r["status"] == "rejected")
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (1, 1, 8)


async def test_a_batch_holds_at_most_500_records_and_needs_a_grid_workers_token(bairuijing: Field) -> None:
    f = bairuijing
    record = {"client_id": "v", "kind": "visit", "occurred_at": ago(hours=1), "data": {}}
    r = await f.client.post(f.url("/sync"), headers=f.w07, json={"records": [record] * 501})
    assert r.status_code == 422 and r.json()["error"]["field"] == "records"
    r = await f.client.post(f.url("/sync"), headers=f.secretary, json={"records": [record]})
    assert r.status_code == 403
    r = await f.client.post(f.url("/sync"), json={"records": [record]})
    assert r.status_code == 401


async def test_five_hundred_visits_in_one_batch(bairuijing: Field) -> None:
    f = bairuijing
    records = [
        {
            "client_id": f"v-bulk-{i}",
            "kind": "visit",
            "occurred_at": ago(minutes=500 - i),
            "data": {"household_id": ["h-p4-b4-1-101", "h-p4-b4-2-301"][i % 2], "mode": "regular", "minutes": 5},
        }
        for i in range(500)
    ]
    answer = await f.post("/sync", {"records": records}, expect=200)
    assert answer["accepted"] == 500
    again = await f.post("/sync", {"records": records}, expect=200)
    assert again["duplicates"] == 500


async def test_a_resent_record_with_another_time_is_a_duplicate_but_a_reused_id_is_refused(bairuijing: Field) -> None:
    f = bairuijing
    visit = {
        "client_id": "v-clock",
        "kind": "visit",
        "occurred_at": ago(hours=3),
        "data": {"household_id": "h-p4-b4-1-101", "mode": "regular", "minutes": 8},
    }
    assert (await f.post("/sync", {"records": [visit]}, expect=200))["accepted"] == 1
    # The phone's clock was corrected before the re-send: same record, another time.
    moved = {**visit, "occurred_at": ago(hours=2)}
    reused = {**visit, "occurred_at": ago(hours=1), "data": {**visit["data"], "minutes": 30}}
    answer = await f.post("/sync", {"records": [moved]}, expect=200)
    assert answer["results"][0]["status"] == "duplicate"
    answer = await f.post("/sync", {"records": [reused]}, expect=200)
    assert answer["results"][0]["status"] == "rejected" and answer["results"][0]["field"] == "client_id"
