"""The issues service's composition root: everything its handlers, queries, reactions and routes
need, built once at start-up on the live connections.

:func:`bootstrap` runs in the lifespan (``ServiceSpec(wire=bootstrap)``) before the reactions are
bound and the background tasks start; it reads the escalation policy and the category catalogue
named by the settings, so a bad file stops the start naming the entry.  Routes get the result with
:func:`deps`, background tasks as ``runtime.deps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request

from shared.eventstore import EventStore
from shared.keywrap import keyring_from_settings
from shared.service import Runtime, runtime_of
from shared.vault import TextVault

from .domain import Catalogue, Policy
from .rules_files import load_catalogue, load_policy
from .settings import IssuesSettings, issues_settings


@dataclass(frozen=True)
class IssuesDeps:
    """The issues service's dependencies: its settings, the event store, the PostgreSQL pool, and
    the escalation policy and category catalogue read from the rule files."""

    settings: IssuesSettings
    store: EventStore
    pool: asyncpg.Pool
    policy: Policy
    catalogue: Catalogue
    #: Free text (descriptions, 12345 requests, Open311 addresses, notes) sealed out of the events.
    vault: TextVault


async def bootstrap(runtime: Runtime[Any]) -> IssuesDeps:
    """Build the service's dependencies on the runtime's connections (reads the rule files)."""
    settings = issues_settings(runtime.settings)
    vault = TextVault(runtime.pool, keyring_from_settings(settings))
    await vault.ensure()
    await vault.check_keks()
    runtime.store.seal = vault.seal_events
    return IssuesDeps(
        settings=settings,
        store=runtime.store,
        pool=runtime.pool,
        policy=load_policy(settings.issues_escalation_file),
        catalogue=load_catalogue(settings.issues_catalogue_file),
        vault=vault,
    )


def deps(request: Request) -> IssuesDeps:
    """The running service's dependencies (a FastAPI dependency; a route may also call it directly)."""
    return runtime_of(request).deps
