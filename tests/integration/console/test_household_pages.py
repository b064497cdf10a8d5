"""The households, audit and map pages refuse before they call any service: a form without its
CSRF token (a reveal, a tag, an erasure, an import), and a role the page is not for."""

from __future__ import annotations

import httpx
import pytest

from services.console.accounts import AccountsDeps, open_account
from services.console.domain.accounts import LockPolicy
from services.console.passwords import Passwords
from services.console.settings import ConsoleSettings
from shared.events.console import Scope
from shared.eventstore import EventStore, connect

from .conftest import csrf_of, sign_in


async def ready_account(settings: ConsoleSettings, username: str, password: str, **scope: str) -> None:
    """An account whose password is its own already (not one-time), as the demo's are."""
    nc = await connect(settings, "tests-accounts")
    try:
        deps = AccountsDeps(EventStore(nc, settings), Passwords(settings.sealing_key()), LockPolicy())
        await open_account(username, username, Scope(**scope), password, by=None, deps=deps, one_time=False)
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/households/h-1/reveal", {}),
        ("/households/h-1/tags", {"add": "young"}),
        ("/households/h-1/erase", {"reason": "moved_away", "confirm": "h-1"}),
    ],
)
async def test_a_household_form_without_its_csrf_token_is_refused(
    console: httpx.AsyncClient, console_settings: ConsoleSettings, path: str, data: dict[str, str]
) -> None:
    await ready_account(console_settings, "hh-shuji", "her own secret 42", role="secretary", community="bairuijing")
    signed = await sign_in(console, "hh-shuji", "her own secret 42")
    assert signed.status_code == 303
    refused = await console.post(path, data=data)
    assert refused.status_code == 403
    assert "表单已失效" in refused.text
    forged = await console.post(path, data={**data, "csrf": "not-the-token"})
    assert forged.status_code == 403


async def test_an_import_without_its_csrf_token_is_refused(
    console: httpx.AsyncClient, console_settings: ConsoleSettings
) -> None:
    await ready_account(console_settings, "hh-shuji2", "her own secret 42", role="secretary", community="bairuijing")
    await sign_in(console, "hh-shuji2", "her own secret 42")
    form = await console.get("/households/import")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    refused = await console.post("/households/import", files={"file": ("l.csv", b"building\np1b01\n", "text/csv")})
    assert refused.status_code == 403
    # with its token but no file: said beside the file field, nothing sent on
    empty = await console.post(
        "/households/import", data={"csrf": csrf_of(form.text)}, files={"file": ("l.csv", b"", "text/csv")}
    )
    assert empty.status_code == 422 and 'id="hh-import-error"' in empty.text


@pytest.mark.parametrize(
    ("role", "scope", "paths"),
    [
        ("agency", {"community": "bairuijing", "agency": "pm-a", "agency_kind": "property_management"}, None),
        ("hotline", {}, None),
        ("grid_worker", {"community": "bairuijing", "grid": "g1", "worker_id": "w1"}, ["/audit", "/households/import"]),
        ("street_admin", {"street": "zhongnanlu"}, ["/audit", "/households/import", "/households/h-1/erase"]),
    ],
)
async def test_the_pages_a_role_is_not_for_are_refused(
    console: httpx.AsyncClient,
    console_settings: ConsoleSettings,
    role: str,
    scope: dict[str, str],
    paths: list[str] | None,
) -> None:
    username = f"hh-{role}"
    await ready_account(console_settings, username, "their own secret 42", role=role, **scope)
    await sign_in(console, username, "their own secret 42")
    for path in paths or ["/households", "/households/h-1", "/audit", "/map", "/households/import"]:
        answer = await console.get(path)
        assert answer.status_code == 403, path
        assert "无权查看此页面" in answer.text
