"""The scoring service's composition root: everything its handlers, queries, reactions and routes need.

:func:`bootstrap` builds one :class:`ScoringDeps` on the live connections when the service starts
(``ServiceSpec.wire``); routes get it with ``Depends(deps)``, background tasks as ``runtime.deps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import Request

from shared.events import now as shanghai_now
from shared.eventstore import EventStore
from shared.service import Runtime, runtime_of

from .domain import RuleSet
from .settings import ScoringSettings, scoring_settings

#: The service's clock: "now" in Asia/Shanghai (tests pass one they move by hand).
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ScoringDeps:
    """The scoring service's dependencies, built once at start-up."""

    settings: ScoringSettings
    #: The rulebooks and each community's choice — the same object the projection folds with.
    rules: RuleSet
    clock: Clock
    pool: asyncpg.Pool
    store: EventStore


async def bootstrap(runtime: Runtime[Any], *, rules: RuleSet | None = None, clock: Clock | None = None) -> ScoringDeps:
    """Build :class:`ScoringDeps` on the runtime's connections.

    ``rules``: the projection's (default: loaded from the settings); ``clock``: default Asia/Shanghai now.
    """
    settings = scoring_settings(runtime.settings)
    return ScoringDeps(
        settings=settings,
        rules=rules if rules is not None else settings.rules(),
        clock=clock or shanghai_now,
        pool=runtime.pool,
        store=runtime.store,
    )


async def deps(request: Request) -> ScoringDeps:
    """FastAPI dependency: the running service's :class:`ScoringDeps`.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool,
    a hop that costs more (~0.15 ms here) than the rest of this lookup on every request.
    """
    wired: ScoringDeps = runtime_of(request).deps
    return wired
