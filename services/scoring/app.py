"""Wiring of the scoring service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.service import ServiceSpec, create_app
from shared.settings import Settings

SPEC = ServiceSpec(
    name="scoring",
    title="Scoring",
    description=(
        "The 5+1 quotas, the points evaluation and the community's figures, folded from the event "
        "stream."
    ),
    routers=[],
    projections=[],
    publishes=[],
    consumes=[],
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.scoring` reads the environment)."""
    return create_app(SPEC, settings)
