"""Problem statistics of a community and of a street (问题统计): what became of the issues reported in a
range of months, per month, category, grid, agency or community, as JSON or CSV.

The figures and their definitions are in :mod:`services.issues.statistics`.  A secretary and the
street admin read a community's; the 12345 hotline reads those of its own work orders (source
``hotline``, whatever it asks); the street admin reads the street's roll-up.  Ops, which operates the
system and does no casework, is not admitted.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.auth import Principal, require
from shared.errors import Forbidden, Invalid
from shared.events import CATEGORIES, SHANGHAI, now
from shared.events.issues import IssueSource
from shared.timerules import check_day

from .. import bootstrap
from ..projections import BOARD
from ..statistics import Grouping, as_csv, months_between, statistics
from .common import Community, Token

router = APIRouter(prefix="/v1", tags=["statistics"])

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
#: The longest range one request may span (ten years of months).
MAX_MONTHS = 120


def _range(first: str | None, last: str | None) -> tuple[str, str]:
    """The range asked for; by default the twelve months up to the current one (Asia/Shanghai)."""
    today = now().astimezone(SHANGHAI)
    last = last or f"{today.year:04d}-{today.month:02d}"
    if first is None:
        year, month = map(int, last.split("-"))
        year, month = (year, month - 11) if month > 11 else (year - 1, month + 1)
        first = f"{year:04d}-{month:02d}"
    for field, key in (("from", first), ("to", last)):
        check_day(date(int(key[:4]), int(key[5:7]), 1), field)
    if first > last:
        raise Invalid(f"from ({first}) is after to ({last})", field="from")
    if len(months_between(first, last)) > MAX_MONTHS:
        raise Invalid(f"a range spans at most {MAX_MONTHS} months", field="from")
    return first, last


def _answer(scope: dict[str, Any], found: dict[str, Any], fmt: str, filename: str) -> Response:
    answer = {**scope, **found}
    if fmt == "csv":
        return Response(
            as_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    return JSONResponse(answer)


FROM = Query(default=None, alias="from", pattern=MONTH, description="First month, YYYY-MM (default: 11 before to)")
TO = Query(default=None, pattern=MONTH, description="Last month, YYYY-MM, included (default: this month)")
FORMAT = Query(default="json", description="json, or csv: one line per group and a last line total")
SOURCE = Query(default=None, description="Only issues from this source (the hotline's token: always hotline)")


@router.get(
    "/communities/{community}/statistics",
    responses={200: {"content": {"text/csv": {}}, "description": "The statistics as JSON or CSV"}},
)
async def community_statistics(
    request: Request,
    community: Community,
    first: str | None = FROM,
    to: str | None = TO,
    by: Literal["month", "category", "grid", "agency"] = "month",
    source: IssueSource | None = SOURCE,
    format: Literal["json", "csv"] = FORMAT,
    principal: Principal = Depends(require("secretary", "street_admin", "hotline")),
) -> Response:
    """What became of the community's issues reported from ``from`` to ``to``: reported, accepted,
    resolved, closed (on time), reopened, reworked, call-backs and satisfaction, hours to close, and the
    hotline's three rates, per month, category, grid or agency (the agency handling the case: assigned
    by name, else the kind it was escalated to) and in total."""
    if principal.role == "hotline":
        if source not in (None, "hotline"):
            raise Forbidden("the 12345 hotline reads the statistics of its own work orders only", field="source")
        source = "hotline"
    first, last = _range(first, to)
    deps = bootstrap.deps(request)
    keys = months_between(first, last) if by == "month" else list(CATEGORIES) if by == "category" else []
    async with deps.pool.acquire() as conn:
        found = await statistics(conn, [community], first=first, last=last, by=by, source=source, keys=keys)
    scope = {"community": community, "from": first, "to": last, "by": by, "source": source}
    return _answer(scope, found, format, f"{community}-statistics-{first}-{last}-{by}")


@router.get(
    "/streets/{street}/statistics",
    responses={200: {"content": {"text/csv": {}}, "description": "The statistics as JSON or CSV"}},
)
async def street_statistics(
    request: Request,
    street: Token,
    first: str | None = FROM,
    to: str | None = TO,
    by: Literal["community", "month", "category", "agency"] = "community",
    source: IssueSource | None = SOURCE,
    format: Literal["json", "csv"] = FORMAT,
    principal: Principal = Depends(require("street_admin")),
) -> Response:
    """The street's roll-up: the same figures for every community of the street (by default one group
    per community, each listed even with no issue), or per month, category or agency across them."""
    del principal
    first, last = _range(first, to)
    deps = bootstrap.deps(request)
    async with deps.pool.acquire() as conn:
        communities = [
            r["community"]
            for r in await conn.fetch(
                f"SELECT community FROM {BOARD}.communities WHERE street = $1 ORDER BY community", street
            )
        ]
        keys: list[str] = {
            "community": communities,
            "month": months_between(first, last),
            "category": list(CATEGORIES),
        }.get(by, [])
        grouping: Grouping = by
        found = await statistics(conn, communities, first=first, last=last, by=grouping, source=source, keys=keys)
    scope = {"street": street, "communities": communities, "from": first, "to": last, "by": by, "source": source}
    return _answer(scope, found, format, f"{street}-statistics-{first}-{last}-{by}")
