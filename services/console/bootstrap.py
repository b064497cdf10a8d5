"""The composition root of the console: :class:`ConsoleDeps`, built once per process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request

from shared.ratelimit import RateLimit
from shared.service import Runtime, runtime_of

from .accounts import AccountsDeps
from .domain.accounts import LockPolicy
from .gateway import Gateway
from .live import LiveHub
from .passwords import Passwords
from .settings import ConsoleSettings
from .web.sessions import Sessions


@dataclass(frozen=True)
class ConsoleDeps:
    """Everything the console's pages need."""

    settings: ConsoleSettings
    pool: asyncpg.Pool
    accounts: AccountsDeps
    sessions: Sessions
    gateway: Gateway
    sign_in_limits: RateLimit
    hub: LiveHub


async def bootstrap(runtime: Runtime[Any]) -> ConsoleDeps:
    """``ServiceSpec.wire``: the console's dependencies on the runtime's connections."""
    settings = runtime.settings
    assert isinstance(settings, ConsoleSettings), "the console runs on ConsoleSettings"
    gateway = Gateway(settings)
    return ConsoleDeps(
        settings=settings,
        pool=runtime.pool,
        accounts=AccountsDeps(
            store=runtime.store,
            passwords=Passwords(settings.sealing_key()),
            policy=LockPolicy(settings.console_lock_after_failures, settings.console_lock_minutes),
        ),
        sessions=Sessions(runtime.pool, settings),
        gateway=gateway,
        sign_in_limits=RateLimit(),
        hub=LiveHub(runtime.nc, gateway, settings.namespace),
    )


def deps(request: Request) -> ConsoleDeps:
    """The running console's dependencies (for a route)."""
    wired: ConsoleDeps = runtime_of(request).deps
    return wired
