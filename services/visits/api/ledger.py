"""The resident basic-information ledger (居民基础信息底册): upload, completion, export."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import Response

from shared.auth import Principal, require
from shared.errors import Invalid

from .. import bootstrap, handlers, queries
from ..ledger import SheetTooLarge, parse_upload, sheet_limits
from ..schemas import Completion, ImportReport
from .common import ERRORS, own_grid

router = APIRouter(prefix="/v1/communities", tags=["ledger"], responses=ERRORS)
COMMUNITY = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["bairuijing"])


@router.post("/{community}/ledger/import", response_model=ImportReport)
async def import_ledger(
    request: Request,
    community: str = COMMUNITY,
    file: UploadFile = File(description="CSV (UTF-8 or GB18030) or XLSX ledger"),
    principal: Principal = Depends(require("secretary")),
) -> ImportReport:
    """Import a ledger sheet: per-row validation, a report of every rejected row with its line and reason;
    importing the same file again registers nothing twice.  Columns: see ``gridwork import --help``."""
    deps = bootstrap.deps(request)
    limit = deps.settings.ledger_import_max_bytes  # the whole request was already held to it (413)
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise Invalid(f"the file is larger than {limit} bytes", field="file")
    name = file.filename or "ledger.csv"
    try:  # parsing 100,000 rows takes seconds of CPU: off the event loop, which goes on serving
        sheet = await asyncio.to_thread(parse_upload, content, name, sheet_limits(deps.settings))
    except SheetTooLarge as err:
        raise Invalid(f"{name} is refused: {err}", field="file") from None
    return await handlers.import_ledger(community, sheet, principal, deps=deps)


@router.get("/{community}/ledger/completion", response_model=Completion)
async def completion(
    request: Request,
    community: str = COMMUNITY,
    grid: str | None = Query(default=None, description="Only this grid"),
    by: Literal["grid", "building"] = Query(
        default="grid", description="``building``: also each building's figures and its incomplete households"
    ),
    gaps: int = Query(default=200, ge=0, le=5000, description="Incomplete households listed per building at most"),
    principal: Principal = Depends(require("grid_worker", "secretary", "street_admin")),
) -> Completion:
    """Which share of households hold every required ledger field, per grid and for the community (bar > 90%);
    with ``by=building`` also per building, each incomplete household with the names of the fields it lacks
    (never a personal value)."""
    deps = bootstrap.deps(request)
    return await queries.completion(
        community, own_grid(principal, grid), by_building=by == "building", gaps=gaps, deps=deps
    )


@router.get(
    "/{community}/ledger/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The ledger as CSV"}},
)
async def export(
    request: Request, community: str = COMMUNITY, principal: Principal = Depends(require("secretary"))
) -> Response:
    """The ledger as CSV with decrypted personal fields ("erased" after erasure); every household read is audited."""
    deps = bootstrap.deps(request)
    body = await handlers.export_ledger(community, principal, deps=deps)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{community}-ledger.csv"'},
    )
