"""The scoring calendar: periods, working days and the Asia/Shanghai clock.

* Daily quotas count on working days only: China's statutory holidays and the adjusted
  workdays (调休, e.g. Saturday 2025-10-11) come from ``chinese-calendar``.  For years that
  library does not know yet, Monday to Friday are working days (and :func:`calendar_known`
  says so, so the API can flag it).
* Weeks run Monday to Sunday (ISO weeks); the face-to-face session is due on Friday.
* Months, quarters and years are calendar ones.
* Every period is keyed by a short string that is also a valid subject token:
  ``2025-10-09`` (day), ``2025-W41`` (week), ``2025-10`` (month), ``2025-Q4`` (quarter), ``2025``.
* An event counts in the period of the day its work happened, in Asia/Shanghai.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

import chinese_calendar

from shared.events import SHANGHAI

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
KINDS: tuple[PeriodKind, ...] = ("day", "week", "month", "quarter", "year")
FRIDAY = 4

_KEY_PATTERNS: tuple[tuple[PeriodKind, re.Pattern[str]], ...] = (
    ("day", re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")),
    ("week", re.compile(r"^(\d{4})-W(\d{2})$")),
    ("month", re.compile(r"^(\d{4})-(\d{2})$")),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$")),
    ("year", re.compile(r"^(\d{4})$")),
)


@dataclass(frozen=True, slots=True)
class Period:
    """One scoring period: its kind, key, first and last day (inclusive) and due day."""

    kind: PeriodKind
    key: str
    start: date
    end: date
    due: date

    @property
    def starts_at(self) -> datetime:
        """The instant the period opens (00:00 Asia/Shanghai on its first day)."""
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=SHANGHAI)

    @property
    def ends_at(self) -> datetime:
        """The instant the period is over (00:00 Asia/Shanghai the day after its last day)."""
        after = self.end + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=SHANGHAI)

    def contains(self, day: date) -> bool:
        """Whether ``day`` lies in the period."""
        return self.start <= day <= self.end


def _month_end(year: int, month: int) -> date:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return nxt - timedelta(days=1)


@lru_cache(maxsize=65536)
def period_of(kind: PeriodKind, day: date) -> Period:
    """The period of ``kind`` that contains ``day``."""
    if kind == "day":
        return Period("day", day.isoformat(), day, day, day)
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        iso_year, iso_week, _ = day.isocalendar()
        return Period(
            "week", f"{iso_year}-W{iso_week:02d}", monday, monday + timedelta(days=6), monday + timedelta(days=FRIDAY)
        )
    if kind == "month":
        end = _month_end(day.year, day.month)
        return Period("month", f"{day.year}-{day.month:02d}", day.replace(day=1), end, end)
    if kind == "quarter":
        q = (day.month - 1) // 3 + 1
        end = _month_end(day.year, q * 3)
        return Period("quarter", f"{day.year}-Q{q}", date(day.year, q * 3 - 2, 1), end, end)
    if kind == "year":
        end = date(day.year, 12, 31)
        return Period("year", str(day.year), date(day.year, 1, 1), end, end)
    raise ValueError(f"unknown period kind {kind!r}")


@lru_cache(maxsize=4096)
def parse_period(key: str) -> Period:
    """The period a key names; ``ValueError`` (saying what is expected) for anything else."""
    for kind, pattern in _KEY_PATTERNS:
        m = pattern.match(key)
        if not m:
            continue
        parts = [int(g) for g in m.groups()]
        try:
            if kind == "day":
                return period_of("day", date(parts[0], parts[1], parts[2]))
            if kind == "week":
                return period_of("week", date.fromisocalendar(parts[0], parts[1], 1))
            if kind == "month":
                return period_of("month", date(parts[0], parts[1], 1))
            if kind == "quarter":
                return period_of("quarter", date(parts[0], parts[1] * 3 - 2, 1))
            return period_of("year", date(parts[0], 1, 1))
        except ValueError as err:
            raise ValueError(f"{key!r} is not a real {kind}: {err}") from err
    raise ValueError(
        f"{key!r} is not a period key; use 2025-10-09 (day), 2025-W41 (week), 2025-10 (month), "
        "2025-Q4 (quarter) or 2025 (year)"
    )


@lru_cache(maxsize=8192)
def is_workday(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (holidays and 调休 included)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the library has no official schedule for yet
        return day.weekday() < 5


@lru_cache(maxsize=64)
def calendar_known(year: int) -> bool:
    """Whether the official holiday schedule of ``year`` is known (else Monday–Friday is assumed)."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def working_days(start: date, end: date) -> int:
    """How many working days lie in [start, end]."""
    return sum(1 for d in days(start, end) if is_workday(d))


def days(start: date, end: date) -> list[date]:
    """Every day in [start, end]."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass(frozen=True, slots=True)
class DayInfo:
    """Everything the fold needs to know about one day, computed once per day and cached."""

    day: date
    workday: bool
    periods: dict[str, Period]  # kind → period containing the day
    month_start: date  # the month the day falls in (standings are kept per day and per month)


@lru_cache(maxsize=8192)
def day_info(day_key: str) -> DayInfo:
    """The cached :class:`DayInfo` of a ``YYYY-MM-DD`` day key."""
    d = date.fromisoformat(day_key)
    return DayInfo(d, is_workday(d), {k: period_of(k, d) for k in KINDS}, d.replace(day=1))


def periods_between(kind: PeriodKind, start: date, end: date) -> list[Period]:
    """Every period of ``kind`` that overlaps [start, end], in order."""
    out: list[Period] = []
    cursor = start
    while cursor <= end:
        p = period_of(kind, cursor)
        out.append(p)
        cursor = p.end + timedelta(days=1)
    return out


def scored(period: Period) -> bool:
    """Whether a period carries quotas: a day only when it is a working day, other periods always."""
    return period.kind != "day" or is_workday(period.start)
