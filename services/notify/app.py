"""Wiring of the notify service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="notify",
    title="Notify",
    description=(
        "Routes escalations and digests to property management, police, the street office and the "
        "secretary, and makes sure they arrive."
    ),
    routers=[],
    projections=[],
    publishes=[],
    consumes=[],
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.notify` reads the environment)."""
    return create_app(SPEC, settings)
