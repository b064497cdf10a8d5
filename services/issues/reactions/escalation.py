"""The escalation process: the rules on report, the climb when a notification went unacknowledged,
and the deadline timers.

It applies the escalation rules to every reported issue, climbs one level when notify says an
escalation was not acknowledged, and keeps the deadline timers in a table written in the same
transaction as its checkpoint (:mod:`.timers` fires them).  A projection, so it runs on the
runner's exactly-once fold; its appends use deterministic event ids and idempotent commands, so a
redelivered or replayed event changes nothing.  Unbound (as listed in the spec, e.g. for
``gridwork replay``) it rebuilds its tables only; the service binds it at start-up.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from shared.db import Conn
from shared.errors import DomainError
from shared.events import SHANGHAI, TOKEN_PATTERN, Event
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
)
from shared.events.notify import NotificationAcknowledged, NotificationUnacknowledged
from shared.eventstore import StoredEvent

from ..bootstrap import IssuesDeps
from ..domain import ApplyEscalationRules, CommandMeta, EscalateUnacknowledged, Policy, Timer, timer_for_level
from ..handlers import execute
from ..rules_files import load_policy
from ..settings import IssuesSettings

log = structlog.get_logger("gridwork.issues")

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


def _clock(event: Event) -> datetime:
    """When a level's deadline clock starts: when the fact reached gridwork, not earlier.

    A problem found on a visit and synced days later (or an escalation of such a report) is not
    overdue before anyone at that level could act on it.
    """
    return max(event.occurred_at, event.recorded_at)


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

    def __init__(self, deps: IssuesDeps | None = None) -> None:
        self.deps = deps
        self._policy = deps.policy if deps is not None else None

    @property
    def policy(self) -> Policy:
        """The escalation policy the deadlines are scheduled by."""
        if self._policy is None:  # unbound (replay): the configured file, read once
            self._policy = load_policy(IssuesSettings().issues_escalation_file)
        return self._policy

    def bound(self, deps: IssuesDeps) -> EscalationProcess:
        """This reaction, escalating through the service's event store under its policy."""
        return EscalationProcess(deps)

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
        """Keep the cases, timers and acknowledgements; then run the batch's reactions (bound only)."""
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
        if jobs and self.deps is not None:
            await _react_per_issue(jobs)

    def _rules_job(self, event: IssueReported) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            assert self.deps is not None
            meta = CommandMeta(
                community=event.community,
                actor="issues-rules",
                at=event.occurred_at,
                key=f"rules:{event.id}",
                causation_id=event.id,
                correlation_id=event.correlation_id or event.id,
            )
            await execute(
                deps=self.deps,
                community=event.community,
                issue_id=event.aggregate_id,
                command=ApplyEscalationRules(),
                meta=meta,
            )

        return job

    def _unacknowledged_job(self, event: NotificationUnacknowledged) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            assert self.deps is not None
            d = event.data
            meta = CommandMeta(
                community=event.community,
                actor="issues-escalation",
                at=event.occurred_at,
                key=f"unacknowledged:{d.notification_id}",
                causation_id=event.id,
                correlation_id=event.correlation_id or event.id,
            )
            try:
                await execute(
                    deps=self.deps,
                    community=event.community,
                    issue_id=d.subject_ref,
                    command=EscalateUnacknowledged(d.notification_id),
                    meta=meta,
                )
            except DomainError as err:  # not an issue of ours (e.g. a digest): nothing to climb
                log.info("unacknowledged_ignored", subject_ref=d.subject_ref, reason=err.message)

        return job


def _aware(value: datetime) -> datetime:
    # A deadline stored without an offset is read as local (Asia/Shanghai) time, the hotline's own.
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)
