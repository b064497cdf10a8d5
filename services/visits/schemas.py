"""The HTTP layer's bodies and answers of the visits API (pydantic, with OpenAPI examples).

The same body models validate a single request and each record of an offline sync batch; the api
edge (``api/commands.py``) turns them into the domain's commands.  Ids a client generates
(visit_id, session_id…) make a retry or a re-sent batch land once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.errors import Invalid
from shared.events import TOKEN_PATTERN
from shared.events.common import ContactMode, TalentField
from shared.events.visits import ProblemNote
from shared.timerules import SaneAwareDatetime, SaneDate

Id = Annotated[str, Field(pattern=TOKEN_PATTERN, examples=["h-p4-b4-2-301"])]
Version = Annotated[int, Field(ge=0, le=2**31 - 1, description="The version you read; a stale one is refused with 409")]

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def valid_phone(value: str) -> str:
    """A mainland mobile (11 digits) or landline (area code + number) number, spaces removed."""
    v = value.replace(" ", "").replace("+86", "")
    if not (MOBILE.match(v) or LANDLINE.match(v)):
        raise ValueError("not a mobile (11 digits from 13…19) or landline (0xx-xxxxxxxx) number")
    return v


def valid_id_number(value: str) -> str:
    """An 18-character resident ID number (居民身份证号) with a correct GB 11643 check character."""
    v = value.strip().upper()
    if not re.match(r"^\d{17}[\dX]$", v):
        raise ValueError("an ID number has 17 digits and a check digit or X")
    total = sum(int(ch) * w for ch, w in zip(v[:17], ID_WEIGHTS, strict=True))
    if ID_CHECK[total % 11] != v[17]:
        raise ValueError("ID number check character does not match")
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---------------------------------------------------------------- who and where


class CommunityIn(Strict):
    """A community (社区) under its street (街道)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "百瑞景社区 Bairuijing",
                    "street": "zhongnanlu",
                    "district": "wuchang",
                    "city": "wuhan",
                    "area_km2": 0.53,
                    "residents": 25799,
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100)
    street: Id = Field(description="Street (街道) id")
    district: str | None = Field(default=None, max_length=64)
    city: str | None = Field(default=None, max_length=64)
    area_km2: float | None = Field(default=None, ge=0, le=100_000)
    residents: int | None = Field(default=None, ge=0, le=10_000_000, description="People living there (a count)")


class CommunityMoveIn(Strict):
    """Move a community to another street (operations only; the move is recorded with its reason)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"street": "donghu", "reason": "district boundary change of 2026-11"}]},
    )

    street: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The street (街道) it now belongs to")
    reason: str = Field(min_length=1, max_length=500, description="Why (kept with the move)")


class BuildingIn(Strict):
    """A building (楼栋): compound, phase (期) and number, optionally its grid."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "compound": "百瑞景",
                    "phase": "4",
                    "number": "4",
                    "units": 3,
                    "grid_id": "g-p4-east",
                    "lat": 30.5236,
                    "lon": 114.3412,
                }
            ]
        },
    )
    compound: str | None = Field(default=None, max_length=64)
    phase: str | None = Field(default=None, max_length=32)
    number: str = Field(min_length=1, max_length=32)
    units: int = Field(default=1, ge=1, le=64)
    grid_id: Id | None = None
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude (WGS 84), given with lon")
    lon: float | None = Field(default=None, ge=-180, le=180, description="Longitude (WGS 84), given with lat")


class GridIn(Strict):
    """A grid (网格): its buildings and the grid worker who owns it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "四期东网格", "worker_id": "w-07", "buildings": ["p4-b4", "p4-b5"]}]},
    )
    name: str = Field(min_length=1, max_length=64)
    worker_id: Id | None = None
    buildings: list[Id] = Field(default_factory=list, max_length=200)
    expected_version: Version | None = None


class WorkerIn(Strict):
    """A community worker (网格员 grid worker, 书记 secretary…)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "李网格", "role": "grid_worker", "grid_id": "g-p4-east"}]},
    )
    name: str = Field(min_length=1, max_length=64)
    role: Literal["grid_worker", "secretary", "deputy_secretary", "community_worker"] = "grid_worker"
    grid_id: Id | None = None
    street: Id | None = None


class PersonIn(Strict):
    """An active resident or party member: sinking (下沉) / directly-managed (直管) party member,
    building leader (楼栋长), resident backbone (居民骨干), volunteer (志愿者)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"role": "sinking_party_member", "building_id": "p4-b4", "display_name": "张叔"}]
        },
    )
    role: Literal["sinking_party_member", "direct_party_member", "building_leader", "resident_backbone", "volunteer"]
    building_id: Id | None = None
    household_id: Id | None = None
    display_name: str | None = Field(default=None, max_length=64, description="Public name, never an ID number")


class Defined(BaseModel):
    """A directory entry as stored."""

    id: str
    version: int
    duplicate: bool = Field(description="True when the same definition was already stored (nothing changed)")


# ---------------------------------------------------------------- households and the ledger


class Personal(Strict):
    """Personal information (PIPL): sealed with the household's key, never stored in clear."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "王秀英",
                    "phone": "13907110000",
                    "id_number": "42010619500101002X",
                    "address": "百瑞景四期4栋2单元301",
                }
            ]
        },
    )
    name: str | None = Field(default=None, min_length=1, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    id_number: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, min_length=1, max_length=200)

    _phone = field_validator("phone")(lambda v: None if v is None else valid_phone(v))
    _id = field_validator("id_number")(lambda v: None if v is None else valid_id_number(v))

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class HouseholdIn(Strict):
    """A household (户) entered in the resident basic-information ledger (居民基础信息底册)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "household_id": "h-p4-b4-2-301",
                    "building_id": "p4-b4",
                    "unit": "2",
                    "room": "301",
                    "members": 1,
                    "tags": ["elderly_alone"],
                    "personal": {"name": "王秀英", "phone": "13907110000", "address": "百瑞景四期4栋2单元301"},
                }
            ]
        },
    )
    household_id: Id
    building_id: Id
    unit: str | None = Field(default=None, max_length=32)
    room: str | None = Field(default=None, max_length=32)
    grid_id: Id | None = Field(default=None, description="Defaults to the building's grid")
    members: int | None = Field(default=None, ge=0, le=50)
    tags: list[str] = Field(default_factory=list, max_length=20)
    personal: Personal = Field(default_factory=Personal)


class HouseholdUpdate(Strict):
    """Complete or correct a ledger entry.  ``expected_version`` (or If-Match) guards against lost updates."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"personal": {"id_number": "42010619500101002X"}, "members": 2, "expected_version": 1}]
        },
    )
    personal: Personal = Field(default_factory=Personal)
    clear: list[Literal["name", "phone", "id_number", "address", "members"]] = Field(
        default_factory=list, description="Ledger fields to mark as no longer held"
    )
    members: int | None = Field(default=None, ge=0, le=50)
    expected_version: Version | None = None


class HouseholdTags(Strict):
    """Tag a household, e.g. special_assistance (特殊帮扶对象), elderly_alone (独居老人), young."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"add": ["special_assistance"], "remove": []}]}
    )
    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)
    expected_version: Version | None = None


class ErasureIn(Strict):
    """A PIPL erasure request: the household's key is destroyed; counts stay."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "moved_away"}]})
    reason: str = Field(
        default="erasure_request",
        pattern=r"^[a-z][a-z_]{0,39}$",
        description="Why, as a short code (erasure_request, moved_away, deceased, duplicate…): the erasure "
        "record itself outlives the erasure, so it holds no free text that could name the household",
    )


class HouseholdOut(BaseModel):
    """A household as the ledger holds it; ``personal`` only for roles allowed to read it."""

    household_id: str
    building_id: str
    unit: str | None
    room: str | None
    grid_id: str | None
    members: int | None
    tags: list[str]
    fields_present: list[str]
    missing: list[str] = Field(description="Required ledger fields not yet held")
    complete: bool
    erased: bool
    version: int
    visits: int = Field(description="Visits logged to this household (unchanged by erasure)")
    special_visits: int
    last_visit_at: datetime | None
    personal: dict[str, str] | None = Field(
        default=None, description='Decrypted personal fields ("erased" after erasure); reads are audited'
    )


class Changed(BaseModel):
    """The answer to a change of an aggregate."""

    id: str
    version: int
    duplicate: bool = Field(description="True when nothing changed (a retry, or already as asked)")


# ---------------------------------------------------------------- the 5+1 work


class Work(Strict):
    """Common to every piece of logged work."""

    worker_id: Id | None = Field(
        default=None, description="Defaults to the token's worker; a secretary must name the worker"
    )
    occurred_at: SaneAwareDatetime | None = Field(
        default=None, description="When the work was done (default: now); ≤ 30 days back, not in the future"
    )


class ShiftStartIn(Work):
    """Start a shift in the grid (daily quota: ≥ 5 hours in the grid)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"shift_id": "s-w07-20250414", "occurred_at": "2025-04-14T08:30:00+08:00"}]},
    )
    shift_id: Id | None = None
    expected_version: Version | None = Field(default=None, description="Version of the worker's shift log")


class ShiftEndIn(Work):
    """End a shift; the shift's minutes in the grid are recorded (at most 16 h)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"occurred_at": "2025-04-14T17:45:00+08:00", "expected_version": 1}]},
    )
    expected_version: Version | None = Field(default=None, description="Version of the worker's shift log")


class VisitIn(Work):
    """A household contact: regular knock (定期敲), online knock (网上敲), priority knock (重点敲)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "visit_id": "v-01JRB6Q0S2",
                    "household_id": "h-p2-b3-1-602",
                    "mode": "regular",
                    "minutes": 15,
                    "outcome": "follow_up",
                    "occurred_at": "2025-04-14T21:40:00+08:00",
                    "notes": "neighbours report late-night microphone noise",
                    "problems": [
                        {
                            "category": "conflicts_disputes",
                            "subcategory": "noise",
                            "severity": "medium",
                            "description": "late-night microphone noise from 602",
                        }
                    ],
                }
            ]
        },
    )
    visit_id: Id | None = None
    household_id: Id
    mode: ContactMode
    special_assistance: bool | None = Field(
        default=None, description="Default: derived from the household's tags (special_assistance, elderly_alone…)"
    )
    minutes: int = Field(ge=0, le=600)
    outcome: Literal["contacted", "not_home", "refused", "follow_up"] = "contacted"
    notes: str | None = Field(default=None, max_length=2000)
    problems: list[ProblemNote] = Field(default_factory=list, max_length=20)


class SessionIn(Work):
    """A weekly residents face-to-face session (居民面对面) at the party-mass service station (党群服务驿站)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "session_id": "f-2025w16",
                    "station": "四期党群服务驿站",
                    "party_members_present": ["pm-12"],
                    "residents_attending": 14,
                    "topics": ["dog walking times"],
                    "occurred_at": "2025-04-18T19:00:00+08:00",
                }
            ]
        },
    )
    session_id: Id | None = None
    station: str = Field(min_length=1, max_length=100)
    party_members_present: list[Id] = Field(default_factory=list, max_length=100)
    residents_attending: int = Field(default=0, ge=0, le=10_000)
    topics: list[str] = Field(default_factory=list, max_length=50)
    problems: list[ProblemNote] = Field(default_factory=list, max_length=50)


class CouncilIn(Work):
    """A monthly building council meeting (楼栋议事会)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "council_id": "c-p4-b4-202503",
                    "building_id": "p4-b4",
                    "party_members": ["pm-12"],
                    "resident_backbones": ["rb-3"],
                    "attendees": 11,
                    "decisions": ["public-area rules tried in building 4"],
                }
            ]
        },
    )
    council_id: Id | None = None
    building_id: Id
    party_members: list[Id] = Field(default_factory=list, max_length=100)
    resident_backbones: list[Id] = Field(default_factory=list, max_length=100)
    attendees: int = Field(default=0, ge=0, le=10_000)
    decisions: list[str] = Field(default_factory=list, max_length=50)
    problems: list[ProblemNote] = Field(default_factory=list, max_length=50)


class BefriendIn(Work):
    """A resident friend (居民朋友) who answers the party committee's calls."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"household_id": "h-p4-b4-2-301"}]})
    friend_id: Id | None = None
    household_id: Id


class TrainingIn(Work):
    """A professional training attended (quarterly quota)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "training_id": "t-2025-03-pets",
                    "title": "Pet conflicts role-play",
                    "organiser": "street office",
                    "hours": 2,
                }
            ]
        },
    )
    attendance_id: Id | None = None
    training_id: Id
    title: str = Field(min_length=1, max_length=200)
    organiser: str | None = Field(default=None, max_length=100)
    hours: float = Field(default=1.0, ge=0, le=24)


class TalentIn(Work):
    """A community talent (社区能人): culture & sports, repairs, organising, design & planning."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "household_id": "h-p1-b2-1-101",
                    "field": "culture_sports",
                    "description": "started the Ruijing Micro Marathon running club",
                }
            ]
        },
    )
    talent_id: Id | None = None
    household_id: Id | None = None
    field: TalentField
    description: str | None = Field(default=None, max_length=500)


class SurveyIn(Work):
    """A resident survey: visited? knows the grid worker (知晓率)? satisfaction 1–5 (满意率)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"household_id": "h-p4-b4-2-301", "visited": True, "knows_grid_worker": True, "satisfaction": 5}
            ]
        },
    )
    survey_id: Id | None = None
    household_id: Id
    visited: bool
    knows_grid_worker: bool
    satisfaction: int = Field(ge=1, le=5)


class VolunteerServiceIn(Work):
    """Volunteer service that earns points (志愿服务换积分), e.g. the dog-walking patrol."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"household_id": "h-p4-b4-2-301", "activity": "staggered dog-walking patrol", "hours": 2}]
        },
    )
    service_id: Id | None = None
    household_id: Id
    activity: str = Field(min_length=1, max_length=200)
    hours: float = Field(gt=0, le=24)
    points: int | None = Field(default=None, ge=0, le=10_000, description="Default: hours × points per hour")
    service_date: SaneDate | None = None


class RedemptionIn(Work):
    """Spend a household's volunteer points; never more than the balance."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"household_id": "h-p4-b4-2-301", "points": 20, "item": "dog leash"}]},
    )
    redemption_id: Id | None = None
    household_id: Id
    points: int = Field(gt=0, le=100_000)
    item: str = Field(min_length=1, max_length=200)


class Recorded(BaseModel):
    """A logged piece of work."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "v-01JRB6Q0S2",
                    "kind": "visit",
                    "event_id": "01963410-2f60-7a4e-8e6f-5b1f2d0c9a11",
                    "version": 1,
                    "duplicate": False,
                    "special_assistance": False,
                }
            ]
        }
    )
    id: str
    kind: str
    event_id: str | None = None
    version: int
    duplicate: bool = Field(description="True when this record was already stored (a retry)")
    special_assistance: bool | None = None
    counts_for_quota: bool | None = Field(default=None, description="Sessions: ≥ 1 party member present")
    minutes: float | None = None
    balance: int | None = None


# ---------------------------------------------------------------- offline sync

SYNC_KINDS = (
    "visit",
    "shift_started",
    "shift_ended",
    "face_to_face_session",
    "building_council",
    "resident_befriended",
    "training_attended",
    "talent_discovered",
    "resident_surveyed",
    "volunteer_service",
)


class SyncRecord(BaseModel):
    """One record made on a phone while offline.  ``data`` is the body of the matching single endpoint."""

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(description="Generated on the phone; the record's id (visit_id, session_id…)")
    kind: str = Field(description="One of: " + ", ".join(SYNC_KINDS))
    occurred_at: str | None = Field(default=None, description="When the work was done, ISO 8601 with offset")
    data: dict[str, Any] = Field(default_factory=dict)


class SyncBatch(BaseModel):
    """Up to 500 records; each is answered on its own, and a re-sent batch changes nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "device_id": "phone-w07",
                    "records": [
                        {
                            "client_id": "s-0414",
                            "kind": "shift_started",
                            "occurred_at": "2025-04-14T08:30:00+08:00",
                            "data": {},
                        },
                        {
                            "client_id": "v-0414-1",
                            "kind": "visit",
                            "occurred_at": "2025-04-14T09:10:00+08:00",
                            "data": {"household_id": "h-p4-b4-2-301", "mode": "priority", "minutes": 20},
                        },
                        {
                            "client_id": "e-0414",
                            "kind": "shift_ended",
                            "occurred_at": "2025-04-14T17:30:00+08:00",
                            "data": {"shift_id": "s-0414"},
                        },
                    ],
                }
            ]
        },
    )
    device_id: str | None = Field(default=None, max_length=64)
    records: list[SyncRecord] = Field(max_length=500)


class SyncResult(BaseModel):
    client_id: str
    kind: str
    status: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    field: str | None = None
    reason: str | None = None


class SyncAnswer(BaseModel):
    """One answer per record, in the order sent."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[SyncResult]


# ---------------------------------------------------------------- ledger import and completion


class RowRejection(BaseModel):
    line: int = Field(description="Line in the file (the header is line 1)")
    field: str | None = None
    reason: str


class ImportReport(BaseModel):
    """What a ledger import did with each row."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows": 3,
                    "registered": 2,
                    "updated": 0,
                    "unchanged": 0,
                    "rejected": [
                        {
                            "line": 4,
                            "field": "phone",
                            "reason": "not a mobile (11 digits from 13…19) or landline number",
                        }
                    ],
                }
            ]
        }
    )
    rows: int
    registered: int
    updated: int
    unchanged: int
    rejected: list[RowRejection]


class CompletionGroup(BaseModel):
    grid_id: str | None = None
    households: int
    complete: int
    rate: float
    missing: dict[str, int] = Field(description="Households lacking each required field")


class LedgerGap(BaseModel):
    """A household lacking required ledger fields: which ones, by name (never a personal value)."""

    household_id: str
    unit: str | None = None
    room: str | None = None
    erased: bool = False
    missing: list[str]


class BuildingCompletion(BaseModel):
    """Ledger completion of one building (楼栋), with each incomplete household and its gaps."""

    building_id: str
    number: str | None = Field(default=None, description="The building's number, as the directory holds it")
    phase: str | None = None
    grid_id: str | None = None
    households: int
    complete: int
    rate: float
    missing: dict[str, int] = Field(description="Households lacking each required field")
    gaps: list[LedgerGap] = Field(description="Incomplete households (at most ``gaps`` per building), by id")
    gaps_truncated: bool = Field(default=False, description="More incomplete households than listed")


class Completion(BaseModel):
    """Ledger completion (居民基础信息底册): per grid and for the community, against the > 90% bar;
    with ``by=building`` also per building with each incomplete household's missing fields."""

    community: str
    required_fields: list[str]
    bar: float
    households: int
    complete: int
    rate: float
    meets_bar: bool
    missing: dict[str, int]
    grids: list[CompletionGroup]
    buildings: list[BuildingCompletion] | None = Field(default=None, description="Only with ``by=building``")


def parse_version(if_match: str | None, expected_version: int | None) -> int | None:
    """The caller's expected version: the body's ``expected_version`` or an ``If-Match: "3"`` header."""
    if expected_version is not None:
        return expected_version
    if if_match is None:
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise Invalid('If-Match must be a version number, e.g. "3"', field="If-Match")
    return int(raw)
