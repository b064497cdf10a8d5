"""Events of the visits context: people, places and the grid worker's 5+1 work."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import Field

from .common import Category, ContactMode, Severity, TalentField
from .envelope import Event, Payload

# ---------------------------------------------------------------- people and places


class CommunityRegisteredData(Payload):
    community_id: str
    name: str = Field(max_length=100)
    street: str = Field(description="Street (街道) id the community belongs to")
    district: str | None = None
    city: str | None = None
    area_km2: float | None = Field(default=None, ge=0)
    residents: int | None = Field(default=None, ge=0)


class CommunityRegistered(Event):
    """A community (社区) joined gridwork, under its street (街道)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "community"
    type: Literal["CommunityRegistered"] = "CommunityRegistered"
    data: CommunityRegisteredData


class CommunityMovedData(CommunityRegisteredData):
    """The community's registration after the move, with the street it left and why."""

    from_street: str = Field(description="The street the community was registered under before")
    reason: str = Field(min_length=1, max_length=500, description="Why operations moved it (audited)")


class CommunityMoved(Event):
    """Operations moved a community to another street (街道): its own event, with who, when and why.

    It carries the whole registration, so a read model folds it as it folds CommunityRegistered."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "community"
    type: Literal["CommunityMoved"] = "CommunityMoved"
    data: CommunityMovedData


class ProblemNote(Payload):
    """A problem found during a visit, a session or a council; the issues service files it."""

    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("description",)

    category: Category
    subcategory: str | None = Field(default=None, max_length=64)
    severity: Severity = "medium"
    description: str = Field(max_length=4000)
    photos: list[str] = Field(default_factory=list, max_length=20)


class WorkerRegisteredData(Payload):
    worker_id: str
    name: str = Field(max_length=64)
    role: Literal["grid_worker", "secretary", "deputy_secretary", "community_worker"] = "grid_worker"
    grid_id: str | None = None
    street: str | None = None


class WorkerRegistered(Event):
    """A community worker (网格员 grid worker, 书记 secretary…) joined the community's roster."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "worker"
    type: Literal["WorkerRegistered"] = "WorkerRegistered"
    data: WorkerRegisteredData


class GridDefinedData(Payload):
    grid_id: str
    name: str = Field(max_length=64)
    worker_id: str | None = None
    buildings: list[str] = Field(default_factory=list, description="Building ids in this grid")


class GridDefined(Event):
    """A grid (网格) was defined or redrawn: its buildings and the worker who owns it."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "grid"
    type: Literal["GridDefined"] = "GridDefined"
    data: GridDefinedData


class BuildingRegisteredData(Payload):
    building_id: str
    compound: str | None = None
    phase: str | None = None
    number: str
    units: int = Field(default=1, ge=1, le=64)
    grid_id: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude (WGS 84), with lon or not at all")
    lon: float | None = Field(default=None, ge=-180, le=180, description="Longitude (WGS 84)")


class BuildingRegistered(Event):
    """A building (楼栋) of the community was entered in the ledger.

    Schema v2: optional ``lat``/``lon`` (where the building stands, for the map).  v1 had none and
    is upcast on load.
    """

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "building"
    type: Literal["BuildingRegistered"] = "BuildingRegistered"
    schema_version: Literal[2] = 2
    data: BuildingRegisteredData


def upcast_building_registered_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 (no coordinates) → v2: the building has no ``lat``/``lon``."""
    return {**raw, "schema_version": 2}


class PersonRegisteredData(Payload):
    person_id: str
    role: Literal["sinking_party_member", "direct_party_member", "building_leader", "resident_backbone", "volunteer"]
    building_id: str | None = None
    household_id: str | None = None
    display_name: str | None = Field(
        default=None, max_length=64, description="Public name or nickname, never an ID number"
    )


class PersonRegistered(Event):
    """A party member (下沉/直管党员), building leader (楼栋长), resident backbone or volunteer joined."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "person"
    type: Literal["PersonRegistered"] = "PersonRegistered"
    data: PersonRegisteredData


class HouseholdRegisteredData(Payload):
    household_id: str
    building_id: str
    unit: str | None = None
    room: str | None = None
    grid_id: str | None = None
    members: int | None = Field(default=None, ge=0, le=50)
    tags: list[str] = Field(default_factory=list)
    fields_present: list[str] = Field(default_factory=list, description="Ledger fields this household has filled in")
    sealed: dict[str, str] = Field(
        default_factory=dict, description="Personal fields, AES-GCM sealed with the household key"
    )


class HouseholdRegistered(Event):
    """A household (户) was entered in the resident basic-information ledger (居民基础信息底册)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "household"
    type: Literal["HouseholdRegistered"] = "HouseholdRegistered"
    data: HouseholdRegisteredData


class HouseholdProfileUpdatedData(Payload):
    household_id: str
    fields_present: list[str] = Field(default_factory=list)
    sealed: dict[str, str] = Field(default_factory=dict)
    members: int | None = Field(default=None, ge=0, le=50)


class HouseholdProfileUpdated(Event):
    """A household's ledger entry was completed or corrected."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "household"
    type: Literal["HouseholdProfileUpdated"] = "HouseholdProfileUpdated"
    data: HouseholdProfileUpdatedData


class HouseholdTaggedData(Payload):
    household_id: str
    tags: list[str] = Field(description="special_assistance, elderly_alone, young, disabled, hardship…")
    removed: list[str] = Field(default_factory=list)


class HouseholdTagged(Event):
    """A household was tagged, e.g. as special-assistance (特殊帮扶对象) or elderly living alone.

    Schema v2: ``tags``/``removed`` lists.  v1 carried a single ``tag`` and is upcast on load.
    """

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "household"
    type: Literal["HouseholdTagged"] = "HouseholdTagged"
    schema_version: Literal[2] = 2
    data: HouseholdTaggedData


def upcast_household_tagged_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 ``{"tag": "x", "removed": bool}`` → v2 ``{"tags": [...], "removed": [...]}``."""
    data = dict(raw["data"])
    tag = data.pop("tag")
    removed = bool(data.pop("removed", False))
    data["tags"] = [] if removed else [tag]
    data["removed"] = [tag] if removed else []
    return {**raw, "schema_version": 2, "data": data}


# ---------------------------------------------------------------- the daily work


class ShiftStartedData(Payload):
    shift_id: str
    worker_id: str
    grid_id: str | None = None


class ShiftStarted(Event):
    """A grid worker started a shift in the grid (daily quota: ≥ 5 hours in the grid)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "shift"
    type: Literal["ShiftStarted"] = "ShiftStarted"
    data: ShiftStartedData


class ShiftEndedData(Payload):
    shift_id: str
    worker_id: str
    started_at: str = Field(description="ISO time the shift started, for folding hours without a lookup")
    minutes: float = Field(ge=0, le=16 * 60)


class ShiftEnded(Event):
    """A grid worker's shift ended; ``minutes`` is the time spent in the grid."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "shift"
    type: Literal["ShiftEnded"] = "ShiftEnded"
    data: ShiftEndedData


class VisitLoggedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("notes",)

    visit_id: str
    worker_id: str
    household_id: str
    grid_id: str | None = None
    mode: ContactMode
    special_assistance: bool = False
    minutes: int = Field(ge=0, le=600)
    outcome: Literal["contacted", "not_home", "refused", "follow_up"] = "contacted"
    notes: str | None = Field(default=None, max_length=2000)
    problems: list[ProblemNote] = Field(
        default_factory=list, max_length=20, description="Problems found; each becomes an IssueReported"
    )


class VisitLogged(Event):
    """A grid worker contacted a household (a knock: regular, online or priority)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "visit"
    type: Literal["VisitLogged"] = "VisitLogged"
    data: VisitLoggedData


class FaceToFaceSessionHeldData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("station", "topics")

    session_id: str
    worker_id: str
    station: str = Field(description="Party-mass service station (党群服务驿站)")
    party_members_present: list[str] = Field(default_factory=list)
    residents_attending: int = Field(default=0, ge=0)
    topics: list[str] = Field(default_factory=list)
    problems: list[ProblemNote] = Field(default_factory=list, max_length=50)


class FaceToFaceSessionHeld(Event):
    """A weekly "residents face-to-face" (居民面对面) session was held at the service station."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "session"
    type: Literal["FaceToFaceSessionHeld"] = "FaceToFaceSessionHeld"
    data: FaceToFaceSessionHeldData


class BuildingCouncilHeldData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("decisions",)

    council_id: str
    worker_id: str
    building_id: str
    party_members: list[str] = Field(default_factory=list)
    resident_backbones: list[str] = Field(default_factory=list)
    attendees: int = Field(default=0, ge=0)
    decisions: list[str] = Field(default_factory=list)
    problems: list[ProblemNote] = Field(default_factory=list, max_length=50)


class BuildingCouncilHeld(Event):
    """A building council meeting (楼栋议事会) was held with party members and resident backbones."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "council"
    type: Literal["BuildingCouncilHeld"] = "BuildingCouncilHeld"
    data: BuildingCouncilHeldData


class ResidentBefriendedData(Payload):
    friend_id: str
    worker_id: str
    household_id: str


class ResidentBefriended(Event):
    """A grid worker befriended a resident friend (居民朋友) who answers the committee's calls."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "friend"
    type: Literal["ResidentBefriended"] = "ResidentBefriended"
    data: ResidentBefriendedData


class TrainingAttendedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("title", "organiser")

    attendance_id: str
    worker_id: str
    training_id: str
    title: str = Field(max_length=200)
    organiser: str | None = None
    hours: float = Field(default=1.0, ge=0, le=24)


class TrainingAttended(Event):
    """A grid worker attended a professional training (quarterly quota)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "training"
    type: Literal["TrainingAttended"] = "TrainingAttended"
    data: TrainingAttendedData


class TalentDiscoveredData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("description",)

    talent_id: str
    worker_id: str
    household_id: str | None = None
    field: TalentField
    description: str | None = Field(default=None, max_length=500)


class TalentDiscovered(Event):
    """A grid worker discovered a community talent (社区能人)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "talent"
    type: Literal["TalentDiscovered"] = "TalentDiscovered"
    data: TalentDiscoveredData


class ResidentSurveyedData(Payload):
    survey_id: str
    household_id: str
    worker_id: str | None = None
    visited: bool = Field(description="Was the household visited by its grid worker this year? (走访率)")
    knows_grid_worker: bool = Field(description="Does the household know its grid worker? (知晓率)")
    satisfaction: int = Field(ge=1, le=5, description="满意率 input, 1–5")


class ResidentSurveyed(Event):
    """A household answered the resident survey behind the yearly assessment."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "survey"
    type: Literal["ResidentSurveyed"] = "ResidentSurveyed"
    data: ResidentSurveyedData


class VolunteerServiceLoggedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("activity",)

    service_id: str
    household_id: str
    activity: str = Field(max_length=200)
    hours: float = Field(gt=0, le=24)
    points: int = Field(ge=0)
    service_date: date | None = None


class VolunteerServiceLogged(Event):
    """A resident's volunteer service earned points (志愿服务换积分)."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "volunteer"
    type: Literal["VolunteerServiceLogged"] = "VolunteerServiceLogged"
    data: VolunteerServiceLoggedData


class VolunteerPointsRedeemedData(Payload):
    #: Typed by a person, it may name a resident: sealed in the vault (shared.vault).
    free_text: ClassVar[tuple[str, ...]] = ("item",)

    redemption_id: str
    household_id: str
    points: int = Field(gt=0)
    item: str = Field(max_length=200)


class VolunteerPointsRedeemed(Event):
    """A resident redeemed volunteer points."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "volunteer"
    type: Literal["VolunteerPointsRedeemed"] = "VolunteerPointsRedeemed"
    data: VolunteerPointsRedeemedData


class ResidentDataErasedData(Payload):
    household_id: str
    reason: str = Field(default="erasure_request", max_length=200)


class ResidentDataErased(Event):
    """A household's personal data key was destroyed (PIPL erasure): sealed fields read as erased."""

    context: ClassVar[str] = "visits"
    aggregate_kind: ClassVar[str] = "household"
    type: Literal["ResidentDataErased"] = "ResidentDataErased"
    data: ResidentDataErasedData


EVENTS: tuple[type[Event], ...] = (
    CommunityRegistered,
    CommunityMoved,
    WorkerRegistered,
    GridDefined,
    BuildingRegistered,
    PersonRegistered,
    HouseholdRegistered,
    HouseholdProfileUpdated,
    HouseholdTagged,
    ShiftStarted,
    ShiftEnded,
    VisitLogged,
    FaceToFaceSessionHeld,
    BuildingCouncilHeld,
    ResidentBefriended,
    TrainingAttended,
    TalentDiscovered,
    ResidentSurveyed,
    VolunteerServiceLogged,
    VolunteerPointsRedeemed,
    ResidentDataErased,
)

UPCASTERS = {
    ("HouseholdTagged", 1): upcast_household_tagged_v1,
    ("BuildingRegistered", 1): upcast_building_registered_v1,
}
