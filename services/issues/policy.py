"""Escalation policy and category catalogue: data read from TOML, then pure lookups.

The rules, deadlines and ladder live in ``escalation.toml`` and the categories in
``categories.toml`` so that a community can tune them without a release; this module only parses
and validates them (a bad file fails at start-up naming the entry) and answers questions.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from shared.events import CATEGORIES, LEVELS, SHANGHAI

TARGETS = ("property_management", "police", "street_office", "urban_management", "hotline")
SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("grid_worker", "resident", "hotline", "open311", "face_to_face", "council")
LEVEL_INDEX: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyError(ValueError):
    """The escalation or catalogue file is malformed (names the entry and the field)."""


def parse_duration(text: str, where: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"2d"`` → timedelta."""
    match = _DURATION.match(str(text))
    if not match:
        raise PolicyError(f"{where}: {text!r} is not a duration like 30m, 4h or 2d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def next_level(level: str) -> str | None:
    """The level above ``level`` on the ladder (None at the top)."""
    i = LEVEL_INDEX[level] + 1
    return LEVELS[i] if i < len(LEVELS) else None


@dataclass(frozen=True)
class Rule:
    """Escalate on report when every given filter matches."""

    name: str
    to_level: str
    target: str | None = None
    category: str | None = None
    subcategories: frozenset[str] | None = None
    severities: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    night: bool | None = None
    note: str | None = None

    def matches(
        self, *, category: str, subcategory: str | None, severity: str, source: str | None, night: bool
    ) -> bool:
        """Whether a report with these facts falls under this rule."""
        return (
            (self.category is None or self.category == category)
            and (self.subcategories is None or subcategory in self.subcategories)
            and (self.severities is None or severity in self.severities)
            and (self.sources is None or source in self.sources)
            and (self.night is None or self.night == night)
        )


@dataclass(frozen=True)
class Deadline:
    """How long a case may wait at each level, for the cases it matches."""

    per_level: dict[str, timedelta]
    category: str | None = None
    severities: frozenset[str] | None = None

    def matches(self, category: str, severity: str) -> bool:
        return (self.category is None or self.category == category) and (
            self.severities is None or severity in self.severities
        )


@dataclass(frozen=True)
class Policy:
    """The escalation ladder's configuration."""

    rules: tuple[Rule, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    night_start: time = time(22, 0)
    night_end: time = time(6, 0)
    target_levels: dict[str, str] = field(default_factory=dict)
    level_targets: dict[str, str] = field(default_factory=dict)

    def is_night(self, at: datetime) -> bool:
        """Whether ``at`` falls in the night window, in local (Asia/Shanghai) time."""
        local = at.astimezone(SHANGHAI).time()
        if self.night_start <= self.night_end:
            return self.night_start <= local < self.night_end
        return local >= self.night_start or local < self.night_end

    def rule_for(
        self, *, category: str, subcategory: str | None, severity: str, source: str | None, reported_at: datetime
    ) -> Rule | None:
        """The first rule that applies to a report, if any."""
        night = self.is_night(reported_at)
        for rule in self.rules:
            if rule.matches(category=category, subcategory=subcategory, severity=severity, source=source, night=night):
                return rule
        return None

    def deadline(self, category: str, severity: str, level: str) -> timedelta | None:
        """How long a case of this category and severity may wait at ``level`` (None: no deadline)."""
        for entry in self.deadlines:
            if entry.matches(category, severity):
                return entry.per_level.get(level)
        return None

    def level_of_target(self, target: str) -> str | None:
        return self.target_levels.get(target)

    def target_on(self, level: str) -> str | None:
        """The agency a case climbing onto ``level`` automatically is handed to."""
        return self.level_targets.get(level)


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _choices(value: Any, allowed: tuple[str, ...] | None, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: expected a non-empty list")
    return frozenset(_choice(v, allowed, where) if allowed else str(v) for v in value)


def _clock(text: str, where: str) -> time:
    try:
        return time.fromisoformat(text)
    except (TypeError, ValueError) as err:
        raise PolicyError(f"{where}: {text!r} is not a time like 22:00") from err


def policy_from_dict(raw: dict[str, Any]) -> Policy:
    """Build and validate a :class:`Policy` from the parsed TOML."""
    night = raw.get("night", {})
    targets = {
        _choice(t, TARGETS, "targets"): _choice(lv, LEVELS, f"targets.{t}") for t, lv in raw.get("targets", {}).items()
    }
    levels = {
        _choice(lv, LEVELS, "levels"): _choice(t, TARGETS, f"levels.{lv}") for lv, t in raw.get("levels", {}).items()
    }
    rules = []
    for i, r in enumerate(raw.get("rule", [])):
        where = f"rule[{i}] {r.get('name', '?')}"
        if "name" not in r or "to_level" not in r:
            raise PolicyError(f"{where}: name and to_level are required")
        unknown = set(r) - {
            "name",
            "to_level",
            "target",
            "category",
            "subcategories",
            "severities",
            "sources",
            "night",
            "note",
        }
        if unknown:
            raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
        rules.append(
            Rule(
                name=str(r["name"]),
                to_level=_choice(r["to_level"], LEVELS, f"{where}.to_level"),
                target=_choice(r["target"], TARGETS, f"{where}.target") if "target" in r else None,
                category=_choice(r["category"], CATEGORIES, f"{where}.category") if "category" in r else None,
                subcategories=_choices(r.get("subcategories"), None, f"{where}.subcategories"),
                severities=_choices(r.get("severities"), SEVERITIES, f"{where}.severities"),
                sources=_choices(r.get("sources"), SOURCES, f"{where}.sources"),
                night=bool(r["night"]) if "night" in r else None,
                note=r.get("note"),
            )
        )
    deadlines = []
    for i, d in enumerate(raw.get("deadline", [])):
        where = f"deadline[{i}]"
        unknown = set(d) - {"category", "severities", *LEVELS}
        if unknown:
            raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
        deadlines.append(
            Deadline(
                per_level={lv: parse_duration(d[lv], f"{where}.{lv}") for lv in LEVELS if lv in d},
                category=_choice(d["category"], CATEGORIES, f"{where}.category") if "category" in d else None,
                severities=_choices(d.get("severities"), SEVERITIES, f"{where}.severities"),
            )
        )
    return Policy(
        rules=tuple(rules),
        deadlines=tuple(deadlines),
        night_start=_clock(night.get("start", "22:00"), "night.start"),
        night_end=_clock(night.get("end", "06:00"), "night.end"),
        target_levels=targets,
        level_targets=levels,
    )


def load_policy(path: Path) -> Policy:
    """Read the escalation policy file."""
    with path.open("rb") as fh:
        return policy_from_dict(tomllib.load(fh))


@dataclass(frozen=True)
class Subcategory:
    code: str
    name: str
    description: str


@dataclass(frozen=True)
class CategoryInfo:
    code: str
    name: str
    name_zh: str
    subcategories: tuple[Subcategory, ...]


@dataclass(frozen=True)
class Catalogue:
    """The five categories and their subcategories; each subcategory is an Open311 service."""

    categories: tuple[CategoryInfo, ...]

    def get(self, category: str) -> CategoryInfo | None:
        return next((c for c in self.categories if c.code == category), None)

    def has(self, category: str, subcategory: str | None) -> bool:
        info = self.get(category)
        return info is not None and (subcategory is None or any(s.code == subcategory for s in info.subcategories))

    def subcategory_codes(self, category: str) -> list[str]:
        info = self.get(category)
        return [s.code for s in info.subcategories] if info else []

    def services(self) -> list[tuple[CategoryInfo, Subcategory]]:
        return [(c, s) for c in self.categories for s in c.subcategories]

    def service(self, service_code: str) -> tuple[CategoryInfo, Subcategory] | None:
        category, _, sub = service_code.partition(".")
        info = self.get(category)
        if info is None:
            return None
        found = next((s for s in info.subcategories if s.code == sub), None)
        return (info, found) if found else None


def service_code(category: str, subcategory: str | None) -> str:
    """The Open311 service code of a category and subcategory."""
    return f"{category}.{subcategory or 'other'}"


def catalogue_from_dict(raw: dict[str, Any]) -> Catalogue:
    cats = []
    for code in CATEGORIES:
        entry = raw.get(code)
        if entry is None:
            raise PolicyError(f"category {code} is missing from the catalogue")
        subs = tuple(
            Subcategory(str(s["code"]), str(s.get("name", s["code"])), str(s.get("description", "")))
            for s in entry.get("sub", [])
        )
        cats.append(CategoryInfo(code, str(entry.get("name", code)), str(entry.get("name_zh", "")), subs))
    extra = set(raw) - set(CATEGORIES)
    if extra:
        raise PolicyError(f"unknown categories in the catalogue: {sorted(extra)}")
    return Catalogue(tuple(cats))


def load_catalogue(path: Path) -> Catalogue:
    """Read the category catalogue file."""
    with path.open("rb") as fh:
        return catalogue_from_dict(tomllib.load(fh))
