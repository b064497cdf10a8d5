"""The community's plan in a browser: every building of the directory drawn (no internet needed),
each coloured by its open problems — checked against the issues service's own list — or, switched,
by this month's visit coverage, and each a link to its households."""

from __future__ import annotations

from typing import Any

import httpx

from shared.auth import mint_token

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll

PROBLEM_BUILDING = "p2b13"  # this test reports a problem here


async def open_problems_by_building(site: Site) -> dict[str, int]:
    token = mint_token(site.settings, role="secretary", sub="map-test", community="bairuijing")
    async with httpx.AsyncClient(base_url=site.services["issues"], headers={"Authorization": f"Bearer {token}"}) as c:
        answer = await c.get("/v1/communities/bairuijing/issues", params={"open": "true", "limit": 1000})
        answer.raise_for_status()
    counts: dict[str, int] = {}
    for issue in answer.json()["issues"]:
        building = (issue.get("place") or {}).get("building")
        if building:
            counts[building] = counts.get(building, 0) + 1
    return counts


async def report_problem(site: Site, building: str) -> None:
    token = mint_token(site.settings, role="secretary", sub="map-test", community="bairuijing")
    async with httpx.AsyncClient(base_url=site.services["issues"], headers={"Authorization": f"Bearer {token}"}) as c:
        answer = await c.post(
            "/v1/communities/bairuijing/issues",
            json={
                "issue_id": "is-map-test-1",
                "category": "public_facilities",
                "description": "a broken lamp by the entrance",
                "place": {"compound": "百瑞景", "phase": building[1], "building": building},
            },
        )
        assert answer.status_code in (200, 201), answer.text


async def test_the_map_shows_every_building_and_colours_those_with_open_problems(open_as: Opener, site: Site) -> None:
    await report_problem(site, PROBLEM_BUILDING)
    page = await open_as("shuji")
    await page.goto("/map")
    plan = page.get_by_role("group", name="小区平面示意图")
    await plan.wait_for()
    buildings = {b.building_id for b in site.demo.bairuijing.buildings}
    links = plan.get_by_role("link")
    # the issue just reported reaches the issues read model a moment later: poll the page, not a sleep
    for _ in range(50):
        if await page.get_attribute(f"[data-building='{PROBLEM_BUILDING}']", "data-band") != "ok":
            break
        await page.wait_for_timeout(200)
        await page.reload()
    expected = await open_problems_by_building(site)
    assert expected.get(PROBLEM_BUILDING, 0) >= 1
    drawn: dict[str, tuple[str, int]] = {}
    for i in range(await links.count()):
        link = links.nth(i)
        drawn[await link.get_attribute("data-building")] = (
            await link.get_attribute("data-band"),
            int(await link.get_attribute("data-problems")),
        )
    assert set(drawn) == buildings  # every building of the directory, once
    for building, (band, count) in drawn.items():
        assert count == expected.get(building, 0), building
        assert (band != "ok") == (count > 0), building  # coloured exactly where problems are open
    assert sum(1 for band, _ in drawn.values() if band != "ok") >= 1
    # each building names itself and its problems, and leads to its households
    link = plan.get_by_role("link", name=f"{PROBLEM_BUILDING[1]}期 {int(PROBLEM_BUILDING[3:])}栋", exact=False).first
    assert "件未结问题" in (await link.get_attribute("aria-label") or "")
    await link.click()
    await page.wait_for_url(f"**/households?building={PROBLEM_BUILDING}")
    await page.get_by_role("heading", name="住户台账").wait_for()


async def test_the_map_switches_to_visit_coverage(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji")
    await page.goto("/map")
    await page.get_by_role("link", name="按本月走访覆盖率").click()
    await page.wait_for_url("**by=coverage")
    plan = page.get_by_role("group", name="小区平面示意图")
    await plan.wait_for()
    await page.get_by_text("覆盖率 90% 及以上").wait_for()  # the legend tells the bands
    labels = [await plan.get_by_role("link").nth(i).get_attribute("aria-label") for i in range(3)]
    assert all("本月入户走访" in (label or "") for label in labels)
    bands = {await plan.get_by_role("link").nth(i).get_attribute("data-band") for i in range(80)}
    assert bands <= {"ok", "warn", "bad", "none"}


async def test_the_map_fits_a_phone(open_as: Opener) -> None:
    page: Any = await open_as("shuji", viewport=PHONE)
    await page.goto("/map")
    await page.get_by_role("group", name="小区平面示意图").wait_for()
    assert await has_no_horizontal_scroll(page)
