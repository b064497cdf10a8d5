"""Reading a ledger sheet: each bad row refused with its line and reason, whatever the file holds."""

from __future__ import annotations

from services.visits.ledger import parse_upload


def test_a_control_character_in_a_cell_refuses_that_row_alone() -> None:
    csv = b"household_id,building,name\nh1,b1,Wang\th\nh2,b1,bad\x0bname\nh3,b1,Li\n"
    sheet = parse_upload(csv, "ledger.csv", 100)
    assert [r.household_id for r in sheet.rows] == ["h1", "h3"]
    assert [(r.line, r.field, r.reason) for r in sheet.rejected] == [(3, "name", "name holds a control character")]
