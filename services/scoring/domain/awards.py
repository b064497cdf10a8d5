"""Publicity and awards (宣传和获奖): the secretary's entries on a grid worker's points evaluation, pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.errors import Invalid
from shared.events import Event
from shared.events.scoring import PointsAwarded, PointsAwardedData


@dataclass(frozen=True, slots=True)
class AwardPoints:
    """Award a worker points for publicity or an award; ``award_id`` is the client's, so a retry is a no-op."""

    community: str
    award_id: str
    worker_id: str
    points: float
    kind: Literal["award", "publicity"]
    reason: str
    awarded_by: str
    at: datetime


def decide_award(on_roster: bool, command: AwardPoints) -> list[Event]:
    """``PointsAwarded`` for a worker on the community's roster (``on_roster``), for a non-zero number of points."""
    if command.points == 0:
        raise Invalid("points must not be zero", field="points")
    if not on_roster:
        raise Invalid(f"worker {command.worker_id} is not on the roster of {command.community}", field="worker_id")
    return [
        PointsAwarded.new(
            community=command.community,
            aggregate_id=award_aggregate_id(command.award_id),
            actor=command.awarded_by,
            occurred_at=command.at,
            idempotency_key="award",
            data=PointsAwardedData(
                worker_id=command.worker_id,
                points=command.points,
                reason=command.reason,
                kind=command.kind,
                awarded_by=command.awarded_by,
            ),
        )
    ]


def award_aggregate_id(award_id: str) -> str:
    """One aggregate per award: appending it at version 0 makes a retry a duplicate, other content a conflict."""
    return f"a-{award_id}"
