"""Timers: escalations nobody acknowledged in time, and the secretary's daily digest.

* An open acknowledgement watch past its recipient kind's deadline becomes
  NotificationUnacknowledged (subject_ref = the issue id); the issues service climbs the ladder
  on it.  The row lock is held while the event is appended, so two notify processes never both
  report it, and the event id is derived from the watch.
* Missed 5+1 quotas collect as digest lines.  Once a day, after ``notify_digest_at`` and once no
  new line came for ``notify_digest_settle_seconds`` (scoring closes a day's periods in a burst),
  a community's open lines become ONE digest, routed like any other fact to the secretary.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import asyncpg
import structlog

from shared.db import Conn
from shared.events import now
from shared.service import Runtime

from ..bootstrap import NotifyDeps
from ..domain.acknowledgement import AckWatch, ReportUnacknowledged, decide, evolve
from ..domain.digest import digest_due, digest_id
from ..domain.ids import as_uuid
from ..domain.routing import Facts, RoutingRules, select
from ..metrics import ACKNOWLEDGEMENTS, DIGESTS
from ..projections import Outbox, note_unrouted
from ..queries import directory
from ..settings import FALLBACK_ACK_DEADLINE
from ..steps import append_steps

log = structlog.get_logger("gridwork.notify.timers")

DUE_WATCHES = """
SELECT a.*, extract(epoch FROM now() - a.starts_at) AS waited
FROM notify_acks a
LEFT JOIN unnest($1::text[], $2::float8[]) AS d(kind, secs) ON d.kind = a.recipient_kind
WHERE a.state = 'open' AND a.starts_at + make_interval(secs => COALESCE(d.secs, $3)) <= now()
ORDER BY a.starts_at
LIMIT 100
FOR UPDATE OF a SKIP LOCKED
"""


async def report_unacknowledged(*, deps: NotifyDeps) -> int:
    """Turn every watch past its deadline into NotificationUnacknowledged; returns how many."""
    settings = deps.settings
    deadlines = settings.notify_ack_deadline_seconds
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            DUE_WATCHES, list(deadlines), [float(v) for v in deadlines.values()], FALLBACK_ACK_DEADLINE
        )
        for row in rows:
            watch = AckWatch(
                community=row["community"],
                notification_id=row["notification_id"],
                channel=row["channel"],
                recipient_id=row["recipient_id"],
                subject_ref=row["subject_ref"],
                ack_id=row["ack_id"],
                state=row["state"],
                version=row["version"],
                causation_id=as_uuid(row["source_id"]),
                correlation_id=row["correlation_id"],
            )
            deadline = row["starts_at"] + timedelta(seconds=settings.ack_deadline(row["recipient_kind"]))
            events = decide(watch, ReportUnacknowledged(at=deadline, waited_seconds=float(row["waited"])))
            version, _ = await append_steps(
                deps.store, events, watch.version, lambda e: e.type == "NotificationUnacknowledged"
            )
            reported = evolve(watch, events[0])
            await conn.execute(
                "UPDATE notify_acks SET state = $3, version = $2, closed_at = now() WHERE ack_id = $1",
                row["ack_id"],
                version,
                reported.state,
            )
            ACKNOWLEDGEMENTS.labels(row["recipient_kind"], "unacknowledged").inc()
            log.warning(
                "unacknowledged",
                community=row["community"],
                issue=row["subject_ref"],
                recipient=row["recipient_id"],
                waited_seconds=round(float(row["waited"]), 1),
            )
    return len(rows)


async def send_digests(*, deps: NotifyDeps) -> int:
    """Put each community's due daily digest in the outbox; returns how many digests."""
    settings = deps.settings
    current = now()
    async with deps.pool.acquire() as conn:
        pending = await conn.fetch(
            "SELECT community, max(received_at) AS last FROM notify_digest_lines WHERE digest_id IS NULL "
            "GROUP BY community"
        )
    made = 0
    for row in pending:
        if not digest_due(current, settings.notify_digest_at, row["last"], settings.notify_digest_settle_seconds):
            continue
        async with deps.pool.acquire() as conn, conn.transaction():
            made += await _one_digest(conn, deps.rules, row["community"], current)
    return made


async def _one_digest(conn: Conn, rules: RoutingRules, community: str, current: datetime) -> int:
    day = current.date()
    did = digest_id(community, day)
    # One digest per community and day: a second process (or a later line) finds it made.
    created = await conn.fetchval(
        "INSERT INTO notify_digests (digest_id, community, day, lines) VALUES ($1, $2, $3, 0) "
        "ON CONFLICT DO NOTHING RETURNING digest_id",
        did,
        community,
        day,
    )
    if created is None:
        return 0
    lines = await conn.fetch(
        "UPDATE notify_digest_lines SET digest_id = $2 WHERE community = $1 AND digest_id IS NULL "
        "RETURNING worker_id, period, period_key, missed, received_at",
        community,
        did,
    )
    lines = sorted(lines, key=lambda r: (r["worker_id"], r["period"], r["period_key"]))
    await conn.execute("UPDATE notify_digests SET lines = $2 WHERE digest_id = $1", did, len(lines))
    facts = {
        "day": day.isoformat(),
        "lines": [
            {
                "worker_id": r["worker_id"],
                "period": r["period"],
                "period_key": r["period_key"],
                "missed": json.loads(r["missed"]),
            }
            for r in lines
        ],
    }
    rule = rules.match(Facts(on="quota_missed", at=current))
    routes = select(rule, await directory(conn, community), {}) if rule else []
    if not routes:
        await note_unrouted(conn, community, did, did, "no secretary in the directory for the daily digest")
        return 1
    assert rule is not None
    outbox = Outbox()
    outbox.add(
        routes=routes,
        rule=rule,
        community=community,
        source_id=did,
        source_type="DailyDigest",
        source_recorded_at=None,
        correlation_id=None,
        subject_ref=did,
        kind="digest",
        facts=facts,
        at=current,
    )
    await outbox.flush(conn)
    DIGESTS.inc()
    log.info("digest", community=community, digest_id=did, lines=len(lines))
    return 1


async def timers(runtime: Runtime[NotifyDeps]) -> None:
    """Background task: check acknowledgement deadlines and digests every ``notify_timer_seconds``."""
    deps = runtime.deps
    while True:
        try:
            await report_unacknowledged(deps=deps)
            await send_digests(deps=deps)
        except (asyncpg.PostgresError, OSError) as err:  # a database hiccup: try again next tick
            log.warning("timers_failed", error=repr(err))
        await asyncio.sleep(deps.settings.notify_timer_seconds)
