"""People sign in to the console in a browser: the secretary lands on Today, a wrong password is
said plainly, and a token never shows in a URL."""

from __future__ import annotations

from typing import Any

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll


async def test_the_secretary_signs_in_and_lands_on_today(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji")
    assert page.url.endswith("/today")
    await page.get_by_role("heading", name="今日工作", exact=False).wait_for()
    await page.get_by_role("heading", name="今日 5+1 完成情况").wait_for()
    # every worker of the community is listed with today's progress, each a link to their page
    links = page.get_by_role("link", name=site.demo.plan.workers[0].name)
    assert await links.count() >= 1
    assert "token" not in page.url


async def test_a_wrong_password_is_said_plainly_and_nothing_opens(open_as: Opener) -> None:
    page = await open_as(None)
    await page.goto("/today")
    assert "/login" in page.url  # not signed in: to the form, coming back afterwards
    await page.get_by_label("用户名").fill("shuji")
    await page.get_by_label("密码").fill("not-her-password")
    await page.get_by_role("button", name="登录").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "用户名或密码不正确" in await alert.inner_text()
    assert "/login" in page.url


async def test_the_language_switch_turns_the_labels_english(open_as: Opener) -> None:
    page = await open_as("shuji")
    await page.get_by_role("link", name="切换语言").click()
    await page.get_by_role("heading", name="Today's 5+1 progress").wait_for()
    assert await page.get_attribute("html", "lang") == "en"


async def test_signing_out_ends_the_session(open_as: Opener) -> None:
    page = await open_as("jiedao")
    await page.get_by_role("button", name="退出登录").click()
    await page.wait_for_url("**/login")
    await page.goto("/board")
    assert "/login" in page.url


async def test_today_fits_a_phone(open_as: Opener) -> None:
    page: Any = await open_as("shuji", viewport=PHONE)
    await page.get_by_role("heading", name="今日 5+1 完成情况").wait_for()
    assert await has_no_horizontal_scroll(page)


async def test_five_wrong_passwords_lock_the_account_in_the_browser(open_as: Opener, site: Site) -> None:
    from services.console.provisioning import add_account
    from shared.events.console import Scope

    scope = Scope(role="secretary", community="bairuijing")
    await add_account("e2e-locked", "被锁定的账号", scope, "right-password-1", settings=site.settings, one_time=False)
    page = await open_as(None)
    for attempt in range(5):
        await page.goto("/login")
        await page.get_by_label("用户名").fill("e2e-locked")
        await page.get_by_label("密码").fill(f"wrong-password-{attempt}")
        await page.get_by_role("button", name="登录").click()
        await page.get_by_role("alert").wait_for()
    assert "锁定" in await page.get_by_role("alert").inner_text()
    # now even the right password is refused until the lock ends (or an administrator resets it)
    await page.get_by_label("用户名").fill("e2e-locked")
    await page.get_by_label("密码").fill("right-password-1")
    await page.get_by_role("button", name="登录").click()
    assert "锁定" in await page.get_by_role("alert").inner_text()
    assert "/login" in page.url
