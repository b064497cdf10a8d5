"""Publicity and awards (宣传和获奖): the secretary puts points on a grid worker's evaluation."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.scoring.domain import AwardPoints, decide_award
from shared.errors import Invalid
from shared.events import SHANGHAI
from shared.events.scoring import PointsAwarded

EVENING = datetime(2025, 11, 12, 18, tzinfo=SHANGHAI)


def _award(points: float = 3, worker: str = "w03") -> AwardPoints:
    return AwardPoints(
        community="bairuijing",
        award_id="wenming-2025-11",
        worker_id=worker,
        points=points,
        kind="publicity",
        reason="stairwell clearing team in the district paper",
        awarded_by="sec-bairuijing",
        at=EVENING,
    )


def test_the_stairwell_clearing_team_in_the_district_paper_earns_publicity_points() -> None:
    [event] = decide_award(True, _award())
    assert isinstance(event, PointsAwarded)
    assert (event.aggregate_id, event.actor, event.occurred_at) == ("a-wenming-2025-11", "sec-bairuijing", EVENING)
    d = event.data
    assert (d.worker_id, d.points, d.kind, d.awarded_by, d.period_key) == (
        "w03",
        3,
        "publicity",
        "sec-bairuijing",
        None,
    )
    # The secretary's retry is the same event (same id): the store keeps it once.
    assert decide_award(True, _award())[0].id == event.id


def test_zero_points_and_a_worker_off_the_roster_are_refused_naming_the_field() -> None:
    with pytest.raises(Invalid) as zero:
        decide_award(True, _award(points=0))
    assert zero.value.field == "points"
    with pytest.raises(Invalid) as nobody:
        decide_award(False, _award(worker="nobody"))
    assert nobody.value.field == "worker_id" and "not on the roster of bairuijing" in str(nobody.value)
