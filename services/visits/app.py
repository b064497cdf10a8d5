"""Wiring of the visits service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.events.visits import EVENTS
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from .api import ROUTERS
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
    projections=[DirectoryProjection(), ActivityProjection()],
    on_start=[wire_handlers],
    publishes=list(EVENTS),
    consumes=[],
    settings_type=VisitsSettings,
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.visits` reads the environment)."""
    return create_app(SPEC, visits_settings(settings))
