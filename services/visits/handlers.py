"""Application functions of the visits service: load, decide, append.

Each takes the command, the caller and ``deps`` (keyword-only); none knows about HTTP.  Work
facts with their own id (visit, session, council…) are *planned* by a pure function from the
command and pre-fetched lookups, then appended at version 0: that is what makes a single request
and a 500-record sync batch share every rule, and what makes a re-send land once.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import TOKEN_PATTERN, Event, now, uuid7
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingCouncilHeldData,
    BuildingRegistered,
    BuildingRegisteredData,
    CommunityRegistered,
    CommunityRegisteredData,
    FaceToFaceSessionHeld,
    FaceToFaceSessionHeldData,
    GridDefined,
    GridDefinedData,
    HouseholdRegistered,
    HouseholdRegisteredData,
    PersonRegistered,
    PersonRegisteredData,
    ResidentBefriended,
    ResidentBefriendedData,
    ResidentSurveyed,
    ResidentSurveyedData,
    TalentDiscovered,
    TalentDiscoveredData,
    TrainingAttended,
    TrainingAttendedData,
    VisitLogged,
    VisitLoggedData,
    VolunteerPointsRedeemedData,
    VolunteerServiceLoggedData,
    WorkerRegistered,
    WorkerRegisteredData,
)
from shared.eventstore import Aggregate, ConcurrencyError, EventStore, aggregate_filter
from shared.timerules import check_occurred_at

from .directory import DIRECTORY, HOUSEHOLD, Directory, HouseholdRef, definition
from .domain import (
    ERASED,
    PARTY_MEMBER_ROLES,
    PERSONAL_FIELDS,
    REQUIRED_LEDGER_FIELDS,
    AlreadyRegistered,
    DataErased,
    ShiftLog,
    VolunteerAccount,
    check_tags,
    decide_definition,
    decide_erasure,
    decide_profile_update,
    decide_redemption,
    decide_shift_end,
    decide_shift_start,
    decide_tagging,
    decide_volunteer_service,
    evolve_shift_log,
    evolve_volunteer,
    is_special_assistance,
    ledger_missing,
    session_counts,
)
from .pii import AuditLog, KeyStore, seal, unseal
from .schemas import (
    BefriendIn,
    BuildingIn,
    Changed,
    CommunityIn,
    CouncilIn,
    Defined,
    ErasureIn,
    GridIn,
    HouseholdIn,
    HouseholdOut,
    HouseholdTags,
    HouseholdUpdate,
    PersonIn,
    Recorded,
    RedemptionIn,
    SessionIn,
    ShiftEndIn,
    ShiftStartIn,
    SurveyIn,
    TalentIn,
    TrainingIn,
    VisitIn,
    VolunteerServiceIn,
    Work,
    WorkerIn,
)
from .settings import VisitsSettings

ACTIVITY = "proj_visits_activity"
SHIFT_LOG = Aggregate("visits", "shift", ShiftLog, evolve_shift_log, ShiftLog)
VOLUNTEER = Aggregate("visits", "volunteer", VolunteerAccount, evolve_volunteer, VolunteerAccount)


@dataclass
class Deps:
    """What the handlers need, built once by the service's lifespan."""

    store: EventStore
    pool: asyncpg.Pool
    directory: Directory
    keys: KeyStore
    audit: AuditLog
    settings: VisitsSettings


def build_deps(store: EventStore, pool: asyncpg.Pool, settings: VisitsSettings) -> Deps:
    """Wire the handlers' dependencies from live connections."""
    return Deps(
        store=store,
        pool=pool,
        directory=Directory(pool, store, settings.directory_cache_seconds),
        keys=KeyStore(pool),
        audit=AuditLog(pool),
        settings=settings,
    )


# ---------------------------------------------------------------- who is acting


@dataclass(frozen=True, slots=True)
class Acting:
    """The grid worker whose work is logged, and their grid."""

    worker_id: str
    grid_id: str | None
    by: str


async def acting_worker(principal: Principal, community: str, worker_id: str | None, *, deps: Deps) -> Acting:
    """A grid worker logs their own work; a secretary logs it for a named worker of the community."""
    if principal.role == "grid_worker":
        if not principal.worker_id:
            raise Forbidden("the token carries no worker_id", field="worker_id")
        if worker_id not in (None, principal.worker_id):
            raise Forbidden("a grid worker logs only their own work", field="worker_id")
        return Acting(principal.worker_id, principal.grid, principal.sub)
    if worker_id is None:
        raise Invalid("name the worker whose work this is", field="worker_id")
    known, grid = await deps.directory.worker_grid(community, worker_id)
    if not known:
        raise NotFound(f"worker {worker_id} is not registered", field="worker_id")
    return Acting(worker_id, grid, principal.sub)


def in_grid(
    ref: HouseholdRef | None, household_id: str, grid_id: str | None, field: str = "household_id"
) -> HouseholdRef:
    """The household, if it exists (404) and lies in ``grid_id`` (403)."""
    if ref is None:
        raise NotFound(f"household {household_id} is not registered", field=field)
    if grid_id is None or ref.grid_id != grid_id:
        raise Forbidden(f"household {household_id} is not in grid {grid_id}", field=field)
    return ref


def when(cmd: Work, settings: VisitsSettings, at_now: datetime | None = None) -> datetime:
    """The command's occurred_at (default now), inside the accepted window."""
    current = at_now or now()
    at = cmd.occurred_at or current
    check_occurred_at(at, current, skew_seconds=settings.clock_skew_seconds, max_days=settings.max_backdate_days)
    return at


def check_version(expected: int | None, actual: int, aggregate: str) -> None:
    """A stale ``expected_version`` is a 409."""
    if expected is not None and expected != actual:
        raise ConcurrencyError(aggregate, expected, actual)


# ---------------------------------------------------------------- directory: who and where


async def define(event: Event, expected_version: int | None, *, deps: Deps) -> Defined:
    """Define or redefine a directory entry; the same definition again is a duplicate."""
    loaded = await deps.store.load(definition(event.aggregate_type), event.community, event.aggregate_id)
    events = decide_definition(loaded.state, event)
    if not events:
        return Defined(id=event.aggregate_id, version=loaded.version, duplicate=True)
    check_version(expected_version, loaded.version, f"{event.aggregate_type} {event.aggregate_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Defined(id=event.aggregate_id, version=res.version, duplicate=res.duplicate)


async def register_community(community: str, cmd: CommunityIn, principal: Principal, *, deps: Deps) -> Defined:
    """社区: a community joins under its street; a street admin registers only their street's."""
    if principal.role == "street_admin" and cmd.street != principal.street:
        raise Forbidden(
            f"street admin of {principal.street} cannot register a community of {cmd.street}", field="street"
        )
    data = CommunityRegisteredData(community_id=community, **cmd.model_dump())
    event = CommunityRegistered.new(community=community, aggregate_id=community, actor=principal.sub, data=data)
    return await define(event, None, deps=deps)


async def register_building(
    community: str, building_id: str, cmd: BuildingIn, principal: Principal, *, deps: Deps
) -> Defined:
    """楼栋: a building of the community."""
    data = BuildingRegisteredData(building_id=building_id, **cmd.model_dump())
    event = BuildingRegistered.new(community=community, aggregate_id=building_id, actor=principal.sub, data=data)
    return await define(event, None, deps=deps)


async def define_grid(community: str, grid_id: str, cmd: GridIn, principal: Principal, *, deps: Deps) -> Defined:
    """网格: a grid's buildings and its worker (redrawing moves the buildings' households along)."""
    data = GridDefinedData(grid_id=grid_id, **cmd.model_dump(exclude={"expected_version"}))
    event = GridDefined.new(community=community, aggregate_id=grid_id, actor=principal.sub, data=data)
    return await define(event, cmd.expected_version, deps=deps)


async def register_worker(
    community: str, worker_id: str, cmd: WorkerIn, principal: Principal, *, deps: Deps
) -> Defined:
    """网格员 and other community workers."""
    data = WorkerRegisteredData(worker_id=worker_id, **cmd.model_dump())
    event = WorkerRegistered.new(community=community, aggregate_id=worker_id, actor=principal.sub, data=data)
    return await define(event, None, deps=deps)


async def register_person(
    community: str, person_id: str, cmd: PersonIn, principal: Principal, *, deps: Deps
) -> Defined:
    """Party members, building leaders, resident backbones and volunteers."""
    data = PersonRegisteredData(person_id=person_id, **cmd.model_dump())
    event = PersonRegistered.new(community=community, aggregate_id=person_id, actor=principal.sub, data=data)
    return await define(event, None, deps=deps)


# ---------------------------------------------------------------- households


def _fields_present(personal: Mapping[str, str], members: int | None) -> list[str]:
    have = set(personal) | ({"members"} if members is not None else set())
    return [f for f in REQUIRED_LEDGER_FIELDS if f in have]


async def register_household(community: str, cmd: HouseholdIn, principal: Principal, *, deps: Deps) -> Changed:
    """Enter a household in the ledger; its personal fields are sealed with a new household key."""
    building = await deps.directory.building(community, cmd.building_id)
    if building is None:
        raise NotFound(f"building {cmd.building_id} is not registered", field="building_id")
    grid = cmd.grid_id or building.get("grid_id")
    if principal.role == "grid_worker" and (grid is None or grid != principal.grid):
        raise Forbidden(f"household's grid {grid} is not the worker's grid", field="building_id")
    tags = check_tags(cmd.tags)
    personal = cmd.personal.given()
    loaded = await deps.store.load(HOUSEHOLD, community, cmd.household_id)
    if loaded.state.registered:
        s = loaded.state
        key = await deps.keys.key(community, cmd.household_id)
        same = (s.building_id, s.unit, s.room, s.members, sorted(s.tags)) == (
            cmd.building_id,
            cmd.unit,
            cmd.room,
            cmd.members,
            sorted(tags),
        ) and unseal(key.key, community, cmd.household_id, s.sealed) == personal
        if same:
            return Changed(id=cmd.household_id, version=loaded.version, duplicate=True)
        raise AlreadyRegistered(
            f"household {cmd.household_id} is already registered; change it with PATCH", field="household_id"
        )
    sealed: dict[str, str] = {}
    if personal:
        key = await deps.keys.key(community, cmd.household_id, create=True)
        assert key.key is not None
        sealed = seal(key.key, community, cmd.household_id, personal)
    data = HouseholdRegisteredData(
        household_id=cmd.household_id,
        building_id=cmd.building_id,
        unit=cmd.unit,
        room=cmd.room,
        grid_id=grid,
        members=cmd.members,
        tags=tags,
        fields_present=_fields_present(personal, cmd.members),
        sealed=sealed,
    )
    event = HouseholdRegistered.new(community=community, aggregate_id=cmd.household_id, actor=principal.sub, data=data)
    res = await deps.store.append([event], 0)
    deps.directory.changed(community, cmd.household_id, res.version)
    return Changed(id=cmd.household_id, version=res.version, duplicate=res.duplicate)


async def _household_for_change(community: str, household_id: str, principal: Principal, *, deps: Deps) -> Any:
    loaded = await deps.store.load(HOUSEHOLD, community, household_id)
    if not loaded.state.registered:
        raise NotFound(f"household {household_id} is not registered", field="household_id")
    if principal.role == "grid_worker":
        ref = await deps.directory.household(community, household_id)
        in_grid(ref, household_id, principal.grid)
    return loaded


async def update_household(
    community: str, household_id: str, cmd: HouseholdUpdate, expected: int | None, principal: Principal, *, deps: Deps
) -> Changed:
    """Complete or correct a ledger entry (a stale expected version → 409)."""
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    state = loaded.state
    personal = cmd.personal.given()
    sealed: dict[str, str] = {}
    if personal and not state.erased:
        key = await deps.keys.key(community, household_id, create=True)
        if key.key is None:  # the key was destroyed and the erasure event is still to be recorded
            raise DataErased("this household's personal data was erased", field="personal")
        current = unseal(key.key, community, household_id, state.sealed)
        # Only fields that really change are re-sealed, so a retried update changes nothing.
        changed = {f: v for f, v in personal.items() if current.get(f) != v}
        sealed = seal(key.key, community, household_id, changed)
    elif personal:
        sealed = dict.fromkeys(personal, "")  # decide refuses personal data for an erased household
    events = decide_profile_update(
        state, community=community, actor=principal.sub, sealed=sealed, cleared=cmd.clear, members=cmd.members
    )
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    check_version(expected, loaded.version, f"household {household_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def tag_household(
    community: str, household_id: str, cmd: HouseholdTags, expected: int | None, principal: Principal, *, deps: Deps
) -> Changed:
    """Tag or untag a household (special assistance, elderly living alone, young…)."""
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    events = decide_tagging(loaded.state, community=community, actor=principal.sub, add=cmd.add, remove=cmd.remove)
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    check_version(expected, loaded.version, f"household {household_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def erase_household(
    community: str, household_id: str, cmd: ErasureIn, principal: Principal, *, deps: Deps
) -> Changed:
    """PIPL erasure: destroy the household key, then record ResidentDataErased."""
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    # The key goes first: if the append fails, the data is already unreadable and a retry records it.
    await deps.keys.destroy(community, household_id)
    events = decide_erasure(loaded.state, community=community, actor=principal.sub, reason=cmd.reason)
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


def may_read_personal(principal: Principal, grid_id: str | None) -> tuple[bool, bool]:
    """(may read?, must audit?) — the owning grid worker reads unaudited; secretary and street admin audited."""
    if principal.role == "grid_worker":
        return (grid_id is not None and grid_id == principal.grid, False)
    if principal.role in ("secretary", "street_admin"):
        return (True, True)
    return (False, False)


async def household_view(
    community: str, household_id: str, principal: Principal, *, reveal: bool, deps: Deps
) -> HouseholdOut:
    """A household with its ledger completeness, its visit counts and, where allowed, its personal fields."""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT h.*, a.visits, a.special_visits, a.last_visit_at FROM {DIRECTORY}.households h "
            f"LEFT JOIN {ACTIVITY}.household_visits a ON a.community = h.community AND a.household_id = h.household_id "
            "WHERE h.community = $1 AND h.household_id = $2",
            community,
            household_id,
        )
    if row is None:
        loaded = await deps.store.load(HOUSEHOLD, community, household_id)
        if not loaded.state.registered:
            raise NotFound(f"household {household_id} is not registered", field="household_id")
        s = loaded.state
        item: dict[str, Any] = {
            **s.model_dump(),
            "version": loaded.version,
            "visits": 0,
            "special_visits": 0,
            "last_visit_at": None,
        }
    else:
        item = dict(row)
        item["sealed"] = _json(item["sealed"])
    if principal.role == "grid_worker" and item["grid_id"] != principal.grid:
        raise Forbidden(f"household {household_id} is not in grid {principal.grid}", field="household_id")
    allowed, audited = may_read_personal(principal, item["grid_id"])
    personal: dict[str, str] | None = None
    owner = allowed and not audited
    if allowed and (reveal or owner):
        if item["erased"]:
            personal = dict.fromkeys(PERSONAL_FIELDS, ERASED)
        else:
            key = await deps.keys.key(community, household_id)
            personal = unseal(key.key, community, household_id, item["sealed"])
            if audited and key.key is not None:
                await deps.audit.record(principal, community, [(household_id, sorted(personal))], "household_view")
    elif reveal:
        raise Forbidden(f"role {principal.role} may not read residents' personal data", field="reveal")
    missing = ledger_missing(item["fields_present"], item["erased"])
    return HouseholdOut(
        household_id=household_id,
        building_id=item["building_id"],
        unit=item["unit"],
        room=item["room"],
        grid_id=item["grid_id"],
        members=item["members"],
        tags=list(item["tags"]),
        fields_present=list(item["fields_present"]),
        missing=missing,
        complete=not missing,
        erased=item["erased"],
        version=item["version"],
        visits=item["visits"] or 0,
        special_visits=item["special_visits"] or 0,
        last_visit_at=item["last_visit_at"],
        personal=personal,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ---------------------------------------------------------------- planning work facts


@dataclass
class Lookups:
    """Directory rows a set of commands refers to, fetched in bulk."""

    households: dict[str, HouseholdRef] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    buildings: dict[str, dict[str, Any]] = field(default_factory=dict)


async def lookups_for(community: str, cmds: Iterable[Work], *, deps: Deps) -> Lookups:
    """One query per kind of row for every household, person and building the commands name."""
    households: set[str] = set()
    persons: set[str] = set()
    buildings: set[str] = set()
    for cmd in cmds:
        hid = getattr(cmd, "household_id", None)
        if hid:
            households.add(hid)
        if isinstance(cmd, SessionIn):
            persons.update(cmd.party_members_present)
        if isinstance(cmd, CouncilIn):
            persons.update(cmd.party_members)
            persons.update(cmd.resident_backbones)
            buildings.add(cmd.building_id)
    look = Lookups()
    if households:
        look.households = await deps.directory.households(community, households)
    if persons:
        look.roles = await deps.directory.person_roles(community, persons)
    for bid in buildings:
        b = await deps.directory.building(community, bid)
        if b is not None:
            look.buildings[bid] = b
    return look


@dataclass
class Plan:
    """The event(s) one command decided, ready to append."""

    kind: str
    record_id: str
    id_field: str
    events: list[Event]
    expected_version: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def _check_party_members(ids: list[str], roles: Mapping[str, str], fld: str) -> None:
    for i, pid in enumerate(ids):
        role = roles.get(pid)
        if role is None:
            raise Invalid(f"{pid} is not a registered person", field=f"{fld}[{i}]")
        if role not in PARTY_MEMBER_ROLES:
            raise Invalid(f"{pid} is a {role}, not a sinking or directly-managed party member", field=f"{fld}[{i}]")


def plan_work(
    kind: str, cmd: Work, record_id: str, at: datetime, acting: Acting, look: Lookups, community: str
) -> Plan:
    """Decide the event of a one-off work fact (a new aggregate at version 0)."""
    w = acting.worker_id
    common: dict[str, Any] = {
        "community": community,
        "aggregate_id": record_id,
        "actor": w,
        "occurred_at": at,
        "idempotency_key": record_id,
    }
    if isinstance(cmd, VisitIn):
        ref = in_grid(look.households.get(cmd.household_id), cmd.household_id, acting.grid_id)
        special = cmd.special_assistance if cmd.special_assistance is not None else is_special_assistance(ref.tags)
        data = VisitLoggedData(
            visit_id=record_id,
            worker_id=w,
            household_id=cmd.household_id,
            grid_id=ref.grid_id,
            mode=cmd.mode,
            special_assistance=special,
            minutes=cmd.minutes,
            outcome=cmd.outcome,
            notes=cmd.notes,
            problems=cmd.problems,
        )
        return Plan(
            kind, record_id, "visit_id", [VisitLogged.new(data=data, **common)], info={"special_assistance": special}
        )
    if isinstance(cmd, SessionIn):
        _check_party_members(cmd.party_members_present, look.roles, "party_members_present")
        counts = session_counts(look.roles[p] for p in cmd.party_members_present)
        sdata = FaceToFaceSessionHeldData(
            session_id=record_id,
            worker_id=w,
            station=cmd.station,
            party_members_present=cmd.party_members_present,
            residents_attending=cmd.residents_attending,
            topics=cmd.topics,
            problems=cmd.problems,
        )
        return Plan(
            kind,
            record_id,
            "session_id",
            [FaceToFaceSessionHeld.new(data=sdata, **common)],
            info={"counts_for_quota": counts},
        )
    if isinstance(cmd, CouncilIn):
        building = look.buildings.get(cmd.building_id)
        if building is None:
            raise NotFound(f"building {cmd.building_id} is not registered", field="building_id")
        if acting.grid_id is None or building.get("grid_id") != acting.grid_id:
            raise Forbidden(f"building {cmd.building_id} is not in grid {acting.grid_id}", field="building_id")
        _check_party_members(cmd.party_members, look.roles, "party_members")
        for i, pid in enumerate(cmd.resident_backbones):
            if pid not in look.roles:
                raise Invalid(f"{pid} is not a registered person", field=f"resident_backbones[{i}]")
        cdata = BuildingCouncilHeldData(
            council_id=record_id,
            worker_id=w,
            building_id=cmd.building_id,
            party_members=cmd.party_members,
            resident_backbones=cmd.resident_backbones,
            attendees=cmd.attendees,
            decisions=cmd.decisions,
            problems=cmd.problems,
        )
        return Plan(kind, record_id, "council_id", [BuildingCouncilHeld.new(data=cdata, **common)])
    if isinstance(cmd, BefriendIn):
        in_grid(look.households.get(cmd.household_id), cmd.household_id, acting.grid_id)
        bdata = ResidentBefriendedData(friend_id=record_id, worker_id=w, household_id=cmd.household_id)
        return Plan(kind, record_id, "friend_id", [ResidentBefriended.new(data=bdata, **common)])
    if isinstance(cmd, TrainingIn):
        tdata = TrainingAttendedData(
            attendance_id=record_id,
            worker_id=w,
            training_id=cmd.training_id,
            title=cmd.title,
            organiser=cmd.organiser,
            hours=cmd.hours,
        )
        return Plan(kind, record_id, "attendance_id", [TrainingAttended.new(data=tdata, **common)])
    if isinstance(cmd, TalentIn):
        if cmd.household_id is not None:
            in_grid(look.households.get(cmd.household_id), cmd.household_id, acting.grid_id)
        ldata = TalentDiscoveredData(
            talent_id=record_id,
            worker_id=w,
            household_id=cmd.household_id,
            field=cmd.field,
            description=cmd.description,
        )
        return Plan(kind, record_id, "talent_id", [TalentDiscovered.new(data=ldata, **common)])
    if isinstance(cmd, SurveyIn):
        in_grid(look.households.get(cmd.household_id), cmd.household_id, acting.grid_id)
        vdata = ResidentSurveyedData(
            survey_id=record_id,
            household_id=cmd.household_id,
            worker_id=w,
            visited=cmd.visited,
            knows_grid_worker=cmd.knows_grid_worker,
            satisfaction=cmd.satisfaction,
        )
        return Plan(kind, record_id, "survey_id", [ResidentSurveyed.new(data=vdata, **common)])
    raise ValueError(f"not a one-off work command: {type(cmd).__name__}")


#: Command model and its id field for each kind of one-off work fact.
WORK_KINDS: dict[str, tuple[type[Work], str]] = {
    "visit": (VisitIn, "visit_id"),
    "face_to_face_session": (SessionIn, "session_id"),
    "building_council": (CouncilIn, "council_id"),
    "resident_befriended": (BefriendIn, "friend_id"),
    "training_attended": (TrainingIn, "attendance_id"),
    "talent_discovered": (TalentIn, "talent_id"),
    "resident_surveyed": (SurveyIn, "survey_id"),
}


def record_id_of(cmd: Work, id_field: str, idempotency_key: str | None) -> str:
    """The client's id for the record, else the Idempotency-Key, else a fresh UUIDv7."""
    given = getattr(cmd, id_field, None)
    if given:
        return str(given)
    if idempotency_key:
        if not re.match(TOKEN_PATTERN, idempotency_key):
            raise Invalid("Idempotency-Key must match " + TOKEN_PATTERN, field="Idempotency-Key")
        return idempotency_key
    return str(uuid7())


async def same_fact(store: EventStore, event: Event) -> bool:
    """Whether the aggregate already holds this fact (same data), e.g. re-sent with another time."""
    stored = await store.read(
        aggregate_filter(store.ns, event.community, event.context, event.aggregate_type, event.aggregate_id),
        limit=1,
    )
    return bool(stored) and stored[0].event().data == event.data


def id_taken(plan: Plan) -> Conflict:
    return Conflict(f"{plan.id_field} {plan.record_id} is already used by a different record", field=plan.id_field)


async def log_work(
    kind: str, community: str, cmd: Work, principal: Principal, idempotency_key: str | None, *, deps: Deps
) -> Recorded:
    """Log one work fact (visit, session, council, friend, training, talent, survey)."""
    _, id_field = WORK_KINDS[kind]
    record_id = record_id_of(cmd, id_field, idempotency_key)
    at = when(cmd, deps.settings)
    acting = await acting_worker(principal, community, cmd.worker_id, deps=deps)
    look = await lookups_for(community, [cmd], deps=deps)
    plan = plan_work(kind, cmd, record_id, at, acting, look, community)
    try:
        res = await deps.store.append(plan.events, 0)
    except ConcurrencyError:
        if not await same_fact(deps.store, plan.events[0]):
            raise id_taken(plan) from None
        return Recorded(id=record_id, kind=kind, version=1, duplicate=True, **plan.info)
    return Recorded(
        id=record_id,
        kind=kind,
        event_id=str(plan.events[0].id),
        version=res.version,
        duplicate=res.duplicate,
        **plan.info,
    )


# ---------------------------------------------------------------- shifts


async def start_shift(
    community: str,
    cmd: ShiftStartIn,
    expected: int | None,
    principal: Principal,
    idempotency_key: str | None,
    *,
    deps: Deps,
) -> Recorded:
    """Start a shift in the grid; a worker cannot have two open shifts."""
    acting = await acting_worker(principal, community, cmd.worker_id, deps=deps)
    at = when(cmd, deps.settings)
    shift_id = record_id_of(cmd, "shift_id", idempotency_key)
    loaded = await deps.store.load(SHIFT_LOG, community, acting.worker_id)
    events = decide_shift_start(
        loaded.state, community=community, worker_id=acting.worker_id, shift_id=shift_id, grid_id=acting.grid_id, at=at
    )
    if not events:
        return Recorded(id=shift_id, kind="shift_started", version=loaded.version, duplicate=True)
    check_version(expected, loaded.version, f"shift log of {acting.worker_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Recorded(
        id=shift_id, kind="shift_started", event_id=str(events[0].id), version=res.version, duplicate=res.duplicate
    )


async def end_shift(
    community: str, shift_id: str, cmd: ShiftEndIn, expected: int | None, principal: Principal, *, deps: Deps
) -> Recorded:
    """End the open shift; the minutes in the grid go into ShiftEnded (over 16 h is refused)."""
    acting = await acting_worker(principal, community, cmd.worker_id, deps=deps)
    at = when(cmd, deps.settings)
    loaded = await deps.store.load(SHIFT_LOG, community, acting.worker_id)
    events = decide_shift_end(
        loaded.state,
        community=community,
        worker_id=acting.worker_id,
        shift_id=shift_id,
        at=at,
        max_hours=deps.settings.max_shift_hours,
    )
    if not events:
        return Recorded(id=shift_id, kind="shift_ended", version=loaded.version, duplicate=True)
    check_version(expected, loaded.version, f"shift log of {acting.worker_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    minutes = events[0].data.minutes  # type: ignore[attr-defined]
    return Recorded(
        id=shift_id,
        kind="shift_ended",
        event_id=str(events[0].id),
        version=res.version,
        duplicate=res.duplicate,
        minutes=minutes,
    )


async def shift_status(community: str, worker_id: str, *, deps: Deps) -> dict[str, Any]:
    """The worker's open shift (if any) and the shift log's version (for expected_version)."""
    loaded = await deps.store.load(SHIFT_LOG, community, worker_id)
    s = loaded.state
    return {
        "worker_id": worker_id,
        "version": loaded.version,
        "open_shift_id": s.open_shift_id,
        "started_at": s.open_started_at,
        "grid_id": s.open_grid_id,
    }


# ---------------------------------------------------------------- volunteer points


async def _account_change(community: str, household_id: str, decide: Any, *, deps: Deps) -> Recorded:
    """Load the account, decide, append; on a concurrent change decide again on fresh state."""
    for attempt in range(5):
        loaded = await deps.store.load(VOLUNTEER, community, household_id)
        plan: Plan = decide(loaded.state)
        if not plan.events:
            return Recorded(
                id=plan.record_id, kind=plan.kind, version=loaded.version, duplicate=True, balance=loaded.state.balance
            )
        try:
            res = await deps.store.append(plan.events, loaded.version, expected_seq=loaded.last_seq)
        except ConcurrencyError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
            continue
        state = evolve_volunteer(loaded.state, plan.events[0])
        return Recorded(
            id=plan.record_id,
            kind=plan.kind,
            event_id=str(plan.events[0].id),
            version=res.version,
            duplicate=res.duplicate,
            balance=state.balance,
        )
    raise AssertionError("unreachable")


def plan_volunteer(
    kind: str,
    cmd: VolunteerServiceIn | RedemptionIn,
    record_id: str,
    at: datetime,
    actor: str,
    community: str,
    settings: VisitsSettings,
    state: VolunteerAccount,
) -> Plan:
    """Decide a volunteer service credit or a redemption on the household's account."""
    if isinstance(cmd, VolunteerServiceIn):
        points = cmd.points if cmd.points is not None else round(cmd.hours * settings.volunteer_points_per_hour)
        sdata = VolunteerServiceLoggedData(
            service_id=record_id,
            household_id=cmd.household_id,
            activity=cmd.activity,
            hours=cmd.hours,
            points=points,
            service_date=cmd.service_date,
        )
        events = decide_volunteer_service(state, community=community, actor=actor, data=sdata, at=at)
        return Plan(kind, record_id, "service_id", events)
    rdata = VolunteerPointsRedeemedData(
        redemption_id=record_id, household_id=cmd.household_id, points=cmd.points, item=cmd.item
    )
    events = decide_redemption(state, community=community, actor=actor, data=rdata, at=at)
    return Plan(kind, record_id, "redemption_id", events)


async def volunteer(
    kind: str,
    community: str,
    cmd: VolunteerServiceIn | RedemptionIn,
    principal: Principal,
    idempotency_key: str | None,
    *,
    deps: Deps,
) -> Recorded:
    """Credit volunteer service or redeem points (志愿服务换积分) for a household in the worker's grid."""
    id_field = "service_id" if isinstance(cmd, VolunteerServiceIn) else "redemption_id"
    record_id = record_id_of(cmd, id_field, idempotency_key)
    at = when(cmd, deps.settings)
    ref = await deps.directory.household(community, cmd.household_id)
    if principal.role == "grid_worker":
        acting = await acting_worker(principal, community, cmd.worker_id, deps=deps)
        in_grid(ref, cmd.household_id, acting.grid_id)
        actor = acting.worker_id
    else:
        if ref is None:
            raise NotFound(f"household {cmd.household_id} is not registered", field="household_id")
        actor = principal.sub
    return await _account_change(
        community,
        cmd.household_id,
        lambda state: plan_volunteer(kind, cmd, record_id, at, actor, community, deps.settings, state),
        deps=deps,
    )


async def volunteer_balance(community: str, household_id: str, *, deps: Deps) -> dict[str, Any]:
    """A household's volunteer points, from its account's own stream."""
    if await deps.directory.household(community, household_id) is None:
        raise NotFound(f"household {household_id} is not registered", field="household_id")
    loaded = await deps.store.load(VOLUNTEER, community, household_id)
    s = loaded.state
    return {
        "household_id": household_id,
        "earned": s.earned,
        "redeemed": s.redeemed,
        "balance": s.balance,
        "version": loaded.version,
    }


# ---------------------------------------------------------------- reading the work


async def worker_day(community: str, worker_id: str, day: Any, *, deps: Deps) -> dict[str, Any]:
    """One worker's day: visits, special-assistance visits, minutes in the grid, problems found…"""
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT * FROM {ACTIVITY}.worker_days WHERE community = $1 AND worker_id = $2 AND day = $3",
            community,
            worker_id,
            day,
        )
    base = {
        "worker_id": worker_id,
        "day": day.isoformat(),
        "visits": 0,
        "special_visits": 0,
        "visit_minutes": 0,
        "shift_minutes": 0.0,
        "problems": 0,
        "befriended": 0,
        "trainings": 0,
        "talents": 0,
        "surveys": 0,
    }
    if row is not None:
        base.update({k: v for k, v in dict(row).items() if k in base and k not in ("worker_id", "day")})
    base["hours_in_grid"] = round(base["shift_minutes"] / 60, 2)
    return base


async def list_sessions(community: str, worker_id: str | None, *, deps: Deps, limit: int = 100) -> list[dict[str, Any]]:
    """Face-to-face sessions, newest first, each with whether it counts for the weekly quota."""
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT session_id, worker_id, station, held_at, party_members, residents, topics, problems "
            f"FROM {ACTIVITY}.sessions WHERE community = $1 AND ($2::text IS NULL OR worker_id = $2) "
            "ORDER BY held_at DESC LIMIT $3",
            community,
            worker_id,
            limit,
        )
    return [{**dict(r), "counts_for_quota": r["party_members"] >= 1} for r in rows]
