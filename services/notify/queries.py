"""Reads of the notify service: the directory, notifications, acknowledgement watches, unrouted facts.

Each read takes the service's dependencies (keyword ``deps``) and answers in the shape the API
shows; secrets never leave here other than as hints (their last four characters).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import asyncpg

from shared.db import Conn
from shared.events.notify import NotificationSent

from .bootstrap import NotifyDeps
from .domain.directory import CHANNELS, Recipient
from .domain.routing import RoutingRule
from .steps import history

#: The columns of a directory row.
COLUMNS = (
    "community, recipient_id, kind, name, desk, language, agency, quiet_hours, covers, channels, sealed, "
    "hints, active, created_at, updated_at"
)

NOTIFICATION_COLUMNS = (
    "d.notification_id, d.subject_ref, d.kind, d.rule, d.recipient_id, d.recipient_kind, d.channel, d.urgent, "
    "d.state, d.attempts, d.last_error, d.due_at, d.created_at, d.delivered_at, d.dead_at, d.ack_id, "
    "a.state AS ack_state"
)


# ---------------------------------------------------------------------------------------- scope


async def street_of(community: str, *, deps: NotifyDeps) -> str | None:
    """The street a community is registered under (None: not registered, or no street known)."""
    async with deps.pool.acquire() as conn:
        street: str | None = await conn.fetchval(
            "SELECT street FROM proj_notify_routing.communities WHERE community = $1", community
        )
    return street


# ---------------------------------------------------------------------------------------- directory


async def list_recipients(community: str, *, deps: NotifyDeps) -> list[dict[str, Any]]:
    """The community's directory as the API shows it."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 ORDER BY kind, recipient_id", community
        )
    return [public_view(r) for r in rows]


async def get_recipient(community: str, recipient_id: str, *, deps: NotifyDeps) -> dict[str, Any] | None:
    """One directory entry as the API shows it (None: no such entry)."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2",
            community,
            recipient_id,
        )
    return public_view(row) if row is not None else None


def public_view(row: asyncpg.Record) -> dict[str, Any]:
    """A directory entry as the API shows it: secrets reduced to hints."""
    channels = json.loads(row["channels"])
    hints = json.loads(row["hints"])
    out: dict[str, Any] = {}
    if channels.get("webhook"):
        out["webhook"] = {
            "url": channels["webhook"]["url"],
            "secret_hint": hints.get("webhook_secret"),
            "previous_secret_valid_until": hints.get("webhook_previous_until"),
        }
    if channels.get("wecom"):
        out["wecom"] = {"url": hints.get("wecom_url")}
    if channels.get("email"):
        out["email"] = channels["email"]
    if channels.get("sms"):
        out["sms"] = channels["sms"]
    return {
        "community": row["community"],
        "recipient_id": row["recipient_id"],
        "kind": row["kind"],
        "name": row["name"],
        "desk": row["desk"],
        "language": row["language"],
        "agency": row["agency"],
        "quiet_hours": json.loads(row["quiet_hours"]) if row["quiet_hours"] else None,
        "covers": json.loads(row["covers"]),
        "channels": out,
        "active": row["active"],
        "updated_at": row["updated_at"].isoformat(),
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def recipient_of(row: Any) -> Recipient:
    """The router's view of a directory row (a record, or a dict from ``json_agg``)."""
    channels = _json(row["channels"])
    return Recipient(
        community=row["community"],
        recipient_id=row["recipient_id"],
        kind=row["kind"],
        name=row["name"],
        desk=row["desk"],
        language=row["language"],
        agency=row["agency"],
        quiet_hours=_json(row["quiet_hours"]) if row["quiet_hours"] else None,
        covers=_json(row["covers"]),
        channels=[name for name in ("webhook", "wecom", "email", "sms") if channels.get(name)],
        active=row["active"],
    )


async def directory(conn: Conn, community: str) -> list[Recipient]:
    """The community's active entries, for routing (on the caller's connection: inside its transaction)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND active ORDER BY recipient_id",
        community,
    )
    return [recipient_of(r) for r in rows]


# ---------------------------------------------------------------------------------------- notifications


def _notification(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("due_at", "created_at", "delivered_at", "dead_at"):
        out[key] = out[key].isoformat() if out[key] else None
    return out


async def list_notifications(
    community: str, subject_ref: str | None, state: str | None, limit: int, *, deps: NotifyDeps
) -> list[dict[str, Any]]:
    """Notifications of a community and their delivery state, oldest first."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries d LEFT JOIN notify_acks a ON a.ack_id = d.ack_id "
            "WHERE d.community = $1 AND ($2::text IS NULL OR d.subject_ref = $2) "
            "AND ($3::text IS NULL OR d.state = $3) ORDER BY d.created_at, d.notification_id LIMIT $4",
            community,
            subject_ref,
            state,
            limit,
        )
    return [_notification(r) for r in rows]


async def agency_notifications(
    community: str, agency: str, subject_ref: str | None, limit: int, *, deps: NotifyDeps
) -> list[dict[str, Any]]:
    """The notifications of a community sent to recipients of one agency (the directory entry's
    ``agency``: the same claim an acknowledgement must carry), oldest first."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries d LEFT JOIN notify_acks a ON a.ack_id = d.ack_id "
            "JOIN notify_recipients r ON r.community = d.community AND r.recipient_id = d.recipient_id "
            "WHERE d.community = $1 AND r.agency = $2 AND ($3::text IS NULL OR d.subject_ref = $3) "
            "ORDER BY d.created_at, d.notification_id LIMIT $4",
            community,
            agency,
            subject_ref,
            limit,
        )
    return [_notification(r) for r in rows]


#: The outcome a step event gives its attempt.
_OUTCOMES = {
    "NotificationDelivered": "delivered",
    "NotificationFailed": "failed",
    "NotificationDeadLettered": "dead_lettered",
}


async def notification_detail(community: str, notification_id: str, *, deps: NotifyDeps) -> dict[str, Any] | None:
    """One notification as listed, its delivery attempts from its own event stream (the row keeps only
    the last error) and its acknowledgement watch; None when there is no such notification."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries d LEFT JOIN notify_acks a ON a.ack_id = d.ack_id "
            "WHERE d.community = $1 AND d.notification_id = $2",
            community,
            notification_id,
        )
        watch = None
        if row is not None and row["ack_id"] is not None:
            watch = await conn.fetchrow(
                "SELECT ack_id, recipient_id, state, starts_at, acknowledged_by, acknowledged_via, closed_at "
                "FROM notify_acks WHERE ack_id = $1",
                row["ack_id"],
            )
    if row is None:
        return None
    attempts: dict[int, dict[str, Any]] = {}
    for event in await history(deps.store, NotificationSent, community, notification_id):
        data: Any = event.data
        step = attempts.setdefault(
            data.attempt,
            {"attempt": data.attempt, "sent_at": None, "outcome": None, "finished_at": None, "error": None},
        )
        at = event.occurred_at.isoformat()
        if event.type == "NotificationSent":
            step["sent_at"] = at
        elif event.type in _OUTCOMES:
            # A dead letter follows its attempt's failure: the attempt ends dead-lettered.
            step.update(outcome=_OUTCOMES[event.type], finished_at=at, error=data.error or step["error"])
    out = _notification(row)
    out["test"] = row["kind"] == "test"
    out["deliveries"] = [attempts[n] for n in sorted(attempts)]
    out["acknowledgement"] = None
    if watch is not None:
        deadline = watch["starts_at"] + timedelta(seconds=deps.settings.ack_deadline(row["recipient_kind"]))
        out["acknowledgement"] = {
            "ack_id": watch["ack_id"],
            "state": watch["state"],
            "starts_at": watch["starts_at"].isoformat(),
            "deadline_at": deadline.isoformat(),
            "acknowledged_by": watch["acknowledged_by"],
            "acknowledged_via": watch["acknowledged_via"],
            "closed_at": watch["closed_at"].isoformat() if watch["closed_at"] else None,
        }
    return out


async def list_acks(
    community: str, state: str | None, subject_ref: str | None, *, deps: NotifyDeps
) -> list[dict[str, Any]]:
    """Acknowledgement watches of a community, oldest first."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT ack_id, subject_ref, recipient_id, recipient_kind, notification_id, channel, state, "
            "starts_at, acknowledged_by, acknowledged_via, closed_at FROM notify_acks "
            "WHERE community = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR subject_ref = $3) "
            "ORDER BY starts_at LIMIT 1000",
            community,
            state,
            subject_ref,
        )
    out = []
    for r in rows:
        item = dict(r)
        item["starts_at"] = r["starts_at"].isoformat()
        item["closed_at"] = r["closed_at"].isoformat() if r["closed_at"] else None
        out.append(item)
    return out


async def list_unrouted(community: str, *, deps: NotifyDeps) -> list[dict[str, Any]]:
    """Facts no rule or directory entry could place."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT source_id, subject_ref, reason, created_at FROM notify_unrouted WHERE community = $1 "
            "ORDER BY created_at LIMIT 1000",
            community,
        )
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]


async def notification_to_acknowledge(
    community: str, notification_id: str, *, deps: NotifyDeps
) -> dict[str, Any] | None:
    """What an acknowledgement page shows: the issue, the escalation's facts, the watch's state."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT d.subject_ref, d.facts, a.state FROM notify_deliveries d "
            "LEFT JOIN notify_acks a ON a.ack_id = d.ack_id WHERE d.community = $1 AND d.notification_id = $2",
            community,
            notification_id,
        )
    if row is None:
        return None
    facts = await deps.vault.reveal(community, json.loads(row["facts"]))  # the description, as typed
    return {"subject_ref": row["subject_ref"], "facts": facts, "ack_state": row["state"]}


# ---------------------------------------------------------------------------------------- routing rules


def _sorted(values: frozenset[str] | None) -> list[str] | None:
    return sorted(values) if values is not None else None


def rule_view(position: int, rule: RoutingRule, directory: list[Recipient], *, deps: NotifyDeps) -> dict[str, Any]:
    """One routing rule as data: what it matches, whom it reaches in this community's directory (by kind
    and desk; a recipient's ``covers`` may still leave it out for a given place), over which channels,
    and how long each kind has to acknowledge."""
    send_to = []
    for target in rule.send_to:
        reached = [
            {
                "recipient_id": r.recipient_id,
                "name": r.name,
                "channels": [c for c in (rule.channels or CHANNELS) if c in r.channels],
            }
            for r in directory
            if r.active and r.kind == target.kind and (target.desk is None or r.desk == target.desk)
        ]
        send_to.append(
            {
                "kind": target.kind,
                "desk": target.desk,
                "ack_deadline_seconds": deps.settings.ack_deadline(target.kind) if rule.ack else None,
                "recipients": reached,
            }
        )
    hours = None
    if rule.hours is not None:
        hours = f"{rule.hours[0].strftime('%H:%M')}-{rule.hours[1].strftime('%H:%M')}"
    return {
        "position": position,
        "name": rule.name,
        "on": sorted(rule.on),
        "matches": {
            "category": _sorted(rule.category),
            "subcategory": _sorted(rule.subcategory),
            "min_severity": rule.min_severity,
            "hours": hours,
            "target": _sorted(rule.target),
            "to_level": _sorted(rule.to_level),
            "reason": _sorted(rule.reason),
            "place": {k: sorted(v) for k, v in rule.place.items()} if rule.place is not None else None,
        },
        "send_to": send_to,
        "channels": list(rule.channels) if rule.channels is not None else None,
        "urgent": rule.urgent,
        "ack": rule.ack,
        "mode": rule.mode,
    }


async def routing_rules(community: str, *, deps: NotifyDeps) -> dict[str, Any]:
    """The routing rules as loaded (tried top to bottom, the first match decides), each with the
    community's directory entries it reaches."""
    async with deps.pool.acquire() as conn:
        entries = await directory(conn, community)
    return {
        "community": community,
        "first_match_decides": True,
        "rules": [rule_view(i, rule, entries, deps=deps) for i, rule in enumerate(deps.rules.rules, start=1)],
    }
