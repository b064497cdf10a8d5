"""Application functions of the notify service (keyword-only dependencies, no HTTP in here)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.errors import Conflict, Forbidden, NotFound
from shared.events.notify import NotificationAcknowledged, NotificationData
from shared.eventstore import EventStore

from .domain import as_uuid
from .metrics import ACKNOWLEDGEMENTS
from .outbox import append_steps


async def acknowledge(
    *,
    pool: asyncpg.Pool,
    store: EventStore,
    community: str,
    notification_id: str,
    actor: str,
    via: str,
    agency: str | None = None,
) -> dict[str, Any]:
    """The recipient confirms it got an escalation: NotificationAcknowledged, once.

    ``agency``: the caller's agency claim when acknowledging through the API; it must be the
    recipient's.  Acknowledging again answers with the first acknowledgement.  A late
    acknowledgement (after NotificationUnacknowledged) is still recorded.
    """
    async with pool.acquire() as conn, conn.transaction():
        delivery = await conn.fetchrow(
            "SELECT d.notification_id, d.channel, d.recipient_id, d.subject_ref, d.ack_id, r.agency "
            "FROM notify_deliveries d LEFT JOIN notify_recipients r "
            "ON r.community = d.community AND r.recipient_id = d.recipient_id "
            "WHERE d.community = $1 AND d.notification_id = $2",
            community,
            notification_id,
        )
        if delivery is None:
            raise NotFound(f"no notification {notification_id} in {community}", field="notification_id")
        if agency is not None and delivery["agency"] != agency:
            raise Forbidden("this notification went to another agency", field="notification_id")
        if delivery["ack_id"] is None:
            raise Conflict("this notification does not ask for an acknowledgement", field="notification_id")
        watch = await conn.fetchrow("SELECT * FROM notify_acks WHERE ack_id = $1 FOR UPDATE", delivery["ack_id"])
        assert watch is not None
        if watch["state"] == "acknowledged":
            return _answer(watch, already=True)
        event = NotificationAcknowledged.new(
            community=community,
            aggregate_id=watch["ack_id"],
            actor=actor,
            data=NotificationData(
                notification_id=notification_id,
                recipient=delivery["recipient_id"],
                channel=delivery["channel"],
                subject_ref=delivery["subject_ref"],
            ),
            causation_id=as_uuid(watch["source_id"]),
            correlation_id=watch["correlation_id"],
        )
        version, _ = await append_steps(store, [event], watch["version"], lambda e: e.type == event.type)
        watch = await conn.fetchrow(
            "UPDATE notify_acks SET state = 'acknowledged', version = $2, acknowledged_by = $3, "
            "acknowledged_via = $4, closed_at = now() WHERE ack_id = $1 RETURNING *",
            watch["ack_id"],
            version,
            actor,
            via,
        )
    assert watch is not None  # the row was just read under lock: the UPDATE finds it
    ACKNOWLEDGEMENTS.labels(watch["recipient_kind"], "acknowledged").inc()
    return _answer(watch, already=False)


def _answer(watch: asyncpg.Record, *, already: bool) -> dict[str, Any]:
    return {
        "ack_id": watch["ack_id"],
        "issue_id": watch["subject_ref"],
        "recipient_id": watch["recipient_id"],
        "state": watch["state"],
        "acknowledged_by": watch["acknowledged_by"],
        "acknowledged_via": watch["acknowledged_via"],
        "acknowledged_at": watch["closed_at"].isoformat() if watch["closed_at"] else None,
        "already_acknowledged": already,
    }
