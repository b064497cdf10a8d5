"""The 5+1 quotas folded from hand-written days of grid work, into exact numbers."""

from __future__ import annotations

from datetime import date, timedelta

from services.scoring.domain.calendar import days, is_workday
from tests.integration.scoring.conftest import (
    BAIRUIJING,
    at,
    council,
    issue,
    resolved,
    session,
    shift,
    visit,
    worker,
)

OCTOBER = [d for d in days(date(2025, 10, 1), date(2025, 10, 31))]


async def test_five_households_every_working_day_of_a_national_day_october(scoring) -> None:
    # October 2025: National Day + Mid-autumn, Oct 1–8 off; Saturday Oct 11 is an adjusted workday (调休).
    working = [d for d in OCTOBER if is_workday(d)]
    assert len(working) == 18 and date(2025, 10, 11) in working and date(2025, 10, 8) not in working
    events = [worker("w01")]
    for d in working:
        events += [visit("w01", f"h-{d.day}-{k}", at(d, 9 + k)) for k in range(5)]
    # A knock on a holiday is welcome, but there is no daily quota on a day off.
    events.append(visit("w01", "h-holiday", at("2025-10-03", 10)))
    # The Sunday before (Sep 28) is an adjusted workday too: it carries a quota.
    events += [visit("w01", f"h-sep28-{k}", at("2025-09-28", 9 + k)) for k in range(3)]
    await scoring.folded(await scoring.append(*events))

    board = await scoring.get(f"/v1/communities/{BAIRUIJING}/board?period=2025-10&as_of=2025-10-31")
    [row] = board["workers"]
    assert row["worker_id"] == "w01" and row["rank"] == 1
    assert row["working_days"] == 18
    assert row["items_met"] == 18  # one "5 households" per working day, nothing else
    # 18 working days × 4 daily items + 5 weeks due on an October Friday + 2 monthly items
    assert row["items_due"] == 18 * 4 + 5 + 2
    assert row["quota_points"] == 18.0
    assert row["reception_entries"] == 18 * 5 + 1
    assert row["reception_points"] == 9.1
    assert row["attendance_days"] == 0  # no shifts logged: no time in the grid
    assert row["total"] == 27.1
    assert row["completion"] == round(18 / 79, 4)

    saturday = await scoring.get(f"/v1/communities/{BAIRUIJING}/workers/w01/progress?at=2025-10-11T18:00:00%2B08:00")
    today = saturday["periods"][0]
    assert saturday["workday"] and today["key"] == "2025-10-11" and today["scored"]
    households = next(i for i in today["items"] if i["item"] == "households")
    assert (households["actual"], households["target"], households["met"]) == (5, 5, True)

    holiday = await scoring.get(f"/v1/communities/{BAIRUIJING}/workers/w01/progress?at=2025-10-03T18:00:00%2B08:00")
    day = holiday["periods"][0]
    assert not holiday["workday"] and not day["scored"] and day["points"] == 0
    assert next(i for i in day["items"] if i["item"] == "households")["actual"] == 1

    sunday = await scoring.get(f"/v1/communities/{BAIRUIJING}/board?period=2025-09-28&as_of=2025-09-28")
    [sep28] = sunday["workers"]
    assert (sep28["working_days"], sep28["items_due"], sep28["items_met"]) == (1, 4, 0)  # 3/5 households: missed


async def test_a_working_day_of_3_households_4_2_hours_and_a_special_visit(scoring) -> None:
    day = date(2025, 11, 12)
    await scoring.folded(
        await scoring.append(
            worker("w02"),
            shift("w02", at(day, 8, 30), 180),
            shift("w02", at(day, 14), 72),  # 4.2 hours in two shifts
            visit("w02", "h-101", at(day, 9)),
            visit("w02", "h-102", at(day, 10)),
            visit("w02", "h-101", at(day, 11)),  # the same household again: still 2 households
            visit("w02", "h-103", at(day, 15), special=True),  # elderly living alone: also the special visit
            visit("w02", "h-104", at(day, 16), outcome="not_home"),  # nobody home is not a contact
        )
    )
    progress = await scoring.get(
        "/v1/communities/bairuijing/workers/w02/progress?at=2025-11-12T20:00:00%2B08:00",
        role="grid_worker",
        worker_id="w02",
    )
    today = progress["periods"][0]
    got = {i["item"]: (i["actual"], i["target"], i["met"]) for i in today["items"]}
    assert got == {
        "hours": (4.2, 5, False),
        "households": (3, 5, False),
        "problem": (0, 1, False),
        "special_visit": (1, 1, True),
    }
    assert today["summary"] == "4.2/5 h, 3/5 households, 0/1 problems, 1/1 households"
    assert today["points"] == 1
    assert [p["key"] for p in progress["periods"]] == ["2025-11-12", "2025-W46", "2025-11", "2025-Q4", "2025"]

    board = await scoring.get("/v1/communities/bairuijing/board?period=2025-11-12&as_of=2025-11-12")
    [row] = board["workers"]
    assert (row["attendance_days"], row["attendance_points"], row["reception_entries"]) == (1, 1.0, 5)
    assert row["total"] == 1.0 + 0.5 + 1.0  # attended + 5 reception entries + the special visit


async def test_a_face_to_face_session_without_a_party_member_does_not_count(scoring) -> None:
    friday = at("2025-11-14", 16)
    await scoring.folded(
        await scoring.append(
            worker("w03"),
            worker("w04"),
            session("w03", friday, party_members=[]),  # residents came, no party member: not the 5+1 session
            session("w04", friday, party_members=["pm-sinking-07"]),
        )
    )
    week = {}
    for w in ("w03", "w04"):
        progress = await scoring.get(f"/v1/communities/bairuijing/workers/{w}/progress?at=2025-11-16T12:00:00%2B08:00")
        week[w] = next(p for p in progress["periods"] if p["period"] == "week")
    assert week["w03"]["key"] == "2025-W46" and week["w03"]["due"] == "2025-11-14"
    assert [(i["actual"], i["met"], i["points"]) for i in week["w03"]["items"]] == [(0, False, 0)]
    assert [(i["actual"], i["met"], i["points"]) for i in week["w04"]["items"]] == [(1, True, 2)]


async def test_the_monthly_five_categories_and_the_daily_problem_reported_or_solved(scoring) -> None:
    cats = ["public_facilities", "environmental_sanitation", "safety_hazards", "conflicts_disputes"]
    events = [worker("w05"), council("w05", at("2025-11-20", 19))]
    events += [
        issue("w05", c, at(date(2025, 11, 3) + timedelta(days=i), 10), issue_id=f"i-w05-{i}")
        for i, c in enumerate(cats)
    ]
    # A hotline complaint in the fifth category is not the worker's report.
    events.append(issue("hotline", "livelihood_services", at("2025-11-10"), source="hotline"))
    # Solving the stairwell clutter the next day counts as that day's small problem.
    await scoring.append(*events)
    await scoring.folded(await scoring.append(resolved("i-w05-2", "w05", at("2025-11-06", 15))))

    progress = await scoring.get("/v1/communities/bairuijing/workers/w05/progress?at=2025-11-28T12:00:00%2B08:00")
    month = next(p for p in progress["periods"] if p["period"] == "month")
    got = {i["item"]: (i["actual"], i["met"]) for i in month["items"]}
    assert got == {"five_categories": (4, False), "building_council": (1, True)}
    board = await scoring.get("/v1/communities/bairuijing/board?period=2025-11&as_of=2025-11-30")
    [row] = board["workers"]
    # five "problem" days (Nov 3, 4, 5, 6 reported; Nov 6 also solved → still one) + the council
    assert row["items_met"] == 4 + 1
    assert row["quota_points"] == 4 * 1 + 3
    await scoring.folded(await scoring.append(issue("w05", "livelihood_services", at("2025-11-27", 9))))
    progress = await scoring.get("/v1/communities/bairuijing/workers/w05/progress?at=2025-11-28T12:00:00%2B08:00")
    month = next(p for p in progress["periods"] if p["period"] == "month")
    assert month["items"][0] == {**month["items"][0], "actual": 5, "met": True, "points": 3}
