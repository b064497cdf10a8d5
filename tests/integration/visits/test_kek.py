"""Household keys are stored only wrapped by a key-encryption key (KEK) that never enters
PostgreSQL: a dump of the database opens no resident's personal data, a wrapped key copied onto
another household's row does not open there, erasure leaves no key, and the KEK can be rotated."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.cli.main import main as gridwork
from services.visits.app import MIGRATIONS, build_app
from services.visits.pii import key_context
from shared.db import create_pool, migrate
from shared.eventstore import EventStore, connect
from shared.keywrap import LocalKeyring
from shared.settings import Settings
from tests.harness import running

from .conftest import C, Field, seed

NAME, PHONE = "王秀英", "13907110000"
ELDER, NEIGHBOUR = "h-p4-b4-2-301", "h-p4-b4-1-101"


def new_kek() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def sealed_name(f: Field, household_id: str) -> str:
    """The sealed ``name`` of a household, as the event stream (and any copy of it) holds it."""
    nc = await connect(f.settings, "test")
    try:
        stored = await EventStore(nc, f.settings).read(f"{f.settings.namespace}.>")
    finally:
        await nc.close()
    for s in stored:
        body = json.loads(s.data)
        data = body.get("data", {})
        if data.get("household_id") == household_id and "name" in data.get("sealed", {}):
            return str(data["sealed"]["name"])
    raise AssertionError(f"no sealed name for {household_id}")


def opens(key: bytes, blob: str, household_id: str) -> str | None:
    """The sealed field opened with ``key`` (an AES-256 key), or None."""
    raw = base64.urlsafe_b64decode(blob)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], f"{C}/{household_id}/name".encode()).decode()
    except (InvalidTag, ValueError):
        return None


def candidate_keys(value: Any) -> list[bytes]:
    """Every 32-byte string a reader of a column value could try as a key: each window of its
    bytes, and the same of its text decoded from base64 or hex."""
    blobs: list[bytes] = []
    if isinstance(value, bytes | bytearray | memoryview):
        blobs.append(bytes(value))
    elif isinstance(value, str):
        blobs.append(value.encode())
        for decode in (base64.b64decode, base64.urlsafe_b64decode, bytes.fromhex):
            try:
                blobs.append(decode(value))  # type: ignore[operator]
            except (binascii.Error, ValueError):
                pass
    return [b[i : i + 32] for b in blobs for i in range(0, max(0, len(b) - 31))]


async def table(f: Field, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_a_dump_of_the_keys_table_opens_no_residents_data_without_the_kek(bairuijing: Field) -> None:
    f = bairuijing
    blob = await sealed_name(f, ELDER)
    rows = await table(f, "SELECT * FROM visits.visits_household_keys")  # what pg_dump or a replica holds
    assert len(rows) == 2
    tried = 0
    for row in rows:
        for value in row.values():
            for key in candidate_keys(value):
                tried += 1
                assert opens(key, blob, ELDER) is None, f"a column of visits.visits_household_keys opens {ELDER}"
    assert tried > 0
    # With the KEK, which is not in the database, the same row does open: the dump holds the key, wrapped.
    [row] = [r for r in rows if r["household_id"] == ELDER]
    keyring = LocalKeyring(base64.b64decode(f.settings.kek))
    assert row["kek_id"] == keyring.key_id and row["key"] is None
    key = await keyring.unwrap(row["wrapped_key"], row["kek_id"], key_context(C, ELDER))
    assert opens(key, blob, ELDER) == NAME


async def test_a_wrapped_key_copied_onto_another_households_row_does_not_open(bairuijing: Field) -> None:
    f = bairuijing
    conn = await asyncpg.connect(f.settings.database_url)
    try:
        await conn.execute(
            "UPDATE visits.visits_household_keys AS b SET wrapped_key = a.wrapped_key, kek_id = a.kek_id "
            "FROM visits.visits_household_keys AS a WHERE a.household_id = $1 AND b.household_id = $2",
            ELDER,
            NEIGHBOUR,
        )
    finally:
        await conn.close()
    for headers, params in ((f.secretary, {"reveal": "true"}), (f.w07, {})):
        r = await f.client.get(f.url(f"/households/{NEIGHBOUR}"), headers=headers, params=params)
        assert r.status_code == 500 and r.json()["error"]["code"] == "household_key_unavailable"
        assert NAME not in r.text and "周建国" not in r.text
    # the household the key belongs to still opens
    assert (await f.household(ELDER, headers=f.w07))["personal"]["name"] == NAME


async def test_erasure_leaves_no_key_wrapped_or_plain(bairuijing: Field) -> None:
    f = bairuijing
    await f.post(f"/households/{ELDER}/erasure", {"reason": "moved_away"}, headers=f.secretary)
    [row] = await table(f, "SELECT * FROM visits.visits_household_keys WHERE household_id = $1", ELDER)
    assert row["erased_at"] is not None
    assert (row["key"], row["wrapped_key"], row["kek_id"]) == (None, None, None)
    # and the tombstone is never filled again
    r = await f.client.patch(f.url(f"/households/{ELDER}"), headers=f.secretary, json={"personal": {"name": NAME}})
    assert r.status_code == 409
    [row] = await table(f, "SELECT wrapped_key FROM visits.visits_household_keys WHERE household_id = $1", ELDER)
    assert row["wrapped_key"] is None


async def test_the_service_refuses_to_start_under_a_kek_that_did_not_wrap_the_keys(bairuijing: Field) -> None:
    f = bairuijing
    other = f.settings.model_copy(update={"kek": new_kek()})
    with pytest.raises(RuntimeError, match="which this process does not hold"):
        async with running(build_app(other)):
            pass


def test_the_visits_process_refuses_to_start_without_a_kek(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWORK_")}
    env.update(
        GRIDWORK_NATS_URL=str(settings.nats_url),
        GRIDWORK_DATABASE_URL=str(settings.database_url),
        GRIDWORK_NAMESPACE=settings.namespace,
        GRIDWORK_JWT_SECRET=settings.jwt_secret,
        GRIDWORK_VISITS_PORT="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.visits"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "GRIDWORK_KEK_FILE (or GRIDWORK_KEK) is not set" in done.stdout + done.stderr
    short = base64.b64encode(secrets.token_bytes(16)).decode()
    done = subprocess.run(
        [sys.executable, "-m", "services.visits"],
        env={**env, "GRIDWORK_KEK": short},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "GRIDWORK_KEK is 16 bytes" in done.stdout + done.stderr


async def test_keys_stored_plain_by_an_older_release_are_wrapped_when_the_service_starts(settings: Settings) -> None:
    # The database as the previous release left it: migration 0001 only, a plain key per household.
    old = Path(str(settings.data_dir)) / "visits" / "migrations"
    old.mkdir(parents=True)
    (old / "0001_visits_pii.sql").write_text((MIGRATIONS / "0001_visits_pii.sql").read_text())
    plain = AESGCM.generate_key(bit_length=256)
    pool = await create_pool(settings, service="visits", max_size=1)  # as the visits role, in its schema
    try:
        async with pool.acquire() as conn:
            await migrate(conn, [old])
            await conn.execute(
                "INSERT INTO visits_household_keys (community, household_id, key) VALUES ($1, $2, $3)", C, ELDER, plain
            )
    finally:
        await pool.close()

    async with running(build_app(settings)):
        conn = await asyncpg.connect(settings.database_url)
        try:
            row = await conn.fetchrow("SELECT * FROM visits.visits_household_keys WHERE household_id = $1", ELDER)
            # nothing writes a plain key any more
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO visits.visits_household_keys (community, household_id, key) VALUES ($1, 'h-new', $2)",
                    C,
                    plain,
                )
        finally:
            await conn.close()
    assert row["key"] is None and row["wrapped_key"] is not None
    keyring = LocalKeyring(base64.b64decode(settings.kek))
    assert await keyring.unwrap(row["wrapped_key"], row["kek_id"], key_context(C, ELDER)) == plain


async def test_rotating_the_kek_rewraps_every_key_and_the_old_kek_can_then_go(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old_kek, new = settings.kek, new_kek()
    async with running(build_app(settings)) as client:
        await seed(Field(client, settings))
        # free text too: the vault's text key of the community is wrapped by the same KEK
        await Field(client, settings).post("/face-to-face-sessions", {"station": "四期驿站", "topics": ["dog walking"]})
    # 1. the services get the new KEK, the old one as retired: they unwrap with either
    rotating = settings.model_copy(update={"kek": new, "kek_retired": old_kek})
    async with running(build_app(rotating)) as client:
        f = Field(client, rotating)
        assert (await f.household(ELDER, headers=f.w07))["personal"]["name"] == NAME
        # 2. `gridwork keys rewrap` moves every key under the new KEK, while the service runs
        for name, value in (
            ("DATABASE_URL", settings.database_url),
            ("KEK", new),
            ("KEK_RETIRED", old_kek),
            ("LOG_LEVEL", "WARNING"),
        ):
            monkeypatch.setenv(f"GRIDWORK_{name}", str(value))
        assert await asyncio.to_thread(gridwork, ["keys", "rewrap"]) == 0
        out = capsys.readouterr().out
        assert "re-wrapped 2 keys" in out and "re-wrapped 1 of the vault's text keys" in out
        new_id = LocalKeyring(base64.b64decode(new)).key_id
        assert f"2  {new_id} (current)" in out
        assert {r["kek_id"] for r in await table(f, "SELECT kek_id FROM visits.visits_household_keys")} == {new_id}
    # 3. the old KEK retires: the service runs on the new one alone, and the old one opens nothing
    rotated = settings.model_copy(update={"kek": new})
    async with running(build_app(rotated)) as client:
        f = Field(client, rotated)
        assert (await f.household(ELDER, headers=f.w07))["personal"]["name"] == NAME
        [session] = await f.get("/face-to-face-sessions")
        assert (session["station"], session["topics"]) == ("四期驿站", ["dog walking"])
    with pytest.raises(RuntimeError, match="which this process does not hold"):
        async with running(build_app(settings)):
            pass
