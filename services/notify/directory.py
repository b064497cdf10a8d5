"""The directory: who receives what in each community, with secrets sealed at rest.

Webhook HMAC keys and WeCom robot URLs (the URL carries the robot's key) are sealed with
AES-256-GCM, bound to their row (community and recipient id as associated data), and only their
last four characters are ever shown again.  The sealed blob is opened only by the delivery worker,
for the length of one send.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.db import Conn
from shared.errors import Invalid
from shared.events import now

from .channels import Address
from .domain import Recipient, RecipientIn


class Sealer:
    """AES-GCM sealing of a small JSON document, bound to the row it belongs to."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secrets: dict[str, Any], bound_to: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(secrets).encode(), bound_to.encode())

    def open(self, blob: bytes | None, bound_to: str) -> dict[str, Any]:
        if not blob:
            return {}
        return json.loads(self._aead.decrypt(blob[:12], blob[12:], bound_to.encode()))


def _bound(community: str, recipient_id: str) -> str:
    return f"notify-recipient:{community}/{recipient_id}"


def hint(secret: str | None) -> str | None:
    """What may be shown of a secret: its last four characters."""
    return f"…{secret[-4:]}" if secret else None


def mask_url(url: str) -> str:
    """A URL with its query (where a robot key lives) reduced to hints."""
    parts = urlsplit(url)
    query = "&".join(
        f"{k}={hint(v)}" if v else k for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


COLUMNS = (
    "community, recipient_id, kind, name, desk, language, agency, quiet_hours, covers, channels, sealed, "
    "hints, active, created_at, updated_at"
)


async def put_recipient(
    conn: Conn, sealer: Sealer, community: str, recipient_id: str, body: RecipientIn
) -> tuple[asyncpg.Record, bool]:
    """Create or replace a directory entry (PUT: the same body twice leaves the same entry)."""
    async with conn.transaction():
        old = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2 FOR UPDATE",
            community,
            recipient_id,
        )
        secrets = sealer.open(old["sealed"], _bound(community, recipient_id)) if old else {}
        ch = body.channels
        if ch.webhook is not None:
            if ch.webhook.secret is not None and ch.webhook.secret != secrets.get("webhook_secret"):
                secrets["webhook_secret"] = ch.webhook.secret
                secrets.pop("webhook_previous", None)  # a replacement, not a rotation: no grace
                secrets.pop("webhook_previous_until", None)
            elif not secrets.get("webhook_secret"):
                raise Invalid("a new webhook needs its secret", field="channels.webhook.secret")
        else:
            for key in ("webhook_secret", "webhook_previous", "webhook_previous_until"):
                secrets.pop(key, None)
        if ch.wecom is not None:
            secrets["wecom_url"] = ch.wecom.url
        else:
            secrets.pop("wecom_url", None)
        public = {
            "webhook": {"url": ch.webhook.url} if ch.webhook else None,
            "wecom": {"configured": True} if ch.wecom else None,
            "email": {"address": ch.email.address} if ch.email else None,
            "sms": {"number": ch.sms.number} if ch.sms else None,
        }
        hints = {
            "webhook_secret": hint(secrets.get("webhook_secret")),
            "webhook_previous_until": secrets.get("webhook_previous_until"),
            "wecom_url": mask_url(secrets["wecom_url"]) if secrets.get("wecom_url") else None,
        }
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
            body.kind,
            body.name,
            body.desk,
            body.language,
            body.agency,
            json.dumps(body.quiet_hours.model_dump(mode="json")) if body.quiet_hours else None,
            json.dumps([c.model_dump(mode="json") for c in body.covers]),
            json.dumps(public),
            sealer.seal(secrets, _bound(community, recipient_id)),
            json.dumps(hints),
            body.active,
        )
    return row, old is None


async def rotate_webhook_secret(
    conn: Conn, sealer: Sealer, community: str, recipient_id: str, secret: str, grace: timedelta
) -> asyncpg.Record | None:
    """Make ``secret`` current; the old one keeps signing beside it until ``grace`` has passed."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2 FOR UPDATE",
            community,
            recipient_id,
        )
        if row is None:
            return None
        secrets = sealer.open(row["sealed"], _bound(community, recipient_id))
        if not secrets.get("webhook_secret"):
            raise Invalid("this recipient has no webhook to rotate", field="recipient_id")
        if secret != secrets["webhook_secret"]:
            until = now() + grace
            secrets["webhook_previous"] = secrets["webhook_secret"]
            secrets["webhook_previous_until"] = until.isoformat()
            secrets["webhook_secret"] = secret
        hints = json.loads(row["hints"])
        hints["webhook_secret"] = hint(secrets["webhook_secret"])
        hints["webhook_previous_until"] = secrets.get("webhook_previous_until")
        return await conn.fetchrow(
            f"""UPDATE notify_recipients SET sealed = $3, hints = $4, updated_at = now()
                WHERE community = $1 AND recipient_id = $2 RETURNING {COLUMNS}""",
            community,
            recipient_id,
            sealer.seal(secrets, _bound(community, recipient_id)),
            json.dumps(hints),
        )


async def get_recipient(conn: Conn, community: str, recipient_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 AND recipient_id = $2",
        community,
        recipient_id,
    )


async def list_recipients(conn: Conn, community: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM notify_recipients WHERE community = $1 ORDER BY kind, recipient_id", community
    )


async def delete_recipient(conn: Conn, community: str, recipient_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM notify_recipients WHERE community = $1 AND recipient_id = $2", community, recipient_id
    )
    return status.endswith(" 1")


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
    """The community's active entries, for routing."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM public.notify_recipients WHERE community = $1 AND active ORDER BY recipient_id",
        community,
    )
    return [recipient_of(r) for r in rows]


def address_of(
    sealer: Sealer,
    community: str,
    recipient_id: str,
    channels_json: str,
    sealed: bytes | None,
    at: datetime | None = None,
) -> Address:
    """Where to reach a recipient right now: unsealed secrets, the previous webhook key while in grace."""
    channels = json.loads(channels_json)
    secrets = sealer.open(sealed, _bound(community, recipient_id))
    webhook_secrets: list[str] = []
    if secrets.get("webhook_secret"):
        webhook_secrets.append(secrets["webhook_secret"])
        until = secrets.get("webhook_previous_until")
        if secrets.get("webhook_previous") and until and datetime.fromisoformat(until) > (at or now()):
            webhook_secrets.append(secrets["webhook_previous"])
    return Address(
        webhook_url=(channels.get("webhook") or {}).get("url"),
        webhook_secrets=tuple(webhook_secrets),
        wecom_url=secrets.get("wecom_url"),
        email=(channels.get("email") or {}).get("address"),
        sms_number=(channels.get("sms") or {}).get("number"),
    )
