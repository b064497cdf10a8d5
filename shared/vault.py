"""Free text sealed out of the events: what a person typed may name a resident, so it never
travels as typed.

Notes of a visit, problem descriptions, a 12345 request, an Open311 address, a resolution… (the
fields an event payload lists in its ``free_text`` class variable) are stored in the vault — a
PostgreSQL table, each text sealed with AES-256-GCM under its community's text key, which is kept
only wrapped by the key-encryption key (:mod:`shared.keywrap`) — and the event carries a
reference, ``⟦ref⟧``.  Every copy downstream (the issues board, notify's facts and payloads, the
dead letters, snapshots) holds the reference only; a read reveals it (:meth:`TextVault.reveal`).

Erasing a household (PIPL) erases every text of its community that names it — its name, phone,
ID number or address, compared loosely — by emptying the vault rows (:meth:`TextVault.erase_naming`):
the events, and every count folded from them, stay; the texts read ``[erased]``.

References are an HMAC of the community, the field and the text under the community's key, so
a retried command seals to the very same event (an append stays idempotent) and a reference
reveals nothing of its text.  The vault lives in its own schema, written by the services that
seal (visits, issues), read by those that show texts (notify too), emptied by visits' erasure.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from .events import Event
from .keywrap import KeyWrapper, require_known_keks

#: Where the vault's tables live (a schema of its own, shared by the services that seal and show texts).
SCHEMA = "vault"
#: What an erased (or unknown) text reads as.
ERASED_TEXT = "[erased]"
_REF = re.compile(r"⟦([a-z2-7]{26})⟧")
_NONCE = 12

TABLES = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.text_keys (
    community   text PRIMARY KEY,
    wrapped     bytea NOT NULL,
    kek_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.texts (
    community   text NOT NULL,
    ref         text NOT NULL,
    sealed      bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    PRIMARY KEY (community, ref)
);
-- the household a text was written about (a visit's notes, a talent…): erased with it by that link
ALTER TABLE {SCHEMA}.texts ADD COLUMN IF NOT EXISTS subject text;
CREATE INDEX IF NOT EXISTS texts_subject ON {SCHEMA}.texts (community, subject) WHERE subject IS NOT NULL;
"""
DDL = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA};\n{TABLES}"

#: Who may do what in the vault, by service: visits seals and erases, issues seals and reveals,
#: notify only reveals (what it sends).  Scoring has no access at all.
GRANTS: dict[str, str] = {"issues": "SELECT, INSERT", "notify": "SELECT"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def provision(conn: asyncpg.Connection, roles: Mapping[str, str]) -> None:
    """As an admin, where each service has its own role (``roles``: service → role): the vault's
    schema and tables owned by visits' role, and the other services granted what they use."""
    owner = roles.get("visits")
    if owner is None:
        return
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA} AUTHORIZATION {_quoted(owner)}")
        await conn.execute(f"ALTER SCHEMA {SCHEMA} OWNER TO {_quoted(owner)}")
        for table in ("text_keys", "texts"):  # visits' also when another role made them first
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.{table}"):
                await conn.execute(f"ALTER TABLE {SCHEMA}.{table} OWNER TO {_quoted(owner)}")
        await conn.execute(f"SET LOCAL ROLE {_quoted(owner)}")  # what is made now belongs to visits
        await conn.execute(TABLES)
        await conn.execute("RESET ROLE")
        for service, rights in GRANTS.items():
            role = roles.get(service)
            if role is not None:
                await conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {_quoted(role)}")
                await conn.execute(f"GRANT {rights} ON {SCHEMA}.text_keys, {SCHEMA}.texts TO {_quoted(role)}")


E = TypeVar("E", bound=Event)
T = TypeVar("T")


def is_ref(text: str) -> bool:
    """Whether ``text`` is exactly one vault reference (already sealed: e.g. a visit's problem
    description the issues service files as an issue)."""
    return _REF.fullmatch(text) is not None


def refs_in(value: Any) -> set[str]:
    """Every vault reference inside ``value`` (strings, lists, dicts, models, nested)."""
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(_REF.findall(text))
        return text

    _walk_strings(value, collect)
    return found


def _walk_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list | tuple):
        return type(value)(_walk_strings(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _walk_strings(v, fn) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_copy(update={k: _walk_strings(getattr(value, k), fn) for k in type(value).model_fields})
    return value


def _fold(text: str) -> str:
    """The loose form texts and needles are compared in: NFKC, case-folded, no spaces or dashes."""
    return re.sub(r"[\s\-_.()（）·]+", "", unicodedata.normalize("NFKC", text)).casefold()


def needles(personal: Mapping[str, str | None]) -> list[str]:
    """What names a household in free text: its name, phone, ID number, address (folded); a
    phone is also looked for as bare digits."""
    out: list[str] = []
    for key, value in personal.items():
        if not value:
            continue
        folded = _fold(value)
        if len(folded) < 2:  # a one-character name would match half the community's notes
            continue
        out.append(folded)
        digits = re.sub(r"\D", "", value)
        if key == "phone" and len(digits) >= 5:
            out.append(digits)
    return out


def names_any(text: str, wanted: Sequence[str]) -> bool:
    """Whether ``text`` names any of ``wanted`` (see :func:`needles`), compared loosely."""
    folded = _fold(text)
    digits = re.sub(r"\D", "", text)
    return any(n in folded or (n.isdigit() and n in digits) for n in wanted)


@dataclass
class _Sealing:
    """The rows a batch of events adds to the vault: (community, ref) → (sealed text, subject)."""

    rows: dict[tuple[str, str], tuple[bytes, str | None]] = field(default_factory=dict)
    subject: str | None = None  # the household the event being sealed is about


class TextVault:
    """Seal free text into the vault, reveal references, erase the texts naming a household."""

    def __init__(self, pool: asyncpg.Pool, keyring: KeyWrapper) -> None:
        self.pool = pool
        self.keyring = keyring
        self._keys: dict[str, bytes] = {}  # community → its text key (unwrapped once)

    async def ensure(self) -> None:
        """Create the vault's schema and tables when they are missing (where roles are provisioned,
        the admin made them, owned by visits, and granted the others what they use)."""
        async with self.pool.acquire() as conn:
            present = await conn.fetchval(
                "SELECT count(*) = 2 FROM information_schema.columns WHERE table_schema = $1 "
                "AND ((table_name = 'texts' AND column_name = 'subject') OR "
                "(table_name = 'text_keys' AND column_name = 'wrapped'))",
                SCHEMA,
            )
            if not present:
                await conn.execute(DDL)

    # ------------------------------------------------------------------ keys

    async def check_keks(self) -> None:
        """Refuse (RuntimeError) when a community's text key is wrapped under a KEK this process does
        not hold: a wrong KEK is found at start-up, not at the first text revealed."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT DISTINCT kek_id FROM {SCHEMA}.text_keys")
        require_known_keks(self.keyring, (r["kek_id"] for r in rows), "the vault's text keys")

    async def kek_counts(self) -> dict[str, int]:
        """How many communities' text keys are wrapped under each KEK id."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT kek_id, count(*) AS n FROM {SCHEMA}.text_keys GROUP BY 1 ORDER BY 1")
        return {r["kek_id"]: int(r["n"]) for r in rows}

    async def rewrap(self) -> int:
        """Re-wrap every text key under a retired KEK with the current one (a key per community: a
        few rows); the number re-wrapped.  Safe while services run, and to run again."""
        moved = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT community, wrapped, kek_id FROM {SCHEMA}.text_keys WHERE kek_id <> $1 FOR UPDATE",
                self.keyring.key_id,
            )
            for r in rows:
                context = f"vault/{r['community']}".encode()
                key = await self.keyring.unwrap(bytes(r["wrapped"]), r["kek_id"], context)
                await conn.execute(
                    f"UPDATE {SCHEMA}.text_keys SET wrapped = $2, kek_id = $3 WHERE community = $1",
                    r["community"],
                    await self.keyring.wrap(key, context),
                    self.keyring.key_id,
                )
                moved += 1
        return moved

    async def _key(self, community: str, *, create: bool = True) -> bytes | None:
        key = self._keys.get(community)
        if key is not None:
            return key
        context = f"vault/{community}".encode()
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT wrapped, kek_id FROM {SCHEMA}.text_keys WHERE community = $1", community)
            if row is None and not create:
                return None  # nothing was ever sealed for this community
            if row is None:
                fresh = os.urandom(32)
                wrapped = await self.keyring.wrap(fresh, context)
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.text_keys (community, wrapped, kek_id) VALUES ($1, $2, $3) "
                    "ON CONFLICT (community) DO NOTHING",
                    community,
                    wrapped,
                    self.keyring.key_id,
                )
                row = await conn.fetchrow(
                    f"SELECT wrapped, kek_id FROM {SCHEMA}.text_keys WHERE community = $1", community
                )
        assert row is not None
        key = await self.keyring.unwrap(bytes(row["wrapped"]), row["kek_id"], context)
        self._keys[community] = key
        return key

    @staticmethod
    def _ref(key: bytes, community: str, where: str, text: str) -> str:
        mac = hmac.new(key, f"ref\0{community}\0{where}\0{text}".encode(), hashlib.sha256).digest()
        return base64.b32encode(mac[:16]).decode().lower().rstrip("=")[:26]

    @staticmethod
    def _aead(key: bytes) -> AESGCM:
        return _text_cipher(key)

    # ------------------------------------------------------------------ seal

    async def seal_events(self, events: Sequence[E], *, store: bool = True) -> list[E]:
        """``events`` with every free-text field replaced by its vault reference; the texts are
        stored (``store``: False only computes the references, e.g. to compare a retry)."""
        sealing = _Sealing()
        out = []
        for event in events:
            if not _has_free_text(event.data):
                out.append(event)
                continue
            key = await self._key(event.community)
            assert key is not None
            sealing.subject = getattr(event.data, "household_id", None)
            data = self._seal_model(event.data, key, event.community, event.type, sealing)
            out.append(event.model_copy(update={"data": data}))
        if store and sealing.rows:
            await self._store(sealing)
        return out

    def _seal_model(self, model: BaseModel, key: bytes, community: str, where: str, sealing: _Sealing) -> Any:
        update: dict[str, Any] = {}
        free = getattr(type(model), "free_text", ())
        for name in type(model).model_fields:
            value = getattr(model, name)
            path = f"{where}.{name}"
            if name in free:
                update[name] = self._seal_value(value, key, community, path, sealing)
            elif isinstance(value, BaseModel):
                update[name] = self._seal_model(value, key, community, path, sealing)
            elif isinstance(value, list | tuple) and any(isinstance(v, BaseModel) for v in value):
                update[name] = type(value)(
                    self._seal_model(v, key, community, path, sealing) if isinstance(v, BaseModel) else v for v in value
                )
        return model.model_copy(update=update) if update else model

    def _seal_value(self, value: Any, key: bytes, community: str, where: str, sealing: _Sealing) -> Any:
        if isinstance(value, list | tuple):
            return type(value)(self._seal_value(v, key, community, where, sealing) for v in value)
        if not isinstance(value, str) or not value or is_ref(value):
            return value
        ref = self._ref(key, community, where, value)
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead(key).encrypt(nonce, value.encode(), _aad(community, ref))
        sealing.rows[(community, ref)] = (sealed, sealing.subject)
        return f"⟦{ref}⟧"

    async def _store(self, sealing: _Sealing) -> None:
        keys = list(sealing.rows)
        async with self.pool.acquire() as conn:
            # An erased text stays erased: a retried command does not bring it back.
            await conn.execute(
                f"INSERT INTO {SCHEMA}.texts (community, ref, sealed, subject) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) "
                "ON CONFLICT (community, ref) DO NOTHING",
                [c for c, _ in keys],
                [r for _, r in keys],
                [sealing.rows[k][0] for k in keys],
                [sealing.rows[k][1] for k in keys],
            )

    # ------------------------------------------------------------------ reveal

    async def texts(self, community: str, refs: Iterable[str]) -> dict[str, str]:
        """The texts of ``refs`` in ``community`` (erased or unknown ones read ``[erased]``)."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        key = await self._key(community, create=False)
        if key is None:
            return dict.fromkeys(wanted, ERASED_TEXT)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT ref, sealed FROM {SCHEMA}.texts WHERE community = $1 AND ref = ANY($2::text[])",
                community,
                wanted,
            )
        aead = self._aead(key)
        out = dict.fromkeys(wanted, ERASED_TEXT)
        for r in rows:
            if r["sealed"] is not None:
                blob = bytes(r["sealed"])
                out[r["ref"]] = _open(aead, community, r["ref"], blob)
        return out

    async def reveal(self, community: str, value: Any) -> Any:
        """``value`` (strings, lists, dicts, models) with every reference replaced by its text —
        also a reference inside a revealed text (a note made of a sealed resolution, e.g. the
        hotline's feedback), a few levels deep."""
        for _ in range(3):
            found = refs_in(value)
            if not found:
                break
            value = _substitute(value, await self.texts(community, found))
        return value

    async def reveal_each(self, items: Sequence[tuple[str, T]]) -> list[T]:
        """Each ``(community, value)``'s value revealed, one read per community (a feed across
        communities, e.g. Open311's)."""
        by_community: dict[str, list[int]] = {}
        for i, (community, _) in enumerate(items):
            by_community.setdefault(community, []).append(i)
        out: list[T] = [value for _, value in items]
        for community, positions in by_community.items():
            values = await self.reveal(community, [items[i][1] for i in positions])
            for i, value in zip(positions, values, strict=True):
                out[i] = value
        return out

    # ------------------------------------------------------------------ erase

    async def erase_naming(
        self, community: str, personal: Mapping[str, str | None], *, household_id: str | None = None
    ) -> int:
        """Erase every text of ``community`` written about the household ``household_id`` (a visit's
        notes, a talent…) or naming it as ``personal`` describes it (its name, phone, ID number,
        address — wherever it was typed: a 12345 request, an Open311 address); the number erased."""
        wanted = needles(personal)
        key = await self._key(community, create=False)
        if key is None or not (wanted or household_id):
            return 0
        aead = self._aead(key)
        erased: list[str] = []
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                cursor = conn.cursor(
                    f"SELECT ref, sealed, subject FROM {SCHEMA}.texts WHERE community = $1 AND sealed IS NOT NULL",
                    community,
                )
                async for r in cursor:
                    if household_id is not None and r["subject"] == household_id:
                        erased.append(r["ref"])
                        continue
                    if wanted and names_any(_open(aead, community, r["ref"], bytes(r["sealed"])), wanted):
                        erased.append(r["ref"])
            if erased:
                await conn.execute(
                    f"UPDATE {SCHEMA}.texts SET sealed = NULL, erased_at = now() "
                    "WHERE community = $1 AND ref = ANY($2::text[])",
                    community,
                    erased,
                )
        return len(erased)


@functools.lru_cache(maxsize=1024)
def _text_cipher(key: bytes) -> AESGCM:
    """The AEAD of a community's text key (derived once per key, not per text)."""
    return AESGCM(hashlib.sha256(b"gridwork vault text\0" + key).digest())


def _aad(community: str, ref: str) -> bytes:
    """What a sealed text is bound to: its community and reference (a copy elsewhere does not open)."""
    return f"{community}/{ref}".encode()


def _open(aead: AESGCM, community: str, ref: str, blob: bytes) -> str:
    """The text sealed in ``blob`` (nonce first)."""
    return aead.decrypt(blob[:_NONCE], blob[_NONCE:], _aad(community, ref)).decode()


def _substitute(value: Any, texts: Mapping[str, str]) -> Any:
    return _walk_strings(value, lambda s: _REF.sub(lambda m: texts.get(m.group(1), ERASED_TEXT), s))


def _has_free_text(model: BaseModel) -> bool:
    if getattr(type(model), "free_text", ()):
        return True
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel) and _has_free_text(value):
            return True
        if isinstance(value, list | tuple) and any(isinstance(v, BaseModel) and _has_free_text(v) for v in value):
            return True
    return False
