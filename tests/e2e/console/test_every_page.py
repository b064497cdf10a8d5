"""Every main page of the console, as the person it is for, on a desktop and on a phone: it opens,
has a heading, and fits the screen's width.  With ``GRIDWORK_SCREENSHOTS`` naming a folder, each is
saved there too (the README's pictures: ``GRIDWORK_SCREENSHOTS=docs/screenshots``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import DESKTOP, PHONE, Opener, Site, has_no_horizontal_scroll

SCREENSHOTS = os.environ.get("GRIDWORK_SCREENSHOTS")

#: (name, who opens it, path) — ``{worker}``, ``{issue}``, ``{household}`` filled from the demo.
PAGES = [
    ("today", "shuji", "/today"),
    ("board", "shuji", "/board"),
    ("worker", "shuji", "/board/workers/{worker}"),
    ("street", "jiedao", "/board"),
    ("problems", "shuji", "/problems"),
    ("problem", "shuji", "/problems/{issue}"),
    ("agency", "paichusuo", "/problems"),
    ("statistics", "shuji", "/statistics"),
    ("households", "shuji", "/households"),
    ("household", "shuji", "/households/{household}"),
    ("map", "shuji", "/map"),
    ("directory", "shuji", "/directory"),
    ("notifications", "shuji", "/notifications"),
    ("accounts", "shuji", "/accounts"),
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_main_page_opens_and_fits_the_screen(open_as: Opener, site: Site, viewport: dict[str, int]) -> None:
    filled = {
        "worker": site.demo.plan.workers[0].worker_id,
        "issue": site.demo.cases["stairwell clutter"],
        "household": site.demo.rows[-1]["household_id"],
    }
    pages: dict[str, object] = {}
    wide: list[str] = []
    for name, who, path in PAGES:
        page = pages.get(who)
        if page is None:
            page = pages[who] = await open_as(who, viewport=viewport)
        url = path.format(**filled)
        answer = await page.goto(url)  # type: ignore[attr-defined]
        assert answer is not None and answer.status == 200, f"{url} as {who}: {answer.status if answer else None}"
        await page.get_by_role("heading", level=1).first.wait_for()  # type: ignore[attr-defined]
        if not await has_no_horizontal_scroll(page):
            wide.append(url)
        if SCREENSHOTS:
            folder = Path(SCREENSHOTS)  # playwright makes the folder
            tag = "phone" if viewport is PHONE else "desktop"
            await page.screenshot(path=str(folder / f"{name}-{tag}.png"))  # type: ignore[attr-defined]
    assert wide == [], f"pages wider than the screen: {wide}"
