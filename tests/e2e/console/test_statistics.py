"""Problem statistics in a real browser: the three rates as figures, a table and server-drawn bars,
tabs by month, category, grid and agency (a street admin: by community), and the CSV download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from . import reuse
from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll


@pytest.fixture
async def signed(open_as: Opener, browser: Any, site: Site) -> AsyncIterator[Opener]:
    """Pages signed in once per account for the session (the console rate-limits sign-ins)."""
    async for opener in reuse.pages(open_as, browser, site):
        yield opener


async def _text(path: Path) -> str:
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


async def test_the_statistics_show_the_three_rates_and_download_as_csv(signed: Opener) -> None:
    page = await signed("shuji")
    await page.goto("/statistics")
    await page.get_by_role("heading", name="问题统计", exact=False).wait_for()
    assert "⟨" not in await page.content()
    main = await page.locator("main").inner_text()
    for rate in ("响应率", "解决率", "满意率", "办结率", "按时办结率"):
        assert rate in main, rate
    # the chart is drawn on the server: an image named by its title, no script needed
    assert await page.get_by_role("img", name="三率对比图").count() == 1
    table = page.get_by_role("table")
    assert await table.get_by_role("row").count() >= 3  # months of the range, and the total
    assert await table.get_by_text("合计").count() == 1

    await page.get_by_role("link", name="按类别").click()
    await page.wait_for_url("**by=category*")
    assert await page.get_by_role("table").get_by_text("矛盾纠纷").count() == 1
    async with page.expect_download() as info:
        await page.get_by_role("link", name="导出 CSV").click()
    download = await info.value
    assert download.suggested_filename.endswith(".csv")
    content = await _text(await download.path())
    header, *lines = content.strip().splitlines()
    assert header.startswith("category,reported,") and "response_rate" in header
    assert lines[-1].startswith("total,")


async def test_a_month_range_is_kept_and_a_bad_one_is_said_by_its_field(signed: Opener) -> None:
    page = await signed("shuji")
    await page.goto("/statistics?by=month&from=2026-01&to=2026-03")
    assert await page.get_by_label("起始月份").input_value() == "2026-01"
    rows = page.get_by_role("table").get_by_role("row")
    assert await rows.count() == 1 + 3 + 1  # the header, three months, the total
    await page.goto("/statistics?by=month&from=2026-05&to=2026-01")
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "起始月份" in await alert.inner_text()


async def test_the_street_admin_compares_the_street_s_communities(signed: Opener) -> None:
    page: Any = await signed("jiedao")
    await page.goto("/statistics")
    await page.get_by_role("link", name="按社区").wait_for()
    table = page.get_by_role("table")
    assert await table.get_by_role("row").count() >= 3  # bairuijing at least, and the total
    async with page.expect_download() as info:
        await page.get_by_role("link", name="导出 CSV").click()
    content = await _text(await (await info.value).path())
    assert content.startswith("community,") and "bairuijing" in content
    # one community of the street, by grid
    await page.get_by_label("社区").select_option("bairuijing")
    await page.get_by_role("button", name="查看").first.click()
    await page.get_by_role("link", name="按网格").click()
    await page.wait_for_url("**by=grid*")
    assert "community=bairuijing" in page.url


async def test_the_statistics_fit_a_phone(signed: Opener) -> None:
    for username in ("shuji", "jiedao"):
        page = await signed(username, viewport=PHONE)
        await page.goto("/statistics")
        await page.get_by_role("heading", name="问题统计", exact=False).wait_for()
        assert await has_no_horizontal_scroll(page), username
