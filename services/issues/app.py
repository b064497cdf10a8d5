"""Wiring of the issues service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.events.issues import EVENTS as ISSUE_EVENTS
from shared.events.notify import NotificationAcknowledged, NotificationUnacknowledged
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingRegistered,
    CommunityMoved,
    CommunityRegistered,
    FaceToFaceSessionHeld,
    HouseholdRegistered,
    VisitLogged,
)
from shared.keywrap import require_kek
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from . import queries
from .api import ROUTERS
from .bootstrap import IssuesDeps, bootstrap
from .projections import HotlineOutbox, IssuesBoard
from .reactions import (
    EscalationProcess,
    ProblemFiling,
    deliver_hotline_feedback,
    fire_due_timers,
    hotline_feedback_outbox,
    refresh_board_gauges,
)
from .settings import IssuesSettings, issues_settings
from .statistics import IssueStatistics


async def start_issues(runtime: Runtime[IssuesDeps]) -> None:
    """Bind the reactions to this process's dependencies (event store, escalation policy).

    The spec lists them unbound, so that ``gridwork replay`` can rebuild their tables without a
    running service; bound, they also append what they decide.
    """
    for runner in runtime.runners.values():
        projection = runner.projection
        if isinstance(projection, ProblemFiling | EscalationProcess):
            runner.projection = projection.bound(runtime.deps)


async def street_of(deps: IssuesDeps, community: str) -> str | None:
    """The street a community registered under (street admins' scope)."""
    async with deps.pool.acquire() as conn:
        return await queries.community_street(conn, community)


SPEC: ServiceSpec[IssuesDeps] = ServiceSpec(
    name="issues",
    title="Issues",
    description=(
        "Problems and their travel: reported, assigned, escalated up the ladder to property "
        "management, police, the street and the 12345 hotline; Open311."
    ),
    routers=ROUTERS,
    projections=[IssuesBoard(), HotlineOutbox(), ProblemFiling(), EscalationProcess(), IssueStatistics()],
    background=[fire_due_timers, deliver_hotline_feedback, refresh_board_gauges],
    on_start=[start_issues],
    outboxes=[hotline_feedback_outbox],
    publishes=list(ISSUE_EVENTS),
    consumes=[
        VisitLogged,
        FaceToFaceSessionHeld,
        BuildingCouncilHeld,
        HouseholdRegistered,
        BuildingRegistered,
        CommunityRegistered,
        CommunityMoved,
        NotificationUnacknowledged,
        NotificationAcknowledged,
    ],
    settings_type=IssuesSettings,
    wire=bootstrap,
    street_of=street_of,
    checks=[require_kek],
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.issues` reads the environment)."""
    return create_app(SPEC, issues_settings(settings) if settings is not None else None)
