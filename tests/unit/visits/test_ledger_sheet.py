"""Reading a ledger sheet: each bad row refused with its line and reason, whatever the file holds."""

from __future__ import annotations

from services.visits.ledger import SheetLimits, parse_upload


def test_a_control_character_in_a_cell_refuses_that_row_alone() -> None:
    csv = b"household_id,building,name\nh1,b1,Wang\th\nh2,b1,bad\x0bname\nh3,b1,Li\n"
    sheet = parse_upload(csv, "ledger.csv", SheetLimits(max_rows=100))
    assert [r.household_id for r in sheet.rows] == ["h1", "h3"]
    assert [(r.line, r.field, r.reason) for r in sheet.rejected] == [(3, "name", "name holds a control character")]


def test_a_sheet_declaring_sixteen_thousand_columns_is_read_to_its_first_sixty_four() -> None:
    import io

    from openpyxl import Workbook

    from services.visits.ledger import MAX_COLUMNS, read_table

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["building", "unit", "room"])
    sheet.append(["b1", "1", "101"])
    sheet.cell(row=2, column=16_000, value="far out")  # the sheet's dimension is now A1:WQJ2
    buffer = io.BytesIO()
    book.save(buffer)
    lines = list(read_table(buffer.getvalue(), "ledger.xlsx"))
    assert [len(cells) for _, cells in lines] == [MAX_COLUMNS, MAX_COLUMNS]  # not 16,000 each
    assert lines[0][1][:4] == ["building", "unit", "room", ""] and lines[1][1][:3] == ["b1", "1", "101"]
