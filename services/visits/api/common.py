"""What every visits route shares: the handlers' dependencies, scope checks, documented errors."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shared.auth import Principal, decode_token
from shared.errors import Forbidden

from ..handlers import Deps


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every refusal: what went wrong, why, and which field."""

    error: ErrorDetail


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


_bearer = HTTPBearer(auto_error=False)
#: Verified tokens → (expiry, principal).  PyJWT spends ~0.3 ms checking a token; a phone sends the
#: same one all day.  Expiry is still checked on every hit; the cache is bounded.
_verified: dict[str, tuple[float, Principal]] = {}


def _principal(settings: Any, token: str) -> Principal:
    hit = _verified.get(token)
    if hit is not None and hit[0] > time.time():
        return hit[1]
    who = decode_token(settings, token)
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[token] = (float(exp), who)
    return who


def allow(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """``shared.auth.require`` as an *async* dependency, same 401/403 answers.

    The shared one is a plain ``def``, which FastAPI runs in its thread pool: two thread hops per
    request, a fifth of the cost of logging a visit.  Checking a token does no I/O, so here it runs
    on the event loop.  (Proposed as a change to shared/auth.py.)
    """
    allowed = set(roles)

    async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(
                401,
                detail={"code": "unauthorized", "message": "bearer token required"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            who = _principal(request.app.state.settings, creds.credentials)
        except jwt.PyJWTError as err:
            raise HTTPException(
                401,
                detail={"code": "unauthorized", "message": f"invalid token: {err}"},
                headers={"WWW-Authenticate": "Bearer"},
            ) from err
        if who.role not in allowed:
            raise HTTPException(
                403,
                detail={
                    "code": "forbidden",
                    "message": (f"role {who.role} may not do this; needs one of {', '.join(sorted(allowed))}"),
                },
            )
        return who

    return principal


def deps_of(request: Request) -> Deps:
    """The handlers' dependencies, built by the service's on_start hook."""
    return request.app.state.runtime.state["visits"]


async def in_scope(principal: Principal, community: str, deps: Deps) -> None:
    """403 unless the token covers ``community`` (a street admin: a community of their street)."""
    street = None
    if principal.role == "street_admin":
        street = await deps.directory.street_of(community)
        if street is None or street != principal.street:
            raise Forbidden(f"community {community} is not in street {principal.street}", field="community")
    principal.require_community(community, street)


def own_worker(principal: Principal, worker_id: str) -> None:
    """A grid worker reads only their own records."""
    if principal.role == "grid_worker" and principal.worker_id != worker_id:
        raise Forbidden("a grid worker reads only their own records", field="worker_id")


def created(response: Response, duplicate: bool) -> None:
    """201 for a new record, 200 when it was already stored."""
    response.status_code = 200 if duplicate else 201
