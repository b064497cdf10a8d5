"""Core ``gridwork`` commands: up, token, migrate, replay and the foundation benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import Mapping
from pathlib import Path

from .auth import ROLES, mint_token
from .projection import Projection
from .settings import Settings


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; the JWT secret falls back to the data dir's (made by ``up``)."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if not settings.jwt_secret:
        settings = settings.model_copy(update={"jwt_secret": local_jwt_secret(settings.data_dir)})
    return settings


def local_jwt_secret(data_dir: Path) -> str:
    """The embedded stack's signing secret, created on first use under the data directory."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_token(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(mint_token(settings, role=args.role, sub=args.sub, community=args.community, street=args.street,
                     grid=args.grid, worker_id=args.worker, agency=args.agency, ttl_seconds=args.ttl))
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from .db import create_pool, migrate

    async def run() -> list[str]:
        pool = await create_pool(load_settings())
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        await pool.close()
        return applied

    applied = asyncio.run(run())
    print("\n".join(applied) if applied else "up to date")
    return 0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction,
             projections: Mapping[str, Projection] | None = None) -> None:
    """Add the core commands."""
    token = commands.add_parser("token", help="mint a bearer token for local use")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--community")
    token.add_argument("--street")
    token.add_argument("--grid")
    token.add_argument("--worker", help="worker id (grid_worker role)")
    token.add_argument("--agency")
    token.add_argument("--sub")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    token.set_defaults(handler=cmd_token)

    migrate = commands.add_parser("migrate", help="apply the SQL migrations")
    migrate.set_defaults(handler=cmd_migrate)
