"""Wiring of the visits service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="visits",
    title="Visits",
    description=(
        "The grid worker's side: people and places, shifts, knocks, sessions, councils, surveys "
        "(the 5+1 work) and the household ledger."
    ),
    routers=[],
    projections=[],
    publishes=[],
    consumes=[],
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.visits` reads the environment)."""
    return create_app(SPEC, settings)
