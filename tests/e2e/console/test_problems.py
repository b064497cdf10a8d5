"""The problem workbench in a real browser: a problem worked from reported to closed by the secretary
while the police desk acknowledges and resolves it in its own browser; the queue's filters kept in
the URL, a new problem appearing without a reload, the shortlist and bulk assignment; an agency
refused another agency's problem; a redaction kept in the timeline; every page fitting a phone.

Each test reports its own problems through the issues API (a token minted from the site's settings)
so that no other test's problem is touched."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from shared.auth import mint_token

from . import reuse
from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll


@pytest.fixture
async def signed(open_as: Opener, browser: Any, site: Site) -> AsyncIterator[Opener]:
    """Pages signed in once per account for the session (the console rate-limits sign-ins)."""
    async for opener in reuse.pages(open_as, browser, site):
        yield opener


COMMUNITY = "bairuijing"


def _token(site: Site, role: str = "secretary", **scope: str) -> dict[str, str]:
    claims = {"community": COMMUNITY, **scope}
    return {"Authorization": f"Bearer {mint_token(site.settings, role=role, sub=f'test-{role}', **claims)}"}


async def _call(site: Site, method: str, path: str, body: Any = None, role: str = "secretary", **scope: str) -> Any:
    async with httpx.AsyncClient(base_url=site.services["issues"], timeout=15) as client:
        r = await client.request(method, path, json=body, headers=_token(site, role, **scope))
        assert r.status_code in (200, 201), f"{method} {path} → {r.status_code} {r.text}"
        return r.json()


async def report(site: Site, category: str, subcategory: str, severity: str = "medium", **extra: Any) -> str:
    """A fresh problem of the secretary's, reported through the issues API; its id."""
    issue_id = f"is-e2e-{uuid.uuid4().hex[:12]}"
    body = {
        "issue_id": issue_id,
        "category": category,
        "subcategory": subcategory,
        "severity": severity,
        "description": f"e2e {subcategory} problem {issue_id}",
        **extra,
    }
    await _call(site, "POST", f"/v1/communities/{COMMUNITY}/issues", body)
    return issue_id


async def issue(site: Site, issue_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await _call(site, "GET", f"/v1/communities/{COMMUNITY}/issues/{issue_id}")
    return found["issue"]


async def until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 20) -> Any:
    """Poll ``check`` until it answers something truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def reload_until(page: Any, locator: Callable[[], Any], what: str, seconds: float = 20) -> Any:
    """Reload the page until ``locator()`` finds something (what another service does arrives later)."""

    async def found() -> Any:
        await page.reload()
        target = locator()
        return target if await target.count() else None

    return await until(found, what, seconds)


async def no_missing_labels(page: Any) -> None:
    assert "⟨" not in await page.content(), "a label key has no text"


async def test_a_problem_is_worked_from_reported_to_closed_while_the_police_desk_acknowledges(
    signed: Opener, site: Site
) -> None:
    # a critical conflict goes to the police at once (escalation.toml: critical_conflict_to_police),
    # and notify pages the police with an acknowledgement asked (routing.toml: noise rules)
    problem = await report(site, "conflicts_disputes", "noise", "critical")
    await until(lambda: _target(site, problem), "the escalation to the police")

    secretary = await signed("shuji")
    await secretary.goto(f"/problems/{problem}")
    await secretary.get_by_role("heading", name=f"问题 {problem}").wait_for()
    await no_missing_labels(secretary)
    # reported: accept and escalate are offered; resolve, verify and close are not
    assert await secretary.get_by_role("button", name="受理").count() == 1
    assert await secretary.get_by_role("button", name="办结").count() == 0
    assert await secretary.get_by_role("button", name="核查").count() == 0
    await secretary.get_by_role("button", name="受理").click()
    await secretary.get_by_role("status").filter(has_text="已受理").wait_for()

    await secretary.get_by_label("处置人", exact=True).select_option("police:zhongnanlu-police")
    await secretary.get_by_label("备注").fill("the grid worker goes with the community officer")
    await secretary.get_by_role("button", name="派遣", exact=True).click()
    await secretary.get_by_role("status").filter(has_text="已派遣").wait_for()

    # the police desk, in its own browser, sees the problem, acknowledges its notification, resolves it
    police = await signed("paichusuo")
    await police.goto(f"/problems/{problem}")
    await police.get_by_role("heading", name=f"问题 {problem}").wait_for()
    ack = await reload_until(police, lambda: police.get_by_role("button", name="确认收到"), "the police notification")
    await ack.first.click()
    await police.get_by_role("status").filter(has_text="已确认收到").wait_for()
    assert await police.get_by_text("已确认", exact=True).count() >= 1
    resolution = police.get_by_label("处理结果")
    assert "调解" in await resolution.input_value()  # the category's template, in the page's language
    await resolution.fill("经民警和网格员上门调解，双方已达成一致：晚十点后不再使用麦克风。")
    await police.get_by_role("button", name="反馈处置结果").click()
    await police.get_by_role("status").filter(has_text="已反馈处置结果").wait_for()
    # nothing else is the agency's to do on it now
    assert await police.get_by_role("button", name="办结").count() == 0

    # the secretary's open page hears of the resolution without a reload
    timeline = secretary.get_by_role("region", name="办理经过")
    await timeline.get_by_text("处置反馈", exact=True).wait_for(timeout=15_000)
    await secretary.reload()
    await secretary.get_by_role("radio", name="满意", exact=True).check()
    await secretary.get_by_label("满意度（1–5）").select_option("5")
    await secretary.get_by_role("button", name="核查").click()
    await secretary.get_by_role("status").filter(has_text="已核查").wait_for()
    await secretary.get_by_role("button", name="办结").click()
    await secretary.get_by_role("status").filter(has_text="已办结").wait_for()

    timeline = secretary.locator("ol.timeline")
    steps = [await li.get_attribute("data-event") for li in await timeline.locator("li").all()]
    for step in ("IssueReported", "IssueEscalated", "IssueAccepted", "IssueAssigned", "IssueResolved"):
        assert step in steps, steps
    assert steps[-2:] == ["IssueVerified", "IssueClosed"], steps
    text = await timeline.inner_text()
    assert "派出所 zhongnanlu-police" in text  # the assignment, in words
    assert "paichusuo" in text  # the police desk's resolution, by the person who gave it
    # the secretary sees the police's acknowledgement beside the notification
    assert await secretary.get_by_text("已确认", exact=True).count() >= 1
    assert (await issue(site, problem))["status"] == "closed"


async def _target(site: Site, problem: str) -> bool:
    return (await issue(site, problem)).get("target") == "police"


async def test_the_queue_keeps_its_filters_in_the_url_and_shows_a_new_problem_live(signed: Opener, site: Site) -> None:
    page = await signed("shuji")
    await page.goto("/problems")
    await page.get_by_label("状态").select_option("open")
    await page.get_by_label("类别").select_option("livelihood_services")
    await page.get_by_label("排序").select_option("newest")
    await page.get_by_role("button", name="筛选").click()
    await page.wait_for_url("**/problems?*")
    assert "state=open" in page.url and "category=livelihood_services" in page.url and "sort=newest" in page.url
    # the form shows the filters it came from (a reload or a shared link shows the same)
    await page.reload()
    assert await page.get_by_label("类别").input_value() == "livelihood_services"
    assert await page.get_by_label("状态").input_value() == "open"
    await no_missing_labels(page)
    await page.get_by_text("实时更新中").wait_for()  # the live stream is open

    fresh = await report(site, "livelihood_services", "elderly_care", "low")
    # no reload: the live region fetches the queue again when the issues change
    await page.get_by_role("link", name=fresh).wait_for(timeout=15_000)
    assert "category=livelihood_services" in page.url


async def test_checked_problems_go_on_the_shortlist_and_are_assigned_together(signed: Opener, site: Site) -> None:
    first = await report(site, "environmental_sanitation", "garbage", "low")
    second = await report(site, "environmental_sanitation", "garbage", "low")
    for problem in (first, second):
        await _call(site, "POST", f"/v1/communities/{COMMUNITY}/issues/{problem}/accept", {"version": 1})
    worker = site.demo.plan.workers[0].worker_id

    page = await signed("shuji")
    await page.goto("/problems?state=accepted&category=environmental_sanitation")
    await page.get_by_label(f"选择问题 {first}").first.check()
    await page.get_by_role("button", name="加入待办清单").click()
    await page.get_by_role("status").filter(has_text="已加入待办清单").wait_for()
    shortlist = page.get_by_role("region", name="待办清单")
    assert await shortlist.get_by_role("link", name=first).count() == 1
    # the shortlist's problem stays checked; check the second one too and assign both to one worker
    await page.get_by_label(f"选择问题 {second}").first.check()
    await page.get_by_label("处置人", exact=True).select_option(f"worker:{worker}")
    await page.get_by_role("button", name="派遣勾选的问题").click()
    await page.get_by_role("status").filter(has_text="已派遣").wait_for()
    for problem in (first, second):
        found = await issue(site, problem)
        assert found["status"] == "assigned" and found["assignees"][-1]["id"] == worker
    assert await page.get_by_role("region", name="待办清单").count() == 0  # assigned: off the shortlist


async def test_nothing_checked_is_said_beside_the_list(signed: Opener) -> None:
    page = await signed("shuji")
    await page.goto("/problems")
    await page.get_by_role("button", name="派遣勾选的问题").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "请先勾选至少一个问题" in await alert.inner_text()


async def test_an_agency_cannot_open_another_agencys_problem(signed: Opener, site: Site) -> None:
    # a safety hazard goes to property management (escalation.toml), never to the police
    hazard = await report(site, "safety_hazards", "ebike_charging", "medium")

    async def routed() -> bool:
        return (await issue(site, hazard)).get("target") == "property_management"

    await until(routed, "the escalation to property management")
    police = await signed("paichusuo")
    answer = await police.goto(f"/problems/{hazard}")
    assert answer.status in (403, 404)
    await police.get_by_role("alert").wait_for()
    assert "e2e ebike_charging problem" not in await police.locator("main").inner_text()
    # the police desk lands on its queue, which does not list it
    await police.goto("/")
    await police.wait_for_url("**/problems")
    await police.get_by_role("heading", name="问题处置", exact=False).first.wait_for()
    assert await police.get_by_role("link", name=hazard).count() == 0

    property_desk = await signed("wuye")
    answer = await property_desk.goto(f"/problems/{hazard}")
    assert answer.status == 200
    await property_desk.get_by_role("heading", name=f"问题 {hazard}").wait_for()


async def test_the_secretary_redacts_what_the_public_feed_shows_and_the_timeline_keeps_it(
    signed: Opener, site: Site
) -> None:
    problem = await report(site, "public_facilities", "lighting", "low", photos=["https://photos.example/lamp.jpg"])
    page = await signed("shuji")
    await page.goto(f"/problems/{problem}")
    assert await page.get_by_role("img", name=f"问题 {problem} 的第 1 张照片").count() == 1
    await page.get_by_label("公开显示的描述（留空则不变）").fill("楼道灯不亮")
    await page.get_by_label("不公开任何照片").check()
    await page.get_by_role("form", name="公开前脱敏").get_by_label("原因").fill("描述中有住户姓名")
    await page.get_by_role("button", name="公开前脱敏").click()
    await page.get_by_role("status").filter(has_text="已对公开内容脱敏").wait_for()
    redacted = page.locator("ol.timeline li[data-event='IssueRedacted']")
    assert "描述中有住户姓名" in await redacted.inner_text()
    assert "楼道灯不亮" in await redacted.inner_text()
    assert "1 张照片不公开" in await page.locator("main").inner_text()


async def test_a_refused_action_is_said_beside_its_field(signed: Opener, site: Site) -> None:
    problem = await report(site, "public_facilities", "facilities", "low")
    page = await signed("shuji")
    await page.goto(f"/problems/{problem}")
    # the issue moves on in the meantime: the page's version is stale, the service says so
    await _call(site, "POST", f"/v1/communities/{COMMUNITY}/issues/{problem}/accept", {"version": 1})
    await page.get_by_role("button", name="受理").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.count() >= 1
    assert await page.get_by_role("heading", name=f"问题 {problem}").count() == 1


async def test_a_12345_work_order_is_resolved_with_the_feedback_template_and_left_to_the_hotline_to_close(
    signed: Opener, site: Site
) -> None:
    from datetime import timedelta

    from shared.events import now

    order_no = f"E2E{uuid.uuid4().hex[:10].upper()}"
    order = {
        "order_no": order_no,
        "request": "the lift in building 3 has stopped between floors again",
        "category": "public_facilities",
        "subcategory": "lift",
        "response_deadline": (now() + timedelta(hours=2)).isoformat(),
        "resolution_deadline": (now() + timedelta(days=3)).isoformat(),
    }
    answer = await _call(site, "POST", f"/v1/communities/{COMMUNITY}/hotline/orders", order, role="hotline")
    problem, version = answer["issue_id"], answer["issue"]["version"]
    out = await _call(site, "POST", f"/v1/communities/{COMMUNITY}/issues/{problem}/accept", {"version": version})
    body = {"version": out["version"], "assignee_kind": "worker", "assignee_id": site.demo.plan.workers[1].worker_id}
    await _call(site, "POST", f"/v1/communities/{COMMUNITY}/issues/{problem}/assign", body)

    page = await signed("shuji")
    await page.goto(f"/problems/{problem}")
    assert order_no in await page.locator("main").inner_text()
    feedback = await page.get_by_label("处理结果").input_value()
    assert "感谢您的监督" in feedback  # the category's feedback to the hotline, not its resolution text
    await page.get_by_label("处理结果").fill("电梯已由物业维修完毕，恢复运行，感谢您的监督。")
    await page.get_by_role("button", name="反馈处置结果").click()
    await page.get_by_role("status").filter(has_text="已反馈处置结果").wait_for()
    # the hotline's call-back verifies and closes a work order: no such buttons here
    assert await page.get_by_role("button", name="核查").count() == 0
    assert await page.get_by_role("button", name="办结").count() == 0
    assert await page.get_by_role("button", name="重新办理").count() == 1


async def test_the_workbench_fits_a_phone(signed: Opener, site: Site) -> None:
    problem = await report(site, "conflicts_disputes", "parking", "low")
    for username in ("shuji", "jiedao", "wanggeyuan"):
        page = await signed(username, viewport=PHONE)
        await page.goto("/problems")
        await page.get_by_role("heading", name="问题处置", exact=False).first.wait_for()
        await no_missing_labels(page)
        assert await has_no_horizontal_scroll(page), username
    page = await signed("shuji", viewport=PHONE)
    await page.goto(f"/problems/{problem}")
    await page.get_by_role("heading", name=f"问题 {problem}").wait_for()
    assert await has_no_horizontal_scroll(page)
    # the street office reads a community's problem and may only escalate it
    street = await signed("jiedao", viewport=PHONE)
    await street.goto(f"/problems/{problem}?community={COMMUNITY}")
    await street.get_by_role("heading", name=f"问题 {problem}").wait_for()
    assert await street.get_by_role("button", name="升级上报").count() == 1
    assert await street.get_by_role("button", name="受理").count() == 0
    assert await has_no_horizontal_scroll(street)
    police = await signed("paichusuo", viewport=PHONE)
    await police.goto("/problems")
    assert await has_no_horizontal_scroll(police)
