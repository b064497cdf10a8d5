"""Problem statistics (问题统计): what became of the issues reported in a period, as figures and rates.

The ``issue_statistics`` projection keeps one row per issue with what the figures need — when it was
reported and where, who handles it, when it was first accepted, whether a deadline ran out, how often
it was resolved and reopened, the resident's call-backs, when it was closed — folded from the issue
events like every other read model (rebuilt by ``gridwork replay issue_statistics``, its rows and
its checkpoint written in one transaction by the projection runner).

:func:`statistics` groups the issues *reported* in a range of months (Asia/Shanghai) — a cohort, as
it stands now — by month, category, grid, agency or community, and counts per group:

* ``reported``; ``merged`` (duplicates merged into another issue); ``received`` = reported − merged,
  the denominator of the rates (a duplicate is not a case of its own);
* ``accepted`` (responded, 受理) and ``responded_on_time``: accepted by the 12345 order's response
  deadline, or — an issue that has none — before any of its deadlines ran out;
* ``resolved`` (at least once), ``reworked`` (resolved more than once), ``reopened`` (at least once);
* ``closed`` (closed now) and ``closed_on_time``: closed, no level or resolution deadline ever ran
  out on it (an ``IssueOverdue``), and a 12345 order closed by its resolution deadline;
* ``callbacks`` (the resident called back: the hotline's 回访 or the community's own call-back) and
  ``satisfied_callbacks``; ``satisfaction`` = satisfied / call-backs;
* ``median_hours_to_close`` and ``p90_hours_to_close``: from the report to the (last) closing;
* ``rates`` as fractions (null when the denominator is 0): the hotline's three rates — ``response``
  (响应率, responded on time / received), ``resolution`` (解决率, resolved / received),
  ``satisfaction`` (满意率) — and ``closure`` (closed / received) and ``on_time_closure``
  (closed on time / closed).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

from shared.cells import safe_cell
from shared.db import Conn
from shared.events import SHANGHAI, Event
from shared.events.issues import (
    HotlineOrderReceived,
    IssueAccepted,
    IssueAssigned,
    IssueClosed,
    IssueEscalated,
    IssueMerged,
    IssueOverdue,
    IssueReopened,
    IssueReported,
    IssueResolved,
    IssueVerified,
)
from shared.eventstore import StoredEvent

from .domain.access import AGENCY_KINDS

STATISTICS = "proj_issue_statistics"
Grouping = Literal["month", "category", "grid", "agency", "community"]
#: Call-backs to the resident: the hotline's (回访) and the community's own.
CALLBACKS = frozenset({"hotline", "resident_callback"})


@dataclass(frozen=True)
class CaseFigures:
    """One issue as the statistics see it (a row of ``cases``; the columns in this order)."""

    community: str
    issue_id: str
    reported_at: datetime | None = None
    category: str | None = None
    grid: str | None = None
    source: str | None = None
    assigned_agency: str | None = None
    routed_agency: str | None = None
    response_deadline: datetime | None = None
    resolution_deadline: datetime | None = None
    accepted_at: datetime | None = None
    first_overdue_at: datetime | None = None
    deadline_missed: bool = False
    resolutions: int = 0
    reopened: int = 0
    closed_at: datetime | None = None
    merged: bool = False
    callbacks: int = 0
    satisfied_callbacks: int = 0


def fold_case(case: CaseFigures, event: Event) -> CaseFigures:
    """Fold one issue event into the case's figures (pure; other events change nothing)."""
    match event:
        case HotlineOrderReceived():
            order = event.data
            return replace(
                case, response_deadline=order.response_deadline, resolution_deadline=order.resolution_deadline
            )
        case IssueReported():
            report = event.data
            return replace(
                case,
                reported_at=event.occurred_at,
                category=report.category,
                grid=report.place.grid,
                source=report.source,
            )
        case IssueAccepted():
            return case if case.accepted_at else replace(case, accepted_at=event.occurred_at)
        case IssueAssigned():
            to = event.data
            return replace(case, assigned_agency=to.assignee_id) if to.assignee_kind in AGENCY_KINDS else case
        case IssueEscalated():
            return replace(case, routed_agency=event.data.target) if event.data.target else case
        case IssueOverdue():
            late = event.data
            first = late.deadline if case.first_overdue_at is None else min(case.first_overdue_at, late.deadline)
            # A missed response deadline makes the answer late, not the closing.
            missed = case.deadline_missed or not (late.timer or "").startswith("response:")
            return replace(case, first_overdue_at=first, deadline_missed=missed)
        case IssueResolved():
            return replace(case, resolutions=case.resolutions + 1)
        case IssueVerified():
            check = event.data
            if check.verified_by not in CALLBACKS:
                return case
            satisfied = case.satisfied_callbacks + int(check.satisfied)
            return replace(case, callbacks=case.callbacks + 1, satisfied_callbacks=satisfied)
        case IssueReopened():
            return replace(case, reopened=case.reopened + 1, closed_at=None)
        case IssueClosed():
            return replace(case, closed_at=event.occurred_at)
        case IssueMerged():
            return replace(case, merged=True)
    return case


_COLUMNS = [f.name for f in fields(CaseFigures)]


class IssueStatistics:
    """One row of figures per issue, for the statistics (问题统计)."""

    name = "issue_statistics"
    event_types = (
        "HotlineOrderReceived",
        "IssueReported",
        "IssueAccepted",
        "IssueAssigned",
        "IssueEscalated",
        "IssueOverdue",
        "IssueResolved",
        "IssueVerified",
        "IssueReopened",
        "IssueClosed",
        "IssueMerged",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS cases (
        community            text NOT NULL,
        issue_id             text NOT NULL,
        reported_at          timestamptz,
        category             text,
        grid                 text,
        source               text,
        assigned_agency      text,
        routed_agency        text,
        response_deadline    timestamptz,
        resolution_deadline  timestamptz,
        accepted_at          timestamptz,
        first_overdue_at     timestamptz,
        deadline_missed      boolean NOT NULL,
        resolutions          integer NOT NULL,
        reopened             integer NOT NULL,
        closed_at            timestamptz,
        merged               boolean NOT NULL,
        callbacks            integer NOT NULL,
        satisfied_callbacks  integer NOT NULL,
        PRIMARY KEY (community, issue_id)
    );
    CREATE INDEX IF NOT EXISTS cases_reported ON cases (community, reported_at);
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold the batch into each touched issue's row: one read and one write per batch."""
        decoded = [s.event() for s in events]
        keys = {(e.community, e.aggregate_id) for e in decoded}
        rows = await conn.fetch(
            f"SELECT {', '.join(_COLUMNS)} FROM cases "
            "WHERE (community, issue_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        cases = {(r["community"], r["issue_id"]): CaseFigures(**dict(r)) for r in rows}
        for event in decoded:
            key = (event.community, event.aggregate_id)
            cases[key] = fold_case(cases.get(key) or CaseFigures(*key), event)
        placeholders = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[2:])
        await conn.executemany(
            f"INSERT INTO cases ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT (community, issue_id) DO UPDATE SET {updates}",
            [astuple(c) for c in cases.values()],
        )


# ---------------------------------------------------------------- reading


#: The figures of a group, in the order of the CSV's columns.
COUNTS = (
    "reported",
    "merged",
    "received",
    "accepted",
    "responded_on_time",
    "resolved",
    "reworked",
    "reopened",
    "closed",
    "closed_on_time",
    "callbacks",
    "satisfied_callbacks",
)
HOURS = ("median_hours_to_close", "p90_hours_to_close")
RATES = ("response", "resolution", "satisfaction", "closure", "on_time_closure")

_KEYS: dict[str, str] = {
    "month": "to_char(reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')",
    "category": "category",
    "grid": "grid",
    "agency": "coalesce(assigned_agency, routed_agency)",
    "community": "community",
}
_HOURS_TO_CLOSE = "extract(epoch FROM closed_at - reported_at) / 3600.0"
_FIGURES = f"""
    count(*) AS reported,
    count(*) FILTER (WHERE merged) AS merged,
    count(*) FILTER (WHERE NOT merged) AS received,
    count(*) FILTER (WHERE NOT merged AND accepted_at IS NOT NULL) AS accepted,
    count(*) FILTER (WHERE NOT merged AND accepted_at <= coalesce(response_deadline, first_overdue_at, accepted_at))
        AS responded_on_time,
    count(*) FILTER (WHERE NOT merged AND resolutions >= 1) AS resolved,
    count(*) FILTER (WHERE NOT merged AND resolutions >= 2) AS reworked,
    count(*) FILTER (WHERE NOT merged AND reopened >= 1) AS reopened,
    count(*) FILTER (WHERE NOT merged AND closed_at IS NOT NULL) AS closed,
    count(*) FILTER (WHERE NOT merged AND closed_at IS NOT NULL AND NOT deadline_missed
        AND closed_at <= coalesce(resolution_deadline, closed_at)) AS closed_on_time,
    coalesce(sum(callbacks) FILTER (WHERE NOT merged), 0) AS callbacks,
    coalesce(sum(satisfied_callbacks) FILTER (WHERE NOT merged), 0) AS satisfied_callbacks,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {_HOURS_TO_CLOSE}) FILTER (WHERE NOT merged AND closed_at IS NOT NULL)
        AS median_hours_to_close,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY {_HOURS_TO_CLOSE}) FILTER (WHERE NOT merged AND closed_at IS NOT NULL)
        AS p90_hours_to_close
"""


def _fraction(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(row: Any) -> dict[str, Any]:
    """A group's figures (a row of the query, or None for a group with no issue) with its rates."""
    counts = {k: int(row[k]) if row is not None else 0 for k in COUNTS}
    hours = {k: round(float(row[k]), 2) if row is not None and row[k] is not None else None for k in HOURS}
    received, closed = counts["received"], counts["closed"]
    satisfaction = _fraction(counts["satisfied_callbacks"], counts["callbacks"])
    rates = {
        "response": _fraction(counts["responded_on_time"], received),
        "resolution": _fraction(counts["resolved"], received),
        "satisfaction": satisfaction,
        "closure": _fraction(closed, received),
        "on_time_closure": _fraction(counts["closed_on_time"], closed),
    }
    return {**counts, "satisfaction": satisfaction, **hours, "rates": rates}


def months_between(first: str, last: str) -> list[str]:
    """Every month key from ``first`` to ``last`` (``YYYY-MM``), both included."""
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def month_start(key: str) -> datetime:
    """The first instant of a month (``YYYY-MM``) in Asia/Shanghai."""
    year, month = map(int, key.split("-"))
    return datetime(year, month, 1, tzinfo=SHANGHAI)


async def statistics(
    conn: Conn,
    communities: Sequence[str],
    *,
    first: str,
    last: str,
    by: Grouping,
    source: str | None = None,
    keys: Sequence[str] = (),
) -> dict[str, Any]:
    """The figures of the issues of ``communities`` reported from month ``first`` to ``last`` (both
    included), per group ``by`` and in total.  ``keys``: groups listed even with no issue (e.g. every
    month of the range, every category)."""
    year, month = map(int, last.split("-"))
    end = month_start(f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}")
    where = (
        "community = ANY($1::text[]) AND reported_at >= $2 AND reported_at < $3 AND ($4::text IS NULL OR source = $4)"
    )
    args = (list(communities), month_start(first), end, source)
    # One snapshot for the groups and the total, so that they add up while the projection folds.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            f"SELECT {_KEYS[by]} AS key, {_FIGURES} FROM {STATISTICS}.cases WHERE {where} "
            "GROUP BY 1 ORDER BY 1 NULLS LAST",
            *args,
        )
        total = await conn.fetchrow(f"SELECT {_FIGURES} FROM {STATISTICS}.cases WHERE {where}", *args)
    found = {r["key"]: r for r in rows}
    order = list(keys) + [k for k in found if k not in keys]
    return {
        "groups": [{"key": k, **figures(found.get(k))} for k in order],
        "total": figures(total),
    }


def as_csv(answer: dict[str, Any]) -> str:
    """The statistics as CSV: one line per group and a last line ``total``; rates as fractions."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([answer["by"], *COUNTS, "satisfaction", *HOURS, *(f"{r}_rate" for r in RATES)])

    def line(key: Any, group: dict[str, Any]) -> list[Any]:
        values = [key, *(group[k] for k in COUNTS), group["satisfaction"], *(group[h] for h in HOURS)]
        return [safe_cell(v) for v in values + [group["rates"][r] for r in RATES]]

    for group in answer["groups"]:
        writer.writerow(line(group["key"], group))
    writer.writerow(line("total", answer["total"]))
    return out.getvalue()
