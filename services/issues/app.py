"""Wiring of the issues service: its spec (routes, projections, background tasks, events)."""

from __future__ import annotations

from fastapi import FastAPI

from shared.events.issues import EVENTS as ISSUE_EVENTS
from shared.events.notify import NotificationAcknowledged, NotificationUnacknowledged
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingRegistered,
    CommunityRegistered,
    FaceToFaceSessionHeld,
    HouseholdRegistered,
    VisitLogged,
)
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

from . import api, hotline, open311
from .consumers import EscalationProcess, ProblemFiling, fire_due_timers
from .context import IssuesContext
from .gauges import refresh_board_gauges
from .hotline import deliver_hotline_feedback, hotline_feedback_outbox
from .projections import HotlineOutbox, IssuesBoard
from .settings import IssuesSettings, issues_settings


async def start_issues(runtime: Runtime) -> None:
    """Load the policy and catalogue, and bind the reactions to this process's event store."""
    ctx = IssuesContext.load(issues_settings(runtime.settings))
    runtime.state["issues"] = ctx
    for runner in runtime.runners.values():
        projection = runner.projection
        if isinstance(projection, ProblemFiling):
            runner.projection = projection.bound(runtime.store)
        elif isinstance(projection, EscalationProcess):
            runner.projection = projection.bound(runtime.store, ctx.policy)


SPEC = ServiceSpec(
    name="issues",
    title="Issues",
    description=(
        "Problems and their travel: reported, assigned, escalated up the ladder to property "
        "management, police, the street and the 12345 hotline; Open311."
    ),
    routers=[api.router, hotline.router, open311.router],
    projections=[IssuesBoard(), HotlineOutbox(), ProblemFiling(), EscalationProcess()],
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
        NotificationUnacknowledged,
        NotificationAcknowledged,
    ],
    settings_type=IssuesSettings,
)


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.issues` reads the environment)."""
    return create_app(SPEC, issues_settings(settings) if settings is not None else None)
