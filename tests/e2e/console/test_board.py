"""The secretary reads the board and drills into a worker: every 5+1 item met or not, and the
records that counted for it; the street office sees its communities side by side."""

from __future__ import annotations

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll


async def test_the_secretary_sees_the_board_and_drills_into_a_worker(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji")
    await page.get_by_role("link", name="评比榜").click()
    await page.get_by_role("heading", name="评优积分榜", exact=False).wait_for()
    # every worker of the plan is ranked on the month's board
    for worker in site.demo.plan.workers[:3]:
        assert await page.get_by_role("link", name=worker.name).count() == 1
    # the year tab keeps the choice in the URL
    await page.get_by_role("link", name="年", exact=True).click()
    assert "period=year" in page.url
    first = site.demo.plan.workers[0]
    await page.get_by_role("link", name=first.name).click()
    await page.get_by_role("heading", name="网格员工作详情", exact=False).wait_for()
    # each period's items: met or not; the households item lists the visits that counted for it
    assert await page.get_by_role("heading", name="年", exact=False).count() >= 1
    statuses = await page.locator("td .badge").all_inner_texts()
    assert statuses and set(statuses) <= {"已完成", "未完成"}
    summaries = page.locator("summary", has_text="计入的记录")
    assert await summaries.count() >= 1
    await summaries.first.click()
    assert await page.locator("ul.records li").count() >= 1


async def test_the_board_exports_as_csv(open_as: Opener) -> None:
    page = await open_as("shuji")
    await page.goto("/board")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="导出 CSV").click()
    saved = await (await download.value).path()
    text = saved.read_text(encoding="utf-8-sig")
    assert text.count("\n") >= 2  # a header and at least one worker


async def test_the_street_office_sees_each_community_of_its_street(open_as: Opener) -> None:
    page = await open_as("jiedao")
    await page.goto("/board")
    await page.get_by_role("heading", name="街道汇总", exact=False).wait_for()
    await page.get_by_role("link", name="百瑞景社区").click()
    await page.get_by_role("heading", name="评优积分榜", exact=False).wait_for()


async def test_the_board_and_a_worker_page_fit_a_phone(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji", viewport=PHONE)
    await page.goto("/board")
    assert await has_no_horizontal_scroll(page)
    await page.goto(f"/board/workers/{site.demo.plan.workers[0].worker_id}")
    assert await has_no_horizontal_scroll(page)
