"""Residents' personal information under PIPL: sealed per household, keys outside the stream.

Each household has its own AES-256-GCM key in the ``visits_household_keys`` table.  Events carry
only the ``sealed`` dict (field → base64 of nonce ‖ ciphertext, bound to community, household and
field name as associated data).  Erasure deletes the key: every copy of the ciphertext — in the
stream, in projections, in backups of either — becomes unreadable at once (crypto-shredding),
while the events themselves, and every count folded from them, stay.

Reads of decrypted fields by anyone but the owning grid worker go to ``visits_pii_audit``.
Nothing here logs a personal value.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.auth import Principal

from .domain.households import ERASED


def _aad(community: str, household_id: str, field: str) -> bytes:
    return f"{community}/{household_id}/{field}".encode()


def seal(key: bytes, community: str, household_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    """Encrypt each personal field with the household key (fresh 96-bit nonce per field)."""
    aes = AESGCM(key)
    out = {}
    for field, value in fields.items():
        nonce = os.urandom(12)
        ct = aes.encrypt(nonce, value.encode(), _aad(community, household_id, field))
        out[field] = base64.urlsafe_b64encode(nonce + ct).decode()
    return out


def unseal(key: bytes | None, community: str, household_id: str, sealed: Mapping[str, str]) -> dict[str, str]:
    """Decrypt sealed fields; without a key (erased) every field reads ``"erased"``."""
    if key is None:
        return {field: ERASED for field in sealed}
    aes = AESGCM(key)
    out = {}
    for field, blob in sealed.items():
        raw = base64.urlsafe_b64decode(blob.encode())
        try:
            out[field] = aes.decrypt(raw[:12], raw[12:], _aad(community, household_id, field)).decode()
        except InvalidTag:
            out[field] = ERASED  # sealed under a key that no longer exists
    return out


@dataclass(frozen=True, slots=True)
class KeyState:
    key: bytes | None
    erased: bool


class KeyStore:
    """Household keys in PostgreSQL.  A destroyed key leaves a tombstone so it is never re-created."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def keys(self, community: str, household_ids: Sequence[str], *, create: bool) -> dict[str, KeyState]:
        """Keys of many households in one round trip; with ``create`` missing ones are made."""
        ids = list(dict.fromkeys(household_ids))
        if not ids:
            return {}
        async with self.pool.acquire() as conn:
            if create:
                fresh = [AESGCM.generate_key(bit_length=256) for _ in ids]
                await conn.execute(
                    "INSERT INTO visits_household_keys (community, household_id, key) "
                    "SELECT $1, h, k FROM unnest($2::text[], $3::bytea[]) AS t(h, k) ON CONFLICT DO NOTHING",
                    community,
                    ids,
                    fresh,
                )
            rows = await conn.fetch(
                "SELECT household_id, key, erased_at IS NOT NULL AS erased FROM visits_household_keys "
                "WHERE community = $1 AND household_id = ANY($2::text[])",
                community,
                ids,
            )
        found = {r["household_id"]: KeyState(r["key"], r["erased"]) for r in rows}
        return {h: found.get(h, KeyState(None, False)) for h in ids}

    async def key(self, community: str, household_id: str, *, create: bool = False) -> KeyState:
        """One household's key state."""
        return (await self.keys(community, [household_id], create=create))[household_id]

    async def destroy(self, community: str, household_id: str) -> None:
        """Delete the key for good, keeping a tombstone (erasure is permanent)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO visits_household_keys (community, household_id, key, erased_at) "
                "VALUES ($1, $2, NULL, now()) ON CONFLICT (community, household_id) "
                "DO UPDATE SET key = NULL, erased_at = COALESCE(visits_household_keys.erased_at, now())",
                community,
                household_id,
            )


class AuditLog:
    """Who read which residents' decrypted fields, when and why."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self, principal: Principal, community: str, reads: Iterable[tuple[str, Sequence[str]]], purpose: str
    ) -> int:
        """One row per household read (``reads``: household id and the fields revealed)."""
        rows = [
            (community, household, principal.sub, principal.role, list(fields), purpose)
            for household, fields in reads
            if fields
        ]
        if rows:
            async with self.pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO visits_pii_audit (community, household_id, actor, role, fields, purpose) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    rows,
                )
        return len(rows)

    async def entries(
        self, community: str, *, household_id: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The newest audit rows of a community, optionally for one household."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, at, household_id, actor, role, fields, purpose FROM visits_pii_audit "
                "WHERE community = $1 AND ($2::text IS NULL OR household_id = $2) "
                "AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                community,
                household_id,
                before_id,
                limit,
            )
        return [dict(r) for r in rows]
