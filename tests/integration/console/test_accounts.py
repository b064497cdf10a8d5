"""Accounts managed in the console: ops opens one and its one-time password shows once; a secretary
manages only her community's grid workers and secretaries; disabling an account or resetting its
password ends its open sessions at once."""

from __future__ import annotations

import re
from typing import Any

import httpx

from services.console.settings import ConsoleSettings
from tests.harness import eventually

from .conftest import account_events, csrf_of, sign_in

OPS = ("ops-admin", "ops-Pass-2026x")
SECRETARY = ("liu-shuji", "shuji-Pass-2026")


async def signed_in_as(console: httpx.AsyncClient, open_accounts: Any, who: tuple[str, str], **scope: Any) -> None:
    """Open an account (as the command line does), sign in and choose a password of one's own."""
    username, first = who
    await open_accounts(username, first, **scope)
    answer = await sign_in(console, username, first)
    assert answer.status_code == 303 and answer.headers["location"] == "/password"
    form = await console.get("/password")
    done = await console.post(
        "/password",
        data={
            "csrf": csrf_of(form.text),
            "current_password": first,
            "new_password": first + "-own",
            "repeat_password": first + "-own",
        },
    )
    assert done.status_code == 303, done.text


def one_time_password(html: str) -> str:
    found = re.search(r"data-one-time-password>([^<]+)<", html)
    assert found, "the page shows no one-time password"
    return found.group(1)


async def test_ops_opens_an_account_whose_one_time_password_shows_once_and_works(
    console: httpx.AsyncClient, open_accounts: Any, console_settings: ConsoleSettings
) -> None:
    await signed_in_as(console, open_accounts, OPS, role="ops")
    form = await console.get("/accounts/new")
    assert form.status_code == 200 and 'name="username"' in form.text
    opened = await console.post(
        "/accounts/new",
        data={
            "csrf": csrf_of(form.text),
            "username": "Wang-Wu",  # lower-cased, as sign-in does
            "display_name": "王五",
            "role": "grid_worker",
            "community": "bairuijing",
            "grid": "g-01",
            "worker_id": "w-99",
            "street": "ignored-for-a-worker",
        },
    )
    assert opened.status_code == 201, opened.text
    password = one_time_password(opened.text)
    assert "wang-wu" in opened.text and password not in str(opened.url)
    assert opened.headers["cache-control"] == "no-store"
    assert await account_events(console_settings, "wang-wu") == ["AccountOpened"]
    # the account's page is current at once (it reads the account's events) and the list follows
    page = await console.get("/accounts/wang-wu")
    assert page.status_code == 200 and "王五" in page.text and "g-01" in page.text
    assert password not in page.text and "ignored-for-a-worker" not in page.text

    async def listed() -> bool:
        return "wang-wu" in (await console.get("/accounts")).text

    await eventually(listed, what="the new account in the list")
    # the new person signs in with it and must choose their own
    async with httpx.AsyncClient(transport=console._transport, base_url="http://testserver") as other:
        first = await sign_in(other, "wang-wu", password)
        assert first.status_code == 303 and first.headers["location"] == "/password"
    # the same username again is refused beside its field
    again = await console.post(
        "/accounts/new",
        data={"csrf": csrf_of(form.text), "username": "wang-wu", "display_name": "又一个", "role": "ops"},
    )
    assert again.status_code == 409 and 'id="username-error"' in again.text


async def test_a_secretary_cannot_open_a_street_admin_account_nor_one_in_another_community(
    console: httpx.AsyncClient, open_accounts: Any
) -> None:
    await signed_in_as(console, open_accounts, SECRETARY, role="secretary", community="bairuijing")
    form = await console.get("/accounts/new")
    csrf = csrf_of(form.text)
    street = await console.post(
        "/accounts/new",
        data={"csrf": csrf, "username": "jd-new", "display_name": "街道", "role": "street_admin", "street": "znl"},
    )
    assert street.status_code == 403
    assert 'role="alert"' in street.text and "无权管理" in street.text
    elsewhere = await console.post(
        "/accounts/new",
        data={"csrf": csrf, "username": "sec-2", "display_name": "外社区", "role": "secretary", "community": "other"},
    )
    assert elsewhere.status_code == 403
    # a grid worker of her own community she may open
    ok = await console.post(
        "/accounts/new",
        data={
            "csrf": csrf,
            "username": "zhao-liu",
            "display_name": "赵六",
            "role": "grid_worker",
            "community": "bairuijing",
            "grid": "g-02",
            "worker_id": "w-02",
        },
    )
    assert ok.status_code == 201, ok.text
    # a missing scope field is named
    missing = await console.post(
        "/accounts/new",
        data={
            "csrf": csrf,
            "username": "qian-qi",
            "display_name": "钱七",
            "role": "grid_worker",
            "community": "bairuijing",
        },
    )
    assert missing.status_code == 422 and 'id="grid-error"' in missing.text


async def test_the_secretary_sees_only_her_communitys_accounts(console: httpx.AsyncClient, open_accounts: Any) -> None:
    await open_accounts("other-sec", "other-Pass-2026", role="secretary", community="elsewhere")
    await open_accounts(
        "own-worker", "worker-Pass-2026", role="grid_worker", community="bairuijing", grid="g", worker_id="w"
    )
    await signed_in_as(console, open_accounts, SECRETARY, role="secretary", community="bairuijing")

    async def listed() -> str | None:
        text = (await console.get("/accounts")).text
        return text if "own-worker" in text else None

    text = await eventually(listed, what="her community's worker in the list")
    assert "other-sec" not in text
    assert (await console.get("/accounts/other-sec")).status_code == 404
    # her own community's accounts open
    assert (await console.get("/accounts/own-worker")).status_code == 200


async def test_disabling_an_account_ends_its_open_session_at_once(
    console: httpx.AsyncClient, open_accounts: Any, console_settings: ConsoleSettings
) -> None:
    await open_accounts("li-si", "lisi-Pass-2026", role="grid_worker", community="bairuijing", grid="g", worker_id="w4")
    async with httpx.AsyncClient(transport=console._transport, base_url="http://testserver") as worker:
        await sign_in(worker, "li-si", "lisi-Pass-2026")
        form = await worker.get("/password")
        await worker.post(
            "/password",
            data={
                "csrf": csrf_of(form.text),
                "current_password": "lisi-Pass-2026",
                "new_password": "lisi own secret",
                "repeat_password": "lisi own secret",
            },
        )
        assert (await worker.get("/password")).status_code == 200  # signed in (a page that calls no service)
        await signed_in_as(console, open_accounts, SECRETARY, role="secretary", community="bairuijing")
        page = await console.get("/accounts/li-si")
        # a form without its token changes nothing
        forged = await console.post("/accounts/li-si/enabled", data={"enabled": "0", "reason": "left_post"})
        assert forged.status_code == 403
        disabled = await console.post(
            "/accounts/li-si/enabled", data={"csrf": csrf_of(page.text), "enabled": "0", "reason": "left_post"}
        )
        assert disabled.status_code == 303 and disabled.headers["location"] == "/accounts/li-si?done=disabled"
        after = await worker.get("/password")
        assert after.status_code == 303 and after.headers["location"].startswith("/login")
        assert (await sign_in(worker, "li-si", "lisi own secret")).status_code == 401
        assert (await account_events(console_settings, "li-si"))[-2:] == ["AccountDisabled", "AccountSignInFailed"]
        shown = await console.get("/accounts/li-si?done=disabled")
        assert "已停用" in shown.text

        async def logged() -> bool:
            return "离岗" in (await console.get("/accounts/li-si")).text  # the reason, from the log

        await eventually(logged, what="the disabling in the account's log")
        enabled = await console.post(
            "/accounts/li-si/enabled", data={"csrf": csrf_of(page.text), "enabled": "1", "reason": "returned"}
        )
        assert enabled.status_code == 303
        assert (await sign_in(worker, "li-si", "lisi own secret")).status_code == 303


async def test_a_reset_shows_a_new_one_time_password_once_and_ends_the_sessions(
    console: httpx.AsyncClient, open_accounts: Any
) -> None:
    await open_accounts("sun-ba", "sunba-Pass-2026", role="secretary", community="bairuijing")
    async with httpx.AsyncClient(transport=console._transport, base_url="http://testserver") as other:
        await sign_in(other, "sun-ba", "sunba-Pass-2026")
        assert (await other.get("/password")).status_code == 200
        await signed_in_as(console, open_accounts, OPS, role="ops")
        page = await console.get("/accounts/sun-ba")
        reset = await console.post("/accounts/sun-ba/password", data={"csrf": csrf_of(page.text)})
        assert reset.status_code == 200
        password = one_time_password(reset.text)
        assert (await other.get("/password")).status_code == 303  # her session ended
        assert (await sign_in(other, "sun-ba", "sunba-Pass-2026")).status_code == 401
        fresh = await sign_in(other, "sun-ba", password)
        assert fresh.status_code == 303 and fresh.headers["location"] == "/password"
    # ops may change her role and scope; a bad scope is named beside its field
    bad = await console.post(
        "/accounts/sun-ba/role", data={"csrf": csrf_of(page.text), "role": "street_admin", "street": "no spaces"}
    )
    assert bad.status_code == 422 and 'id="street-error"' in bad.text
    moved = await console.post(
        "/accounts/sun-ba/role", data={"csrf": csrf_of(page.text), "role": "street_admin", "street": "zhongnanlu"}
    )
    assert moved.status_code == 303
    assert "街道管理员" in (await console.get("/accounts/sun-ba")).text
