"""Event counts: events per community, context, type and day — the simplest useful projection.

Operations use it to see what each community is doing; the foundation's benchmarks and tests use
it as the reference fold because it touches every event.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import date

from .db import Conn
from .events import EVENT_TYPES, shanghai_day, shanghai_day_key
from .eventstore import StoredEvent

_MARK = b'"occurred_at":"'


def occurred_day(data: bytes) -> date:
    """The Asia/Shanghai day an event happened, read straight from its JSON bytes.

    Events are written with their occurred_at in +08:00, so the date is the first ten characters;
    any other offset (or an unexpected layout) takes the full parse.
    """
    at = data.find(_MARK)
    if at >= 0:
        start = at + len(_MARK)
        end = data.find(b'"', start)
        return date.fromisoformat(shanghai_day_key(data[start:end].decode()))
    return shanghai_day(json.loads(data)["occurred_at"])


class EventCountsProjection:
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

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        counts: Counter[tuple[str, str, str, date]] = Counter()
        for e in events:
            _ns, community, context, _kind, _id, etype = e.subject.split(".")
            counts[(community, context, etype, occurred_day(e.data))] += 1
        await conn.executemany(
            """INSERT INTO activity (community, context, type, day, events) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (community, context, type, day) DO UPDATE SET events = activity.events + EXCLUDED.events""",
            [(*key, n) for key, n in counts.items()],
        )
