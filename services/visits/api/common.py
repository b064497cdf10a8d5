"""What every visits route shares: scope checks (on top of ``shared.auth.require``), documented errors."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from shared.auth import Principal
from shared.errors import Forbidden
from shared.openapi import ErrorBody


def _err(description: str, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    example: dict[str, Any] = {"code": code, "message": message}
    if field:
        example["field"] = field
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": {"error": example}}},
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _err("No or invalid bearer token", "unauthorized", "bearer token required"),
    403: _err("Role or scope does not allow this", "forbidden", "household h-1 is not in grid g-2", "household_id"),
    404: _err("Unknown household, building, worker…", "not_found", "household h-9 is not registered", "household_id"),
    409: _err(
        "Stale version, or a state that forbids it", "version_conflict", "household h-1: expected version 1, found 2"
    ),
    422: _err(
        "Invalid input; the field is named",
        "invalid",
        "occurred_at 2025-01-01T09:00:00+08:00 is more than 30 days back",
        "occurred_at",
    ),
}


def own_worker(principal: Principal, worker_id: str) -> None:
    """A grid worker reads only their own records."""
    if principal.role == "grid_worker" and principal.worker_id != worker_id:
        raise Forbidden("a grid worker reads only their own records", field="worker_id")


def own_grid(principal: Principal, grid: str | None) -> str | None:
    """The grid a read covers: a grid worker's own (none at all without one in the token), else ``grid``."""
    if principal.role == "grid_worker":
        return principal.grid or "-"
    return grid


def own_records(principal: Principal, worker_id: str | None) -> str | None:
    """The worker a listing covers: a grid worker's own records, else ``worker_id`` (None: everyone's)."""
    if principal.role == "grid_worker":
        return principal.worker_id
    return worker_id


def created(response: Response, duplicate: bool) -> None:
    """201 for a new record, 200 when it was already stored."""
    response.status_code = 200 if duplicate else 201
