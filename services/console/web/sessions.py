"""Signed-in sessions: an HttpOnly, SameSite=Lax cookie holding a random id, its digest in
PostgreSQL, an idle expiry and an absolute one, and a CSRF token per session.

A person's role and scope are read from the accounts read model on every request (cached for a
few seconds), so a role changed or an account disabled takes effect on the open sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import Request
from starlette.datastructures import FormData

from shared.auth import Principal
from shared.events import now

from ..settings import ConsoleSettings

COOKIE = "gw_session"
#: The CSRF token of a form shown before sign-in (the login form): double-submitted, cookie and field.
PRE_COOKIE = "gw_pre"
LANG_COOKIE = "gw_lang"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Person:
    """The signed-in person, as a page sees them."""

    username: str
    display_name: str
    principal: Principal
    csrf: str
    must_change: bool
    session: str  # the digest of the session id (the row's key)

    @property
    def role(self) -> str:
        return self.principal.role


class NotSignedIn(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PasswordChangeDue(Exception):
    """Signed in with a one-time password: the person must choose their own first."""


class CsrfRefused(Exception):
    """A form without its session's CSRF token (or with another's)."""


class RoleRefused(Exception):
    """The signed-in person's role has no business on this page."""


def secure_cookies(request: Request, settings: ConsoleSettings) -> bool:
    """Whether cookies get the Secure flag: as configured, else when the request came over TLS."""
    if settings.console_secure_cookies is not None:
        return settings.console_secure_cookies
    return request.url.scheme == "https"


def principal_of(row: dict[str, Any]) -> Principal:
    """The caller the services see for an account (its username, role and scope claims)."""
    claims = ("community", "street", "grid", "worker_id", "agency", "agency_kind")
    return Principal(sub=row["username"], role=row["role"], **{c: row.get(c) for c in claims})


class Sessions:
    """The session table and the per-request lookup."""

    def __init__(self, pool: asyncpg.Pool, settings: ConsoleSettings) -> None:
        self.pool = pool
        self.settings = settings
        self._recent: dict[str, tuple[float, Person | None]] = {}

    async def start(self, username: str, display_name: str, scope: dict[str, Any], must_change: bool) -> str:
        """A new session for ``username``; the cookie's value (only its digest is stored).

        ``scope`` (and the name) as sign-in read them from the account's events: the session works
        at once, before the accounts read model has folded a just-opened account."""
        value = secrets.token_urlsafe(32)
        expires = now() + timedelta(hours=self.settings.console_session_max_hours)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO console_sessions (id_digest, username, csrf, expires_at, must_change, display_name, scope)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                digest(value),
                username,
                secrets.token_urlsafe(24),
                expires,
                must_change,
                display_name,
                json.dumps(scope),
            )
            # the table keeps no session past its end
            await conn.execute(
                "DELETE FROM console_sessions WHERE expires_at < now() OR last_seen < now() - $1::interval",
                timedelta(minutes=self.settings.console_session_idle_minutes),
            )
        return value

    async def end(self, session_digest: str) -> None:
        self._recent.pop(session_digest, None)
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM console_sessions WHERE id_digest = $1", session_digest)

    async def end_all(self, username: str) -> None:
        """End every session of an account (disabled, or its password reset)."""
        self._recent = {k: v for k, v in self._recent.items() if v[1] is None or v[1].username != username}
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM console_sessions WHERE username = $1", username)

    async def password_changed(self, session_digest: str) -> None:
        self._recent.pop(session_digest, None)
        async with self.pool.acquire() as conn:
            await conn.execute("UPDATE console_sessions SET must_change = false WHERE id_digest = $1", session_digest)

    async def person(self, request: Request) -> Person | None:
        """The person whose live session the request's cookie names (None: none, or it expired)."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        key = digest(value)
        held = self._recent.get(key)
        moment = time.monotonic()
        if held is not None and moment - held[0] < 5:
            return held[1]
        idle = timedelta(minutes=self.settings.console_session_idle_minutes)
        async with self.pool.acquire() as conn:
            # the account's current role and scope (a change or a disabling acts at once), or the
            # session's own copy while the read model has not folded a just-opened account
            row = await conn.fetchrow(
                "WITH s AS (UPDATE console_sessions SET last_seen = now() WHERE id_digest = $1"
                " AND expires_at > now() AND last_seen > now() - $2::interval RETURNING *)"
                " SELECT s.username, s.csrf, s.must_change, s.display_name AS session_name, s.scope AS session_scope,"
                " to_jsonb(a) AS account FROM s LEFT JOIN proj_console_accounts.accounts a ON a.username = s.username",
                key,
                idle,
            )
        person = None
        if row is not None:
            account = json.loads(row["account"]) if row["account"] else None
            if account is None or not account["disabled"]:
                source = account or {"username": row["username"], **json.loads(row["session_scope"])}
                person = Person(
                    username=row["username"],
                    display_name=account["display_name"] if account else row["session_name"],
                    principal=principal_of(source),
                    csrf=row["csrf"],
                    must_change=row["must_change"],
                    session=key,
                )
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[key] = (moment, person)
        return person


def login_target(request: Request) -> str:
    """The sign-in form's URL that comes back here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(here, safe='')}"


def safe_next(value: str | None) -> str:
    """A local path to go on to after sign-in (never another site: no scheme, no //host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def check_csrf(person_token: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(person_token.encode(), sent.encode()):
        raise CsrfRefused()


async def checked_form(request: Request, person: Person) -> FormData:
    """The request's form, once its CSRF token (field ``csrf`` or header ``X-CSRF-Token``) matches."""
    form = await request.form()
    sent = request.headers.get("x-csrf-token") or form.get("csrf")
    check_csrf(person.csrf, sent if isinstance(sent, str) else None)
    return form
