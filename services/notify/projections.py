"""The routing projection: turns escalations, overdue issues and missed quotas into outbox rows.

It keeps its own view of IssueReported (place and description for the templates) and of
CommunityRegistered (the street, for street admins' scope), and for each IssueEscalated or
IssueOverdue asks the routing rules who is told, writing one outbox row per (event, recipient,
channel) — in the same transaction as its checkpoint, with ids derived from the event.  A crash
before the commit folds the event again and writes the same rows; a replay finds them there
(``ON CONFLICT DO NOTHING``).  The delivery worker is woken with ``pg_notify`` on commit.

Round trips are what an escalation's latency is made of, so each routed event costs one lookup
(issue view, directory and schema in one query) and each batch one write (outbox rows,
acknowledgement watches and the wake-up in one statement).

A batch that wrote outbox rows commits without waiting for the WAL flush.  That is safe here: the
rows and the checkpoint are lost or kept together, and after a database crash the runner takes
up the stream again at the checkpoint it finds, so a lost batch is folded again — into the same
notification ids, which is also what a receiver sees if one of them had already been sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from shared.db import Conn
from shared.events import Event, now
from shared.eventstore import StoredEvent

from .bootstrap import default_rules
from .domain.digest import missed_items
from .domain.directory import Recipient, send_at
from .domain.ids import ack_id, notification_id
from .domain.routing import Facts, Route, RoutingRule, RoutingRules, select
from .queries import recipient_of

log = structlog.get_logger("gridwork.notify.routing")

WAKE_CHANNEL = "gridwork_notify_outbox"

WRITE_OUTBOX = """
WITH deliveries AS (
    INSERT INTO notify_deliveries (notification_id, community, source_id, source_type, source_recorded_at,
        correlation_id, subject_ref, kind, rule, recipient_id, recipient_kind, channel, urgent, facts, ack_id, due_at)
    SELECT n, c, s, st, sr, cid, sub, k, r, rid, rk, ch, u, f::jsonb, a, due
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::uuid[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::text[], $15::text[],
                $16::timestamptz[]) AS d(n, c, s, st, sr, cid, sub, k, r, rid, rk, ch, u, f, a, due)
    ON CONFLICT (notification_id) DO NOTHING
    RETURNING 1
), watches AS (
    INSERT INTO notify_acks (ack_id, community, subject_ref, source_id, correlation_id, recipient_id,
        recipient_kind, notification_id, channel, starts_at)
    SELECT * FROM unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::uuid[], $22::text[], $23::text[],
                         $24::text[], $25::text[], $26::timestamptz[])
    ON CONFLICT (ack_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM deliveries) AS written, (SELECT count(*) FROM watches) AS watches,
       (SELECT pg_notify($27, '') WHERE EXISTS (SELECT 1 FROM deliveries)) AS woke,
       set_config('synchronous_commit', 'off', true) AS commit_async
"""

LOOKUP = """
SELECT current_schema() AS schema,
       (SELECT row_to_json(i) FROM issues i WHERE i.community = $1 AND i.issue_id = $2) AS issue,
       (SELECT coalesce(json_agg(r ORDER BY r.recipient_id), '[]') FROM (
            SELECT community, recipient_id, kind, name, desk, language, agency, quiet_hours, covers, channels, active
            FROM notify_recipients WHERE community = $1 AND active) r) AS directory
"""


def stored_at(stored: StoredEvent, event: Event) -> datetime:
    """When JetStream stored the event (the start of the escalation-to-delivery clock)."""
    if stored.timestamp_ns:
        return datetime.fromtimestamp(stored.timestamp_ns / 1e9, tz=UTC)
    return event.recorded_at


@dataclass
class Outbox:
    """Outbox rows and acknowledgement watches collected for one transaction, written in one statement."""

    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    watches: list[tuple[Any, ...]] = field(default_factory=list)

    def add(
        self,
        *,
        routes: Sequence[Route],
        rule: RoutingRule,
        community: str,
        source_id: str,
        source_type: str,
        source_recorded_at: datetime | None,
        correlation_id: Any,
        subject_ref: str,
        kind: str,
        facts: dict[str, Any],
        at: datetime,
    ) -> None:
        """One routed fact: a row per (recipient, channel), a watch per recipient if it must acknowledge."""
        facts_json = json.dumps(facts, ensure_ascii=False, default=str)
        for route in routes:
            rid = route.recipient.recipient_id
            due = send_at(route.recipient, urgent=rule.urgent, now=at)
            aid = ack_id(source_id, rid) if rule.ack else None
            for channel in route.channels:
                self.deliveries.append(
                    (notification_id(source_id, rid, channel), community, source_id, source_type,
                     source_recorded_at, correlation_id, subject_ref, kind, rule.name, rid, route.recipient.kind,
                     channel, rule.urgent, facts_json, aid, due)
                )  # fmt: skip
            if aid is not None:
                first = route.channels[0]
                self.watches.append(
                    (aid, community, subject_ref, source_id, correlation_id, rid, route.recipient.kind,
                     notification_id(source_id, rid, first), first, due)
                )  # fmt: skip

    async def flush(self, conn: Conn) -> int:
        """Write everything collected (idempotently) and wake the delivery worker; returns new rows."""
        if not self.deliveries:
            return 0
        columns = [list(col) for col in zip(*self.deliveries, strict=True)]
        watch_columns = [list(col) for col in zip(*self.watches, strict=True)] if self.watches else [[]] * 10
        row = await conn.fetchrow(WRITE_OUTBOX, *columns, *watch_columns, WAKE_CHANNEL)
        assert row is not None  # WRITE_OUTBOX always returns its one row
        self.deliveries, self.watches = [], []
        return int(row["written"])


async def note_unrouted(conn: Conn, community: str, source_id: str, subject_ref: str, reason: str) -> None:
    """Keep a fact no rule or directory entry could place (listed by ``GET …/unrouted``)."""
    log.warning("unrouted", community=community, source_id=source_id, subject_ref=subject_ref, reason=reason)
    await conn.execute(
        "INSERT INTO notify_unrouted (source_id, community, subject_ref, reason) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        source_id,
        community,
        subject_ref,
        reason,
    )


@dataclass
class _RoutedBatch:
    """What one call of ``apply`` carries from event to event."""

    outbox: Outbox = field(default_factory=Outbox)
    live: bool | None = None


class NotifyRouting:
    """Projection ``notify_routing``: issue view + routing of escalations, overdue issues and missed quotas."""

    name = "notify_routing"
    event_types = (
        "IssueReported",
        "IssueEscalated",
        "IssueOverdue",
        "IssueResolved",
        "IssueClosed",
        "IssueMerged",
        "QuotaPeriodClosed",
        "CommunityRegistered",
        "CommunityMoved",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS issues (
        community    text NOT NULL,
        issue_id     text NOT NULL,
        category     text NOT NULL,
        subcategory  text,
        severity     text NOT NULL,
        place        jsonb NOT NULL,
        description  text NOT NULL,
        reported_at  timestamptz NOT NULL,
        PRIMARY KEY (community, issue_id)
    );
    CREATE TABLE IF NOT EXISTS communities (
        community    text PRIMARY KEY,
        street       text NOT NULL,
        name         text NOT NULL
    );
    """

    def __init__(self, rules: RoutingRules | None = None) -> None:
        self._rules = rules

    @property
    def rules(self) -> RoutingRules:
        """The routing rules (those shipped in ``routing.toml`` unless given)."""
        if self._rules is None:
            self._rules = default_rules()
        return self._rules

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold a batch; the outbox rows of all its events go in one statement at the end."""
        batch = _RoutedBatch()
        for stored in events:
            event = stored.event()
            handler = getattr(self, f"_on_{event.type}", None)
            if handler is not None:
                await handler(conn, stored, event, batch)
        await batch.outbox.flush(conn)

    async def _live(self, conn: Conn, batch: _RoutedBatch, schema: str | None = None) -> bool:
        """Whether this is the live schema.  A replay folds into a shadow schema: it rebuilds the views
        but must not route (and so send) old events again, e.g. to a recipient added since."""
        if batch.live is None:
            if schema is None:
                schema = await conn.fetchval("SELECT current_schema()")
            batch.live = schema == f"proj_{self.name}"
        return batch.live

    async def _on_CommunityRegistered(self, conn: Conn, stored: StoredEvent, e: Any, _b: _RoutedBatch) -> None:
        await conn.execute(
            "INSERT INTO communities (community, street, name) VALUES ($1, $2, $3) "
            "ON CONFLICT (community) DO UPDATE SET street = $2, name = $3",
            e.community,
            e.data.street,
            e.data.name,
        )

    _on_CommunityMoved = _on_CommunityRegistered  # the move carries the whole registration

    async def _on_IssueReported(self, conn: Conn, stored: StoredEvent, e: Any, _b: _RoutedBatch) -> None:
        d = e.data
        await conn.execute(
            """INSERT INTO issues (community, issue_id, category, subcategory, severity, place, description,
                   reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (community, issue_id) DO NOTHING""",
            e.community,
            d.issue_id,
            d.category,
            d.subcategory,
            d.severity,
            d.place.model_dump_json(exclude_none=True),
            d.description,
            e.occurred_at,
        )

    async def _lookup(
        self, conn: Conn, batch: _RoutedBatch, community: str, issue_id: str
    ) -> tuple[dict[str, Any], list[Recipient]] | None:
        """The issue view and the community's directory in one round trip (None during a replay)."""
        row = await conn.fetchrow(LOOKUP, community, issue_id)
        assert row is not None  # LOOKUP reads from no table: it always returns its one row
        if not await self._live(conn, batch, row["schema"]):
            return None
        issue = json.loads(row["issue"]) if row["issue"] else {"place": {}}
        return issue, [recipient_of(r) for r in json.loads(row["directory"])]

    async def _route(
        self,
        conn: Conn,
        batch: _RoutedBatch,
        stored: StoredEvent,
        e: Any,
        facts: Facts,
        kind: str,
        template_facts: dict[str, Any],
        directory: list[Recipient],
    ) -> None:
        rule = self.rules.match(facts)
        source_id = str(e.id)
        issue_id = e.data.issue_id
        if rule is None:
            await note_unrouted(conn, e.community, source_id, issue_id, "no routing rule matches")
            return
        if not rule.send_to:
            return  # deliberately nobody (handled inside the compound)
        routes = select(rule, directory, facts.place)
        if not routes:
            await note_unrouted(
                conn, e.community, source_id, issue_id, f"rule {rule.name}: no directory entry with a matching channel"
            )
            return
        batch.outbox.add(
            routes=routes,
            rule=rule,
            community=e.community,
            source_id=source_id,
            source_type=e.type,
            source_recorded_at=stored_at(stored, e),
            correlation_id=e.correlation_id or e.id,
            subject_ref=issue_id,
            kind=kind,
            facts=template_facts,
            at=now(),
        )

    async def _on_IssueEscalated(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        d = e.data
        found = await self._lookup(conn, batch, e.community, d.issue_id)
        if found is None:
            return
        issue, directory = found
        facts = Facts(
            on="escalated",
            at=e.occurred_at,
            category=d.category or issue.get("category"),
            subcategory=d.subcategory or issue.get("subcategory"),
            severity=d.severity or issue.get("severity"),
            target=d.target,
            to_level=d.to_level,
            reason=d.reason,
            place=issue["place"],
        )
        template = {
            "issue_id": d.issue_id,
            "category": facts.category,
            "subcategory": facts.subcategory,
            "severity": facts.severity,
            "place": issue["place"],
            "description": issue.get("description"),
            "from_level": d.from_level,
            "to_level": d.to_level,
            "target": d.target,
            "reason": d.reason,
            "note": d.note,
            "escalated_at": e.occurred_at.isoformat(),
        }
        await self._route(conn, batch, stored, e, facts, "escalation", template, directory)

    async def _on_IssueOverdue(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        d = e.data
        found = await self._lookup(conn, batch, e.community, d.issue_id)
        if found is None:
            return
        issue, directory = found
        facts = Facts(
            on="overdue",
            at=e.occurred_at,
            category=issue.get("category"),
            subcategory=issue.get("subcategory"),
            severity=issue.get("severity"),
            to_level=d.level,
            place=issue["place"],
        )
        template = {
            "issue_id": d.issue_id,
            "category": facts.category,
            "subcategory": facts.subcategory,
            "place": issue["place"],
            "description": issue.get("description"),
            "level": d.level,
            "deadline": d.deadline.isoformat(),
            "state": d.state,
        }
        await self._route(conn, batch, stored, e, facts, "overdue", template, directory)

    async def _close_watches(self, conn: Conn, e: Any, batch: _RoutedBatch) -> None:
        # A resolved, closed or merged issue needs nobody to acknowledge its escalations any more.
        if not await self._live(conn, batch):
            return
        await conn.execute(
            "UPDATE notify_acks SET state = 'moot', closed_at = now() "
            "WHERE community = $1 AND subject_ref = $2 AND state = 'open'",
            e.community,
            e.data.issue_id,
        )

    async def _on_IssueResolved(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        await self._close_watches(conn, e, batch)

    async def _on_IssueClosed(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        await self._close_watches(conn, e, batch)

    async def _on_IssueMerged(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        await self._close_watches(conn, e, batch)

    async def _on_QuotaPeriodClosed(self, conn: Conn, stored: StoredEvent, e: Any, batch: _RoutedBatch) -> None:
        if not await self._live(conn, batch):
            return
        d = e.data
        missed = missed_items(item.model_dump() for item in d.items)
        # A late correction (revision > 1) replaces the worker's line while the digest has not gone out.
        await conn.execute(
            "DELETE FROM notify_digest_lines WHERE community = $1 AND worker_id = $2 AND period = $3 "
            "AND period_key = $4 AND digest_id IS NULL",
            e.community,
            d.worker_id,
            d.period,
            d.period_key,
        )
        if missed:
            await conn.execute(
                "INSERT INTO notify_digest_lines (source_id, community, worker_id, period, period_key, missed) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                str(e.id),
                e.community,
                d.worker_id,
                d.period,
                d.period_key,
                json.dumps(missed),
            )
