"""The 评优表 (points evaluation sheet) a secretary prints: CSV and XLSX of a board.

CSV is written with a UTF-8 byte-order mark so that Excel on a Chinese Windows desktop opens the
Chinese headers correctly; XLSX (openpyxl) has a title row, frozen headers and percentages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from shared.cells import safe_cell

#: (field, header) — the header bilingual, Chinese first as on the printed sheet.
WORKER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "排名 Rank"),
    ("community", "社区 Community"),
    ("worker_id", "网格员 Worker"),
    ("name", "姓名 Name"),
    ("grid_id", "网格 Grid"),
    ("attendance_days", "出勤天数 Attendance days"),
    ("working_days", "工作日 Working days"),
    ("attendance_points", "考勤分 Attendance"),
    ("reception_entries", "接待台账 Reception entries"),
    ("reception_points", "接待分 Reception"),
    ("award_points", "宣传获奖分 Publicity & awards"),
    ("items_met", "完成指标 Items met"),
    ("items_due", "应完成指标 Items due"),
    ("completion", "完成率 Completion"),
    ("quota_points", "指标分 Quota points"),
    ("total", "总分 Total"),
)
COMMUNITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "排名 Rank"),
    ("community", "社区 Community"),
    ("name", "名称 Name"),
    ("workers", "网格员人数 Workers"),
    ("average_total", "人均总分 Average total"),
    ("total", "总分 Total"),
    ("items_met", "完成指标 Items met"),
    ("items_due", "应完成指标 Items due"),
    ("completion", "完成率 Completion"),
    ("rulebook", "规则 Rulebook"),
)


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    present = set().union(*(r.keys() for r in rows)) if rows else {c for c, _ in columns if c != "community"}
    return [(c, h) for c, h in columns if c in present]


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = WORKER_COLUMNS) -> bytes:
    """Rows as CSV (UTF-8 with BOM), one header line."""
    cols = _columns(rows, columns)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([h for _, h in cols])
    for row in rows:
        writer.writerow(["" if row.get(c) is None else safe_cell(row.get(c)) for c, _ in cols])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(sheets: Sequence[tuple[str, str, Sequence[dict[str, Any]], Sequence[tuple[str, str]]]]) -> bytes:
    """An XLSX workbook: per sheet (sheet name, title line, rows, columns)."""
    wb = Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    for name, title, rows, columns in sheets:
        ws = wb.create_sheet(name[:31])
        cols = _columns(rows, columns)
        ws.append([safe_cell(title)])
        ws["A1"].font = Font(bold=True, size=14)
        ws.append([h for _, h in cols])
        for cell in ws[2]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        for row in rows:
            ws.append([safe_cell(row.get(c)) for c, _ in cols])
        for i, (c, h) in enumerate(cols, start=1):
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = max(10, min(28, len(h) + 2))
            if c == "completion":
                for cell in ws[letter][2:]:
                    cell.number_format = "0.0%"
        ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def board_title(board: dict[str, Any]) -> str:
    """The sheet's title line, e.g. "评优积分表 Points evaluation — bairuijing — 2025-10"."""
    who = board.get("name") or board.get("community") or board.get("street")
    return f"评优积分表 Points evaluation — {who} — {board['period']['key']}"


def community_board_file(board: dict[str, Any], fmt: str) -> bytes:
    """A community board as ``csv`` or ``xlsx`` bytes."""
    if fmt == "csv":
        return to_csv(board["workers"])
    return to_xlsx([("评优表", board_title(board), board["workers"], WORKER_COLUMNS)])


def street_board_file(board: dict[str, Any], fmt: str) -> bytes:
    """A street roll-up as ``csv`` (workers) or ``xlsx`` (communities sheet and workers sheet)."""
    if fmt == "csv":
        return to_csv(board["workers"])
    title = board_title(board)
    return to_xlsx(
        [
            ("社区排名", title, board["communities"], COMMUNITY_COLUMNS),
            ("网格员排名", title, board["workers"], WORKER_COLUMNS),
        ]
    )
