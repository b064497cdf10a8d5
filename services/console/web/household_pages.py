"""Households: the ledger's search and completion, a household masked until revealed (each reveal
audited by the visits service), its tags, its erasure after a confirmation, a ledger import with
its per-line errors, and the audit log of who read, exported, imported or erased whose data.

The visits service decides who may do what (a grid worker: their grid's households; a street
admin: read and reveal; the secretary: everything); these pages only choose which forms to show.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from shared.events import TOKEN_PATTERN

from ..bootstrap import deps
from ..gateway import ApiError
from .guard import signed_in
from .render import local_time as shanghai_time
from .render import passthrough, render
from .sessions import Person, checked_form

router = APIRouter(include_in_schema=False)

#: A household, building or community id as the services accept it (anything else: no such page).
ID = re.compile(TOKEN_PATTERN)
TAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: Personal fields of a household: sealed by the visits service, shown only after a reveal.
PERSONAL = ("name", "phone", "id_number", "address")
#: Tags the ledger knows by name (any snake_case tag is accepted; these are offered).
KNOWN_TAGS = ("special_assistance", "elderly_alone", "disabled", "hardship", "young", "party_member", "dog_owner")
#: Why a household is erased: short codes (the erasure record outlives the data: no free text).
ERASURE_REASONS = ("erasure_request", "moved_away", "deceased", "duplicate")
AUDIT_KINDS = ("reveal", "export", "import", "erasure")
DONE = ("tagged", "erased")
PAGE = 50
AUDIT_PAGE = 50
#: How long a write waits for the household's read model to show it before the page moves on.
SETTLE_SECONDS = 3.0

READERS = ("secretary", "street_admin", "grid_worker")


def community_of(person: Person, request: Request) -> str:
    """The community a page is about: the person's own, or (street admin) the one the URL names."""
    own = person.principal.community
    asked = request.query_params.get("community")
    if own:
        return own
    return asked if asked and ID.match(asked) else ""


def community_query(person: Person, community: str) -> str:
    """``community=…`` to carry in links and form actions for a person with no community of their own."""
    return "" if person.principal.community else urlencode({"community": community})


def _need_community(community: str) -> None:
    if not community:
        raise ApiError(404, {"code": "not_found", "message": "community", "field": "community"}, "visits")


def _need_id(value: str, field: str = "household_id") -> None:
    if not ID.match(value):
        raise ApiError(404, {"code": "not_found", "message": field, "field": field}, "visits")


# ---------------------------------------------------------------- the ledger: search and completion


@router.get("/households")
async def households(request: Request, person: Person = Depends(signed_in(*READERS))) -> Response:
    d = deps(request)
    me = person.principal
    community = community_of(person, request)
    _need_community(community)
    qp = request.query_params
    q = (qp.get("q") or "").strip()[:100]
    tag = qp.get("tag") or ""
    tag = tag if TAG.match(tag) else ""
    building = qp.get("building") or ""
    building = building if ID.match(building) else ""
    incomplete = qp.get("incomplete") in ("true", "on", "1")
    after = qp.get("after") or ""
    after = after if ID.match(after) else ""
    base = f"/v1/communities/{community}"
    listing, completion = await asyncio.gather(
        d.gateway.get(
            me,
            "visits",
            f"{base}/households",
            q=q or None,
            tag=tag or None,
            incomplete="true" if incomplete else None,
            building=building or None,
            after=after or None,
            limit=PAGE + 1,
        ),
        d.gateway.get(me, "visits", f"{base}/ledger/completion", by="building", gaps=200),
    )
    rows = listing[:PAGE]
    filters = {
        k: v
        for k, v in (("q", q), ("tag", tag), ("building", building), ("incomplete", "true" if incomplete else ""))
        if v
    }
    if not me.community:
        filters["community"] = community
    next_url = None
    if len(listing) > PAGE:
        next_url = "/households?" + urlencode({**filters, "after": rows[-1]["household_id"]})
    buildings = completion.get("buildings") or []
    if building:
        buildings = [b for b in buildings if b["building_id"] == building]
    return render(
        request,
        "households.html",
        person,
        community=community,
        cq=community_query(person, community),
        rows=rows,
        completion=completion,
        buildings=buildings,
        q=q,
        tag=tag,
        building=building,
        incomplete=incomplete,
        after=after,
        first_url="/households?" + urlencode(filters) if after else None,
        next_url=next_url,
        known_tags=KNOWN_TAGS,
    )


# ---------------------------------------------------------------- import and export (before /{id})


@router.get("/households/import")
async def import_form(request: Request, person: Person = Depends(signed_in("secretary"))) -> Response:
    return render(request, "households_import.html", person, report=None, error=None, error_field=None)


@router.post("/households/import")
async def import_ledger(request: Request, person: Person = Depends(signed_in("secretary"))) -> Response:
    """Send the uploaded sheet to the visits service as this person; show its report, line by line."""
    form = await checked_form(request, person)
    upload = form.get("file")
    community = person.principal.community or ""
    content = b""
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read()
    if not isinstance(upload, UploadFile) or not upload.filename or not content:
        return render(
            request, "households_import.html", person, status=422, report=None, error="hh_no_file", error_field="file"
        )
    try:
        answer = await deps(request).gateway.raw(
            person.principal,
            "POST",
            "visits",
            f"/v1/communities/{community}/ledger/import",
            files={"file": (upload.filename, content, upload.content_type or "application/octet-stream")},
        )
    except ApiError as err:
        if err.status in (401, 403) or err.status >= 500:
            raise
        return render(
            request,
            "households_import.html",
            person,
            status=err.status,
            report=None,
            error=err.message,
            error_field=err.field or "file",
        )
    return render(request, "households_import.html", person, report=answer.json(), filename=upload.filename)


@router.get("/households/export.csv")
async def export_ledger(request: Request, person: Person = Depends(signed_in("secretary"))) -> Response:
    """The ledger as CSV, personal fields decrypted: the visits service audits every household it reads."""
    community = person.principal.community or ""
    answer = await deps(request).gateway.raw(
        person.principal, "GET", "visits", f"/v1/communities/{community}/ledger/export.csv"
    )
    return passthrough(answer)


# ---------------------------------------------------------------- one household


async def _household(request: Request, person: Person, household_id: str, *, reveal: bool = False) -> Any:
    community = community_of(person, request)
    _need_community(community)
    _need_id(household_id)
    path = f"/v1/communities/{community}/households/{household_id}"
    return await deps(request).gateway.get(person.principal, "visits", path, reveal="true" if reveal else None)


async def _settled(request: Request, person: Person, household_id: str, version: int, *, erased: bool = False) -> None:
    """Wait (briefly) until the visits read model shows the household at ``version`` (and erased, if
    asked), so the page the person is sent to shows what they just did: the service's household
    read is a projection, folded a moment after the event is stored."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        try:
            seen = await _household(request, person, household_id)
        except ApiError:
            return
        if int(seen.get("version") or 0) >= version and (seen.get("erased") or not erased):
            return
        await asyncio.sleep(0.05)


def _household_page(
    request: Request,
    person: Person,
    household: dict[str, Any],
    *,
    revealed: bool = False,
    status: int = 200,
    error: str | None = None,
    error_field: str | None = None,
) -> Response:
    community = community_of(person, request)
    personal = household.get("personal") if revealed else None
    done = request.query_params.get("done")
    household["last_visit_local"] = shanghai_time(household.get("last_visit_at"))
    return render(
        request,
        "household.html",
        person,
        status=status,
        h=household,
        community=community,
        cq=community_query(person, community),
        personal_fields=PERSONAL,
        personal=personal or {},
        revealed=revealed and personal is not None,
        known_tags=KNOWN_TAGS,
        done=done if done in DONE else None,
        error=error,
        error_field=error_field,
    )


@router.get("/households/{household_id}")
async def household(request: Request, household_id: str, person: Person = Depends(signed_in(*READERS))) -> Response:
    """A household with its personal data masked (even where the service would show it unasked)."""
    return _household_page(request, person, await _household(request, person, household_id))


@router.post("/households/{household_id}/reveal")
async def reveal(request: Request, household_id: str, person: Person = Depends(signed_in(*READERS))) -> Response:
    """Show the personal fields once, in this answer only (a POST: no link or prefetch can reveal)."""
    await checked_form(request, person)
    household_data = await _household(request, person, household_id, reveal=True)
    return _household_page(request, person, household_data, revealed=True)


@router.post("/households/{household_id}/tags")
async def tag(
    request: Request, household_id: str, person: Person = Depends(signed_in("secretary", "grid_worker"))
) -> Response:
    form = await checked_form(request, person)
    community = community_of(person, request)
    _need_id(household_id)
    add = str(form.get("add") or "").strip()
    remove = str(form.get("remove") or "").strip()
    try:
        version = int(str(form.get("expected_version") or ""))
    except ValueError:
        version = None
    body: dict[str, Any] = {"add": [add] if add else [], "remove": [remove] if remove else []}
    if version is not None:
        body["expected_version"] = version
    error, status = None, 422
    if not add and not remove:
        error = "hh_tag_empty"
    elif add and not TAG.match(add):
        error = "hh_tag_invalid"
    else:
        try:
            changed = await deps(request).gateway.send(
                person.principal, "POST", "visits", f"/v1/communities/{community}/households/{household_id}/tags", body
            )
        except ApiError as err:
            if err.status in (401, 403, 404) or err.status >= 500:
                raise
            error, status = ("hh_tag_stale" if err.status == 409 else err.message), err.status
        else:
            await _settled(request, person, household_id, int(changed["version"]))
            return RedirectResponse(_household_url(person, community, household_id, "tagged"), status_code=303)
    household_data = await _household(request, person, household_id)
    return _household_page(request, person, household_data, status=status, error=error, error_field="add")


def _household_url(person: Person, community: str, household_id: str, done: str | None = None) -> str:
    query = {k: v for k, v in (("done", done),) if v}
    if not person.principal.community:
        query["community"] = community
    return f"/households/{household_id}" + (f"?{urlencode(query)}" if query else "")


@router.get("/households/{household_id}/erase")
async def erase_form(request: Request, household_id: str, person: Person = Depends(signed_in("secretary"))) -> Response:
    """The confirmation step: what erasure destroys, a reason, and the household id typed again."""
    household_data = await _household(request, person, household_id)
    return render(
        request, "households_erase.html", person, h=household_data, reasons=ERASURE_REASONS, error=None, field=None
    )


@router.post("/households/{household_id}/erase")
async def erase(request: Request, household_id: str, person: Person = Depends(signed_in("secretary"))) -> Response:
    form = await checked_form(request, person)
    community = community_of(person, request)
    _need_id(household_id)
    reason = str(form.get("reason") or "")
    confirm = str(form.get("confirm") or "").strip()
    error, field, status = None, None, 422
    if reason not in ERASURE_REASONS:
        error, field = "hh_erase_reason_needed", "reason"
    elif confirm != household_id:
        error, field = "hh_erase_confirm_mismatch", "confirm"
    else:
        try:
            changed = await deps(request).gateway.send(
                person.principal,
                "POST",
                "visits",
                f"/v1/communities/{community}/households/{household_id}/erasure",
                {"reason": reason},
            )
        except ApiError as err:
            if err.status in (401, 403, 404) or err.status >= 500:
                raise
            error, field, status = err.message, err.field or "reason", err.status
        else:
            await _settled(request, person, household_id, int(changed["version"]), erased=True)
            return RedirectResponse(_household_url(person, community, household_id, "erased"), status_code=303)
    household_data = await _household(request, person, household_id)
    return render(
        request,
        "households_erase.html",
        person,
        status=status,
        h=household_data,
        reasons=ERASURE_REASONS,
        error=error,
        field=field,
        reason=reason,
        confirm=confirm,
    )


# ---------------------------------------------------------------- the audit log


async def _display_names(request: Request, usernames: set[str]) -> dict[str, str]:
    """The console's own accounts' display names of these usernames (the audit log names usernames)."""
    if not usernames:
        return {}
    async with deps(request).pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT username, display_name FROM proj_console_accounts.accounts WHERE username = ANY($1::text[])",
            sorted(usernames),
        )
    return {r["username"]: r["display_name"] for r in rows}


@router.get("/audit")
async def audit(request: Request, person: Person = Depends(signed_in("secretary"))) -> Response:
    """Who revealed, exported, imported or erased whose personal fields, newest first, paged."""
    d = deps(request)
    community = person.principal.community or ""
    qp = request.query_params
    kind = qp.get("kind") or ""
    kind = kind if kind in AUDIT_KINDS else ""
    household_id = (qp.get("household") or "").strip()
    household_id = household_id if ID.match(household_id) else ""
    before = qp.get("before") or ""
    before = before if before.isdigit() and int(before) > 0 else ""
    entries = await d.gateway.get(
        person.principal,
        "visits",
        f"/v1/communities/{community}/audit-log",
        kind=kind or None,
        household=household_id or None,
        before=before or None,
        limit=AUDIT_PAGE + 1,
    )
    rows = entries[:AUDIT_PAGE]
    names = await _display_names(request, {str(r.get("actor")) for r in rows if r.get("actor")})
    for r in rows:
        r["when"] = shanghai_time(r.get("at"))
        r["actor_name"] = names.get(str(r.get("actor")), "")
    filters = {k: v for k, v in (("kind", kind), ("household", household_id)) if v}
    next_url = "/audit?" + urlencode({**filters, "before": rows[-1]["id"]}) if len(entries) > AUDIT_PAGE else None
    return render(
        request,
        "audit.html",
        person,
        rows=rows,
        kinds=AUDIT_KINDS,
        kind=kind,
        household=household_id,
        next_url=next_url,
        first_url="/audit?" + urlencode(filters) if before else None,
    )
