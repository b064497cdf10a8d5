"""Reads of the scoring model: a worker's progress, the community board, the street roll-up, figures,
the completion gauges, and what the period closer looks at.

Each is one or two indexed queries on the projection's tables plus a little arithmetic from the
rulebook and the calendar; nothing here writes.  The board reads the ``standing`` rows (one per
worker per day, or per month for months, quarters and years), so a street of 20 communities is a
few hundred rows whatever the period.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from shared.db import Conn
from shared.events import CATEGORIES, LEVELS, shanghai_day

from .domain import Rulebook, RuleSet, score_period
from .domain.calendar import (
    KINDS,
    Period,
    calendar_known,
    is_workday,
    parse_period,
    period_of,
    periods_between,
    scored,
    working_days,
)
from .domain.closing import ClosingWindow, Key, QuotaPeriod, closed_items, ended_periods
from .projections import SCHEMA


async def street_of(conn: Conn | asyncpg.Pool, community: str, schema: str = SCHEMA) -> str | None:
    """The street (街道) a community registered under, if it did."""
    return await conn.fetchval(f"SELECT street FROM {schema}.community WHERE community = $1", community)


async def on_roster(conn: Conn | asyncpg.Pool, community: str, worker: str, schema: str = SCHEMA) -> bool:
    """Whether ``worker`` is registered in ``community`` (any role)."""
    known = await conn.fetchval(
        f"SELECT 1 FROM {schema}.roster WHERE community = $1 AND worker_id = $2", community, worker
    )
    return bool(known)


# ---------------------------------------------------------------- a worker's progress now


def _summary(results: Sequence[dict[str, Any]]) -> str:
    parts = []
    for r in results:
        if r["target"] is None:
            continue
        actual = r["actual"]
        shown = (
            f"{actual:.0%}" if r["unit"] == "rate" else (f"{actual:g}" if actual == int(actual) else f"{actual:.1f}")
        )
        target = f"{r['target']:.0%}" if r["unit"] == "rate" else f"{r['target']:g}"
        parts.append(f"{shown}/{target} {r['unit']}".strip())
    return ", ".join(parts)


async def worker_progress(
    conn: Conn | asyncpg.Pool,
    rules: RuleSet,
    community: str,
    worker: str,
    at: datetime,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """Every period containing ``at``: each item's target, actual, met and points so far."""
    book = rules.for_community(community)
    today = shanghai_day(at)
    periods = [period_of(k, today) for k in book.kinds()]
    keys = [p.key for p in periods]
    rows = await conn.fetch(
        f"""SELECT period_key, item, num, den, rulebook, rulebook_version FROM {schema}.quota_item
            WHERE community = $1 AND worker_id = $2 AND period_key = ANY($3::text[])""",
        community,
        worker,
        keys,
    )
    closed = {
        r[0]: r[1]
        for r in await conn.fetch(
            f"""SELECT period_key, revision FROM {schema}.closure
                WHERE community = $1 AND worker_id = $2 AND period_key = ANY($3::text[])""",
            community,
            worker,
            keys,
        )
    }
    numbers: dict[str, dict[str, tuple[float, float]]] = {}
    versions: set[tuple[str, int]] = set()
    for r in rows:
        numbers.setdefault(r[0], {})[r[1]] = (r[2], r[3])
        versions.add((r[4], r[5]))
    out = []
    for p in periods:
        is_scored = scored(p)
        score = score_period(book, p.kind, numbers.get(p.key, {}), scored=is_scored)
        items = [
            {
                "item": item.id,
                "label": item.label,
                "label_zh": item.label_zh,
                "unit": item.unit,
                "target": res.target,
                "actual": res.actual,
                "met": res.met,
                "points": res.points,
                "indicator": item.indicator,
            }
            for item, res in zip(book.items_of(p.kind), score.items, strict=True)
        ]
        out.append(
            {
                "period": p.kind,
                "key": p.key,
                "start": p.start,
                "end": p.end,
                "due": p.due,
                "scored": is_scored,
                "items": items,
                "points": score.points,
                "summary": _summary(items) if is_scored else "not a working day: no daily quota",
                "closed_revision": closed.get(p.key),
            }
        )
    return {
        "community": community,
        "worker_id": worker,
        "at": at,
        "day": today,
        "workday": is_workday(today),
        "calendar_known": calendar_known(today.year),
        "rulebook": {"id": book.id, "version": book.version, "name": book.name, "name_zh": book.name_zh},
        "rescore_needed": any(v != (book.id, book.version) for v in versions),
        "periods": out,
    }


# ---------------------------------------------------------------- boards (评优表)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a worker could have done in a period up to a day: working days and quota items due."""

    working_days: int
    items_due: int


_EXPECTATIONS: dict[tuple[int, str, str, date], Expectation] = {}


def expectation(book: Rulebook, period: Period, as_of: date) -> Expectation:
    """Working days, and quota items (not indicators) of the periods due inside ``period`` that began by ``as_of``.

    Items of a worker registered part-way through count from the period's start all the same.
    """
    cache_key = (id(book), book.ref, period.key, as_of)
    hit = _EXPECTATIONS.get(cache_key)
    if hit is not None:
        return hit
    last = min(period.end, as_of)
    days_worked = working_days(period.start, last) if last >= period.start else 0
    due = 0
    for kind in KINDS:
        counted = [i for i in book.items_of(kind) if not i.indicator]
        if not counted:
            continue
        for p in periods_between(kind, period.start, period.end):
            if period.start <= p.due <= period.end and p.start <= as_of and scored(p):
                due += len(counted)
    if len(_EXPECTATIONS) > 4096:
        _EXPECTATIONS.clear()
    _EXPECTATIONS[cache_key] = hit = Expectation(days_worked, due)
    return hit


def _grain(period: Period) -> str:
    return "d" if period.kind in ("day", "week") else "m"


_BOARD_COLUMNS = """
    coalesce(sum(s.attendance), 0)::int AS attendance, coalesce(sum(s.reception), 0)::int AS reception,
    coalesce(sum(s.items_met), 0)::int AS items_met,
    coalesce(sum(s.attendance_points), 0) AS attendance_points,
    coalesce(sum(s.reception_points), 0) AS reception_points,
    coalesce(sum(s.award_points), 0) AS award_points, coalesce(sum(s.quota_points), 0) AS quota_points"""


def _rank(rows: list[dict[str, Any]], key: str = "total") -> list[dict[str, Any]]:
    """Competition ranking (1, 2, 2, 4) by ``key``, highest first; ties listed by id."""
    ordered = sorted(rows, key=lambda r: (-r[key], r.get("community", ""), r.get("worker_id", "")))
    previous: float | None = None
    rank = 0
    for i, row in enumerate(ordered, start=1):
        if previous is None or row[key] != previous:
            rank, previous = i, row[key]
        row["rank"] = rank
    return ordered


def _worker_row(r: asyncpg.Record, exp: Expectation, community: str | None = None) -> dict[str, Any]:
    att, rec, award, quota, met = (
        r["attendance_points"],
        r["reception_points"],
        r["award_points"],
        r["quota_points"],
        r["items_met"],
    )
    row: dict[str, Any] = {"community": community} if community is not None else {}
    row.update(
        worker_id=r["worker_id"],
        name=r["name"],
        grid_id=r["grid_id"],
        attendance_days=r["attendance"],
        working_days=exp.working_days,
        attendance_points=float(round(att, 4)),
        reception_entries=r["reception"],
        reception_points=float(round(rec, 4)),
        award_points=float(round(award, 4)),
        quota_points=float(round(quota, 4)),
        items_met=met,
        items_due=exp.items_due,
        completion=round(min(1.0, met / exp.items_due), 4) if exp.items_due else None,
        total=float(round(att + rec + award + quota, 4)),  # exact sums (numeric): equal scores are equal
    )
    return row


def _stale(rules: RuleSet, community: str, used: Sequence[str] | None) -> bool:
    """Whether rows of ``community`` were scored by another rulebook version than the one it runs now."""
    return any(ref != rules.for_community(community).ref for ref in used or ())


_USED = "(SELECT array_agg(u.rulebook || '@' || u.version) FROM {schema}.rulebook_use u WHERE u.community = {c})"


async def community_board(
    conn: Conn | asyncpg.Pool,
    rules: RuleSet,
    community: str,
    period: Period,
    as_of: date,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """The community's ranked points evaluation for ``period`` (its grid workers only).

    One round trip: the community's name, street and the rulebook versions in its rows ride along
    as uncorrelated subqueries (evaluated once).
    """
    book = rules.for_community(community)
    rows = await conn.fetch(
        f"""SELECT r.worker_id, r.name, r.grid_id, {_BOARD_COLUMNS},
                   (SELECT name FROM {schema}.community WHERE community = $1) AS community_name,
                   (SELECT street FROM {schema}.community WHERE community = $1) AS street,
                   {_USED.format(schema=schema, c="$1")} AS used
            FROM {schema}.roster r
            LEFT JOIN {schema}.standing s
                   ON s.community = r.community AND s.grain = $2 AND s.day BETWEEN $3 AND $4
                  AND s.worker_id = r.worker_id
            WHERE r.community = $1 AND r.role = 'grid_worker'
            GROUP BY r.worker_id, r.name, r.grid_id""",
        community,
        _grain(period),
        period.start,
        period.end,
    )
    if rows:
        meta: Any = rows[0]
    else:  # nobody on the roster yet: the community itself may still be known
        meta = await conn.fetchrow(
            f"""SELECT name AS community_name, street, {_USED.format(schema=schema, c="$1")} AS used
                FROM (SELECT $1::text AS community) AS x LEFT JOIN {schema}.community USING (community)""",
            community,
        )
    exp = expectation(book, period, as_of)
    return {
        "community": community,
        "name": meta["community_name"],
        "street": meta["street"],
        "period": _period_json(period),
        "as_of": as_of,
        "rulebook": {"id": book.id, "version": book.version},
        "rescore_needed": _stale(rules, community, meta["used"]),
        "workers": _rank([_worker_row(r, exp) for r in rows]),
    }


async def street_board(
    conn: Conn | asyncpg.Pool,
    rules: RuleSet,
    street: str,
    period: Period,
    as_of: date,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """The street roll-up: its communities ranked by average points per grid worker, and every worker ranked."""
    communities = await conn.fetch(
        f"""SELECT c.community, c.name, {_USED.format(schema=schema, c="c.community")} AS used
            FROM {schema}.community c WHERE c.street = $1 ORDER BY c.community""",
        street,
    )
    ids = [c["community"] for c in communities]
    rows = await conn.fetch(
        f"""SELECT r.community, r.worker_id, r.name, r.grid_id, {_BOARD_COLUMNS}
            FROM {schema}.roster r
            LEFT JOIN {schema}.standing s
                   ON s.community = r.community AND s.grain = $2 AND s.day BETWEEN $3 AND $4
                  AND s.worker_id = r.worker_id
            WHERE r.community = ANY($1::text[]) AND r.role = 'grid_worker'
            GROUP BY r.community, r.worker_id, r.name, r.grid_id""",
        ids,
        _grain(period),
        period.start,
        period.end,
    )
    expected = {c: expectation(rules.for_community(c), period, as_of) for c in ids}
    workers = [_worker_row(r, expected[r["community"]], r["community"]) for r in rows]
    per: dict[str, list[dict[str, Any]]] = {c: [] for c in ids}
    for w in workers:
        per[w["community"]].append(w)
    names = {c["community"]: c["name"] for c in communities}
    summary = []
    for c, ws in per.items():
        n = len(ws)
        met = sum(w["items_met"] for w in ws)
        due = sum(w["items_due"] for w in ws)
        summary.append(
            {
                "community": c,
                "name": names[c],
                "workers": n,
                "total": round(sum(w["total"] for w in ws), 4),
                "average_total": round(sum(w["total"] for w in ws) / n, 4) if n else 0.0,
                "items_met": met,
                "items_due": due,
                "completion": round(min(1.0, met / due), 4) if due else None,
                "rulebook": rules.for_community(c).ref,
            }
        )
    return {
        "street": street,
        "period": _period_json(period),
        "as_of": as_of,
        "rescore_needed": sorted(c["community"] for c in communities if _stale(rules, c["community"], c["used"])),
        "communities": _rank(summary, "average_total"),
        "workers": _rank(workers),
    }


def _period_json(p: Period) -> dict[str, Any]:
    return {"kind": p.kind, "key": p.key, "start": p.start, "end": p.end, "due": p.due}


# ---------------------------------------------------------------- community figures


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


async def community_figures(
    conn: Conn | asyncpg.Pool,
    rules: RuleSet,
    community: str,
    year: int,
    schema: str = SCHEMA,
) -> dict[str, Any]:
    """Visits, ledger completion, trainings, survey rates and open problems, against the rulebook's targets."""
    fig = rules.for_community(community).figures
    f = await conn.fetchrow(f"SELECT * FROM {schema}.figures WHERE community = $1 AND year = $2", community, year)
    led = await conn.fetchrow(f"SELECT * FROM {schema}.ledger WHERE community = $1", community)
    open_rows = await conn.fetch(
        f"""SELECT coalesce(category, 'unknown'), coalesce(level, 'unknown'), count(*)::int
            FROM {schema}.issue WHERE community = $1 AND open IS NOT FALSE GROUP BY 1, 2""",
        community,
    )
    visits = f["visits"] if f else 0
    trainings = f["trainings"] if f else 0
    surveys = f["surveys"] if f else 0
    households = led["households"] if led else 0
    required = len(fig.ledger_required_fields)
    completion = _ratio(led["filled"], households * required) if led else None
    by_category = {c: 0 for c in CATEGORIES}
    by_level = {lv: 0 for lv in LEVELS}
    cells = []
    for category, level, n in open_rows:
        by_category[category] = by_category.get(category, 0) + n
        by_level[level] = by_level.get(level, 0) + n
        cells.append({"category": category, "level": level, "open": n})
    return {
        "community": community,
        "year": year,
        "visits": {"value": visits, "target": fig.visits_target, "ratio": _ratio(visits, fig.visits_target)},
        "ledger": {
            "households": households,
            "complete_households": led["complete"] if led else 0,
            "completion": completion,
            "target": fig.ledger_target,
            "met": completion is not None and completion >= fig.ledger_target,
        },
        "trainings": {"value": trainings, "target": fig.trainings_target, "met": trainings >= fig.trainings_target},
        "survey": {
            "surveys": surveys,
            "visit_rate": _ratio(f["surveyed_visited"], surveys) if f else None,
            "awareness_rate": _ratio(f["surveyed_knows"], surveys) if f else None,
            "satisfaction_rate": _ratio(f["surveyed_satisfied"], surveys) if f else None,
        },
        "open_problems": {
            "total": sum(c["open"] for c in cells),
            "by_category": by_category,
            "by_level": by_level,
            "cells": sorted(cells, key=lambda c: (c["category"], c["level"])),
        },
    }


# ---------------------------------------------------------------- the completion gauges


async def completion_ratios(conn: Conn | asyncpg.Pool, rules: RuleSet, today: date) -> dict[tuple[str, str], float]:
    """(community, period kind) → the mean completion of its grid workers in the period containing ``today``.

    Every known community, each period kind; a period with nothing due yet (a holiday, a week before
    its due day) has no entry rather than a misleading 0 or 1.
    """
    communities = await conn.fetch(
        f"""SELECT community FROM {SCHEMA}.community
            UNION SELECT DISTINCT community FROM {SCHEMA}.roster WHERE role = 'grid_worker'"""
    )
    ratios: dict[tuple[str, str], float] = {}
    for (community,) in communities:
        for kind in KINDS:
            board = await community_board(conn, rules, community, period_of(kind, today), today)
            done = [w["completion"] for w in board["workers"] if w["completion"] is not None]
            if done:
                ratios[(community, kind)] = round(sum(done) / len(done), 4)
    return ratios


# ---------------------------------------------------------------- what the period closer looks at


@dataclass(frozen=True, slots=True)
class ClosedPeriodCheck:
    """A closed worker-period to look at again: its closing so far, and whether its numbers moved since."""

    key: Key
    period: Period
    state: QuotaPeriod
    moved: bool


@dataclass(frozen=True, slots=True)
class ClosingWork:
    """What one closing run works on, read in one consistent snapshot of the projection."""

    position: int  # the projection's checkpoint in that snapshot
    fresh: dict[Key, Period]  # ended in the window, never closed
    closed: list[ClosedPeriodCheck]  # closed, and moved since last checked or points still owed
    numbers: dict[Key, dict[str, tuple[float, float]]]  # item → folded (num, den) of each of them


async def closing_work(pool: asyncpg.Pool, rules: RuleSet, window: ClosingWindow, schema: str = SCHEMA) -> ClosingWork:
    """In one repeatable-read snapshot: the checkpoint, the periods that ended and were never closed,
    the closed ones whose numbers moved past the closer's last check (``closure.changed_seq`` past
    ``scoring_closer_checks.checked_seq``) or whose points were not all awarded, and their numbers."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = int(await conn.fetchval(f"SELECT position FROM {schema}._checkpoint WHERE id = 1") or 0)
        roster = await conn.fetch(
            f"SELECT community, worker_id, registered_on FROM {schema}.roster WHERE role = 'grid_worker'"
        )
        wanted = ended_periods([(r[0], r[1], r[2]) for r in roster], rules, window)
        existing = await _closures(conn, schema, wanted)
        rechecks = await conn.fetch(
            f"""SELECT c.community, c.worker_id, c.period_key, c.revision, c.items, c.points, c.rulebook,
                       c.rulebook_version, c.awarded_points, c.changed_seq > coalesce(k.checked_seq, 0) AS moved
                FROM {schema}.closure c
                LEFT JOIN scoring_closer_checks k
                       ON k.community = c.community AND k.worker_id = c.worker_id AND k.period_key = c.period_key
                WHERE c.changed_seq > coalesce(k.checked_seq, 0) OR abs(c.points - c.awarded_points) > 1e-6"""
        )
        fresh = {k: p for k, p in wanted.items() if k not in existing}
        look = set(fresh) | {(r[0], r[1], r[2]) for r in rechecks}
        numbers = await _numbers(conn, schema, look)
    closed = [
        ClosedPeriodCheck(
            key=(r[0], r[1], r[2]),
            period=parse_period(r[2]),
            state=QuotaPeriod(
                revision=r[3],
                items=closed_items(json.loads(r[4]) if isinstance(r[4], str) else r[4]),
                points=float(r[5]),
                rulebook=r[6],
                rulebook_version=r[7],
                awarded_points=float(r[8]),
            ),
            moved=bool(r["moved"]),
        )
        for r in rechecks
    ]
    return ClosingWork(position, fresh, closed, numbers)


async def _closures(conn: Conn, schema: str, keys: dict[Key, Period]) -> set[Key]:
    """Which of ``keys`` are closed already."""
    if not keys:
        return set()
    ks = list(keys)
    rows = await conn.fetch(
        f"""SELECT c.community, c.worker_id, c.period_key FROM {schema}.closure c
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(c, w, k)
              ON c.community = u.c AND c.worker_id = u.w AND c.period_key = u.k""",
        [k[0] for k in ks],
        [k[1] for k in ks],
        [k[2] for k in ks],
    )
    return {(r[0], r[1], r[2]) for r in rows}


async def _numbers(conn: Conn, schema: str, keys: set[Key]) -> dict[Key, dict[str, tuple[float, float]]]:
    """Folded numerator and denominator of every item of the given worker-periods."""
    out: dict[Key, dict[str, tuple[float, float]]] = defaultdict(dict)
    if not keys:
        return out
    ks = list(keys)
    rows = await conn.fetch(
        f"""SELECT q.community, q.worker_id, q.period_key, q.item, q.num, q.den FROM {schema}.quota_item q
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(c, w, k)
              ON q.community = u.c AND q.worker_id = u.w AND q.period_key = u.k""",
        [k[0] for k in ks],
        [k[1] for k in ks],
        [k[2] for k in ks],
    )
    for r in rows:
        out[(r[0], r[1], r[2])][r[3]] = (r[4], r[5])
    return out
