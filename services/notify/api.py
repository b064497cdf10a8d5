"""HTTP API of the notify service: the directory, notifications, acknowledgements.

Thin: each route checks the caller's scope, calls the directory or a handler, and shapes the
answer.  Secrets are write-only: an answer shows their last four characters at most.
"""

from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, require
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import TOKEN_PATTERN
from shared.service import Runtime

from . import directory as dirs
from .domain import RecipientIn
from .handlers import acknowledge
from .settings import NotifySettings
from .signing import LinkError, read_token

router = APIRouter(tags=["notify"])

Community = Annotated[str, Path(pattern=TOKEN_PATTERN, description="Community (社区) id")]
RecipientId = Annotated[str, Path(pattern=TOKEN_PATTERN, description="Directory entry id")]
NotificationId = Annotated[str, Path(pattern=TOKEN_PATTERN)]

DIRECTORY_ROLES = ("secretary", "street_admin", "ops")


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _in_scope(runtime: Runtime, principal: Principal, community: str) -> None:
    """403 unless the caller's token covers ``community`` (a street admin: a community of their street)."""
    street = None
    if principal.role == "street_admin":
        async with runtime.pool.acquire() as conn:
            street = await conn.fetchval(
                "SELECT street FROM proj_notify_routing.communities WHERE community = $1", community
            )
        if street is None:
            raise Forbidden(f"community {community} is not registered under a street", field="community")
    principal.require_community(community, street)


# ---------------------------------------------------------------------------------------- directory


@router.get("/v1/communities/{community}/recipients", summary="The community's directory")
async def list_recipients(
    community: Community, request: Request, principal: Principal = Depends(require(*DIRECTORY_ROLES))
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        rows = await dirs.list_recipients(conn, community)
    return {"community": community, "recipients": [dirs.public_view(r) for r in rows]}


@router.get("/v1/communities/{community}/recipients/{recipient_id}", summary="One directory entry")
async def get_recipient(
    community: Community,
    recipient_id: RecipientId,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        row = await dirs.get_recipient(conn, community, recipient_id)
    if row is None:
        raise NotFound(f"no recipient {recipient_id} in {community}", field="recipient_id")
    return dirs.public_view(row)


@router.put(
    "/v1/communities/{community}/recipients/{recipient_id}",
    summary="Create or replace a directory entry (idempotent)",
    responses={201: {"description": "created"}, 200: {"description": "replaced"}},
)
async def put_recipient(
    community: Community,
    recipient_id: RecipientId,
    body: RecipientIn,
    request: Request,
    response: Response,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    settings = runtime.settings
    assert isinstance(settings, NotifySettings)
    async with runtime.pool.acquire() as conn:
        row, created = await dirs.put_recipient(
            conn, dirs.Sealer(settings.sealing_key()), community, recipient_id, body
        )
    response.status_code = 201 if created else 200
    return dirs.public_view(row)


@router.delete(
    "/v1/communities/{community}/recipients/{recipient_id}",
    status_code=204,
    summary="Remove a directory entry (pending notifications to it are dead-lettered)",
)
async def delete_recipient(
    community: Community,
    recipient_id: RecipientId,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> Response:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        await dirs.delete_recipient(conn, community, recipient_id)
    return Response(status_code=204)  # deleting what is gone is fine: DELETE is idempotent


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=16, max_length=256, description="The new HMAC key")
    grace_seconds: float = Field(
        default=86400, ge=0, le=30 * 86400, description="How long the previous key keeps signing beside the new one"
    )


@router.post(
    "/v1/communities/{community}/recipients/{recipient_id}/webhook-secret",
    summary="Rotate a webhook's signing secret with a grace period",
)
async def rotate_secret(
    community: Community,
    recipient_id: RecipientId,
    body: SecretRotation,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    settings = runtime.settings
    assert isinstance(settings, NotifySettings)
    async with runtime.pool.acquire() as conn:
        row = await dirs.rotate_webhook_secret(
            conn,
            dirs.Sealer(settings.sealing_key()),
            community,
            recipient_id,
            body.secret,
            timedelta(seconds=body.grace_seconds),
        )
    if row is None:
        raise NotFound(f"no recipient {recipient_id} in {community}", field="recipient_id")
    return dirs.public_view(row)


# ---------------------------------------------------------------------------------------- notifications

NOTIFICATION_COLUMNS = (
    "d.notification_id, d.subject_ref, d.kind, d.rule, d.recipient_id, d.recipient_kind, d.channel, d.urgent, "
    "d.state, d.attempts, d.last_error, d.due_at, d.created_at, d.delivered_at, d.dead_at, d.ack_id, "
    "a.state AS ack_state"
)


def _notification(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("due_at", "created_at", "delivered_at", "dead_at"):
        out[key] = out[key].isoformat() if out[key] else None
    return out


@router.get("/v1/communities/{community}/notifications", summary="Notifications and their delivery state")
async def list_notifications(
    community: Community,
    request: Request,
    subject_ref: str | None = Query(default=None, max_length=64, description="Issue id or digest id"),
    state: Literal["pending", "sending", "delivered", "dead"] | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries d LEFT JOIN notify_acks a ON a.ack_id = d.ack_id "
            "WHERE d.community = $1 AND ($2::text IS NULL OR d.subject_ref = $2) "
            "AND ($3::text IS NULL OR d.state = $3) ORDER BY d.created_at, d.notification_id LIMIT $4",
            community,
            subject_ref,
            state,
            limit,
        )
    return {"community": community, "notifications": [_notification(r) for r in rows]}


@router.post(
    "/v1/communities/{community}/notifications/{notification_id}/retry",
    summary="Give a dead-lettered notification a fresh retry budget",
)
async def retry_notification(
    community: Community,
    notification_id: NotificationId,
    request: Request,
    principal: Principal = Depends(require("secretary", "ops")),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "UPDATE notify_deliveries SET state = CASE WHEN state = 'dead' THEN 'pending' ELSE state END, "
            "budget_from = CASE WHEN state = 'dead' THEN attempts ELSE budget_from END, "
            "due_at = CASE WHEN state = 'dead' THEN now() ELSE due_at END, updated_at = now() "
            "WHERE community = $1 AND notification_id = $2 RETURNING state",
            community,
            notification_id,
        )
        if row is not None:
            await conn.execute("SELECT pg_notify('gridwork_notify_outbox', '')")
    if row is None:
        raise NotFound(f"no notification {notification_id} in {community}", field="notification_id")
    return {"notification_id": notification_id, "state": row["state"]}


@router.post(
    "/v1/communities/{community}/notifications/{notification_id}/ack",
    summary="The receiving agency acknowledges an escalation",
)
async def ack_by_api(
    community: Community,
    notification_id: NotificationId,
    request: Request,
    principal: Principal = Depends(require("agency")),
) -> dict[str, Any]:
    runtime = _runtime(request)
    principal.require_community(community)
    if not principal.agency:
        raise Forbidden("the token names no agency (claim 'agency')", field="agency")
    return await acknowledge(
        pool=runtime.pool,
        store=runtime.store,
        community=community,
        notification_id=notification_id,
        actor=principal.sub,
        via="api",
        agency=principal.agency,
    )


@router.get("/v1/communities/{community}/acks", summary="Acknowledgement watches")
async def list_acks(
    community: Community,
    request: Request,
    state: Literal["open", "acknowledged", "unacknowledged", "moot"] | None = None,
    subject_ref: str | None = Query(default=None, max_length=64),
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT ack_id, subject_ref, recipient_id, recipient_kind, notification_id, channel, state, "
            "starts_at, acknowledged_by, acknowledged_via, closed_at FROM notify_acks "
            "WHERE community = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR subject_ref = $3) "
            "ORDER BY starts_at LIMIT 1000",
            community,
            state,
            subject_ref,
        )
    out = []
    for r in rows:
        item = dict(r)
        item["starts_at"] = r["starts_at"].isoformat()
        item["closed_at"] = r["closed_at"].isoformat() if r["closed_at"] else None
        out.append(item)
    return {"community": community, "acks": out}


@router.get("/v1/communities/{community}/unrouted", summary="Facts no rule or directory entry could place")
async def list_unrouted(
    community: Community, request: Request, principal: Principal = Depends(require(*DIRECTORY_ROLES))
) -> dict[str, Any]:
    runtime = _runtime(request)
    await _in_scope(runtime, principal, community)
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT source_id, subject_ref, reason, created_at FROM notify_unrouted WHERE community = $1 "
            "ORDER BY created_at LIMIT 1000",
            community,
        )
    return {"community": community, "unrouted": [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]}


# ---------------------------------------------------------------------------------------- signed links

_PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 2em auto; padding: 0 1em">{body}</body></html>"""


_CONFIRM_FORM = (
    '<form method="post"><button type="submit" style="font-size: 1.3em">确认收到 / Acknowledge</button></form>'
)


def _link(request: Request, token: str) -> Any:
    settings = request.app.state.settings
    assert isinstance(settings, NotifySettings)
    try:
        return read_token(settings.link_key(), token)
    except LinkError as err:
        raise Invalid(str(err), field="token") from err


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/v1/ack/{token}", summary="Acknowledgement page of a signed link (changes nothing)")
async def ack_page(token: str, request: Request) -> Response:
    """A GET only shows what is being acknowledged: link previews and scanners must not acknowledge."""
    link = _link(request, token)
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT d.subject_ref, d.facts, a.state FROM notify_deliveries d "
            "LEFT JOIN notify_acks a ON a.ack_id = d.ack_id WHERE d.community = $1 AND d.notification_id = $2",
            link.community,
            link.notification_id,
        )
    if row is None:
        raise NotFound("no such notification", field="token")
    facts = json.loads(row["facts"])
    info = {"notification_id": link.notification_id, "issue_id": row["subject_ref"], "ack_state": row["state"]}
    if not _wants_html(request):
        return JSONResponse(info)
    done = row["state"] == "acknowledged"
    body = (
        f"<h2>问题升级 / Escalation {html.escape(row['subject_ref'])}</h2>"
        f"<p>{html.escape(str(facts.get('description') or ''))}</p>"
        + ("<p>已确认 / Acknowledged.</p>" if done else _CONFIRM_FORM)
    )
    return HTMLResponse(_PAGE.format(title="确认收到 / Acknowledge", body=body))


@router.post("/v1/ack/{token}", summary="Acknowledge through a signed link")
async def ack_by_link(token: str, request: Request) -> Response:
    link = _link(request, token)
    runtime = _runtime(request)
    answer = await acknowledge(
        pool=runtime.pool,
        store=runtime.store,
        community=link.community,
        notification_id=link.notification_id,
        actor="ack-link",
        via="link",
    )
    if _wants_html(request) or request.headers.get("content-type", "").startswith("application/x-www-form"):
        return HTMLResponse(
            _PAGE.format(
                title="已确认 / Acknowledged", body="<h2>已确认收到，谢谢。</h2><p>Acknowledged, thank you.</p>"
            )
        )
    return JSONResponse(answer)
