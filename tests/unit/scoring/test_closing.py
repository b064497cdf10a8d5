"""Closing a grid worker's period: said once when it ends, corrected openly when late work arrives."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import reduce

from services.scoring.domain import ClosePeriod, QuotaPeriod, RuleSet, decide, evolve
from services.scoring.domain.calendar import parse_period
from services.scoring.domain.closing import closing_window, ended_periods, quota_aggregate_id
from services.scoring.settings import load_rulebooks
from shared.events import SHANGHAI, Event
from shared.events.scoring import PointsAwarded, QuotaPeriodClosed

BOOKS = load_rulebooks()
RULES = RuleSet(BOOKS)
FIVE = BOOKS["5plus1"]
WEEK_46 = parse_period("2025-W46")  # Monday 10 – Sunday 16 November 2025, due Friday the 14th
WEDNESDAY = parse_period("2025-11-12")


def _close(numbers: dict[str, tuple[float, float]], *, period=WEEK_46, moved: bool = True, book=FIVE) -> ClosePeriod:
    return ClosePeriod("bairuijing", "w07", period, book, numbers, moved=moved)


def _fold(events: list[Event], state: QuotaPeriod | None = None) -> QuotaPeriod:
    return reduce(evolve, events, state or QuotaPeriod())


def test_a_week_without_the_face_to_face_session_closes_once_with_no_points() -> None:
    events = decide(QuotaPeriod(), _close({}))
    [closed] = events  # nothing earned: no PointsAwarded
    assert isinstance(closed, QuotaPeriodClosed)
    assert closed.aggregate_id == "w07-2025-W46" and closed.occurred_at == WEEK_46.ends_at
    d = closed.data
    assert (d.revision, d.points, d.rulebook, d.rulebook_version, d.correction) == (1, 0.0, "5plus1", 1, None)
    assert [(i.item, i.target, i.actual, i.met, i.label) for i in d.items] == [
        ("face_to_face", 1.0, 0.0, False, "residents face-to-face session with a party member")
    ]
    # Folded back, the period is closed: deciding again changes nothing.
    assert decide(_fold(events), _close({}, moved=False)) == []
    assert decide(_fold(events), _close({})) == []  # moved, but to the same result


def test_a_day_of_work_closes_with_its_points_awarded_beside_it() -> None:
    numbers = {"hours": (300.0, 0.0), "households": (5.0, 0.0), "special_visit": (1.0, 0.0)}
    closed, awarded = decide(QuotaPeriod(), _close(numbers, period=WEDNESDAY))
    assert isinstance(closed, QuotaPeriodClosed) and isinstance(awarded, PointsAwarded)
    assert {i.item: i.met for i in closed.data.items} == {
        "hours": True,
        "households": True,
        "problem": False,
        "special_visit": True,
    }
    assert closed.data.points == 3.0
    assert (awarded.data.kind, awarded.data.points, awarded.data.revision, awarded.data.period_key) == (
        "quota",
        3.0,
        1,
        "2025-11-12",
    )
    assert awarded.aggregate_id == "w07-2025-11-12-r1"
    # A rerun (a crash, a second replica) decides the very same events: the store sees duplicates.
    assert [e.id for e in decide(QuotaPeriod(), _close(numbers, period=WEDNESDAY))] == [closed.id, awarded.id]


def test_a_late_offline_session_reopens_the_week_as_revision_2_and_awards_the_difference() -> None:
    first = decide(QuotaPeriod(), _close({}))
    week = _fold(first)
    # Monday morning the phone syncs Friday's session with a sinking party member.
    correction = decide(week, _close({"face_to_face": (1.0, 0.0)}))
    closed, awarded = correction
    assert isinstance(closed, QuotaPeriodClosed) and isinstance(awarded, PointsAwarded)
    d = closed.data
    assert (d.revision, d.correction, d.previous_points, d.points, d.changed_items) == (
        2,
        "late_event",
        0.0,
        2.0,
        ["face_to_face"],
    )
    assert closed.aggregate_id == first[0].aggregate_id  # the same aggregate, one version on
    assert (awarded.data.points, awarded.data.revision) == (2.0, 2)
    assert "correction, revision 2" in awarded.data.reason
    corrected = _fold(correction, week)
    assert (corrected.revision, corrected.points, corrected.awarded_points) == (2, 2.0, 2.0)
    assert decide(corrected, _close({"face_to_face": (1.0, 0.0)})) == []  # and it stays corrected


def test_a_new_rulebook_version_rescores_a_closed_period_even_with_the_same_numbers() -> None:
    week = _fold(decide(QuotaPeriod(), _close({})))
    v2 = FIVE.model_copy(update={"version": 2})
    [closed] = decide(week, _close({}, book=v2))
    assert isinstance(closed, QuotaPeriodClosed)
    assert (closed.data.revision, closed.data.correction, closed.data.rulebook_version) == (2, "rescored", 2)
    assert closed.data.changed_items == []  # the items say the same; the book that scored them changed


def test_points_never_awarded_after_a_crash_are_awarded_on_the_next_run() -> None:
    closed, _award = decide(QuotaPeriod(), _close({"face_to_face": (1.0, 0.0)}))
    week = _fold([closed])  # the closing was stored, the process died before the award
    [awarded] = decide(week, _close({"face_to_face": (1.0, 0.0)}, moved=False))
    assert isinstance(awarded, PointsAwarded) and (awarded.data.points, awarded.data.revision) == (2.0, 1)
    assert awarded.id == _award.id  # the award it would have appended then


def test_the_points_awarded_add_up_to_the_items_of_the_last_closing() -> None:
    # Score and explanation agree: a closing's points are its items' points, and the awards across
    # revisions (each a delta) add up to the latest revision's points.
    history: list[Event] = []
    state = QuotaPeriod()
    for folded in ({"hours": (200.0, 0.0)}, {"hours": (320.0, 0.0), "households": (5.0, 0.0)}, {"hours": (320.0, 0.0)}):
        events = decide(state, _close(folded, period=WEDNESDAY))
        history += events
        state = _fold(events, state)
    closings = [e for e in history if isinstance(e, QuotaPeriodClosed)]
    assert [c.data.revision for c in closings] == [1, 2, 3]
    for c in closings:
        assert c.data.points == sum(i.points for i in c.data.items)
    awards = [e.data.points for e in history if isinstance(e, PointsAwarded)]
    assert awards == [2.0, -1.0]  # revision 1 earned nothing; 2 earned 2; 3 lost the households
    assert sum(awards) == closings[-1].data.points == state.awarded_points == 1.0


def test_only_ended_working_periods_after_the_worker_joined_are_closed() -> None:
    now = datetime(2025, 11, 17, 0, 30, tzinfo=SHANGHAI)  # Monday 00:30: week 46 is over
    window = closing_window(now, grace=timedelta(0), lookback_days=20)
    roster = [("bairuijing", "w07", date(2025, 10, 20)), ("bairuijing", "w09", date(2025, 11, 5))]
    ended = ended_periods(roster, RULES, window)
    w07 = {k[2] for k in ended if k[1] == "w07"}
    w09 = {k[2] for k in ended if k[1] == "w09"}
    assert {"2025-10-28", "2025-11-14", "2025-W45", "2025-W46", "2025-10"} <= w07
    assert "2025-10-27" not in w07  # before the lookback window
    assert "2025-11-15" not in w07  # Saturday: no daily quota, nothing to close
    assert not {"2025-11-17", "2025-W47", "2025-11", "2025-Q4"} & w07  # still running
    assert "2025-11-05" in w09 and not {"2025-11-04", "2025-10", "2025-W44"} & w09  # before w09 joined
    late = closing_window(now, grace=timedelta(hours=1), lookback_days=20)
    assert "2025-W46" not in {k[2] for k in ended_periods(roster, RULES, late)}  # ended less than an hour ago


def test_a_worker_id_that_is_no_subject_token_gets_a_hashed_aggregate_id() -> None:
    assert quota_aggregate_id("w07", "2025-W46") == "w07-2025-W46"
    odd = quota_aggregate_id("张 敏", "2025-W46")
    assert odd.startswith("w") and odd.endswith("-2025-W46") and " " not in odd
