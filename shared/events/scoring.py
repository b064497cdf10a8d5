"""Events of the scoring context, derived from the stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import Field

from .envelope import Event, Payload

PeriodKind = Literal["day", "week", "month", "quarter", "year"]


class QuotaItemResult(Payload):
    item: str
    target: float
    actual: float
    met: bool
    points: float = 0
    label: str | None = Field(default=None, description="The item in words, e.g. 'contact 5 households'")
    unit: str | None = None


class QuotaPeriodClosedData(Payload):
    worker_id: str
    period: PeriodKind
    period_key: str = Field(description="e.g. 2025-04-14, 2025-W16, 2025-04, 2025-Q2, 2025")
    start: date
    end: date
    items: list[QuotaItemResult]
    points: float
    rulebook: str
    rulebook_version: int
    revision: int = Field(default=1, ge=1, description="> 1 when a late event corrected a closed period")
    correction: Literal["late_event", "rescored"] | None = Field(
        default=None, description="Why a revision > 1 was issued: late evidence, or a new rulebook version"
    )
    previous_points: float | None = Field(default=None, description="Points of the revision this one replaces")
    changed_items: list[str] = Field(default_factory=list, description="Items that differ from that revision")


class QuotaPeriodClosed(Event):
    """A worker's 5+1 period closed: each item met or missed, and the points it earned."""

    context: ClassVar[str] = "scoring"
    aggregate_kind: ClassVar[str] = "quota"
    type: Literal["QuotaPeriodClosed"] = "QuotaPeriodClosed"
    data: QuotaPeriodClosedData


class PointsAwardedData(Payload):
    worker_id: str
    points: float
    reason: str
    period_key: str | None = None
    kind: Literal["quota", "award", "publicity"] = Field(
        default="award",
        description="quota: a closed period's points (a correction's delta when revision > 1); "
        "award / publicity: the secretary's publicity-and-awards list (宣传和获奖)",
    )
    revision: int | None = Field(default=None, ge=1, description="The closed period's revision (kind quota)")
    period: PeriodKind | None = None
    awarded_by: str | None = None


class PointsAwarded(Event):
    """Points of the community's points evaluation (评优积分制) were awarded to a worker."""

    context: ClassVar[str] = "scoring"
    aggregate_kind: ClassVar[str] = "points"
    type: Literal["PointsAwarded"] = "PointsAwarded"
    data: PointsAwardedData


EVENTS: tuple[type[Event], ...] = (QuotaPeriodClosed, PointsAwarded)
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
