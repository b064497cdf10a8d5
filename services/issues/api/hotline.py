"""The 12345 city service hotline's routes (接诉即办): work orders in, the resident's call-back, a
work order's state and feedback.

The hotline POSTs a work order (工单); the order number is the issue's key (``hl-<order_no>``), so
a re-sent order is stored once.  The order's response and resolution deadlines drive the
escalation timers.  After the case is resolved the hotline calls the resident back and POSTs the
answer: satisfied closes the case, not satisfied reopens it.  Status feedback goes back to the
hotline from :mod:`services.issues.reactions.hotline_feedback`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, require
from shared.events import Category, Place, Severity, now
from shared.timerules import SaneAwareDatetime

from .. import bootstrap, queries
from ..domain import CommandMeta, ReceiveHotlineOrder, RecordResidentCallback
from ..domain.hotline import order_issue_id
from ..handlers import existing_history, receive_hotline_order, record_resident_callback
from .common import Community, issue_view, outcome_view

router = APIRouter(prefix="/v1", tags=["hotline"])

OrderNo = str


class WorkOrder(BaseModel):
    """A 12345 work order as the hotline dispatches it."""

    model_config = ConfigDict(extra="forbid")

    order_no: str = Field(pattern=r"^[A-Za-z0-9_-]{1,61}$", description="The hotline's work order number")
    request: str = Field(min_length=1, max_length=4000, description="The citizen's request, as recorded")
    category: Category
    subcategory: str | None = Field(default=None, max_length=64)
    severity: Severity = "medium"
    place: Place = Field(default_factory=Place)
    response_deadline: SaneAwareDatetime = Field(description="Respond (accept) by")
    resolution_deadline: SaneAwareDatetime = Field(description="Resolve by")
    dispatched_at: SaneAwareDatetime | None = Field(default=None, description="When 12345 dispatched the order")


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
    principal: Principal = Depends(require("hotline")),
) -> dict[str, Any]:
    """Take a 12345 work order; a re-sent order number is stored once (answered 200, duplicate)."""
    deps = bootstrap.deps(request)
    deps.catalogue.check(order.category, order.subcategory)
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
    meta = CommandMeta(
        community=community, actor=principal.sub, at=order.dispatched_at or now(), key=f"order:{order.order_no}"
    )
    outcome = await receive_hotline_order(command, deps=deps, meta=meta)
    if outcome.duplicate:
        response.status_code = 200
    answer = {
        "issue_id": issue_id,
        "order_no": order.order_no,
        "duplicate": outcome.duplicate,
        "issue": issue_view(outcome.state),
    }
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed


@router.post("/communities/{community}/hotline/orders/{order_no}/callback")
async def resident_callback(
    request: Request,
    community: Community,
    order_no: OrderNo,
    result: CallbackResult,
    principal: Principal = Depends(require("hotline")),
) -> dict[str, Any]:
    """The resident's satisfaction from the call-back: closes the case or reopens it."""
    command = RecordResidentCallback(result.satisfied, result.satisfaction, result.note)
    meta = CommandMeta(community=community, actor=principal.sub, at=now())
    deps = bootstrap.deps(request)
    outcome = await record_resident_callback(order_issue_id(order_no), command, deps=deps, meta=meta)
    revealed: dict[str, Any] = await deps.vault.reveal(community, outcome_view(outcome))
    return revealed


@router.get("/communities/{community}/hotline/orders/{order_no}")
async def get_order(
    request: Request,
    community: Community,
    order_no: OrderNo,
    principal: Principal = Depends(require("hotline", "secretary")),
) -> dict[str, Any]:
    """A work order's issue and the feedback owed or sent to the hotline."""
    deps = bootstrap.deps(request)
    issue_id = order_issue_id(order_no)
    history = await existing_history(community, issue_id, deps=deps, what=f"work order {order_no}", field="order_no")
    async with deps.pool.acquire() as conn:
        feedback = await queries.feedback_of(conn, community, issue_id)
    answer = {
        "order_no": order_no,
        "issue": issue_view(history.state),
        "feedback": [
            {
                **f,
                "occurred_at": f["occurred_at"].isoformat(),
                "sent_at": f["sent_at"].isoformat() if f["sent_at"] else None,
            }
            for f in feedback
        ],
    }
    revealed: dict[str, Any] = await deps.vault.reveal(community, answer)
    return revealed
