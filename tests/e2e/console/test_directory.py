"""The directory and its notifications in a browser: the secretary sends property management a test
message and sees it delivered; a dead letter is sent again once its webhook is fixed; the routing
rules read as a table; each page fits a phone."""

from __future__ import annotations

import time
from typing import Any

from services.cli.demo.community import WEBHOOK_SECRETS

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll

PROPERTY = "百瑞景物业服务中心"


async def until_text(page: Any, region: str, text: str, *, timeout: float = 20.0) -> str:
    """Poll the page (reloading it) until ``region`` shows ``text``; its text then."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = await page.locator(region).inner_text()
        if text in shown:
            return shown
        await page.wait_for_timeout(250)  # a poll's interval, not a wait for something to happen
        await page.reload()
    raise AssertionError(f"{region} never showed {text!r}; last: {shown!r}")


async def test_the_secretary_sends_a_test_message_to_property_management_and_sees_it_delivered(
    open_as: Opener, site: Site
) -> None:
    before = len(site.demo.receiver.on("/wecom/send"))
    page = await open_as("shuji")
    await page.goto("/directory")
    await page.get_by_role("heading", name="接收单位").wait_for()
    row = page.locator("#recipients").get_by_role("row").filter(has_text=PROPERTY)
    assert "企业微信群机器人" in await row.inner_text()
    assert "demo-wuye-robot-key" not in await page.content()  # the robot's key: a hint only
    await page.get_by_role("button", name=f"发送测试消息 {PROPERTY}").click()
    await page.wait_for_url("**/directory/recipients/property/tests/*")
    await page.get_by_role("heading", name=f"测试消息 · {PROPERTY}").wait_for()
    await until_text(page, "#test-state", "已送达")
    assert len(site.demo.receiver.on("/wecom/send")) > before  # the demo's robot endpoint took it
    # the test is a notification like any other, with its attempt
    await page.get_by_role("link", name="企业微信群机器人").click()
    await page.get_by_role("heading", name="发送记录").wait_for()
    assert "送达" in await page.locator("#notification").inner_text()
    assert "测试" in await page.locator("#notification").inner_text()


async def test_the_routing_rules_read_as_a_table(open_as: Opener) -> None:
    page = await open_as("shuji")
    await page.goto("/directory")
    rules = page.get_by_role("table").filter(has_text="night_noise_to_police_duty_line")
    text = await rules.inner_text()
    assert "22:00-06:00" in text and "中南路派出所值班室" in text and "紧急" in text


async def test_a_dead_notification_is_sent_again_once_its_webhook_is_fixed(open_as: Opener, site: Site) -> None:
    receiver = site.demo.receiver.url
    page = await open_as("shuji")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto("/directory")
    await page.get_by_role("link", name="新增接收单位").click()
    await page.get_by_label("编号", exact=True).fill("e2e-dead-hook")
    await page.get_by_label("名称", exact=True).fill("测试用城管接口")
    await page.get_by_label("类别", exact=True).select_option("urban_management")
    await page.get_by_label("Webhook URL").fill(f"{receiver}/webhook/e2e-nobody")
    await page.get_by_label("Webhook 签名密钥").fill("a-secret-nobody-knows")
    await page.get_by_role("button", name="保存").click()
    await page.get_by_text("已保存接收单位").wait_for()
    # its endpoint refuses the signature (401): a permanent failure, dead at once
    await page.get_by_role("button", name="发送测试消息 测试用城管接口").click()
    await page.wait_for_url("**/tests/*")
    await until_text(page, "#test-state", "发送失败")
    await page.get_by_role("link", name="Webhook").click()
    await page.get_by_role("heading", name="通知详情").wait_for()
    detail = page.url
    assert "HTTP 401" in await page.locator("#notification").inner_text()
    # the dead letters list holds it
    await page.goto("/notifications?state=dead")
    assert "e2e-dead-hook" in await page.locator("#notification-list").inner_text()
    # the webhook is fixed: the right address and its secret
    await page.goto("/directory/recipients/e2e-dead-hook")
    await page.get_by_label("Webhook URL").fill(f"{receiver}/webhook/urban")
    await page.get_by_label("Webhook 签名密钥").fill(WEBHOOK_SECRETS["urban"])
    await page.get_by_role("button", name="保存").click()
    await page.get_by_text("已保存接收单位").wait_for()
    await page.goto(detail)
    await page.get_by_role("button", name="重新发送").click()
    await page.get_by_text("已重新发送").wait_for()
    await until_text(page, "#notification", "已送达")
    text = await page.locator("#notification").inner_text()
    assert "失败，不再重试" in text  # the first attempt's outcome stays in its history
    # put away: an urban-management entry would also hear of other tests' escalations
    await page.goto("/directory")
    await page.get_by_role("button", name="停用 测试用城管接口").click()
    await page.get_by_text("已停用。").wait_for()


async def test_the_directory_and_notifications_fit_a_phone(open_as: Opener) -> None:
    page: Any = await open_as("shuji", viewport=PHONE)
    for path in ("/directory", "/notifications", "/directory/recipients/new", "/directory/recipients/police-duty"):
        await page.goto(path)
        await page.get_by_role("heading", level=1).wait_for()
        assert await has_no_horizontal_scroll(page), path
    await page.goto("/notifications")
    first = page.locator("#notification-list").get_by_role("link").first
    await first.click()
    await page.get_by_role("heading", name="发送记录").wait_for()
    assert await has_no_horizontal_scroll(page)
    await page.screenshot(path="/tmp/c-directory-notification-phone.png", full_page=True)
