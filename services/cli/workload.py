"""A deterministic workload of communities like Bairuijing, day by day.

``generate(communities, days, seed)`` yields, for each simulated day, the events that day's work
produces: 25 grid workers per community on China's working days (statutory holidays and adjusted
workdays from ``chinese-calendar``), about ten household contacts each per working day in the
three knock modes (63,000 a year for a community, as Bairuijing reports), a special-assistance
visit, shifts of five to seven hours, problems in the five categories at the article's mix, most
resolved within days, Friday face-to-face sessions, a monthly building council, quarterly
trainings and befriended residents, talents, resident surveys, hotline work orders with surges,
and phones that sync late (their events arrive days after the work).

The same (communities, days, seed) always gives the same events, ids included, so a benchmark's
"street-year" means the same thing on every run.

Every event is one the public APIs would also record for the same work (``services/simulator.py``
plays this workload through them): each building belongs to one grid, councils meet in a building
of the worker's grid, the party members and resident backbones named are registered, a shift's
minutes are the whole minutes between its two times, a ledger entry lists the required fields it
holds, and a 12345 work order becomes issue ``hl-<order_no>`` as the hotline endpoint makes it.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import chinese_calendar

from shared.events import SHANGHAI, Event
from shared.events import issues as ie
from shared.events import visits as ve
from shared.events.common import CATEGORIES, Place

# Share of problems per category (conflicts and sanitation lead in the article's cases).
CATEGORY_MIX = {
    "conflicts_disputes": 0.25,
    "environmental_sanitation": 0.25,
    "safety_hazards": 0.2,
    "public_facilities": 0.2,
    "livelihood_services": 0.1,
}
SUBCATEGORIES = {  # as services/issues/categories.toml lists them
    "conflicts_disputes": ["noise", "pets", "neighbour_dispute", "parking"],
    "environmental_sanitation": ["garbage", "sanitation", "greening", "sewage"],
    "safety_hazards": ["stairwell_clutter", "fire_safety", "ebike_charging", "falling_objects"],
    "public_facilities": ["facilities", "lighting", "lift"],
    "livelihood_services": ["elderly_care", "social_assistance", "employment"],
}
WORKERS = 25
SIM = "simulated"  # ids derive from (type, community, aggregate, occurred_at): same seed, same ids
HOUSEHOLDS = 8000
BUILDINGS = 80  # four phases of twenty buildings
PARTY_MEMBERS = 41  # <community>pm00 … pm40, half sinking (下沉), half directly managed (直管)
#: The ledger's required fields (as the visits service lists them): nine in ten entries hold all five.
LEDGER_COMPLETE = ["name", "phone", "id_number", "address", "members"]
LEDGER_PARTIAL = ["name", "phone", "members"]  # no ID number, no address yet


@dataclass
class Community:
    id: str
    street: str
    workers: list[str]
    households: list[str]
    special: set[str]
    building_of: dict[str, str]
    grid_of_worker: dict[str, str]
    households_of_worker: dict[str, list[str]] = field(default_factory=dict)
    special_of_worker: dict[str, list[str]] = field(default_factory=dict)
    #: Each building's one grid: the grid of the worker whose households start in it.
    grid_of_building: dict[str, str] = field(default_factory=dict)
    #: Where each worker's building council meets: the first building of the worker's grid.
    council_building: dict[str, str] = field(default_factory=dict)


def _community(i: int, street: str, households: int) -> Community:
    cid = f"c{i:03d}"
    workers = [f"{cid}w{w:02d}" for w in range(WORKERS)]
    hh = [f"{cid}h{h:05d}" for h in range(households)]
    building_of = {h: f"{cid}b{(n * BUILDINGS) // households:02d}" for n, h in enumerate(hh)}
    grid_of_worker = {w: f"{cid}g{n:02d}" for n, w in enumerate(workers)}
    per = max(1, households // WORKERS)
    c = Community(cid, street, workers, hh, {h for n, h in enumerate(hh) if n % 16 == 0}, building_of, grid_of_worker)
    c.households_of_worker = {w: hh[n * per : (n + 1) * per] for n, w in enumerate(workers)}
    c.special_of_worker = {w: [h for h in mine if h in c.special] or mine for w, mine in c.households_of_worker.items()}
    for h in hh:  # households in order: a building's first one names its grid
        c.grid_of_building.setdefault(building_of[h], _grid_of(c, h))
    for w in workers:
        mine_b = [b for b, g in sorted(c.grid_of_building.items()) if g == grid_of_worker[w]]
        c.council_building[w] = mine_b[0] if mine_b else building_of[c.households_of_worker[w][0]]
    return c


def _at(day: date, hour: float) -> datetime:
    h = int(hour)
    return datetime.combine(day, time(h, int((hour - h) * 60)), tzinfo=SHANGHAI)


def setup_events(c: Community) -> list[Event]:
    """The community's directory: itself, buildings, grids, workers, households (tags included)."""
    out: list[Event] = [
        ve.CommunityRegistered.new(
            idempotency_key=SIM,
            community=c.id,
            aggregate_id=c.id,
            actor="simulator",
            occurred_at=_at(date(2025, 1, 1), 9),
            data=ve.CommunityRegisteredData(community_id=c.id, name=f"Community {c.id}", street=c.street),
        )
    ]
    t0 = _at(date(2025, 1, 1), 9)
    for b in sorted(c.grid_of_building):
        n = int(b[-2:])
        out.append(
            ve.BuildingRegistered.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=b,
                actor="simulator",
                occurred_at=t0,
                data=ve.BuildingRegisteredData(
                    building_id=b,
                    phase=str(n // 20 + 1),
                    number=str(n % 20 + 1),
                    units=4,
                    grid_id=c.grid_of_building[b],
                ),
            )
        )
    for w in c.workers:
        grid = c.grid_of_worker[w]
        buildings = sorted(b for b, g in c.grid_of_building.items() if g == grid)
        out.append(
            ve.WorkerRegistered.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=w,
                actor="simulator",
                occurred_at=t0,
                data=ve.WorkerRegisteredData(worker_id=w, name=f"Worker {w[-2:]}", grid_id=grid, street=c.street),
            )
        )
        out.append(
            ve.GridDefined.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=grid,
                actor="simulator",
                occurred_at=t0,
                data=ve.GridDefinedData(grid_id=grid, name=f"Grid {grid[-2:]}", worker_id=w, buildings=buildings),
            )
        )
    for n in range(PARTY_MEMBERS):
        pm = f"{c.id}pm{n:02d}"
        out.append(
            ve.PersonRegistered.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=pm,
                actor="simulator",
                occurred_at=t0,
                data=ve.PersonRegisteredData(
                    person_id=pm, role="sinking_party_member" if n % 2 else "direct_party_member", display_name=pm
                ),
            )
        )
    rb = f"{c.id}rb01"
    out.append(
        ve.PersonRegistered.new(
            idempotency_key=SIM,
            community=c.id,
            aggregate_id=rb,
            actor="simulator",
            occurred_at=t0,
            data=ve.PersonRegisteredData(person_id=rb, role="resident_backbone", display_name=rb),
        )
    )
    special = c.special
    for n, h in enumerate(c.households):
        tags = ["special_assistance"] if h in special else (["young"] if n % 2 else [])
        present = LEDGER_COMPLETE if n % 10 else LEDGER_PARTIAL  # nine in ten ledger entries complete
        out.append(
            ve.HouseholdRegistered.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=h,
                actor="simulator",
                occurred_at=t0,
                data=ve.HouseholdRegisteredData(
                    household_id=h,
                    building_id=c.building_of[h],
                    unit=str(n % 4 + 1),
                    room=f"{n % 30 + 1:02d}01",
                    grid_id=_grid_of(c, h),
                    tags=tags,
                    fields_present=present,
                    members=n % 5 + 1,
                ),
            )
        )
    return out


def _grid_of(c: Community, household: str) -> str:
    n = int(household[-5:])
    per = max(1, len(c.households) // WORKERS)
    return c.grid_of_worker[c.workers[min(WORKERS - 1, n // per)]]


def _pick_category(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for cat, share in CATEGORY_MIX.items():
        acc += share
        if x <= acc:
            return cat
    return CATEGORIES[-1]


def day_events(c: Community, day: date, rng: random.Random, diligence: dict[str, float]) -> list[Event]:
    """One day of work in community ``c`` (nothing on days off except the hotline)."""
    out: list[Event] = []
    working = chinese_calendar.is_workday(day)
    tag = day.strftime("%Y%m%d")
    for w in c.workers if working else []:
        d = diligence[w]
        shift = f"{w}s{tag}"
        start, hours = 8.5 + rng.random() * 0.5, 4.5 + 2.5 * d * rng.random() + (0.5 if d > 0.7 else 0)
        out.append(
            ve.ShiftStarted.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=shift,
                actor=w,
                occurred_at=_at(day, start),
                data=ve.ShiftStartedData(shift_id=shift, worker_id=w, grid_id=c.grid_of_worker[w]),
            )
        )
        out.append(
            ve.ShiftEnded.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=shift,
                actor=w,
                occurred_at=_at(day, start + hours),
                data=ve.ShiftEndedData(
                    shift_id=shift,
                    worker_id=w,
                    started_at=_at(day, start).isoformat(),
                    minutes=round((_at(day, start + hours) - _at(day, start)).total_seconds() / 60),
                ),
            )
        )
        mine = c.households_of_worker[w]
        contacts = max(0, round(rng.gauss(10 * d + 1, 1.5)))
        for k in range(contacts):
            h = rng.choice(mine)
            visit = f"{w}v{tag}{k:02d}"
            mode = rng.choices(("regular", "online", "priority"), (0.5, 0.35, 0.15))[0]
            problems = []
            if rng.random() < 0.03:
                cat = _pick_category(rng)
                problems.append(
                    ve.ProblemNote(
                        category=cat,
                        subcategory=rng.choice(SUBCATEGORIES[cat]),
                        severity=rng.choice(("low", "medium", "medium", "high")),
                        description=f"found on visit {visit}",
                    )
                )
            out.append(
                ve.VisitLogged.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=visit,
                    actor=w,
                    occurred_at=_at(day, start + 0.3 + k * hours / 12),
                    data=ve.VisitLoggedData(
                        visit_id=visit,
                        worker_id=w,
                        household_id=h,
                        grid_id=c.grid_of_worker[w],
                        mode=mode,
                        special_assistance=h in c.special,  # type: ignore[arg-type]
                        minutes=rng.randint(5, 30),
                        problems=problems,
                    ),
                )
            )
        if rng.random() < d:
            h = rng.choice(c.special_of_worker[w])
            visit = f"{w}sp{tag}"
            out.append(
                ve.VisitLogged.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=visit,
                    actor=w,
                    occurred_at=_at(day, start + hours - 0.5),
                    data=ve.VisitLoggedData(
                        visit_id=visit,
                        worker_id=w,
                        household_id=h,
                        grid_id=c.grid_of_worker[w],
                        mode="priority",
                        special_assistance=True,
                        minutes=25,
                    ),
                )
            )
        if rng.random() < 0.6 * d:
            issue = f"{w}i{tag}"
            cat = _pick_category(rng)
            h = rng.choice(mine)
            out.append(
                ie.IssueReported.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=issue,
                    actor=w,
                    occurred_at=_at(day, start + 1),
                    data=ie.IssueReportedData(
                        issue_id=issue,
                        category=cat,  # type: ignore[arg-type]
                        subcategory=rng.choice(SUBCATEGORIES[cat]),
                        severity=rng.choice(("low", "medium", "high")),
                        place=Place(building=c.building_of[h], grid=c.grid_of_worker[w]),
                        description="small problem found in the grid",
                        reported_by=w,
                    ),
                )
            )
            if rng.random() < 0.8:
                out.append(
                    ie.IssueResolved.new(
                        idempotency_key=SIM,
                        community=c.id,
                        aggregate_id=issue,
                        actor=w,
                        occurred_at=_at(day, start + 3),
                        data=ie.IssueResolvedData(issue_id=issue, resolved_by=w, resolution="handled in the building"),
                    )
                )
        if day.weekday() == 4 and rng.random() < 0.5 + d / 2:  # Friday: residents face-to-face
            session = f"{w}f{tag}"
            party = [f"{c.id}pm{rng.randint(0, 40):02d}"] if rng.random() < d else []
            out.append(
                ve.FaceToFaceSessionHeld.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=session,
                    actor=w,
                    occurred_at=_at(day, 15),
                    data=ve.FaceToFaceSessionHeldData(
                        session_id=session,
                        worker_id=w,
                        station="党群服务驿站",
                        party_members_present=party,
                        residents_attending=rng.randint(5, 30),
                        topics=["public-area rules"],
                    ),
                )
            )
        if day.day in (10, 11, 12) and rng.random() < 0.5 * d:
            council = f"{w}c{tag}"
            out.append(
                ve.BuildingCouncilHeld.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=council,
                    actor=w,
                    occurred_at=_at(day, 19),
                    data=ve.BuildingCouncilHeldData(
                        council_id=council,
                        worker_id=w,
                        building_id=c.council_building[w],
                        party_members=[f"{c.id}pm01"],
                        resident_backbones=[f"{c.id}rb01"],
                        attendees=12,
                        decisions=["staggered dog-walking times"],
                    ),
                )
            )
        if rng.random() < 0.04 * d:
            friend = f"{w}fr{tag}"
            out.append(
                ve.ResidentBefriended.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=friend,
                    actor=w,
                    occurred_at=_at(day, 16),
                    data=ve.ResidentBefriendedData(friend_id=friend, worker_id=w, household_id=rng.choice(mine)),
                )
            )
        if rng.random() < 0.012:
            att = f"{w}t{tag}"
            out.append(
                ve.TrainingAttended.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=att,
                    actor=w,
                    occurred_at=_at(day, 14),
                    data=ve.TrainingAttendedData(
                        attendance_id=att,
                        worker_id=w,
                        training_id=f"{c.street}t{tag}",
                        title="role-play: pet owner, property, lawyer",
                    ),
                )
            )
        if rng.random() < 0.02 * d:
            talent = f"{w}ta{tag}"
            out.append(
                ve.TalentDiscovered.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=talent,
                    actor=w,
                    occurred_at=_at(day, 16.5),
                    data=ve.TalentDiscoveredData(
                        talent_id=talent,
                        worker_id=w,
                        household_id=rng.choice(mine),
                        field=rng.choice(("culture_sports", "repairs", "organising", "design_planning")),
                    ),
                )
            )
        if rng.random() < 0.3:
            survey = f"{w}q{tag}"
            out.append(
                ve.ResidentSurveyed.new(
                    idempotency_key=SIM,
                    community=c.id,
                    aggregate_id=survey,
                    actor=w,
                    occurred_at=_at(day, 17),
                    data=ve.ResidentSurveyedData(
                        survey_id=survey,
                        household_id=rng.choice(mine),
                        worker_id=w,
                        visited=rng.random() < 0.9,
                        knows_grid_worker=rng.random() < 0.85,
                        satisfaction=rng.choices((5, 4, 3, 2), (0.55, 0.3, 0.1, 0.05))[0],
                    ),
                )
            )
    surge = 3 if rng.random() < 0.05 else 1  # a hotline surge day
    for k in range(rng.randint(0, 2) * surge):
        order_no = f"12345-{c.id}o{tag}{k}"
        order = f"hl-{order_no}"  # the issue a work order becomes (the hotline endpoint's id)
        cat = _pick_category(rng)
        when = _at(day, 9 + rng.random() * 10)
        out.append(
            ie.HotlineOrderReceived.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=order,
                actor="hotline",
                occurred_at=when,
                data=ie.HotlineOrderReceivedData(
                    order_no=order_no,
                    issue_id=order,
                    request="citizen call",
                    category=cat,  # type: ignore[arg-type]
                    response_deadline=when + timedelta(hours=2),
                    resolution_deadline=when + timedelta(days=3),
                ),
            )
        )
        out.append(
            ie.IssueReported.new(
                idempotency_key=SIM,
                community=c.id,
                aggregate_id=order,
                actor="hotline",
                occurred_at=when,
                data=ie.IssueReportedData(
                    issue_id=order,
                    category=cat,
                    source="hotline",  # type: ignore[arg-type]
                    description="citizen call",
                    reported_by="12345",
                    hotline_order_no=order_no,
                ),
            )
        )
    return out


def generate(
    communities: int,
    days: int,
    seed: int = 1,
    start: date = date(2025, 1, 1),
    households: int = HOUSEHOLDS,
    streets_of: int = 20,
) -> Iterator[tuple[date | None, list[Event]]]:
    """Yield (day, events) — first (None, directory events) — for ``communities`` over ``days`` days.

    About one aggregate in ten comes from a phone that synced late: its events are yielded with a
    later day than the work happened (their occurred_at stays the day of the work).
    """
    rng = random.Random(seed)
    comms = [_community(i, f"s{i // streets_of:02d}", households) for i in range(communities)]
    diligence = {w: rng.choice((1.0, 1.0, 0.95, 0.85, 0.6)) for c in comms for w in c.workers}
    yield None, [e for c in comms for e in setup_events(c)]
    late: dict[date, list[Event]] = {}
    for n in range(days):
        day = start + timedelta(days=n)
        today: list[Event] = late.pop(day, [])
        for c in comms:
            for group, _ in by_aggregate(day_events(c, day, rng, diligence)):
                if rng.random() < 0.1:  # the phone was offline: this work syncs days later
                    late.setdefault(day + timedelta(days=rng.randint(1, 4)), []).extend(group)
                else:
                    today.extend(group)
        yield day, today
    for day in sorted(late):
        yield day, late[day]


def by_aggregate(events: list[Event]) -> list[tuple[list[Event], int]]:
    """Group a day's events into (events of one aggregate, expected version 0) for append_many.

    Every simulated aggregate is born and finished within one day (shifts, visits, an issue
    reported and resolved), so each group starts at version 0.
    """
    groups: dict[tuple[str, str, str], list[Event]] = {}
    for e in events:
        groups.setdefault((e.community, e.aggregate_type, e.aggregate_id), []).append(e)
    return [(g, 0) for g in groups.values()]


# ---------------------------------------------------------------------------- people and ledgers

SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐"
GIVEN = [
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "平",
    "刚",
    "桂英",
    "玲",
    "芳",
    "伟",
    "娜",
    "霞",
    "鹏",
]


def id_number(rng: random.Random) -> str:
    """A well-formed 18-character resident ID number (GB 11643 check character) for Wuhan, Wuchang."""
    birth = date(1935, 1, 1) + timedelta(days=rng.randint(0, 365 * 70))
    body = f"420106{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


def ledger_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
