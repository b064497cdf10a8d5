"""Residents' personal information under PIPL: sealed per household, keys outside the stream.

Each household has its own AES-256-GCM key in the ``visits_household_keys`` table, stored only
wrapped by the key-encryption key (KEK, :mod:`services.visits.keywrap`), which is never in
PostgreSQL.  Events carry only the ``sealed`` dict (field → base64 of nonce ‖ ciphertext, bound to
community, household and field name as associated data).  Erasure deletes the wrapped key: every
copy of the ciphertext — in the stream, in projections, in backups of either — becomes unreadable
at once (crypto-shredding), while the events themselves, and every count folded from them, stay.

Reads of decrypted fields by anyone but the owning grid worker go to ``visits_pii_audit``.
Nothing here logs a personal value.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.auth import Principal
from shared.keywrap import KeyWrapper, require_known_keks

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


def key_context(community: str, household_id: str) -> bytes:
    """What a household key is wrapped for: unwrapping it on another household's row fails."""
    return f"gridwork/visits/household-key/{community}/{household_id}".encode()


@dataclass(frozen=True, slots=True)
class RewrapReport:
    """What :func:`rewrap_keys` did: plain keys wrapped, keys moved from a retired KEK, the KEK now used."""

    wrapped_plain: int
    rewrapped: int
    kek_id: str


class KeyStore:
    """Household keys in PostgreSQL, each stored only wrapped by the KEK (``wrapper``), which never
    enters the database.  A destroyed key leaves a tombstone so it is never re-created."""

    def __init__(self, pool: asyncpg.Pool, wrapper: KeyWrapper) -> None:
        self.pool = pool
        self.wrapper = wrapper

    async def keys(self, community: str, household_ids: Sequence[str], *, create: bool) -> dict[str, KeyState]:
        """Keys of many households in one round trip; with ``create`` missing ones are made."""
        ids = list(dict.fromkeys(household_ids))
        if not ids:
            return {}
        async with self.pool.acquire() as conn:
            rows = await self._fetch(conn, community, ids)
            missing = [h for h in ids if h not in rows]
            if create and missing:
                wrapped = [
                    await self.wrapper.wrap(AESGCM.generate_key(bit_length=256), key_context(community, h))
                    for h in missing
                ]
                await conn.execute(
                    "INSERT INTO visits_household_keys (community, household_id, wrapped_key, kek_id) "
                    "SELECT $1, h, w, $4 FROM unnest($2::text[], $3::bytea[]) AS t(h, w) ON CONFLICT DO NOTHING",
                    community,
                    missing,
                    wrapped,
                    self.wrapper.key_id,
                )
                rows.update(await self._fetch(conn, community, missing))  # ours, or a concurrent writer's
        out: dict[str, KeyState] = {}
        for h in ids:
            row = rows.get(h)
            if row is None or row["wrapped_key"] is None:
                out[h] = KeyState(None, row is not None and row["erased"])
            else:
                key = await self.wrapper.unwrap(row["wrapped_key"], row["kek_id"], key_context(community, h))
                out[h] = KeyState(key, False)
        return out

    @staticmethod
    async def _fetch(conn: Any, community: str, ids: list[str]) -> dict[str, asyncpg.Record]:
        rows = await conn.fetch(
            "SELECT household_id, wrapped_key, kek_id, erased_at IS NOT NULL AS erased FROM visits_household_keys "
            "WHERE community = $1 AND household_id = ANY($2::text[])",
            community,
            ids,
        )
        return {r["household_id"]: r for r in rows}

    async def key(self, community: str, household_id: str, *, create: bool = False) -> KeyState:
        """One household's key state."""
        return (await self.keys(community, [household_id], create=create))[household_id]

    async def destroy(self, community: str, household_id: str) -> None:
        """Delete the wrapped key for good, keeping a tombstone (erasure is permanent).  Copies of
        the wrapped key in WAL and backups open only with the KEK; see docs/OPERATIONS.md."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO visits_household_keys (community, household_id, erased_at) "
                "VALUES ($1, $2, now()) ON CONFLICT (community, household_id) "
                "DO UPDATE SET key = NULL, wrapped_key = NULL, kek_id = NULL, "
                "erased_at = COALESCE(visits_household_keys.erased_at, now())",
                community,
                household_id,
            )

    async def check_keks(self) -> None:
        """Refuse (RuntimeError) when stored keys are wrapped under a KEK this process does not
        hold: a wrong or missing KEK found at start-up, not at a resident's first reveal."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT DISTINCT kek_id FROM visits_household_keys WHERE kek_id IS NOT NULL")
        require_known_keks(self.wrapper, (r["kek_id"] for r in rows), "household keys")

    async def rewrap(self, *, plain_only: bool = False, batch: int = 500) -> RewrapReport:
        """Wrap every key still stored plain (rows from before migration 0002) and, unless
        ``plain_only``, re-wrap every key under a retired KEK with the current one — in batches,
        each in its own transaction; safe to run while services run and to run again."""
        wrapped_plain = rewrapped = 0
        current = self.wrapper.key_id
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT community, household_id, key, wrapped_key, kek_id FROM visits_household_keys "
                    "WHERE key IS NOT NULL OR (NOT $1 AND kek_id <> $2) "
                    "LIMIT $3 FOR UPDATE SKIP LOCKED",
                    plain_only,
                    current,
                    batch,
                )
                if not rows:
                    break
                updates = []
                for r in rows:
                    context = key_context(r["community"], r["household_id"])
                    if r["key"] is not None:
                        key = bytes(r["key"])
                        wrapped_plain += 1
                    else:
                        key = await self.wrapper.unwrap(r["wrapped_key"], r["kek_id"], context)
                        rewrapped += 1
                    updates.append((r["community"], r["household_id"], await self.wrapper.wrap(key, context)))
                await conn.executemany(
                    "UPDATE visits_household_keys SET key = NULL, wrapped_key = $3, kek_id = $4 "
                    "WHERE community = $1 AND household_id = $2 AND erased_at IS NULL",
                    [(*u, current) for u in updates],
                )
        return RewrapReport(wrapped_plain, rewrapped, current)


#: What an audit row records: a reveal of a household's personal fields, the ledger export that
#: decrypted them, a ledger import that wrote them, or the erasure that destroyed their key.
AuditKind = Literal["reveal", "export", "import", "erasure"]
AUDIT_KINDS: tuple[AuditKind, ...] = ("reveal", "export", "import", "erasure")


class AuditLog:
    """Who read, wrote or erased which residents' personal fields, when and why."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self,
        principal: Principal,
        community: str,
        reads: Iterable[tuple[str, Sequence[str]]],
        purpose: str,
        *,
        kind: AuditKind,
    ) -> int:
        """One row per household (``reads``: household id and the fields revealed, written or erased).
        A household with no such field is left out, except for an erasure, which is always recorded."""
        rows = [
            (community, household, principal.sub, principal.role, list(fields), purpose, kind)
            for household, fields in reads
            if fields or kind == "erasure"
        ]
        if rows:
            async with self.pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO visits_pii_audit (community, household_id, actor, role, fields, purpose, kind) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    rows,
                )
        return len(rows)

    async def entries(
        self,
        community: str,
        *,
        household_id: str | None = None,
        kind: AuditKind | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """The newest audit rows of a community, optionally for one household or of one kind, before
        ``before_id`` (the previous page's last ``id``)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, at, kind, household_id, actor, role, fields, purpose FROM visits_pii_audit "
                "WHERE community = $1 AND ($2::text IS NULL OR household_id = $2) "
                "AND ($3::bigint IS NULL OR id < $3) AND ($5::text IS NULL OR kind = $5) ORDER BY id DESC LIMIT $4",
                community,
                household_id,
                before_id,
                limit,
                kind,
            )
        return [dict(r) for r in rows]
