"""PostgreSQL: connection pools and the SQL migrations."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .settings import Settings

#: A connection as the code gets it: opened directly, or acquired from a pool (a proxy).
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool on ``GRIDWORK_DATABASE_URL``.  Owned by a lifespan; never created at import time."""
    if not settings.database_url:
        raise RuntimeError("GRIDWORK_DATABASE_URL is not set (run `gridwork up` or set it)")
    pool = await asyncpg.create_pool(settings.database_url, min_size=min_size, max_size=max_size, command_timeout=60)
    assert pool is not None
    return pool


async def migrate(conn: Conn, dirs: Iterable[Path] = ()) -> list[str]:
    """Apply every migration not yet applied — ``shared/migrations`` first, then ``dirs`` (each a
    service's ``migrations/``, named by its :class:`~shared.service.ServiceSpec`) — each in its own
    transaction; returns their names.

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
