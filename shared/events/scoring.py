"""Events of the scoring context, derived from the stream."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from .envelope import Event, Payload

PeriodKind = Literal["day", "week", "month", "quarter", "year"]


class QuotaItemResult(Payload):
    item: str
    target: float
    actual: float
    met: bool
    points: float = 0


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


class PointsAwarded(Event):
    """Points of the community's points evaluation (评优积分制) were awarded to a worker."""

    context: ClassVar[str] = "scoring"
    aggregate_kind: ClassVar[str] = "points"
    type: Literal["PointsAwarded"] = "PointsAwarded"
    data: PointsAwardedData


EVENTS: tuple[type[Event], ...] = (QuotaPeriodClosed, PointsAwarded)
UPCASTERS: dict = {}
