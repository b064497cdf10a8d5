"""Every service of the system, as the command sees them: their specs, projections and migrations."""

from __future__ import annotations

from pathlib import Path

from services.console.app import SPEC as CONSOLE
from services.issues.app import SPEC as ISSUES
from services.notify.app import SPEC as NOTIFY
from services.scoring.app import SPEC as SCORING
from services.visits.app import SPEC as VISITS
from shared.settings import Settings

SPECS = (VISITS, ISSUES, SCORING, NOTIFY, CONSOLE)
#: Every projection of every service, by name (for ``gridwork replay`` and the benchmarks).
PROJECTIONS = {p.name: p for spec in SPECS for p in spec.projections}
#: The service each projection belongs to (its role owns the projection's schema).
OWNERS = {p.name: spec.name for spec in SPECS for p in spec.projections}
#: Every service's own migrations, in service order (shared/'s always go first: ``shared.db.migrate``).
MIGRATIONS: tuple[Path, ...] = tuple(path for spec in SPECS for path in spec.migrations)


async def migrate_services(settings: Settings) -> list[str]:
    """Every service's migrations (shared/'s, then its own) into the service's schema, as its role
    (an admin acts as the role that owns the schema); the names applied, ``<service>:<migration>``."""
    import asyncpg

    from shared import vault
    from shared.db import create_pool, migrate, service_role

    applied: list[str] = []
    for spec in SPECS:
        pool = await create_pool(settings, service=spec.name, max_size=1)
        try:
            async with pool.acquire() as conn:
                applied += [f"{spec.name}:{name}" for name in await migrate(conn, spec.migrations)]
        finally:
            await pool.close()
    if settings.database_url and not settings.database_urls:
        # An admin migrating a deployment with a role per service (compose): the vault, owned by
        # visits, granted to issues and notify.  Without those roles the services make it themselves.
        admin = await asyncpg.connect(settings.database_url)
        try:
            names = [spec.name for spec in SPECS]
            present = {
                r["rolname"]
                for r in await admin.fetch(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", [service_role(n) for n in names]
                )
            }
            roles = {n: service_role(n) for n in names if service_role(n) in present}
            if "visits" in roles and await admin.fetchval(
                "SELECT pg_has_role(current_user, $1::text::regrole, 'MEMBER')", roles["visits"]
            ):
                await vault.provision(admin, roles)
        finally:
            await admin.close()
    return applied
