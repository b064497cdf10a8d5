"""Wiring of the issues service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="issues",
    title="Issues",
    description=(
        "Problems and their travel: reported, assigned, escalated up the ladder to property "
        "management, police, the street and the 12345 hotline; Open311."
    ),
    routers=[],
    projections=[],
    publishes=[],
    consumes=[],
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.issues` reads the environment)."""
    return create_app(SPEC, settings)
