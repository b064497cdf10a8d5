"""The grid worker's day in Bairuijing, decided without I/O: shifts in the grid, knocks on doors,
the Friday face-to-face session, the building council, and volunteer points for dog walking."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.visits.domain.households import HouseholdRef
from services.visits.domain.shifts import (
    EndShift,
    ShiftLog,
    ShiftTooLong,
    StartShift,
    decide_shift_end,
    decide_shift_start,
    evolve_shift_log,
)
from services.visits.domain.volunteer import (
    InsufficientPoints,
    LogVolunteerService,
    RedeemPoints,
    VolunteerAccount,
    decide_volunteer,
    evolve_volunteer,
)
from services.visits.domain.work import (
    ActingWorker,
    DiscoverTalent,
    HoldCouncil,
    HoldSession,
    LogVisit,
    WorkLookups,
    decide_work,
    when_done,
)
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import SHANGHAI, Event
from shared.events.visits import ProblemNote

C = "bairuijing"
MORNING = datetime(2025, 4, 14, 8, 30, tzinfo=SHANGHAI)
#: w-07 owns phase 4 east (buildings p4-b4, p4-b5).
W07 = ActingWorker("w-07", "g-p4-east")
WANG = HouseholdRef("h-p4-b4-2-301", "p4-b4", "g-p4-east", frozenset({"elderly_alone"}), erased=False)
ZHOU = HouseholdRef("h-p4-b4-1-101", "p4-b4", "g-p4-east", frozenset(), erased=False)
NOISY = HouseholdRef("h-p2-b3-1-602", "p2-b3", "g-p2-east", frozenset(), erased=False)
KNOWN = WorkLookups(
    households={h.household_id: h for h in (WANG, ZHOU, NOISY)},
    roles={"pm-12": "sinking_party_member", "pm-13": "direct_party_member", "bl-1": "building_leader"},
    buildings={"p4-b4": {"building_id": "p4-b4", "grid_id": "g-p4-east"}, "p2-b3": {"grid_id": "g-p2-east"}},
)


def knock(household_id: str, **extra: Any) -> LogVisit:
    fields: dict[str, Any] = {"record_id": "v-1", "mode": "priority", "minutes": 20, "at": MORNING, **extra}
    return LogVisit(community=C, household_id=household_id, **fields)


def fold_shifts(events: list[Event], state: ShiftLog | None = None) -> ShiftLog:
    state = state or ShiftLog()
    for e in events:
        state = evolve_shift_log(state, e)
    return state


# ---------------------------------------------------------------- hours in the grid


def test_a_shift_in_the_grid_starts_once_and_ends_with_its_minutes() -> None:
    started = decide_shift_start(ShiftLog(), StartShift(community=C, shift_id="s-0414", at=MORNING), W07)
    assert [e.type for e in started] == ["ShiftStarted"] and started[0].data.grid_id == "g-p4-east"
    log = fold_shifts(started)
    assert log.open_shift_id == "s-0414"

    # The phone sends the start again: nothing changes.  Another start while one is open: 409.
    assert decide_shift_start(log, StartShift(community=C, shift_id="s-0414", at=MORNING), W07) == []
    with pytest.raises(Conflict):
        decide_shift_start(log, StartShift(community=C, shift_id="s-0414b", at=MORNING), W07)

    end = EndShift(community=C, shift_id="s-0414", max_hours=16, at=MORNING + timedelta(hours=6))
    ended = decide_shift_end(log, end, W07)
    assert ended[0].data.minutes == 360
    log = fold_shifts(ended, log)
    assert log.open_shift_id is None
    assert decide_shift_end(log, end, W07) == []  # the same end re-sent


def test_a_forgotten_shift_is_refused_beyond_the_longest_shift_and_cannot_end_before_it_began() -> None:
    log = fold_shifts(decide_shift_start(ShiftLog(), StartShift(community=C, shift_id="s-1", at=MORNING), W07))
    with pytest.raises(ShiftTooLong) as too_long:
        decide_shift_end(
            log, EndShift(community=C, shift_id="s-1", max_hours=16, at=MORNING + timedelta(hours=20)), W07
        )
    assert too_long.value.field == "occurred_at"
    with pytest.raises(Invalid):
        decide_shift_end(log, EndShift(community=C, shift_id="s-1", max_hours=16, at=MORNING - timedelta(hours=1)), W07)
    with pytest.raises(Conflict):
        decide_shift_end(log, EndShift(community=C, shift_id="s-other", max_hours=16, at=MORNING), W07)


def test_work_is_logged_when_it_was_done_within_thirty_days_and_not_in_the_future() -> None:
    now = MORNING
    assert when_done(None, now, skew_seconds=300, max_days=30) == now
    assert when_done(now + timedelta(minutes=2), now, skew_seconds=300, max_days=30) == now + timedelta(minutes=2)
    for at in (now + timedelta(minutes=10), now - timedelta(days=31)):
        with pytest.raises(Invalid) as refused:
            when_done(at, now, skew_seconds=300, max_days=30)
        assert refused.value.field == "occurred_at"


# ---------------------------------------------------------------- knocks on doors


def test_a_priority_knock_on_an_elderly_resident_living_alone_is_a_special_assistance_visit() -> None:
    plan = decide_work(KNOWN, knock(WANG.household_id), W07)
    (event,) = plan.events
    assert event.type == "VisitLogged" and event.aggregate_id == "v-1" and event.occurred_at == MORNING
    assert event.data.special_assistance is True and plan.info == {"special_assistance": True}
    # An ordinary family is not, unless the worker says so.
    assert decide_work(KNOWN, knock(ZHOU.household_id), W07).info == {"special_assistance": False}
    assert decide_work(KNOWN, knock(ZHOU.household_id, special_assistance=True), W07).info["special_assistance"]


def test_the_same_visit_decided_twice_is_the_same_event_so_a_re_send_lands_once() -> None:
    first = decide_work(KNOWN, knock(WANG.household_id), W07).events[0]
    again = decide_work(KNOWN, knock(WANG.household_id), W07).events[0]
    assert first.id == again.id


def test_the_late_night_microphone_is_noted_on_the_visit_for_the_issues_service() -> None:
    # w-02 owns phase 2 east; the noise complaint comes with the knock on 602.
    w02 = ActingWorker("w-02", "g-p2-east")
    noise = ProblemNote(category="conflicts_disputes", subcategory="noise", description="late-night microphone")
    plan = decide_work(KNOWN, knock(NOISY.household_id, mode="regular", problems=(noise,)), w02)
    assert plan.events[0].data.problems == [noise]


def test_a_grid_worker_knocks_only_in_their_own_grid_and_on_registered_doors() -> None:
    with pytest.raises(Forbidden) as elsewhere:
        decide_work(KNOWN, knock(NOISY.household_id), W07)
    assert elsewhere.value.field == "household_id"
    with pytest.raises(NotFound):
        decide_work(KNOWN, knock("h-nobody"), W07)


# ---------------------------------------------------------------- sessions and councils


def session(*present: str) -> HoldSession:
    return HoldSession(
        community=C, record_id="f-2025w16", station="四期党群服务驿站", party_members_present=present, at=MORNING
    )


def test_the_friday_session_counts_for_the_weekly_quota_only_with_a_party_member() -> None:
    assert decide_work(KNOWN, session("pm-12"), W07).info == {"counts_for_quota": True}
    assert decide_work(KNOWN, session(), W07).info == {"counts_for_quota": False}  # recorded all the same
    with pytest.raises(Invalid) as not_a_member:
        decide_work(KNOWN, session("pm-12", "bl-1"), W07)  # the building leader is not a party member
    assert not_a_member.value.field == "party_members_present[1]"


def test_a_building_council_is_held_in_a_building_of_the_workers_grid() -> None:
    council = HoldCouncil(
        community=C, record_id="c-p4-b4-202503", building_id="p4-b4", party_members=("pm-12",), at=MORNING
    )
    assert decide_work(KNOWN, council, W07).events[0].type == "BuildingCouncilHeld"
    with pytest.raises(Forbidden):
        decide_work(KNOWN, HoldCouncil(community=C, record_id="c-2", building_id="p2-b3", at=MORNING), W07)
    with pytest.raises(NotFound):
        decide_work(KNOWN, HoldCouncil(community=C, record_id="c-3", building_id="p9-b9", at=MORNING), W07)


def test_a_talent_may_be_found_outside_any_household() -> None:
    marathon = DiscoverTalent(community=C, record_id="t-1", field="culture_sports", at=MORNING)
    assert decide_work(KNOWN, marathon, W07).events[0].type == "TalentDiscovered"


# ---------------------------------------------------------------- volunteer points (志愿服务换积分)


def test_the_dog_walking_patrol_earns_points_that_are_never_overspent() -> None:
    patrol = LogVolunteerService(
        community=C,
        record_id="svc-1",
        household_id=WANG.household_id,
        activity="staggered dog-walking patrol",
        hours=2,
        points_per_hour=10,
        at=MORNING,
    )
    account = VolunteerAccount()
    for e in decide_volunteer(account, patrol, "w-07"):
        account = evolve_volunteer(account, e)
    assert account.balance == 20  # 2 h × 10 points, none given
    assert decide_volunteer(account, patrol, "w-07") == []  # the same service credited once

    def redeem(record_id: str, points: int) -> RedeemPoints:
        return RedeemPoints(
            community=C, record_id=record_id, household_id=WANG.household_id, points=points, item="leash", at=MORNING
        )

    with pytest.raises(InsufficientPoints) as short:
        decide_volunteer(account, redeem("r-1", 25), "w-07")
    assert short.value.extra == {"balance": 20}
    for e in decide_volunteer(account, redeem("r-1", 15), "w-07"):
        account = evolve_volunteer(account, e)
    assert account.balance == 5 and decide_volunteer(account, redeem("r-1", 15), "w-07") == []
