"""One authorization path: every route of every service checks its caller through
``shared.auth.require`` — except the few that are public by design, named here with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.issues.app import build_app as issues_app
from services.notify.app import build_app as notify_app
from services.scoring.app import build_app as scoring_app
from services.visits.app import build_app as visits_app
from shared.settings import Settings

#: Routes that answer without a bearer token, and why.
PUBLIC = {
    "/healthz": "liveness probe",
    "/readyz": "readiness probe (no data)",
    "/metrics": "Prometheus scrape (counts, no personal data)",
    "/asyncapi": "the event catalogue",
    "/board": "a static page; its data comes from the token-checked API",
    "/open311/v2/{name}": "Open311 GeoReport v2: services.json is public; a report carries the client's api_key",
    "/open311/v2/services/{name}": "Open311: a service definition is public",
    "/open311/v2/requests/{name}": "Open311: a request's public view",
    "/open311/v2/tokens/{name}": "Open311: a report token's public view",
    "/v1/ack/{token}": "a signed acknowledgement link is its own credential (SMS to the duty officer)",
}


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, through routers FastAPI includes lazily."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)


def _checks_the_caller(route: APIRoute) -> bool:
    return any(
        getattr(d.call, "__qualname__", "").startswith("require.<locals>") for d in _dependencies(route.dependant)
    )


@pytest.mark.parametrize("build", [visits_app, issues_app, scoring_app, notify_app])
def test_every_route_checks_its_caller_through_shared_auth(build) -> None:  # type: ignore[no-untyped-def]
    app: FastAPI = build(Settings(jwt_secret="x" * 64))
    routes = list(_routes(app.routes))
    assert len(routes) >= 8  # the walk found the service's routers
    unchecked = sorted(
        f"{sorted(r.methods)[0]} {r.path}" for r in routes if r.path not in PUBLIC and not _checks_the_caller(r)
    )
    assert unchecked == []
