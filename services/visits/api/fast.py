"""The field app's two ingest routes, ``POST …/visits`` and ``POST …/sync``, past FastAPI's per-request work.

For a single visit FastAPI spends more CPU than the visit itself: routing through every route,
resolving the dependencies (path, header, bearer token, body), validating the body, then
validating and serializing the answer again — about 0.4 ms of the 0.9 ms a visit cost on the
development machine.  This ASGI middleware answers the well-formed case of these two routes with
the same functions the FastAPI routes call (:func:`.work.log`, :func:`.sync.sync_for`): the body
validated once by the same pydantic model, the answer serialized once.

Whatever it does not recognise it hands on, untouched and with the body replayed, to the FastAPI
route, which stays the definition (OpenAPI) and gives the canonical answers: another path or
method, a missing, invalid or expired token, a role or community scope the route does not admit, a community id
that fails its pattern, a content type other than JSON, a body that is not JSON or fails
validation.  Errors raised while handling (404 unknown household, 403 outside the grid, 422 time
window, 409 id taken, 503…) are rendered by the app's own exception handlers.

It sits in front of the whole app (``ServiceSpec.ingress``): the five ASGI layers Starlette and the
metrics put around every request (error handling, body limit, telemetry, the instrumentator, the
exception middleware) cost about a tenth of a visit.  So it counts what it answers itself, in the
same HTTP metrics under the route's template (``http_requests_total{handler="/v1/communities/
{community}/visits"}``); what it hands on is counted by the app's instrumentation as before.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, authenticate, role_allowed
from shared.http_adapter import http_metrics

from ..bootstrap import VisitsDeps
from ..schemas import SyncBatch, VisitIn
from .sync import sync_for
from .work import LOGGERS, SYNCERS, log

_ROUTE = re.compile(r"^/v1/communities/([A-Za-z0-9_-]{1,64})/(visits|sync)$")
_JSON = b"application/json"

Handle = Callable[[str, Any, Principal, str | None, VisitsDeps], Awaitable[tuple[int, BaseModel]]]


async def _visit(
    community: str, body: Any, principal: Principal, key: str | None, deps: VisitsDeps
) -> tuple[int, BaseModel]:
    out = await log("visit", community, body, principal, key, deps)
    return (200 if out.duplicate else 201), out


async def _sync(
    community: str, body: Any, principal: Principal, _key: str | None, deps: VisitsDeps
) -> tuple[int, BaseModel]:
    return 200, await sync_for(community, body, principal, deps)


#: route → (body model, roles admitted, what answers it)
_ROUTES: dict[str, tuple[type[BaseModel], frozenset[str], Handle]] = {
    "visits": (VisitIn, frozenset(LOGGERS), _visit),
    "sync": (SyncBatch, frozenset(SYNCERS), _sync),
}


#: route → its template, the ``handler`` label the instrumentator gives the route's own answers
_TEMPLATES = {route: f"/v1/communities/{{community}}/{route}" for route in _ROUTES}


def _count(route: str, status: int, received: int, sent: int, started: float) -> None:
    """The answered request in the HTTP metrics, as the instrumentator labels the route's own answers."""
    seconds = time.perf_counter() - started
    http_metrics().observe("POST", f"{status // 100}xx", _TEMPLATES[route], received, sent, seconds)


class IngestFastPath:
    """ASGI middleware: the well-formed single visit and offline sync, answered without FastAPI's routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return await self.app(scope, receive, send)
        match = _ROUTE.match(scope["path"])
        state: Any = getattr(scope.get("app"), "state", None)
        runtime = getattr(state, "runtime", None)
        if match is None or runtime is None:
            return await self.app(scope, receive, send)
        community, route = match.groups()
        model, roles, handle = _ROUTES[route]
        authorization = content_type = idempotency_key = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"authorization":
                authorization = authorization or value
            elif name == b"content-type":
                content_type = content_type or value
            elif name == b"idempotency-key":
                idempotency_key = idempotency_key if idempotency_key is not None else value
        principal = _caller(state.settings, authorization, roles)
        # Anything but a caller whose token covers the community goes to the route, which answers it
        # through shared.auth.require (a street admin's scope needs a lookup: the route does it).
        if principal is None or principal.role == "street_admin" or not principal.can_see_community(community):
            return await self.app(scope, receive, send)
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON:
            return await self.app(scope, receive, send)

        messages, body = await _read(receive)
        try:
            payload = model.model_validate_json(body)
        except (ValueError, ValidationError):  # not JSON, or invalid: the route names the fields
            return await self.app(scope, _replay(messages, receive), send)

        try:
            status, answer = await handle(
                community,
                payload,
                principal,
                idempotency_key.decode("latin-1") if idempotency_key is not None else None,
                runtime.deps,
            )
        except Exception as err:
            handler = _handler_for(scope["app"].exception_handlers, err)
            if handler is None:  # uvicorn answers 500 and logs it
                _count(route, 500, len(body), 0, started)
                raise
            response = handler(Request(scope, receive), err)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            _count(route, response.status_code, len(body), len(getattr(response, "body", b"")), started)
            return
        content = answer.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": content})
        _count(route, status, len(body), len(content), started)


def _caller(settings: Any, authorization: bytes | None, roles: frozenset[str]) -> Principal | None:
    """The verified caller when the bearer token is valid and its role admitted; else None (the route answers)."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        principal = authenticate(settings, token)
    except jwt.PyJWTError:
        return None
    return principal if role_allowed(principal, roles) else None


async def _read(receive: Receive) -> tuple[list[Message], bytes]:
    """The request body, and the messages it came in (to replay them)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b""  # the client left; the route sees the same
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read messages again, then the connection's."""
    pending = list(messages)

    async def again() -> Message:
        return pending.pop(0) if pending else await receive()

    return again


def _handler_for(handlers: dict[Any, Any], err: Exception) -> Any:
    """The app's exception handler for ``err`` (by class, most specific first), as Starlette picks it."""
    for cls in type(err).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
