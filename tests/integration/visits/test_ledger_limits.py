"""A ledger import cannot exhaust memory or block the service (#15 item 3): an XLSX whose parts
inflate past the caps (a zip bomb) is refused from its zip directory before anything inflates,
a file over the row limit is refused whole, and the parse runs off the event loop."""

from __future__ import annotations

import io
import zipfile

import httpx
from openpyxl import Workbook

from services.visits.app import build_app
from services.visits.settings import VisitsSettings
from shared.settings import Settings
from tests.harness import auth, running

IMPORT = "/v1/communities/bairuijing/ledger/import"


def workbook(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def bomb(shared_strings_bytes: int) -> bytes:
    """A real workbook whose sharedStrings.xml is ``shared_strings_bytes`` of one string repeated:
    a few KiB on the wire, deflated a thousand to one."""
    plain = workbook([["building", "unit", "room", "name"], ["p4-b5", "1", "101", "王五"]])
    item = b"<si><t>" + b"a" * 1000 + b"</t></si>"
    strings = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    strings += item * (shared_strings_bytes // len(item)) + b"</sst>"
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for member in src.infolist():
            body = src.read(member)
            # openpyxl writes strings inline: declare a shared-strings part, as Excel writes one.
            if member.filename == "[Content_Types].xml":
                body = body.replace(b"</Types>", SHARED_STRINGS_TYPE + b"</Types>")
            elif member.filename == "xl/_rels/workbook.xml.rels":
                body = body.replace(b"</Relationships>", SHARED_STRINGS_REL + b"</Relationships>")
            dst.writestr(member.filename, body, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        dst.writestr("xl/sharedStrings.xml", strings, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


SHARED_STRINGS_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
SHARED_STRINGS_REL = (
    b'<Relationship Id="rIdShared" Target="sharedStrings.xml" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
)


async def post(client: httpx.AsyncClient, settings: Settings, name: str, content: bytes) -> httpx.Response:
    sec = auth(settings, "secretary", community="bairuijing")
    return await client.post(IMPORT, headers=sec, files={"file": (name, content)})


async def test_a_zip_bomb_workbook_is_refused_before_it_inflates(settings: Settings) -> None:
    s = VisitsSettings(
        **{
            **settings.model_dump(),
            "import_max_shared_strings_bytes": 1024 * 1024,
            "import_max_inflated_bytes": 3 * 1024 * 1024,
        }
    )
    async with running(build_app(s)) as client:
        strings = bomb(2 * 1024 * 1024)
        assert len(strings) < 64 * 1024  # small on the wire
        r = await post(client, s, "ledger.xlsx", strings)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == "file" and "shared strings inflate to" in error["message"], error
        # Within the shared strings' cap, but over the workbook's.
        r = await post(client, s, "ledger.xlsx", bomb(int(3.5 * 1024 * 1024)))
        assert r.status_code == 422 and "inflate" in r.json()["error"]["message"], r.text
        s2 = s.model_copy(update={"import_max_shared_strings_bytes": 8 * 1024 * 1024})
    async with running(build_app(s2)) as client:
        r = await post(client, s2, "ledger.xlsx", bomb(int(3.5 * 1024 * 1024)))
        assert r.status_code == 422, r.text
        assert "it inflates to" in r.json()["error"]["message"], r.text


async def test_a_file_over_the_row_limit_is_refused_whole(settings: Settings) -> None:
    s = VisitsSettings(**{**settings.model_dump(), "import_max_rows": 3})
    async with running(build_app(s)) as client:
        rows = "".join(f"p4-b5,1,{100 + i}\n" for i in range(4))
        r = await post(client, s, "ledger.csv", ("building,unit,room\n" + rows).encode())
        assert r.status_code == 422, r.text
        assert r.json()["error"] == {
            "code": "invalid",
            "message": "ledger.csv is refused: it has more than 3 rows",
            "field": "file",
        }
        # Two rows a hundred lines apart: blank lines are no rows, but no sheet needs so many.
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(["building", "unit", "room"])
        sheet.append(["p4-b5", "1", "101"])
        sheet.cell(row=100, column=1, value="p4-b5")
        buffer = io.BytesIO()
        book.save(buffer)
        r = await post(client, s, "ledger.xlsx", buffer.getvalue())
        assert r.status_code == 422 and "more than 6 lines" in r.json()["error"]["message"], r.text
