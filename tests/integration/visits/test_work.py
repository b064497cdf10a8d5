"""The work a grid worker logs, with the rules the 5+1 method implies."""

from __future__ import annotations

from datetime import datetime

from shared.events import SHANGHAI
from tests.harness import eventually

from .conftest import WAIT, Field, ago


async def test_a_shift_in_the_grid_starts_once_and_ends_with_its_minutes(bairuijing: Field) -> None:
    f = bairuijing
    started = await f.post("/shifts", {"shift_id": "s-0414", "occurred_at": ago(hours=6)}, expect=201)
    assert started["version"] == 1
    # An open shift can't start twice, not even under another id.
    r = await f.client.post(f.url("/shifts"), json={"shift_id": "s-0414b", "occurred_at": ago(hours=5)}, headers=f.w07)
    assert r.status_code == 409 and r.json()["error"]["open_shift_id"] == "s-0414"
    # The same start re-sent is a duplicate, not a conflict.
    again = await f.post("/shifts", {"shift_id": "s-0414", "occurred_at": ago(hours=6)}, expect=200)
    assert again["duplicate"] is True
    status = await f.get("/workers/w-07/shift", headers=f.w07)
    assert status["open_shift_id"] == "s-0414" and status["version"] == 1

    ended = await f.post("/shifts/s-0414/end", {"occurred_at": ago(minutes=30), "expected_version": 1}, expect=201)
    assert 5.4 * 60 <= ended["minutes"] <= 5.6 * 60 and ended["version"] == 2

    async def hours() -> float:
        day = datetime.fromisoformat(ago(hours=6)).date().isoformat()
        return (await f.get(f"/workers/w-07/days/{day}", headers=f.w07))["hours_in_grid"]

    assert 5.4 <= await eventually(hours, timeout=WAIT, what="hours in the grid") <= 5.6


async def test_a_shift_for_someone_else_is_refused_before_its_time_is_looked_at(bairuijing: Field) -> None:
    # Who may act is answered first: a worker naming a colleague gets 403 even with a bad time.
    f = bairuijing
    body = {"shift_id": "s-other", "worker_id": "w-02", "occurred_at": ago(hours=-48)}
    r = await f.client.post(f.url("/shifts"), json=body, headers=f.w07)
    assert r.status_code == 403 and r.json()["error"]["field"] == "worker_id", r.text
    end = {"worker_id": "w-02", "occurred_at": ago(hours=-48)}
    r = await f.client.post(f.url("/shifts/s-0414/end"), json=end, headers=f.w07)
    assert r.status_code == 403 and r.json()["error"]["field"] == "worker_id", r.text
    # The same body for oneself is refused for its time.
    mine = {"shift_id": "s-mine", "occurred_at": ago(hours=-48)}
    r = await f.client.post(f.url("/shifts"), json=mine, headers=f.w07)
    assert r.status_code == 422 and r.json()["error"]["field"] == "occurred_at", r.text


async def test_a_shift_over_16_hours_is_refused_and_a_stale_version_conflicts(bairuijing: Field) -> None:
    f = bairuijing
    await f.post("/shifts", {"shift_id": "s-long", "occurred_at": ago(hours=20)})
    r = await f.client.post(f.url("/shifts/s-long/end"), json={"occurred_at": ago(minutes=1)}, headers=f.w07)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "shift_too_long" and r.json()["error"]["field"] == "occurred_at"
    # Ending it with a stale version of the worker's shift log: someone else changed it meanwhile.
    r = await f.client.post(
        f.url("/shifts/s-long/end"), json={"occurred_at": ago(hours=12)}, headers={**f.w07, "If-Match": '"0"'}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"
    # The real end time, 8 h after the start, is accepted.
    ended = await f.post("/shifts/s-long/end", {"occurred_at": ago(hours=12), "expected_version": 1})
    assert abs(ended["minutes"] - 480) < 1
    r = await f.client.post(f.url("/shifts/s-nope/end"), json={}, headers=f.w07)
    assert r.status_code == 409  # no shift is open


async def test_a_priority_knock_at_an_elderly_resident_living_alone_is_a_special_assistance_visit(
    bairuijing: Field,
) -> None:
    f = bairuijing
    visit = await f.post(
        "/visits",
        {
            "visit_id": "v-1",
            "household_id": "h-p4-b4-2-301",
            "mode": "priority",
            "minutes": 20,
            "occurred_at": ago(hours=1),
        },
        expect=201,
    )
    assert visit["special_assistance"] is True  # derived from the elderly_alone tag
    ordinary = await f.post(
        "/visits", {"visit_id": "v-2", "household_id": "h-p4-b4-1-101", "mode": "online", "minutes": 5}
    )
    assert ordinary["special_assistance"] is False
    given = await f.post(
        "/visits",
        {
            "visit_id": "v-3",
            "household_id": "h-p4-b4-1-101",
            "mode": "regular",
            "minutes": 5,
            "special_assistance": True,
        },
    )
    assert given["special_assistance"] is True
    # A retry of the same visit (even without occurred_at) is stored once.
    again = await f.post(
        "/visits", {"visit_id": "v-2", "household_id": "h-p4-b4-1-101", "mode": "online", "minutes": 5}, expect=200
    )
    assert again["duplicate"] is True
    clash = await f.client.post(
        f.url("/visits"),
        headers=f.w07,
        json={"visit_id": "v-2", "household_id": "h-p4-b4-2-301", "mode": "online", "minutes": 9},
    )
    assert clash.status_code == 409 and clash.json()["error"]["field"] == "visit_id"

    async def counted() -> bool:
        h = await f.household("h-p4-b4-2-301", headers=f.w07)
        day = await f.get(f"/workers/w-07/days/{datetime.now(SHANGHAI).date().isoformat()}", headers=f.w07)
        return h["visits"] == 1 and h["special_visits"] == 1 and day["visits"] == 3 and day["special_visits"] == 2

    await eventually(counted, timeout=WAIT, what="visits counted per household and per day")


async def test_night_time_noise_found_on_a_visit_carries_the_problem_for_the_issues_service(
    bairuijing: Field,
) -> None:
    from shared.events.visits import VisitLogged
    from shared.eventstore import EventStore, connect

    f = bairuijing
    await f.post(
        "/visits",
        {
            "visit_id": "v-noise",
            "household_id": "h-p2-b3-1-602",
            "mode": "regular",
            "minutes": 15,
            "outcome": "follow_up",
            "occurred_at": ago(hours=2),
            "notes": "neighbours complain about late-night noise",
            "problems": [
                {
                    "category": "conflicts_disputes",
                    "subcategory": "noise",
                    "severity": "medium",
                    "description": "resident shouts into a microphone late at night for work",
                }
            ],
        },
        headers=f.w02,
        expect=201,
    )
    nc = await connect(f.settings, "test")
    try:
        [stored] = await EventStore(nc, f.settings).read(f"{f.settings.namespace}.bairuijing.visits.visit.v-noise.*")
    finally:
        await nc.close()
    event = stored.event()
    assert isinstance(event, VisitLogged) and event.actor == "w-02" and event.data.grid_id == "g-p2-east"
    assert event.data.problems[0].category == "conflicts_disputes"
    assert event.occurred_at == datetime.fromisoformat(event.occurred_at.isoformat())  # the phone's time kept


async def test_visits_are_refused_for_unknown_households_other_grids_and_bad_times(bairuijing: Field) -> None:
    f = bairuijing
    base = {"mode": "regular", "minutes": 10}

    async def refused(body: dict, status: int, field: str, headers: dict | None = None) -> dict:
        r = await f.client.post(f.url("/visits"), json={**base, **body}, headers=headers or f.w07)
        assert r.status_code == status, r.text
        assert r.json()["error"]["field"] == field, r.text
        return r.json()["error"]

    await refused({"household_id": "h-nobody"}, 404, "household_id")
    await refused({"household_id": "h-p2-b3-1-602"}, 403, "household_id")  # w-02's grid, not w-07's
    future = await refused({"household_id": "h-p4-b4-1-101", "occurred_at": ago(minutes=-10)}, 422, "occurred_at")
    assert "future" in future["message"]
    await f.post("/visits", {**base, "household_id": "h-p4-b4-1-101", "occurred_at": ago(minutes=-2)})  # clock skew
    old = await refused({"household_id": "h-p4-b4-1-101", "occurred_at": ago(days=31)}, 422, "occurred_at")
    assert "30 days" in old["message"]
    await refused({"household_id": "h-p4-b4-1-101", "mode": "shouting"}, 422, "mode")
    await refused({"household_id": "h-p4-b4-1-101", "minutes": -1}, 422, "minutes")
    await refused(
        {"household_id": "h-p4-b4-1-101", "problems": [{"category": "noise", "description": "x"}]},
        422,
        "problems.0.category",
    )
    # A grid worker logs their own work only; a secretary logs for a named worker.
    await refused({"household_id": "h-p4-b4-1-101", "worker_id": "w-02"}, 403, "worker_id")
    await refused({"household_id": "h-p4-b4-1-101"}, 422, "worker_id", headers=f.secretary)
    done = await f.post("/visits", {**base, "household_id": "h-p4-b4-1-101", "worker_id": "w-07"}, headers=f.secretary)
    assert done["kind"] == "visit"
    r = await f.client.post(
        f.url("/visits"),
        json={**base, "household_id": "h-p4-b4-1-101"},
        headers=f.token("hotline", community="bairuijing"),
    )
    assert r.status_code == 403


async def test_a_face_to_face_session_without_party_members_is_recorded_but_does_not_count(
    bairuijing: Field,
) -> None:
    f = bairuijing
    empty = await f.post(
        "/face-to-face-sessions",
        {"session_id": "f-w15", "station": "四期党群服务驿站", "residents_attending": 8, "occurred_at": ago(days=7)},
    )
    assert empty["counts_for_quota"] is False
    counted = await f.post(
        "/face-to-face-sessions",
        {
            "session_id": "f-w16",
            "station": "四期党群服务驿站",
            "party_members_present": ["pm-12", "pm-13"],
            "residents_attending": 14,
            "topics": ["staggered dog-walking times"],
            "problems": [{"category": "conflicts_disputes", "subcategory": "dogs", "description": "dog conflicts"}],
        },
    )
    assert counted["counts_for_quota"] is True
    r = await f.client.post(
        f.url("/face-to-face-sessions"),
        headers=f.w07,
        json={"station": "驿站", "party_members_present": ["pm-12", "bl-1"]},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "party_members_present[1]"

    async def listed() -> list:
        sessions = await f.get("/face-to-face-sessions", headers=f.w07)
        return sessions if len(sessions) == 2 else []

    sessions = {s["session_id"]: s["counts_for_quota"] for s in await eventually(listed, timeout=WAIT)}
    assert sessions == {"f-w15": False, "f-w16": True}


async def test_a_building_council_is_held_in_a_building_of_the_workers_grid(bairuijing: Field) -> None:
    f = bairuijing
    council = {
        "council_id": "c-p4-b4-2503",
        "building_id": "p4-b4",
        "party_members": ["pm-12"],
        "resident_backbones": ["rb-3", "bl-1"],
        "attendees": 11,
        "decisions": ["try the public-area rules in building 4 first"],
    }
    assert (await f.post("/building-councils", council, expect=201))["id"] == "c-p4-b4-2503"
    r = await f.client.post(
        f.url("/building-councils"), headers=f.w07, json={**council, "council_id": "c-2", "building_id": "p2-b3"}
    )
    assert r.status_code == 403 and r.json()["error"]["field"] == "building_id"
    r = await f.client.post(
        f.url("/building-councils"), headers=f.w07, json={**council, "council_id": "c-3", "building_id": "p9-b9"}
    )
    assert r.status_code == 404


async def test_friends_trainings_talents_and_surveys_are_logged(bairuijing: Field) -> None:
    f = bairuijing
    assert (await f.post("/befriended-residents", {"friend_id": "fr-1", "household_id": "h-p4-b4-1-101"}))[
        "kind"
    ] == "resident_befriended"
    await f.post("/trainings", {"training_id": "t-pets", "title": "Pet conflicts role-play", "hours": 2})
    await f.post(
        "/talents",
        {
            "household_id": "h-p4-b4-1-101",
            "field": "culture_sports",
            "description": "runs the Ruijing Micro Marathon club",
        },
    )
    r = await f.client.post(f.url("/talents"), headers=f.w07, json={"field": "juggling"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "field"
    await f.post(
        "/surveys", {"household_id": "h-p4-b4-2-301", "visited": True, "knows_grid_worker": True, "satisfaction": 5}
    )
    r = await f.client.post(
        f.url("/surveys"),
        headers=f.w07,
        json={"household_id": "h-p4-b4-2-301", "visited": True, "knows_grid_worker": True, "satisfaction": 6},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "satisfaction"

    async def day() -> bool:
        d = await f.get(f"/workers/w-07/days/{datetime.now(SHANGHAI).date().isoformat()}", headers=f.w07)
        return (d["befriended"], d["trainings"], d["talents"], d["surveys"]) == (1, 1, 1, 1)

    await eventually(day, timeout=WAIT, what="the day's friends, training, talent and survey")


async def test_volunteer_points_for_dog_walking_cannot_be_overspent(bairuijing: Field) -> None:
    f = bairuijing
    earned = await f.post(
        "/volunteer-services",
        {"service_id": "vs-1", "household_id": "h-p4-b4-1-101", "activity": "staggered dog-walking patrol", "hours": 2},
    )
    assert earned["balance"] == 20  # 10 points per hour by default
    again = await f.post(
        "/volunteer-services",
        {"service_id": "vs-1", "household_id": "h-p4-b4-1-101", "activity": "staggered dog-walking patrol", "hours": 2},
        expect=200,
    )
    assert again["duplicate"] is True and again["balance"] == 20
    r = await f.client.post(
        f.url("/volunteer-redemptions"),
        headers=f.w07,
        json={"redemption_id": "r-1", "household_id": "h-p4-b4-1-101", "points": 25, "item": "dog leash"},
    )
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "insufficient_points",
        "field": "points",
        "balance": 20,
        "message": "cannot redeem 25 points: the balance is 20",
    }
    spent = await f.post(
        "/volunteer-redemptions",
        {"redemption_id": "r-2", "household_id": "h-p4-b4-1-101", "points": 15, "item": "dog leash"},
        expect=201,
    )
    assert spent["balance"] == 5
    points = await f.get("/households/h-p4-b4-1-101/volunteer-points", headers=f.w07)
    assert (points["earned"], points["redeemed"], points["balance"]) == (20, 15, 5)


async def test_concurrent_redemptions_never_spend_more_than_the_balance(bairuijing: Field) -> None:
    import asyncio

    f = bairuijing
    await f.post(
        "/volunteer-services",
        {
            "service_id": "vs-9",
            "household_id": "h-p4-b4-2-301",
            "activity": "stairwell patrol",
            "hours": 3,
            "points": 30,
        },
    )
    attempts = [
        f.client.post(
            f.url("/volunteer-redemptions"),
            headers=f.w07,
            json={"redemption_id": f"r-{i}", "household_id": "h-p4-b4-2-301", "points": 10, "item": "towel"},
        )
        for i in range(6)
    ]
    codes = sorted(r.status_code for r in await asyncio.gather(*attempts))
    assert codes == [201, 201, 201, 409, 409, 409]
    points = await f.get("/households/h-p4-b4-2-301/volunteer-points", headers=f.w07)
    assert points["balance"] == 0


async def test_household_tags_and_profile_use_optimistic_concurrency(bairuijing: Field) -> None:
    f = bairuijing
    h = await f.household("h-p4-b4-1-101")
    version = h["version"]
    tagged = await f.post(
        "/households/h-p4-b4-1-101/tags", {"add": ["special_assistance"], "expected_version": version}
    )
    assert tagged["version"] == version + 1
    # The same tagging again is a no-op; a change with the old version is refused.
    same = await f.post("/households/h-p4-b4-1-101/tags", {"add": ["special_assistance"], "expected_version": version})
    assert same["duplicate"] is True
    r = await f.client.patch(
        f.url("/households/h-p4-b4-1-101"), headers={**f.w07, "If-Match": f'"{version}"'}, json={"members": 4}
    )
    assert r.status_code == 409
    r = await f.client.patch(
        f.url("/households/h-p4-b4-1-101"), headers=f.w07, json={"members": 4, "personal": {"phone": "12345"}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "personal.phone"
    ok = await f.client.patch(
        f.url("/households/h-p4-b4-1-101"),
        headers={**f.w07, "If-Match": f'"{version + 1}"'},
        json={"members": 4, "personal": {"phone": "027-88886666"}},
    )
    assert ok.status_code == 200 and ok.json()["version"] == version + 2
    r = await f.client.post(f.url("/households/h-p4-b4-1-101/tags"), headers=f.w07, json={"add": ["Elderly Alone"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "add[0]"
    r = await f.client.get(f.url("/households/h-nobody/volunteer-points"), headers=f.secretary)
    assert r.status_code == 404
    # A grid worker cannot change a household of another grid.
    r = await f.client.patch(f.url("/households/h-p2-b3-1-602"), headers=f.w07, json={"members": 2})
    assert r.status_code == 403

    async def special_now() -> bool:
        v = await f.post("/visits", {"household_id": "h-p4-b4-1-101", "mode": "priority", "minutes": 3})
        return v["special_assistance"]

    assert await eventually(special_now, timeout=WAIT, what="visit derives special assistance from the new tag")
