"""Reads of the 5+1 work: a worker's open shift and day, the face-to-face sessions, a household's
volunteer points."""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.auth import Principal
from shared.errors import NotFound

from ..aggregates import SHIFT_LOG, VOLUNTEER
from ..bootstrap import VisitsDeps
from ..domain.households import in_grid
from ..projections import ACTIVITY, ON_SHIFT, RECORDS


async def open_shifts(community: str, *, deps: VisitsDeps) -> list[dict[str, Any]]:
    """Every shift open now in the community (the ``visits_on_shift`` projection), longest first."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT worker_id, shift_id, grid_id, started_at FROM {ON_SHIFT}.open_shifts"
            " WHERE community = $1 ORDER BY started_at",
            community,
        )
    return [{**dict(r), "started_at": r["started_at"].isoformat()} for r in rows]


async def worker_records(
    community: str, worker_id: str, first: date, last: date, kinds: list[str], limit: int, *, deps: VisitsDeps
) -> dict[str, Any]:
    """A worker's records between two days (Shanghai), newest first, and how many there are of
    each kind (``visits_records``: codes and numbers, no free text)."""
    async with deps.pool.acquire() as conn:
        counts = await conn.fetch(
            f"SELECT kind, count(*) AS n FROM {RECORDS}.work_records"
            " WHERE community = $1 AND worker_id = $2 AND day BETWEEN $3 AND $4 GROUP BY kind",
            community,
            worker_id,
            first,
            last,
        )
        rows = await conn.fetch(
            f"SELECT at, day, kind, record_id, household_id, building_id, detail FROM {RECORDS}.work_records"
            " WHERE community = $1 AND worker_id = $2 AND day BETWEEN $3 AND $4"
            " AND (cardinality($5::text[]) = 0 OR kind = ANY($5)) ORDER BY at DESC, seq DESC LIMIT $6",
            community,
            worker_id,
            first,
            last,
            kinds,
            limit,
        )
    return {
        "worker_id": worker_id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "counts": {r["kind"]: r["n"] for r in counts},
        "records": [{**dict(r), "at": r["at"].isoformat(), "day": r["day"].isoformat()} for r in rows],
    }


async def shift_status(community: str, worker_id: str, *, deps: VisitsDeps) -> dict[str, Any]:
    """The worker's open shift (if any) and the shift log's version (for expected_version)."""
    loaded = await deps.store.load(SHIFT_LOG, community, worker_id)
    s = loaded.state
    return {
        "worker_id": worker_id,
        "version": loaded.version,
        "open_shift_id": s.open_shift_id,
        "started_at": s.open_started_at,
        "grid_id": s.open_grid_id,
    }


async def volunteer_balance(
    community: str, household_id: str, principal: Principal, *, deps: VisitsDeps
) -> dict[str, Any]:
    """A household's volunteer points, from its account's own stream; a grid worker reads their grid's."""
    ref = await deps.directory.household(community, household_id)
    if principal.role == "grid_worker":
        in_grid(ref, household_id, principal.grid)
    elif ref is None:
        raise NotFound(f"household {household_id} is not registered", field="household_id")
    loaded = await deps.store.load(VOLUNTEER, community, household_id)
    s = loaded.state
    return {
        "household_id": household_id,
        "earned": s.earned,
        "redeemed": s.redeemed,
        "balance": s.balance,
        "version": loaded.version,
    }


async def worker_day(community: str, worker_id: str, day: date, *, deps: VisitsDeps) -> dict[str, Any]:
    """One worker's day: visits, special-assistance visits, minutes in the grid, problems found…"""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT * FROM {ACTIVITY}.worker_days WHERE community = $1 AND worker_id = $2 AND day = $3",
            community,
            worker_id,
            day,
        )
    base: dict[str, Any] = {
        "worker_id": worker_id,
        "day": day.isoformat(),
        "visits": 0,
        "special_visits": 0,
        "visit_minutes": 0,
        "shift_minutes": 0.0,
        "problems": 0,
        "befriended": 0,
        "trainings": 0,
        "talents": 0,
        "surveys": 0,
    }
    if row is not None:
        base.update({k: v for k, v in dict(row).items() if k in base and k not in ("worker_id", "day")})
    base["hours_in_grid"] = round(base["shift_minutes"] / 60, 2)
    return base


async def list_sessions(
    community: str, worker_id: str | None, *, deps: VisitsDeps, limit: int = 100
) -> list[dict[str, Any]]:
    """Face-to-face sessions, newest first, each with whether it counts for the weekly quota."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT session_id, worker_id, station, held_at, party_members, residents, topics, problems "
            f"FROM {ACTIVITY}.sessions WHERE community = $1 AND ($2::text IS NULL OR worker_id = $2) "
            "ORDER BY held_at DESC LIMIT $3",
            community,
            worker_id,
            limit,
        )
    sessions = [{**dict(r), "counts_for_quota": r["party_members"] >= 1} for r in rows]
    revealed: list[dict[str, Any]] = await deps.vault.reveal(community, sessions)  # the topics, as typed
    return revealed
