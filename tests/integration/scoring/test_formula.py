"""One formula for every score: what PostgreSQL computes as the fold adds evidence is what a worker's
progress and a closed period say — item by item, just under, at and over each target.

The projection's generated columns (``actual``, ``met``, ``points``) are rendered from the same
``item_formula`` that ``Item.evaluate`` runs; this folds real events covering every measure
(count, sum, distinct, rate) and every period (day to year) of the 5+1 rulebook and checks the
two agree on every row, and that a worker's score on the board is the sum of the items their
progress explains it with.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime

from services.scoring.domain.calendar import is_workday
from services.scoring.settings import load_rulebooks
from shared.events import Event
from shared.events.visits import (
    ResidentBefriended,
    ResidentBefriendedData,
    TalentDiscovered,
    TalentDiscoveredData,
)
from tests.integration.scoring.conftest import (
    at,
    council,
    issue,
    session,
    shift,
    survey,
    training,
    visit,
    worker,
)

WEDNESDAY = "2025-11-12"  # a working day: the day items carry a target
SATURDAY = "2025-11-15"  # a day off: the day items carry none
CATEGORIES = ("public_facilities", "environmental_sanitation", "safety_hazards", "conflicts_disputes")
_ids = itertools.count(1)


def befriended(worker_id: str, friend: str, when: datetime) -> Event:
    return ResidentBefriended.new(
        community="bairuijing",
        aggregate_id=f"rf{next(_ids)}",
        actor=worker_id,
        occurred_at=when,
        data=ResidentBefriendedData(friend_id=friend, worker_id=worker_id, household_id=f"{friend}-home"),
    )


def talent(worker_id: str, talent_id: str, when: datetime) -> Event:
    return TalentDiscovered.new(
        community="bairuijing",
        aggregate_id=f"td{next(_ids)}",
        actor=worker_id,
        occurred_at=when,
        data=TalentDiscoveredData(talent_id=talent_id, worker_id=worker_id, field="repairs"),
    )


def _work(w: str, step: int) -> list[Event]:
    """A worker's evidence, each item ``step`` away from its target (-1 under, 0 at, +1 over)."""
    day = WEDNESDAY
    events: list[Event] = [shift(w, at(day, 8), 300 + step)]  # 5 h = 300 minutes (sum ÷ 60)
    events += [visit(w, f"{w}-h{k}", at(day, 9, k)) for k in range(5 + step)]  # distinct households
    events += [visit(w, f"{w}-s{k}", at(day, 10, k), special=True) for k in range(1 + step)]
    events += [issue(w, CATEGORIES[k % 4], at(day, 11, k), issue_id=f"{w}-i{k}") for k in range(1 + step)]
    events += [session(w, at("2025-11-14", 16, k), ["pm-li"]) for k in range(1 + step)]  # weekly count
    # Monthly: distinct categories (5 is every category: "over" is impossible) and council meetings.
    events += [issue(w, c, at("2025-11-03", 9), issue_id=f"{w}-m{c}") for c in CATEGORIES]
    if step >= 0:
        events.append(issue(w, "livelihood_services", at("2025-11-03", 10), issue_id=f"{w}-mlive"))
    events += [council(w, at("2025-11-20", 19, k)) for k in range(1 + step)]
    # Quarterly: distinct friends and trainings.  Yearly: distinct talents, a count of surveys, and rates.
    events += [befriended(w, f"{w}-f{k}", at("2025-10-20", 15, k)) for k in range(5 + step)]
    events += [training(w, f"tr-{k}", at("2025-10-21", 14, k)) for k in range(1 + step)]
    events += [talent(w, f"{w}-t{k}", at("2025-06-01", 10, k)) for k in range(5 + step)]
    # Ten answers: 8, 9 or 10 of them yes — the rates 0.8, 0.9 (the target exactly) and 1.0.
    yes = 9 + step
    events += [
        survey(f"{w}-h{k}", w, at("2025-09-01", 9, k), visited=k < yes, knows=k < yes, satisfaction=4 if k < yes else 3)
        for k in range(10)
    ]
    # A day off: the same five households carry no target, so nothing is met however much is done.
    events += [visit(w, f"{w}-sat{k}", at(SATURDAY, 9, k)) for k in range(5)]
    return events


async def _fold_three_workers(scoring) -> None:
    """w-under, w-at and w-over: every item one step under, at and one step over its target."""
    assert is_workday(date.fromisoformat(WEDNESDAY)) and not is_workday(date.fromisoformat(SATURDAY))
    workers = {"w-under": -1, "w-at": 0, "w-over": 1}
    await scoring.append(*(worker(w) for w in workers))
    await scoring.folded(await scoring.append(*(e for w, step in workers.items() for e in _work(w, step))))


async def test_every_score_the_fold_computes_is_what_the_rulebook_says(scoring) -> None:
    book = load_rulebooks()["5plus1"]
    await _fold_three_workers(scoring)

    rows = await scoring.pool.fetch(
        "SELECT worker_id, period_key, item, num, den, target, actual, met, points FROM proj_scoring.quota_item"
    )
    seen: dict[str, set[tuple[bool, bool]]] = {}
    for r in rows:
        item = book.item(r["item"])
        assert item is not None, r["item"]
        expected = item.evaluate(r["num"], r["den"], scored=r["target"] is not None)
        where = f"{r['worker_id']} {r['period_key']} {r['item']} num={r['num']} den={r['den']}"
        assert (r["target"], round(r["actual"], 6), r["met"], r["points"]) == (
            expected.target,
            expected.actual,
            expected.met,
            expected.points,
        ), where
        seen.setdefault(item.id, set()).add((r["target"] is not None, r["met"]))

    # Every item of the rulebook was folded, and met; each one that can be missed with evidence was
    # also missed (a target of 1 cannot: one piece of evidence meets it), and a day off scores nothing.
    assert set(seen) == {i.id for i in book.items}
    assert all((True, True) in outcomes for outcomes in seen.values())
    for item_id in ("hours", "households", "five_categories", "resident_friends", "talents", "visit_rate"):
        assert (True, False) in seen[item_id], item_id
    assert (False, False) in seen["households"]
    rates = {(r["worker_id"], r["item"]): r["actual"] for r in rows if r["item"].endswith("_rate")}
    assert rates[("w-under", "visit_rate")] == 0.8 and rates[("w-at", "satisfaction_rate")] == 0.9


async def test_a_workers_score_is_the_sum_of_the_items_that_explain_it(scoring) -> None:
    await _fold_three_workers(scoring)

    board = await scoring.get(f"/v1/communities/bairuijing/board?period={WEDNESDAY}&as_of={WEDNESDAY}")
    for row in board["workers"]:
        progress = await scoring.get(
            f"/v1/communities/bairuijing/workers/{row['worker_id']}/progress?at={WEDNESDAY}T20:00:00%2B08:00",
            role="ops",
        )
        today = next(p for p in progress["periods"] if p["period"] == "day")
        assert row["quota_points"] == today["points"] == sum(i["points"] for i in today["items"])
        assert row["items_met"] == sum(i["met"] for i in today["items"] if not i["indicator"])
    # w-under's 4.98 h and 4 households miss, and it had no problem or special visit that day.
    assert {w["worker_id"]: w["quota_points"] for w in board["workers"]} == {"w-under": 0.0, "w-at": 4.0, "w-over": 4.0}
