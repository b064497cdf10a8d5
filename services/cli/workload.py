"""A deterministic workload of communities like Bairuijing, day by day — the one generator of the
simulator, the benchmarks, the cluster tests and the demo.

``generate(communities, days, seed)`` yields, for each simulated day, the events that day's work
produces: 25 grid workers per community on China's working days (statutory holidays and adjusted
workdays from ``chinese-calendar``), about ten household contacts each per working day in the
three knock modes (63,000 a year for a community, as Bairuijing reports), a special-assistance
visit, shifts of five to seven hours, problems in the five categories at the article's mix, most
resolved within days, Friday face-to-face sessions, a monthly building council, quarterly
trainings and befriended residents, talents, resident surveys, hotline work orders with surges,
and phones that sync late (their events arrive days after the work).

``generate_community(bairuijing(), days, seed, start)`` is the same day's work in one named
community: Bairuijing as the demo plays it (phases one to four of twenty buildings, ``p1b01`` …
``p4b20``, the 25 grid workers with their names and grids, the secretary and deputy, households
with their tags and ledger entries, party members, the building leader and resident backbones),
whose workers have the demo's profiles (:data:`PROFILES`): fifteen do every quota, six miss some,
four miss most.

The same arguments always give the same events, ids included, so a benchmark's "street-year"
means the same thing on every run.

Every event is one the public APIs would also record for the same work (``services/cli/simulate.py``
plays this workload through them): each building belongs to one grid, councils meet in a building
of the worker's grid, the party members and resident backbones named are registered, a shift's
minutes are the whole minutes between its two times, a ledger entry lists the required fields it
holds (:func:`ledger_rows` makes up the personal data it holds), and a 12345 work order becomes
issue ``hl-<order_no>`` as the hotline endpoint makes it.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import chinese_calendar

from shared.events import SHANGHAI, Event
from shared.events import issues as ie
from shared.events import visits as ve
from shared.events.common import CATEGORIES, Category, ContactMode, Place
from shared.events.envelope import Payload

# Share of problems per category (conflicts and sanitation lead in the article's cases).
CATEGORY_MIX: dict[Category, float] = {
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
PHASES, BUILDINGS_PER_PHASE = 4, 20
BUILDINGS = PHASES * BUILDINGS_PER_PHASE  # four phases of twenty buildings
UNITS, FLOORS = 4, 18
PARTY_MEMBERS = 41  # <community>pm00 … pm40, half sinking (下沉), half directly managed (直管)
#: The ledger's required fields (as the visits service lists them): nine in ten entries hold all five.
LEDGER_COMPLETE = ["name", "phone", "id_number", "address", "members"]
LEDGER_PARTIAL = ["name", "phone", "members"]  # no ID number, no address yet
#: Household tags that make a special-assistance household (特殊帮扶对象), as the visits service reads them.
SPECIAL_TAGS = frozenset({"special_assistance", "elderly_alone", "disabled", "hardship"})


# ---------------------------------------------------------------------------- how diligent


@dataclass(frozen=True)
class Diligence:
    """How much of the 5+1 a grid worker does on a working day: how long the shift, how many
    households contacted, and the chance of each other piece of work."""

    contacts: float  # households contacted: on average …
    special_visit: float  # the day's special-assistance visit
    problem: float  # a small problem found in the grid and reported
    session: float  # Friday: a residents face-to-face session (居民面对面) …
    session_party: float  # … with a party member taking part
    council: float  # a building council (楼栋议事会) on the 10th, 11th or 12th
    befriend: float  # a resident befriended
    talent: float  # a community talent discovered
    shift_spread: float  # a shift lasts ``shift_hours`` plus up to this much more, at random …
    shift_bonus: float = 0.0  # … plus this (the diligent stay half an hour longer)
    shift_hours: float = 4.5
    contacts_spread: float = 1.5
    contacts_at_least: int = 0
    #: Each contact of the day at a different household (else a door may be knocked twice).
    different_doors: bool = False
    #: The day's problem in each of the five categories in turn (else at the article's mix).
    categories_in_turn: bool = False
    solved: float = 0.8  # the problem solved the same day
    training: float = 0.012  # a professional training attended
    survey: float = 0.3  # a household surveyed (visited? knows the grid worker? satisfied?)

    @classmethod
    def of(cls, d: float) -> Diligence:
        """The street workload's diligence ``d`` (1 does nearly everything, 0.6 misses much)."""
        return cls(
            contacts=10 * d + 1,
            special_visit=d,
            problem=0.6 * d,
            session=0.5 + d / 2,
            session_party=d,
            council=0.5 * d,
            befriend=0.04 * d,
            talent=0.02 * d,
            shift_spread=2.5 * d,
            shift_bonus=0.5 if d > 0.7 else 0.0,
        )


#: The demo's workers: ``full`` do every quota the calendar allows (every daily item every working
#: day, a session with a party member every Friday, building councils on the 10th to the 12th,
#: problems in the five categories in turn, friends at a pace for five a quarter), ``partial`` miss
#: some, ``weak`` miss most — so the board ranks them.
PROFILES: dict[str, Diligence] = {
    "full": Diligence(
        shift_hours=5.1,
        shift_spread=1.5,
        contacts=10,
        contacts_at_least=6,
        different_doors=True,
        special_visit=1.0,
        problem=1.0,
        categories_in_turn=True,
        solved=0.9,
        session=1.0,
        session_party=1.0,
        council=1.0,
        befriend=0.25,
        training=0.05,
        talent=0.02,
    ),
    "partial": Diligence(
        shift_spread=1.0,
        contacts=6,
        contacts_at_least=3,
        different_doors=True,
        special_visit=0.7,
        problem=0.5,
        session=0.8,
        session_party=0.6,
        council=0.5,
        befriend=0.08,
        training=0.03,
        talent=0.01,
    ),
    "weak": Diligence(
        shift_hours=3.5,
        shift_spread=1.4,
        contacts=3.5,
        contacts_spread=1.0,
        contacts_at_least=1,
        different_doors=True,
        special_visit=0.25,
        problem=0.25,
        session=0.5,
        session_party=0.2,
        council=0.0,
        befriend=0.02,
        training=0.0,
        talent=0.0,
        survey=0.0,
    ),
}


# ---------------------------------------------------------------------------- the community


@dataclass
class Community:
    """A community's shape: its directory as the setup events register it, and what a day's work
    looks up (whose households, which are special-assistance, where councils meet, who attends)."""

    id: str
    street: str
    registration: ve.CommunityRegisteredData
    buildings: list[ve.BuildingRegisteredData]  # in id order
    workers: list[str]  # the grid workers
    worker_name: dict[str, str]
    grid_of_worker: dict[str, str]
    grid_name: dict[str, str]
    staff: list[ve.WorkerRegisteredData]  # community workers without a grid: the secretary, the deputy
    people: list[ve.PersonRegisteredData]  # party members, resident backbones, building leaders, volunteers
    ledger: list[ve.HouseholdRegisteredData]  # the households, in order
    grid_of_building: dict[str, str]
    households_of_worker: dict[str, list[str]]
    party_members: list[str]  # the ones Friday sessions and councils invite
    backbones: list[str]
    station: str = "党群服务驿站"  # where Friday's face-to-face sessions are held
    #: How diligent each grid worker is, and the profile's name where it has one.
    diligence: dict[str, Diligence] = field(default_factory=dict)
    profile_of: dict[str, str] = field(default_factory=dict)
    households: list[str] = field(init=False)
    building_of: dict[str, str] = field(init=False)
    special: set[str] = field(init=False)
    special_of_worker: dict[str, list[str]] = field(init=False)
    #: Where each worker's building council meets: the first building of the worker's grid.
    council_building: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.households = [h.household_id for h in self.ledger]
        self.building_of = {h.household_id: h.building_id for h in self.ledger}
        self.special = {h.household_id for h in self.ledger if SPECIAL_TAGS.intersection(h.tags)}
        self.special_of_worker = {
            w: [h for h in mine if h in self.special] or mine for w, mine in self.households_of_worker.items()
        }
        self.council_building = {}
        for w in self.workers:
            mine_b = self.buildings_of(w)
            self.council_building[w] = mine_b[0] if mine_b else self.building_of[self.households_of_worker[w][0]]

    def buildings_of(self, worker: str) -> list[str]:
        """The buildings of the worker's grid, in id order."""
        grid = self.grid_of_worker[worker]
        return sorted(b for b, g in self.grid_of_building.items() if g == grid)


def _community(i: int, street: str, households: int) -> Community:
    """Community ``c<i>`` of the street workload: households spread evenly over 80 buildings and 25 grids."""
    cid = f"c{i:03d}"
    workers = [f"{cid}w{w:02d}" for w in range(WORKERS)]
    hh = [f"{cid}h{h:05d}" for h in range(households)]
    building_of = {h: f"{cid}b{(n * BUILDINGS) // households:02d}" for n, h in enumerate(hh)}
    grid_of_worker = {w: f"{cid}g{n:02d}" for n, w in enumerate(workers)}
    per = max(1, households // WORKERS)
    grid_of_household = {h: grid_of_worker[workers[min(WORKERS - 1, n // per)]] for n, h in enumerate(hh)}
    grid_of_building: dict[str, str] = {}
    for h in hh:  # households in order: a building's first one names its grid
        grid_of_building.setdefault(building_of[h], grid_of_household[h])
    ledger = [
        ve.HouseholdRegisteredData(
            household_id=h,
            building_id=building_of[h],
            unit=str(n % 4 + 1),
            room=f"{n % 30 + 1:02d}01",
            grid_id=grid_of_household[h],
            tags=["special_assistance"] if n % 16 == 0 else (["young"] if n % 2 else []),
            fields_present=LEDGER_COMPLETE if n % 10 else LEDGER_PARTIAL,  # nine in ten ledger entries complete
            members=n % 5 + 1,
        )
        for n, h in enumerate(hh)
    ]
    party = [f"{cid}pm{n:02d}" for n in range(PARTY_MEMBERS)]
    people = [
        ve.PersonRegisteredData(
            person_id=pm, role="sinking_party_member" if n % 2 else "direct_party_member", display_name=pm
        )
        for n, pm in enumerate(party)
    ]
    people.append(ve.PersonRegisteredData(person_id=f"{cid}rb01", role="resident_backbone", display_name=f"{cid}rb01"))
    return Community(
        id=cid,
        street=street,
        registration=ve.CommunityRegisteredData(community_id=cid, name=f"Community {cid}", street=street),
        buildings=[
            ve.BuildingRegisteredData(
                building_id=b,
                phase=str(int(b[-2:]) // BUILDINGS_PER_PHASE + 1),
                number=str(int(b[-2:]) % BUILDINGS_PER_PHASE + 1),
                units=UNITS,
                grid_id=grid_of_building[b],
            )
            for b in sorted(grid_of_building)
        ],
        workers=workers,
        worker_name={w: f"Worker {w[-2:]}" for w in workers},
        grid_of_worker=grid_of_worker,
        grid_name={g: f"Grid {g[-2:]}" for g in grid_of_worker.values()},
        staff=[],
        people=people,
        ledger=ledger,
        grid_of_building=grid_of_building,
        households_of_worker={w: hh[n * per : (n + 1) * per] for n, w in enumerate(workers)},
        party_members=party,
        backbones=[f"{cid}rb01"],
    )


BAIRUIJING, ZHONGNANLU = "bairuijing", "zhongnanlu"
#: How many households Bairuijing may hold: one in each building at least, every room at most.
BAIRUIJING_HOUSEHOLDS = range(BUILDINGS, BUILDINGS * UNITS * FLOORS * 4 + 1)


def bairuijing(households: int = HOUSEHOLDS, seed: int = 7) -> Community:
    """Bairuijing (百瑞景社区, Zhongnan Road street, Wuchang, Wuhan) as the demo plays it.

    Phases one to four of twenty buildings (``p1b01`` … ``p4b20``, four units of 18 floors), the
    25 grid workers ``w01`` … ``w25`` each owning three or four neighbouring buildings as grid
    ``g01`` … ``g25``, the secretary and deputy, ``households`` households round the buildings
    (about 8 % elderly living alone, 6 % other special assistance, 55 % young, every grid with at
    least one special-assistance household; a little over 90 % of ledger entries complete),
    twenty party members, the building leader "Uncle Zhang" of phase 4 building 4, two resident
    backbones and a volunteer.  Workers ``w01`` … ``w15`` are ``full`` (:data:`PROFILES`),
    ``w16`` … ``w21`` ``partial``, ``w22`` … ``w25`` ``weak``.
    """
    if households not in BAIRUIJING_HOUSEHOLDS:
        first, last = BAIRUIJING_HOUSEHOLDS[0], BAIRUIJING_HOUSEHOLDS[-1]
        raise ValueError(f"Bairuijing holds {first} to {last:,} households, not {households:,}")
    rng = random.Random(seed)
    buildings = [f"p{p}b{n:02d}" for p in range(1, PHASES + 1) for n in range(1, BUILDINGS_PER_PHASE + 1)]
    workers = [f"w{i + 1:02d}" for i in range(WORKERS)]
    grid_of_worker = {w: f"g{i + 1:02d}" for i, w in enumerate(workers)}
    per = len(buildings) / WORKERS
    grid_of_building = {
        b: grid_of_worker[w] for i, w in enumerate(workers) for b in buildings[round(i * per) : round((i + 1) * per)]
    }
    ledger = []
    for n in range(households):
        b = buildings[n % len(buildings)]
        slot = n // len(buildings)
        unit, room = slot % UNITS + 1, f"{slot // UNITS % FLOORS + 1}{slot // (UNITS * FLOORS) % 4 + 1:02d}"
        x = rng.random()
        tags = ["elderly_alone"] if x < 0.08 else ["special_assistance"] if x < 0.14 else ["young"] if x < 0.69 else []
        complete = rng.random() < 0.93  # the ledger is a little over 90% complete
        ledger.append(
            ve.HouseholdRegisteredData(
                household_id=f"{b}-{unit}-{room}",
                building_id=b,
                unit=str(unit),
                room=room,
                grid_id=grid_of_building[b],
                members=rng.randint(1, 5),
                tags=tags,
                fields_present=LEDGER_COMPLETE if complete else LEDGER_PARTIAL,
            )
        )
    owner = {g: w for w, g in grid_of_worker.items()}
    entries: dict[str, list[int]] = {w: [] for w in workers}  # each worker's households, by ledger line
    for n, h in enumerate(ledger):
        entries[owner[h.grid_id or ""]].append(n)
    for lines in entries.values():  # every grid has a special-assistance household for the daily visit
        if not any(SPECIAL_TAGS.intersection(ledger[n].tags) for n in lines):
            ledger[lines[0]] = ledger[lines[0]].model_copy(update={"tags": ["special_assistance"]})
    households_of_worker = {w: [ledger[n].household_id for n in lines] for w, lines in entries.items()}
    party = [f"pm{i:02d}" for i in range(1, 21)]
    people = [
        ve.PersonRegisteredData(
            person_id=pm, role="sinking_party_member" if i % 2 else "direct_party_member", display_name=pm
        )
        for i, pm in enumerate(party, start=1)
    ]
    people += [
        ve.PersonRegisteredData(
            person_id="uncle-zhang", display_name="uncle-zhang", role="building_leader", building_id="p4b04"
        ),
        ve.PersonRegisteredData(person_id="rb01", display_name="rb01", role="resident_backbone", building_id="p2b06"),
        ve.PersonRegisteredData(person_id="rb02", display_name="rb02", role="resident_backbone", building_id="p4b04"),
        ve.PersonRegisteredData(person_id="vol01", display_name="vol01", role="volunteer", building_id="p3b02"),
    ]
    profile_of = {w: "full" if i < 15 else ("partial" if i < 21 else "weak") for i, w in enumerate(workers)}
    return Community(
        id=BAIRUIJING,
        street=ZHONGNANLU,
        registration=ve.CommunityRegisteredData(
            community_id=BAIRUIJING,
            name="百瑞景社区",
            street=ZHONGNANLU,
            district="武昌区",
            city="武汉市",
            area_km2=0.53,
            residents=25799,
        ),
        buildings=[
            ve.BuildingRegisteredData(
                building_id=b, compound="百瑞景", phase=b[1], number=str(int(b[3:])), units=UNITS, grid_id=g
            )
            for b, g in sorted(grid_of_building.items())
        ],
        workers=workers,
        worker_name={w: SURNAMES[i] + GIVEN[i] for i, w in enumerate(workers)},
        grid_of_worker=grid_of_worker,
        grid_name={g: f"第{int(g[1:])}网格" for g in grid_of_worker.values()},
        staff=[
            ve.WorkerRegisteredData(worker_id="shuji", name="百瑞景社区书记", role="secretary", street=ZHONGNANLU),
            ve.WorkerRegisteredData(worker_id="fushuji", name="副书记", role="deputy_secretary", street=ZHONGNANLU),
        ],
        people=people,
        ledger=ledger,
        grid_of_building=grid_of_building,
        households_of_worker=households_of_worker,
        party_members=party,
        backbones=["rb01", "rb02"],
        station="百瑞景党群服务驿站",
        diligence={w: PROFILES[p] for w, p in profile_of.items()},
        profile_of=profile_of,
    )


def _at(day: date, hour: float) -> datetime:
    h = int(hour)
    return datetime.combine(day, time(h, int((hour - h) * 60)), tzinfo=SHANGHAI)


def setup_events(c: Community) -> list[Event]:
    """The community's directory: itself, buildings, grids, workers, people, households (tags included)."""

    def registered(kind: type[Event], aggregate: str, data: Payload) -> Event:
        return kind.new(
            idempotency_key=SIM, community=c.id, aggregate_id=aggregate, actor="simulator", occurred_at=t0, data=data
        )

    t0 = _at(date(2025, 1, 1), 9)
    out = [registered(ve.CommunityRegistered, c.id, c.registration)]
    out += [registered(ve.BuildingRegistered, b.building_id, b) for b in c.buildings]
    for w in c.workers:
        grid = c.grid_of_worker[w]
        worker = ve.WorkerRegisteredData(worker_id=w, name=c.worker_name[w], grid_id=grid, street=c.street)
        out.append(registered(ve.WorkerRegistered, w, worker))
        buildings = c.buildings_of(w)
        out.append(
            registered(
                ve.GridDefined,
                grid,
                ve.GridDefinedData(grid_id=grid, name=c.grid_name[grid], worker_id=w, buildings=buildings),
            )
        )
    out += [registered(ve.WorkerRegistered, s.worker_id, s) for s in c.staff]
    out += [registered(ve.PersonRegistered, p.person_id, p) for p in c.people]
    out += [registered(ve.HouseholdRegistered, h.household_id, h) for h in c.ledger]
    return out


def _pick_category(rng: random.Random) -> Category:
    x, acc = rng.random(), 0.0
    for cat, share in CATEGORY_MIX.items():
        acc += share
        if x <= acc:
            return cat
    return CATEGORIES[-1]


def day_events(c: Community, day: date, rng: random.Random) -> list[Event]:
    """One day of work in community ``c``, each worker as diligent as ``c.diligence`` says (nothing on
    days off except the hotline)."""
    out: list[Event] = []
    working = chinese_calendar.is_workday(day)
    tag = day.strftime("%Y%m%d")
    for w in c.workers if working else []:
        p = c.diligence[w]
        shift = f"{w}s{tag}"
        start, hours = 8.5 + rng.random() * 0.5, p.shift_hours + p.shift_spread * rng.random() + p.shift_bonus
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
        contacts = max(p.contacts_at_least, round(rng.gauss(p.contacts, p.contacts_spread)))
        # Knocks drawn door by door may come to a door twice (the street workload's draws stay as they were).
        doors = rng.sample(mine, min(contacts, len(mine))) if p.different_doors else None
        for k in range(contacts if doors is None else len(doors)):
            h = rng.choice(mine) if doors is None else doors[k]
            visit = f"{w}v{tag}{k:02d}"
            modes: tuple[ContactMode, ...] = ("regular", "online", "priority")
            mode = rng.choices(modes, (0.5, 0.35, 0.15))[0]
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
                        special_assistance=h in c.special,
                        minutes=rng.randint(5, 30),
                        problems=problems,
                    ),
                )
            )
        if rng.random() < p.special_visit:
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
        if rng.random() < p.problem:
            issue = f"is-{w}i{tag}"
            cat = CATEGORIES[day.toordinal() % len(CATEGORIES)] if p.categories_in_turn else _pick_category(rng)
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
                        category=cat,
                        subcategory=rng.choice(SUBCATEGORIES[cat]),
                        severity=rng.choice(("low", "medium", "high")),
                        place=Place(building=c.building_of[h], grid=c.grid_of_worker[w]),
                        description="small problem found in the grid",
                        reported_by=w,
                    ),
                )
            )
            if rng.random() < p.solved:
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
        if day.weekday() == 4 and rng.random() < p.session:  # Friday: residents face-to-face
            session = f"{w}f{tag}"
            party = (
                [c.party_members[rng.randint(0, len(c.party_members) - 1)]] if rng.random() < p.session_party else []
            )
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
                        station=c.station,
                        party_members_present=party,
                        residents_attending=rng.randint(5, 30),
                        topics=["public-area rules"],
                    ),
                )
            )
        if day.day in (10, 11, 12) and rng.random() < p.council:
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
                        party_members=[c.party_members[1]],
                        resident_backbones=[c.backbones[0]],
                        attendees=12,
                        decisions=["staggered dog-walking times"],
                    ),
                )
            )
        if rng.random() < p.befriend:
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
        if rng.random() < p.training:
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
        if rng.random() < p.talent:
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
        if rng.random() < p.survey:
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
                    category=cat,
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
                    source="hotline",
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
    for c in comms:
        for w in c.workers:
            c.diligence[w] = Diligence.of(rng.choice((1.0, 1.0, 0.95, 0.85, 0.6)))
    yield from _days(comms, days, start, rng)


def generate_community(
    community: Community, days: int, seed: int = 1, start: date = date(2025, 1, 1)
) -> Iterator[tuple[date | None, list[Event]]]:
    """:func:`generate` for one named community (:func:`bairuijing`), its workers as diligent as it says."""
    yield from _days([community], days, start, random.Random(seed))


def _days(
    comms: list[Community], days: int, start: date, rng: random.Random
) -> Iterator[tuple[date | None, list[Event]]]:
    yield None, [e for c in comms for e in setup_events(c)]
    late: dict[date, list[Event]] = {}
    for n in range(days):
        day = start + timedelta(days=n)
        today: list[Event] = late.pop(day, [])
        for c in comms:
            for group, _ in by_aggregate(day_events(c, day, rng)):
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


def ledger_rows(
    community: str,
    households: Iterable[ve.HouseholdRegisteredData],
    buildings: Mapping[str, ve.BuildingRegisteredData] | None = None,
) -> list[dict[str, str]]:
    """The community's ledger as the CSV it keeps: personal data made up per household, deterministically,
    for the fields each entry holds (a partial entry has no ID number and no address).  An address in
    a named compound reads as residents write it (百瑞景4期4栋2单元1203)."""
    rows = []
    for d in households:
        rng = random.Random(d.household_id)
        present = set(d.fields_present)
        b = (buildings or {}).get(d.building_id)
        if b is not None and b.compound:
            address = f"{b.compound}{b.phase}期{b.number}栋{d.unit}单元{d.room}"
        else:
            address = f"{community} {d.building_id} {d.unit}单元 {d.room}"
        rows.append(
            {
                "household_id": d.household_id,
                "building": d.building_id,
                "unit": d.unit or "",
                "room": d.room or "",
                "grid": d.grid_id or "",
                "name": SURNAMES[rng.randrange(len(SURNAMES))] + GIVEN[rng.randrange(len(GIVEN))]
                if "name" in present
                else "",
                "phone": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}" if "phone" in present else "",
                "id_number": id_number(rng) if "id_number" in present else "",
                "address": address if "address" in present else "",
                "members": str(d.members) if "members" in present and d.members is not None else "",
                "tags": ";".join(d.tags),
            }
        )
    return rows
