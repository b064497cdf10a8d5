"""How issues read in Open311 GeoReport v2: statuses, status notes, agencies, services, requests.

Our lifecycle maps onto ``open``/``closed`` plus ``status_notes`` as described in ``OPEN311.md``.
Services are the subcategories of the five categories: ``service_code = <category>.<subcategory>``.
These are the mapping rules only; :mod:`services.issues.api.open311` renders them as JSON or XML.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .catalogue import Catalogue, service_code
from .policy import SEVERITIES
from .state import OPEN_STATES, IssueState

#: Our states that Open311 shows as ``open`` (the rest are ``closed``); see OPEN311.md.
OPEN311_OPEN = frozenset({*OPEN_STATES, "resolved"})
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
#: The parts of a place a report may name, each an optional attribute of every service.
PLACE_ATTRIBUTES = ("compound", "phase", "building", "unit")


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def status_of(state: IssueState) -> str:
    """Open311 status: ``open`` while anyone still has to act, ``closed`` once verified, closed or merged."""
    return "open" if state.status in OPEN311_OPEN else "closed"


def status_notes(state: IssueState) -> str:
    """Our richer lifecycle, in fixed words, for Open311's public ``status_notes``: never the
    casework's own text (a resolution, a note, who it was assigned to), which may name residents."""
    notes = {
        "reported": "Reported; waiting for the community to accept it.",
        "accepted": "Accepted by the community (受理).",
        "assigned": "Assigned (派遣).",
        "resolved": "Resolved; waiting for verification (核查).",
        "verified": "Verified: the resident is satisfied.",
        "reopened": "Reopened.",
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


def service_name(catalogue: Catalogue, code: str | None) -> str | None:
    """The service's name (``<category name>: <subcategory name>``), None for an unknown code."""
    found = catalogue.service(code) if code else None
    return f"{found[0].name}: {found[1].name}" if found else None


def public_state(state: IssueState) -> IssueState:
    """The issue as the public feed may show it: a redaction's text instead of the description and
    without the photos it withholds (unredacted: as reported)."""
    r = state.redaction
    if r is None:
        return state
    return state.model_copy(
        update={
            "description": r.description if r.description is not None else state.description,
            "photos": [p for p in state.photos if p not in r.hidden_photos],
        }
    )


def request_view(state: IssueState, expected: datetime | None, catalogue: Catalogue) -> dict[str, Any]:
    """One issue as a GeoReport v2 service request (``expected``: its next deadline, if any), redacted
    as the community redacted it (:func:`public_state`)."""
    state = public_state(state)
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
    code = service_code(state.category, state.subcategory) if state.category else None
    return {
        "service_request_id": state.issue_id,
        "status": status_of(state),
        "status_notes": status_notes(state),
        "service_name": service_name(catalogue, code),
        "service_code": code,
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


def service_list(catalogue: Catalogue) -> list[dict[str, Any]]:
    """GeoReport v2 ``services``: one realtime service per subcategory, grouped by category."""
    return [
        {
            "service_code": service_code(c.code, s.code),
            "service_name": f"{c.name}: {s.name}",
            "description": s.description,
            "metadata": True,
            "type": "realtime",
            "keywords": ", ".join(filter(None, (c.code, s.code, c.name_zh))),
            "group": c.name,
        }
        for c, s in catalogue.services()
    ]


def service_attributes() -> list[dict[str, Any]]:
    """The attributes every service's definition lists: the severity, then each part of the place."""
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
    return attributes
