"""Wiring of the visits service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

import dataclasses

from fastapi import FastAPI

from shared.events.visits import EVENTS
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from .api import ROUTERS
from .api.fast import IngestFastPath
from .handlers import build_deps
from .projections import ActivityProjection, DirectoryProjection
from .settings import VisitsSettings, visits_settings


async def wire_handlers(runtime: Runtime) -> None:
    """Build the handlers' dependencies once, on the live connections."""
    settings = visits_settings(runtime.settings)
    assert settings is not None
    runtime.state["visits"] = build_deps(runtime.store, runtime.pool, settings)


SPEC = ServiceSpec(
    name="visits",
    title="Visits",
    description=(
        "The grid worker's side: people and places, shifts, knocks, sessions, councils, surveys "
        "(the 5+1 work) and the household ledger."
    ),
    routers=list(ROUTERS),
    ingress=[IngestFastPath],
    projections=[DirectoryProjection(), ActivityProjection()],
    on_start=[wire_handlers],
    publishes=list(EVENTS),
    consumes=[],
    settings_type=VisitsSettings,
)


def spec_for(settings: VisitsSettings) -> ServiceSpec:
    """The spec for this process's role: API and projections together (default), or either alone.

    Running the read models in their own process lets the API be scaled out (more processes,
    more machines) without starting another set of projection runners with each one.
    """
    if settings.visits_role == "api":
        return dataclasses.replace(SPEC, projections=[])
    if settings.visits_role == "projections":
        return dataclasses.replace(SPEC, routers=[], ingress=[])
    return SPEC


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.visits` reads the environment)."""
    upgraded = visits_settings(settings)
    return create_app(spec_for(upgraded or VisitsSettings()), upgraded)
