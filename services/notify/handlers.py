"""Application functions of the notify service: load → decide → append (or write), no HTTP in here.

Each takes a domain command and the service's dependencies (keyword ``deps``).  The directory is
state of its own (a table, not an event stream), so its handlers load the row under lock, apply the
domain's rules for its secrets, and write it back sealed; acknowledgements load the watch, decide,
and append NotificationAcknowledged exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.errors import Conflict, NotFound

from .bootstrap import NotifyDeps
from .domain.acknowledgement import AcknowledgeNotification, AckWatch, decide, evolve
from .domain.delivery import RetryNotification, SendTestMessage
from .domain.directory import (
    PutRecipient,
    RemoveRecipient,
    RotateWebhookSecret,
    kept_secrets,
    public_channels,
    rotated_secrets,
    secret_hints,
    send_at,
    webhook_hints,
)
from .domain.ids import as_uuid, notification_id
from .metrics import ACKNOWLEDGEMENTS
from .projections import WAKE_CHANNEL
from .queries import COLUMNS, public_view, recipient_of
from .sealing import bound_to
from .steps import append_steps

# ---------------------------------------------------------------------------------------- directory


async def put_recipient(command: PutRecipient, *, deps: NotifyDeps) -> tuple[dict[str, Any], bool]:
    """Create or replace a directory entry; returns the entry as shown and whether it is new."""
    community, recipient_id, entry = command.community, command.recipient_id, command.entry
    bound = bound_to(community, recipient_id)
    async with deps.pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2 FOR UPDATE",
            community,
            recipient_id,
        )
        secrets = kept_secrets(entry.channels, deps.sealer.open(old["sealed"], bound) if old else {})
        row = await conn.fetchrow(
            f"""INSERT INTO notify_recipients (community, recipient_id, kind, name, desk, language, agency,
                    quiet_hours, covers, channels, sealed, hints, active)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                ON CONFLICT (community, recipient_id) DO UPDATE SET kind = $3, name = $4, desk = $5,
                    language = $6, agency = $7, quiet_hours = $8, covers = $9, channels = $10, sealed = $11,
                    hints = $12, active = $13, updated_at = now()
                RETURNING {COLUMNS}""",
            community,
            recipient_id,
            entry.kind,
            entry.name,
            entry.desk,
            entry.language,
            entry.agency,
            json.dumps(entry.quiet_hours.model_dump(mode="json")) if entry.quiet_hours else None,
            json.dumps([c.model_dump(mode="json") for c in entry.covers]),
            json.dumps(public_channels(entry.channels)),
            deps.sealer.seal(secrets, bound),
            json.dumps(secret_hints(secrets)),
            entry.active,
        )
    assert row is not None  # INSERT … RETURNING always returns the row
    return public_view(row), old is None


async def rotate_webhook_secret(command: RotateWebhookSecret, *, deps: NotifyDeps) -> dict[str, Any]:
    """Make the new webhook key current, the old one signing beside it until the grace ends."""
    community, recipient_id = command.community, command.recipient_id
    bound = bound_to(community, recipient_id)
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2 FOR UPDATE",
            community,
            recipient_id,
        )
        if row is None:
            raise NotFound(f"no recipient {recipient_id} in {community}", field="recipient_id")
        secrets = rotated_secrets(deps.sealer.open(row["sealed"], bound), command)
        hints = {**json.loads(row["hints"]), **webhook_hints(secrets)}  # the WeCom hint stays as it was
        row = await conn.fetchrow(
            f"""UPDATE notify_recipients SET sealed = $3, hints = $4, updated_at = now()
                WHERE community = $1 AND recipient_id = $2 RETURNING {COLUMNS}""",
            community,
            recipient_id,
            deps.sealer.seal(secrets, bound),
            json.dumps(hints),
        )
    assert row is not None  # the row was just read under lock: the UPDATE finds it
    return public_view(row)


async def remove_recipient(command: RemoveRecipient, *, deps: NotifyDeps) -> bool:
    """Take an entry out of the directory; whether there was one.  Its pending notifications are
    dead-lettered by the delivery worker when it finds the recipient gone."""
    async with deps.pool.acquire() as conn:
        status = await conn.execute(
            "DELETE FROM notify_recipients WHERE community = $1 AND recipient_id = $2",
            command.community,
            command.recipient_id,
        )
    return status.endswith(" 1")


# ---------------------------------------------------------------------------------------- notifications


async def retry_notification(command: RetryNotification, *, deps: NotifyDeps) -> dict[str, Any]:
    """A dead-lettered notification goes back to pending with a fresh retry budget; others stay as they are."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            "UPDATE notify_deliveries SET state = CASE WHEN state = 'dead' THEN 'pending' ELSE state END, "
            "budget_from = CASE WHEN state = 'dead' THEN attempts ELSE budget_from END, "
            "due_at = CASE WHEN state = 'dead' THEN now() ELSE due_at END, updated_at = now() "
            "WHERE community = $1 AND notification_id = $2 RETURNING state",
            command.community,
            command.notification_id,
        )
        if row is not None:
            await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    if row is None:
        raise NotFound(f"no notification {command.notification_id} in {command.community}", field="notification_id")
    return {"notification_id": command.notification_id, "state": row["state"]}


WRITE_TEST = """
WITH written AS (
    INSERT INTO notify_deliveries (notification_id, community, source_id, source_type, subject_ref, kind, rule,
        recipient_id, recipient_kind, channel, urgent, facts, due_at)
    SELECT n, $2, $3, 'TestMessageRequested', $4, 'test', 'test', $5, $6, ch, false, $7::jsonb, $8
    FROM unnest($1::text[], $9::text[]) AS t(n, ch)
    ON CONFLICT (notification_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written,
       (SELECT pg_notify($10, '') WHERE EXISTS (SELECT 1 FROM written)) AS woke
"""


async def send_test_message(command: SendTestMessage, *, deps: NotifyDeps) -> dict[str, Any]:
    """Put a test message to the recipient in the outbox, one row per channel it has; the same
    ``test_id`` again writes nothing and answers with the same notifications (and their state now)."""
    community, recipient_id = command.community, command.recipient_id
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2",
            community,
            recipient_id,
        )
        if row is None:
            raise NotFound(f"no recipient {recipient_id} in {community}", field="recipient_id")
        recipient = recipient_of(row)
        if not recipient.active:
            raise Conflict(f"recipient {recipient_id} is not active: activate it to test it", field="recipient_id")
        channels = list(recipient.channels)
        ids = [notification_id(command.source_id, recipient_id, channel) for channel in channels]
        facts = {"test_id": command.test_id, "recipient_name": recipient.name, "requested_by": command.requested_by}
        written = await conn.fetchrow(
            WRITE_TEST,
            ids,
            community,
            command.source_id,
            f"test:{command.test_id}",
            recipient_id,
            recipient.kind,
            json.dumps(facts, ensure_ascii=False),
            send_at(recipient, urgent=False, now=command.at),  # a test keeps the recipient's quiet hours too
            channels,
            WAKE_CHANNEL,
        )
        assert written is not None  # WRITE_TEST always returns its one row
        rows = await conn.fetch(
            "SELECT notification_id, channel, state, due_at FROM notify_deliveries "
            "WHERE notification_id = ANY($1::text[]) AND community = $2",
            ids,
            community,
        )
    by_id = {r["notification_id"]: r for r in rows}
    notifications = [
        {
            "notification_id": nid,
            "channel": by_id[nid]["channel"],
            "state": by_id[nid]["state"],
            "due_at": by_id[nid]["due_at"].isoformat(),
        }
        for nid in ids
        if nid in by_id
    ]
    return {
        "test_id": command.test_id,
        "recipient_id": recipient_id,
        "notification_id": notifications[0]["notification_id"] if notifications else None,
        "notifications": notifications,
        "duplicate": written["written"] == 0,
    }


async def acknowledge(command: AcknowledgeNotification, *, deps: NotifyDeps) -> dict[str, Any]:
    """The recipient confirms it got an escalation: NotificationAcknowledged, once.

    Acknowledging again answers with the first acknowledgement.  A late acknowledgement (after
    NotificationUnacknowledged) is still recorded.  The watch's row lock is held while the event is
    appended, so two acknowledgements at once record one.
    """
    async with deps.pool.acquire() as conn, conn.transaction():
        delivery = await conn.fetchrow(
            "SELECT d.notification_id, d.channel, d.recipient_id, d.subject_ref, d.ack_id, r.agency "
            "FROM notify_deliveries d LEFT JOIN notify_recipients r "
            "ON r.community = d.community AND r.recipient_id = d.recipient_id "
            "WHERE d.community = $1 AND d.notification_id = $2",
            command.community,
            command.notification_id,
        )
        if delivery is None:
            raise NotFound(f"no notification {command.notification_id} in {command.community}", field="notification_id")
        row = None
        if delivery["ack_id"] is not None:
            row = await conn.fetchrow("SELECT * FROM notify_acks WHERE ack_id = $1 FOR UPDATE", delivery["ack_id"])
            assert row is not None  # the watch is written with its notification, in one statement
        watch = AckWatch(
            community=command.community,
            notification_id=command.notification_id,
            channel=delivery["channel"],
            recipient_id=delivery["recipient_id"],
            subject_ref=delivery["subject_ref"],
            ack_id=delivery["ack_id"],
            recipient_agency=delivery["agency"],
            state=row["state"] if row else "open",
            version=row["version"] if row else 0,
            causation_id=as_uuid(row["source_id"]) if row else None,
            correlation_id=row["correlation_id"] if row else None,
        )
        events = decide(watch, command)
        if not events:
            assert row is not None  # decide refuses a notification with no watch
            return _answer(row, already=True)
        version, _ = await append_steps(
            deps.store, events, watch.version, lambda e: e.type == "NotificationAcknowledged"
        )
        acknowledged = evolve(watch, events[0])
        row = await conn.fetchrow(
            "UPDATE notify_acks SET state = $5, version = $2, acknowledged_by = $3, "
            "acknowledged_via = $4, closed_at = now() WHERE ack_id = $1 RETURNING *",
            watch.ack_id,
            version,
            command.actor,
            command.via,
            acknowledged.state,
        )
    assert row is not None  # the row was just read under lock: the UPDATE finds it
    ACKNOWLEDGEMENTS.labels(row["recipient_kind"], "acknowledged").inc()
    return _answer(row, already=False)


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
