"""Realistic event volumes for the scoring benchmark and the crash test: a street's month (or year).

Per grid worker and working day, about 15 events like a real day of 5+1 work: a shift, ten knocks
(one at a special-assistance household, a few nobody home), a problem reported most days, older
problems resolved or escalated, a survey now and then; the face-to-face session on Fridays, a
building council once a month, resident friends, trainings and talents over the quarter.  A few
visits arrive days late from offline phones.  Seeded, so a run is reproducible.

Events come grouped per day as ``(events, expected_version)`` batches ready for
``EventStore.append_many``; follow-ups of an issue always land on a later day than its report, so
each day's batch can be appended in one pipelined call.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.events import CATEGORIES, SHANGHAI, Event
from shared.events.issues import (
    IssueEscalated,
    IssueEscalatedData,
    IssueReported,
    IssueReportedData,
    IssueResolved,
    IssueResolvedData,
)
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingCouncilHeldData,
    CommunityRegistered,
    CommunityRegisteredData,
    FaceToFaceSessionHeld,
    FaceToFaceSessionHeldData,
    HouseholdRegistered,
    HouseholdRegisteredData,
    ResidentBefriended,
    ResidentBefriendedData,
    ResidentSurveyed,
    ResidentSurveyedData,
    ShiftEnded,
    ShiftEndedData,
    TalentDiscovered,
    TalentDiscoveredData,
    TrainingAttended,
    TrainingAttendedData,
    VisitLogged,
    VisitLoggedData,
    WorkerRegistered,
    WorkerRegisteredData,
)

from .domain.calendar import days, is_workday

Batch = tuple[list[Event], int]
LEDGER_FIELDS = ["name", "phone", "id_number", "address", "members"]


@dataclass
class _Worker:
    community: str
    worker_id: str
    households: list[str]
    special: list[str]
    open_issues: list[tuple[str, int]] = field(default_factory=list)  # issue id, aggregate version


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def street(
    *,
    communities: int = 20,
    workers: int = 25,
    start: date = date(2025, 10, 1),
    n_days: int = 31,
    street_id: str = "zhongnan",
    households_per_worker: int = 40,
    seed: int = 7,
) -> Iterator[list[Batch]]:
    """Yield one list of append batches per day (the first one also registers people and places)."""
    rng = random.Random(seed)
    roster: list[_Worker] = []
    setup: list[Batch] = []
    for n in range(communities):
        community = f"{street_id}-c{n:02d}"
        setup.append(
            (
                [
                    CommunityRegistered.new(
                        community=community,
                        aggregate_id=community,
                        actor="ops",
                        occurred_at=_at(start, 8) - timedelta(days=30),
                        data=CommunityRegisteredData(
                            community_id=community, name=f"Community {n:02d}", street=street_id
                        ),
                    )
                ],
                0,
            )
        )
        for k in range(workers):
            worker_id = f"w{k:02d}"
            setup.append(
                (
                    [
                        WorkerRegistered.new(
                            community=community,
                            aggregate_id=worker_id,
                            actor="ops",
                            occurred_at=_at(start, 8) - timedelta(days=30),
                            data=WorkerRegisteredData(worker_id=worker_id, name=f"网格员{k:02d}", grid_id=f"g{k:02d}"),
                        )
                    ],
                    0,
                )
            )
            households = [f"h{k:02d}-{i:03d}" for i in range(households_per_worker)]
            for h in households:
                present = [f for f in LEDGER_FIELDS if rng.random() < 0.93]
                setup.append(
                    (
                        [
                            HouseholdRegistered.new(
                                community=community,
                                aggregate_id=h,
                                actor=worker_id,
                                occurred_at=_at(start, 8) - timedelta(days=20),
                                data=HouseholdRegisteredData(
                                    household_id=h, building_id=f"b{k:02d}", grid_id=f"g{k:02d}", fields_present=present
                                ),
                            )
                        ],
                        0,
                    )
                )
            roster.append(_Worker(community, worker_id, households, households[:4]))
    yield setup
    serial = 0
    late: list[Batch] = []
    for day in days(start, start + timedelta(days=n_days - 1)):
        out: list[Batch] = list(late)
        late = []
        working = is_workday(day)
        for wk in roster:
            if not working and rng.random() > 0.05:
                continue
            c, w = wk.community, wk.worker_id

            def new(
                cls: Any, aggregate: str, at: datetime, data: Any, version: int = 0, *, c: str = c, w: str = w
            ) -> Batch:
                return ([cls.new(community=c, aggregate_id=aggregate, actor=w, occurred_at=at, data=data)], version)

            serial += 1
            started = _at(day, 8, rng.randrange(0, 40))
            out.append(
                new(
                    ShiftEnded,
                    f"s{serial}",
                    started + timedelta(hours=6),
                    ShiftEndedData(
                        shift_id=f"s{serial}",
                        worker_id=w,
                        started_at=started.isoformat(),
                        minutes=float(rng.randrange(240, 361)),
                    ),
                )
            )
            for k in range(10):
                serial += 1
                special = k == 0
                household = rng.choice(wk.special) if special else rng.choice(wk.households)
                at = _at(day, 9 + k // 2, rng.randrange(0, 60))
                visit = new(
                    VisitLogged,
                    f"v{serial}",
                    at,
                    VisitLoggedData(
                        visit_id=f"v{serial}",
                        worker_id=w,
                        household_id=household,
                        special_assistance=special,
                        mode=rng.choice(("regular", "online", "priority")),
                        minutes=rng.randrange(5, 30),
                        outcome="not_home" if rng.random() < 0.08 else "contacted",
                    ),
                )
                # Some knocks sync from an offline phone a day or two later.
                (late if rng.random() < 0.02 else out).append(visit)
            if wk.open_issues and rng.random() < 0.5:
                issue_id, version = wk.open_issues.pop(0)
                if rng.random() < 0.2:
                    out.append(
                        new(
                            IssueEscalated,
                            issue_id,
                            _at(day, 15),
                            IssueEscalatedData(
                                issue_id=issue_id, from_level="building", to_level="community", reason="manual"
                            ),
                            version,
                        )
                    )
                else:
                    out.append(
                        new(
                            IssueResolved,
                            issue_id,
                            _at(day, 15),
                            IssueResolvedData(issue_id=issue_id, resolved_by=w, resolution="handled on site"),
                            version,
                        )
                    )
            if rng.random() < 0.7:
                serial += 1
                issue_id = f"i{serial}"
                out.append(
                    new(
                        IssueReported,
                        issue_id,
                        _at(day, 11),
                        IssueReportedData(
                            issue_id=issue_id,
                            category=rng.choice(CATEGORIES),
                            description="found on a knock",
                            reported_by=w,
                            source="grid_worker",
                        ),
                    )
                )
                wk.open_issues.append((issue_id, 1))
            if day.weekday() == 4:
                serial += 1
                members = [f"pm{rng.randrange(9)}" for _ in range(rng.choice((0, 1, 1, 2)))]
                out.append(
                    new(
                        FaceToFaceSessionHeld,
                        f"f{serial}",
                        _at(day, 16),
                        FaceToFaceSessionHeldData(
                            session_id=f"f{serial}",
                            worker_id=w,
                            station="驿站",
                            party_members_present=members,
                            residents_attending=rng.randrange(3, 20),
                        ),
                    )
                )
            if day.day == 10 + int(w[1:]) % 15:
                serial += 1
                out.append(
                    new(
                        BuildingCouncilHeld,
                        f"b{serial}",
                        _at(day, 19),
                        BuildingCouncilHeldData(
                            council_id=f"b{serial}",
                            worker_id=w,
                            building_id=f"b{w}",
                            party_members=["pm1"],
                            resident_backbones=["rb1"],
                            attendees=12,
                        ),
                    )
                )
            if rng.random() < 0.08:
                serial += 1
                out.append(
                    new(
                        ResidentBefriended,
                        f"r{serial}",
                        _at(day, 17),
                        ResidentBefriendedData(
                            friend_id=f"r{serial}", worker_id=w, household_id=rng.choice(wk.households)
                        ),
                    )
                )
            if rng.random() < 0.02:
                serial += 1
                out.append(
                    new(
                        TrainingAttended,
                        f"t{serial}",
                        _at(day, 14),
                        TrainingAttendedData(
                            attendance_id=f"t{serial}",
                            worker_id=w,
                            training_id=f"tr-{day.isoformat()}",
                            title="Mediation role play",
                        ),
                    )
                )
            if rng.random() < 0.01:
                serial += 1
                out.append(
                    new(
                        TalentDiscovered,
                        f"n{serial}",
                        _at(day, 18),
                        TalentDiscoveredData(
                            talent_id=f"n{serial}", worker_id=w, field=rng.choice(("culture_sports", "repairs"))
                        ),
                    )
                )
            if rng.random() < 0.2:
                serial += 1
                out.append(
                    new(
                        ResidentSurveyed,
                        f"q{serial}",
                        _at(day, 20),
                        ResidentSurveyedData(
                            survey_id=f"q{serial}",
                            household_id=rng.choice(wk.households),
                            worker_id=w,
                            visited=rng.random() < 0.95,
                            knows_grid_worker=rng.random() < 0.9,
                            satisfaction=rng.choice((3, 4, 5, 5, 5)),
                        ),
                    )
                )
        yield out
    if late:
        yield late


def count(batches: list[Batch]) -> int:
    """Events in a day's batches."""
    return sum(len(events) for events, _ in batches)
