"""The resident basic-information ledger (居民基础信息底册) as communities keep it: a spreadsheet, read.

Communities keep the ledger as a spreadsheet today.  ``gridwork import`` and the upload endpoint
read it from CSV (UTF-8, or GB18030 as Excel saves it in China) or XLSX.  Columns, in any order,
with an English or a Chinese header (case and spaces ignored):

=============  ==========================  ========  ==============================================
column         Chinese headers accepted    required  rule
=============  ==========================  ========  ==============================================
household_id   户编号 / 户号                no        default ``<building>-<unit>-<room>``; ascii id
building       楼栋 / 楼栋编号              yes       a registered building id
unit           单元                        yes*      (*) when there is no household_id
room           房号 / 门牌号                yes*      (*) when there is no household_id
grid           网格                        no        default: the building's grid
name           姓名 / 户主姓名              no        personal, sealed
phone          电话 / 联系电话 / 手机号      no        personal, sealed; mobile or landline
id_number      身份证号 / 证件号码          no        personal, sealed; 18 characters, check digit
address        地址 / 详细地址 / 住址        no        personal, sealed
members        人数 / 家庭人数 / 户籍人数    no        integer 0–50
tags           标签 / 人员类别              no        separated by ``;`` ``,`` ``、`` ``|``; Chinese
                                                     labels (独居老人, 特殊帮扶…) map to tags
=============  ==========================  ========  ==============================================

Each row is validated on its own; every rejected row is reported with its line (the header is
line 1) and the reason.  A household is identified by its natural key (household_id, or
building-unit-room), so importing the same file again registers nothing twice: rows whose
household exists and holds the same data are ``unchanged``, rows whose data changed become a
``HouseholdProfileUpdated``/``HouseholdTagged`` (:mod:`.handlers.ledger` stores a sheet;
:mod:`.queries.ledger` measures completion and exports it).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.events import TOKEN_PATTERN

from .domain.households import PERSONAL_FIELDS, check_tags
from .schemas import RowRejection, valid_id_number, valid_phone
from .settings import VisitsSettings

COLUMNS: dict[str, tuple[str, ...]] = {
    "household_id": ("household_id", "household", "户编号", "户号"),
    "building": ("building", "building_id", "楼栋", "楼栋编号", "楼号"),
    "unit": ("unit", "单元", "单元号"),
    "room": ("room", "room_no", "房号", "门牌号", "室"),
    "grid": ("grid", "grid_id", "网格", "所属网格"),
    "name": ("name", "head_of_household", "姓名", "户主姓名", "户主"),
    "phone": ("phone", "mobile", "telephone", "电话", "联系电话", "手机号", "手机"),
    "id_number": ("id_number", "id_no", "身份证号", "身份证号码", "证件号码"),
    "address": ("address", "地址", "详细地址", "住址"),
    "members": ("members", "household_size", "人数", "家庭人数", "户籍人数", "人口数"),
    "tags": ("tags", "标签", "人员类别", "类别"),
}
_HEADER = {alias.replace(" ", "").lower(): col for col, aliases in COLUMNS.items() for alias in aliases}

#: Chinese labels communities use in their sheets, mapped to gridwork tags.
TAG_LABELS = {
    "特殊帮扶": "special_assistance",
    "特殊帮扶对象": "special_assistance",
    "帮扶": "special_assistance",
    "独居老人": "elderly_alone",
    "空巢老人": "elderly_alone",
    "高龄": "elderly_alone",
    "残疾": "disabled",
    "残疾人": "disabled",
    "困难": "hardship",
    "困难户": "hardship",
    "低保": "hardship",
    "青年": "young",
    "年轻": "young",
    "党员": "party_member",
    "养犬": "dog_owner",
}
_SPLIT = re.compile(r"[;,，；、|/]+")
_ID = re.compile(TOKEN_PATTERN)


#: Columns read from a spreadsheet row (the ledger has eleven; a sheet may carry notes beside them).
MAX_COLUMNS = 64


@dataclass(frozen=True)
class SheetLimits:
    """How much a ledger file may hold: rows, and for an XLSX (a zip) what its parts inflate to —
    checked from the zip's directory before anything is inflated.  The shared strings are held
    in memory whole by any XLSX reader, so they have a cap of their own."""

    max_rows: int = 100_000
    max_inflated_bytes: int = 256 * 1024 * 1024
    max_shared_strings_bytes: int = 64 * 1024 * 1024


def sheet_limits(settings: VisitsSettings) -> SheetLimits:
    """The limits a deployment set (``GRIDWORK_IMPORT_MAX_ROWS``, ``…_INFLATED_BYTES``, ``…_SHARED_STRINGS_BYTES``)."""
    return SheetLimits(
        settings.import_max_rows, settings.import_max_inflated_bytes, settings.import_max_shared_strings_bytes
    )


class SheetTooLarge(ValueError):
    """The file holds more than :class:`SheetLimits` allows (a zip bomb, a sheet padded to a million rows)."""


def check_workbook(content: bytes, limits: SheetLimits) -> None:
    """Refuse an XLSX whose parts inflate past ``limits``, from the sizes its zip directory declares
    (a member cannot inflate past its declared size: the zip reader stops there, and a CRC
    mismatch fails it)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as book:
            members = book.infolist()
    except zipfile.BadZipFile:
        return  # not a workbook at all: the reader says so
    total = 0
    for member in members:
        total += member.file_size
        if member.filename.lower().endswith("sharedstrings.xml") and member.file_size > limits.max_shared_strings_bytes:
            raise SheetTooLarge(
                f"its shared strings inflate to {member.file_size} bytes, over the "
                f"{limits.max_shared_strings_bytes} an import reads"
            )
    if total > limits.max_inflated_bytes:
        raise SheetTooLarge(f"it inflates to {total} bytes, over the {limits.max_inflated_bytes} an import reads")


@dataclass
class LedgerRow:
    """One valid row of the ledger."""

    line: int
    household_id: str
    building_id: str
    unit: str | None
    room: str | None
    grid_id: str | None
    members: int | None
    tags: list[str]
    personal: dict[str, str]


@dataclass
class LedgerSheet:
    """A sheet read: its valid rows, the rows refused with their line and reason, and how many rows it had."""

    rows: list[LedgerRow] = field(default_factory=list)
    rejected: list[RowRejection] = field(default_factory=list)
    total: int = 0


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores 301 as 301.0
    return str(value).strip()


def read_table(content: bytes, filename: str, limits: SheetLimits = SheetLimits()) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of a CSV or XLSX file, the header first; an XLSX is read streaming (openpyxl's
    read-only mode), its first :data:`MAX_COLUMNS` columns, after :func:`check_workbook`."""
    if filename.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook

        check_workbook(content, limits)
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            # The dimension the file declares (A1:XFD1048576) would pad every row to 16,384 cells.
            sheet.reset_dimensions()
            for line, values in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1):
                yield line, [_cell(v) for v in values]
        finally:
            book.close()
        return
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ValueError("the file is neither UTF-8 nor GB18030 text")
    reader = csv.reader(io.StringIO(text, newline=""))
    for cells in reader:
        yield reader.line_num, [c.strip() for c in cells]


def parse_ledger(content: bytes, filename: str, limits: SheetLimits = SheetLimits()) -> LedgerSheet:
    """Validate every row; the good ones become :class:`LedgerRow`, the others a rejection with its line.
    More than ``limits.max_rows`` rows (or as many blank lines again) is refused whole."""
    max_rows = limits.max_rows
    out = LedgerSheet()
    table = read_table(content, filename, limits)
    header: list[str | None] | None = None
    seen: dict[str, int] = {}
    for line, cells in table:
        if header is None:
            header = [_HEADER.get(c.replace(" ", "").lower()) for c in cells]
            missing = [c for c in ("building",) if c not in header]
            if missing:
                out.rejected.append(
                    RowRejection(
                        line=line,
                        field=missing[0],
                        reason=(f"no {missing[0]} column; headers accepted: {', '.join(COLUMNS[missing[0]])}"),
                    )
                )
                return out
            continue
        if line > 2 * max_rows + 1:  # a sheet of a few rows a million lines apart
            raise SheetTooLarge(f"it has more than {2 * max_rows} lines")
        if not any(cells):
            continue  # blank lines are not rows
        out.total += 1
        if out.total > max_rows:
            raise SheetTooLarge(f"it has more than {max_rows} rows")
        raw = {col: cells[i] for i, col in enumerate(header) if col and i < len(cells) and cells[i]}
        try:
            row = _row(line, raw)
        except _RowError as err:
            out.rejected.append(RowRejection(line=line, field=err.field, reason=err.reason))
            continue
        if row.household_id in seen:
            out.rejected.append(
                RowRejection(
                    line=line,
                    field="household_id",
                    reason=(f"household {row.household_id} already appears on line {seen[row.household_id]}"),
                )
            )
            continue
        seen[row.household_id] = line
        out.rows.append(row)
    if header is None:
        out.rejected.append(RowRejection(line=1, reason="the file is empty"))
    return out


class _RowError(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


#: C0 control characters but tab, LF and CR: no ledger value holds one (the HTTP edge refuses them too).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _row(line: int, raw: dict[str, str]) -> LedgerRow:
    for col, cell in raw.items():
        if _CONTROL.search(cell):
            raise _RowError(col, f"{col} holds a control character")
    building = raw.get("building")
    if not building:
        raise _RowError("building", "building is required")
    if not _ID.match(building):
        raise _RowError("building", f"building id {building!r} must be ascii letters, digits, - or _")
    unit, room = raw.get("unit"), raw.get("room")
    hid = raw.get("household_id")
    if not hid:
        if not unit or not room:
            raise _RowError("room" if unit else "unit", "unit and room are required when there is no household_id")
        hid = f"{building}-{unit}-{room}"
    if not _ID.match(hid):
        raise _RowError(
            "household_id", f"household id {hid!r} must be ascii letters, digits, - or _ (add a household_id column)"
        )
    grid = raw.get("grid")
    if grid and not _ID.match(grid):
        raise _RowError("grid", f"grid id {grid!r} must be ascii letters, digits, - or _")
    members: int | None = None
    if raw.get("members"):
        try:
            members = int(float(raw["members"]))
        except ValueError:
            raise _RowError("members", f"members {raw['members']!r} is not a number") from None
        if not 0 <= members <= 50:
            raise _RowError("members", "members must be between 0 and 50")
    personal: dict[str, str] = {}
    for fld in PERSONAL_FIELDS:
        value = raw.get(fld)
        if not value:
            continue
        try:
            if fld == "phone":
                value = valid_phone(value)
            elif fld == "id_number":
                value = valid_id_number(value)
        except ValueError as err:
            raise _RowError(fld, str(err)) from None
        if len(value) > 200:
            raise _RowError(fld, f"{fld} is longer than 200 characters")
        personal[fld] = value
    tags: list[str] = []
    for label in _SPLIT.split(raw.get("tags", "")):
        label = label.strip()
        if label:
            tags.append(TAG_LABELS.get(label, label))
    try:
        tags = check_tags(tags)
    except Exception as err:
        raise _RowError("tags", str(err)) from None
    return LedgerRow(line, hid, building, unit, room, grid, members, tags, personal)


def parse_upload(content: bytes, filename: str, limits: SheetLimits) -> LedgerSheet:
    """Parse an uploaded ledger; a file that is not a table becomes one rejection on line 1.
    A file over ``limits`` raises :class:`SheetTooLarge` (nothing of it is imported)."""
    try:
        return parse_ledger(content, filename, limits)
    except SheetTooLarge:
        raise
    except (ValueError, KeyError, OSError, ValidationError) as err:
        return LedgerSheet(rejected=[RowRejection(line=1, reason=f"cannot read {filename}: {err}")])
    except Exception as err:  # openpyxl raises zipfile errors for a file that is not XLSX
        return LedgerSheet(rejected=[RowRejection(line=1, reason=f"cannot read {filename}: {type(err).__name__}")])
