"""Least privilege in PostgreSQL: each service is a role owning its own schemas and nothing else.

The household keys that open residents' personal data are the visits service's alone; notify's
outbox and directory are notify's; an admin migrates and replays for a service by acting as its
role, so everything it makes stays the service's.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.cli.catalog import migrate_services
from services.cli.embedded import database_url_as
from services.notify.projections import NotifyRouting
from shared.db import create_pool
from shared.event_counts import EventCountsProjection
from shared.eventstore import connect
from shared.projection import create_schema, replay
from shared.settings import Settings

SERVICES = ("visits", "issues", "scoring", "notify")


@pytest.fixture
async def migrated(settings: Settings) -> Settings:
    """Every service's migrations applied the way `gridwork migrate` does: the admin acting as each role."""
    admin = settings.model_copy(update={"database_urls": {}})
    await migrate_services(admin)
    notify = await create_pool(settings, service="notify", max_size=1)
    try:
        async with notify.acquire() as conn:
            await create_schema(conn, NotifyRouting(), "proj_notify_routing")
    finally:
        await notify.close()
    return settings


async def as_service(settings: Settings, service: str) -> asyncpg.Connection:
    """A plain connection with the service's own DSN (its role), as the service process has."""
    return await asyncpg.connect(settings.database_urls[service])


async def test_the_visits_role_cannot_read_notifys_tables(migrated: Settings) -> None:
    conn = await as_service(migrated, "visits")
    try:
        assert (await conn.fetchval("SELECT current_user")).endswith("_visits")
        for table in ("notify.notify_deliveries", "notify.notify_recipients", "proj_notify_routing._checkpoint"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM scoring.scoring_closer_checks")
        # its own tables it reads and writes, unqualified: its schema is its search_path
        assert await conn.fetchval("SELECT count(*) FROM visits_household_keys") == 0
        assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        await conn.close()


async def test_no_role_but_visits_reads_the_household_keys(migrated: Settings) -> None:
    for service in ("notify", "issues", "scoring"):
        conn = await as_service(migrated, service)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT key FROM visits.visits_household_keys")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM visits.visits_pii_audit")
            # nor can it make itself a table in visits' schema
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TABLE visits.visits_household_keys_copy (key bytea)")
        finally:
            await conn.close()


async def test_what_the_admin_migrates_for_a_service_belongs_to_the_service(migrated: Settings) -> None:
    admin = await asyncpg.connect(migrated.database_url)
    try:
        owners = {
            (r["schemaname"], r["tablename"]): r["tableowner"]
            for r in await admin.fetch(
                "SELECT schemaname, tablename, tableowner FROM pg_tables WHERE schemaname = ANY($1::text[])",
                [*SERVICES, "proj_notify_routing"],
            )
        }
        role = {
            s: await admin.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", s)
            for s in SERVICES
        }
    finally:
        await admin.close()
    assert len(set(role.values())) == 4 and all(r.endswith(f"_{s}") for s, r in role.items())
    assert owners[("visits", "visits_household_keys")] == role["visits"]
    assert owners[("notify", "notify_deliveries")] == role["notify"]
    # each service has its own shared tables (dead letters, migrations), only its rows in them
    for service in SERVICES:
        assert owners[(service, "dead_letters")] == role[service]
        assert owners[(service, "schema_migrations")] == role[service]
    assert owners[("proj_notify_routing", "_checkpoint")] == role["notify"]


async def test_a_replay_run_by_the_admin_leaves_the_projection_the_services(migrated: Settings) -> None:
    admin = migrated.model_copy(update={"database_urls": {}})
    nc = await connect(admin, "test")
    pool = await create_pool(admin, service="scoring")  # the admin's DSN, acting as scoring's role
    try:
        await replay(EventCountsProjection(), nc=nc, pool=pool, settings=admin)
    finally:
        await pool.close()
        await nc.close()
    conn = await as_service(migrated, "scoring")
    try:
        assert await conn.fetchval("SELECT position FROM proj_activity._checkpoint") == 0
    finally:
        await conn.close()
    conn = await as_service(migrated, "visits")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM proj_activity._checkpoint")
    finally:
        await conn.close()


@pytest.mark.skipif(bool(os.environ.get("GRIDWORK_DATABASE_URL")), reason="the server's pg_hba.conf is not ours")
async def test_a_services_role_needs_its_password(migrated: Settings) -> None:
    visits = urlsplit(migrated.database_urls["visits"]).username or ""
    notify = urlsplit(migrated.database_urls["notify"])
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(database_url_as(migrated.database_url or "", visits, "guessed"))
    with pytest.raises(asyncpg.InvalidPasswordError):  # nor does notify's password open visits' role
        await asyncpg.connect(database_url_as(migrated.database_url or "", visits, notify.password or ""))
