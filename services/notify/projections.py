"""The routing projection: turns escalations, overdue issues and missed quotas into outbox rows.

It keeps its own view of IssueReported (place and description for the templates) and of
CommunityRegistered (the street, for street admins' scope), and for each IssueEscalated or
IssueOverdue asks the routing rules who is told, writing one outbox row per (event, recipient,
channel) — in the same transaction as its checkpoint, with ids derived from the event.  A crash
before the commit folds the event again and writes the same rows; a replay finds them there
(``ON CONFLICT DO NOTHING``).  The delivery worker is woken with ``pg_notify`` on commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from shared.events import Event, now
from shared.eventstore import StoredEvent

from .directory import directory
from .domain import Recipient, ack_id, missed_items, notification_id, send_at
from .routing import Facts, Route, Rule, Rules, default_rules, select

log = structlog.get_logger("gridwork.notify.routing")

WAKE_CHANNEL = "gridwork_notify_outbox"

INSERT_DELIVERY = """
INSERT INTO public.notify_deliveries (notification_id, community, source_id, source_type, source_recorded_at,
    correlation_id, subject_ref, kind, rule, recipient_id, recipient_kind, channel, urgent, facts, ack_id, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (notification_id) DO NOTHING
"""

INSERT_ACK = """
INSERT INTO public.notify_acks (ack_id, community, subject_ref, source_id, correlation_id, recipient_id,
    recipient_kind, notification_id, channel, starts_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (ack_id) DO NOTHING
"""


def stored_at(stored: StoredEvent, event: Event) -> datetime:
    """When JetStream stored the event (the start of the escalation-to-delivery clock)."""
    if stored.timestamp_ns:
        return datetime.fromtimestamp(stored.timestamp_ns / 1e9, tz=UTC)
    return event.recorded_at


async def write_routes(
    conn: asyncpg.Connection,
    *,
    routes: Sequence[Route],
    rule: Rule,
    community: str,
    source_id: str,
    source_type: str,
    source_recorded_at: datetime | None,
    correlation_id: Any,
    subject_ref: str,
    kind: str,
    facts: dict[str, Any],
    at: datetime,
) -> int:
    """Outbox rows (and acknowledgement watches) for one routed fact; returns rows inserted."""
    rows = []
    acks = []
    for route in routes:
        due = send_at(route.recipient, urgent=rule.urgent, now=at)
        aid = ack_id(source_id, route.recipient.recipient_id) if rule.ack else None
        for channel in route.channels:
            rows.append(
                (
                    notification_id(source_id, route.recipient.recipient_id, channel),
                    community,
                    source_id,
                    source_type,
                    source_recorded_at,
                    correlation_id,
                    subject_ref,
                    kind,
                    rule.name,
                    route.recipient.recipient_id,
                    route.recipient.kind,
                    channel,
                    rule.urgent,
                    json.dumps(facts, ensure_ascii=False, default=str),
                    aid,
                    due,
                )
            )
        if aid is not None:
            first = route.channels[0]
            acks.append(
                (
                    aid,
                    community,
                    subject_ref,
                    source_id,
                    correlation_id,
                    route.recipient.recipient_id,
                    route.recipient.kind,
                    notification_id(source_id, route.recipient.recipient_id, first),
                    first,
                    due,
                )
            )
    if rows:
        await conn.executemany(INSERT_DELIVERY, rows)
    if acks:
        await conn.executemany(INSERT_ACK, acks)
    return len(rows)


async def note_unrouted(
    conn: asyncpg.Connection, community: str, source_id: str, subject_ref: str, reason: str
) -> None:
    log.warning("unrouted", community=community, source_id=source_id, subject_ref=subject_ref, reason=reason)
    await conn.execute(
        "INSERT INTO public.notify_unrouted (source_id, community, subject_ref, reason) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        source_id,
        community,
        subject_ref,
        reason,
    )


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

    def __init__(self, rules: Rules | None = None) -> None:
        self._rules = rules

    @property
    def rules(self) -> Rules:
        if self._rules is None:
            self._rules = default_rules()
        return self._rules

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        """Fold a batch; wakes the delivery worker when rows were written."""
        directories: dict[str, list[Recipient]] = {}
        # A replay folds into a shadow schema: it rebuilds the views but must not route (and so
        # send) old events again, e.g. to a recipient added to the directory since.
        live = await conn.fetchval("SELECT current_schema()") == f"proj_{self.name}"
        written = 0
        for stored in events:
            event = stored.event()
            if not live and event.type not in ("IssueReported", "CommunityRegistered"):
                continue
            handler = getattr(self, f"_on_{event.type}", None)
            if handler is not None:
                written += await handler(conn, stored, event, directories)
        if written:
            await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)

    async def _directory(
        self, conn: asyncpg.Connection, community: str, cache: dict[str, list[Recipient]]
    ) -> list[Recipient]:
        if community not in cache:
            cache[community] = await directory(conn, community)
        return cache[community]

    async def _on_CommunityRegistered(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
        await conn.execute(
            "INSERT INTO communities (community, street, name) VALUES ($1, $2, $3) "
            "ON CONFLICT (community) DO UPDATE SET street = $2, name = $3",
            e.community,
            e.data.street,
            e.data.name,
        )
        return 0

    async def _on_IssueReported(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
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
        return 0

    async def _issue(self, conn: asyncpg.Connection, community: str, issue_id: str) -> dict[str, Any]:
        row = await conn.fetchrow(
            "SELECT category, subcategory, severity, place, description FROM issues "
            "WHERE community = $1 AND issue_id = $2",
            community,
            issue_id,
        )
        if row is None:
            return {"place": {}}
        return {**dict(row), "place": json.loads(row["place"])}

    async def _route(
        self,
        conn: asyncpg.Connection,
        stored: StoredEvent,
        e: Any,
        facts: Facts,
        kind: str,
        template_facts: dict[str, Any],
        cache: dict[str, list[Recipient]],
    ) -> int:
        rule = self.rules.match(facts)
        source_id = str(e.id)
        issue_id = e.data.issue_id
        if rule is None:
            await note_unrouted(conn, e.community, source_id, issue_id, "no routing rule matches")
            return 0
        if not rule.send_to:
            return 0  # deliberately nobody (handled inside the compound)
        routes = select(rule, await self._directory(conn, e.community, cache), facts.place)
        if not routes:
            await note_unrouted(
                conn, e.community, source_id, issue_id, f"rule {rule.name}: no directory entry with a matching channel"
            )
            return 0
        return await write_routes(
            conn,
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

    async def _on_IssueEscalated(
        self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, cache: dict[str, list[Recipient]]
    ) -> int:
        d = e.data
        issue = await self._issue(conn, e.community, d.issue_id)
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
        return await self._route(conn, stored, e, facts, "escalation", template, cache)

    async def _on_IssueOverdue(
        self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, cache: dict[str, list[Recipient]]
    ) -> int:
        d = e.data
        issue = await self._issue(conn, e.community, d.issue_id)
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
        return await self._route(conn, stored, e, facts, "overdue", template, cache)

    async def _close_watches(self, conn: asyncpg.Connection, e: Any) -> int:
        # A resolved, closed or merged issue needs nobody to acknowledge its escalations any more.
        await conn.execute(
            "UPDATE public.notify_acks SET state = 'moot', closed_at = now() "
            "WHERE community = $1 AND subject_ref = $2 AND state = 'open'",
            e.community,
            e.data.issue_id,
        )
        return 0

    async def _on_IssueResolved(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
        return await self._close_watches(conn, e)

    async def _on_IssueClosed(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
        return await self._close_watches(conn, e)

    async def _on_IssueMerged(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
        return await self._close_watches(conn, e)

    async def _on_QuotaPeriodClosed(self, conn: asyncpg.Connection, stored: StoredEvent, e: Any, _c: Any) -> int:
        d = e.data
        missed = missed_items(item.model_dump() for item in d.items)
        # A late correction (revision > 1) replaces the worker's line while the digest has not gone out.
        await conn.execute(
            "DELETE FROM public.notify_digest_lines WHERE community = $1 AND worker_id = $2 AND period = $3 "
            "AND period_key = $4 AND digest_id IS NULL",
            e.community,
            d.worker_id,
            d.period,
            d.period_key,
        )
        if missed:
            await conn.execute(
                "INSERT INTO public.notify_digest_lines (source_id, community, worker_id, period, period_key, missed) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                str(e.id),
                e.community,
                d.worker_id,
                d.period,
                d.period_key,
                json.dumps(missed),
            )
        return 0
