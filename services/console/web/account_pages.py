"""Accounts (issue #14): who may sign in to the console, in which role and scope.

Ops manages every account; a secretary her own community's grid workers and secretaries.  That
rule lives in :mod:`services.console.accounts` (``may_manage``): these pages call its functions as
the signed-in person and show what they refuse.  Lists read the console's own read model
(``proj_console_accounts``); one account's page reads its events, so it is current at once.

A first password and a reset one are one-time: shown once, on the answer to the form that made
them (never in a URL, never stored anywhere but sealed in the account's event), and the person
chooses their own at sign-in.  Disabling an account or resetting its password ends its open sessions.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from shared.errors import DomainError, Forbidden
from shared.events import now
from shared.events.console import USERNAME_PATTERN, Scope

from .. import accounts
from ..bootstrap import deps
from ..domain.accounts import AccountState
from ..passwords import one_time_password
from .guard import signed_in
from .i18n import Translator
from .render import done_label, language, local_time, render
from .sessions import Person, checked_form

router = APIRouter(include_in_schema=False)

MANAGERS = ("ops", "secretary")
ROLES = ("grid_worker", "secretary", "street_admin", "agency", "hotline", "ops")
AGENCY_KINDS = ("property_management", "police", "street_office", "urban_management")
SCOPE_FIELDS = ("community", "grid", "worker_id", "street", "agency", "agency_kind")
#: The scope fields each role carries (the others a form may hold are left out of its scope).
ROLE_FIELDS: dict[str, tuple[str, ...]] = {
    "grid_worker": ("community", "grid", "worker_id"),
    "secretary": ("community",),
    "street_admin": ("street",),
    "agency": ("agency", "agency_kind", "community"),
    "hotline": ("community",),
    "ops": (),
}
#: Why an account is disabled or enabled: chosen from a list, so no free text (nor anyone's
#: personal data) goes into the account's events.
DISABLE_REASONS = ("left_post", "role_ended", "security", "other")
ENABLE_REASONS = ("returned", "mistake", "other")
LOG_LIMIT = 50
USERNAME = re.compile(USERNAME_PATTERN)


def _visible(person: Person, state: AccountState) -> bool:
    """Whether ``person`` may see this account's page: ops every one, a secretary her community's."""
    if person.role == "ops":
        return True
    return state.scope is not None and state.scope.community == person.principal.community


# ---------------------------------------------------------------------------------------- list


@router.get("/accounts")
async def account_list(request: Request, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    role = request.query_params.get("role") or None
    role = role if role in ROLES else None
    community = person.principal.community if person.role == "secretary" else None
    async with deps(request).pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT username, display_name, role, community, street, grid, worker_id, agency, agency_kind,"
            " must_change, disabled, locked_until, last_sign_in FROM proj_console_accounts.accounts"
            " WHERE ($1::text IS NULL OR community = $1) AND ($2::text IS NULL OR role = $2)"
            " ORDER BY role, username LIMIT 2000",
            community,
            role,
        )
    moment = now()
    listed = [
        {
            **dict(r),
            "locked": r["locked_until"] is not None and r["locked_until"] > moment,
            "last_sign_in": local_time(r["last_sign_in"].isoformat()) if r["last_sign_in"] else "",
            "manageable": accounts.may_manage(person.principal, _scope_of(dict(r))),
        }
        for r in rows
    ]
    return render(
        request, "accounts.html", person, accounts=listed, role=role or "", roles=ROLES, done=done_label(request)
    )


def _scope_of(row: dict[str, Any]) -> Scope:
    return Scope(role=row["role"], **{k: row.get(k) for k in SCOPE_FIELDS})


# ---------------------------------------------------------------------------------------- open


def _defaults(person: Person) -> dict[str, str]:
    """A new account's form: a secretary's in her community, as a grid worker."""
    return {
        "username": "",
        "display_name": "",
        "role": "grid_worker",
        **{k: "" for k in SCOPE_FIELDS},
        "community": person.principal.community or "",
    }


def _new_form(
    request: Request, person: Person, values: dict[str, str], *, error: str = "", field: str | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    return render(
        request, "accounts_new.html", person, status=status, values=values, error=error, field=field,
        roles=ROLES, agency_kinds=AGENCY_KINDS,
    )  # fmt: skip


@router.get("/accounts/new")
async def new_account_form(request: Request, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    return _new_form(request, person, _defaults(person))


class ScopeProblem(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def scope_from(form: dict[str, str], t: Translator) -> Scope:
    """The role and scope a form asks for (only the fields the role carries)."""
    role = form.get("role", "")
    if role not in ROLE_FIELDS:
        raise ScopeProblem(t("account_role_unknown"), "role")
    if form.get("agency_kind") and form["agency_kind"] not in AGENCY_KINDS and role == "agency":
        raise ScopeProblem(t("account_agency_kind_unknown"), "agency_kind")
    try:
        return Scope(role=role, **{k: form.get(k) or None for k in ROLE_FIELDS[role]})  # type: ignore[arg-type]
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "role"
        raise ScopeProblem(t("account_field_invalid"), field) from err


def _fields(form: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {k: str(form.get(k) or "").strip() for k in names}


@router.post("/accounts/new")
async def open_new_account(request: Request, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    """Open the account; the answer shows its one-time password, once."""
    form = await checked_form(request, person)
    t = Translator(language(request))
    values = _fields(form, ("username", "display_name", "role", *SCOPE_FIELDS))
    values["username"] = values["username"].lower()
    if not USERNAME.match(values["username"]):
        return _new_form(request, person, values, error=t("account_username_hint"), field="username", status=422)
    if not values["display_name"] or len(values["display_name"]) > 100:
        return _new_form(request, person, values, error=t("account_name_hint"), field="display_name", status=422)
    try:
        scope = scope_from(values, t)
    except ScopeProblem as problem:
        return _new_form(request, person, values, error=problem.message, field=problem.field, status=422)
    password = one_time_password()
    try:
        await accounts.open_account(
            values["username"], values["display_name"], scope, password, by=person.principal,
            deps=deps(request).accounts,
        )  # fmt: skip
    except DomainError as err:
        return _new_form(request, person, values, error=_refusal(err, t), field=err.field or "role", status=err.status)
    return _password_page(request, person, values["username"], values["display_name"], password, "opened")


def _refusal(err: DomainError, t: Translator) -> str:
    """What the page says of a refusal (a Forbidden names what the person may manage)."""
    if isinstance(err, Forbidden):
        return f"{t('account_forbidden')} ({err.message})"
    return err.message


def _password_page(
    request: Request, person: Person, username: str, display_name: str, password: str, why: str
) -> Response:
    """The one page that ever shows a one-time password: the answer to the POST that set it."""
    return render(
        request, "accounts_password.html", person, status=201 if why == "opened" else 200, username=username,
        display_name=display_name, password=password, why=why,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- one account


async def _load_visible(request: Request, person: Person, username: str) -> AccountState:
    loaded = await accounts.load(username, deps=deps(request).accounts)
    if not loaded.state.exists or not _visible(person, loaded.state):
        # another community's account is as unknown to a secretary as one that does not exist
        raise _NoAccount()
    return loaded.state


class _NoAccount(Exception):
    pass


async def _account_page(
    request: Request,
    person: Person,
    username: str,
    *,
    error: str = "",
    field: str | None = None,
    form: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    try:
        state = await _load_visible(request, person, username)
    except _NoAccount:
        t = Translator(language(request))
        return render(request, "error.html", person, status=404, message=t("not_found_page"), detail=username)
    assert state.scope is not None
    async with deps(request).pool.acquire() as conn:
        log = await conn.fetch(
            "SELECT at, kind, actor, detail FROM proj_console_accounts.sign_in_log WHERE username = $1"
            " ORDER BY seq DESC LIMIT $2",
            username,
            LOG_LIMIT,
        )
    moment = now()
    scope_values = {"role": state.scope.role, **{k: getattr(state.scope, k) or "" for k in SCOPE_FIELDS}}
    return render(
        request,
        "accounts_detail.html",
        person,
        status=status,
        account=state,
        username=username,
        locked=state.locked_at(moment),
        locked_until=local_time(state.locked_until.isoformat()) if state.locked_until else "",
        last_sign_in=local_time(state.last_sign_in.isoformat()) if state.last_sign_in else "",
        manageable=accounts.may_manage(person.principal, state.scope),
        myself=username == person.username,
        log=[
            {**dict(r), "at": local_time(r["at"].isoformat()), "detail": _log_detail(r["kind"], r["detail"])}
            for r in log
        ],
        values=values or scope_values,
        roles=ROLES,
        agency_kinds=AGENCY_KINDS,
        disable_reasons=DISABLE_REASONS,
        enable_reasons=ENABLE_REASONS,
        error=error,
        field=field,
        form=form,
        done=done_label(request),
    )


def _log_detail(kind: str, detail: str) -> str:
    """A log line's detail as shown: a lock-out's end in Beijing time, the rest as recorded (codes)."""
    return local_time(detail) if kind == "locked" else detail


@router.get("/accounts/{username}")
async def account_page(request: Request, username: str, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    return await _account_page(request, person, username)


@router.post("/accounts/{username}/password")
async def reset(request: Request, username: str, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    """A new one-time password (lifting a lock-out), shown once; the account's open sessions end."""
    await checked_form(request, person)
    t = Translator(language(request))
    d = deps(request)
    try:
        state = await _load_visible(request, person, username)
        password = one_time_password()
        await accounts.reset_password(username, password, by=person.principal, deps=d.accounts)
    except _NoAccount:
        return render(request, "error.html", person, status=404, message=t("not_found_page"), detail=username)
    except DomainError as err:
        return await _account_page(
            request, person, username, error=_refusal(err, t), field="reset", form="reset", status=err.status
        )
    await d.sessions.end_all(username)
    return _password_page(request, person, username, state.display_name, password, "reset")


@router.post("/accounts/{username}/role")
async def change_role(request: Request, username: str, person: Person = Depends(signed_in(*MANAGERS))) -> Response:
    form = await checked_form(request, person)
    t = Translator(language(request))
    values = _fields(form, ("role", *SCOPE_FIELDS))
    try:
        await _load_visible(request, person, username)
        scope = scope_from(values, t)
        await accounts.grant(username, scope, by=person.principal, deps=deps(request).accounts)
    except _NoAccount:
        return render(request, "error.html", person, status=404, message=t("not_found_page"), detail=username)
    except ScopeProblem as problem:
        return await _account_page(
            request, person, username, error=problem.message, field=problem.field, form="role", values=values,
            status=422,
        )  # fmt: skip
    except DomainError as err:
        return await _account_page(
            request, person, username, error=_refusal(err, t), field=err.field or "role", form="role",
            values=values, status=err.status,
        )  # fmt: skip
    return RedirectResponse(f"/accounts/{username}?done=role_changed", status_code=303)


@router.post("/accounts/{username}/enabled")
async def enable_or_disable(
    request: Request, username: str, person: Person = Depends(signed_in(*MANAGERS))
) -> Response:
    """Disable (its open sessions end at once) or enable an account, for a reason from the list."""
    form = await checked_form(request, person)
    t = Translator(language(request))
    enabled = form.get("enabled") == "1"
    reason = str(form.get("reason") or "other")
    if reason not in (ENABLE_REASONS if enabled else DISABLE_REASONS):
        reason = "other"
    d = deps(request)
    try:
        await _load_visible(request, person, username)
        await accounts.set_enabled(username, enabled, reason, by=person.principal, deps=d.accounts)
    except _NoAccount:
        return render(request, "error.html", person, status=404, message=t("not_found_page"), detail=username)
    except DomainError as err:
        return await _account_page(
            request, person, username, error=_refusal(err, t), field="enabled", form="enabled", status=err.status
        )
    if not enabled:
        await d.sessions.end_all(username)
    return RedirectResponse(f"/accounts/{username}?done={'enabled' if enabled else 'disabled'}", status_code=303)
