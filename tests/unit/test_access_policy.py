"""The README's role table is the expected policy (docs/access-policy.toml), rendered.

Run ``python -m tests.unit.test_access_policy`` to print the table to paste between the README's
``<!-- access-table -->`` markers after changing the policy."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "docs" / "access-policy.toml"
README = ROOT / "README.md"
ROLES = ("secretary", "grid_worker", "street_admin", "agency", "hotline", "ops")
BEGIN, END = "<!-- access-table -->", "<!-- /access-table -->"


def _label(role: str, rule: str) -> str:
    if rule == "community":
        return {
            "street_admin": "street's communities",
            "ops": "every community",
            "hotline": "every community (or its own)",
        }.get(role, "own community")
    if rule == "street":
        return "every street" if role == "ops" else "own street"
    return {"all": "✓", "grid": "own grid", "self": "own", "routed": "cases sent to it"}[rule]


#: Narrowest first: a row shows the narrowest scope a role has among its routes (a worker reads
#: issues through a community route that lists only their grid's).
NARROWEST = ("self", "grid", "routed", "street", "community", "all")


def render(path: Path = POLICY) -> str:
    """The role table: one row per group of routes, one column per role, what scope it has there."""
    groups: dict[str, dict[str, str]] = {}
    for row in tomllib.loads(path.read_text())["route"]:
        cells = groups.setdefault(row["group"], {})
        for role, rule in row["allow"].items():
            if role not in cells or NARROWEST.index(rule) < NARROWEST.index(cells[role]):
                cells[role] = rule
    lines = [
        "| What | " + " | ".join(ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    for group, cells in groups.items():
        row = " | ".join(_label(r, cells[r]) if r in cells else "—" for r in ROLES)
        lines.append(f"| {group} | {row} |")
    return "\n".join(lines)


def test_the_readme_role_table_is_the_policy_rendered() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text, "the README has no role table markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == render(), "README's role table differs: run python -m tests.unit.test_access_policy"


def test_every_role_appears_and_every_row_names_one() -> None:
    rows = tomllib.loads(POLICY.read_text())["route"]
    seen = {role for row in rows for role in row["allow"]}
    assert seen == set(ROLES)
    assert all(row["group"] and row["op"].split(" ", 1)[0] in {"GET", "PUT", "POST", "PATCH", "DELETE"} for row in rows)


if __name__ == "__main__":
    print(render())
