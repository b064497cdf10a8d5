"""HTTP API of the notify service: the directory, notifications, acknowledgements.

Thin: each route checks the caller's scope, turns the request into a command for a handler or a
call of a query, and shapes the answer.  Secrets are write-only: an answer shows their last four
characters at most.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, require
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import TOKEN_PATTERN, now, uuid7
from shared.outbound import TargetRefused

from . import handlers, queries
from .bootstrap import NotifyDeps, deps
from .domain.acknowledgement import AcknowledgeNotification
from .domain.delivery import RetryNotification, SendTestMessage
from .domain.directory import PutRecipient, RecipientIn, RemoveRecipient, RotateWebhookSecret
from .signing import AckLink, LinkError, read_token

router = APIRouter(tags=["notify"])

Community = Annotated[str, Path(pattern=TOKEN_PATTERN, description="Community (社区) id")]
RecipientId = Annotated[str, Path(pattern=TOKEN_PATTERN, description="Directory entry id")]
NotificationId = Annotated[str, Path(pattern=TOKEN_PATTERN)]
TOKEN = re.compile(TOKEN_PATTERN)

DIRECTORY_ROLES = ("secretary", "street_admin", "ops")
#: Who may change where escalations go: the community's secretary and its street's admin.  Ops
#: reads the directory to operate deliveries but cannot point a recipient somewhere else (a
#: redirected webhook would carry residents' texts out).
DIRECTORY_WRITERS = ("secretary", "street_admin")


# ---------------------------------------------------------------------------------------- directory


@router.get("/v1/communities/{community}/recipients", summary="The community's directory")
async def list_recipients(
    community: Community, request: Request, principal: Principal = Depends(require(*DIRECTORY_ROLES))
) -> dict[str, Any]:
    notify = deps(request)
    return {"community": community, "recipients": await queries.list_recipients(community, deps=notify)}


@router.get("/v1/communities/{community}/recipients/{recipient_id}", summary="One directory entry")
async def get_recipient(
    community: Community,
    recipient_id: RecipientId,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    notify = deps(request)
    entry = await queries.get_recipient(community, recipient_id, deps=notify)
    if entry is None:
        raise NotFound(f"no recipient {recipient_id} in {community}", field="recipient_id")
    return entry


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
    principal: Principal = Depends(require(*DIRECTORY_WRITERS)),
) -> dict[str, Any]:
    notify = deps(request)
    await _admitted_targets(body, notify)
    entry, created = await handlers.put_recipient(PutRecipient(community, recipient_id, body), deps=notify)
    response.status_code = 201 if created else 200
    return entry


@router.delete(
    "/v1/communities/{community}/recipients/{recipient_id}",
    status_code=204,
    summary="Remove a directory entry (pending notifications to it are dead-lettered)",
)
async def delete_recipient(
    community: Community,
    recipient_id: RecipientId,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_WRITERS)),
) -> Response:
    notify = deps(request)
    await handlers.remove_recipient(RemoveRecipient(community, recipient_id), deps=notify)
    return Response(status_code=204)  # deleting what is gone is fine: DELETE is idempotent


async def _admitted_targets(body: RecipientIn, notify: NotifyDeps) -> None:
    """422 for a webhook or robot URL aimed inside (loopback, private, link-local, metadata), naming
    the field.  A host that does not resolve now is accepted: each send checks again, at the
    connection (:mod:`shared.outbound`)."""
    policy = notify.settings.outbound_policy()
    for name in ("webhook", "wecom"):
        channel = getattr(body.channels, name)
        if channel is None:
            continue
        try:
            await policy.check_url(channel.url, timeout=2.0)
        except TargetRefused as err:
            if err.permanent:
                raise Invalid(
                    f"the {name} URL may not be reached: {err.reason}", field=f"channels.{name}.url"
                ) from None


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
    principal: Principal = Depends(require(*DIRECTORY_WRITERS)),
) -> dict[str, Any]:
    notify = deps(request)
    command = RotateWebhookSecret(
        community, recipient_id, body.secret, grace=timedelta(seconds=body.grace_seconds), at=now()
    )
    return await handlers.rotate_webhook_secret(command, deps=notify)


# ---------------------------------------------------------------------------------------- routing rules


@router.get("/v1/communities/{community}/routing", summary="The routing rules as data")
async def routing_rules(
    community: Community, request: Request, principal: Principal = Depends(require("secretary", "ops"))
) -> dict[str, Any]:
    """The rules of ``routing.toml`` as the service loaded them, in order (the first match decides):
    each rule's name, the facts it matches (``null``: anything), the recipient kinds and desks it
    sends to with the community's directory entries each reaches and their channels, whether it is
    urgent, and — when it must be acknowledged — each kind's acknowledgement deadline in seconds."""
    return await queries.routing_rules(community, deps=deps(request))


class TestMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_id: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        max_length=64,
        description="The client's id of this test: the same id again sends nothing more (or use Idempotency-Key)",
    )


@router.post(
    "/v1/communities/{community}/recipients/{recipient_id}/test",
    status_code=202,
    summary="Send a test message through the recipient's channels (idempotent by test id)",
)
async def send_test(
    community: Community,
    recipient_id: RecipientId,
    request: Request,
    body: TestMessage | None = None,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=64),
    principal: Principal = Depends(require("secretary")),
) -> dict[str, Any]:
    """A test message to the recipient over each channel it has, through the outbox like every
    notification (the recipient's quiet hours hold: ``due_at`` says when it goes).  Marked ``kind =
    "test"``: no acknowledgement watch, not in any delivery-time figure.  The same ``test_id`` (body) or
    ``Idempotency-Key`` (header) again sends nothing more and answers with the same notifications."""
    given = body.test_id if body else None
    if idempotency_key is not None and not TOKEN.match(idempotency_key):
        raise Invalid(f"Idempotency-Key must match {TOKEN_PATTERN}", field="Idempotency-Key")
    if given and idempotency_key and given != idempotency_key:
        raise Invalid("test_id and Idempotency-Key differ: give one, or the same", field="test_id")
    test_id = given or idempotency_key or uuid7().hex
    command = SendTestMessage(community, recipient_id, test_id, requested_by=principal.sub, at=now())
    return await handlers.send_test_message(command, deps=deps(request))


# ---------------------------------------------------------------------------------------- notifications


@router.get("/v1/communities/{community}/notifications", summary="Notifications and their delivery state")
async def list_notifications(
    community: Community,
    request: Request,
    subject_ref: str | None = Query(default=None, max_length=64, description="Issue id or digest id"),
    state: Literal["pending", "sending", "delivered", "dead"] | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    notify = deps(request)
    found = await queries.list_notifications(community, subject_ref, state, limit, deps=notify)
    return {"community": community, "notifications": found}


@router.get(
    "/v1/communities/{community}/notifications/{notification_id}",
    summary="One notification with its delivery attempts and acknowledgement",
)
async def get_notification(
    community: Community,
    notification_id: NotificationId,
    request: Request,
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    """The notification as listed, plus ``deliveries`` (each attempt: when it was sent, its outcome —
    delivered, failed, dead_lettered, or null while in flight — when, and the error) and
    ``acknowledgement`` (the watch, with its deadline, or null when none was asked)."""
    found = await queries.notification_detail(community, notification_id, deps=deps(request))
    if found is None:
        raise NotFound(f"no notification {notification_id} in {community}", field="notification_id")
    return found


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
    notify = deps(request)
    return await handlers.retry_notification(RetryNotification(community, notification_id), deps=notify)


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
    if not principal.agency:
        raise Forbidden("the token names no agency (claim 'agency')", field="agency")
    command = AcknowledgeNotification(
        community, notification_id, actor=principal.sub, via="api", at=now(), agency=principal.agency
    )
    return await handlers.acknowledge(command, deps=deps(request))


@router.get(
    "/v1/communities/{community}/agency/notifications",
    summary="The escalations sent to the calling agency, to acknowledge",
)
async def agency_notifications(
    community: Community,
    request: Request,
    subject_ref: str | None = Query(default=None, max_length=64, description="Issue id"),
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require("agency")),
) -> dict[str, Any]:
    """The notifications sent to the caller's agency (its directory entries' ``agency``), with their
    acknowledgement state (``ack_state``): what the agency acknowledges, found without the whole
    community's notifications (which only the community's staff read)."""
    if not principal.agency:
        raise Forbidden("the token names no agency (claim 'agency')", field="agency")
    found = await queries.agency_notifications(community, principal.agency, subject_ref, limit, deps=deps(request))
    return {"community": community, "agency": principal.agency, "notifications": found}


@router.get("/v1/communities/{community}/acks", summary="Acknowledgement watches")
async def list_acks(
    community: Community,
    request: Request,
    state: Literal["open", "acknowledged", "unacknowledged", "moot"] | None = None,
    subject_ref: str | None = Query(default=None, max_length=64),
    principal: Principal = Depends(require(*DIRECTORY_ROLES)),
) -> dict[str, Any]:
    notify = deps(request)
    return {"community": community, "acks": await queries.list_acks(community, state, subject_ref, deps=notify)}


@router.get("/v1/communities/{community}/unrouted", summary="Facts no rule or directory entry could place")
async def list_unrouted(
    community: Community, request: Request, principal: Principal = Depends(require(*DIRECTORY_ROLES))
) -> dict[str, Any]:
    notify = deps(request)
    return {"community": community, "unrouted": await queries.list_unrouted(community, deps=notify)}


# ---------------------------------------------------------------------------------------- signed links

_PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 2em auto; padding: 0 1em">{body}</body></html>"""


_CONFIRM_FORM = (
    '<form method="post"><button type="submit" style="font-size: 1.3em">确认收到 / Acknowledge</button></form>'
)


def _link(notify: NotifyDeps, token: str) -> AckLink:
    try:
        return read_token(notify.link_key, token)
    except LinkError as err:
        raise Invalid(str(err), field="token") from err


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/v1/ack/{token}", summary="Acknowledgement page of a signed link (changes nothing)")
async def ack_page(token: str, request: Request) -> Response:
    """A GET only shows what is being acknowledged: link previews and scanners must not acknowledge."""
    notify = deps(request)
    link = _link(notify, token)
    found = await queries.notification_to_acknowledge(link.community, link.notification_id, deps=notify)
    if found is None:
        raise NotFound("no such notification", field="token")
    info = {"notification_id": link.notification_id, "issue_id": found["subject_ref"], "ack_state": found["ack_state"]}
    if not _wants_html(request):
        return JSONResponse(info)
    done = found["ack_state"] == "acknowledged"
    body = (
        f"<h2>问题升级 / Escalation {html.escape(found['subject_ref'])}</h2>"
        f"<p>{html.escape(str(found['facts'].get('description') or ''))}</p>"
        + ("<p>已确认 / Acknowledged.</p>" if done else _CONFIRM_FORM)
    )
    return HTMLResponse(_PAGE.format(title="确认收到 / Acknowledge", body=body))


@router.post("/v1/ack/{token}", summary="Acknowledge through a signed link")
async def ack_by_link(token: str, request: Request) -> Response:
    notify = deps(request)
    link = _link(notify, token)
    command = AcknowledgeNotification(link.community, link.notification_id, actor="ack-link", via="link", at=now())
    answer = await handlers.acknowledge(command, deps=notify)
    if _wants_html(request) or request.headers.get("content-type", "").startswith("application/x-www-form"):
        return HTMLResponse(
            _PAGE.format(
                title="已确认 / Acknowledged", body="<h2>已确认收到，谢谢。</h2><p>Acknowledged, thank you.</p>"
            )
        )
    return JSONResponse(answer)
