"""Wiring of the scoring service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.events import EVENT_TYPES
from shared.events import now as shanghai_now
from shared.events.scoring import PointsAwarded, QuotaPeriodClosed
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from . import api, board_page
from .closing import closing_loop
from .domain import RuleSet
from .gauges import refresh_completion_gauges
from .projections import BASE_EVENT_TYPES, ScoringProjection
from .settings import ScoringSettings, scoring_settings

#: What the built-in rulebooks read besides the base types (for the AsyncAPI document).
_EVIDENCE = ("ShiftEnded", "FaceToFaceSessionHeld", "BuildingCouncilHeld", "ResidentBefriended", "TalentDiscovered")


def make_spec(
    settings: ScoringSettings | None = None,
    *,
    rules: RuleSet | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ServiceSpec:
    """The scoring service's spec.  Rules load lazily (from ``settings`` or the environment) at first use."""
    projection = ScoringProjection(rules if rules is not None else (settings.rules if settings else None))

    async def install(runtime: Runtime) -> None:
        runtime.state["rules"] = projection.rules
        runtime.state["clock"] = clock or shanghai_now

    async def close_periods(runtime: Runtime) -> None:
        await closing_loop(runtime, clock=runtime.state["clock"], projection=projection.name)

    async def completion_gauges(runtime: Runtime) -> None:
        await refresh_completion_gauges(runtime, projection.name, runtime.state["clock"])

    return ServiceSpec(
        name="scoring",
        title="Scoring",
        description=(
            "The 5+1 quotas, the points evaluation and the community's figures, folded from the event stream."
        ),
        routers=[api.router, board_page.router],
        projections=[projection],
        background=[close_periods, completion_gauges],
        on_start=[install],
        publishes=[QuotaPeriodClosed, PointsAwarded],
        consumes=[EVENT_TYPES[t] for t in sorted(set(BASE_EVENT_TYPES) | set(_EVIDENCE))],
        port_setting="scoring_port",
        settings_type=ScoringSettings,
    )


SPEC = make_spec()


def build_app(
    settings: Settings | None = None,
    *,
    rules: RuleSet | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The ASGI app: tests pass their own settings, rules or clock; `python -m services.scoring` reads the env."""
    if settings is None and rules is None and clock is None:
        return create_app(SPEC)
    s = scoring_settings(settings)
    return create_app(make_spec(s, rules=rules, clock=clock), s)
