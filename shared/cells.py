"""Text that leaves gridwork in a file or a feed is made safe to open there.

* **Spreadsheet formulas** (CSV and XLSX exports): a cell starting with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return is read by Excel or WPS as a formula — a household named
  ``=HYPERLINK(…)`` would become a live link in a secretary's ledger.  Such a cell is prefixed
  with an apostrophe, which spreadsheets show as text (OWASP's rule for CSV injection).
* **Control characters** XML 1.0 forbids (and XLSX, which is XML, with it): a worker named
  ``bad\\x0bname`` made the XLSX exports fail and the Open311 XML feed unparseable.  Each is
  replaced by U+FFFD, the replacement character, so the rest of the text is kept.
"""

from __future__ import annotations

import re
from typing import Any

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: C0 control characters other than tab, line feed and carriage return (XML 1.0 forbids them).
_ILLEGAL_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _ILLEGAL_IN_XML.sub("\ufffd", text)


def safe_cell(value: Any) -> Any:
    """A value as a spreadsheet cell: text safe from formula evaluation and from illegal
    characters; numbers, dates, booleans and None as they are."""
    if not isinstance(value, str):
        return value
    text = xml_text(value)
    return "'" + text if text.startswith(FORMULA_START) else text
