"""Bearer JWTs (HS256, PyJWT): who is calling, in what role, over what scope.

Roles: grid_worker, secretary, street_admin, agency, hotline, ops.  Scope claims narrow a role:
``community`` (and ``grid``, ``worker_id`` for a grid worker), ``street`` for a street admin,
``agency`` for an outside agency.  Every service uses :func:`require` as its one dependency.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .settings import Settings

Role = Literal["grid_worker", "secretary", "street_admin", "agency", "hotline", "ops"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]


class Principal(BaseModel):
    """The verified caller."""

    sub: str
    role: Role
    community: str | None = None
    street: str | None = None
    grid: str | None = None
    worker_id: str | None = None
    agency: str | None = None

    def can_see_community(self, community: str, street_of: str | None = None) -> bool:
        """Whether this caller's scope covers ``community`` (``street_of``: the community's street)."""
        if self.role in ("ops",):
            return True
        if self.role == "street_admin":
            # The community's street must be known and be the admin's: an unknown street is refused.
            return self.community == community or (self.street is not None and street_of == self.street)
        if self.role == "hotline":
            return self.community in (None, community)
        return self.community == community

    def require_community(self, community: str, street_of: str | None = None) -> None:
        if not self.can_see_community(community, street_of):
            raise HTTPException(
                403, detail={"code": "forbidden", "message": f"token scope does not cover community {community}"}
            )


def mint_token(
    settings: Settings,
    *,
    role: str,
    sub: str | None = None,
    community: str | None = None,
    street: str | None = None,
    grid: str | None = None,
    worker_id: str | None = None,
    agency: str | None = None,
    ttl_seconds: int = 12 * 3600,
) -> str:
    """Sign a token (used by ``gridwork token``, the demo and the tests)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not settings.jwt_secret:
        raise RuntimeError("GRIDWORK_JWT_SECRET is not set")
    now = int(time.time())
    claims = {
        "sub": sub or worker_id or role,
        "role": role,
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": settings.jwt_issuer,
    }
    for key, value in (
        ("community", community),
        ("street", street),
        ("grid", grid),
        ("worker_id", worker_id),
        ("agency", agency),
    ):
        if value is not None:
            claims[key] = value
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    claims = jwt.decode(
        token,
        settings.jwt_secret,
        algorithms=["HS256"],
        issuer=settings.jwt_issuer,
        options={"require": ["exp", "sub", "role"]},
    )
    return Principal.model_validate({k: v for k, v in claims.items() if k in Principal.model_fields})


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    """401 without a valid bearer token."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            detail={"code": "unauthorized", "message": "bearer token required"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    settings: Settings = request.app.state.settings
    try:
        return decode_token(settings, creds.credentials)
    except jwt.PyJWTError as err:
        raise HTTPException(
            401,
            detail={"code": "unauthorized", "message": f"invalid token: {err}"},
            headers={"WWW-Authenticate": "Bearer"},
        ) from err


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only the given roles (403 otherwise, 401 without a token)."""
    allowed = set(roles)

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if allowed and principal.role not in allowed:
            raise HTTPException(
                403,
                detail={
                    "code": "forbidden",
                    "message": f"role {principal.role} may not do this; needs one of {', '.join(sorted(allowed))}",
                },
            )
        return principal

    return dependency
