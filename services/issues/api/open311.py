"""Open311 GeoReport v2 routes at ``/open311/v2/``: existing 311 apps report and follow issues unchanged.

Every endpoint answers in ``.json`` and ``.xml`` with the specification's field names; errors are
an array of ``{code, description}`` (``<errors><error>…`` in XML).  How an issue reads as a service
request is in :mod:`services.issues.domain.open311`; here are the formats, the query and form
parameters and the errors.  Reads are public and a report carries its ``api_key``, as the
specification has it, so these routes take no bearer token (see ``OPEN311.md``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from shared.cells import xml_text
from shared.errors import DomainError
from shared.events import Category, Place, Severity, now
from shared.ratelimit import RateLimit

from .. import bootstrap, queries
from ..bootstrap import IssuesDeps
from ..domain import SEVERITIES, CommandMeta, ReportIssue
from ..domain.open311 import PLACE_ATTRIBUTES, public_state, request_view, service_attributes, service_list
from ..domain.state import IssueState
from ..handlers import execute, read_history

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


class Open311Error(Exception):
    """A request GeoReport v2 refuses: answered as its error document with ``status``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


#: What a public reporter may say of a problem's severity: high and critical fire the escalation
#: rules (the police at night) by themselves, so only the community raises a report that far.
PUBLIC_SEVERITIES = ("low", "medium")
#: The longest description a report may carry (the issue's own limit); longer is refused, not cut.
MAX_DESCRIPTION = 4000


def _limits(request: Request) -> RateLimit:
    """The running app's own report counters."""
    limits: RateLimit | None = getattr(request.app.state, "open311_limits", None)
    if limits is None:
        limits = request.app.state.open311_limits = RateLimit()
    return limits


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
        el.text = xml_text(str(value))  # a control character would leave the feed unparseable
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


# ---------------------------------------------------------------- endpoints


def _guarded(fn: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request, str], Awaitable[Response]]:
    """Turn every failure into the GeoReport v2 error document, in the requested format."""

    @functools.wraps(fn)
    async def endpoint(request: Request, name: str) -> Response:
        fmt = name.rpartition(".")[2]
        try:
            return await fn(request, name)
        except Open311Error as err:
            answer = error(fmt, err.status, err.description)
            if err.retry_after is not None:
                answer.headers["Retry-After"] = str(err.retry_after)
            return answer
        except DomainError as err:
            return error(fmt, 400 if err.status == 422 else err.status, err.message)

    return endpoint


#: What a GeoReport read answers, in the format its name asks (``.json`` or ``.xml``).
READ: dict[int | str, dict[str, Any]] = {
    200: {"description": "The document", "content": {"application/json": {}, "application/xml": {}}}
}


@router.get("/{name}", response_class=Response, responses=READ)
@_guarded
async def discovery_or_lists(request: Request, name: str) -> Response:
    """``discovery``, ``services`` and ``requests`` (GET), in .json or .xml."""
    base, fmt = _split(name)
    deps = bootstrap.deps(request)
    if base == "discovery":
        return render(fmt, "discovery", _discovery(request, deps))
    if base == "services":
        return render(fmt, "services", service_list(deps.catalogue))
    if base == "requests":
        return await _list_requests(request, fmt, deps)
    raise Open311Error(404, f"no such resource: {base}")


@router.get("/services/{name}", response_class=Response, responses=READ)
@_guarded
async def service_definition(request: Request, name: str) -> Response:
    """A service's definition: the attributes a report may carry."""
    code, fmt = _split(name)
    if bootstrap.deps(request).catalogue.service(code) is None:
        raise Open311Error(404, f"service_code {code} not found")
    return render(fmt, "service_definition", {"service_code": code, "attributes": service_attributes()})


@router.get("/requests/{name}", response_class=Response, responses=READ)
@_guarded
async def get_request(request: Request, name: str) -> Response:
    """One service request (an array of one, as the specification has it)."""
    issue_id, fmt = _split(name)
    deps = bootstrap.deps(request)
    jurisdiction = request.query_params.get("jurisdiction_id")
    async with deps.pool.acquire() as conn:
        found = await queries.open311_requests(
            conn, sources=deps.settings.open311_public_sources, jurisdiction=jurisdiction, ids=[issue_id]
        )
        deadlines = await queries.pending_deadlines(conn, [(s.community, s.issue_id) for s in found])
    found = found or await _just_stored(deps, issue_id, jurisdiction)
    if not found:
        raise Open311Error(404, f"service_request_id {issue_id} not found")
    # Redacted before it is revealed: the original text of a redacted issue is never opened here.
    found = await deps.vault.reveal_each([(s.community, public_state(s)) for s in found])
    return render(
        fmt,
        "service_requests",
        [request_view(s, deadlines.get((s.community, s.issue_id)), deps.catalogue) for s in found],
    )


@router.get("/tokens/{name}", response_class=Response, responses=READ)
@_guarded
async def get_token(request: Request, name: str) -> Response:
    """The service request id behind a token returned by POST requests."""
    token, fmt = _split(name)
    deps = bootstrap.deps(request)
    async with deps.pool.acquire() as conn:
        found = await queries.open311_requests(
            conn,
            sources=deps.settings.open311_public_sources,
            jurisdiction=request.query_params.get("jurisdiction_id"),
            ids=[token],
        )
    found = found or await _just_stored(deps, token, request.query_params.get("jurisdiction_id"))
    if not found:
        raise Open311Error(404, f"token {token} not found")
    return render(fmt, "service_requests", [{"service_request_id": s.issue_id, "token": token} for s in found])


#: What an issue id can be (a NUL or a subject's wildcard never reaches the event store).
_ISSUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


async def _just_stored(deps: IssuesDeps, issue_id: str, jurisdiction: str | None) -> list[IssueState]:
    """A request the service acknowledged but the read model has not folded yet (read your own
    writes: a client GETs the id its POST just returned), from the issue's own events — in the
    jurisdiction asked, else in each community an API key reports to."""
    if not _ISSUE_ID.match(issue_id):
        return []
    communities = [jurisdiction] if jurisdiction else sorted(set(deps.settings.open311_api_keys.values()))
    for community in communities:
        state = (await read_history(community, issue_id, deps=deps)).state
        if state.status != "new" and state.source in deps.settings.open311_public_sources:
            return [state]
    return []


async def _list_requests(request: Request, fmt: str, deps: IssuesDeps) -> Response:
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
    async with deps.pool.acquire() as conn:
        found = await queries.open311_requests(
            conn,
            sources=deps.settings.open311_public_sources,
            jurisdiction=q.get("jurisdiction_id"),
            ids=ids,
            service_codes=codes,
            start=start,
            end=end,
            statuses=statuses,
        )
        deadlines = await queries.pending_deadlines(conn, [(s.community, s.issue_id) for s in found])
    # Redacted before it is revealed: the original text of a redacted issue is never opened here.
    found = await deps.vault.reveal_each([(s.community, public_state(s)) for s in found])
    return render(
        fmt,
        "service_requests",
        [request_view(s, deadlines.get((s.community, s.issue_id)), deps.catalogue) for s in found],
    )


@router.post(
    "/{name}",
    response_class=Response,
    status_code=201,
    responses={
        201: {
            "description": "Received: the new service request's id and token (a re-sent form: the same id)",
            "content": {"application/json": {}, "application/xml": {}},
        }
    },
)
@_guarded
async def post_request(request: Request, name: str) -> Response:
    """Create a service request (form-encoded, with ``api_key``) → an issue with source open311."""
    base, fmt = _split(name)
    if base != "requests":
        raise Open311Error(404, f"cannot POST to {base}")
    deps = bootstrap.deps(request)
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    api_key = fields.get("api_key")
    if not api_key:
        raise Open311Error(403, "api_key is required")
    community = deps.settings.open311_api_keys.get(api_key)
    if community is None:
        raise Open311Error(403, "api_key is not valid")
    jurisdiction = fields.get("jurisdiction_id")
    if jurisdiction and jurisdiction != community:
        raise Open311Error(403, f"api_key is not valid for jurisdiction_id {jurisdiction}")
    device = fields.get("device_id") or fields.get("account_id")
    code = fields.get("service_code")
    if not code:
        raise Open311Error(400, "service_code is required")
    found = deps.catalogue.service(code)
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
    if severity not in PUBLIC_SEVERITIES:
        raise Open311Error(
            400,
            f"attribute[severity] may be {' or '.join(PUBLIC_SEVERITIES)} in a public report; the community raises it",
        )
    try:
        place = Place(lat=lat, lon=lon, **{p: fields.get(f"attribute[{p}]") or None for p in PLACE_ATTRIBUTES})
    except ValidationError as err:
        raise Open311Error(400, f"attribute: {err.errors()[0]['msg']}") from err
    description = fields.get("description") or f"{found[0].name}: {found[1].name}"
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
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
    # Counted only for a report that would be stored: per app key a minute, per device an hour.
    s = deps.settings
    checks = [(f"key:{api_key}", s.open311_reports_per_minute, 60.0)]
    if device:
        checks.append((f"device:{api_key}:{device}", s.open311_device_reports_per_hour, 3600.0))
    wait = _limits(request).admit(checks, time.monotonic())
    if wait is not None:
        raise Open311Error(429, "too many reports from this app or device; try again later", retry_after=wait)
    command = ReportIssue(
        issue_id=issue_id,
        category=cast(Category, found[0].code),  # the catalogue only holds the five categories
        subcategory=found[1].code,
        severity=cast(Severity, severity),  # checked against SEVERITIES above
        place=place,
        description=description,
        photos=(media,) if media else (),
        source="open311",
        # the app's device or account id is often a phone number or an e-mail: keep a digest only
        reported_by=f"open311:{hashlib.sha256(device.encode()).hexdigest()[:16]}" if device else "open311",
        address=address,
    )
    outcome = await execute(
        deps=deps,
        community=community,
        issue_id=issue_id,
        command=command,
        meta=CommandMeta(community=community, actor="open311", at=now()),
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


def _discovery(request: Request, deps: IssuesDeps) -> dict[str, Any]:
    base = (deps.settings.open311_public_url or str(request.base_url)).rstrip("/") + "/open311/v2/"
    return {
        "changeset": "2025-04-14T00:00:00+08:00",
        "contact": deps.settings.open311_contact,
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
