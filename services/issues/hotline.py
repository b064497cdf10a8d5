"""The 12345 city service hotline (接诉即办): work orders in, status feedback out.

In: the hotline POSTs a work order (工单); the order number is the issue's key (``hl-<order_no>``),
so a re-sent order is stored once.  The order's response and resolution deadlines drive the
escalation timers.  After the case is resolved the hotline calls the resident back and POSTs the
answer: satisfied closes the case, not satisfied reopens it.

Out: every status change of a hotline issue lands in the ``hotline_feedback`` outbox (same
transaction as the projection's checkpoint); :func:`deliver_hotline_feedback` POSTs each row to
``GRIDWORK_HOTLINE_CALLBACK_URL`` in order, retrying with backoff until the hotline takes it, then
records ``HotlineFeedbackSent`` (deterministic id: once per status change).  Each POST carries the
feedback id as ``Idempotency-Key`` so the hotline can drop a repeat after a crash between its
answer and our record.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import stamina
import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.auth import Principal, require
from shared.errors import NotFound
from shared.events import Category, Place, Severity, now
from shared.events.issues import IssueResolved, IssueVerified
from shared.eventstore import EventStore
from shared.service import OutboxStatus, Runtime

from . import queries
from .api import Community, _check_subcategory, _ctx, _runtime, issue_view, outcome_view
from .context import issues_context
from .domain import Context, HotlineCallback, IllegalTransition, ReceiveHotlineOrder, RecordHotlineFeedback
from .handlers import execute, read_history
from .metrics import HOTLINE_FEEDBACK
from .projections import OUTBOX
from .settings import IssuesSettings

log = structlog.get_logger("gridwork.issues.hotline")

router = APIRouter(prefix="/v1", tags=["hotline"])

OrderNo = str


def order_issue_id(order_no: str) -> str:
    """The issue a work order becomes."""
    return f"hl-{order_no}"


class WorkOrder(BaseModel):
    """A 12345 work order as the hotline dispatches it."""

    model_config = ConfigDict(extra="forbid")

    order_no: str = Field(pattern=r"^[A-Za-z0-9_-]{1,61}$", description="The hotline's work order number")
    request: str = Field(min_length=1, max_length=4000, description="The citizen's request, as recorded")
    category: Category
    subcategory: str | None = Field(default=None, max_length=64)
    severity: Severity = "medium"
    place: Place = Field(default_factory=Place)
    response_deadline: AwareDatetime = Field(description="Respond (accept) by")
    resolution_deadline: AwareDatetime = Field(description="Resolve by")
    dispatched_at: AwareDatetime | None = Field(default=None, description="When 12345 dispatched the order")


class CallbackResult(BaseModel):
    """The resident's answer on the hotline's call-back (回访)."""

    model_config = ConfigDict(extra="forbid")

    satisfied: bool
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    note: str | None = Field(default=None, max_length=1000)


@router.post("/communities/{community}/hotline/orders", status_code=201)
async def receive_order(
    request: Request,
    response: Response,
    community: Community,
    order: WorkOrder,
    principal: Principal = Depends(require("hotline", "ops")),
) -> dict[str, Any]:
    """Take a 12345 work order; a re-sent order number is stored once (answered 200, duplicate)."""
    principal.require_community(community)
    _check_subcategory(_ctx(request), order.category, order.subcategory)
    store = _runtime(request).store
    issue_id = order_issue_id(order.order_no)
    command = ReceiveHotlineOrder(
        order_no=order.order_no,
        issue_id=issue_id,
        request=order.request,
        category=order.category,
        subcategory=order.subcategory,
        severity=order.severity,
        place=order.place,
        response_deadline=order.response_deadline,
        resolution_deadline=order.resolution_deadline,
    )
    ctx = Context(
        community=community,
        actor=principal.sub,
        at=order.dispatched_at or now(),
        policy=_ctx(request).policy,
        key=f"order:{order.order_no}",
    )
    try:
        outcome = await execute(
            store, community=community, issue_id=issue_id, command=command, ctx=ctx, expected_revision=0
        )
    except IllegalTransition:  # the order number is known: the hotline re-sent it
        response.status_code = 200
        state = (await read_history(store, community, issue_id)).state
        return {"issue_id": issue_id, "order_no": order.order_no, "duplicate": True, "issue": issue_view(state)}
    if outcome.duplicate:
        response.status_code = 200
    return {
        "issue_id": issue_id,
        "order_no": order.order_no,
        "duplicate": outcome.duplicate,
        "issue": issue_view(outcome.state),
    }


@router.post("/communities/{community}/hotline/orders/{order_no}/callback")
async def resident_callback(
    request: Request,
    community: Community,
    order_no: OrderNo,
    result: CallbackResult,
    principal: Principal = Depends(require("hotline", "ops")),
) -> dict[str, Any]:
    """The resident's satisfaction from the call-back: closes the case or reopens it."""
    principal.require_community(community)
    store = _runtime(request).store
    issue_id = order_issue_id(order_no)
    ctx = Context(community=community, actor=principal.sub, at=now(), policy=_ctx(request).policy)
    command = HotlineCallback(result.satisfied, result.satisfaction, result.note)
    try:
        outcome = await execute(store, community=community, issue_id=issue_id, command=command, ctx=ctx)
    except IllegalTransition:
        history = await read_history(store, community, issue_id)
        if _already_answered(history.events, result):
            return {
                "issue": issue_view(history.state),
                "version": history.state.revision,
                "events": [],
                "duplicate": True,
            }
        raise
    return outcome_view(outcome)


def _already_answered(events: list[Any], result: CallbackResult) -> bool:
    """Whether the last resolution was already verified by this same call-back answer (a re-send)."""
    for event in reversed(events):
        if isinstance(event, IssueResolved):
            return False
        if isinstance(event, IssueVerified):
            d = event.data
            return (
                d.verified_by == "hotline" and d.satisfied == result.satisfied and d.satisfaction == result.satisfaction
            )
    return False


@router.get("/communities/{community}/hotline/orders/{order_no}")
async def get_order(
    request: Request,
    community: Community,
    order_no: OrderNo,
    principal: Principal = Depends(require("hotline", "ops", "secretary")),
) -> dict[str, Any]:
    """A work order's issue and the feedback owed or sent to the hotline."""
    principal.require_community(community)
    issue_id = order_issue_id(order_no)
    state = (await read_history(_runtime(request).store, community, issue_id)).state
    if state.status == "new":
        raise NotFound(f"work order {order_no} not found", field="order_no")
    async with _runtime(request).pool.acquire() as conn:
        feedback = await queries.feedback_of(conn, community, issue_id)
    return {
        "order_no": order_no,
        "issue": issue_view(state),
        "feedback": [
            {
                **f,
                "occurred_at": f["occurred_at"].isoformat(),
                "sent_at": f["sent_at"].isoformat() if f["sent_at"] else None,
            }
            for f in feedback
        ],
    }


# ---------------------------------------------------------------- feedback delivery


async def _post(client: httpx.AsyncClient, settings: IssuesSettings, row: asyncpg.Record) -> int:
    """POST one feedback row, retrying with backoff (stamina); returns the attempts it took."""
    assert settings.hotline_callback_url
    payload = {
        "feedback_id": row["feedback_id"],
        "order_no": row["order_no"],
        "issue_id": row["issue_id"],
        "community": row["community"],
        "status": row["status"],
        "note": row["note"],
        "occurred_at": row["occurred_at"].isoformat(),
    }
    headers = {"Idempotency-Key": row["feedback_id"]}
    if settings.hotline_callback_token:
        headers["Authorization"] = f"Bearer {settings.hotline_callback_token}"
    tries = 0
    try:
        async for attempt in stamina.retry_context(
            on=httpx.HTTPError,
            attempts=settings.hotline_retry_attempts,
            timeout=None,
            wait_initial=settings.hotline_retry_wait_initial,
            wait_max=settings.hotline_retry_wait_max,
            wait_jitter=settings.hotline_retry_wait_initial,
        ):
            with attempt:
                tries += 1
                reply = await client.post(settings.hotline_callback_url, json=payload, headers=headers)
                reply.raise_for_status()
    except httpx.HTTPError as err:
        HOTLINE_FEEDBACK.labels("failed").inc(tries)
        raise _Undelivered(tries, err) from err
    HOTLINE_FEEDBACK.labels("failed").inc(tries - 1)
    HOTLINE_FEEDBACK.labels("delivered").inc()
    return tries


class _Undelivered(Exception):
    def __init__(self, tries: int, err: Exception) -> None:
        super().__init__(repr(err))
        self.tries = tries


async def deliver_feedback_once(
    pool: asyncpg.Pool, store: EventStore, client: httpx.AsyncClient, settings: IssuesSettings, *, limit: int = 20
) -> int:
    """Deliver due outbox rows, oldest first, each order's changes in order; returns how many went out."""
    if not settings.hotline_callback_url:
        return 0
    delivered = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT o.* FROM {OUTBOX}.outbox o
                WHERE o.sent_at IS NULL AND o.next_attempt_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM {OUTBOX}.outbox e WHERE e.community = o.community
                                  AND e.issue_id = o.issue_id AND e.sent_at IS NULL AND e.seq < o.seq)
                ORDER BY o.seq LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        for row in rows:
            try:
                tries = await _post(client, settings, row)
            except _Undelivered as err:
                total = row["attempts"] + err.tries
                wait = min(settings.hotline_retry_wait_max, settings.hotline_retry_wait_initial * 2 ** min(total, 16))
                await conn.execute(
                    f"UPDATE {OUTBOX}.outbox SET attempts = $2, last_error = $3, next_attempt_at = $4 "
                    "WHERE feedback_id = $1",
                    row["feedback_id"],
                    total,
                    str(err)[:1000],
                    now() + timedelta(seconds=wait),
                )
                log.warning(
                    "hotline_feedback_failed",
                    order_no=row["order_no"],
                    status=row["status"],
                    attempts=total,
                    error=str(err),
                )
                break  # the hotline is unreachable: later rows wait for the next round
            total = row["attempts"] + tries
            ctx = Context(
                community=row["community"],
                actor="issues-hotline",
                at=now(),
                key=f"feedback:{row['feedback_id']}",
                causation_id=UUID(row["feedback_id"]),
            )
            await execute(
                store,
                community=row["community"],
                issue_id=row["issue_id"],
                command=RecordHotlineFeedback(row["feedback_id"], row["status"], row["note"], total),
                ctx=ctx,
            )
            await conn.execute(
                f"UPDATE {OUTBOX}.outbox SET attempts = $2, sent_at = COALESCE(sent_at, now()), last_error = NULL "
                "WHERE feedback_id = $1",
                row["feedback_id"],
                total,
            )
            delivered += 1
    return delivered


async def deliver_hotline_feedback(runtime: Runtime) -> None:
    """Background task: work off the hotline feedback outbox, forever."""
    settings = issues_context(runtime).settings
    async with httpx.AsyncClient(timeout=settings.hotline_callback_timeout_seconds) as client:
        while True:
            sent = await deliver_feedback_once(runtime.pool, runtime.store, client, settings)
            if not sent:
                await asyncio.sleep(settings.hotline_outbox_poll_seconds)


async def hotline_feedback_outbox(runtime: Runtime) -> OutboxStatus:
    """Status feedback still owed to 12345: due now, waiting out a backoff, or held (no callback URL)."""
    settings = issues_context(runtime).settings
    async with runtime.pool.acquire(timeout=2) as conn:
        row = await conn.fetchrow(
            f"SELECT count(*) FILTER (WHERE next_attempt_at <= now()) AS due, "
            f"count(*) FILTER (WHERE next_attempt_at > now()) AS later FROM {OUTBOX}.outbox WHERE sent_at IS NULL"
        )
    assert row is not None  # an aggregate query always returns its row
    if not settings.hotline_callback_url:
        return OutboxStatus("hotline_feedback", 0, held=row["due"] + row["later"])
    return OutboxStatus("hotline_feedback", row["due"], scheduled=row["later"])
