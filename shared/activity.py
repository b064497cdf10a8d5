"""Activity: events per community, context, type and day — the simplest useful projection.

Operations use it to see what each community is doing; the foundation's benchmarks and tests use
it as the reference fold because it touches every event.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from .events import EVENT_TYPES, SHANGHAI
from .eventstore import StoredEvent


class ActivityProjection:
    """Counts every event by (community, context, type, day of occurrence in Asia/Shanghai)."""

    name = "activity"
    event_types: Sequence[str] = tuple(EVENT_TYPES)
    ddl = """
        CREATE TABLE IF NOT EXISTS activity (
            community text NOT NULL,
            context   text NOT NULL,
            type      text NOT NULL,
            day       date NOT NULL,
            events    bigint NOT NULL,
            PRIMARY KEY (community, context, type, day)
        );
    """

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        counts: Counter[tuple[str, str, str, date]] = Counter()
        for e in events:
            _ns, community, context, _kind, _id, etype = e.subject.split(".")
            occurred = json.loads(e.data)["occurred_at"]
            day = datetime.fromisoformat(occurred).astimezone(SHANGHAI).date()
            counts[(community, context, etype, day)] += 1
        await conn.executemany(
            """INSERT INTO activity (community, context, type, day, events) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (community, context, type, day) DO UPDATE SET events = activity.events + EXCLUDED.events""",
            [(*key, n) for key, n in counts.items()],
        )
