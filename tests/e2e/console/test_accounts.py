"""Accounts in a browser: ops opens one for a new grid worker, who signs in with its one-time
password and chooses their own; a disabled account's open session ends at once; a secretary cannot
open a street admin's account; each page fits a phone."""

from __future__ import annotations

from typing import Any

from services.console.provisioning import add_account
from shared.events.console import Scope

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll, sign_in

OPS = ("e2e-ops", "运维值班", "ops-e2e-Pass-2026")


async def open_as_ops(open_as: Opener, site: Site, **kwargs: Any) -> Any:
    """The demo has no ops account: open one (ready to use) and sign in with it."""
    username, name, password = OPS
    try:
        await add_account(username, name, Scope(role="ops"), password, settings=site.settings, one_time=False)
    except Exception as err:  # opened by an earlier test of this session
        assert "taken" in str(err), err
    page = await open_as(None, **kwargs)
    await sign_in(page, username, password)
    return page


async def test_ops_opens_an_account_for_a_new_grid_worker_who_chooses_their_own_password(
    open_as: Opener, site: Site
) -> None:
    worker = site.demo.plan.workers[1]
    ops = await open_as_ops(open_as, site)
    assert ops.url.endswith("/accounts")
    await ops.get_by_role("link", name="开设账号").click()
    await ops.get_by_label("用户名").fill("e2e-new-worker")
    await ops.get_by_label("姓名").fill("新网格员")
    await ops.get_by_label("角色").select_option("grid_worker")
    await ops.get_by_label("社区", exact=True).fill("bairuijing")
    await ops.get_by_label("网格", exact=True).fill(worker.grid_id)
    await ops.get_by_label("网格员编号").fill(worker.worker_id)
    await ops.get_by_role("button", name="开设").click()
    await ops.get_by_role("heading", name="账号已开设").wait_for()
    password = (await ops.locator("[data-one-time-password]").inner_text()).strip()
    assert len(password) == 12 and password not in ops.url
    # the new person, on another browser, signs in with it and must choose their own
    person = await open_as(None)
    await sign_in(person, "e2e-new-worker", password)
    assert person.url.endswith("/password")
    await person.get_by_label("当前密码").fill(password)
    await person.get_by_label("新密码", exact=True).fill("my own grid secret")
    await person.get_by_label("再次输入新密码").fill("my own grid secret")
    await person.get_by_role("button", name="保存").click()
    await person.wait_for_url("**/board")
    # ops sees the sign-in and the password chosen in the account's log
    await ops.goto("/accounts/e2e-new-worker")
    log = ops.locator("#account-log")
    for _ in range(40):
        if "首次登录自设" in await log.inner_text():
            break
        await ops.wait_for_timeout(250)
        await ops.reload()
    text = await log.inner_text()
    assert "登录" in text and "首次登录自设" in text and "开设" in text


async def test_a_disabled_accounts_open_session_ends_at_once(open_as: Opener, site: Site) -> None:
    worker = site.demo.plan.workers[2]
    scope = Scope(role="grid_worker", community="bairuijing", grid=worker.grid_id, worker_id=worker.worker_id)
    await add_account("e2e-leaving", "将离岗网格员", scope, "leaving-Pass-2026", settings=site.settings, one_time=False)
    person = await open_as(None)
    await sign_in(person, "e2e-leaving", "leaving-Pass-2026")
    assert person.url.endswith("/board")
    secretary = await open_as("shuji")
    secretary.on("dialog", lambda dialog: dialog.accept())
    await secretary.goto("/accounts/e2e-leaving")
    await secretary.get_by_label("原因").select_option("left_post")
    await secretary.get_by_role("button", name="停用账号").click()
    await secretary.get_by_text("账号已停用，其会话已结束").wait_for()
    await person.goto("/board")
    assert "/login" in person.url


async def test_a_secretary_cannot_open_a_street_admin_account(open_as: Opener) -> None:
    page = await open_as("shuji")
    await page.goto("/accounts/new")
    await page.get_by_label("用户名").fill("e2e-street-2")
    await page.get_by_label("姓名").fill("街道新管理员")
    await page.get_by_label("角色").select_option("street_admin")
    await page.get_by_label("街道", exact=True).fill("zhongnanlu")
    await page.get_by_role("button", name="开设").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "无权管理" in await alert.inner_text()
    await page.goto("/accounts")
    assert "e2e-street-2" not in await page.locator("#account-list").inner_text()


async def test_the_accounts_pages_fit_a_phone(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji", viewport=PHONE)
    for path in ("/accounts", "/accounts/new", "/accounts/wanggeyuan"):
        await page.goto(path)
        await page.get_by_role("heading", level=1).wait_for()
        assert await has_no_horizontal_scroll(page), path
    await page.screenshot(path="/tmp/c-directory-account-phone.png", full_page=True)
