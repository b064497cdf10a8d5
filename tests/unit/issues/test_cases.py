"""The four cases of DOMAIN.md, told to the issue aggregate alone: decide and evolve, no servers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.issues.domain import (
    AcceptIssue,
    ApplyEscalationRules,
    AssignIssue,
    CloseIssue,
    CommandMeta,
    EscalateIssue,
    IssueState,
    MarkOverdue,
    ReceiveHotlineOrder,
    RecordResidentCallback,
    ReopenIssue,
    ReportIssue,
    ResolveIssue,
    Timer,
    VerifyIssue,
    decide,
    evolve,
    fold,
    initial_state,
    timer_for_level,
)
from services.issues.domain.hotline import already_answered, feedback_for, order_issue_id
from services.issues.domain.open311 import status_notes, status_of
from services.issues.rules_files import load_catalogue, load_policy
from services.issues.settings import HERE
from shared.errors import Invalid
from shared.events import SHANGHAI, Event, Place

POLICY = load_policy(HERE / "escalation.toml")
CATALOGUE = load_catalogue(HERE / "categories.toml")
LATE_NIGHT = datetime(2025, 4, 14, 23, 40, tzinfo=SHANGHAI)
MORNING = datetime(2025, 4, 15, 9, 0, tzinfo=SHANGHAI)


class Story:
    """One issue's history, told command by command; keeps every event the aggregate decided."""

    def __init__(self) -> None:
        self.state: IssueState = initial_state()
        self.events: list[Event] = []

    def tell(self, command: object, *, at: datetime = MORNING, actor: str = "w07") -> list[Event]:
        events = decide(self.state, command, CommandMeta("bairuijing", actor, at), policy=POLICY)
        self.state = fold(events, self.state)
        self.events += events
        return events


def test_night_time_noise_goes_to_the_police_and_ends_in_soundproofing() -> None:
    story = Story()
    story.tell(
        ReportIssue(
            issue_id="noise-1",
            category="conflicts_disputes",
            subcategory="noise",
            severity="high",
            description="a resident shouts into a microphone late at night; neighbours above and below complain",
            place=Place(compound="bairuijing", phase="2", building="7", grid="phase2-east"),
        ),
        at=LATE_NIGHT,
    )
    [escalated] = story.tell(ApplyEscalationRules(), at=LATE_NIGHT, actor="issues-rules")
    assert (escalated.data.to_level, escalated.data.target, escalated.data.rule) == (
        "community",
        "police",
        "night_conflict_to_police",
    )
    assert story.tell(ApplyEscalationRules(), actor="issues-rules") == []  # a rule applies once
    story.tell(AcceptIssue())
    story.tell(AssignIssue("police", "zhongnan-road-station", "the grid worker goes with the officer"))
    story.tell(ResolveIssue("explained the Noise Pollution Prevention and Control Law; soundproofing agreed"))
    story.tell(VerifyIssue("worker", True, 5))
    story.tell(CloseIssue())
    state = story.state
    assert (state.status, state.level, state.target, state.rules_applied) == (
        "closed",
        "community",
        "police",
        ["night_conflict_to_police"],
    )
    assert [step.reason for step in state.escalations] == ["rule"]
    assert state.revision == len(story.events)


def test_the_same_noise_by_day_stays_in_the_building() -> None:
    story = Story()
    story.tell(ReportIssue(issue_id="noise-2", category="conflicts_disputes", severity="high", description="noise"))
    assert story.tell(ApplyEscalationRules()) == []
    assert (story.state.level, story.state.target) == ("building", None)


def test_stairwell_clutter_comes_back_until_the_building_clears_it_itself() -> None:
    story = Story()
    story.tell(
        ReportIssue(
            issue_id="clutter-1",
            category="safety_hazards",
            subcategory="stairwell_clutter",
            description="boxes, bikes and old furniture in the stairwell: a fire risk",
            place=Place(compound="bairuijing", phase="4", building="4"),
        )
    )
    [escalated] = story.tell(ApplyEscalationRules(), actor="issues-rules")
    assert (escalated.data.to_level, escalated.data.target) == ("compound", "property_management")
    story.tell(AcceptIssue())
    for _ in range(2):  # property management cleaned it many times, but it came back
        story.tell(AssignIssue("property_management", "pm-bairuijing"))
        story.tell(ResolveIssue("cleared by the cleaning team"))
        story.tell(ReopenIssue("the clutter is back"))
    story.tell(AssignIssue("building_leader", "uncle-zhang", "party members and volunteers from the group chat"))
    story.tell(ResolveIssue("owners found door to door; cleared; a resident patrol reports in real time"))
    story.tell(VerifyIssue("worker", True, 5))
    story.tell(CloseIssue())
    state = story.state
    assert (state.status, state.resolutions, state.reopened) == ("closed", 3, 2)
    assert [a.kind for a in state.assignees] == ["property_management", "property_management", "building_leader"]


def test_dog_conflicts_from_12345_close_on_the_residents_call_back() -> None:
    story = Story()
    order_no = "GD2025041500042"
    story.tell(
        ReceiveHotlineOrder(
            order_no=order_no,
            issue_id=order_issue_id(order_no),
            request="dogs off the lead in the compound; owners and neighbours quarrel",
            category="conflicts_disputes",
            subcategory="pets",
            response_deadline=MORNING + timedelta(hours=2),
            resolution_deadline=MORNING + timedelta(days=3),
        ),
        actor="12345",
    )
    assert (story.state.issue_id, story.state.source, story.state.hotline_order_no) == (
        "hl-GD2025041500042",
        "hotline",
        order_no,
    )
    story.tell(AcceptIssue())
    response = Timer("response", "order", MORNING + timedelta(hours=2))
    assert story.tell(MarkOverdue(response), actor="issues-deadlines") == []  # answered in time
    story.tell(AssignIssue("volunteer_team", "dog-walkers"))
    story.tell(ResolveIssue("staggered dog-walking times; volunteer service earns points"))
    answer = RecordResidentCallback(satisfied=True, satisfaction=5)
    assert not already_answered(story.events, answer)
    story.tell(answer, actor="12345")
    assert story.state.status == "closed"
    assert already_answered(story.events, answer)  # the hotline sent the same answer twice
    assert not already_answered(story.events, RecordResidentCallback(satisfied=False, satisfaction=1))
    reported_back = [change[0] for e in story.events if (change := feedback_for(e)) is not None]
    assert reported_back == ["accepted", "assigned", "resolved", "verified", "closed"]


def test_an_unhappy_call_back_reopens_the_work_order() -> None:
    story = Story()
    story.tell(
        ReceiveHotlineOrder(
            order_no="GD1",
            issue_id=order_issue_id("GD1"),
            request="barking dog",
            category="conflicts_disputes",
            response_deadline=MORNING,
            resolution_deadline=MORNING + timedelta(days=3),
        )
    )
    story.tell(AcceptIssue())
    story.tell(AssignIssue("worker", "w07"))
    story.tell(ResolveIssue("talked to the owner"))
    story.tell(RecordResidentCallback(satisfied=False, satisfaction=2, note="still barks at night"))
    assert (story.state.status, story.state.last_note) == (
        "reopened",
        "resident not satisfied on the 12345 call-back: still barks at night",
    )


def test_public_area_planning_from_a_building_council_waits_at_the_building() -> None:
    story = Story()
    story.tell(
        ReportIssue(
            issue_id="council-7-p0",
            category="public_facilities",
            subcategory="public_area_planning",
            description="rules for the compound's shared areas, tried first in one building",
            source="council",
            caused_by_visit="council-7",
            place=Place(compound="bairuijing", phase="1", building="3"),
        )
    )
    assert story.tell(ApplyEscalationRules()) == []  # no rule: the building and its council handle it
    timer = timer_for_level(POLICY, "public_facilities", "medium", "building", MORNING)
    assert timer is not None and timer.due_at == MORNING + timedelta(hours=48)
    overdue, climbed = story.tell(MarkOverdue(timer), at=timer.due_at, actor="issues-deadlines")
    assert (overdue.type, climbed.data.reason, climbed.data.to_level) == ("IssueOverdue", "overdue", "compound")
    assert story.state.level == "compound" and not story.state.overdue  # a fresh level, a fresh clock


def test_evolve_records_who_reported_what_and_where() -> None:
    [reported] = decide(
        initial_state(),
        ReportIssue(
            issue_id="i1",
            category="safety_hazards",
            subcategory="ebike_charging",
            severity="high",
            description="e-bike charged in the corridor",
            place=Place(compound="bairuijing", phase="4", building="4", unit="2"),
            reported_by="w12",
        ),
        CommandMeta("bairuijing", "w12", MORNING),
        policy=POLICY,
    )
    state = evolve(initial_state(), reported)
    assert (state.issue_id, state.community, state.status, state.revision) == ("i1", "bairuijing", "reported", 1)
    assert (state.category, state.subcategory, state.severity, state.place.unit) == (
        "safety_hazards",
        "ebike_charging",
        "high",
        "2",
    )
    assert (state.reported_by, state.reported_at, state.updated_at) == ("w12", MORNING, MORNING)


def test_a_handover_at_the_same_level_keeps_the_overdue_mark() -> None:
    story = Story()
    story.tell(ReportIssue(issue_id="i2", category="environmental_sanitation", description="garbage"))
    story.tell(EscalateIssue("to the top", to_level="street"))
    story.tell(MarkOverdue(Timer("level", "street", MORNING)))
    assert story.state.overdue  # nowhere left to climb: the mark stays
    story.tell(EscalateIssue("urban management takes it", target="urban_management"))
    assert (story.state.level, story.state.target, story.state.overdue) == ("street", "urban_management", True)


@pytest.mark.parametrize(
    ("status", "open311"),
    [
        ("reported", "open"),
        ("accepted", "open"),
        ("assigned", "open"),
        ("reopened", "open"),
        ("resolved", "open"),
        ("verified", "closed"),
        ("closed", "closed"),
        ("merged", "closed"),
    ],
)
def test_open311_shows_open_until_the_resident_is_satisfied(status: str, open311: str) -> None:
    assert status_of(IssueState(issue_id="i", status=status)) == open311


def test_open311_status_notes_say_where_an_open_case_stands() -> None:
    state = IssueState(issue_id="i", status="accepted", level="community", target="police", overdue=True)
    assert status_notes(state) == (
        "Accepted by the community (受理). Handled at community level with Community police station (派出所). Overdue."
    )


def test_the_catalogue_refuses_a_subcategory_of_another_category() -> None:
    CATALOGUE.check("safety_hazards", "stairwell_clutter")
    CATALOGUE.check("safety_hazards", None)
    with pytest.raises(Invalid) as err:
        CATALOGUE.check("safety_hazards", "noise")
    assert err.value.field == "subcategory" and "stairwell_clutter" in err.value.message
