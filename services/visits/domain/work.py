"""The 5+1 work a grid worker logs as one-off facts: visits, sessions, councils, friends, trainings,
talents, surveys.

Each fact has its own id and is a new aggregate appended at version 0, so it needs no state of its
own: it is decided on who is on duty and on the directory rows it names (households, persons,
buildings), fetched in bulk beforehand — the same rule for a single request and for each record
of a 500-record offline batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from shared.errors import Forbidden, Invalid, NotFound
from shared.events import Event
from shared.events.common import ContactMode, TalentField
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingCouncilHeldData,
    FaceToFaceSessionHeld,
    FaceToFaceSessionHeldData,
    ProblemNote,
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
)
from shared.timerules import check_occurred_at

from .households import HouseholdRef, in_grid, is_special_assistance

#: What came of a knock on the door.
VisitOutcome = Literal["contacted", "not_home", "refused", "follow_up"]
#: Roles of persons that count as party members (下沉党员 sinking / 直管党员 directly managed).
PARTY_MEMBER_ROLES = frozenset({"sinking_party_member", "direct_party_member"})


def session_counts(party_member_roles: Iterable[str]) -> bool:
    """A face-to-face session counts for the weekly quota with ≥ 1 sinking or directly-managed party member."""
    return any(role in PARTY_MEMBER_ROLES for role in party_member_roles)


def when_done(occurred_at: datetime | None, current: datetime, *, skew_seconds: float, max_days: float) -> datetime:
    """When the work was done — ``occurred_at``, else ``current`` — inside the window work may be logged in."""
    at = occurred_at or current
    check_occurred_at(at, current, skew_seconds=skew_seconds, max_days=max_days)
    return at


@dataclass(frozen=True, slots=True)
class ActingWorker:
    """The grid worker whose work is logged, and their grid."""

    worker_id: str
    grid_id: str | None


@dataclass(frozen=True, slots=True)
class WorkLookups:
    """The directory rows a set of work commands names, fetched in bulk (absent ones are not registered)."""

    households: Mapping[str, HouseholdRef] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)  # person id → role
    buildings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkCommand:
    """What every piece of logged work says: the community, the record's id, the worker the caller
    names (None: the caller), and when it was done."""

    kind: ClassVar[str]
    id_field: ClassVar[str]

    community: str
    record_id: str
    worker_id: str | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LogVisit(WorkCommand):
    """Log a household contact: regular knock (定期敲), online knock (网上敲), priority knock (重点敲).
    ``special_assistance`` None: derived from the household's tags."""

    kind: ClassVar[str] = "visit"
    id_field: ClassVar[str] = "visit_id"

    household_id: str
    mode: ContactMode
    special_assistance: bool | None = None
    minutes: int
    outcome: VisitOutcome = "contacted"
    notes: str | None = None
    problems: tuple[ProblemNote, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldSession(WorkCommand):
    """Hold the weekly residents face-to-face session (居民面对面) at the party-mass service station."""

    kind: ClassVar[str] = "face_to_face_session"
    id_field: ClassVar[str] = "session_id"

    station: str
    party_members_present: tuple[str, ...] = ()
    residents_attending: int = 0
    topics: tuple[str, ...] = ()
    problems: tuple[ProblemNote, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldCouncil(WorkCommand):
    """Hold the monthly building council meeting (楼栋议事会) in a building of the worker's grid."""

    kind: ClassVar[str] = "building_council"
    id_field: ClassVar[str] = "council_id"

    building_id: str
    party_members: tuple[str, ...] = ()
    resident_backbones: tuple[str, ...] = ()
    attendees: int = 0
    decisions: tuple[str, ...] = ()
    problems: tuple[ProblemNote, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BefriendResident(WorkCommand):
    """Befriend a resident (居民朋友) who answers the party committee's calls."""

    kind: ClassVar[str] = "resident_befriended"
    id_field: ClassVar[str] = "friend_id"

    household_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttendTraining(WorkCommand):
    """Attend a professional training (quarterly quota)."""

    kind: ClassVar[str] = "training_attended"
    id_field: ClassVar[str] = "attendance_id"

    training_id: str
    title: str
    organiser: str | None = None
    hours: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoverTalent(WorkCommand):
    """Record a community talent (社区能人): culture & sports, repairs, organising, design & planning."""

    kind: ClassVar[str] = "talent_discovered"
    id_field: ClassVar[str] = "talent_id"

    household_id: str | None = None
    field: TalentField
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyResident(WorkCommand):
    """Survey a resident: visited? knows the grid worker (知晓率)? satisfaction 1–5 (满意率)."""

    kind: ClassVar[str] = "resident_surveyed"
    id_field: ClassVar[str] = "survey_id"

    household_id: str
    visited: bool
    knows_grid_worker: bool
    satisfaction: int


#: Each kind of one-off work fact and its command.
WORK_COMMANDS: dict[str, type[WorkCommand]] = {
    cls.kind: cls
    for cls in (LogVisit, HoldSession, HoldCouncil, BefriendResident, AttendTraining, DiscoverTalent, SurveyResident)
}


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True, slots=True)
class WorkPlan:
    """The event one work command decided, ready to append at version 0, and what the answer tells."""

    kind: str
    record_id: str
    id_field: str
    events: list[Event]
    info: dict[str, Any] = field(default_factory=dict)


def _check_party_members(ids: Iterable[str], roles: Mapping[str, str], fld: str) -> None:
    for i, pid in enumerate(ids):
        role = roles.get(pid)
        if role is None:
            raise Invalid(f"{pid} is not a registered person", field=f"{fld}[{i}]")
        if role not in PARTY_MEMBER_ROLES:
            raise Invalid(f"{pid} is a {role}, not a sinking or directly-managed party member", field=f"{fld}[{i}]")


def decide_work(known: WorkLookups, cmd: WorkCommand, worker: ActingWorker) -> WorkPlan:
    """Decide the event of a one-off work fact done by ``worker`` (a new aggregate at version 0)."""
    w = worker.worker_id
    record_id = cmd.record_id
    common: dict[str, Any] = {
        "community": cmd.community,
        "aggregate_id": record_id,
        "actor": w,
        "occurred_at": cmd.at,
        "idempotency_key": record_id,
    }
    if isinstance(cmd, LogVisit):
        ref = in_grid(known.households.get(cmd.household_id), cmd.household_id, worker.grid_id)
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
            problems=list(cmd.problems),
        )
        return WorkPlan(
            cmd.kind, record_id, cmd.id_field, [VisitLogged.new(data=data, **common)], {"special_assistance": special}
        )
    if isinstance(cmd, HoldSession):
        _check_party_members(cmd.party_members_present, known.roles, "party_members_present")
        counts = session_counts(known.roles[p] for p in cmd.party_members_present)
        sdata = FaceToFaceSessionHeldData(
            session_id=record_id,
            worker_id=w,
            station=cmd.station,
            party_members_present=list(cmd.party_members_present),
            residents_attending=cmd.residents_attending,
            topics=list(cmd.topics),
            problems=list(cmd.problems),
        )
        return WorkPlan(
            cmd.kind,
            record_id,
            cmd.id_field,
            [FaceToFaceSessionHeld.new(data=sdata, **common)],
            {"counts_for_quota": counts},
        )
    if isinstance(cmd, HoldCouncil):
        building = known.buildings.get(cmd.building_id)
        if building is None:
            raise NotFound(f"building {cmd.building_id} is not registered", field="building_id")
        if worker.grid_id is None or building.get("grid_id") != worker.grid_id:
            raise Forbidden(f"building {cmd.building_id} is not in grid {worker.grid_id}", field="building_id")
        _check_party_members(cmd.party_members, known.roles, "party_members")
        for i, pid in enumerate(cmd.resident_backbones):
            if pid not in known.roles:
                raise Invalid(f"{pid} is not a registered person", field=f"resident_backbones[{i}]")
        cdata = BuildingCouncilHeldData(
            council_id=record_id,
            worker_id=w,
            building_id=cmd.building_id,
            party_members=list(cmd.party_members),
            resident_backbones=list(cmd.resident_backbones),
            attendees=cmd.attendees,
            decisions=list(cmd.decisions),
            problems=list(cmd.problems),
        )
        return WorkPlan(cmd.kind, record_id, cmd.id_field, [BuildingCouncilHeld.new(data=cdata, **common)])
    if isinstance(cmd, BefriendResident):
        in_grid(known.households.get(cmd.household_id), cmd.household_id, worker.grid_id)
        bdata = ResidentBefriendedData(friend_id=record_id, worker_id=w, household_id=cmd.household_id)
        return WorkPlan(cmd.kind, record_id, cmd.id_field, [ResidentBefriended.new(data=bdata, **common)])
    if isinstance(cmd, AttendTraining):
        tdata = TrainingAttendedData(
            attendance_id=record_id,
            worker_id=w,
            training_id=cmd.training_id,
            title=cmd.title,
            organiser=cmd.organiser,
            hours=cmd.hours,
        )
        return WorkPlan(cmd.kind, record_id, cmd.id_field, [TrainingAttended.new(data=tdata, **common)])
    if isinstance(cmd, DiscoverTalent):
        if cmd.household_id is not None:
            in_grid(known.households.get(cmd.household_id), cmd.household_id, worker.grid_id)
        ldata = TalentDiscoveredData(
            talent_id=record_id,
            worker_id=w,
            household_id=cmd.household_id,
            field=cmd.field,
            description=cmd.description,
        )
        return WorkPlan(cmd.kind, record_id, cmd.id_field, [TalentDiscovered.new(data=ldata, **common)])
    if isinstance(cmd, SurveyResident):
        in_grid(known.households.get(cmd.household_id), cmd.household_id, worker.grid_id)
        vdata = ResidentSurveyedData(
            survey_id=record_id,
            household_id=cmd.household_id,
            worker_id=w,
            visited=cmd.visited,
            knows_grid_worker=cmd.knows_grid_worker,
            satisfaction=cmd.satisfaction,
        )
        return WorkPlan(cmd.kind, record_id, cmd.id_field, [ResidentSurveyed.new(data=vdata, **common)])
    raise ValueError(f"not a one-off work command: {type(cmd).__name__}")
