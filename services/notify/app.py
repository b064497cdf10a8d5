"""The notify service as the shared scaffolding runs it: its spec (routes, projections, background
tasks, outboxes, events, the composition root) and its ASGI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.events.issues import IssueClosed, IssueEscalated, IssueMerged, IssueOverdue, IssueReported, IssueResolved
from shared.events.notify import (
    NotificationAcknowledged,
    NotificationDeadLettered,
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
    NotificationUnacknowledged,
)
from shared.events.scoring import QuotaPeriodClosed
from shared.events.visits import CommunityMoved, CommunityRegistered
from shared.keywrap import require_kek
from shared.service import ServiceSpec, create_app

from . import queries
from .api import router
from .bootstrap import NotifyDeps, bootstrap
from .projections import NotifyRouting
from .reactions import delivery_outbox, delivery_worker, timers
from .settings import NotifySettings

#: The service's own tables (not projection-owned): applied at start-up after shared/'s.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def street_of(deps: NotifyDeps, community: str) -> str | None:
    """The street a community registered under (street admins' scope)."""
    return await queries.street_of(community, deps=deps)


SPEC: ServiceSpec[NotifyDeps] = ServiceSpec(
    name="notify",
    title="Notify",
    description=(
        "Routes escalations and digests to property management, police, the street office and the "
        "secretary, and makes sure they arrive: signed webhooks, WeCom robots, email, SMS; retries, "
        "dead letters, acknowledgements."
    ),
    routers=[router],
    projections=[NotifyRouting()],
    background=[delivery_worker, timers],
    outboxes=[delivery_outbox],
    publishes=[
        NotificationSent,
        NotificationDelivered,
        NotificationFailed,
        NotificationDeadLettered,
        NotificationAcknowledged,
        NotificationUnacknowledged,
    ],
    consumes=[
        IssueReported,
        IssueEscalated,
        IssueOverdue,
        IssueResolved,
        IssueClosed,
        IssueMerged,
        QuotaPeriodClosed,
        CommunityRegistered,
        CommunityMoved,
    ],
    port_setting="notify_port",
    settings_type=NotifySettings,
    wire=bootstrap,
    street_of=street_of,
    checks=[require_kek],
    migrations=[MIGRATIONS],
)


def build_app(settings: NotifySettings | None = None) -> FastAPI:
    """The ASGI app (tests pass their own settings; `python -m services.notify` reads the environment)."""
    return create_app(SPEC, settings)
