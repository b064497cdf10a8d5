"""PostgreSQL: connection pools, the SQL migrations and the services' roles.

Least privilege: each service has a schema named after it (``visits``, ``issues``, ``scoring``,
``notify``) holding its own tables, the shared tables (``dead_letters``, ``idempotency_keys``,
``schema_migrations``: each service only ever touches its own rows, so each has its own copy) and,
beside it, its projections' schemas (``proj_<name>``).  In a deployment with roles
(:func:`provision_roles`) the service's role ``gridwork_<service>`` owns all of them and nothing
else is granted to it: the visits role cannot read notify's tables, and no role but visits can
read ``visits_household_keys``.  A service connects with its own role's DSN, its ``search_path``
its schema; tools (migrations, replays, benchmarks) connect as an admin and act as the owning role
(``SET ROLE``), so what they create belongs to the service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .settings import Settings

#: A connection as the code gets it: opened directly, or acquired from a pool (a proxy).
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


#: Role names are ``<prefix>_<service>``; tests on a server of their own use another prefix.
ROLE_PREFIX = "gridwork"


def service_role(service: str, prefix: str = ROLE_PREFIX) -> str:
    """The PostgreSQL role of ``service`` (``gridwork_visits``)."""
    return f"{prefix}_{service}"


def service_schema(service: str) -> str:
    """The schema of ``service``'s own and shared tables: the service's name."""
    return service


async def create_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 10, service: str | None = None
) -> asyncpg.Pool:
    """A pool on PostgreSQL.  Owned by a lifespan; never created at import time.

    Without ``service``: ``GRIDWORK_DATABASE_URL`` as it is (the admin's tools, the tests).

    With ``service``: connections for that service — its own DSN (``database_urls[service]`` when
    the settings know every role's, else ``GRIDWORK_DATABASE_URL``), ``search_path`` its schema
    (created if missing) and, when another role owns that schema (an admin acting for the service:
    ``gridwork migrate``, ``replay``), ``SET ROLE`` to the owner, so whatever the pool creates
    belongs to the service.
    """
    url = settings.database_urls.get(service) if service else None
    url = url or settings.database_url
    if not url:
        raise RuntimeError("GRIDWORK_DATABASE_URL is not set (run `gridwork up` or set it)")
    if service is None:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=60)
        assert pool is not None
        return pool
    schema = service_schema(service)
    owner = await _home(url, schema)

    async def act_as_owner(conn: asyncpg.Connection) -> None:
        # RESET ALL (a pool's reset on release) leaves the role as it is: once per connection is enough
        await conn.execute(f'SET ROLE "{owner}"')

    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        server_settings={"search_path": _quoted(schema)},
        init=act_as_owner,
    )
    assert pool is not None
    return pool


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def _home(url: str, schema: str) -> str:
    """The owner of ``schema`` (created, owned by the connecting role, if it is missing)."""
    conn = await asyncpg.connect(url)
    try:
        owner = await conn.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema)
        if owner is None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
            owner = await conn.fetchval("SELECT current_user::text")
        elif not await conn.fetchval("SELECT pg_has_role(current_user, $1::text::regrole, 'MEMBER')", owner):
            me = await conn.fetchval("SELECT current_user::text")
            raise RuntimeError(
                f"PostgreSQL: schema {schema!r} belongs to {owner!r}, and {me!r} may not act as it "
                f"(connect as {owner!r}, or as an admin who is a member of it)"
            )
        return str(owner)
    finally:
        await conn.close()


async def provision_roles(
    conn: Conn,
    services: Iterable[str],
    passwords: Mapping[str, str] | None = None,
    *,
    prefix: str = ROLE_PREFIX,
) -> dict[str, str]:
    """As an admin, in the current database: a role per service owning the service's schema.

    Each role (``<prefix>_<service>``, made if missing; its password set when ``passwords`` has
    one for the service) may connect to this database and create schemas in it (its projections'
    schemas, a replay's shadow), owns the schema named after the service, and has that schema as
    its ``search_path`` here.  Nothing else is granted: what one service owns, no other reads.  The
    admin becomes a member of each role (able to ``SET ROLE`` to it) to migrate and replay for it.

    The admin needs ``CREATEROLE`` and ownership of (or ``CREATE`` with grant option on) the
    database — a superuser, or the database's owner with ``CREATEROLE``.  Idempotent; returns the
    role of each service.
    """
    roles: dict[str, str] = {}
    database = await conn.fetchval("SELECT current_database()")
    superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    for service in services:
        role = service_role(service, prefix)
        schema = service_schema(service)
        password = (passwords or {}).get(service)
        async with conn.transaction():
            # one provisioner at a time: roles are the whole server's, CREATE ROLE races otherwise
            await conn.execute("SELECT pg_advisory_xact_lock(7368422)")
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {_quoted(role)} LOGIN")
            if password is not None:
                await conn.execute(
                    await conn.fetchval(
                        "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", role, password
                    )
                )
            if not superuser and not await conn.fetchval(
                "SELECT pg_has_role(current_user, $1::text::regrole, 'MEMBER')", role
            ):
                await conn.execute(f"GRANT {_quoted(role)} TO CURRENT_USER")
            await conn.execute(f"GRANT CONNECT, CREATE ON DATABASE {_quoted(database)} TO {_quoted(role)}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)} AUTHORIZATION {_quoted(role)}")
            await conn.execute(f"ALTER SCHEMA {_quoted(schema)} OWNER TO {_quoted(role)}")
            await conn.execute(
                f"ALTER ROLE {_quoted(role)} IN DATABASE {_quoted(database)} SET search_path TO {_quoted(schema)}"
            )
        roles[service] = role
    return roles


async def migrate(conn: Conn, dirs: Iterable[Path] = ()) -> list[str]:
    """Apply every migration not yet applied — ``shared/migrations`` first, then ``dirs`` (a
    service's ``migrations/``, named by its :class:`~shared.service.ServiceSpec`) — each in its own
    transaction, into the connection's current schema (a service's pool: the service's schema);
    returns their names.

    A migration is named ``<folder>/<file>`` and recorded with its checksum; an applied file that
    changed since is an error (write a new migration instead).
    """
    await conn.execute("SELECT pg_advisory_lock(7368421)")  # one migrator at a time
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        applied: list[str] = []
        for folder in (SHARED_MIGRATIONS, *dirs):
            owner = folder.parent.name
            for path in sorted(folder.glob("*.sql")):
                name = f"{owner}/{path.name}"
                sql = path.read_text()
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if name in done:
                    if done[name] != checksum:
                        raise RuntimeError(f"migration {name} changed after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
                applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(7368421)")
