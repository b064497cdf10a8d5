"""Closing periods: when a worker's period ends, scoring says how it went, once, and corrects it openly.

``close_due_periods(now=…)`` (``now`` is injectable, so tests close deterministically):

1. In one repeatable-read snapshot it reads the projection's checkpoint, the roster, the closed
   periods and the items of every period to look at:
   * periods that ended (in the lookback window) and have no closure yet → revision 1;
   * closed periods whose numbers moved since the closer last checked them (``closure.changed_seq``
     past ``scoring_closer_checks.checked_seq``: a late event from an offline phone, a replay under
     a new rulebook version) → revision + 1 if the result really differs;
   * closed periods whose points were not awarded yet (a crash between the two appends).
2. It appends ``QuotaPeriodClosed`` at aggregate version ``revision - 1`` and ``PointsAwarded``
   (kind quota, the points' delta) as a new aggregate, both with ids derived from
   worker + period + revision: re-running after a crash or on a second replica is recognised by
   the event store as a duplicate, so nothing is ever emitted twice.

The projection folds scoring's own events back into ``closure``, which is how step 1 knows what
is closed; the closer keeps only its "checked at" positions in a table of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter, Histogram

from shared.db import Conn
from shared.events import SHANGHAI
from shared.events import now as shanghai_now
from shared.events.envelope import TOKEN_PATTERN
from shared.events.scoring import (
    PointsAwarded,
    PointsAwardedData,
    QuotaItemResult,
    QuotaPeriodClosed,
    QuotaPeriodClosedData,
)
from shared.eventstore import ConcurrencyError, EventStore

from .calendar import Period, parse_period, periods_between, scored
from .domain import ItemResult, Rulebook, RuleSet, period_results
from .projections import SCHEMA

log = structlog.get_logger("gridwork.scoring.closing")

PERIODS_CLOSED = Counter(
    "gridwork_scoring_periods_closed_total",
    "Worker-periods closed (QuotaPeriodClosed appended), first closings and corrections",
    ["period", "closing"],
)
CLOSE_RUN_SECONDS = Histogram(
    "gridwork_scoring_close_run_seconds", "Time for one closing run", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)

Key = tuple[str, str, str]  # community, worker, period key
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass
class CloseReport:
    """What one closing run did."""

    closed: list[Key] = field(default_factory=list)
    corrected: list[Key] = field(default_factory=list)
    awarded: list[Key] = field(default_factory=list)
    unchanged: int = 0
    duplicates: int = 0
    conflicts: int = 0
    position: int = 0


def quota_aggregate_id(worker: str, period_key: str) -> str:
    """The closed period's aggregate id: ``<worker>-<period>``, hashed when that is not a valid token."""
    candidate = f"{worker}-{period_key}"
    if _TOKEN.match(candidate):
        return candidate
    digest = hashlib.sha256(worker.encode()).hexdigest()[:16]
    return f"w{digest}-{period_key}"


def _fingerprint(items: list[dict[str, Any]] | list[ItemResult]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for i in items:
        d = (
            i
            if isinstance(i, dict)
            else {"item": i.item, "target": i.target, "actual": i.actual, "met": i.met, "points": i.points}
        )
        target = None if d["target"] is None else round(float(d["target"]), 6)
        out[d["item"]] = (target, round(float(d["actual"]), 6), bool(d["met"]), round(float(d["points"]), 6))
    return out


async def close_due_periods(
    *,
    pool: asyncpg.Pool,
    store: EventStore,
    rules: RuleSet,
    now: datetime,
    grace: timedelta = timedelta(0),
    lookback_days: int = 40,
    schema: str = SCHEMA,
) -> CloseReport:
    """Close every ended period still open, correct closed ones that changed, award their points."""
    report = CloseReport()
    cutoff = now - grace
    since = (now - timedelta(days=lookback_days)).astimezone(SHANGHAI).date()
    last_day = cutoff.astimezone(SHANGHAI).date()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = int(await conn.fetchval(f"SELECT position FROM {schema}._checkpoint WHERE id = 1") or 0)
        report.position = position
        roster = await conn.fetch(
            f"SELECT community, worker_id, registered_on FROM {schema}.roster WHERE role = 'grid_worker'"
        )
        wanted = _ended_periods(roster, rules, since, last_day, cutoff)
        existing = await _closures(conn, schema, wanted)
        rechecks = await conn.fetch(
            f"""SELECT c.community, c.worker_id, c.period_key, c.revision, c.items, c.points, c.rulebook,
                       c.rulebook_version, c.awarded_points, c.changed_seq > coalesce(k.checked_seq, 0) AS moved
                FROM {schema}.closure c
                LEFT JOIN public.scoring_closer_checks k
                       ON k.community = c.community AND k.worker_id = c.worker_id AND k.period_key = c.period_key
                WHERE c.changed_seq > coalesce(k.checked_seq, 0) OR abs(c.points - c.awarded_points) > 1e-6"""
        )
        fresh = [k for k in wanted if k not in existing]
        look = set(fresh) | {(r[0], r[1], r[2]) for r in rechecks}
        numbers = await _numbers(conn, schema, look)

    checked: list[Key] = []
    for key in fresh:
        period = wanted[key]
        book = rules.for_community(key[0])
        results = period_results(book, period, numbers.get(key, {}), scored=True)
        await _emit(store, report, key, period, book, results, revision=1, previous=None, awarded=0.0)
    for r in rechecks:
        key = (r[0], r[1], r[2])
        period = parse_period(key[2])
        book = rules.for_community(key[0])
        closed_items = json.loads(r[4]) if isinstance(r[4], str) else r[4]
        if r["moved"]:
            results = period_results(book, period, numbers.get(key, {}), scored=True)
            now_fp, then_fp = _fingerprint(results), _fingerprint(closed_items)
            same_book = (r[6], r[7]) == (book.id, book.version)
            if now_fp != then_fp or not same_book:
                changed = sorted(i for i in set(now_fp) | set(then_fp) if now_fp.get(i) != then_fp.get(i))
                await _emit(
                    store,
                    report,
                    key,
                    period,
                    book,
                    results,
                    revision=r[3] + 1,
                    previous=(float(r[5]), changed, "late_event" if same_book else "rescored"),
                    awarded=float(r[8]),
                )
                continue
            checked.append(key)
            report.unchanged += 1
        if abs(float(r[5]) - float(r[8])) > 1e-6:  # closed but its points were never (fully) awarded
            await _award(store, report, key, period, float(r[5]) - float(r[8]), r[3])
    if checked:
        await pool.execute(
            """INSERT INTO scoring_closer_checks (community, worker_id, period_key, checked_seq)
               SELECT u.c, u.w, u.k, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, w, k)
               ON CONFLICT (community, worker_id, period_key) DO UPDATE SET checked_seq = EXCLUDED.checked_seq""",
            [k[0] for k in checked],
            [k[1] for k in checked],
            [k[2] for k in checked],
            position,
        )
    if report.closed or report.corrected:
        log.info(
            "periods_closed",
            closed=len(report.closed),
            corrected=len(report.corrected),
            awarded=len(report.awarded),
            duplicates=report.duplicates,
            position=position,
        )
    return report


def _ended_periods(
    roster: list[asyncpg.Record], rules: RuleSet, since: date, last_day: date, cutoff: datetime
) -> dict[Key, Period]:
    """Every (worker, period) that ended inside the lookback window after the worker was registered."""
    cache: dict[tuple[str, str], list[Period]] = {}
    out: dict[Key, Period] = {}
    for community, worker, registered_on in roster:
        book = rules.for_community(community)
        for kind in book.kinds():
            periods = cache.get((book.id, kind))
            if periods is None:
                periods = [
                    p
                    for p in periods_between(kind, since, last_day)
                    if p.end >= since and p.ends_at <= cutoff and scored(p)
                ]
                cache[(book.id, kind)] = periods
            for p in periods:
                if p.end >= registered_on:
                    out[(community, worker, p.key)] = p
    return out


async def _closures(conn: Conn, schema: str, keys: dict[Key, Period]) -> set[Key]:
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


async def _emit(
    store: EventStore,
    report: CloseReport,
    key: Key,
    period: Period,
    book: Rulebook,
    results: list[ItemResult],
    *,
    revision: int,
    previous: tuple[float, list[str], str] | None,
    awarded: float,
) -> None:
    community, worker, _ = key
    labels = {i.id: (i.label, i.unit) for i in book.items}
    points = round(sum(r.points for r in results), 6)
    data = QuotaPeriodClosedData(
        worker_id=worker,
        period=period.kind,
        period_key=period.key,
        start=period.start,
        end=period.end,
        items=[
            QuotaItemResult(
                item=r.item,
                target=r.target or 0.0,
                actual=r.actual,
                met=r.met,
                points=r.points,
                label=labels[r.item][0],
                unit=labels[r.item][1] or None,
            )
            for r in results
        ],
        points=points,
        rulebook=book.id,
        rulebook_version=book.version,
        revision=revision,
        correction=previous[2] if previous else None,  # type: ignore[arg-type]
        previous_points=previous[0] if previous else None,
        changed_items=previous[1] if previous else [],
    )
    event = QuotaPeriodClosed.new(
        community=community,
        aggregate_id=quota_aggregate_id(worker, period.key),
        actor="scoring",
        data=data,
        occurred_at=period.ends_at,
        idempotency_key=f"r{revision}",
    )
    try:
        result = await store.append([event], revision - 1)
    except ConcurrencyError:
        # Another revision is already stored (a second closer, or our view lags): the next run sees it.
        report.conflicts += 1
        return
    if result.duplicate:
        report.duplicates += 1
    else:
        (report.corrected if revision > 1 else report.closed).append(key)
        PERIODS_CLOSED.labels(period.kind, "correction" if revision > 1 else "first").inc()
    if abs(points - awarded) > 1e-6:
        await _award(store, report, key, period, points - awarded, revision)


async def _award(store: EventStore, report: CloseReport, key: Key, period: Period, delta: float, revision: int) -> None:
    community, worker, _ = key
    aggregate = f"{quota_aggregate_id(worker, period.key)}-r{revision}"
    event = PointsAwarded.new(
        community=community,
        aggregate_id=aggregate,
        actor="scoring",
        occurred_at=period.ends_at,
        idempotency_key="quota",
        data=PointsAwardedData(
            worker_id=worker,
            points=round(delta, 6),
            kind="quota",
            period_key=period.key,
            period=period.kind,
            revision=revision,
            reason=f"quota {period.key}" + (f" (correction, revision {revision})" if revision > 1 else ""),
        ),
    )
    result = await store.append([event], 0)
    if result.duplicate:
        report.duplicates += 1
    else:
        report.awarded.append(key)


async def closing_loop(
    runtime: Any, *, clock: Callable[[], datetime] = shanghai_now, projection: str = "scoring"
) -> None:
    """Background task: close periods every ``scoring_close_interval_seconds`` once the fold has caught up."""
    settings = runtime.settings
    interval = float(getattr(settings, "scoring_close_interval_seconds", 60))
    if interval <= 0:
        return
    rules: RuleSet = runtime.state["rules"]
    while True:
        runner = runtime.runners.get(projection)
        try:
            lag = (await runner.status())["lag_events"] if runner is not None else 0
        except Exception as err:  # the consumer is being re-created (takeover, reconnect): next round
            log.info("close_skipped", reason=repr(err))
            lag = None
        # Closing while the fold lags would close periods on partial numbers, then correct them.
        if lag is not None and lag <= settings.scoring_close_max_lag_events:
            with CLOSE_RUN_SECONDS.time():
                await close_due_periods(
                    pool=runtime.pool,
                    store=runtime.store,
                    rules=rules,
                    now=clock(),
                    grace=timedelta(seconds=settings.scoring_close_grace_seconds),
                    lookback_days=settings.scoring_close_lookback_days,
                )
        await asyncio.sleep(interval)  # a timer, not a wait on a condition
