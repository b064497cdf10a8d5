"""The scoring service's application functions: load → decide → append.

* :func:`close_due_periods` — close every ended worker-period still open, correct closed ones whose
  numbers changed, award their points (``QuotaPeriodClosed``, ``PointsAwarded``).  ``now`` comes in,
  so tests and ``gridwork scoring close --now`` close deterministically; the reaction passes the clock's.
* :func:`award_points` — the secretary's publicity and awards (宣传和获奖).

Closing reads the projection (what is closed comes back through the fold of scoring's own events)
and keeps only its "checked at" positions in a table of its own (``scoring_closer_checks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from shared.errors import Conflict
from shared.events import Event
from shared.events.scoring import QuotaPeriodClosed
from shared.eventstore import ConcurrencyError, EventStore

from . import queries
from .bootstrap import ScoringDeps
from .domain import AwardPoints, ClosePeriod, QuotaPeriod, decide, decide_award
from .domain.closing import Key, closing_window
from .metrics import PERIODS_CLOSED

log = structlog.get_logger("gridwork.scoring.closing")


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


async def close_due_periods(
    now: datetime,
    *,
    deps: ScoringDeps,
    grace: timedelta | None = None,
    lookback_days: int | None = None,
) -> CloseReport:
    """Close every ended period still open, correct closed ones that changed, award their points.

    ``grace`` and ``lookback_days`` default to the settings (``scoring_close_grace_seconds``,
    ``scoring_close_lookback_days``).
    """
    settings = deps.settings
    window = closing_window(
        now,
        grace=grace if grace is not None else timedelta(seconds=settings.scoring_close_grace_seconds),
        lookback_days=lookback_days if lookback_days is not None else settings.scoring_close_lookback_days,
    )
    work = await queries.closing_work(deps.pool, deps.rules, window)
    report = CloseReport(position=work.position)
    for key, period in work.fresh.items():
        command = ClosePeriod(key[0], key[1], period, deps.rules.for_community(key[0]), work.numbers.get(key, {}))
        await _append(deps.store, report, key, decide(QuotaPeriod(), command))
    checked: list[Key] = []
    for look in work.closed:
        key = look.key
        book = deps.rules.for_community(key[0])
        command = ClosePeriod(key[0], key[1], look.period, book, work.numbers.get(key, {}), moved=look.moved)
        events = decide(look.state, command)
        if look.moved and not any(isinstance(e, QuotaPeriodClosed) for e in events):
            checked.append(key)  # looked again: the same result as closed
            report.unchanged += 1
        await _append(deps.store, report, key, events)
    if checked:
        await _mark_checked(deps, checked, work.position)
    if report.closed or report.corrected:
        log.info(
            "periods_closed",
            closed=len(report.closed),
            corrected=len(report.corrected),
            awarded=len(report.awarded),
            duplicates=report.duplicates,
            position=work.position,
        )
    return report


async def _append(store: EventStore, report: CloseReport, key: Key, events: list[Event]) -> None:
    """Append a closing (at version revision - 1) and then its points (a new aggregate), counting what happened."""
    for event in events:
        if isinstance(event, QuotaPeriodClosed):
            revision = event.data.revision
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
                PERIODS_CLOSED.labels(event.data.period, "correction" if revision > 1 else "first").inc()
        else:
            result = await store.append([event], 0)
            if result.duplicate:
                report.duplicates += 1
            else:
                report.awarded.append(key)


async def _mark_checked(deps: ScoringDeps, keys: list[Key], position: int) -> None:
    """Remember that these closed periods' numbers at ``position`` were found equal to their closing."""
    await deps.pool.execute(
        """INSERT INTO scoring_closer_checks (community, worker_id, period_key, checked_seq)
           SELECT u.c, u.w, u.k, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, w, k)
           ON CONFLICT (community, worker_id, period_key) DO UPDATE SET checked_seq = EXCLUDED.checked_seq""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        position,
    )


@dataclass(frozen=True, slots=True)
class AwardRecorded:
    """An award appended (or recognised as a retry of one already stored)."""

    award_id: str
    event_id: str
    duplicate: bool


async def award_points(command: AwardPoints, *, deps: ScoringDeps) -> AwardRecorded:
    """Record publicity-and-awards points for a worker on the roster (idempotent on ``award_id``)."""
    on_roster = await queries.on_roster(deps.pool, command.community, command.worker_id)
    [event] = decide_award(on_roster, command)
    try:
        result = await deps.store.append([event], 0)
    except ConcurrencyError as err:
        raise Conflict(f"award {command.award_id} already exists with other content", field="award_id") from err
    return AwardRecorded(command.award_id, str(event.id), result.duplicate)
