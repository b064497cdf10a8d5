"""The scoring calendar: China's working days (调休 included), Monday–Sunday weeks due Friday, Shanghai days."""

from __future__ import annotations

from datetime import date

import pytest

from services.scoring.domain.calendar import (
    calendar_known,
    day_info,
    is_workday,
    parse_period,
    period_of,
    periods_between,
    working_days,
)
from shared.events import shanghai_day_key


def test_national_day_2025_and_its_adjusted_workdays() -> None:
    assert not any(is_workday(date(2025, 10, d)) for d in range(1, 9))  # National Day + Mid-autumn
    assert is_workday(date(2025, 9, 28)) and is_workday(date(2025, 10, 11))  # Sunday and Saturday 调休
    assert working_days(date(2025, 10, 1), date(2025, 10, 31)) == 18
    assert day_info("2025-10-11").workday and not day_info("2025-10-12").workday


def test_period_keys_and_bounds() -> None:
    d = date(2025, 10, 9)
    week = period_of("week", d)
    assert (week.key, week.start, week.end, week.due) == (
        "2025-W41",
        date(2025, 10, 6),
        date(2025, 10, 12),
        date(2025, 10, 10),
    )
    assert period_of("month", d).key == "2025-10" and period_of("quarter", d).key == "2025-Q4"
    assert period_of("year", d).due == date(2025, 12, 31)
    # Around New Year the ISO week belongs to the year of its Thursday; its Friday is what counts as due.
    assert period_of("week", date(2024, 12, 31)).key == "2025-W01"
    for key in ("2025-10-09", "2025-W41", "2025-10", "2025-Q4", "2025"):
        assert parse_period(key).key == key
    assert [p.key for p in periods_between("week", date(2025, 9, 29), date(2025, 10, 31))] == [
        "2025-W40",
        "2025-W41",
        "2025-W42",
        "2025-W43",
        "2025-W44",
    ]
    assert period_of("day", d).ends_at.isoformat() == "2025-10-10T00:00:00+08:00"


@pytest.mark.parametrize("bad", ["2025-13", "2025-02-30", "2025-W54", "2025-Q5", "Oct 2025", ""])
def test_a_bad_period_key_says_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"2025-10-09|not a real"):
        parse_period(bad)


def test_work_counts_on_the_shanghai_day_it_happened() -> None:
    assert shanghai_day_key("2025-10-09T23:30:00+08:00") == "2025-10-09"
    assert shanghai_day_key("2025-10-09T16:30:00+00:00") == "2025-10-10"  # a phone stamping UTC
    assert shanghai_day_key("2025-10-09T16:30:00Z") == "2025-10-10"


def test_years_without_an_official_schedule_fall_back_to_monday_to_friday() -> None:
    assert calendar_known(2025)
    assert not calendar_known(2031)
    assert is_workday(date(2031, 3, 3)) and not is_workday(date(2031, 3, 1))
