"""Rulebooks: the 5+1 method as data — items, their evidence, how they are measured and scored.

A rulebook (``rulebooks/*.toml``) lists, per period (day, week, month, quarter, year), the items
of the quota: what counts as evidence (event types, who the worker is, filters), how evidence is
measured (count, sum, distinct values, rate), the target and the points.  A community runs the
default rulebook or its own variant (another street's "4+1") chosen by configuration, never by
code.  Rulebooks carry a version; every scored row records the rulebook and version that scored
it, and re-scoring under a new version is a replay of the projection.

Pure: a rulebook is parsed from its TOML text (the settings read the files).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.events import EVENT_TYPES

from .calendar import KINDS, PeriodKind
from .formula import NUMBERS, item_formula

Measure = Literal["count", "sum", "distinct", "rate"]
Scalar = str | int | float | bool


class RulebookError(ValueError):
    """A rulebook file is malformed; the message names the file, the item and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Frozen):
    """One kind of event that counts for an item, and how it counts."""

    event: str = Field(description="Event type, e.g. VisitLogged")
    worker: str = Field(default="worker_id", description="Data field naming the worker it counts for")
    when: str | None = Field(
        default=None, description="Data field with the ISO time the work happened (default: occurred_at)"
    )
    field: str | None = Field(default=None, description="Data field summed, counted distinct or rated")
    divide: float = Field(default=1.0, gt=0, description="Divisor of a sum (60: minutes → hours)")
    at_least: float | None = Field(default=None, description="Rate: a value counts as a yes from here")
    match: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, description="Fields that must equal")
    exclude: dict[str, list[Scalar]] = Field(default_factory=dict, description="Fields that must not equal")
    min_items: dict[str, int] = Field(default_factory=dict, description="List fields with at least n entries")

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r}")
        return value

    @model_validator(mode="after")
    def _fields_exist(self) -> Evidence:
        data_fields = EVENT_TYPES[self.event].model_fields["data"].annotation.model_fields  # type: ignore[union-attr]
        named = [self.worker, *self.match, *self.exclude, *self.min_items]
        named += [f for f in (self.when, self.field) if f]
        for name in named:
            if name not in data_fields:
                raise ValueError(f"{self.event} has no data field {name!r}")
        return self


class Item(_Frozen):
    """One quota item: e.g. "contact 5 households" (联系5户) every working day."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    period: PeriodKind
    label: str
    label_zh: str = ""
    unit: str = ""
    target: float = Field(ge=0)
    points: float = Field(default=0, ge=0, description="Points earned when the target is met")
    measure: Measure = "count"
    indicator: bool = Field(
        default=False, description="Shown and scored, but not counted in the completion of the quota"
    )
    evidence: list[Evidence] = Field(min_length=1)

    @model_validator(mode="after")
    def _measure_needs_field(self) -> Item:
        for ev in self.evidence:
            if self.measure in ("sum", "distinct", "rate") and not ev.field:
                raise ValueError(f"measure {self.measure!r} needs `field` on evidence {ev.event}")
        return self

    @property
    def divisor(self) -> float:
        """What a sum is divided by (60: minutes → hours); 1 for every other measure."""
        return self.evidence[0].divide if self.measure == "sum" else 1.0

    def evaluate(self, num: float, den: float, scored: bool = True) -> ItemResult:
        """Target, actual, met and points from the folded numerator (and denominator for rates).

        ``scored``: whether the period carries a quota (a day off carries none: no target, never met).
        The formula is :func:`~.formula.item_formula`, the one the projection's generated columns run.
        """
        target = self.target if scored else None
        actual, met, points = item_formula(
            NUMBERS,
            num=num,
            den=den,
            divisor=self.divisor,
            rate=self.measure == "rate",
            target=target,
            points=self.points,
        )
        return ItemResult(self.id, target, round(actual, 6), met, points)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item of one period: target (None when the period carries no quota), actual, met, points."""

    item: str
    target: float | None
    actual: float
    met: bool
    points: float


class Evaluation(_Frozen):
    """The points-based evaluation (评优积分制): how the four columns of the 评优表 are scored."""

    attendance_item: str = Field(
        default="hours", description="Day item whose evidence marks a working day as attended (考勤)"
    )
    attendance_points: float = Field(default=1.0, ge=0, description="Points per attended working day")
    reception_events: list[str] = Field(
        default_factory=lambda: ["VisitLogged"], description="Events that are entries of the reception log"
    )
    reception_points: float = Field(default=0.1, ge=0, description="Points per reception-log entry")
    award_weight: float = Field(default=1.0, ge=0, description="Weight of publicity and awards points")

    @field_validator("reception_events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in EVENT_TYPES:
                raise ValueError(f"unknown event type {name!r}")
        return value


class Figures(_Frozen):
    """The community's outcome figures and what they are measured against."""

    visits_target: int = Field(default=63000, ge=0, description="Resident visits a year (Bairuijing: 63,000)")
    ledger_target: float = Field(default=0.9, ge=0, le=1, description="Ledger completion (> 90%)")
    trainings_target: int = Field(default=25, ge=0, description="Training sessions a year")
    ledger_required_fields: list[str] = Field(
        default_factory=lambda: ["name", "phone", "id_number", "address", "members"]
    )
    ledger_personal_fields: list[str] = Field(
        default_factory=lambda: ["name", "phone", "id_number", "address"],
        description="Fields an erasure (PIPL) removes from the ledger",
    )
    satisfied_at_least: int = Field(default=4, ge=1, le=5, description="Survey answer that counts as satisfied")


class Rulebook(_Frozen):
    """A versioned set of quota items plus the evaluation and figure settings."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    version: int = Field(ge=1)
    name: str
    name_zh: str = ""
    description: str = ""
    communities: list[str] = Field(default_factory=list, description="Communities that run this rulebook")
    evaluation: Evaluation = Field(default_factory=Evaluation)
    figures: Figures = Field(default_factory=Figures)
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Rulebook:
        ids = [i.id for i in self.items]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate item ids: {', '.join(dupes)}")
        att = next((i for i in self.items if i.id == self.evaluation.attendance_item), None)
        if att is None or att.period != "day":
            raise ValueError(f"evaluation.attendance_item {self.evaluation.attendance_item!r} must name a day item")
        return self

    @property
    def ref(self) -> str:
        """``id@version``, e.g. ``5plus1@1``: what scored a row."""
        return f"{self.id}@{self.version}"

    def items_of(self, kind: PeriodKind) -> list[Item]:
        """The items of one period kind, in the rulebook's order."""
        return [i for i in self.items if i.period == kind]

    def item(self, item_id: str) -> Item | None:
        """The item with this id, if the rulebook has one."""
        return next((i for i in self.items if i.id == item_id), None)

    def kinds(self) -> list[PeriodKind]:
        """Period kinds this rulebook sets quotas for, in calendar order."""
        return [k for k in KINDS if self.items_of(k)]

    def evidence_types(self) -> set[str]:
        """Every event type this rulebook reads (items' evidence and reception-log entries)."""
        return {ev.event for item in self.items for ev in item.evidence} | set(self.evaluation.reception_events)


def parse_rulebook(text: str, source: str) -> Rulebook:
    """Parse and validate one rulebook's TOML; :class:`RulebookError` names ``source`` (its file), the
    item and the field that are wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RulebookError(f"{source}: {err}") from err
    try:
        return Rulebook.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors())
        raise RulebookError(f"{source}: {problems}") from err


# ---------------------------------------------------------------- compiled evidence (the fold's hot path)


@dataclass(frozen=True, slots=True)
class Source:
    """One evidence rule compiled for the fold: a predicate on the event's data and how to measure it."""

    item: Item
    worker: str
    when: str | None
    field: str | None
    accept: Callable[[Mapping[str, Any]], bool]
    measure: Measure
    at_least: float | None


def _one_of(n: str, a: frozenset[Scalar]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda d: d.get(n) in a


def _none_of(n: str, r: frozenset[Scalar]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda d: d.get(n) not in r


def _at_least(n: str, m: int) -> Callable[[Mapping[str, Any]], bool]:
    return lambda d: len(d.get(n) or ()) >= m


def _predicate(ev: Evidence) -> Callable[[Mapping[str, Any]], bool]:
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for name, want in ev.match.items():
        allowed = frozenset(want) if isinstance(want, list) else frozenset([want])
        checks.append(_one_of(name, allowed))
    for name, banned in ev.exclude.items():
        refused = frozenset(banned)
        checks.append(_none_of(name, refused))
    for name, n_min in ev.min_items.items():
        checks.append(_at_least(name, n_min))
    if not checks:
        return lambda _d: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda d: first(d) and second(d)
    return lambda d: all(check(d) for check in checks)


def compile_sources(book: Rulebook) -> dict[str, list[Source]]:
    """Event type → the evidence rules it feeds, for one rulebook."""
    out: dict[str, list[Source]] = {}
    for item in book.items:
        for ev in item.evidence:
            out.setdefault(ev.event, []).append(
                Source(item, ev.worker, ev.when, ev.field, _predicate(ev), item.measure, ev.at_least)
            )
    return out


class RuleSet:
    """Which rulebook each community runs: the file's own ``communities`` list, overridden by settings."""

    def __init__(
        self,
        books: Mapping[str, Rulebook],
        assignments: Mapping[str, str] | None = None,
        default: str = "5plus1",
    ) -> None:
        if default not in books:
            raise RulebookError(f"default rulebook {default!r} not found (have: {', '.join(sorted(books))})")
        self.books = dict(books)
        self.default = books[default]
        chosen: dict[str, str] = {}
        for book in books.values():
            for community in book.communities:
                chosen[community] = book.id
        for community, book_id in (assignments or {}).items():
            if book_id not in books:
                raise RulebookError(f"community {community!r} is assigned unknown rulebook {book_id!r}")
            chosen[community] = book_id
        self.assigned = {c: books[b] for c, b in chosen.items()}
        self.sources = {b.id: compile_sources(b) for b in books.values()}

    def for_community(self, community: str) -> Rulebook:
        """The rulebook ``community`` is scored by."""
        return self.assigned.get(community, self.default)

    def event_types(self) -> set[str]:
        """Every event type some rulebook reads."""
        return set().union(*(b.evidence_types() for b in self.books.values()))


@dataclass(frozen=True, slots=True)
class PeriodScore:
    """A worker's score in one period with its explanation: every item's result, and their points' sum."""

    items: tuple[ItemResult, ...]
    points: float


def score_period(
    book: Rulebook, kind: PeriodKind, numbers: Mapping[str, tuple[float, float]], scored: bool
) -> PeriodScore:
    """Every item of ``book`` for a period of ``kind`` from its folded ``(num, den)``; items without
    evidence count as zero.  The score is the sum of the items' points, so the two never disagree."""
    items = tuple(item.evaluate(*numbers.get(item.id, (0.0, 0.0)), scored=scored) for item in book.items_of(kind))
    return PeriodScore(items, round(sum(r.points for r in items), 6))
