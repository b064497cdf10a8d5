"""The visits service as it runs: its spec (routes, projections, reactions, events) and its app."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.events.visits import EVENTS
from shared.keywrap import KeyUnwrapError, require_kek
from shared.service import ServiceSpec, create_app
from shared.settings import Settings

from .api import ROUTERS
from .api.fast import IngestFastPath
from .bootstrap import VisitsDeps, bootstrap, prepare_household_keys
from .projections import (
    DirectoryProjection,
    OnShiftProjection,
    VisitCoverageProjection,
    WorkActivityProjection,
    WorkRecordsProjection,
)
from .reactions import REACTIONS
from .settings import VisitsSettings, visits_settings

log = structlog.get_logger("gridwork.visits")

#: The service's own tables (not projection-owned): applied at start-up after shared/'s.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def street_of(deps: VisitsDeps, community: str) -> str | None:
    """The street a community registered under (street admins' scope)."""
    return await deps.directory.street_of(community)


SPEC: ServiceSpec[VisitsDeps] = ServiceSpec(
    name="visits",
    title="Visits",
    description=(
        "The grid worker's side: people and places, shifts, knocks, sessions, councils, surveys "
        "(the 5+1 work) and the household ledger."
    ),
    routers=list(ROUTERS),
    ingress=[IngestFastPath],
    projections=[
        DirectoryProjection(),
        WorkActivityProjection(),
        VisitCoverageProjection(),
        OnShiftProjection(),
        WorkRecordsProjection(),
    ],
    background=list(REACTIONS),
    wire=bootstrap,
    street_of=street_of,
    body_limits=[("/ledger/import", "ledger_import_max_bytes")],
    checks=[require_kek],
    on_start=[prepare_household_keys],
    migrations=[MIGRATIONS],
    publishes=list(EVENTS),
    consumes=[],
    settings_type=VisitsSettings,
)


def spec_for(settings: VisitsSettings) -> ServiceSpec[VisitsDeps]:
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
    app = create_app(spec_for(upgraded or VisitsSettings()), upgraded)
    app.add_exception_handler(KeyUnwrapError, _key_unavailable)
    return app


async def _key_unavailable(_request: Request, err: Exception) -> JSONResponse:
    # A wrapped key that does not open was tampered with (copied from another household's row) or
    # its KEK is gone: fail closed, say so in the log, and never answer with the fields.
    log.error("household_key_unwrap_failed", error=str(err))
    return JSONResponse(
        {"error": {"code": "household_key_unavailable", "message": "a household key could not be unwrapped"}},
        status_code=500,
    )
