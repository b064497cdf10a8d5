"""Closing a worker's period, pure: which periods ended, what closing one says, and how it is corrected.

When a worker's period ends, scoring says once how it went — ``QuotaPeriodClosed`` (each item met
or missed, the points) — and awards the points (``PointsAwarded``, kind quota).  The closed
period is an aggregate of its own (``quota/<worker>-<period>``), one version per revision:

* never closed → revision 1 on the folded numbers;
* closed, and the numbers moved since (a phone synced late, a new rulebook version was replayed)
  → revision + 1 when the result really differs, saying why and which items changed;
* closed, but its points not (fully) awarded (a crash between the two appends) → the rest.

Event ids derive from worker + period + revision, so deciding the same thing twice (a rerun, a
second replica) appends what the event store recognises as duplicates.  The time of every event
is the instant the period ended — nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from shared.events import Event, shanghai_day
from shared.events.envelope import TOKEN_PATTERN
from shared.events.scoring import (
    PointsAwarded,
    PointsAwardedData,
    QuotaItemResult,
    QuotaPeriodClosed,
    QuotaPeriodClosedData,
)

from .calendar import Period, periods_between, scored
from .rulebooks import ItemResult, PeriodScore, Rulebook, RuleSet, score_period

#: A worker-period: (community, worker, period key).
Key = tuple[str, str, str]
#: Points closer than this are equal (sums of float points).
EPSILON = 1e-6
_TOKEN = re.compile(TOKEN_PATTERN)


def quota_aggregate_id(worker: str, period_key: str) -> str:
    """The closed period's aggregate id: ``<worker>-<period>``, hashed when that is not a valid token."""
    candidate = f"{worker}-{period_key}"
    if _TOKEN.match(candidate):
        return candidate
    digest = hashlib.sha256(worker.encode()).hexdigest()[:16]
    return f"w{digest}-{period_key}"


# ------------------------------------------------------------------------------ which periods ended


@dataclass(frozen=True, slots=True)
class ClosingWindow:
    """Which periods a closing run looks at: those ending by ``cutoff`` and not before ``since``."""

    since: date
    last_day: date
    cutoff: datetime


def closing_window(now: datetime, *, grace: timedelta, lookback_days: int) -> ClosingWindow:
    """The window of a run at ``now``: a period is closed ``grace`` after it ended, up to ``lookback_days`` back."""
    cutoff = now - grace
    since = shanghai_day(now - timedelta(days=lookback_days))
    return ClosingWindow(since, shanghai_day(cutoff), cutoff)


def ended_periods(roster: Iterable[tuple[str, str, date]], rules: RuleSet, window: ClosingWindow) -> dict[Key, Period]:
    """Every (worker, period) that ended inside the window after the worker was registered.

    ``roster``: (community, grid worker, registered on).  A day off carries no quota and is never closed.
    """
    cache: dict[tuple[str, str], list[Period]] = {}
    out: dict[Key, Period] = {}
    for community, worker, registered_on in roster:
        book = rules.for_community(community)
        for kind in book.kinds():
            periods = cache.get((book.id, kind))
            if periods is None:
                periods = [
                    p
                    for p in periods_between(kind, window.since, window.last_day)
                    if p.end >= window.since and p.ends_at <= window.cutoff and scored(p)
                ]
                cache[(book.id, kind)] = periods
            for p in periods:
                if p.end >= registered_on:
                    out[(community, worker, p.key)] = p
    return out


# ------------------------------------------------------------------------------ the closed period


@dataclass(frozen=True, slots=True)
class QuotaPeriod:
    """What a worker-period's closing says so far: the last revision and the points awarded for it.

    ``revision`` 0: never closed.  The projection's ``closure`` table folds the same (in SQL).
    """

    revision: int = 0
    items: tuple[ItemResult, ...] = ()
    points: float = 0.0
    rulebook: str = ""
    rulebook_version: int = 0
    awarded_points: float = 0.0


def closed_items(items: Iterable[Mapping[str, Any]]) -> tuple[ItemResult, ...]:
    """A closing's items as results (from ``QuotaItemResult`` fields: item, target, actual, met, points)."""
    return tuple(
        ItemResult(i["item"], i.get("target"), float(i["actual"]), bool(i["met"]), float(i.get("points") or 0))
        for i in items
    )


def evolve(state: QuotaPeriod, event: Event) -> QuotaPeriod:
    """The period after ``event``: a later revision replaces the closing; awarded quota points add up."""
    if isinstance(event, QuotaPeriodClosed):
        d = event.data
        if d.revision <= state.revision:
            return state
        items = closed_items(i.model_dump() for i in d.items)
        return replace(
            state,
            revision=d.revision,
            items=items,
            points=d.points,
            rulebook=d.rulebook,
            rulebook_version=d.rulebook_version,
        )
    if isinstance(event, PointsAwarded) and event.data.kind == "quota":
        return replace(state, awarded_points=state.awarded_points + event.data.points)
    return state


@dataclass(frozen=True, slots=True)
class ClosePeriod:
    """Close (or correct, or finish awarding) a worker's ended period on its folded numbers.

    ``numbers``: item → folded (num, den).  ``moved``: the numbers may differ from the last closing
    (always true for a period never closed).
    """

    community: str
    worker_id: str
    period: Period
    book: Rulebook
    numbers: Mapping[str, tuple[float, float]]
    moved: bool = True


def fingerprint(items: Iterable[ItemResult]) -> dict[str, tuple[Any, ...]]:
    """What tells two closings apart, item by item (rounded: sums of floats)."""
    out: dict[str, tuple[Any, ...]] = {}
    for i in items:
        target = None if i.target is None else round(float(i.target), 6)
        out[i.item] = (target, round(float(i.actual), 6), bool(i.met), round(float(i.points), 6))
    return out


def decide(state: QuotaPeriod, command: ClosePeriod) -> list[Event]:
    """``QuotaPeriodClosed`` (+ ``PointsAwarded``) when the period is closed for the first time or its
    result changed; ``PointsAwarded`` alone when points are still owed; nothing otherwise."""
    book = command.book
    if state.revision == 0:
        score = score_period(book, command.period.kind, command.numbers, scored=True)
        return _closing(command, score, revision=1, correction=None, previous=state)
    if command.moved:
        score = score_period(book, command.period.kind, command.numbers, scored=True)
        now, then = fingerprint(score.items), fingerprint(state.items)
        same_book = (state.rulebook, state.rulebook_version) == (book.id, book.version)
        if now != then or not same_book:
            return _closing(
                command,
                score,
                revision=state.revision + 1,
                correction="late_event" if same_book else "rescored",
                previous=state,
            )
    owed = state.points - state.awarded_points
    if abs(owed) > EPSILON:  # closed, but its points were never (fully) awarded
        return [_award(command, owed, state.revision)]
    return []


def _closing(
    command: ClosePeriod,
    score: PeriodScore,
    *,
    revision: int,
    correction: Literal["late_event", "rescored"] | None,
    previous: QuotaPeriod,
) -> list[Event]:
    period, book = command.period, command.book
    labels = {i.id: (i.label, i.unit) for i in book.items}
    changed: list[str] = []
    if correction is not None:
        now, then = fingerprint(score.items), fingerprint(previous.items)
        changed = sorted(i for i in set(now) | set(then) if now.get(i) != then.get(i))
    data = QuotaPeriodClosedData(
        worker_id=command.worker_id,
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
            for r in score.items
        ],
        points=score.points,
        rulebook=book.id,
        rulebook_version=book.version,
        revision=revision,
        correction=correction,
        previous_points=previous.points if correction is not None else None,
        changed_items=changed,
    )
    events: list[Event] = [
        QuotaPeriodClosed.new(
            community=command.community,
            aggregate_id=quota_aggregate_id(command.worker_id, period.key),
            actor="scoring",
            data=data,
            occurred_at=period.ends_at,
            idempotency_key=f"r{revision}",
        )
    ]
    owed = score.points - previous.awarded_points
    if abs(owed) > EPSILON:
        events.append(_award(command, owed, revision))
    return events


def _award(command: ClosePeriod, delta: float, revision: int) -> PointsAwarded:
    """The points of a closing (a correction's delta), one aggregate per revision."""
    period = command.period
    return PointsAwarded.new(
        community=command.community,
        aggregate_id=f"{quota_aggregate_id(command.worker_id, period.key)}-r{revision}",
        actor="scoring",
        occurred_at=period.ends_at,
        idempotency_key="quota",
        data=PointsAwardedData(
            worker_id=command.worker_id,
            points=round(delta, 6),
            kind="quota",
            period_key=period.key,
            period=period.kind,
            revision=revision,
            reason=f"quota {period.key}" + (f" (correction, revision {revision})" if revision > 1 else ""),
        ),
    )
