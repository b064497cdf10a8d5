"""Today (the secretary's home), the board for every period with a worker's page, and its exports."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..bootstrap import deps
from ..gateway import ApiError
from .guard import signed_in
from .render import passthrough, render
from .sessions import Person

router = APIRouter(include_in_schema=False)

PERIODS = ("day", "week", "month", "quarter", "year")

#: The records that count for each 5+1 item (the visits service's record kinds).
ITEM_RECORDS: dict[str, tuple[str, ...]] = {
    "hours": ("shift",),
    "households": ("visit",),
    "special_visit": ("visit",),
    "problem": ("problem",),
    "face_to_face": ("face_to_face",),
    "five_categories": ("problem",),
    "building_council": ("building_council",),
    "resident_friends": ("befriended",),
    "training": ("training",),
    "talents": ("talent",),
    "assessment": ("survey",),
}


def period_key(kind: str, day: str) -> str | None:
    """The scoring service's key of the ``kind`` period holding ``day`` (YYYY-MM-DD); None: this month."""
    from datetime import date

    d = date.fromisoformat(day)
    if kind == "day":
        return d.isoformat()
    if kind == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == "quarter":
        return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    if kind == "year":
        return str(d.year)
    return f"{d.year}-{d.month:02d}"


def _today() -> str:
    from shared.events import now, shanghai_day

    return shanghai_day(now()).isoformat()


def _community(person: Person, request: Request) -> str:
    """The community a page is about: the person's own, or (street admin, ops) the one asked for."""
    asked = request.query_params.get("community")
    if person.principal.community and not asked:
        return person.principal.community
    return asked or person.principal.community or ""


@router.get("/today")
async def today(request: Request, person: Person = Depends(signed_in("secretary"))) -> Response:
    d = deps(request)
    me = person.principal
    community = me.community or ""
    gw = d.gateway
    day = _today()
    board, counts, problems, workers, watches, shifts = await asyncio.gather(
        gw.get(me, "scoring", f"/v1/communities/{community}/board", period=day),
        gw.get(me, "issues", f"/v1/communities/{community}/problems/open"),
        gw.get(me, "issues", f"/v1/communities/{community}/issues", open="true", sort="overdue", limit=20),
        gw.get(me, "visits", f"/v1/communities/{community}/workers"),
        gw.get(me, "notify", f"/v1/communities/{community}/acks", state="open"),
        gw.get(me, "visits", f"/v1/communities/{community}/shifts/open"),
    )
    names = {w["worker_id"]: w.get("name", w["worker_id"]) for w in workers}
    on_shift = [
        {"worker_id": s["worker_id"], "name": names.get(s["worker_id"], s["worker_id"]), "since": s["started_at"]}
        for s in shifts["shifts"]
    ]
    by_level: dict[str, int] = {}
    for row in counts["rows"]:
        by_level[row["level"]] = by_level.get(row["level"], 0) + row["open"]
    unacked = watches["acks"][::-1]  # the service lists them oldest first
    return render(
        request,
        "today.html",
        person,
        day=day,
        board=board,
        on_shift=on_shift,
        open_issues=problems["issues"],  # overdue first, by the service's own rule (overdue_now)
        open_total=counts["total"],
        by_level=by_level,
        unacked=unacked[:20],
        unacked_total=len(unacked),
    )


@router.get("/board")
async def board(
    request: Request, person: Person = Depends(signed_in("secretary", "street_admin", "ops", "grid_worker"))
) -> Response:
    d = deps(request)
    me = person.principal
    kind = request.query_params.get("period", "month")
    kind = kind if kind in PERIODS else "month"
    day = request.query_params.get("day") or _today()
    try:
        key = period_key(kind, day)
    except ValueError:
        key, day = period_key(kind, _today()), _today()
    if me.role == "street_admin" and not request.query_params.get("community"):
        street = await d.gateway.get(me, "scoring", f"/v1/streets/{me.street}/board", period=key)
        return render(request, "street_board.html", person, street=street, kind=kind, day=day, periods=PERIODS, key=key)
    community = _community(person, request)
    data = await d.gateway.get(me, "scoring", f"/v1/communities/{community}/board", period=key)
    return render(
        request, "board.html", person, board=data, kind=kind, day=day, periods=PERIODS, key=key, community=community
    )


@router.get("/board/export")
async def board_export(
    request: Request, person: Person = Depends(signed_in("secretary", "street_admin", "ops"))
) -> Response:
    """The board as CSV or XLSX, fetched from the scoring service as this person."""
    d = deps(request)
    me = person.principal
    fmt = "csv" if request.query_params.get("format") == "csv" else "xlsx"
    key = request.query_params.get("key")
    community = request.query_params.get("community")
    if me.role == "street_admin" and not community:
        path = f"/v1/streets/{me.street}/board/export"
    else:
        path = f"/v1/communities/{community or me.community}/board/export"
    answer = await d.gateway.raw(me, "GET", "scoring", path, params={"format": fmt, **({"period": key} if key else {})})
    return passthrough(answer)


async def _attach_records(d: Any, me: Any, community: str, worker_id: str, periods: list[dict[str, Any]]) -> None:
    """Give each item of each period the worker's records that count for it (the visits service's
    record list of that period: the newest 100, and the exact count of each kind)."""
    path = f"/v1/communities/{community}/workers/{worker_id}/records"
    found = await asyncio.gather(
        *(d.gateway.get(me, "visits", path, **{"from": p["start"], "to": p["end"], "limit": 100}) for p in periods),
        return_exceptions=True,
    )
    for period, answer in zip(periods, found, strict=True):
        if isinstance(answer, ApiError) and answer.status in (403, 404, 422):
            answer = {"counts": {}, "records": []}
        elif isinstance(answer, BaseException):
            raise answer
        for item in period["items"]:
            kinds = ITEM_RECORDS.get(item["item"], ())
            rows = [r for r in answer["records"] if r["kind"] in kinds]
            if item["item"] == "special_visit":  # only the visits flagged special-assistance
                rows = [r for r in rows if " special " in f" {r['detail']} "]
                item["record_count"] = len(rows)
            else:
                item["record_count"] = sum(answer["counts"].get(k, 0) for k in kinds)
            item["records"] = rows[:20]


@router.get("/board/workers/{worker_id}")
async def worker_page(
    request: Request,
    worker_id: str,
    person: Person = Depends(signed_in("secretary", "street_admin", "ops", "grid_worker")),
) -> Response:
    """One worker's 5+1 items for each period, met or not, and the day's records that counted."""
    d = deps(request)
    me = person.principal
    community = _community(person, request)
    day = request.query_params.get("day") or _today()
    progress = await d.gateway.get(me, "scoring", f"/v1/communities/{community}/workers/{worker_id}/progress")
    await _attach_records(d, me, community, worker_id, progress.get("periods", []))
    try:
        records = await d.gateway.get(me, "visits", f"/v1/communities/{community}/workers/{worker_id}/days/{day}")
    except ApiError as err:
        if err.status not in (403, 404, 422):
            raise
        records = None
    return render(
        request,
        "worker.html",
        person,
        progress=progress,
        records=records,
        worker_id=worker_id,
        day=day,
        community=community,
    )
