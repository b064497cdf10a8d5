"""Read models of the issues service.

* ``issues_board``: every issue's current state (folded with the aggregate's own ``evolve``, so the
  board can never disagree with the aggregate) and its history, for lists, filters, duplicate
  suggestions and Open311.
* ``hotline_feedback``: the outbox of status changes owed to the 12345 hotline, written in the
  same transaction as the checkpoint; :mod:`services.issues.reactions.hotline_feedback` delivers it.

The two process managers of :mod:`services.issues.reactions` (``issue_filing``,
``issue_escalation``) are projections too and own their tables the same way.  Every table of the
service belongs to one of these projections (created from its ``ddl`` in its own schema, rebuilt
by ``gridwork replay``), so the service has no ``migrations/`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.db import Conn
from shared.events.issues import (
    HotlineFeedbackSent,
    HotlineOrderReceived,
)
from shared.events.visits import CommunityMoved, CommunityRegistered
from shared.eventstore import StoredEvent

from .domain import IssueState, evolve, service_code
from .domain.hotline import feedback_for

ISSUE_EVENT_TYPES = (
    "IssueReported",
    "IssueAccepted",
    "IssueAssigned",
    "IssueEscalated",
    "IssueResolved",
    "IssueVerified",
    "IssueReopened",
    "IssueClosed",
    "IssueMerged",
    "IssueOverdue",
    "HotlineOrderReceived",
    "HotlineFeedbackSent",
    "IssueRedacted",
)

#: The schemas the queries and the workers read: the board, the hotline outbox, and the escalation
#: process's cases and timers (the process itself is in :mod:`services.issues.reactions.escalation`).
BOARD = "proj_issues_board"
OUTBOX = "proj_hotline_feedback"
ESCALATION = "proj_issue_escalation"


class IssuesBoard:
    """Current state of every issue, its history, and each community's street."""

    name = "issues_board"
    event_types = (*ISSUE_EVENT_TYPES, "CommunityRegistered", "CommunityMoved")
    ddl = """
    CREATE TABLE IF NOT EXISTS issues (
        community         text NOT NULL,
        issue_id          text NOT NULL,
        status            text NOT NULL,
        is_open           boolean NOT NULL,
        category          text,
        subcategory       text,
        service_code      text,
        severity          text,
        level             text,
        target            text,
        source            text,
        compound          text,
        phase             text,
        building          text,
        lat               double precision,
        lon               double precision,
        hotline_order_no  text,
        reported_at       timestamptz,
        updated_at        timestamptz,
        revision          integer NOT NULL,
        state             jsonb NOT NULL,
        PRIMARY KEY (community, issue_id)
    );
    CREATE INDEX IF NOT EXISTS issues_filter ON issues (community, status, category, level);
    CREATE INDEX IF NOT EXISTS issues_nearby ON issues (community, category, compound, building) WHERE is_open;
    CREATE INDEX IF NOT EXISTS issues_reported ON issues (reported_at);
    CREATE INDEX IF NOT EXISTS issues_grid ON issues (community, (state->'place'->>'grid'));
    CREATE TABLE IF NOT EXISTS history (
        community    text NOT NULL,
        issue_id     text NOT NULL,
        seq          bigint NOT NULL,
        version      integer NOT NULL,
        type         text NOT NULL,
        occurred_at  timestamptz NOT NULL,
        actor        text NOT NULL,
        data         jsonb NOT NULL,
        PRIMARY KEY (community, issue_id, seq)
    );
    CREATE TABLE IF NOT EXISTS communities (
        community  text PRIMARY KEY,
        street     text NOT NULL,
        name       text
    );
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold the batch into each touched issue's row (one read and one write per batch) and its history."""
        decoded = [(s, s.event()) for s in events]
        keys = {(e.community, e.aggregate_id) for _, e in decoded if e.context == "issues"}
        states: dict[tuple[str, str], IssueState] = {}
        if keys:
            rows = await conn.fetch(
                "SELECT community, issue_id, state FROM issues "
                "WHERE (community, issue_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
            states = {(r["community"], r["issue_id"]): IssueState.model_validate_json(r["state"]) for r in rows}
        history = []
        touched: set[tuple[str, str]] = set()
        for stored, event in decoded:
            if isinstance(event, CommunityRegistered | CommunityMoved):
                await conn.execute(
                    "INSERT INTO communities (community, street, name) VALUES ($1, $2, $3) "
                    "ON CONFLICT (community) DO UPDATE SET street = EXCLUDED.street, name = EXCLUDED.name",
                    event.data.community_id,
                    event.data.street,
                    event.data.name,
                )
                continue
            key = (event.community, event.aggregate_id)
            state = states.get(key) or IssueState(issue_id=event.aggregate_id, community=event.community)
            states[key] = evolve(state, event)
            touched.add(key)
            history.append(
                (
                    event.community,
                    event.aggregate_id,
                    stored.seq,
                    event.aggregate_version,
                    event.type,
                    event.occurred_at,
                    event.actor,
                    event.data.model_dump_json(),
                )
            )
        if touched:
            await conn.executemany(
                """INSERT INTO issues (community, issue_id, status, is_open, category, subcategory, service_code,
                       severity, level, target, source, compound, phase, building, lat, lon, hotline_order_no,
                       reported_at, updated_at, revision, state)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)
                   ON CONFLICT (community, issue_id) DO UPDATE SET
                       status = EXCLUDED.status, is_open = EXCLUDED.is_open, category = EXCLUDED.category,
                       subcategory = EXCLUDED.subcategory, service_code = EXCLUDED.service_code,
                       severity = EXCLUDED.severity, level = EXCLUDED.level, target = EXCLUDED.target,
                       source = EXCLUDED.source, compound = EXCLUDED.compound, phase = EXCLUDED.phase,
                       building = EXCLUDED.building, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
                       hotline_order_no = EXCLUDED.hotline_order_no, reported_at = EXCLUDED.reported_at,
                       updated_at = EXCLUDED.updated_at, revision = EXCLUDED.revision, state = EXCLUDED.state""",
                [_row(states[k]) for k in touched],
            )
        if history:
            await conn.executemany(
                "INSERT INTO history (community, issue_id, seq, version, type, occurred_at, actor, data) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                history,
            )


def _row(s: IssueState) -> tuple[Any, ...]:
    p = s.place
    return (
        s.community,
        s.issue_id,
        s.status,
        s.is_open,
        s.category,
        s.subcategory,
        service_code(s.category, s.subcategory) if s.category else None,
        s.severity,
        s.level,
        s.target,
        s.source,
        p.compound,
        p.phase,
        p.building,
        p.lat,
        p.lon,
        s.hotline_order_no,
        s.reported_at,
        s.updated_at,
        s.revision,
        s.model_dump_json(),
    )


# ---------------------------------------------------------------- hotline outbox


class HotlineOutbox:
    """Status changes of hotline issues waiting to be reported back to 12345 (the outbox)."""

    name = "hotline_feedback"
    event_types = (
        "HotlineOrderReceived",
        "IssueAccepted",
        "IssueAssigned",
        "IssueEscalated",
        "IssueResolved",
        "IssueVerified",
        "IssueReopened",
        "IssueClosed",
        "IssueMerged",
        "HotlineFeedbackSent",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS orders (
        community  text NOT NULL,
        issue_id   text NOT NULL,
        order_no   text NOT NULL,
        PRIMARY KEY (community, issue_id)
    );
    CREATE TABLE IF NOT EXISTS outbox (
        feedback_id      text PRIMARY KEY,
        community        text NOT NULL,
        issue_id         text NOT NULL,
        order_no         text NOT NULL,
        seq              bigint NOT NULL,
        status           text NOT NULL,
        note             text,
        occurred_at      timestamptz NOT NULL,
        attempts         integer NOT NULL DEFAULT 0,
        last_error       text,
        next_attempt_at  timestamptz NOT NULL DEFAULT now(),
        sent_at          timestamptz
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox (seq) WHERE sent_at IS NULL;
    -- a row the hotline refused for good (a 4xx): kept with its reason, no longer tried
    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS dead_at timestamptz;
    """

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Remember which issues are work orders; queue each status change of one; mark what was sent."""
        for stored in events:
            event = stored.event()
            if isinstance(event, HotlineOrderReceived):
                await conn.execute(
                    "INSERT INTO orders (community, issue_id, order_no) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    event.community,
                    event.aggregate_id,
                    event.data.order_no,
                )
                continue
            if isinstance(event, HotlineFeedbackSent):
                if event.causation_id is not None:
                    await conn.execute(
                        "UPDATE outbox SET sent_at = COALESCE(sent_at, $2) WHERE feedback_id = $1",
                        str(event.causation_id),
                        event.occurred_at,
                    )
                continue
            change = feedback_for(event)
            if change is None:
                continue
            order_no = await conn.fetchval(
                "SELECT order_no FROM orders WHERE community = $1 AND issue_id = $2",
                event.community,
                event.aggregate_id,
            )
            if order_no is None:
                continue  # not a hotline issue
            await conn.execute(
                """INSERT INTO outbox (feedback_id, community, issue_id, order_no, seq, status, note, occurred_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
                str(event.id),
                event.community,
                event.aggregate_id,
                order_no,
                stored.seq,
                change[0],
                change[1],
                event.occurred_at,
            )
