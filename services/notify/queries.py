"""Reads of the notify service: the directory, notifications, acknowledgement watches, unrouted facts.

Each read takes the service's dependencies (keyword ``deps``) and answers in the shape the API
shows; secrets never leave here other than as hints (their last four characters).
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.db import Conn

from .bootstrap import NotifyDeps
from .domain.directory import Recipient

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
