"""Open311 GeoReport v2 at ``/open311/v2/``: existing 311 apps report and follow issues unchanged.

Every endpoint answers in ``.json`` and ``.xml`` with the specification's field names; errors are
an array of ``{code, description}`` (``<errors><error>…`` in XML).  Our lifecycle maps onto
``open``/``closed`` plus ``status_notes`` as described in ``OPEN311.md``.  Services are the
subcategories of the five categories: ``service_code = <category>.<subcategory>``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from shared.errors import DomainError
from shared.events import Category, Place, Severity, now

from . import queries
from .api import _runtime
from .context import IssuesContext, issues_context
from .domain import Context, IssueState, ReportIssue
from .handlers import execute
from .policy import SEVERITIES, service_code

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = {"json": "application/json", "xml": "text/xml"}
#: Child element names of XML lists, by the list's element name.
_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
AGENCIES = {
    "property_management": "Property management (物业)",
    "police": "Community police station (派出所)",
    "street_office": "Street office (街道办事处)",
    "urban_management": "Urban management (城管)",
    "hotline": "12345 city service hotline",
}
LEVEL_AGENCIES = {
    "building": "Grid worker and building leader (网格员、楼栋长)",
    "compound": "Compound (小区)",
    "community": "Community committee (社区居委会)",
    "street": "Street office (街道办事处)",
}
PLACE_ATTRIBUTES = ("compound", "phase", "building", "unit")


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# ---------------------------------------------------------------- rendering


def _xml(tag: str, value: Any) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            el.append(_xml(key, child))
    elif isinstance(value, list):
        item = _ITEMS.get(tag, "item")
        for child in value:
            el.append(_xml(item, child))
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = str(value)
    return el


def render(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    """The same document as JSON or as XML (``root`` names the XML root element)."""
    if fmt == "json":
        return JSONResponse(value, status_code=status)
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(_xml(root, value), encoding="utf-8")
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    """GeoReport v2 error document: an array of {code, description}."""
    return render(fmt if fmt in FORMATS else "json", "errors", [{"code": status, "description": description}], status)


def _split(name: str) -> tuple[str, str]:
    """``"requests.json"`` → ("requests", "json"); the format must be json or xml."""
    base, dot, fmt = name.rpartition(".")
    if not dot or fmt not in FORMATS:
        raise Open311Error(400, "format must be .json or .xml")
    return base, fmt


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _parse_when(raw: str | None, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as err:
        raise Open311Error(400, f"{field} must be a W3C date-time like 2025-04-14T09:30:00+08:00") from err
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{field} must carry a time zone offset")
    return parsed


# ---------------------------------------------------------------- mapping


def status_of(state: IssueState) -> str:
    """Open311 status: ``open`` while anyone still has to act, ``closed`` once verified, closed or merged."""
    return "open" if state.status in queries.OPEN311_OPEN else "closed"


def status_notes(state: IssueState) -> str:
    """Our richer lifecycle, in words, for Open311's ``status_notes``."""
    notes = {
        "reported": "Reported; waiting for the community to accept it.",
        "accepted": "Accepted by the community (受理).",
        "assigned": "Assigned to "
        + ", ".join(f"{a.kind.replace('_', ' ')} {a.id}" for a in state.assignees[-2:])
        + " (派遣)."
        if state.assignees
        else "Assigned.",
        "resolved": f"Resolved: {state.resolution}. Waiting for verification (核查).",
        "verified": "Verified: the resident is satisfied.",
        "reopened": f"Reopened: {state.last_note}." if state.last_note else "Reopened.",
        "closed": "Closed (结案).",
        "merged": f"Merged into request {state.duplicate_of}.",
    }
    text = notes.get(state.status, state.status)
    if state.is_open:
        text += (
            f" Handled at {state.level} level"
            + (f" with {AGENCIES.get(state.target, state.target)}" if state.target else "")
            + "."
        )
        if state.overdue:
            text += " Overdue."
    return text


def request_view(state: IssueState, expected: datetime | None, catalogue_name: str | None) -> dict[str, Any]:
    """One issue as a GeoReport v2 service request."""
    p = state.place
    address = (
        state.address
        or ", ".join(
            x
            for x in (
                p.compound,
                f"phase {p.phase}" if p.phase else None,
                f"building {p.building}" if p.building else None,
                f"unit {p.unit}" if p.unit else None,
            )
            if x
        )
        or None
    )
    return {
        "service_request_id": state.issue_id,
        "status": status_of(state),
        "status_notes": status_notes(state),
        "service_name": catalogue_name,
        "service_code": service_code(state.category, state.subcategory) if state.category else None,
        "description": state.description,
        "agency_responsible": AGENCIES.get(state.target or "", LEVEL_AGENCIES.get(state.level)),
        "service_notice": None,
        "requested_datetime": _when(state.reported_at),
        "updated_datetime": _when(state.updated_at),
        "expected_datetime": _when(expected) if state.is_open else None,
        "address": address,
        "address_id": None,
        "zipcode": None,
        "lat": p.lat,
        "long": p.lon,
        "media_url": state.photos[0] if state.photos else None,
    }


def _service_name(ctx: IssuesContext, code: str | None) -> str | None:
    found = ctx.catalogue.service(code) if code else None
    return f"{found[0].name}: {found[1].name}" if found else None


# ---------------------------------------------------------------- endpoints


def _guarded(fn: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request, str], Awaitable[Response]]:
    """Turn every failure into the GeoReport v2 error document, in the requested format."""

    @functools.wraps(fn)
    async def endpoint(request: Request, name: str) -> Response:
        fmt = name.rpartition(".")[2]
        try:
            return await fn(request, name)
        except Open311Error as err:
            return error(fmt, err.status, err.description)
        except DomainError as err:
            return error(fmt, 400 if err.status == 422 else err.status, err.message)

    return endpoint


@router.get("/{name}")
@_guarded
async def discovery_or_lists(request: Request, name: str) -> Response:
    """``discovery``, ``services`` and ``requests`` (GET), in .json or .xml."""
    base, fmt = _split(name)
    ctx = issues_context(_runtime(request))
    if base == "discovery":
        return render(fmt, "discovery", _discovery(request, ctx))
    if base == "services":
        return render(
            fmt,
            "services",
            [
                {
                    "service_code": service_code(c.code, s.code),
                    "service_name": f"{c.name}: {s.name}",
                    "description": s.description,
                    "metadata": True,
                    "type": "realtime",
                    "keywords": ", ".join(filter(None, (c.code, s.code, c.name_zh))),
                    "group": c.name,
                }
                for c, s in ctx.catalogue.services()
            ],
        )
    if base == "requests":
        return await _list_requests(request, fmt, ctx)
    raise Open311Error(404, f"no such resource: {base}")


@router.get("/services/{name}")
@_guarded
async def service_definition(request: Request, name: str) -> Response:
    """A service's definition: the attributes a report may carry."""
    code, fmt = _split(name)
    ctx = issues_context(_runtime(request))
    if ctx.catalogue.service(code) is None:
        raise Open311Error(404, f"service_code {code} not found")
    attributes: list[dict[str, Any]] = [
        {
            "variable": True,
            "code": "severity",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": None,
            "order": 1,
            "description": "How serious is it?",
            "values": [{"key": s, "name": s.capitalize()} for s in SEVERITIES],
        }
    ]
    for i, part in enumerate(PLACE_ATTRIBUTES, start=2):
        attributes.append(
            {
                "variable": True,
                "code": part,
                "datatype": "string",
                "required": False,
                "datatype_description": None,
                "order": i,
                "description": f"The {part} where it is (optional)",
            }
        )
    return render(fmt, "service_definition", {"service_code": code, "attributes": attributes})


@router.get("/requests/{name}")
@_guarded
async def get_request(request: Request, name: str) -> Response:
    """One service request (an array of one, as the specification has it)."""
    issue_id, fmt = _split(name)
    ctx = issues_context(_runtime(request))
    jurisdiction = request.query_params.get("jurisdiction_id")
    async with _runtime(request).pool.acquire() as conn:
        found = await queries.open311_requests(
            conn, sources=ctx.settings.open311_public_sources, jurisdiction=jurisdiction, ids=[issue_id]
        )
        deadlines = await queries.pending_deadlines(conn, [(s.community, s.issue_id) for s in found])
    if not found:
        raise Open311Error(404, f"service_request_id {issue_id} not found")
    return render(
        fmt,
        "service_requests",
        [
            request_view(
                s,
                deadlines.get((s.community, s.issue_id)),
                _service_name(ctx, service_code(s.category, s.subcategory) if s.category else None),
            )
            for s in found
        ],
    )


@router.get("/tokens/{name}")
@_guarded
async def get_token(request: Request, name: str) -> Response:
    """The service request id behind a token returned by POST requests."""
    token, fmt = _split(name)
    ctx = issues_context(_runtime(request))
    async with _runtime(request).pool.acquire() as conn:
        found = await queries.open311_requests(
            conn,
            sources=ctx.settings.open311_public_sources,
            jurisdiction=request.query_params.get("jurisdiction_id"),
            ids=[token],
        )
    if not found:
        raise Open311Error(404, f"token {token} not found")
    return render(fmt, "service_requests", [{"service_request_id": s.issue_id, "token": token} for s in found])


async def _list_requests(request: Request, fmt: str, ctx: IssuesContext) -> Response:
    q = request.query_params
    ids = [x for x in (q.get("service_request_id") or "").split(",") if x]
    codes = [x for x in (q.get("service_code") or "").split(",") if x]
    statuses = [x for x in (q.get("status") or "").split(",") if x]
    bad = [s for s in statuses if s not in ("open", "closed")]
    if bad:
        raise Open311Error(400, f"status must be open or closed, not {bad[0]}")
    start, end = _parse_when(q.get("start_date"), "start_date"), _parse_when(q.get("end_date"), "end_date")
    if start and end and end < start:
        raise Open311Error(400, "end_date is before start_date")
    async with _runtime(request).pool.acquire() as conn:
        found = await queries.open311_requests(
            conn,
            sources=ctx.settings.open311_public_sources,
            jurisdiction=q.get("jurisdiction_id"),
            ids=ids,
            service_codes=codes,
            start=start,
            end=end,
            statuses=statuses,
        )
        deadlines = await queries.pending_deadlines(conn, [(s.community, s.issue_id) for s in found])
    return render(
        fmt,
        "service_requests",
        [
            request_view(
                s,
                deadlines.get((s.community, s.issue_id)),
                _service_name(ctx, service_code(s.category, s.subcategory) if s.category else None),
            )
            for s in found
        ],
    )


@router.post("/{name}")
@_guarded
async def post_request(request: Request, name: str) -> Response:
    """Create a service request (form-encoded, with ``api_key``) → an issue with source open311."""
    base, fmt = _split(name)
    if base != "requests":
        raise Open311Error(404, f"cannot POST to {base}")
    ctx = issues_context(_runtime(request))
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    api_key = fields.get("api_key")
    if not api_key:
        raise Open311Error(403, "api_key is required")
    community = ctx.settings.open311_api_keys.get(api_key)
    if community is None:
        raise Open311Error(403, "api_key is not valid")
    jurisdiction = fields.get("jurisdiction_id")
    if jurisdiction and jurisdiction != community:
        raise Open311Error(403, f"api_key is not valid for jurisdiction_id {jurisdiction}")
    code = fields.get("service_code")
    if not code:
        raise Open311Error(400, "service_code is required")
    found = ctx.catalogue.service(code)
    if found is None:
        raise Open311Error(400, f"service_code {code} is not a known service")
    lat, lon = _coordinate(fields, "lat", -90, 90), _coordinate(fields, "long", -180, 180)
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long must be given together")
    address = fields.get("address_string") or fields.get("address_id")
    if lat is None and not address:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    severity = fields.get("attribute[severity]", "medium")
    if severity not in SEVERITIES:
        raise Open311Error(400, f"attribute[severity] must be one of {', '.join(SEVERITIES)}")
    try:
        place = Place(lat=lat, lon=lon, **{p: fields.get(f"attribute[{p}]") or None for p in PLACE_ATTRIBUTES})
    except ValidationError as err:
        raise Open311Error(400, f"attribute: {err.errors()[0]['msg']}") from err
    description = (fields.get("description") or f"{found[0].name}: {found[1].name}")[:4000]
    media = fields.get("media_url")
    if media and not media.startswith(("http://", "https://")):
        raise Open311Error(400, "media_url must be an http(s) URL")
    if address and len(address) > 500:
        raise Open311Error(400, "address_string is longer than 500 characters")
    # A re-sent form (same key, same fields, same day) is the same request: a stable id stores it once.
    digest = hashlib.sha256(
        "\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode() + now().date().isoformat().encode()
    ).hexdigest()[:26]
    issue_id = f"o311-{digest}"
    device = fields.get("device_id") or fields.get("account_id")
    command = ReportIssue(
        issue_id=issue_id,
        category=cast(Category, found[0].code),  # the catalogue only holds the five categories
        subcategory=found[1].code,
        severity=cast(Severity, severity),  # checked against SEVERITIES above
        place=place,
        description=description,
        photos=(media,) if media else (),
        source="open311",
        reported_by=f"open311:{device[:48]}" if device else "open311",
        address=address,
    )
    outcome = await execute(
        _runtime(request).store,
        community=community,
        issue_id=issue_id,
        command=command,
        ctx=Context(community=community, actor="open311", at=now(), policy=ctx.policy),
        expected_revision=0,
    )
    notice = "Received by the community (社区). Follow it with GET requests/{id}."
    return render(
        fmt,
        "service_requests",
        [
            {
                "service_request_id": outcome.state.issue_id,
                "token": outcome.state.issue_id,
                "service_notice": notice.replace("{id}", outcome.state.issue_id),
                "account_id": fields.get("account_id"),
            },
        ],
        status=201,
    )


def _coordinate(fields: dict[str, str], name: str, low: float, high: float) -> float | None:
    raw = fields.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as err:
        raise Open311Error(400, f"{name} must be a number") from err
    if not low <= value <= high:
        raise Open311Error(400, f"{name} must be between {low} and {high}")
    return value


def _discovery(request: Request, ctx: IssuesContext) -> dict[str, Any]:
    base = (ctx.settings.open311_public_url or str(request.base_url)).rstrip("/") + "/open311/v2/"
    return {
        "changeset": "2025-04-14T00:00:00+08:00",
        "contact": ctx.settings.open311_contact,
        "key_service": "Ask the community service station (社区党群服务驿站) for an api_key.",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": "2025-04-14T00:00:00+08:00",
                "type": "production",
                "formats": list(FORMATS.values()),
            }
        ],
    }
