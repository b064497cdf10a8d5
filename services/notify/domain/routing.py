"""Routing rules as data (``routing.toml``): which facts go to which recipients over which channels.

The rules are validated strictly by :func:`parse_rules` (an unknown key or value is an error at
load, not a silent mismatch at 23:45 when the noise complaint comes in); the service reads the file
once at start-up (:func:`services.notify.bootstrap.default_rules`).  Matching is pure: the facts of
one event in, the first matching rule out; :func:`select` then picks the community's directory
entries the rule names and the channels each of them has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal

from shared.events import CATEGORIES, LEVELS, SHANGHAI

from .directory import CHANNELS, RECIPIENT_KINDS, Recipient, in_window, parse_window

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

Trigger = Literal["escalated", "overdue", "quota_missed"]
TRIGGERS = ("escalated", "overdue", "quota_missed")
TARGETS = ("property_management", "police", "street_office", "urban_management", "hotline", "none")
REASONS = ("manual", "severity", "overdue", "unacknowledged", "rule")
PLACE_KEYS = ("compound", "phase", "building")


@dataclass(frozen=True)
class Facts:
    """What the router knows about one event."""

    on: Trigger
    at: datetime
    category: str | None = None
    subcategory: str | None = None
    severity: str | None = None
    target: str | None = None
    to_level: str | None = None
    reason: str | None = None
    place: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SendTo:
    """Whom a rule tells: a directory kind, optionally one desk of it (e.g. the police duty line)."""

    kind: str
    desk: str | None = None


@dataclass(frozen=True)
class RoutingRule:
    """One row of the routing table."""

    name: str
    on: frozenset[str]
    send_to: tuple[SendTo, ...]
    category: frozenset[str] | None = None
    subcategory: frozenset[str] | None = None
    min_severity: str | None = None
    hours: tuple[time, time] | None = None
    target: frozenset[str] | None = None
    to_level: frozenset[str] | None = None
    reason: frozenset[str] | None = None
    place: dict[str, frozenset[str]] | None = None
    channels: tuple[str, ...] | None = None
    urgent: bool = False
    ack: bool = False
    mode: Literal["immediate", "digest"] = "immediate"

    def matches(self, facts: Facts) -> bool:
        """Whether every condition of this rule holds for ``facts``."""
        if facts.on not in self.on:
            return False
        if self.category is not None and facts.category not in self.category:
            return False
        if self.subcategory is not None and (facts.subcategory or "").lower() not in self.subcategory:
            return False
        if self.min_severity is not None and (
            facts.severity is None or SEVERITY_RANK[facts.severity] < SEVERITY_RANK[self.min_severity]
        ):
            return False
        if self.hours is not None and not in_window(facts.at.astimezone(SHANGHAI).time(), *self.hours):
            return False
        if self.target is not None and (facts.target or "none") not in self.target:
            return False
        if self.to_level is not None and facts.to_level not in self.to_level:
            return False
        if self.reason is not None and facts.reason not in self.reason:
            return False
        if self.place is not None:
            for key, allowed in self.place.items():
                if facts.place.get(key) not in allowed:
                    return False
        return True


@dataclass(frozen=True)
class Route:
    """One recipient and the channels it is reached on, as a rule decided."""

    recipient: Recipient
    channels: tuple[str, ...]
    rule: RoutingRule


class RuleError(ValueError):
    """The rules file is malformed; the message names the rule and the key."""


@dataclass(frozen=True)
class RoutingRules:
    """The routing table: rules tried top to bottom, the first match decides."""

    rules: tuple[RoutingRule, ...]

    def match(self, facts: Facts) -> RoutingRule | None:
        """The first rule matching ``facts`` (None: nobody is told)."""
        for rule in self.rules:
            if rule.matches(facts):
                return rule
        return None


def select(rule: RoutingRule, directory: Sequence[Recipient], place: dict[str, str | None]) -> list[Route]:
    """The directory entries ``rule`` sends to, each with the channels it has among the rule's."""
    routes: list[Route] = []
    seen: set[str] = set()
    for target in rule.send_to:
        for recipient in directory:
            if recipient.recipient_id in seen or not recipient.active or recipient.kind != target.kind:
                continue
            if target.desk is not None and recipient.desk != target.desk:
                continue
            if not recipient.covers_place(place):
                continue
            wanted = rule.channels or CHANNELS
            channels = tuple(c for c in wanted if c in recipient.channels)
            if channels:
                seen.add(recipient.recipient_id)
                routes.append(Route(recipient, channels, rule))
    return routes


_RULE_KEYS = {
    "name",
    "on",
    "send_to",
    "category",
    "subcategory",
    "min_severity",
    "hours",
    "target",
    "to_level",
    "reason",
    "place",
    "channels",
    "urgent",
    "ack",
    "mode",
}


def _names(rule: str, key: str, value: Any, allowed: Sequence[str] | None = None) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"rule {rule}: {key} must be a list of strings")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise RuleError(f"rule {rule}: {key} has unknown values {unknown}; allowed: {', '.join(allowed)}")
    return frozenset(v.lower() if key == "subcategory" else v for v in value)


def parse_rules(data: dict[str, Any]) -> RoutingRules:
    """Validate and build the rules from the parsed TOML document."""
    rows = data.get("rule")
    if not isinstance(rows, list) or not rows:
        raise RuleError("the rules file needs at least one [[rule]]")
    rules: list[RoutingRule] = []
    names: set[str] = set()
    for i, row in enumerate(rows):
        name = str(row.get("name") or f"#{i + 1}")
        unknown = set(row) - _RULE_KEYS
        if unknown:
            raise RuleError(f"rule {name}: unknown keys {sorted(unknown)}")
        if name in names:
            raise RuleError(f"rule {name}: duplicate name")
        names.add(name)
        send_to = []
        for entry in row.get("send_to", None) or []:
            kind = entry.get("kind")
            if kind not in RECIPIENT_KINDS or set(entry) - {"kind", "desk"}:
                raise RuleError(f"rule {name}: send_to entries are {{kind, desk}} with kind in {RECIPIENT_KINDS}")
            send_to.append(SendTo(kind, entry.get("desk")))
        if "send_to" not in row:
            raise RuleError(f"rule {name}: send_to is required (use [] to tell nobody)")
        severity = row.get("min_severity")
        if severity is not None and severity not in SEVERITY_RANK:
            raise RuleError(f"rule {name}: min_severity must be one of {list(SEVERITY_RANK)}")
        place = None
        if "place" in row:
            if not isinstance(row["place"], dict) or set(row["place"]) - set(PLACE_KEYS):
                raise RuleError(f"rule {name}: place keys are {PLACE_KEYS}")
            place = {k: _names(name, f"place.{k}", v) for k, v in row["place"].items()}
        channels = None
        if "channels" in row:
            _names(name, "channels", row["channels"], CHANNELS)
            channels = tuple(row["channels"])  # the order is the preference
        mode = row.get("mode", "immediate")
        if mode not in ("immediate", "digest"):
            raise RuleError(f"rule {name}: mode must be immediate or digest")
        # Only missed quotas are collected into the daily digest; everything else goes at once.
        if (mode == "digest") != (row.get("on") == ["quota_missed"]):
            raise RuleError(f'rule {name}: mode = digest goes with on = ["quota_missed"] and only with it')
        try:
            hours = parse_window(row["hours"]) if "hours" in row else None
        except ValueError as err:
            raise RuleError(f"rule {name}: {err}") from err
        rules.append(
            RoutingRule(
                name=name,
                on=_names(name, "on", row.get("on", list(TRIGGERS)), TRIGGERS),
                send_to=tuple(send_to),
                category=_names(name, "category", row["category"], CATEGORIES) if "category" in row else None,
                subcategory=_names(name, "subcategory", row["subcategory"]) if "subcategory" in row else None,
                min_severity=severity,
                hours=hours,
                target=_names(name, "target", row["target"], TARGETS) if "target" in row else None,
                to_level=_names(name, "to_level", row["to_level"], LEVELS) if "to_level" in row else None,
                reason=_names(name, "reason", row["reason"], REASONS) if "reason" in row else None,
                place=place,
                channels=channels,
                urgent=bool(row.get("urgent", False)),
                ack=bool(row.get("ack", False)),
                mode=mode,
            )
        )
    return RoutingRules(tuple(rules))
