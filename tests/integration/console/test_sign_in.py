"""A person signs in to the console with a username and password: the first password is one-time,
wrong passwords count, and too many lock the account — each recorded as an event."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import Settings
from tests.harness import eventually

from .conftest import account_events, csrf_of, sign_in


async def test_a_secretary_signs_in_with_the_one_time_password_and_chooses_her_own(
    console: httpx.AsyncClient, open_accounts: Any, settings: Settings
) -> None:
    await open_accounts("liu-shuji", "first-Pass-2026", role="secretary", community="bairuijing", name="刘书记")
    answer = await sign_in(console, "liu-shuji", "first-Pass-2026")
    assert answer.status_code == 303 and answer.headers["location"] == "/password"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("samesite", "SameSite")
    # until she has chosen her own password, every page leads to the password form
    assert (await console.get("/today")).headers["location"] == "/password"
    form = await console.get("/password")
    assert form.status_code == 200 and 'name="new_password"' in form.text
    weak = await console.post(
        "/password",
        data={
            "csrf": csrf_of(form.text),
            "current_password": "first-Pass-2026",
            "new_password": "short",
            "repeat_password": "short",
        },
    )
    assert weak.status_code == 422 and "10" in weak.text
    done = await console.post(
        "/password",
        data={
            "csrf": csrf_of(form.text),
            "current_password": "first-Pass-2026",
            "new_password": "her own secret 42",
            "repeat_password": "her own secret 42",
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/today"
    assert await account_events(settings, "liu-shuji") == ["AccountOpened", "AccountSignedIn", "AccountPasswordSet"]
    # the old password no longer opens the account; the new one does
    console.cookies.clear()
    assert (await sign_in(console, "liu-shuji", "first-Pass-2026")).status_code == 401
    again = await sign_in(console, "liu-shuji", "her own secret 42")
    assert again.status_code == 303 and again.headers["location"] == "/today"


async def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(
    console: httpx.AsyncClient, open_accounts: Any, settings: Settings
) -> None:
    await open_accounts(
        "police-desk", "desk-Pass-2026", role="agency", agency="police-zn", agency_kind="police", community="bairuijing"
    )
    for _ in range(4):
        wrong = await sign_in(console, "police-desk", "guess-guess")
        assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.text
    locked = await sign_in(console, "police-desk", "guess-guess")
    assert locked.status_code == 423 and "锁定" in locked.text
    assert (await sign_in(console, "police-desk", "desk-Pass-2026")).status_code == 423
    events = await account_events(settings, "police-desk")
    assert events.count("AccountSignInFailed") == 6 and events.count("AccountLocked") == 1
    assert "AccountSignedIn" not in events


async def test_an_unknown_username_answers_like_a_wrong_password(console: httpx.AsyncClient) -> None:
    answer = await sign_in(console, "nobody-here", "whatever-password")
    assert answer.status_code == 401 and "用户名或密码不正确" in answer.text


async def test_a_form_without_its_csrf_token_is_refused(console: httpx.AsyncClient, open_accounts: Any) -> None:
    await open_accounts("wang-ops", "ops-Pass-2026", role="ops")
    no_token = await console.post("/login", data={"username": "wang-ops", "password": "ops-Pass-2026"})
    assert no_token.status_code == 403
    signed = await sign_in(console, "wang-ops", "ops-Pass-2026")
    assert signed.status_code == 303
    # signed in: signing out without the session's token is refused, and the session stays
    assert (await console.post("/logout", data={})).status_code == 403
    assert (await console.post("/logout", data={"csrf": "forged"})).status_code == 403
    assert (await console.get("/password")).status_code == 200


async def test_too_many_attempts_from_one_client_are_slowed_down(
    console: httpx.AsyncClient, console_settings: Any
) -> None:
    limit = console_settings.console_sign_ins_per_minute
    answers = [(await sign_in(console, f"someone-{i}", "x-x-x-x-x")).status_code for i in range(limit + 1)]
    assert answers[:limit] == [401] * limit and answers[-1] == 429


async def test_the_accounts_read_model_folds_the_sign_ins(
    console: httpx.AsyncClient, open_accounts: Any, settings: Settings
) -> None:
    import asyncpg

    await open_accounts(
        "zhang-w01", "worker-Pass-26", role="grid_worker", community="bairuijing", grid="g01", worker_id="w01"
    )
    await sign_in(console, "zhang-w01", "wrong-wrong")

    async def folded() -> Any:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await conn.fetchrow(
                "SELECT role, grid, failures FROM proj_console_accounts.accounts"
                " WHERE username = 'zhang-w01' AND failures = 1"
            )
        finally:
            await conn.close()

    row = await eventually(folded, what="the failed sign-in folded")
    assert row["role"] == "grid_worker" and row["grid"] == "g01"


async def test_a_session_left_idle_ends(console_settings: Any, open_accounts: Any) -> None:
    from services.console.app import build_app
    from tests.harness import running

    idle = console_settings.model_copy(update={"console_session_idle_minutes": 0.02})  # 1.2 s
    await open_accounts("idle-sec", "idle-Pass-2026", role="secretary", community="bairuijing")
    async with running(build_app(idle)) as client:
        assert (await sign_in(client, "idle-sec", "idle-Pass-2026")).status_code == 303
        assert (await client.get("/password")).status_code == 200

        async def ended() -> bool:
            answer = await client.get("/password")
            return answer.status_code == 303 and answer.headers["location"].startswith("/login")

        # no request for longer than the idle time: the next one goes to the sign-in form
        await eventually(ended, timeout=15, interval=1.5, what="the idle session ended")
