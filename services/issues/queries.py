"""Reads of the issues service's projections, shared by the JSON API, the hotline's and Open311's
routes and the board gauges: the issues board (``proj_issues_board``), the hotline feedback outbox
and the escalation process's timers (an issue's next deadline)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from shared.auth import Principal
from shared.db import Conn
from shared.events import now

from .domain import IssueState
from .domain.access import AGENCY_KINDS
from .domain.open311 import OPEN311_OPEN
from .projections import BOARD, ESCALATION, OUTBOX

_COLUMNS = "community, issue_id, state"


def _state(row: asyncpg.Record) -> IssueState:
    return IssueState.model_validate_json(row["state"])


async def community_street(conn: Conn, community: str) -> str | None:
    """The street (街道) a community belongs to, from CommunityRegistered."""
    return await conn.fetchval(f"SELECT street FROM {BOARD}.communities WHERE community = $1", community)


def visibility(who: Principal | None, first_arg: int) -> tuple[str, list[Any]]:
    """The SQL condition (with its arguments, numbered from ``first_arg``) limiting a listing to the
    issues ``who`` may see — :func:`services.issues.domain.access.refusal`'s ``read`` rule in SQL:
    a grid worker's grid, reports and assignments; an agency's kind and name.  Others: every issue."""
    if who is None or who.role not in ("grid_worker", "agency"):
        return "TRUE", []
    n = first_arg
    if who.role == "grid_worker":
        return (
            f"((${n}::text IS NOT NULL AND state->'place'->>'grid' = ${n}) "
            f"OR (${n + 1}::text IS NOT NULL AND (state->>'reported_by' = ${n + 1} "
            f"OR state->'assignees' @> "
            f"jsonb_build_array(jsonb_build_object('kind', 'worker', 'id', ${n + 1}::text)))))",
            [who.grid, who.worker_id],
        )
    return (
        f"((${n}::text IS NOT NULL AND state->'assignees' @> jsonb_build_array(jsonb_build_object('id', ${n}::text))) "
        f"OR (${n + 1}::text IS NOT NULL AND (target = ${n + 1} "
        f"OR state->'escalations' @> jsonb_build_array(jsonb_build_object('target', ${n + 1}::text)))))",
        [who.agency, who.agency_kind],
    )


async def list_issues(
    conn: Conn,
    community: str,
    *,
    visible_to: Principal | None = None,
    statuses: Sequence[str] = (),
    categories: Sequence[str] = (),
    subcategory: str | None = None,
    levels: Sequence[str] = (),
    source: str | None = None,
    open_only: bool = False,
    agencies: Sequence[str] = (),
    grids: Sequence[str] = (),
    overdue_only: bool = False,
    sort: Literal["newest", "overdue"] = "newest",
    at: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[IssueState], int]:
    """Issues of a community filtered by state, category, level, source, agency, grid and whether they
    are overdue at ``at`` (default now, see :func:`overdue_condition`); newest first, or with
    ``sort="overdue"`` the overdue ones first, then by their next deadline (soonest first, none last),
    then newest.  With the total count."""
    where = ["community = $1"]
    args: list[Any] = [community]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(n=len(args)))

    if statuses:
        add("status = ANY(${n}::text[])", list(statuses))
    if categories:
        add("category = ANY(${n}::text[])", list(categories))
    if subcategory:
        add("subcategory = ${n}", subcategory)
    if levels:
        add("level = ANY(${n}::text[])", list(levels))
    if source:
        add("source = ${n}", source)
    if open_only:
        where.append("is_open")
    if agencies:
        add(_AGENCY_CONDITION, list(agencies))
    if grids:
        add("state->'place'->>'grid' = ANY(${n}::text[])", list(grids))
    overdue = ""
    if overdue_only:
        args.append(at or now())
        overdue = overdue_condition(len(args))
        where.append(overdue)
    seen, seen_args = visibility(visible_to, len(args) + 1)
    where.append(seen)
    args.extend(seen_args)
    clause = " AND ".join(where)
    total = await conn.fetchval(f"SELECT count(*) FROM {BOARD}.issues WHERE {clause}", *args)
    order = "reported_at DESC NULLS LAST, issue_id"
    if sort == "overdue":
        if not overdue:  # the moment is a parameter of the ordering only (the count does not name it)
            args.append(at or now())
            overdue = overdue_condition(len(args))
        order = f"({overdue}) DESC, {_NEXT_DEADLINE} ASC NULLS LAST, {order}"
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM {BOARD}.issues WHERE {clause} "
        f"ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}",
        *args,
    )
    return [_state(r) for r in rows], int(total)


#: An agency filter's value matches an outside agency assigned by id or by kind, or the agency kind the
#: case was escalated (routed) to — what an agency's own token sees (:func:`visibility`), by name.
_AGENCY_CONDITION = (
    "(target = ANY(${n}::text[]) "
    "OR EXISTS (SELECT 1 FROM jsonb_array_elements(state->'escalations') e WHERE e->>'target' = ANY(${n}::text[])) "
    "OR EXISTS (SELECT 1 FROM jsonb_array_elements(state->'assignees') a "
    f"WHERE a->>'kind' IN ({', '.join(repr(k) for k in sorted(AGENCY_KINDS))}) "
    "AND (a->>'id' = ANY(${n}::text[]) OR a->>'kind' = ANY(${n}::text[]))))"
)
#: The deadline an issue is sorted by: its next pending deadline (the escalation process's timers) or,
#: for a 12345 work order, the deadline it still has to meet (fired or not) if that is older.
_NEXT_DEADLINE = (
    f"least((SELECT min(t.due_at) FROM {ESCALATION}.timers t "
    "WHERE t.community = issues.community AND t.issue_id = issues.issue_id AND t.state = 'pending'), "
    "CASE WHEN hotline_order_no IS NOT NULL AND is_open THEN (state->>'resolution_deadline')::timestamptz END, "
    "CASE WHEN hotline_order_no IS NOT NULL AND status = 'reported' "
    "THEN (state->>'response_deadline')::timestamptz END)"
)


def overdue_condition(at_arg: int) -> str:
    """The SQL condition of an issue overdue at ``$at_arg``: still open and either a pending deadline
    of the escalation process is past (the deadline worker has not fired it yet), or it is marked
    overdue (a deadline ran out where it could climb no further), or it is a 12345 work order past its
    resolution deadline, or past its response deadline and still not accepted.  (A level deadline
    that fired and sent the case up is not overdue any more: the new level has a fresh clock.)"""
    at = f"${at_arg}::timestamptz"
    return (
        "is_open AND ("
        "coalesce((state->>'overdue')::boolean, false) "
        f"OR EXISTS (SELECT 1 FROM {ESCALATION}.timers t WHERE t.community = issues.community "
        f"AND t.issue_id = issues.issue_id AND t.state = 'pending' AND t.due_at <= {at}) "
        f"OR (hotline_order_no IS NOT NULL AND ((state->>'resolution_deadline')::timestamptz <= {at} "
        f"OR (status = 'reported' AND (state->>'response_deadline')::timestamptz <= {at}))))"
    )


async def possible_duplicates(
    conn: Conn,
    issue: IssueState,
    *,
    days: int,
    radius_m: float,
    limit: int = 5,
    visible_to: Principal | None = None,
) -> list[IssueState]:
    """Open issues that may be the same problem: same category, same building or compound (or within
    ``radius_m`` when both are located), reported in the last ``days`` days — of those ``visible_to``
    may see."""
    p = issue.place
    if not (p.building or p.compound or (p.lat is not None and p.lon is not None)):
        return []
    since = (issue.reported_at or now()) - timedelta(days=days)
    seen, seen_args = visibility(visible_to, 13)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {BOARD}.issues
            WHERE community = $1 AND category = $2 AND is_open AND issue_id <> $3 AND reported_at >= $4
              AND (
                ($5::text IS NOT NULL AND building = $5 AND compound IS NOT DISTINCT FROM $6
                     AND phase IS NOT DISTINCT FROM $7)
                OR ($5::text IS NULL AND $6::text IS NOT NULL AND compound = $6)
                OR ($8::float8 IS NOT NULL AND lat IS NOT NULL AND
                    sqrt(power(radians(lat - $8) * 6371000, 2) +
                         power(radians(lon - $9) * 6371000 * cos(radians($8)), 2)) <= $10)
              )
              AND {seen}
            ORDER BY (subcategory IS NOT DISTINCT FROM $11) DESC, reported_at DESC
            LIMIT $12""",
        issue.community,
        issue.category,
        issue.issue_id,
        since,
        p.building,
        p.compound,
        p.phase,
        p.lat,
        p.lon,
        radius_m,
        issue.subcategory,
        limit,
        *seen_args,
    )
    return [_state(r) for r in rows]


async def open_problems(conn: Conn, community: str) -> list[dict[str, Any]]:
    """Open problems counted by category and level."""
    rows = await conn.fetch(
        f"SELECT category, level, count(*) AS open, count(*) FILTER (WHERE (state->>'overdue')::boolean) AS overdue "
        f"FROM {BOARD}.issues WHERE community = $1 AND is_open GROUP BY category, level ORDER BY category, level",
        community,
    )
    return [dict(r) for r in rows]


async def board_gauge_counts(
    conn: Conn,
) -> tuple[dict[tuple[str, str, str], tuple[int, int]], dict[str, int]]:
    """Open and overdue issues per (community, category, level), and undelivered hotline feedback
    per community — across every community, for the service's gauges."""
    rows = await conn.fetch(
        f"SELECT community, coalesce(category, 'uncategorised') AS category, level, count(*) AS open, "
        f"count(*) FILTER (WHERE (state->>'overdue')::boolean) AS overdue "
        f"FROM {BOARD}.issues WHERE is_open GROUP BY 1, 2, 3"
    )
    pending = await conn.fetch(
        f"SELECT community, count(*) AS pending FROM {OUTBOX}.outbox WHERE sent_at IS NULL GROUP BY community"
    )
    return (
        {(r["community"], r["category"], r["level"]): (r["open"], r["overdue"]) for r in rows},
        {r["community"]: r["pending"] for r in pending},
    )


async def pending_deadline(conn: Conn, community: str, issue_id: str) -> datetime | None:
    """The next deadline the issue is waiting on (None when none runs)."""
    return await conn.fetchval(
        f"SELECT min(due_at) FROM {ESCALATION}.timers WHERE community = $1 AND issue_id = $2 AND state = 'pending'",
        community,
        issue_id,
    )


async def pending_deadlines(conn: Conn, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """Next pending deadline of many issues at once."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"SELECT community, issue_id, min(due_at) AS due FROM {ESCALATION}.timers "
        "WHERE state = 'pending' AND (community, issue_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
        "GROUP BY community, issue_id",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["community"], r["issue_id"]): r["due"] for r in rows}


async def feedback_of(conn: Conn, community: str, issue_id: str) -> list[dict[str, Any]]:
    """The status feedback owed or sent to the hotline for one work order, oldest first."""
    rows = await conn.fetch(
        f"SELECT feedback_id, status, note, occurred_at, attempts, last_error, sent_at, dead_at FROM {OUTBOX}.outbox "
        "WHERE community = $1 AND issue_id = $2 ORDER BY seq",
        community,
        issue_id,
    )
    return [dict(r) for r in rows]


async def open311_requests(
    conn: Conn,
    *,
    jurisdiction: str | None,
    sources: Sequence[str],
    ids: Sequence[str] = (),
    service_codes: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Sequence[str] = (),
    limit: int = 1000,
) -> list[IssueState]:
    """Issues from ``sources`` as Open311 service requests, filtered the way GeoReport v2 GET requests filters."""
    where: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        where.append(sql.format(n=len(args)))

    add("source = ANY(${n}::text[])", list(sources))
    if jurisdiction:
        add("community = ${n}", jurisdiction)
    if ids:
        add("issue_id = ANY(${n}::text[])", list(ids))
    else:  # the spec: without ids, a date window (default the last 90 days)
        add("reported_at >= ${n}", start or (now() - timedelta(days=90)))
        if end:
            add("reported_at <= ${n}", end)
    if service_codes:
        add("service_code = ANY(${n}::text[])", list(service_codes))
    if statuses:
        wants_open, wants_closed = "open" in statuses, "closed" in statuses
        if wants_open != wants_closed:
            add("(status = ANY(${n}::text[])) = " + ("true" if wants_open else "false"), sorted(OPEN311_OPEN))
    clause = " AND ".join(where) or "true"
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM {BOARD}.issues WHERE {clause} ORDER BY reported_at DESC LIMIT {int(limit)}",
        *args,
    )
    return [_state(r) for r in rows]
