"""The ledger in a browser: the secretary searches the households, reveals one's personal data (and
finds her reveal in the audit log under her name), erases another after confirming, and imports a
ledger whose bad lines come back one by one with their reasons; every page fits a phone.

Households used here, and by no other test: buildings ``p2b05`` (revealed) and ``p3b17`` (erased);
the import registers a new household ``p4b20-9-9901``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from services.visits.queries.ledger import EXPORT_COLUMNS

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll

REVEALED_BUILDING, ERASED_BUILDING = "p2b05", "p3b17"


def households_of(site: Site, building: str) -> list[str]:
    """The demo ledger's households of a building, by id (as the list sorts them)."""
    return sorted(h.household_id for h in site.demo.bairuijing.ledger if h.building_id == building)


async def test_the_secretary_reveals_a_household_and_the_reveal_is_in_the_audit_log(
    open_as: Opener, site: Site
) -> None:
    household = households_of(site, REVEALED_BUILDING)[0]
    page = await open_as("shuji")
    await page.goto(f"/households?building={REVEALED_BUILDING}")
    await page.get_by_role("link", name=household, exact=True).first.click()
    await page.get_by_role("heading", name=f"住户 {household}").wait_for()
    # masked: the name is not on the page until asked for, and the page never reveals by a link
    personal = page.get_by_role("heading", name="个人信息", exact=True)
    await personal.wait_for()
    text = await page.inner_text("main")
    assert "••••••" in text
    assert await page.get_by_role("link", name="查看个人信息").count() == 0
    await page.get_by_role("button", name="查看个人信息").click()
    await page.get_by_text("本次查看已记入审计日志", exact=False).wait_for()
    revealed = await page.inner_text("main")
    assert "••••••" not in revealed
    row = next(r for r in site.demo.rows if r.get("household_id") == household)
    assert str(row["name"]) in revealed  # the ledger's own name, decrypted by the visits service
    # a reload of the household's page shows it masked again
    await page.goto(f"/households/{household}")
    assert "••••••" in await page.inner_text("main")

    await page.goto("/audit?kind=reveal")
    entry = page.get_by_role("row").filter(has=page.get_by_role("link", name=household, exact=True)).first
    await entry.wait_for()
    line = await entry.inner_text()
    assert "刘书记" in line and "shuji" in line  # her name, beside her username
    assert "查看" in line and "姓名" in line  # the kind, and the fields by name (never their values)
    assert str(row["name"]) not in line


async def test_the_secretary_erases_a_household_after_confirming(open_as: Opener, site: Site) -> None:
    household = households_of(site, ERASED_BUILDING)[-1]
    page = await open_as("shuji")
    await page.goto(f"/households/{household}")
    await page.get_by_role("link", name="删除个人信息…").click()
    await page.get_by_role("heading", name=f"确认删除个人信息: {household}").wait_for()
    # a wrong id typed: nothing is erased, the form says why
    await page.get_by_label("删除原因").select_option("moved_away")
    await page.get_by_label(f"请输入户编号 {household} 以确认").fill("not-this-one")
    await page.get_by_role("button", name="确认删除").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "不一致" in await alert.inner_text()
    await page.goto(f"/households/{household}")
    assert "已删除个人信息" not in await page.inner_text("h1")
    # confirmed: erased, and the page says so
    await page.get_by_role("link", name="删除个人信息…").click()
    await page.get_by_label("删除原因").select_option("moved_away")
    await page.get_by_label(f"请输入户编号 {household} 以确认").fill(household)
    await page.get_by_role("button", name="确认删除").click()
    await page.wait_for_url(f"**/households/{household}?done=erased")
    await page.get_by_role("status").filter(has_text="个人信息已删除").wait_for()
    assert "已删除个人信息" in await page.inner_text("h1")
    assert await page.get_by_role("button", name="查看个人信息").count() == 0
    # the erasure is in the audit log with its reason
    await page.goto(f"/audit?kind=erasure&household={household}")
    entry = page.get_by_role("row").filter(has=page.get_by_role("link", name=household, exact=True)).first
    await entry.wait_for()
    assert "已搬离" in await entry.inner_text()


def ledger_csv(rows: list[dict[str, str]]) -> bytes:
    """A ledger sheet in the export's columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


async def test_a_ledger_with_bad_lines_is_imported_and_each_bad_line_shows_its_reason(open_as: Opener) -> None:
    sheet = ledger_csv(
        [
            {"building": "p4b20", "unit": "9", "room": "9901", "name": "测试", "phone": "13912345678", "members": "3"},
            {"building": "p4b20", "unit": "9", "room": "9902", "phone": "12345"},
            {"building": "p4 b20", "unit": "9", "room": "9903"},
            {"building": "p4b20", "unit": "9", "room": "9904", "members": "lots"},
        ]
    )
    page = await open_as("shuji")
    await page.goto("/households/import")
    await page.get_by_label("台账文件（CSV 或 XLSX）").set_input_files(
        {"name": "ledger.csv", "mimeType": "text/csv", "buffer": sheet}
    )
    await page.get_by_role("button", name="上传并导入").click()
    await page.get_by_role("heading", name="导入结果", exact=False).wait_for()
    facts = await page.inner_text("dl.facts")
    assert "4" in facts
    table = page.get_by_role("table", name="有误的行")
    rows = table.get_by_role("row")
    assert await rows.count() == 4  # the header and three bad lines
    cells = [await rows.nth(i).inner_text() for i in range(1, 4)]
    assert cells[0].split()[0] == "3" and "电话" in cells[0]
    assert cells[1].split()[0] == "4" and "楼栋" in cells[1]
    assert cells[2].split()[0] == "5" and "人数" in cells[2] and "lots" in cells[2]
    # the good line was registered (the list is a read model: it shows it a moment later)
    await page.goto("/households?q=p4b20-9-9901")
    registered = page.get_by_role("link", name="p4b20-9-9901", exact=True)
    for _ in range(50):
        if await registered.count():
            break
        await page.wait_for_timeout(100)
        await page.reload()
    assert await registered.count() == 1


async def test_an_upload_without_a_file_is_refused_beside_the_field(open_as: Opener) -> None:
    page = await open_as("shuji")
    await page.goto("/households/import")
    await page.get_by_label("台账文件（CSV 或 XLSX）").set_input_files(
        {"name": "empty.csv", "mimeType": "text/csv", "buffer": b""}
    )
    await page.get_by_role("button", name="上传并导入").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "非空" in await alert.inner_text()


async def test_the_households_list_filters_and_shows_the_ledger_gaps(open_as: Opener, site: Site) -> None:
    page = await open_as("shuji")
    await page.goto("/households")
    await page.get_by_role("heading", name="台账完整率").wait_for()
    await page.get_by_label("只看信息不全的").check()
    await page.get_by_role("button", name="筛选").click()
    await page.wait_for_url("**incomplete=true**")
    listed = page.get_by_role("table").first.get_by_role("row")
    assert await listed.count() > 1
    for i in range(1, min(await listed.count(), 6)):
        assert "信息完整" not in await listed.nth(i).inner_text()  # each lists what it lacks
    # a building's gaps name the missing fields of each incomplete household
    incomplete = [h for h in site.demo.bairuijing.ledger if "id_number" not in h.fields_present]
    building = incomplete[0].building_id
    await page.goto(f"/households?building={building}")
    gap = page.get_by_role("listitem").filter(has=page.get_by_role("link", name=incomplete[0].household_id))
    assert "身份证号" in await gap.first.inner_text()


async def test_the_street_office_reads_a_household_but_cannot_tag_or_erase(open_as: Opener, site: Site) -> None:
    household = households_of(site, REVEALED_BUILDING)[1]
    page = await open_as("jiedao")
    await page.goto(f"/households/{household}?community=bairuijing")
    await page.get_by_role("heading", name=f"住户 {household}").wait_for()
    assert await page.get_by_role("button", name="查看个人信息").count() == 1
    assert await page.get_by_label("添加标签").count() == 0
    assert await page.get_by_role("link", name="删除个人信息…").count() == 0


async def test_the_secretary_tags_a_household(open_as: Opener, site: Site) -> None:
    household = households_of(site, REVEALED_BUILDING)[2]
    page = await open_as("shuji")
    await page.goto(f"/households/{household}")
    await page.get_by_label("添加标签").fill("elderly_alone")
    await page.get_by_role("button", name="添加", exact=True).click()
    await page.wait_for_url("**done=tagged")
    await page.get_by_role("button", name="移除标签“独居老人”").click()
    await page.wait_for_url("**done=tagged")
    assert await page.get_by_role("button", name="移除标签“独居老人”").count() == 0
    await page.get_by_label("添加标签").fill("Not A Tag")
    await page.get_by_role("button", name="添加", exact=True).click()
    assert "小写" in await page.get_by_role("alert").inner_text()


async def test_the_household_pages_fit_a_phone(open_as: Opener, site: Site) -> None:
    household = households_of(site, REVEALED_BUILDING)[0]
    page: Any = await open_as("shuji", viewport=PHONE)
    paths = ("/households", f"/households/{household}", f"/households/{household}/erase", "/households/import")
    for path in (*paths, "/audit"):
        await page.goto(path)
        await page.get_by_role("heading", level=1).wait_for()
        assert await has_no_horizontal_scroll(page), path
