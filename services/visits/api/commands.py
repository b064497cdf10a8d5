"""HTTP bodies → domain commands: the record's id, when the work was done, and the settings a rule needs.

The same translation serves a route, the ingest fast path and each record of an offline batch, so
a visit sent alone and the same visit synced from a phone become the same command.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.errors import Invalid
from shared.events import TOKEN_PATTERN, now, uuid7
from shared.events.visits import (
    BuildingRegisteredData,
    CommunityRegisteredData,
    GridDefinedData,
    PersonRegisteredData,
    WorkerRegisteredData,
)

from ..domain.definitions import DefineEntry
from ..domain.households import EraseResidentData, RegisterHousehold, TagHousehold, UpdateHouseholdProfile
from ..domain.shifts import EndShift, StartShift
from ..domain.volunteer import AccountCommand, LogVolunteerService, RedeemPoints
from ..domain.work import (
    WORK_COMMANDS,
    AttendTraining,
    BefriendResident,
    DiscoverTalent,
    HoldCouncil,
    HoldSession,
    LogVisit,
    SurveyResident,
    WorkCommand,
    when_done,
)
from ..handlers.sync import OfflineCommand
from ..schemas import (
    BefriendIn,
    BuildingIn,
    CommunityIn,
    CouncilIn,
    ErasureIn,
    GridIn,
    HouseholdIn,
    HouseholdTags,
    HouseholdUpdate,
    PersonIn,
    RedemptionIn,
    SessionIn,
    ShiftEndIn,
    ShiftStartIn,
    SurveyIn,
    SyncRecord,
    TalentIn,
    TrainingIn,
    VisitIn,
    VolunteerServiceIn,
    Work,
    WorkerIn,
)
from ..settings import VisitsSettings

_TOKEN = re.compile(TOKEN_PATTERN)
_TIME = TypeAdapter(datetime)


def record_id_of(body: Work, id_field: str, idempotency_key: str | None) -> str:
    """The client's id for the record, else the Idempotency-Key, else a fresh UUIDv7."""
    given = getattr(body, id_field, None)
    if given:
        return str(given)
    if idempotency_key:
        if not _TOKEN.match(idempotency_key):
            raise Invalid("Idempotency-Key must match " + TOKEN_PATTERN, field="Idempotency-Key")
        return idempotency_key
    return str(uuid7())


def time_of(body: Work, settings: VisitsSettings, current: datetime | None = None) -> datetime:
    """When the work was done: the body's occurred_at (default now), inside the accepted window."""
    return when_done(
        body.occurred_at,
        current or now(),
        skew_seconds=settings.clock_skew_seconds,
        max_days=settings.max_backdate_days,
    )


# ---------------------------------------------------------------- the 5+1 work


def work_command(body: Work, *, community: str, record_id: str, at: datetime) -> WorkCommand:
    """The command of a one-off work fact's body."""
    if isinstance(body, VisitIn):  # the field app's hot path: spelled out, no dict to unpack
        return LogVisit(
            community=community,
            record_id=record_id,
            worker_id=body.worker_id,
            at=at,
            household_id=body.household_id,
            mode=body.mode,
            special_assistance=body.special_assistance,
            minutes=body.minutes,
            outcome=body.outcome,
            notes=body.notes,
            problems=tuple(body.problems),
        )
    common: dict[str, Any] = {"community": community, "record_id": record_id, "worker_id": body.worker_id, "at": at}
    if isinstance(body, SessionIn):
        return HoldSession(
            station=body.station,
            party_members_present=tuple(body.party_members_present),
            residents_attending=body.residents_attending,
            topics=tuple(body.topics),
            problems=tuple(body.problems),
            **common,
        )
    if isinstance(body, CouncilIn):
        return HoldCouncil(
            building_id=body.building_id,
            party_members=tuple(body.party_members),
            resident_backbones=tuple(body.resident_backbones),
            attendees=body.attendees,
            decisions=tuple(body.decisions),
            problems=tuple(body.problems),
            **common,
        )
    if isinstance(body, BefriendIn):
        return BefriendResident(household_id=body.household_id, **common)
    if isinstance(body, TrainingIn):
        return AttendTraining(
            training_id=body.training_id, title=body.title, organiser=body.organiser, hours=body.hours, **common
        )
    if isinstance(body, TalentIn):
        return DiscoverTalent(household_id=body.household_id, field=body.field, description=body.description, **common)
    if isinstance(body, SurveyIn):
        return SurveyResident(
            household_id=body.household_id,
            visited=body.visited,
            knows_grid_worker=body.knows_grid_worker,
            satisfaction=body.satisfaction,
            **common,
        )
    raise ValueError(f"not a one-off work body: {type(body).__name__}")


def log_command(
    kind: str, community: str, body: Work, idempotency_key: str | None, settings: VisitsSettings
) -> WorkCommand:
    """A work route's body as its command: the record id (body, Idempotency-Key or new) and the time."""
    record_id = record_id_of(body, WORK_COMMANDS[kind].id_field, idempotency_key)
    at = time_of(body, settings)
    return work_command(body, community=community, record_id=record_id, at=at)


def start_shift_command(
    community: str,
    body: ShiftStartIn,
    expected_version: int | None,
    idempotency_key: str | None,
    settings: VisitsSettings,
) -> StartShift:
    """Start a shift: its id (body, Idempotency-Key or new) and its time."""
    at = time_of(body, settings)
    shift_id = record_id_of(body, "shift_id", idempotency_key)
    return StartShift(
        community=community, shift_id=shift_id, worker_id=body.worker_id, expected_version=expected_version, at=at
    )


def end_shift_command(
    community: str, shift_id: str, body: ShiftEndIn, expected_version: int | None, settings: VisitsSettings
) -> EndShift:
    """End a shift at the body's time, no longer than the deployment's longest shift."""
    return EndShift(
        community=community,
        shift_id=shift_id,
        worker_id=body.worker_id,
        expected_version=expected_version,
        max_hours=settings.max_shift_hours,
        at=time_of(body, settings),
    )


def account_command(
    community: str,
    body: VolunteerServiceIn | RedemptionIn,
    idempotency_key: str | None,
    settings: VisitsSettings,
) -> AccountCommand:
    """Volunteer service to credit, or points to redeem, on a household's account."""
    if isinstance(body, VolunteerServiceIn):
        record_id = record_id_of(body, LogVolunteerService.id_field, idempotency_key)
        return _service(body, community, record_id, time_of(body, settings), settings)
    record_id = record_id_of(body, RedeemPoints.id_field, idempotency_key)
    return RedeemPoints(
        community=community,
        record_id=record_id,
        household_id=body.household_id,
        points=body.points,
        item=body.item,
        worker_id=body.worker_id,
        at=time_of(body, settings),
    )


def _service(
    body: VolunteerServiceIn, community: str, record_id: str, at: datetime, settings: VisitsSettings
) -> LogVolunteerService:
    return LogVolunteerService(
        community=community,
        record_id=record_id,
        household_id=body.household_id,
        activity=body.activity,
        hours=body.hours,
        points=body.points,
        points_per_hour=settings.volunteer_points_per_hour,
        service_date=body.service_date,
        worker_id=body.worker_id,
        at=at,
    )


# ---------------------------------------------------------------- offline records


class _Shift(Work):
    """data of a shift_started / shift_ended record."""

    shift_id: str | None = None


#: Body model of each kind of one-off work fact (a sync record's ``data``).
WORK_BODIES: dict[str, type[Work]] = {
    "visit": VisitIn,
    "face_to_face_session": SessionIn,
    "building_council": CouncilIn,
    "resident_befriended": BefriendIn,
    "training_attended": TrainingIn,
    "talent_discovered": TalentIn,
    "resident_surveyed": SurveyIn,
}


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def offline_command(
    rec: SyncRecord, community: str, worker_id: str, settings: VisitsSettings, current: datetime
) -> OfflineCommand:
    """One record of a phone's batch as its command (raises ``Invalid`` naming the field)."""
    if not _TOKEN.match(rec.client_id):
        raise Invalid(f"client_id must match {TOKEN_PATTERN}", field="client_id")
    if rec.occurred_at is None:
        raise Invalid("occurred_at is required: when the work was done on the phone", field="occurred_at")
    try:
        at = _TIME.validate_python(rec.occurred_at)
    except ValidationError:
        raise Invalid("occurred_at is not an ISO 8601 time", field="occurred_at") from None
    if at.tzinfo is None:
        raise Invalid("occurred_at needs a UTC offset, e.g. +08:00", field="occurred_at")
    data = {**rec.data, "occurred_at": at}
    model: type[Work]
    if rec.kind in WORK_BODIES:
        model = WORK_BODIES[rec.kind]
        data[WORK_COMMANDS[rec.kind].id_field] = rec.client_id
    elif rec.kind in ("shift_started", "shift_ended"):
        model = _Shift
        if rec.kind == "shift_started":
            data["shift_id"] = rec.client_id
        elif not data.get("shift_id"):
            raise Invalid("a shift_ended record names the shift_id it ends", field="data.shift_id")
    elif rec.kind == "volunteer_service":
        model = VolunteerServiceIn
        data["service_id"] = rec.client_id
    else:
        raise Invalid(f"unknown kind {rec.kind!r}", field="kind")
    try:
        body = model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise Invalid(first["msg"], field="data." + _field(first["loc"])) from None
    time_of(body, settings, current)
    if body.worker_id not in (None, worker_id):
        raise Invalid("a phone syncs only its own worker's records", field="data.worker_id")
    if isinstance(body, _Shift):
        assert body.shift_id is not None  # the record's client id, or checked above
        if rec.kind == "shift_started":
            return StartShift(community=community, shift_id=body.shift_id, worker_id=body.worker_id, at=at)
        return EndShift(
            community=community,
            shift_id=body.shift_id,
            worker_id=body.worker_id,
            max_hours=settings.max_shift_hours,
            at=at,
        )
    if isinstance(body, VolunteerServiceIn):
        return _service(body, community, rec.client_id, at, settings)
    return work_command(body, community=community, record_id=rec.client_id, at=at)


# ---------------------------------------------------------------- who and where


def community_definition(community: str, body: CommunityIn) -> DefineEntry:
    """社区: a community under its street.  An id with a leading ``_`` is reserved (the console's
    accounts are stored under ``_accounts``): no community takes one."""
    if community.startswith("_"):
        raise Invalid("a community id may not start with _ (reserved)", field="community")
    data = CommunityRegisteredData(community_id=community, **body.model_dump())
    return DefineEntry(community=community, entry_id=community, data=data, at=now())


def building_definition(community: str, building_id: str, body: BuildingIn) -> DefineEntry:
    """楼栋: a building of the community (where it stands: lat and lon together, or neither)."""
    if (body.lat is None) != (body.lon is None):
        missing = "lon" if body.lon is None else "lat"
        raise Invalid("lat and lon are given together or not at all", field=missing)
    data = BuildingRegisteredData(building_id=building_id, **body.model_dump())
    return DefineEntry(community=community, entry_id=building_id, data=data, at=now())


def grid_definition(community: str, grid_id: str, body: GridIn, expected_version: int | None) -> DefineEntry:
    """网格: a grid's buildings and its worker."""
    data = GridDefinedData(grid_id=grid_id, **body.model_dump(exclude={"expected_version"}))
    return DefineEntry(community=community, entry_id=grid_id, data=data, expected_version=expected_version, at=now())


def worker_definition(community: str, worker_id: str, body: WorkerIn) -> DefineEntry:
    """网格员 and other community workers."""
    data = WorkerRegisteredData(worker_id=worker_id, **body.model_dump())
    return DefineEntry(community=community, entry_id=worker_id, data=data, at=now())


def person_definition(community: str, person_id: str, body: PersonIn) -> DefineEntry:
    """Party members, building leaders, resident backbones and volunteers."""
    data = PersonRegisteredData(person_id=person_id, **body.model_dump())
    return DefineEntry(community=community, entry_id=person_id, data=data, at=now())


# ---------------------------------------------------------------- households


def household_registration(community: str, body: HouseholdIn) -> RegisterHousehold:
    """A household for the ledger, its personal fields as given."""
    return RegisterHousehold(
        community=community,
        household_id=body.household_id,
        building_id=body.building_id,
        unit=body.unit,
        room=body.room,
        grid_id=body.grid_id,
        members=body.members,
        tags=tuple(body.tags),
        personal=body.personal.given(),
        at=now(),
    )


def profile_update(
    community: str, household_id: str, body: HouseholdUpdate, expected_version: int | None
) -> UpdateHouseholdProfile:
    """A ledger entry's completion or correction."""
    return UpdateHouseholdProfile(
        community=community,
        household_id=household_id,
        personal=body.personal.given(),
        clear=tuple(body.clear),
        members=body.members,
        expected_version=expected_version,
        at=now(),
    )


def tagging(community: str, household_id: str, body: HouseholdTags, expected_version: int | None) -> TagHousehold:
    """Tags to add to and remove from a household."""
    return TagHousehold(
        community=community,
        household_id=household_id,
        add=tuple(body.add),
        remove=tuple(body.remove),
        expected_version=expected_version,
        at=now(),
    )


def erasure(community: str, household_id: str, body: ErasureIn) -> EraseResidentData:
    """A PIPL erasure request."""
    return EraseResidentData(community=community, household_id=household_id, reason=body.reason, at=now())
