"""Reactions of the issues service (process managers) and its deadline timers.

* ``issue_filing``: problems noted on a visit, a face-to-face session (居民面对面) or a building
  council (楼栋议事会) become issues ``<source_id>-p<index>``, exactly once.
* ``issue_escalation``: applies the escalation rules to every reported issue, climbs one level when
  notify says an escalation was not acknowledged, and keeps the deadline timers in a table written
  in the same transaction as its checkpoint.  :func:`fire_due_timers` fires them.

Both are projections, so they run on the projection runner's exactly-once fold.  Their appends use
deterministic event ids and idempotent commands: a redelivered or replayed event changes nothing.
Unbound (as listed in the spec, e.g. for ``gridwork replay``) they rebuild their tables only; the
service binds them to its event store and policy at start-up.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from shared.db import Conn
from shared.errors import DomainError
from shared.events import SHANGHAI, TOKEN_PATTERN, Event, Place
from shared.events.issues import (
    HotlineOrderReceived,
    IssueAccepted,
    IssueClosed,
    IssueEscalated,
    IssueMerged,
    IssueOverdue,
    IssueReopened,
    IssueReported,
    IssueResolved,
    IssueSource,
)
from shared.events.notify import NotificationAcknowledged, NotificationUnacknowledged
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingRegistered,
    FaceToFaceSessionHeld,
    HouseholdRegistered,
    VisitLogged,
)
from shared.eventstore import ConcurrencyError, EventStore, StoredEvent
from shared.service import Runtime

from .context import issues_context
from .domain import (
    ApplyEscalationRules,
    Context,
    EscalateUnacknowledged,
    MarkOverdue,
    ReportIssue,
    Timer,
    decide,
    initial_state,
    timer_for_level,
)
from .handlers import execute
from .metrics import FILED_PROBLEMS, TIMERS_FIRED
from .policy import Policy, load_policy
from .settings import IssuesSettings

log = structlog.get_logger("gridwork.issues")

ESCALATION = "proj_issue_escalation"
_ISSUE_ID = re.compile(TOKEN_PATTERN)
#: Reactions of one batch run concurrently across issues (in order within an issue).
REACTION_CONCURRENCY = 32


async def _react_per_issue(jobs: list[tuple[tuple[str, str], Callable[[], Awaitable[None]]]]) -> None:
    """Run reaction jobs: in order for the same issue, concurrently across issues."""
    by_issue: dict[tuple[str, str], list[Callable[[], Awaitable[None]]]] = defaultdict(list)
    for key, job in jobs:
        by_issue[key].append(job)
    gate = asyncio.Semaphore(REACTION_CONCURRENCY)

    async def run(chain: list[Callable[[], Awaitable[None]]]) -> None:
        async with gate:
            for job in chain:
                await job()

    await asyncio.gather(*(run(chain) for chain in by_issue.values()))


# ---------------------------------------------------------------- visits → issues


def _short(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _clock(event: Event) -> datetime:
    """When a level's deadline clock starts: when the fact reached gridwork, not earlier.

    A problem found on a visit and synced days later (or an escalation of such a report) is not
    overdue before anyone at that level could act on it.
    """
    return max(event.occurred_at, event.recorded_at)


class ProblemFiling:
    """Files every problem noted on a visit, session or council as an issue of its own."""

    name = "issue_filing"
    event_types = (
        "HouseholdRegistered",
        "BuildingRegistered",
        "VisitLogged",
        "FaceToFaceSessionHeld",
        "BuildingCouncilHeld",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS buildings (
        community    text NOT NULL,
        building_id  text NOT NULL,
        compound     text,
        phase        text,
        number       text,
        grid_id      text,
        PRIMARY KEY (community, building_id)
    );
    CREATE TABLE IF NOT EXISTS households (
        community     text NOT NULL,
        household_id  text NOT NULL,
        building_id   text,
        unit          text,
        grid_id       text,
        PRIMARY KEY (community, household_id)
    );
    """

    def __init__(self, store: EventStore | None = None) -> None:
        self.store = store

    def bound(self, store: EventStore) -> ProblemFiling:
        return ProblemFiling(store)

    async def _place(
        self,
        conn: Conn,
        community: str,
        *,
        household: str | None = None,
        building: str | None = None,
        grid: str | None = None,
    ) -> Place:
        unit = None
        if household:
            row = await conn.fetchrow(
                "SELECT building_id, unit, grid_id FROM households WHERE community = $1 AND household_id = $2",
                community,
                household,
            )
            if row:
                building, unit, grid = row["building_id"], row["unit"], grid or row["grid_id"]
        compound = phase = None
        if building:
            row = await conn.fetchrow(
                "SELECT compound, phase, grid_id FROM buildings WHERE community = $1 AND building_id = $2",
                community,
                building,
            )
            if row:
                compound, phase, grid = row["compound"], row["phase"], grid or row["grid_id"]
        return Place(
            compound=_short(compound, 64),
            phase=_short(phase, 32),
            building=_short(building, 32),
            unit=_short(unit, 32),
            grid=_short(grid, 64),
        )

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        batch: list[tuple[list[Event], int]] = []
        for stored in events:
            event = stored.event()
            source: IssueSource
            match event:
                case HouseholdRegistered():
                    d = event.data
                    await conn.execute(
                        "INSERT INTO households (community, household_id, building_id, unit, grid_id) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (community, household_id) DO UPDATE SET "
                        "building_id = EXCLUDED.building_id, unit = EXCLUDED.unit, grid_id = EXCLUDED.grid_id",
                        event.community,
                        d.household_id,
                        d.building_id,
                        d.unit,
                        d.grid_id,
                    )
                    continue
                case BuildingRegistered():
                    bldg = event.data
                    await conn.execute(
                        "INSERT INTO buildings (community, building_id, compound, phase, number, grid_id) "
                        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (community, building_id) DO UPDATE SET "
                        "compound = EXCLUDED.compound, phase = EXCLUDED.phase, number = EXCLUDED.number, "
                        "grid_id = EXCLUDED.grid_id",
                        event.community,
                        bldg.building_id,
                        bldg.compound,
                        bldg.phase,
                        bldg.number,
                        bldg.grid_id,
                    )
                    continue
                case VisitLogged():
                    visit = event.data
                    source_id, source, worker, problems = visit.visit_id, "grid_worker", visit.worker_id, visit.problems
                    place = await self._place(conn, event.community, household=visit.household_id, grid=visit.grid_id)
                    address = None
                case FaceToFaceSessionHeld():
                    session = event.data
                    source_id, source, worker, problems = (
                        session.session_id,
                        "face_to_face",
                        session.worker_id,
                        session.problems,
                    )
                    place, address = Place(), f"party-mass service station {session.station}"[:500]
                case BuildingCouncilHeld():
                    council = event.data
                    source_id, source, worker, problems = (
                        council.council_id,
                        "council",
                        council.worker_id,
                        council.problems,
                    )
                    place = await self._place(conn, event.community, building=council.building_id)
                    address = None
                case _:
                    continue
            if not problems or self.store is None:
                continue
            for i, note in enumerate(problems):
                issue_id = f"{source_id}-p{i}"
                ctx = Context(
                    community=event.community,
                    actor=worker,
                    at=event.occurred_at,
                    key=f"filed:{event.id}:p{i}",
                    causation_id=event.id,
                    correlation_id=event.correlation_id or event.id,
                )
                command = ReportIssue(
                    issue_id=issue_id,
                    category=note.category,
                    subcategory=note.subcategory,
                    severity=note.severity,
                    description=note.description,
                    photos=tuple(note.photos),
                    place=place,
                    source=source,
                    reported_by=worker,
                    caused_by_visit=source_id,
                    address=address,
                )
                batch.append((decide(initial_state().model_copy(update={"issue_id": issue_id}), command, ctx), 0))
                FILED_PROBLEMS.labels(source).inc()
        if batch and self.store is not None:
            for (evs, _), result in zip(batch, await self.store.append_many(batch), strict=True):
                if isinstance(result, ConcurrencyError):
                    # The id is taken by other events: never overwrite an issue; say so.
                    log.warning("problem_not_filed", issue_id=evs[0].aggregate_id, reason="id in use")
                elif isinstance(result, Exception):
                    raise result  # broker trouble: the runner retries the batch


# ---------------------------------------------------------------- escalation and deadlines


class EscalationProcess:
    """Rules on report, climbs on unacknowledged notifications, and the deadline timers."""

    name = "issue_escalation"
    event_types = (
        "IssueReported",
        "HotlineOrderReceived",
        "IssueAccepted",
        "IssueEscalated",
        "IssueResolved",
        "IssueReopened",
        "IssueClosed",
        "IssueMerged",
        "IssueOverdue",
        "NotificationAcknowledged",
        "NotificationUnacknowledged",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS cases (
        community  text NOT NULL,
        issue_id   text NOT NULL,
        category   text NOT NULL,
        severity   text NOT NULL,
        level      text NOT NULL,
        hotline    boolean NOT NULL DEFAULT false,
        PRIMARY KEY (community, issue_id)
    );
    CREATE TABLE IF NOT EXISTS timers (
        community     text NOT NULL,
        issue_id      text NOT NULL,
        timer_key     text NOT NULL,
        kind          text NOT NULL,
        level         text NOT NULL,
        due_at        timestamptz NOT NULL,
        state         text NOT NULL DEFAULT 'pending',
        scheduled_by  uuid,
        fired_at      timestamptz,
        attempts      integer NOT NULL DEFAULT 0,
        last_error    text,
        PRIMARY KEY (community, issue_id, timer_key)
    );
    CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at) WHERE state = 'pending';
    CREATE TABLE IF NOT EXISTS acknowledged (
        community        text NOT NULL,
        notification_id  text NOT NULL,
        PRIMARY KEY (community, notification_id)
    );
    """

    def __init__(self, store: EventStore | None = None, policy: Policy | None = None) -> None:
        self.store = store
        self._policy = policy

    @property
    def policy(self) -> Policy:
        if self._policy is None:  # unbound (replay): the configured file, read once
            self._policy = load_policy(IssuesSettings().issues_escalation_file)
        return self._policy

    def bound(self, store: EventStore, policy: Policy) -> EscalationProcess:
        return EscalationProcess(store, policy)

    async def _schedule(self, conn: Conn, event: Event, timer: Timer | None) -> None:
        if timer is None:
            return
        await conn.execute(
            "INSERT INTO timers (community, issue_id, timer_key, kind, level, due_at, scheduled_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            event.community,
            event.aggregate_id,
            timer.key,
            timer.kind,
            timer.level,
            timer.due_at,
            event.id,
        )

    async def _cancel(self, conn: Conn, event: Event, kinds: tuple[str, ...]) -> None:
        await conn.execute(
            "UPDATE timers SET state = 'cancelled' WHERE community = $1 AND issue_id = $2 AND state = 'pending' "
            "AND kind = ANY($3::text[])",
            event.community,
            event.aggregate_id,
            list(kinds),
        )

    async def _case(self, conn: Conn, event: Event) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT * FROM cases WHERE community = $1 AND issue_id = $2", event.community, event.aggregate_id
        )

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        jobs: list[tuple[tuple[str, str], Callable[[], Awaitable[None]]]] = []
        policy = self.policy
        for stored in events:
            event = stored.event()
            match event:
                case IssueReported():
                    d = event.data
                    await conn.execute(
                        "INSERT INTO cases (community, issue_id, category, severity, level, hotline) "
                        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (community, issue_id) DO UPDATE SET "
                        "category = EXCLUDED.category, severity = EXCLUDED.severity, hotline = EXCLUDED.hotline",
                        event.community,
                        event.aggregate_id,
                        d.category,
                        d.severity,
                        d.level,
                        d.hotline_order_no is not None,
                    )
                    if d.hotline_order_no is None:  # work orders run on their own deadlines
                        await self._schedule(
                            conn, event, timer_for_level(policy, d.category, d.severity, d.level, _clock(event))
                        )
                    rule = policy.rule_for(
                        category=d.category,
                        subcategory=d.subcategory,
                        severity=d.severity,
                        source=d.source,
                        reported_at=event.occurred_at,
                    )
                    if rule is not None:  # most reports match no rule: no need to read the issue
                        jobs.append(((event.community, event.aggregate_id), self._rules_job(event)))
                case HotlineOrderReceived():
                    order = event.data
                    await self._schedule(conn, event, Timer("response", "order", _aware(order.response_deadline)))
                    await self._schedule(conn, event, Timer("resolution", "order", _aware(order.resolution_deadline)))
                case IssueAccepted():
                    await self._cancel(conn, event, ("response",))
                case IssueEscalated():
                    esc = event.data
                    case_ = await self._case(conn, event)
                    await conn.execute(
                        "UPDATE cases SET level = $3 WHERE community = $1 AND issue_id = $2",
                        event.community,
                        event.aggregate_id,
                        esc.to_level,
                    )
                    if esc.to_level != esc.from_level:
                        await self._cancel(conn, event, ("level",))
                        if case_ is not None and not case_["hotline"]:
                            await self._schedule(
                                conn,
                                event,
                                timer_for_level(
                                    policy, case_["category"], case_["severity"], esc.to_level, _clock(event)
                                ),
                            )
                case IssueResolved() | IssueClosed() | IssueMerged():
                    await self._cancel(conn, event, ("level", "response", "resolution"))
                case IssueReopened():
                    case_ = await self._case(conn, event)
                    if case_ is not None and not case_["hotline"]:
                        await self._schedule(
                            conn,
                            event,
                            timer_for_level(
                                policy, case_["category"], case_["severity"], case_["level"], _clock(event)
                            ),
                        )
                    elif case_ is not None:  # the work order's resolution deadline still binds
                        await conn.execute(
                            "UPDATE timers SET state = 'pending' WHERE community = $1 AND issue_id = $2 "
                            "AND kind = 'resolution' AND state = 'cancelled'",
                            event.community,
                            event.aggregate_id,
                        )
                case IssueOverdue():
                    if event.data.timer:
                        await conn.execute(
                            "UPDATE timers SET state = 'fired', fired_at = COALESCE(fired_at, $4) "
                            "WHERE community = $1 AND issue_id = $2 AND timer_key = $3",
                            event.community,
                            event.aggregate_id,
                            event.data.timer,
                            event.recorded_at,
                        )
                case NotificationAcknowledged():
                    await conn.execute(
                        "INSERT INTO acknowledged (community, notification_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        event.community,
                        event.data.notification_id,
                    )
                case NotificationUnacknowledged():
                    acked = await conn.fetchval(
                        "SELECT 1 FROM acknowledged WHERE community = $1 AND notification_id = $2",
                        event.community,
                        event.data.notification_id,
                    )
                    if not acked and _ISSUE_ID.match(event.data.subject_ref):  # a digest or such: not ours
                        jobs.append(((event.community, event.data.subject_ref), self._unacknowledged_job(event)))
        if jobs and self.store is not None:
            await _react_per_issue(jobs)

    def _rules_job(self, event: IssueReported) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            assert self.store is not None
            ctx = Context(
                community=event.community,
                actor="issues-rules",
                at=event.occurred_at,
                policy=self.policy,
                key=f"rules:{event.id}",
                causation_id=event.id,
                correlation_id=event.correlation_id or event.id,
            )
            await execute(
                self.store,
                community=event.community,
                issue_id=event.aggregate_id,
                command=ApplyEscalationRules(),
                ctx=ctx,
            )

        return job

    def _unacknowledged_job(self, event: NotificationUnacknowledged) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            assert self.store is not None
            d = event.data
            ctx = Context(
                community=event.community,
                actor="issues-escalation",
                at=event.occurred_at,
                policy=self.policy,
                key=f"unacknowledged:{d.notification_id}",
                causation_id=event.id,
                correlation_id=event.correlation_id or event.id,
            )
            try:
                await execute(
                    self.store,
                    community=event.community,
                    issue_id=d.subject_ref,
                    command=EscalateUnacknowledged(d.notification_id),
                    ctx=ctx,
                )
            except DomainError as err:  # not an issue of ours (e.g. a digest): nothing to climb
                log.info("unacknowledged_ignored", subject_ref=d.subject_ref, reason=err.message)

        return job


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)


# ---------------------------------------------------------------- the deadline worker


@dataclass(frozen=True)
class FireResult:
    fired: int
    skipped: int
    failed: int


async def fire_due_timers_once(pool: asyncpg.Pool, store: EventStore, policy: Policy, *, limit: int = 50) -> FireResult:
    """Fire every due timer once: IssueOverdue (+ IssueEscalated reason overdue) when it still applies.

    Rows are locked (SKIP LOCKED) so several service instances share the work; the events have
    deterministic ids and the command re-checks the issue, so a timer fired again after a crash
    between append and commit changes nothing.
    """
    fired = skipped = failed = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"SELECT community, issue_id, timer_key, kind, level, due_at, attempts FROM {ESCALATION}.timers "
            "WHERE state = 'pending' AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        for row in rows:
            timer = Timer(row["kind"], row["level"], row["due_at"])
            ctx = Context(
                community=row["community"],
                actor="issues-deadlines",
                at=row["due_at"],
                policy=policy,
                key=f"timer:{row['issue_id']}",
            )
            try:
                outcome = await execute(
                    store, community=row["community"], issue_id=row["issue_id"], command=MarkOverdue(timer), ctx=ctx
                )
            except Exception as err:
                failed += 1
                TIMERS_FIRED.labels(timer.kind, "failed").inc()
                log.warning("timer_failed", issue_id=row["issue_id"], timer=row["timer_key"], error=repr(err))
                backoff = min(300.0, 2.0 ** min(row["attempts"], 8))
                await conn.execute(
                    f"UPDATE {ESCALATION}.timers SET attempts = attempts + 1, last_error = $4, "
                    "due_at = now() + make_interval(secs => $5) "
                    "WHERE community = $1 AND issue_id = $2 AND timer_key = $3",
                    row["community"],
                    row["issue_id"],
                    row["timer_key"],
                    repr(err)[:1000],
                    backoff,
                )
                continue
            outcome_name = "fired" if outcome.events or outcome.duplicate else "skipped"
            fired += outcome_name == "fired"
            skipped += outcome_name == "skipped"
            TIMERS_FIRED.labels(timer.kind, outcome_name).inc()
            await conn.execute(
                f"UPDATE {ESCALATION}.timers SET state = $4, fired_at = COALESCE(fired_at, now()), "
                "attempts = attempts + 1 WHERE community = $1 AND issue_id = $2 AND timer_key = $3",
                row["community"],
                row["issue_id"],
                row["timer_key"],
                outcome_name,
            )
    return FireResult(fired, skipped, failed)


async def fire_due_timers(runtime: Runtime) -> None:
    """Background task: fire due deadline timers, forever."""
    ctx = issues_context(runtime)
    while True:
        result = await fire_due_timers_once(runtime.pool, runtime.store, ctx.policy)
        if result.fired or result.skipped:
            log.info("timers_fired", fired=result.fired, skipped=result.skipped, failed=result.failed)
            continue  # there may be more due right now
        await asyncio.sleep(ctx.settings.issues_timer_poll_seconds)


def pending_timers_sql() -> str:
    """Query for an issue's pending timers (used by the API for expected dates)."""
    return (
        f"SELECT kind, level, due_at FROM {ESCALATION}.timers WHERE community = $1 AND issue_id = $2 "
        "AND state = 'pending' ORDER BY due_at"
    )
