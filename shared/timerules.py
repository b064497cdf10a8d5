"""When work may be said to have happened: the rule every endpoint taking an ``occurred_at`` applies."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

from pydantic import AfterValidator, AwareDatetime

from .errors import Invalid


def check_occurred_at(
    occurred_at: datetime, now: datetime, *, skew_seconds: float, max_days: float, field: str = "occurred_at"
) -> None:
    """Work is logged when it was done: not in the future (beyond clock skew), not over ``max_days`` back."""
    if occurred_at > now + timedelta(seconds=skew_seconds):
        raise Invalid(
            f"occurred_at {occurred_at.isoformat()} is in the future (server time {now.isoformat()}, "
            f"allowed clock skew {int(skew_seconds)} s)",
            field=field,
            reason="future",
        )
    if occurred_at < now - timedelta(days=max_days):
        raise Invalid(
            f"occurred_at {occurred_at.isoformat()} is more than {max_days:g} days back; "
            "older work can no longer be logged",
            field=field,
            reason="too_old",
        )


#: The days any read may ask about: the years gridwork can hold work for (a query about year 1 or
#: 9999 is a mistake, and the calendar and the database's ranges end before some of them).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)


def check_day(day: date | datetime, field: str) -> None:
    """422 naming ``field`` unless ``day`` falls in 2000–2100 (a query's; a body's: :func:`within_years`)."""
    try:
        within_years(day)
    except ValueError as err:
        raise Invalid(f"{field} {err}", field=field, reason="out_of_range") from None


_When = TypeVar("_When", date, datetime)


def within_years(value: _When) -> _When:
    """``value`` if its day falls in 2000–2100, else a ``ValueError`` (pydantic makes it a 422 naming
    the field): a body's date beyond them is a typo or a probe, and once stored it is an event the
    calendar, the database's ranges or a time-zone conversion cannot hold."""
    plain = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= plain <= LAST_DAY:
        raise ValueError(f"{plain.isoformat()} is outside {FIRST_DAY.year}–{LAST_DAY.year}")
    return value


#: A moment with a UTC offset in a request body, its day in 2000–2100 (deadlines, ``occurred_at``…).
SaneAwareDatetime = Annotated[AwareDatetime, AfterValidator(within_years)]
#: A moment in a request body that may come without an offset (read in Asia/Shanghai), in 2000–2100.
SaneDatetime = Annotated[datetime, AfterValidator(within_years)]
#: A day in a request body, in 2000–2100.
SaneDate = Annotated[date, AfterValidator(within_years)]
