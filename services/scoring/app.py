"""The scoring service's spec (routes, projection, background tasks, events) and its ASGI app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.events import EVENT_TYPES
from shared.events.scoring import PointsAwarded, QuotaPeriodClosed
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from . import queries
from .api import ROUTERS
from .bootstrap import Clock, ScoringDeps, bootstrap
from .domain import RuleSet
from .projections import BASE_EVENT_TYPES, ScoringProjection
from .reactions import close_periods, refresh_completion_gauges
from .settings import ScoringSettings, scoring_settings

#: What the built-in rulebooks read besides the base types (for the AsyncAPI document).
_EVIDENCE = ("ShiftEnded", "FaceToFaceSessionHeld", "BuildingCouncilHeld", "ResidentBefriended", "TalentDiscovered")

#: The service's own tables (not projection-owned): applied at start-up after shared/'s.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def street_of(deps: ScoringDeps, community: str) -> str | None:
    """The street a community registered under (street admins' scope)."""
    return await queries.street_of(deps.pool, community)


def make_spec(
    settings: ScoringSettings | None = None, *, rules: RuleSet | None = None, clock: Clock | None = None
) -> ServiceSpec[ScoringDeps]:
    """The scoring service's spec.  Rules load lazily (from ``settings`` or the environment) at start-up;
    tests pass their own ``rules`` or ``clock``."""
    projection = ScoringProjection(rules if rules is not None else (settings.rules if settings else None))

    async def wire(runtime: Runtime[Any]) -> ScoringDeps:
        # The routes and the closer score with the very rules the projection folds with.
        return await bootstrap(runtime, rules=projection.rules, clock=clock)

    return ServiceSpec(
        name="scoring",
        title="Scoring",
        description=(
            "The 5+1 quotas, the points evaluation and the community's figures, folded from the event stream."
        ),
        routers=ROUTERS,
        projections=[projection],
        background=[close_periods, refresh_completion_gauges],
        publishes=[QuotaPeriodClosed, PointsAwarded],
        consumes=[EVENT_TYPES[t] for t in sorted(set(BASE_EVENT_TYPES) | set(_EVIDENCE))],
        port_setting="scoring_port",
        settings_type=ScoringSettings,
        wire=wire,
        street_of=street_of,
        migrations=[MIGRATIONS],
    )


SPEC: ServiceSpec[ScoringDeps] = make_spec()


def build_app(settings: Settings | None = None, *, rules: RuleSet | None = None, clock: Clock | None = None) -> FastAPI:
    """The ASGI app: tests pass their own settings, rules or clock; `python -m services.scoring` reads the env."""
    if settings is None and rules is None and clock is None:
        return create_app(SPEC)
    s = scoring_settings(settings)
    return create_app(make_spec(s, rules=rules, clock=clock), s)
