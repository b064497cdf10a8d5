"""Bearer JWTs (HS256, PyJWT): who is calling, in what role, over what scope.

Roles: grid_worker, secretary, street_admin, agency, hotline, ops.  Scope claims narrow a role:
``community`` (and ``grid``, ``worker_id`` for a grid worker), ``street`` for a street admin,
``agency`` (and ``agency_kind``) for an outside agency.  Every route uses :func:`require` as its one
dependency: it checks the token, the role, and the scope over the route's ``{community}`` or
``{street}`` path parameter — before the body is read — so a route's own code only decides about
the resource itself (a grid, an agency's case).  A fast path in front of the app (visits ingest)
calls the same :func:`authenticate`, :func:`role_allowed` and :func:`check_community`.

What each role may do is written down in ``docs/access-policy.toml``; the access-matrix test holds
every route to it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, get_args

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .settings import Settings

Role = Literal["grid_worker", "secretary", "street_admin", "agency", "hotline", "ops"]
ROLES: tuple[str, ...] = get_args(Role)


class Principal(BaseModel):
    """The verified caller."""

    sub: str
    role: Role
    community: str | None = None
    street: str | None = None
    grid: str | None = None
    worker_id: str | None = None
    agency: str | None = None
    #: What kind of agency (police, property_management, …): the escalations it receives by kind.
    agency_kind: str | None = None

    def can_see_community(self, community: str, street_of: str | None = None) -> bool:
        """Whether this caller's scope covers ``community`` (``street_of``: the community's street)."""
        if self.role == "ops":
            return True
        if self.role == "street_admin":
            # The community's street must be known and be the admin's: an unknown street is refused.
            return self.street is not None and street_of == self.street
        if self.role == "hotline":
            return self.community in (None, community)
        return self.community == community

    def can_see_street(self, street: str) -> bool:
        """Whether this caller's scope covers a whole street (ops, or that street's admin)."""
        return self.role == "ops" or (self.role == "street_admin" and self.street == street)


#: How a service finds the street (街道) a community belongs to (None: not registered).
StreetOf = Callable[[str], Awaitable[str | None]]


def _scope_refused(message: str, field: str) -> HTTPException:
    return HTTPException(403, detail={"code": "forbidden", "message": message, "field": field})


async def check_community(principal: Principal, community: str, street_of: StreetOf | None) -> None:
    """403 (naming ``community``) unless ``principal``'s scope covers ``community``.

    Only a street admin's check needs the community's street; without a way to look it up the
    street admin is refused."""
    street = None
    if principal.role == "street_admin" and street_of is not None:
        street = await street_of(community)
    if not principal.can_see_community(community, street):
        whose = f"street {principal.street}" if principal.role == "street_admin" else "token scope"
        raise _scope_refused(f"community {community} is not in the {whose}", "community")


def check_street(principal: Principal, street: str) -> None:
    """403 (naming ``street``) unless ``principal`` may see the whole street."""
    if not principal.can_see_street(street):
        raise _scope_refused(f"street {street} is not in the token's scope", "street")


#: The shortest signing secret a service accepts: HS256 wants a key of at least its hash's 32 bytes.
MIN_SECRET_BYTES = 32


def check_signing_secret(settings: Settings) -> None:
    """Refuse to run with no token secret, or one too short to resist guessing (RuntimeError)."""
    secret = settings.jwt_secret or ""
    if not secret:
        raise RuntimeError("GRIDWORK_JWT_SECRET is not set: no service answers without token checks")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(
            f"GRIDWORK_JWT_SECRET is {len(secret.encode())} bytes; it must be at least {MIN_SECRET_BYTES} random "
            "bytes (e.g. `openssl rand -hex 32`)"
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
    agency_kind: str | None = None,
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
        "aud": settings.jwt_audience,
    }
    for key, value in (
        ("community", community),
        ("street", street),
        ("grid", grid),
        ("worker_id", worker_id),
        ("agency", agency),
        ("agency_kind", agency_kind),
    ):
        if value is not None:
            claims[key] = value
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def _decode(settings: Settings, token: str) -> tuple[Principal, float]:
    claims = jwt.decode(
        token,
        settings.jwt_secret,
        algorithms=["HS256"],
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        options={"require": ["exp", "sub", "role", "aud"]},
    )
    who = Principal.model_validate({k: v for k, v in claims.items() if k in Principal.model_fields})
    return who, float(claims["exp"])


#: Verified tokens → (expiry, principal), keyed with the secret and issuer they were verified under.
#: PyJWT spends ~0.3 ms on a token and a phone sends the same one all day; expiry is still checked
#: on every hit, and the cache is bounded.
_verified: dict[tuple[str, str, str], tuple[float, Principal]] = {}
_VERIFIED_MAX = 10_000


def authenticate(settings: Settings, token: str) -> Principal:
    """The caller of a bearer ``token``: verified once, then remembered until it expires.

    The one way every route — and the visits ingest fast path — reads a token; raises
    ``jwt.PyJWTError`` when it is not valid."""
    key = (settings.jwt_secret or "", settings.jwt_issuer + "|" + settings.jwt_audience, token)
    hit = _verified.get(key)
    if hit is not None and hit[0] > time.time():
        return hit[1]
    who, expires = _decode(settings, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = (expires, who)
    return who


def role_allowed(principal: Principal, roles: Collection[str]) -> bool:
    """Whether ``principal``'s role is one of ``roles`` (an empty collection admits every role)."""
    return not roles or principal.role in roles


def forbidden_role(principal: Principal, roles: Collection[str]) -> HTTPException:
    """The 403 for a caller whose role may not do this."""
    return HTTPException(
        403,
        detail={
            "code": "forbidden",
            "message": f"role {principal.role} may not do this; needs one of {', '.join(sorted(roles))}",
        },
    )


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
        return authenticate(settings, creds.credentials)
    except jwt.PyJWTError as err:
        raise HTTPException(
            401,
            detail={"code": "unauthorized", "message": f"invalid token: {err}"},
            headers={"WWW-Authenticate": "Bearer"},
        ) from err


def street_lookup(request: Request) -> StreetOf | None:
    """The running service's community → street lookup (``app.state.street_of``, set at start-up)."""
    found: StreetOf | None = getattr(request.app.state, "street_of", None)
    return found


def require(*roles: str, scoped: bool = True) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only the given roles over the route's scope.

    401 without a valid token; 403 for a role not in ``roles``, or — unless ``scoped`` is False, for
    a route that checks a scope of its own making — for a ``{community}`` or ``{street}`` path
    parameter the token's scope does not cover.  It runs before the body is read."""
    allowed = set(roles)

    async def dependency(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
        if not role_allowed(principal, allowed):
            raise forbidden_role(principal, allowed)
        if scoped:
            params = request.path_params
            if "community" in params:
                await check_community(principal, params["community"], street_lookup(request))
            if "street" in params:
                check_street(principal, params["street"])
        return principal

    dependency.is_route_guard = True  # type: ignore[attr-defined]  # how _guard_of finds it on a route
    return dependency


def _guard_of(route: Any) -> Callable[..., Awaitable[Principal]] | None:
    """The :func:`require` dependency of ``route`` (None for a public route)."""
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", ()))
    while stack:
        dep = stack.pop()
        call = dep.call
        if getattr(call, "is_route_guard", False):
            guard: Callable[..., Awaitable[Principal]] = call
            return guard
        stack.extend(dep.dependencies)
    return None


async def check_caller(request: Request) -> None:
    """Run the matched route's :func:`require` on ``request`` (HTTPException 401/403 when it
    refuses): the request's body was found invalid before the route's dependencies ran, and a
    caller the route would refuse learns nothing of what its body got wrong."""
    guard = _guard_of(request.scope.get("route"))
    if guard is not None:
        principal = await current_principal(request, await _bearer(request))
        await guard(request, principal)
