"""The issue aggregate without I/O: every command against every state, rules, deadlines, timers."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.issues.domain import (
    AcceptIssue,
    ApplyEscalationRules,
    AssignIssue,
    CloseIssue,
    CommandMeta,
    EscalateIssue,
    EscalateUnacknowledged,
    IllegalTransition,
    IssueState,
    MarkOverdue,
    MergeIssue,
    ReceiveHotlineOrder,
    RecordHotlineFeedback,
    RecordResidentCallback,
    ReopenIssue,
    ReportIssue,
    ResolveIssue,
    Timer,
    VerifyIssue,
    decide,
    fold,
    initial_state,
    same_effect,
    timer_for_level,
)
from services.issues.domain.catalogue import catalogue_from_dict
from services.issues.domain.policy import PolicyError, parse_duration, policy_from_dict
from services.issues.rules_files import load_catalogue, load_policy
from services.issues.settings import HERE
from shared.errors import Invalid, NotFound
from shared.events import SHANGHAI, Place, uuid7

POLICY = load_policy(HERE / "escalation.toml")
NOON = datetime(2025, 4, 14, 12, 0, tzinfo=SHANGHAI)
NIGHT = datetime(2025, 4, 14, 23, 40, tzinfo=SHANGHAI)


def meta(at: datetime = NOON, actor: str = "w07", key: str | None = None) -> CommandMeta:
    return CommandMeta(community="bairuijing", actor=actor, at=at, key=key)


def run(state: IssueState, *commands: object, at: datetime = NOON) -> IssueState:
    for command in commands:
        state = fold(decide(state, command, meta(at), policy=POLICY), state)
    return state


def reported(
    category: str = "conflicts_disputes", severity: str = "medium", at: datetime = NOON, **extra: object
) -> IssueState:
    return run(
        initial_state(),
        ReportIssue(
            issue_id="i1",
            category=category,
            description="noise",
            severity=severity,
            place=Place(compound="bairuijing", phase="2", building="7"),
            **extra,
        ),
        at=at,
    )


ASSIGN = AssignIssue("worker", "w07")
RESOLVE = ResolveIssue("explained the noise law; soundproofing installed")
SATISFIED = VerifyIssue("worker", True, 5)
UNSATISFIED = VerifyIssue("resident_callback", False, 2, "still noisy")

#: How to bring an issue into each state.
PATHS: dict[str, tuple[object, ...]] = {
    "reported": (),
    "accepted": (AcceptIssue(),),
    "assigned": (AcceptIssue(), ASSIGN),
    "resolved": (AcceptIssue(), ASSIGN, RESOLVE),
    "verified": (AcceptIssue(), ASSIGN, RESOLVE, SATISFIED),
    "reopened": (AcceptIssue(), ASSIGN, RESOLVE, UNSATISFIED),
    "closed": (AcceptIssue(), ASSIGN, RESOLVE, SATISFIED, CloseIssue()),
}
OTHER_OPEN = run(reported(), AcceptIssue()).model_copy(update={"issue_id": "i0"})

#: command name → (command, {state it is legal in: state it leads to}); every other state is a 409.
MATRIX: dict[str, tuple[object, dict[str, str]]] = {
    "accept": (AcceptIssue(), {"reported": "accepted", "reopened": "accepted"}),
    "assign": (ASSIGN, {"accepted": "assigned", "assigned": "assigned", "reopened": "assigned"}),
    "escalate": (
        EscalateIssue("beyond the building", to_level="community"),
        {s: s for s in ("reported", "accepted", "assigned", "reopened")},
    ),
    "resolve": (RESOLVE, {"assigned": "resolved"}),
    "verify_satisfied": (SATISFIED, {"resolved": "verified"}),
    "verify_unsatisfied": (UNSATISFIED, {"resolved": "reopened"}),
    "reopen": (ReopenIssue("it came back"), {"resolved": "reopened", "verified": "reopened", "closed": "reopened"}),
    "close": (CloseIssue(), {"verified": "closed"}),
    "merge": (MergeIssue(OTHER_OPEN), {s: "merged" for s in ("reported", "accepted", "assigned", "reopened")}),
    "callback": (RecordResidentCallback(True, 5), {"resolved": "closed"}),
}


@pytest.mark.parametrize("name", sorted(MATRIX))
@pytest.mark.parametrize("start", [*PATHS, "merged"])
def test_every_command_in_every_state(name: str, start: str) -> None:
    state = run(reported(), *PATHS[start]) if start != "merged" else run(reported(), MergeIssue(OTHER_OPEN))
    assert state.status == start
    command, legal = MATRIX[name]
    if start in legal:
        after = run(state, command)
        assert after.status == legal[start]
        assert after.revision > state.revision
    else:
        with pytest.raises(IllegalTransition) as err:
            decide(state, command, meta(), policy=POLICY)
        assert err.value.extra["current_state"] == start
        assert err.value.extra["version"] == state.revision


def test_commands_on_an_unknown_issue_are_not_found_and_a_second_report_is_illegal() -> None:
    with pytest.raises(NotFound):
        decide(initial_state(), AcceptIssue(), meta(), policy=POLICY)
    with pytest.raises(IllegalTransition):
        decide(
            reported(), ReportIssue(issue_id="i1", category="safety_hazards", description="x"), meta(), policy=POLICY
        )


def test_unsatisfied_verification_reopens_in_the_same_decision() -> None:
    events = decide(run(reported(), *PATHS["resolved"]), UNSATISFIED, meta(), policy=POLICY)
    assert [e.type for e in events] == ["IssueVerified", "IssueReopened"]
    assert "still noisy" in events[1].data.reason


def test_manual_escalation_climbs_the_ladder_and_reaches_agencies() -> None:
    state = reported()
    one = run(state, EscalateIssue("too big for the building"))
    assert (one.level, one.target) == ("compound", None)
    police = run(state, EscalateIssue("late-night noise", target="police"))
    assert (police.level, police.target) == ("community", "police")  # where the police take cases
    street = run(police, EscalateIssue("repeat offender"))
    assert (street.level, street.target) == ("street", "street_office")  # the agency on the street level
    urban = run(street, EscalateIssue("building works at night", target="urban_management"))
    assert (urban.level, urban.target) == ("street", "urban_management")  # re-targeted at the top
    for illegal in (
        EscalateIssue("nowhere left"),
        EscalateIssue("down", to_level="building"),
        EscalateIssue("same agency", target="urban_management"),
    ):
        with pytest.raises(IllegalTransition):
            decide(urban, illegal, meta(), policy=POLICY)
    data = decide(state, EscalateIssue("why", target="police"), meta(), policy=POLICY)[0].data
    assert (data.reason, data.category, data.severity, data.note) == ("manual", "conflicts_disputes", "medium", "why")


def test_rules_on_report_follow_the_policy_file() -> None:
    night_noise = reported(severity="high", at=NIGHT)
    [event] = decide(night_noise, ApplyEscalationRules(), meta(), policy=POLICY)
    assert (event.data.to_level, event.data.target, event.data.reason, event.data.rule) == (
        "community",
        "police",
        "rule",
        "night_conflict_to_police",
    )
    assert decide(fold([event], night_noise), ApplyEscalationRules(), meta(), policy=POLICY) == []  # once
    assert decide(reported(severity="high", at=NOON), ApplyEscalationRules(), meta(), policy=POLICY) == []  # daytime
    assert decide(reported(severity="medium", at=NIGHT), ApplyEscalationRules(), meta(), policy=POLICY) == []
    clutter = decide(reported("safety_hazards", "low"), ApplyEscalationRules(), meta(), policy=POLICY)
    assert (clutter[0].data.to_level, clutter[0].data.target) == ("compound", "property_management")
    closed = run(reported(severity="high", at=NIGHT), EscalateIssue("x", to_level="street"), at=NIGHT)
    assert [e.data.to_level for e in decide(closed, ApplyEscalationRules(), meta(), policy=POLICY)] == [
        "street"
    ]  # re-target only


def test_an_overdue_timer_fires_once_and_only_while_the_issue_waits_at_its_level() -> None:
    state = reported()
    timer = timer_for_level(POLICY, "conflicts_disputes", "medium", "building", NOON)
    assert timer is not None and timer.due_at == NOON + timedelta(hours=48)
    events = decide(state, MarkOverdue(timer), meta(key="t"), policy=POLICY)
    assert [e.type for e in events] == ["IssueOverdue", "IssueEscalated"]
    assert (events[1].data.reason, events[1].data.to_level, events[1].data.timer) == ("overdue", "compound", timer.key)
    again = decide(state, MarkOverdue(timer), meta(key="t"), policy=POLICY)
    assert [e.id for e in again] == [e.id for e in events]  # deterministic ids: the store dedupes a double fire
    after = fold(events, state)
    assert decide(after, MarkOverdue(timer), meta(key="t"), policy=POLICY) == []  # fired already
    assert decide(run(state, EscalateIssue("up")), MarkOverdue(timer), meta(), policy=POLICY) == []  # climbed meanwhile
    assert decide(run(state, *PATHS["resolved"]), MarkOverdue(timer), meta(), policy=POLICY) == []  # solved meanwhile
    top = run(state, EscalateIssue("x", to_level="street"))
    only_mark = decide(top, MarkOverdue(Timer("level", "street", NOON)), meta(), policy=POLICY)
    assert [e.type for e in only_mark] == ["IssueOverdue"]  # nowhere left to climb


def test_work_order_deadlines_and_call_back() -> None:
    order = ReceiveHotlineOrder(
        order_no="GD2025041400123",
        issue_id="hl-GD2025041400123",
        request="barking dog",
        category="conflicts_disputes",
        subcategory="pets",
        response_deadline=NOON,
        resolution_deadline=NOON + timedelta(days=3),
    )
    state = run(initial_state(), order)
    assert (state.status, state.source, state.hotline_order_no) == ("reported", "hotline", "GD2025041400123")
    response = Timer("response", "order", NOON)
    assert [e.type for e in decide(state, MarkOverdue(response), meta(), policy=POLICY)] == [
        "IssueOverdue",
        "IssueEscalated",
    ]
    assert decide(run(state, AcceptIssue()), MarkOverdue(response), meta(), policy=POLICY) == []  # responded in time
    resolution = Timer("resolution", "order", NOON + timedelta(days=3))
    assert (
        decide(run(state, AcceptIssue()), MarkOverdue(resolution), meta(), policy=POLICY) != []
    )  # accepted but not solved
    resolved = run(state, *PATHS["resolved"])
    assert run(resolved, RecordResidentCallback(True, 5)).status == "closed"
    assert run(resolved, RecordResidentCallback(False, 1, "dog still barks")).status == "reopened"
    change = str(uuid7())
    sent = decide(resolved, RecordHotlineFeedback(change, "resolved"), meta(key="f"), policy=POLICY)
    assert str(sent[0].causation_id) == change
    assert decide(fold(sent, resolved), RecordHotlineFeedback(change, "resolved"), meta(key="f"), policy=POLICY) == []
    assert fold(sent, resolved).revision == resolved.revision  # receipts do not move the version
    with pytest.raises(Invalid):
        decide(
            initial_state(),
            ReceiveHotlineOrder(
                order_no="x",
                issue_id="hl-x",
                request="r",
                category="conflicts_disputes",
                response_deadline=NOON,
                resolution_deadline=NOON - timedelta(hours=1),
            ),
            meta(),
            policy=POLICY,
        )


def test_unacknowledged_escalation_climbs_once_per_notification() -> None:
    state = run(reported(), EscalateIssue("x", target="police"))
    [event] = decide(state, EscalateUnacknowledged("n1"), meta(), policy=POLICY)
    assert (event.data.from_level, event.data.to_level, event.data.reason) == ("community", "street", "unacknowledged")
    assert decide(fold([event], state), EscalateUnacknowledged("n1"), meta(), policy=POLICY) == []


def test_merge_checks_the_other_issue() -> None:
    state = reported()
    with pytest.raises(Invalid):
        decide(state, MergeIssue(state), meta(), policy=POLICY)
    with pytest.raises(Invalid):
        decide(
            state, MergeIssue(reported("safety_hazards").model_copy(update={"issue_id": "i9"})), meta(), policy=POLICY
        )
    closed = run(reported(), *PATHS["closed"]).model_copy(update={"issue_id": "i8"})
    with pytest.raises(IllegalTransition):
        decide(state, MergeIssue(closed), meta(), policy=POLICY)


def test_same_effect_ignores_ids_and_times() -> None:
    a = decide(reported(), AcceptIssue(), meta(NOON), policy=POLICY)
    b = decide(reported(), AcceptIssue(), meta(NIGHT), policy=POLICY)
    assert a[0].id != b[0].id and same_effect(a, b)
    assert not same_effect(a, decide(reported(), AcceptIssue(), meta(actor="w08"), policy=POLICY))


def test_policy_files_are_validated(tmp_path: Path) -> None:
    assert parse_duration("90s", "x") == timedelta(seconds=90)
    assert parse_duration("2d", "x") == timedelta(days=2)
    with pytest.raises(PolicyError, match=r"rule\[0\] r.to_level"):
        policy_from_dict({"rule": [{"name": "r", "to_level": "district"}]})
    with pytest.raises(PolicyError, match="deadline"):
        policy_from_dict({"deadline": [{"building": "soon"}]})
    assert POLICY.is_night(NIGHT) and not POLICY.is_night(NOON)
    assert POLICY.deadline("safety_hazards", "high", "building") == timedelta(hours=4)
    assert POLICY.deadline("livelihood_services", "low", "street") == timedelta(days=10)
    catalogue = load_catalogue(HERE / "categories.toml")
    assert catalogue.has("safety_hazards", "stairwell_clutter") and not catalogue.has("safety_hazards", "noise")
    assert {c.code for c in catalogue.categories} == {
        "public_facilities",
        "environmental_sanitation",
        "safety_hazards",
        "conflicts_disputes",
        "livelihood_services",
    }


def test_every_category_carries_a_bilingual_resolution_and_hotline_feedback_template() -> None:
    catalogue = load_catalogue(HERE / "categories.toml")
    for category in catalogue.categories:
        templates = dict(category.templates)
        assert set(templates) == {"resolution", "feedback"}, category.code
        assert all(t.zh and t.en for t in templates.values()), category.code
    raw = tomllib.loads((HERE / "categories.toml").read_text())
    raw["safety_hazards"]["templates"]["apology"] = {"zh": "抱歉", "en": "Sorry"}
    with pytest.raises(PolicyError, match="unknown kinds"):
        catalogue_from_dict(raw)
    raw["safety_hazards"]["templates"] = {"resolution": {"zh": "已处理"}}
    with pytest.raises(PolicyError, match=r"safety_hazards.templates.resolution must have a zh and an en"):
        catalogue_from_dict(raw)
