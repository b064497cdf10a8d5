"""The problem workbench: the queue (filters in the URL, a shortlist, bulk assignment), a problem's
page (facts, photos, the whole timeline, suggested duplicates, and the actions this person may take),
and the agency view (the police desk or property management see only theirs — the issues service
filters — and acknowledge and resolve them).

The console decides only which buttons to show (from the role and the issue's state, as
:func:`actions_for` says); every action is the issues or notify service's to allow or refuse, and
a refusal is shown beside the form's field.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ..bootstrap import deps
from ..gateway import ApiError
from .guard import signed_in
from .i18n import Translator
from .render import language, render
from .render import local_time as when
from .sessions import Person, checked_form

router = APIRouter(include_in_schema=False)

#: Who works the queue (the services decide what each of them sees).
QUEUE_ROLES = ("secretary", "street_admin", "agency", "hotline", "grid_worker")
#: Who reads a community's issues at the issues service (the hotline reads its work orders elsewhere).
READERS = ("secretary", "street_admin", "agency", "grid_worker")
STATES = ("reported", "accepted", "assigned", "resolved", "verified", "reopened", "closed", "merged")
OPEN_STATES = ("reported", "accepted", "assigned", "reopened")
CATEGORIES = (
    "public_facilities",
    "environmental_sanitation",
    "safety_hazards",
    "conflicts_disputes",
    "livelihood_services",
)
LEVELS = ("building", "compound", "community", "street")
AGENCY_KINDS = ("property_management", "police", "street_office", "urban_management")
ASSIGNEE_KINDS = ("worker", "building_leader", "volunteer_team", *AGENCY_KINDS)
TARGETS = (*AGENCY_KINDS, "hotline")
PAGE_SIZE = 25
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SHORTLIST_COOKIE = "gw_shortlist"
SHORTLIST_MAX = 100

#: The commands of the issues service and where each may start from (services/issues/domain/lifecycle.py).
ALLOWED = {
    "accept": frozenset({"reported", "reopened"}),
    "assign": frozenset({"accepted", "assigned", "reopened"}),
    "escalate": frozenset(OPEN_STATES),
    "resolve": frozenset({"assigned"}),
    "verify": frozenset({"resolved"}),
    "reopen": frozenset({"resolved", "verified", "closed"}),
    "close": frozenset({"verified"}),
    "merge": frozenset(OPEN_STATES),
}
#: Which roles the issues service admits to each command at all.
ROLES_OF = {
    "accept": ("secretary", "grid_worker"),
    "assign": ("secretary", "grid_worker"),
    "escalate": ("secretary", "grid_worker", "street_admin"),
    "resolve": ("secretary", "grid_worker", "agency"),
    "verify": ("secretary", "grid_worker"),
    "reopen": ("secretary", "grid_worker"),
    "close": ("secretary", "grid_worker"),
    "merge": ("secretary", "grid_worker"),
}
ACTIONS = (*ALLOWED, "redact", "acknowledge")


def actions_for(role: str, issue: dict[str, Any], *, unacked: int = 0, duplicates: int = 0) -> list[str]:
    """The buttons a problem's page shows this person: what their role may do in the issue's state.

    The console's view of the service's rules, to hide buttons that can only be refused (the
    service still decides): a 12345 work order is verified and closed by the hotline's call-back; a
    case with an outside agency is not the grid worker's to resolve, reassign or merge; an agency
    resolves what was assigned to it and acknowledges the notifications sent to it."""
    status = issue.get("status", "")
    out = [a for a, states in ALLOWED.items() if status in states and role in ROLES_OF[a]]
    if issue.get("hotline_order_no"):
        out = [a for a in out if a not in ("verify", "close")]
    assignees = issue.get("assignees") or []
    with_agency = status == "assigned" and assignees and assignees[-1].get("kind") in AGENCY_KINDS
    if role == "grid_worker" and with_agency:
        out = [a for a in out if a not in ("resolve", "assign", "merge")]
    if role == "agency" and not with_agency:
        out = [a for a in out if a != "resolve"]
    if "merge" in out and not duplicates:
        out.remove("merge")
    if role == "secretary" and status not in ("", "new"):
        out.append("redact")
    if role == "agency" and unacked:
        out.append("acknowledge")
    return out


# ---------------------------------------------------------------- helpers


async def street_communities(person: Person, request: Request) -> list[dict[str, Any]]:
    """A street admin's communities (id and name), from the street's board; others: none."""
    me = person.principal
    if me.role != "street_admin" or not me.street:
        return []
    board = await deps(request).gateway.get(me, "scoring", f"/v1/streets/{me.street}/board")
    listed = board.get("communities", [])
    return [{"community": c["community"], "name": c.get("name") or c["community"]} for c in listed]


def chosen_community(person: Person, request: Request, communities: list[dict[str, Any]]) -> str:
    """The community a page is about: the person's own, or (a street admin, a street-wide hotline)
    the one asked for in the URL, else the street's first."""
    own = person.principal.community
    if own:
        return own
    asked = request.query_params.get("community", "")
    if asked and TOKEN.match(asked):
        return asked
    return communities[0]["community"] if communities else ""


def shortlist_of(request: Request) -> list[str]:
    """The issue ids on this browser's shortlist (a cookie of ids only, nothing personal)."""
    raw = request.cookies.get(SHORTLIST_COOKIE, "")
    return [i for i in dict.fromkeys(raw.split(".")) if TOKEN.match(i)][:SHORTLIST_MAX]


def local_error(request: Request, field: str, key: str, status: int = 422) -> ApiError:
    """A refusal the console itself makes of a form (nothing chosen), shown like a service's."""
    message = Translator(language(request))(key)
    return ApiError(status, {"code": "invalid", "message": message, "field": field}, "console")


def _query(**values: Any) -> str:
    return urlencode({k: v for k, v in values.items() if v not in (None, "", False)}, doseq=True)


def _filters(request: Request) -> dict[str, Any]:
    """The queue's filters as the URL holds them (unknown values dropped)."""
    q = request.query_params
    state = q.get("state", "")
    if state not in (*STATES, "open"):
        state = ""
    category = q.get("category", "")
    level = q.get("level", "")
    agency = q.get("agency", "")
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        page = 1
    return {
        "state": state,
        "category": category if category in CATEGORIES else "",
        "level": level if level in LEVELS else "",
        "agency": agency if TOKEN.match(agency or "-") and agency else "",
        "overdue": q.get("overdue") == "true",
        "sort": "overdue" if q.get("sort") == "overdue" else "newest",
        "page": page,
    }


async def assignee_options(person: Person, request: Request, community: str) -> list[dict[str, str]]:
    """Whom a case can be given to: the community's grid workers (the directory of visits) and the
    outside agencies of its notification directory (their agency ids), each as ``kind:id``."""
    me = person.principal
    gw = deps(request).gateway
    options: list[dict[str, str]] = []

    async def nothing() -> dict[str, Any]:
        return {}

    found: tuple[Any, ...] = await asyncio.gather(
        gw.get(me, "visits", f"/v1/communities/{community}/workers"),
        gw.get(me, "notify", f"/v1/communities/{community}/recipients")
        if me.role in ("secretary", "street_admin")
        else nothing(),
        return_exceptions=True,
    )
    workers, recipients = found
    if isinstance(workers, (list, dict)):
        listed = workers if isinstance(workers, list) else workers.get("workers", [])
        for w in listed:
            if w.get("role", "grid_worker") in ("grid_worker", None) or w.get("grid_id"):
                name = w.get("name") or w["worker_id"]
                grid = w.get("grid_id") or ""
                options.append(
                    {"value": f"worker:{w['worker_id']}", "kind": "worker", "name": f"{name} {grid}".strip()}
                )
    if isinstance(recipients, (list, dict)):
        entries = recipients if isinstance(recipients, list) else recipients.get("recipients", [])
        seen = set()
        for r in entries:
            kind, agency = r.get("kind"), r.get("agency")
            if kind in AGENCY_KINDS and agency and (kind, agency) not in seen:
                seen.add((kind, agency))
                options.append({"value": f"{kind}:{agency}", "kind": kind, "name": r.get("name") or agency})
    return options


def _assignee(form: Any) -> tuple[str, str] | None:
    """The assignee a form names: a known one (``kind:id``) or another kind with its id."""
    chosen = str(form.get("assignee") or "")
    if chosen and chosen != "other" and ":" in chosen:
        kind, _, ident = chosen.partition(":")
        return kind, ident
    kind, ident = str(form.get("assignee_kind") or ""), str(form.get("assignee_id") or "").strip()
    if kind or ident:
        return kind, ident
    return None


# ---------------------------------------------------------------- the queue


@router.get("/problems")
async def queue(request: Request, person: Person = Depends(signed_in(*QUEUE_ROLES))) -> Response:
    return await _queue_page(request, person)


async def _queue_page(
    request: Request,
    person: Person,
    *,
    status: int = 200,
    error: ApiError | None = None,
    results: list[dict[str, Any]] | None = None,
) -> Response:
    me = person.principal
    d = deps(request)
    communities = await street_communities(person, request)
    community = chosen_community(person, request, communities)
    f = _filters(request)
    listing: dict[str, Any] = {"total": 0, "issues": []}
    refused: str | None = None
    if me.role not in READERS:
        refused = "problems_hotline_note"
    elif community:
        listing = await d.gateway.get(
            me,
            "issues",
            f"/v1/communities/{community}/issues",
            state=None if f["state"] in ("", "open") else f["state"],
            open="true" if f["state"] == "open" else None,
            category=f["category"],
            level=f["level"],
            agency=f["agency"],
            overdue="true" if f["overdue"] else None,
            sort=f["sort"],
            limit=PAGE_SIZE,
            offset=(f["page"] - 1) * PAGE_SIZE,
        )
    can_assign = me.role in ("secretary", "grid_worker")
    options = await assignee_options(person, request, community) if can_assign and community else []
    total = int(listing.get("total", 0))
    pages = max(1, -(-total // PAGE_SIZE))
    keep = {k: v for k, v in f.items() if k != "page"}
    if me.role == "street_admin":
        keep["community"] = community
    return render(
        request,
        "problems.html",
        person,
        status=status,
        community=community,
        communities=communities,
        f=f,
        issues=listing.get("issues", []),
        total=total,
        page=f["page"],
        pages=pages,
        page_query=lambda n: _query(**{**keep, "page": n}),
        here=_query(**{**keep, "page": f["page"]}),
        states=STATES,
        categories=CATEGORIES,
        levels=LEVELS,
        agency_kinds=AGENCY_KINDS,
        assignee_kinds=ASSIGNEE_KINDS,
        can_assign=can_assign,
        options=options,
        shortlist=shortlist_of(request),
        refused=refused,
        error=error,
        results=results,
        done=request.query_params.get("done", ""),
        community_query=f"?community={community}" if me.role == "street_admin" else "",
        when=when,
    )


@router.post("/problems")
async def queue_action(request: Request, person: Person = Depends(signed_in(*QUEUE_ROLES))) -> Response:
    """The queue's form: add the checked problems to the shortlist, take them off it, or assign them."""
    form = await checked_form(request, person)
    me = person.principal
    checked = [str(i) for i in form.getlist("issue_ids") if TOKEN.match(str(i))]
    checked = list(dict.fromkeys(checked))
    back = str(form.get("back") or "")
    back_url = "/problems" + (f"?{back}" if back and not back.startswith(("/", "http")) else "")
    do = str(form.get("do") or "")
    held = shortlist_of(request)
    if do in ("shortlist", "unlist", "clear"):
        if do == "shortlist":
            held = list(dict.fromkeys([*held, *checked]))[:SHORTLIST_MAX]
        elif do == "unlist":
            held = [i for i in held if i not in checked]
        else:
            held = []
        sep = "&" if "?" in back_url else "?"
        response = RedirectResponse(f"{back_url}{sep}done={do}", status_code=303)
        response.set_cookie(
            SHORTLIST_COOKIE, ".".join(held), httponly=True, samesite="lax", path="/problems", max_age=7 * 86400
        )
        return response
    if do != "assign":
        return RedirectResponse(back_url, status_code=303)
    community = me.community or str(form.get("community") or "")
    assignee = _assignee(form)
    if not checked:
        err = local_error(request, "issue_ids", "problems_none_checked")
        return await _queue_page(request, person, status=422, error=err)
    if assignee is None:
        err = local_error(request, "assignee", "problems_no_assignee")
        return await _queue_page(request, person, status=422, error=err)
    body: dict[str, Any] = {"issue_ids": checked, "assignee_kind": assignee[0], "assignee_id": assignee[1]}
    note = str(form.get("note") or "").strip()
    if note:
        body["note"] = note
    try:
        answer = await deps(request).gateway.send(
            me, "POST", "issues", f"/v1/communities/{community}/issues/assign", body
        )
    except ApiError as err:
        if err.status >= 500:
            raise
        return await _queue_page(request, person, status=err.status, error=err)
    results = answer.get("results", [])
    if all(r.get("ok") for r in results):
        held = [i for i in shortlist_of(request) if i not in checked]
        sep = "&" if "?" in back_url else "?"
        response = RedirectResponse(f"{back_url}{sep}done=assigned", status_code=303)
        response.set_cookie(
            SHORTLIST_COOKIE, ".".join(held), httponly=True, samesite="lax", path="/problems", max_age=7 * 86400
        )
        return response
    return await _queue_page(request, person, results=results)


# ---------------------------------------------------------------- one problem


async def _problem_page(
    request: Request,
    person: Person,
    issue_id: str,
    community: str,
    *,
    status: int = 200,
    error: ApiError | None = None,
    failed: str = "",
    values: dict[str, str] | None = None,
) -> Response:
    me = person.principal
    gw = deps(request).gateway
    found, duplicates, categories = await asyncio.gather(
        gw.get(me, "issues", f"/v1/communities/{community}/issues/{issue_id}"),
        gw.get(me, "issues", f"/v1/communities/{community}/issues/{issue_id}/duplicates"),
        gw.get(me, "issues", "/v1/categories"),
    )
    issue = found["issue"]
    notes: list[dict[str, Any]] = []
    try:
        if me.role == "agency":
            answer = await gw.get(
                me, "notify", f"/v1/communities/{community}/agency/notifications", subject_ref=issue_id
            )
            notes = answer.get("notifications", [])
        elif me.role in ("secretary", "street_admin"):
            answer = await gw.get(me, "notify", f"/v1/communities/{community}/notifications", subject_ref=issue_id)
            notes = answer.get("notifications", [])
    except ApiError as err:
        if err.status >= 500 and err.status != 503:
            raise
    to_ack = [n for n in notes if n.get("ack_id") and n.get("ack_state") in ("open", "unacknowledged")]
    dups = [d for d in duplicates.get("possible_duplicates", []) if d.get("issue_id") != issue_id]
    allowed = actions_for(me.role, issue, unacked=len(to_ack), duplicates=len(dups))
    lang = language(request)
    # a 12345 work order's resolution is what goes back to the hotline: its feedback template
    template_kind = "feedback" if issue.get("hotline_order_no") else "resolution"
    template = ""
    for c in categories.get("categories", []):
        if c.get("code") == issue.get("category"):
            template = (c.get("templates") or {}).get(template_kind, {}).get(lang, "")
    options = await assignee_options(person, request, community) if "assign" in allowed else []
    return render(
        request,
        "problem.html",
        person,
        status=status,
        issue=issue,
        history=found.get("history", []),
        duplicates=dups,
        notes=notes,
        to_ack=to_ack,
        allowed=allowed,
        resolution_template=template,
        template_kind=template_kind,
        options=options,
        assignee_kinds=ASSIGNEE_KINDS,
        targets=TARGETS,
        levels=LEVELS,
        community=community,
        community_query=f"?community={community}" if me.role == "street_admin" else "",
        error=error,
        failed=failed,
        values=values or {},
        done=request.query_params.get("done", ""),
        when=when,
        kind_label=kind_label(Translator(lang)),
    )


def kind_label(t: Translator) -> Callable[[str], str]:
    """An assignee's or a target's kind in words (a Python function: a live fragment, rendered
    alone, sees the context's values but not the template's macros)."""
    return lambda kind: t(f"problem_assignee_kind_{kind}") if t.has(f"problem_assignee_kind_{kind}") else kind


@router.get("/problems/{issue_id}")
async def problem(request: Request, issue_id: str, person: Person = Depends(signed_in(*READERS))) -> Response:
    communities = await street_communities(person, request)
    community = chosen_community(person, request, communities)
    if not TOKEN.match(issue_id):
        raise ApiError(404, {"code": "not_found", "message": issue_id, "field": "issue_id"}, "console")
    return await _problem_page(request, person, issue_id, community)


def _body(action: str, form: Any, issue_version: int) -> dict[str, Any]:
    """The service's body of ``action`` from the page's form (the service validates it)."""

    def text(name: str) -> str | None:
        value = str(form.get(name) or "").strip()
        return value or None

    body: dict[str, Any] = {"version": issue_version}
    if action == "assign":
        assignee = _assignee(form)
        body.update({"assignee_kind": assignee[0] if assignee else "", "assignee_id": assignee[1] if assignee else ""})
        if text("note"):
            body["note"] = text("note")
    elif action == "escalate":
        body["reason"] = text("reason") or ""
        if text("to_level"):
            body["to_level"] = text("to_level")
        if text("target"):
            body["target"] = text("target")
    elif action == "resolve":
        body["resolution"] = text("resolution") or ""
    elif action == "verify":
        body["satisfied"] = form.get("satisfied") == "yes"
        body["verified_by"] = "resident_callback" if form.get("verified_by") == "resident_callback" else "worker"
        score = text("satisfaction") or ""
        if score:
            body["satisfaction"] = int(score) if score.isdigit() else score
        if text("note"):
            body["note"] = text("note")
    elif action == "reopen":
        body["reason"] = text("reason") or ""
    elif action == "merge":
        body["duplicate_of"] = text("duplicate_of") or ""
    elif action == "redact":
        body = {"reason": text("reason") or "", "hide_photos": form.get("hide_photos") == "yes"}
        if text("description"):
            body["description"] = text("description")
    return body


@router.post("/problems/{issue_id}/{action}")
async def problem_action(
    request: Request, issue_id: str, action: str, person: Person = Depends(signed_in(*READERS))
) -> Response:
    """One action on a problem, as a small form: sent to the service as this person; a refusal
    re-renders the page with the service's message beside the field it names."""
    form = await checked_form(request, person)
    me = person.principal
    community = me.community or str(form.get("community") or "")
    if action not in ACTIONS or not TOKEN.match(issue_id) or not TOKEN.match(community or "-"):
        raise ApiError(404, {"code": "not_found", "message": action, "field": "action"}, "console")
    gw = deps(request).gateway
    version_raw = str(form.get("version") or "0")
    version = int(version_raw) if version_raw.isdigit() else 0
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    try:
        if action == "acknowledge":
            nid = str(form.get("notification_id") or "")
            if not TOKEN.match(nid):
                raise local_error(request, "notification_id", "problems_no_notification")
            await gw.send(me, "POST", "notify", f"/v1/communities/{community}/notifications/{nid}/ack", {})
        else:
            body = _body(action, form, version)
            await gw.send(me, "POST", "issues", f"/v1/communities/{community}/issues/{issue_id}/{action}", body)
    except ApiError as err:
        if err.status >= 500:
            raise
        return await _problem_page(
            request, person, issue_id, community, status=err.status, error=err, failed=action, values=values
        )
    where = f"/problems/{issue_id}?" + _query(community=community if me.role == "street_admin" else "", done=action)
    return RedirectResponse(where, status_code=303)
