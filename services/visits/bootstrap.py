"""The visits service's one composition root: what its handlers, queries and routes depend on.

:func:`bootstrap` builds :class:`VisitsDeps` once per process on the live connections (the
service's lifespan calls it through ``ServiceSpec.wire``); routes reach it with :func:`deps`,
background code with ``runtime.deps``, and ``gridwork import`` with :func:`wire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from fastapi import Request

from shared.eventstore import EventStore
from shared.keywrap import keyring_from_settings
from shared.service import Runtime, runtime_of
from shared.vault import TextVault

from .directory import Directory
from .pii import AuditLog, KeyStore
from .settings import VisitsSettings, visits_settings

log = structlog.get_logger("gridwork.visits")


@dataclass(frozen=True, slots=True)
class VisitsDeps:
    """Everything the visits service's handlers, queries and routes need, built once per process."""

    settings: VisitsSettings
    store: EventStore
    pool: asyncpg.Pool
    #: Households' grids and tags, buildings, workers, persons — cached per process.
    directory: Directory
    #: Household keys that seal personal data (PIPL), stored wrapped by the KEK.
    keys: KeyStore
    #: Who read residents' personal data.
    audit: AuditLog
    #: Free text (notes, problem descriptions…) sealed out of the events; erased with a household.
    vault: TextVault


def wire(store: EventStore, pool: asyncpg.Pool, settings: VisitsSettings) -> VisitsDeps:
    """The dependencies on these connections; the store seals free text into the vault."""
    keyring = keyring_from_settings(settings)
    vault = TextVault(pool, keyring)
    store.seal = vault.seal_events
    return VisitsDeps(
        settings=settings,
        store=store,
        pool=pool,
        directory=Directory(pool, store, settings.directory_cache_seconds),
        keys=KeyStore(pool, keyring),
        audit=AuditLog(pool),
        vault=vault,
    )


async def bootstrap(runtime: Runtime[Any]) -> VisitsDeps:
    """The service's dependencies, on the runtime's connections (``ServiceSpec.wire``)."""
    settings = visits_settings(runtime.settings)
    assert settings is not None  # a runtime always has settings
    return wire(runtime.store, runtime.pool, settings)


async def prepare_household_keys(runtime: Runtime[Any]) -> None:
    """At start-up, before the service answers: every stored key's KEK is held here (else the
    start is refused), and keys left plain by an older release are wrapped (migration 0002)."""
    keys: KeyStore = runtime.deps.keys
    await runtime.deps.vault.ensure()
    await runtime.deps.vault.check_keks()
    await keys.check_keks()
    report = await keys.rewrap(plain_only=True)
    if report.wrapped_plain:
        log.info("household_keys_wrapped", keys=report.wrapped_plain, kek_id=report.kek_id)


def deps(request: Request) -> VisitsDeps:
    """The running service's dependencies, for a route.

    Routes call it directly rather than through ``Depends``: FastAPI runs a plain ``def``
    dependency in its thread pool, two thread hops per request for an attribute read."""
    return runtime_of(request).deps
