"""The deadline worker: fires the escalation process's due timers.

A due timer becomes ``IssueOverdue`` (+ ``IssueEscalated`` reason overdue, while the issue can
still climb) when it still applies — the command re-checks the issue, so a timer of a case that was
solved or climbed meanwhile is skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from shared.service import Runtime

from ..bootstrap import IssuesDeps
from ..domain import CommandMeta, MarkOverdue, Timer
from ..handlers import execute
from ..metrics import TIMERS_FIRED
from ..projections import ESCALATION

log = structlog.get_logger("gridwork.issues")


@dataclass(frozen=True)
class FireResult:
    """What one round of the deadline worker did: timers fired, found moot (skipped), failed."""

    fired: int
    skipped: int
    failed: int


async def fire_due_timers_once(*, deps: IssuesDeps, limit: int = 50) -> FireResult:
    """Fire every due timer once: IssueOverdue (+ IssueEscalated reason overdue) when it still applies.

    Rows are locked (SKIP LOCKED) so several service instances share the work; the events have
    deterministic ids and the command re-checks the issue, so a timer fired again after a crash
    between append and commit changes nothing.
    """
    fired = skipped = failed = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"SELECT community, issue_id, timer_key, kind, level, due_at, attempts FROM {ESCALATION}.timers "
            "WHERE state = 'pending' AND due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        for row in rows:
            timer = Timer(row["kind"], row["level"], row["due_at"])
            meta = CommandMeta(
                community=row["community"],
                actor="issues-deadlines",
                at=row["due_at"],
                key=f"timer:{row['issue_id']}",
            )
            try:
                outcome = await execute(
                    deps=deps,
                    community=row["community"],
                    issue_id=row["issue_id"],
                    command=MarkOverdue(timer),
                    meta=meta,
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


async def fire_due_timers(runtime: Runtime[IssuesDeps]) -> None:
    """Background task: fire due deadline timers, forever."""
    deps = runtime.deps
    while True:
        result = await fire_due_timers_once(deps=deps)
        if result.fired or result.skipped:
            log.info("timers_fired", fired=result.fired, skipped=result.skipped, failed=result.failed)
            continue  # there may be more due right now
        await asyncio.sleep(deps.settings.issues_timer_poll_seconds)
