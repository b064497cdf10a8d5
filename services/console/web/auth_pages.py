"""Sign-in, sign-out, choosing one's password, the language switch and the start page."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from shared.errors import DomainError

from .. import accounts
from ..bootstrap import deps
from .guard import signed_in
from .i18n import Translator
from .render import language, render
from .sessions import COOKIE, LANG_COOKIE, PRE_COOKIE, Person, check_csrf, checked_form, safe_next, secure_cookies

log = structlog.get_logger("gridwork.console.auth")

router = APIRouter(include_in_schema=False)

#: Where each role starts.
HOME = {
    "secretary": "/today",
    "street_admin": "/board",
    "agency": "/problems",
    "hotline": "/problems",
    "ops": "/accounts",
    "grid_worker": "/board",
}


def _login_page(request: Request, *, error: str = "", username: str = "", status: int = 200) -> Response:
    token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        None,
        status=status,
        pre_csrf=token,
        error=error,
        username=username,
        next=safe_next(request.query_params.get("next") or request.headers.get("x-next")),
    )
    response.set_cookie(
        PRE_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies(request, deps(request).settings)
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    person = await deps(request).sessions.person(request)
    if person is not None:
        return RedirectResponse(HOME.get(person.role, "/"), status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    d = deps(request)
    t = Translator(language(request))
    check_csrf(request.cookies.get(PRE_COOKIE, ""), csrf)
    username = username.strip().lower()
    client = request.client.host if request.client else ""
    per_minute = d.settings.console_sign_ins_per_minute
    wait = d.sign_in_limits.admit([(f"ip:{client}", per_minute, 60), (f"user:{username}", per_minute, 60)], time.time())
    if wait is not None:
        response = _login_page(request, error=t("too_many_attempts"), username=username, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    outcome = await accounts.sign_in(username, password, client, deps=d.accounts)
    if outcome.state is None:
        key = "account_locked" if outcome.reason == "locked" else "wrong_password"
        log.info("sign_in_refused", username=username, reason=outcome.reason)
        return _login_page(request, error=t(key), username=username, status=401 if key == "wrong_password" else 423)
    state = outcome.state
    assert state.scope is not None  # a signed-in account exists
    value = await d.sessions.start(username, state.display_name, state.scope.model_dump(), state.must_change)
    target = "/password" if outcome.state.must_change else safe_next(next)
    if target == "/":
        target = HOME.get(outcome.state.scope.role if outcome.state.scope else "", "/")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, d.settings),
        max_age=int(d.settings.console_session_max_hours * 3600),
    )
    response.delete_cookie(PRE_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, person: Person = Depends(signed_in(allow_password_change=True))) -> Response:
    await checked_form(request, person)
    await deps(request).sessions.end(person.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/password")
async def password_form(request: Request, person: Person = Depends(signed_in(allow_password_change=True))) -> Response:
    return render(request, "password.html", person)


@router.post("/password")
async def set_password(request: Request, person: Person = Depends(signed_in(allow_password_change=True))) -> Response:
    form = await checked_form(request, person)
    t = Translator(language(request))
    current, new, repeat = (str(form.get(k, "")) for k in ("current_password", "new_password", "repeat_password"))
    if new != repeat:
        return render(request, "password.html", person, status=422, error=t("passwords_differ"))
    d = deps(request)
    try:
        await accounts.set_own_password(person.username, current, new, deps=d.accounts)
    except DomainError as err:
        return render(request, "password.html", person, status=err.status, error=err.message)
    await d.sessions.password_changed(person.session)
    return RedirectResponse(HOME.get(person.role, "/"), status_code=303)


@router.get("/lang")
async def switch_language(request: Request, to: str = "zh", next: str = "/") -> Response:
    """Set the language cookie and go back (a preference, not a change of anything stored)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, "en" if to == "en" else "zh", samesite="lax", max_age=365 * 86400)
    return response


@router.get("/")
async def start(request: Request) -> Response:
    person = await deps(request).sessions.person(request)
    if person is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(HOME.get(person.role, "/login"), status_code=303)
