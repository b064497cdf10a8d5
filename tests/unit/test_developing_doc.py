"""docs/DEVELOPING.md's layout matches the tree file for file: every module of shared/, the command
and each service is named where the layout describes its package, and every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "DEVELOPING.md").read_text()
NAMED = re.compile(r"\b([a-z_0-9]+\.(?:py|toml|sql))\b")


def block(heading: str) -> str:
    """The doc's lines from the one starting with ``heading`` to the next blank line."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def modules(package: Path, *, recursive: bool = True) -> set[str]:
    found = package.rglob("*.py") if recursive else package.glob("*.py")
    return {p.name for p in found if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts}


@pytest.mark.parametrize("service", ["visits", "issues", "scoring", "notify"])
def test_each_service_is_described_file_for_file(service: str) -> None:
    text = block(f"services/{service}/ ")
    package = ROOT / "services" / service
    assert sorted(name for name in modules(package) if name not in text) == []
    existing = {p.name for p in package.rglob("*") if p.is_file()}
    assert sorted(name for name in set(NAMED.findall(text)) if name not in existing) == []


def test_shared_and_the_command_are_described_file_for_file() -> None:
    text = block("shared/ ")
    layout = DOC[DOC.index("## Layout") : DOC.index("## The rooms of a service")]
    for package in (ROOT / "shared", ROOT / "services" / "cli"):
        assert sorted(name for name in modules(package) if name not in layout) == [], package
    assert text  # the shared/ block exists
    everything = {
        p.name for base in ("shared", "services/cli", "tests") for p in (ROOT / base).rglob("*") if p.is_file()
    }
    assert sorted(name for name in set(NAMED.findall(layout)) if name not in everything) == []
