"""The rulebooks: the built-in ones load, and a typo is named with its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.scoring.domain import RulebookError, RuleSet
from services.scoring.settings import BUILTIN_DIR, load_rulebook, load_rulebooks


def test_the_builtin_rulebooks_load_and_a_typo_is_named_with_its_file_and_field(tmp_path: Path) -> None:
    books = load_rulebooks()
    assert {b.ref for b in books.values()} == {"5plus1@1", "4plus1@1"}
    five = books["5plus1"]
    assert [(i.id, i.target) for i in five.items_of("day")] == [
        ("hours", 5),
        ("households", 5),
        ("problem", 1),
        ("special_visit", 1),
    ]
    broken = tmp_path / "broken.toml"
    broken.write_text(
        (BUILTIN_DIR / "5plus1.toml").read_text().replace('field = "household_id"', 'field = "houshold_id"', 1)
    )
    with pytest.raises(RulebookError, match=r"broken\.toml: items\.1\.evidence\.0.*VisitLogged has no data field"):
        load_rulebook(broken)
    with pytest.raises(RulebookError, match="unknown rulebook 'nine'"):
        RuleSet(books, {"bairuijing": "nine"})
