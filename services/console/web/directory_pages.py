"""The directory and routing, and the notifications with their deliveries (issue #14).

``/directory``: the community's recipients (their channels shown as the notify service shows them:
addresses and numbers, secrets as hints only), a form to add or edit one, a test send per recipient
and the routing rules as a readable table.  ``/notifications``: what was sent to whom and how it
went, each with its delivery attempts and acknowledgement; a dead letter can be sent again.

Everything comes from the notify service's API as the signed-in person; the service decides who may
read or change what (a secretary edits, ops reads) and the page shows its answer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from shared.events import TOKEN_PATTERN

from ..bootstrap import deps
from ..gateway import ApiError
from .guard import signed_in
from .i18n import Translator
from .render import done_label, language, local_time, render
from .sessions import Person, checked_form

router = APIRouter(include_in_schema=False)

#: Who opens these pages (the notify service then decides each call: ops may not change the directory).
READERS = ("secretary", "street_admin", "ops")
WRITERS = ("secretary", "street_admin")

RECIPIENT_KINDS = ("property_management", "police", "street_office", "urban_management", "hotline", "secretary")
CHANNELS = ("webhook", "wecom", "email", "sms")
#: The notify service's delivery states, in the order a notification goes through them.
STATES = ("pending", "sending", "delivered", "dead")
ACK_STATES = ("open", "acknowledged", "unacknowledged", "moot", "none")
#: How many notifications the list asks for (the service lists the oldest first: the page shows the newest).
FETCH = 1000
SHOWN = 200

TOKEN = re.compile(TOKEN_PATTERN)


def duration(seconds: float | None) -> str:
    """An acknowledgement deadline in minutes or hours, as the table shows it."""
    if seconds is None:
        return ""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    return f"{round(seconds / 60)} min"


def community_of(person: Person, request: Request) -> str | None:
    """The community a page is about: the person's own, else (street admin, ops) the one in ``?community=``."""
    own = person.principal.community
    asked = request.query_params.get("community") or None
    if own and person.role in ("secretary",):
        return own
    if asked and TOKEN.match(asked):
        return asked
    return own


def with_community(url: str, person: Person, community: str) -> str:
    """``url`` carrying ``?community=`` for a person whose own community it is not."""
    if person.principal.community == community and person.role == "secretary":
        return url
    return url + ("&" if "?" in url else "?") + urlencode({"community": community})


def _choose_community(request: Request, person: Person, title_key: str) -> Response:
    return render(request, "directory_choose.html", person, title_key=title_key, action=request.url.path)


# ---------------------------------------------------------------------------------------- directory


@router.get("/directory")
async def directory(request: Request, person: Person = Depends(signed_in(*READERS))) -> Response:
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "directory_title")
    d = deps(request)
    me = person.principal
    listed: dict[str, Any] = await d.gateway.get(me, "notify", f"/v1/communities/{community}/recipients")
    rules_error = None
    try:
        routing: dict[str, Any] = await d.gateway.get(me, "notify", f"/v1/communities/{community}/routing")
    except ApiError as err:  # a street admin reads the directory but not the rules: the page says so
        if err.status >= 500:
            raise
        rules_error, routing = err.message, {"rules": []}
    return render(
        request,
        "directory.html",
        person,
        community=community,
        recipients=listed.get("recipients", []),
        rules=routing.get("rules", []),
        rules_error=rules_error,
        may_edit=person.role in WRITERS,
        may_test=person.role == "secretary",
        new_test_id=uuid.uuid4().hex,
        done=done_label(request),
        here=lambda url: with_community(url, person, community),
        when=local_time,
        duration=duration,
        kinds=RECIPIENT_KINDS,
    )


def _blank_entry() -> dict[str, Any]:
    return {"recipient_id": "", "kind": "property_management", "name": "", "desk": "", "agency": "", "language": "zh",
            "quiet_hours": None, "channels": {}, "active": True, "covers": []}  # fmt: skip


def _form_values(entry: dict[str, Any]) -> dict[str, str]:
    """An entry as the form's fields (secrets are never filled in: only their hints are shown)."""
    channels = entry.get("channels") or {}
    quiet = entry.get("quiet_hours") or {}
    return {
        "recipient_id": entry.get("recipient_id") or "",
        "kind": entry.get("kind") or "",
        "name": entry.get("name") or "",
        "desk": entry.get("desk") or "",
        "agency": entry.get("agency") or "",
        "language": entry.get("language") or "zh",
        "active": "1" if entry.get("active", True) else "",
        "quiet_start": (quiet.get("start") or "")[:5],
        "quiet_end": (quiet.get("end") or "")[:5],
        "webhook_url": (channels.get("webhook") or {}).get("url") or "",
        "webhook_secret": "",
        "wecom_url": "",
        "email": (channels.get("email") or {}).get("address") or "",
        "sms": (channels.get("sms") or {}).get("number") or "",
    }


def _recipient_form(
    request: Request,
    person: Person,
    community: str,
    *,
    values: dict[str, str],
    current: dict[str, Any] | None,
    error: str = "",
    field: str | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "directory_recipient.html",
        person,
        status=status,
        community=community,
        values=values,
        current=current,
        editing=current is not None,
        error=error,
        field=field,
        kinds=RECIPIENT_KINDS,
        here=lambda url: with_community(url, person, community),
    )


@router.get("/directory/recipients/new")
async def new_recipient(request: Request, person: Person = Depends(signed_in(*WRITERS))) -> Response:
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "recipient_new")
    return _recipient_form(request, person, community, values=_form_values(_blank_entry()), current=None)


@router.get("/directory/recipients/{recipient_id}")
async def edit_recipient(
    request: Request, recipient_id: str, person: Person = Depends(signed_in(*WRITERS))
) -> Response:
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "recipient_edit")
    entry = await deps(request).gateway.get(
        person.principal, "notify", f"/v1/communities/{community}/recipients/{quote(recipient_id, safe='')}"
    )
    return _recipient_form(request, person, community, values=_form_values(entry), current=entry)


#: Form fields by the API's error fields (the service names the field; the form shows it beside it).
_FIELD_OF = {
    "recipient_id": "recipient_id",
    "kind": "kind",
    "name": "name",
    "desk": "desk",
    "agency": "agency",
    "language": "language",
    "quiet_hours": "quiet_start",
    "start": "quiet_start",
    "end": "quiet_end",
    "channels": "channels",
    "channels.webhook.secret": "webhook_secret",
    "secret": "webhook_secret",
    "address": "email",
    "number": "sms",
}


def _body_of(form: dict[str, str], current: dict[str, Any] | None, t: Translator) -> dict[str, Any]:
    """The PUT body of a recipient form (raises ``FormProblem`` for what the form itself lacks).

    What the form does not edit is kept from the current entry (its ``covers``).  A webhook secret
    left blank keeps the current one (the service keeps it).  The WeCom robot's URL is a secret the
    service never shows again and cannot keep across a PUT: to keep the channel it must be given again.
    """
    channels: dict[str, Any] = {}
    if form["webhook_url"]:
        channels["webhook"] = {
            "url": form["webhook_url"],
            **({"secret": form["webhook_secret"]} if form["webhook_secret"] else {}),
        }
    elif form["webhook_secret"]:
        raise FormProblem(t("webhook_needs_url"), "webhook_url")
    if form["wecom_url"]:
        channels["wecom"] = {"url": form["wecom_url"]}
    elif current and (current.get("channels") or {}).get("wecom") and not form.get("drop_wecom"):
        channels["wecom"] = {}  # left blank: the service keeps the robot's URL it holds
    if form["email"]:
        channels["email"] = {"address": form["email"]}
    if form["sms"]:
        channels["sms"] = {"number": form["sms"]}
    quiet = None
    if form["quiet_start"] or form["quiet_end"]:
        if not (form["quiet_start"] and form["quiet_end"]):
            raise FormProblem(t("quiet_hours_both"), "quiet_start" if not form["quiet_start"] else "quiet_end")
        quiet = {"start": form["quiet_start"], "end": form["quiet_end"]}
    return {
        "kind": form["kind"],
        "name": form["name"],
        "desk": form["desk"] or None,
        "agency": form["agency"] or None,
        "language": form["language"] or "zh",
        "quiet_hours": quiet,
        "covers": (current or {}).get("covers") or [],
        "channels": channels,
        "active": bool(form.get("active")),
    }


class FormProblem(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


FORM_FIELDS = (
    "recipient_id", "kind", "name", "desk", "agency", "language", "active", "quiet_start", "quiet_end",
    "webhook_url", "webhook_secret", "wecom_url", "email", "sms", "drop_wecom",
)  # fmt: skip


def _fields(form: FormData) -> dict[str, str]:
    return {k: str(form.get(k) or "").strip() for k in FORM_FIELDS}


async def _save_recipient(
    request: Request, person: Person, community: str, recipient_id: str | None, form: FormData
) -> Response:
    t = Translator(language(request))
    values = _fields(form)
    rid = recipient_id or values["recipient_id"]
    d = deps(request)
    current = None
    if recipient_id is not None:
        current = await d.gateway.get(
            person.principal, "notify", f"/v1/communities/{community}/recipients/{quote(recipient_id, safe='')}"
        )
    shown = {**values, "webhook_secret": "", "wecom_url": ""}  # a secret typed in is never sent back to the page
    if not TOKEN.match(rid) or (recipient_id is None and rid == "new"):  # /recipients/new is the form
        return _recipient_form(
            request, person, community, values=shown, current=current, error=t("recipient_id_hint"),
            field="recipient_id", status=422,
        )  # fmt: skip
    try:
        body = _body_of(values, current, t)
    except FormProblem as problem:
        return _recipient_form(
            request, person, community, values=shown, current=current, error=problem.message,
            field=problem.field, status=422,
        )  # fmt: skip
    try:
        await d.gateway.send(person.principal, "PUT", "notify", f"/v1/communities/{community}/recipients/{rid}", body)
    except ApiError as err:
        if err.status >= 500:
            raise
        return _recipient_form(
            request, person, community, values=shown, current=current,
            error=f"{err.field}: {err.message}" if err.field else err.message,
            field=_FIELD_OF.get(err.field or "", err.field), status=err.status,
        )  # fmt: skip
    return RedirectResponse(with_community("/directory?done=recipient_saved", person, community), status_code=303)


@router.post("/directory/recipients")
async def create_recipient(request: Request, person: Person = Depends(signed_in(*WRITERS))) -> Response:
    form = await checked_form(request, person)
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "recipient_new")
    return await _save_recipient(request, person, community, None, form)


@router.post("/directory/recipients/{recipient_id}")
async def update_recipient(
    request: Request, recipient_id: str, person: Person = Depends(signed_in(*WRITERS))
) -> Response:
    form = await checked_form(request, person)
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "recipient_edit")
    return await _save_recipient(request, person, community, recipient_id, form)


@router.post("/directory/recipients/{recipient_id}/active")
async def set_active(request: Request, recipient_id: str, person: Person = Depends(signed_in(*WRITERS))) -> Response:
    """Deactivate (or activate again) an entry: the entry as it is, with ``active`` changed."""
    form = await checked_form(request, person)
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "recipient_edit")
    d = deps(request)
    t = Translator(language(request))
    path = f"/v1/communities/{community}/recipients/{quote(recipient_id, safe='')}"
    current = await d.gateway.get(person.principal, "notify", path)
    active = form.get("active") == "1"
    values = {**_form_values(current), "active": "1" if active else ""}
    body = _body_of(values, current, t)
    await d.gateway.send(person.principal, "PUT", "notify", path, body)
    done = "recipient_activated" if active else "recipient_deactivated"
    return RedirectResponse(with_community(f"/directory?done={done}", person, community), status_code=303)


@router.post("/directory/recipients/{recipient_id}/test")
async def test_send(request: Request, recipient_id: str, person: Person = Depends(signed_in("secretary"))) -> Response:
    """Send a test message (the form's own test id: a second click sends nothing more), then show it."""
    form = await checked_form(request, person)
    community = community_of(person, request) or ""
    test_id = str(form.get("test_id") or "")
    if not TOKEN.match(test_id):
        test_id = uuid.uuid4().hex
    rid = quote(recipient_id, safe="")
    await deps(request).gateway.send(
        person.principal, "POST", "notify", f"/v1/communities/{community}/recipients/{rid}/test", {"test_id": test_id}
    )
    return RedirectResponse(f"/directory/recipients/{rid}/tests/{test_id}", status_code=303)


@router.get("/directory/recipients/{recipient_id}/tests/{test_id}")
async def test_result(
    request: Request, recipient_id: str, test_id: str, person: Person = Depends(signed_in(*READERS))
) -> Response:
    """A test message's notifications (one per channel) and how each went; kept current live."""
    community = community_of(person, request)
    if not community or not TOKEN.match(test_id):
        return _choose_community(request, person, "test_title")
    d = deps(request)
    me = person.principal
    rid = quote(recipient_id, safe="")
    entry, listed = await asyncio.gather(
        d.gateway.get(me, "notify", f"/v1/communities/{community}/recipients/{rid}"),
        d.gateway.get(me, "notify", f"/v1/communities/{community}/notifications", subject_ref=f"test:{test_id}"),
    )
    return render(
        request,
        "directory_test.html",
        person,
        community=community,
        recipient=entry,
        notifications=listed.get("notifications", []),
        test_id=test_id,
        when=local_time,
        here=lambda url: with_community(url, person, community),
    )


# ---------------------------------------------------------------------------------------- notifications


@router.get("/notifications")
async def notifications(request: Request, person: Person = Depends(signed_in(*READERS))) -> Response:
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "notifications_title")
    d = deps(request)
    me = person.principal
    state = request.query_params.get("state") or None
    state = state if state in STATES else None
    ack = request.query_params.get("ack") or None
    ack = ack if ack in ACK_STATES else None
    listed, unrouted = await asyncio.gather(
        d.gateway.get(me, "notify", f"/v1/communities/{community}/notifications", state=state, limit=FETCH),
        d.gateway.get(me, "notify", f"/v1/communities/{community}/unrouted"),
    )
    found = list(reversed(listed.get("notifications", [])))  # the newest first
    if ack:
        found = [n for n in found if (n.get("ack_state") or "none") == ack]
    return render(
        request,
        "notifications.html",
        person,
        community=community,
        notifications=found[:SHOWN],
        total=len(found),
        capped=len(listed.get("notifications", [])) >= FETCH,
        unrouted=list(reversed(unrouted.get("unrouted", [])))[:50],
        unrouted_total=len(unrouted.get("unrouted", [])),
        state=state or "",
        ack=ack or "",
        states=STATES,
        ack_states=ACK_STATES,
        when=local_time,
        here=lambda url: with_community(url, person, community),
        done=done_label(request),
    )


@router.get("/notifications/{notification_id}")
async def notification(
    request: Request, notification_id: str, person: Person = Depends(signed_in(*READERS))
) -> Response:
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "notification_title")
    found = await deps(request).gateway.get(
        person.principal, "notify", f"/v1/communities/{community}/notifications/{quote(notification_id, safe='')}"
    )
    return render(
        request,
        "notifications_detail.html",
        person,
        community=community,
        n=found,
        may_retry=person.role in ("secretary", "ops"),
        when=local_time,
        here=lambda url: with_community(url, person, community),
        done=done_label(request),
    )


@router.post("/notifications/{notification_id}/retry")
async def retry(
    request: Request, notification_id: str, person: Person = Depends(signed_in("secretary", "ops"))
) -> Response:
    """Send a dead letter again (a fresh retry budget); back to its page."""
    await checked_form(request, person)
    community = community_of(person, request)
    if not community:
        return _choose_community(request, person, "notification_title")
    nid = quote(notification_id, safe="")
    await deps(request).gateway.send(
        person.principal, "POST", "notify", f"/v1/communities/{community}/notifications/{nid}/retry"
    )
    return RedirectResponse(with_community(f"/notifications/{nid}?done=sent_again", person, community), status_code=303)
