"""The item formula: how a day's knocks and hours become met items and points, and how the score a
board shows is the sum of the items that explain it."""

from __future__ import annotations

import pytest

from services.scoring.domain import score_period
from services.scoring.settings import load_rulebooks

BOOKS = load_rulebooks()
FIVE = BOOKS["5plus1"]


@pytest.mark.parametrize(
    ("minutes", "actual", "met"),
    [(299, 4.983333, False), (300, 5.0, True), (301, 5.016667, True)],
)
def test_five_hours_in_the_grid_are_met_from_the_three_hundredth_minute(minutes: int, actual: float, met: bool) -> None:
    hours = FIVE.item("hours")
    assert hours is not None
    result = hours.evaluate(minutes, 0)
    assert (result.target, result.actual, result.met, result.points) == (5.0, actual, met, 1.0 if met else 0.0)


def test_a_day_off_carries_no_target_however_much_was_done() -> None:
    households = FIVE.item("households")
    assert households is not None
    result = households.evaluate(8, 0, scored=False)
    assert (result.target, result.actual, result.met, result.points) == (None, 8.0, False, 0.0)


@pytest.mark.parametrize(("yes", "met"), [(8, False), (9, True), (10, True)])
def test_the_satisfaction_rate_counts_from_nine_in_ten(yes: int, met: bool) -> None:
    rate = FIVE.item("satisfaction_rate")
    assert rate is not None
    result = rate.evaluate(yes, 10)
    assert (result.actual, result.met) == (yes / 10, met)
    assert rate.evaluate(0, 0).actual == 0.0  # nobody asked yet: a rate of 0, not a division by zero


@pytest.mark.parametrize("book", sorted(BOOKS))
@pytest.mark.parametrize("step", [-1, 0, 1])
def test_a_workers_score_is_the_sum_of_the_items_that_explain_it(book: str, step: int) -> None:
    rulebook = BOOKS[book]
    for kind in rulebook.kinds():
        items = rulebook.items_of(kind)
        # Every item one step under, at or over its target (rates: tenths around it).
        numbers = {
            i.id: ((i.target + step / 10) * 10, 10.0) if i.measure == "rate" else ((i.target + step) * i.divisor, 0.0)
            for i in items
        }
        score = score_period(rulebook, kind, numbers, scored=True)
        assert [r.item for r in score.items] == [i.id for i in items]
        assert score.points == round(sum(r.points for r in score.items), 6)
        for item, result in zip(items, score.items, strict=True):
            assert result.met == (step >= 0)
            assert result.points == (item.points if step >= 0 else 0.0)
