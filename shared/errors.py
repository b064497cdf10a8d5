"""Errors a command can raise; the HTTP layer turns each into its status code.

Every error names what went wrong (``code``), says why (``message``) and, where one field is at
fault, which field (``field``), so a field app can show it beside the input.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        err.update(self.extra)
        return {"error": err}


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    """Illegal state transition or stale version (409), with the current state where known."""

    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "invalid"
