"""The escalation policy: the ladder, the rules on report, the deadlines per level — pure lookups.

The rules, deadlines and ladder live in ``escalation.toml`` so that a community can tune them
without a release; :mod:`services.issues.rules_files` reads the file, :func:`policy_from_dict`
validates what it holds (a bad file fails at start-up naming the entry) and :class:`Policy` answers
questions.  Nothing here reads a file or the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
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
class EscalationRule:
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
        """Whether a case of this category and severity runs on these deadlines."""
        return (self.category is None or self.category == category) and (
            self.severities is None or severity in self.severities
        )


@dataclass(frozen=True)
class Policy:
    """The escalation ladder's configuration."""

    rules: tuple[EscalationRule, ...] = ()
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
    ) -> EscalationRule | None:
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
        """The level at which an outside agency takes cases (None: the agency has no level)."""
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
            EscalationRule(
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
