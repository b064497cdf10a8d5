"""What every route's OpenAPI document declares: the answers the shared machinery can give.

The body screen (:class:`shared.http_adapter.BodyLimit`: 413, 422), the token check
(:func:`shared.auth.require`: 401, 403), request validation (422), the domain's errors (404, 409,
422) and a database or broker outage (503) answer on every service, whatever the route's own
code does.  :func:`declare_responses` adds them to every operation of the app's document, with
the error format each answer really has — ``{"error": {code, message, field}}``, and for Open311
GeoReport's ``[{code, description}]`` — and the 200 a ``201`` route answers to a request it
already stored (every create is idempotent).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """What went wrong (``code``), why (``message``) and, where one field is at fault, which."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every refusal of a gridwork API (Open311 aside)."""

    error: ErrorDetail


class Open311ErrorItem(BaseModel):
    """GeoReport v2's error: a list of these (``<errors><error>…`` in XML)."""

    code: int
    description: str


_ERROR_SCHEMA = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
_OPEN311_SCHEMA = {"type": "array", "items": Open311ErrorItem.model_json_schema()}


def _error(description: str, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    example: dict[str, Any] = {"code": code, "message": message}
    if field:
        example["field"] = field
    return {
        "description": description,
        "content": {"application/json": {"schema": _inline(_ERROR_SCHEMA), "example": {"error": example}}},
    }


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` resolved in place (the document's components are the app's own)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


#: The answers of the shared machinery, as every route that can give one declares it.
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    401: _error("No bearer token, or one that is invalid or expired", "unauthorized", "bearer token required"),
    403: _error("The token's role or scope does not allow this", "forbidden", "role grid_worker may not do this"),
    404: _error("No such resource (the field names which)", "not_found", "issue is-9 not found", "issue_id"),
    409: _error(
        "A stale version, a state that forbids it, or an id already used differently",
        "version_conflict",
        "expected version 1, found 2",
    ),
    413: _error("The request body is over the limit (read no further)", "too_large", "the request body is too large"),
    422: _error("Invalid input; the field is named", "invalid", "minutes: Input should be less than 600", "minutes"),
    429: _error("Too many requests; Retry-After says when to try again", "rate_limited", "too many requests"),
    503: _error(
        "The event store or the database is unavailable for a moment; Retry-After says when to send it again",
        "unavailable",
        "the event store or database is unavailable for a moment; send the request again",
    ),
}

#: What GeoReport v2 answers, in its own error format, JSON or XML.
OPEN311_RESPONSES: dict[int, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            "application/json": {
                "schema": _OPEN311_SCHEMA,
                "example": [{"code": status, "description": description}],
            },
            "application/xml": {"schema": {"type": "string"}},
        },
    }
    for status, description in (
        (400, "A parameter is missing or invalid (GeoReport's error for bad input)"),
        (403, "The api_key is missing, unknown or not valid for the jurisdiction"),
        (404, "No such service, request or token"),
        (413, "The request body is over the limit"),
        (422, "A control character or a reserved character in the path, query or body"),
        (429, "Too many reports from this api_key or device; Retry-After says when to try again"),
        (503, "The event store or the database is unavailable for a moment"),
    )
}

#: The 200 a create answers when the same request was stored before.
ALREADY_STORED = {"description": "Already stored: the same request again, answered as it was (nothing changed)"}

WRITES = frozenset({"post", "put", "patch"})


def statuses_of(path: str, method: str, guarded: bool) -> set[int]:
    """The statuses the shared machinery can answer on ``method`` ``path`` (``guarded``: behind a token)."""
    writes = method.lower() in WRITES
    if path.startswith("/open311/"):
        return {400, 404, 422, 503} | ({403, 413, 429} if writes else set())
    found = {422}  # the path and query screen answers it on every route, and validation
    if path == "/readyz":
        found.add(503)
    if path.startswith("/v1/"):
        found |= {404, 503}  # the resource named; an outage of PostgreSQL or NATS
        if writes:
            found |= {409, 413}
    if guarded:
        found |= {401, 403}
    return found


def _fastapi_default(response: dict[str, Any]) -> bool:
    """Whether ``response`` is FastAPI's own 422 (``{"detail": […]}``), which no gridwork route answers."""
    return "HTTPValidationError" in str(response.get("content", {}))


def add_declared_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Add to every operation of an OpenAPI ``document`` the answers :func:`statuses_of` says it can
    give (an operation's own declaration wins, FastAPI's default 422 excepted) and a create's 200."""
    for path, item in document.get("paths", {}).items():
        table = OPEN311_RESPONSES if path.startswith("/open311/") else ERROR_RESPONSES
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            guarded = any("HTTPBearer" in requirement for requirement in operation.get("security", ()))
            for status in sorted(statuses_of(path, method, guarded)):
                if str(status) not in responses or _fastapi_default(responses[str(status)]):
                    responses[str(status)] = table[status]
            if "201" in responses and table is ERROR_RESPONSES:  # Open311 answers a re-sent form 201
                responses.setdefault("200", ALREADY_STORED)
    return document


def declare_responses(app: FastAPI) -> None:
    """Build ``app``'s OpenAPI document with :func:`add_declared_responses` applied."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return add_declared_responses(build())

    app.openapi = openapi  # type: ignore[method-assign]
