"""Households (户) and the resident basic-information ledger (居民基础信息底册).

A household is registered once, its ledger entry completed or corrected, tagged (special
assistance, elderly living alone…) and, under PIPL, erased.  Personal fields reach the domain
already sealed: it decides on which fields are held, never on their values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import Event
from shared.events.visits import (
    HouseholdProfileUpdated,
    HouseholdProfileUpdatedData,
    HouseholdRegistered,
    HouseholdRegisteredData,
    HouseholdTagged,
    HouseholdTaggedData,
    ResidentDataErased,
    ResidentDataErasedData,
)

#: Personal information under PIPL: sealed per household, never in an event in clear.
PERSONAL_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "address")
#: What the resident basic-information ledger (居民基础信息底册) must hold for a household to be complete.
REQUIRED_LEDGER_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "address", "members")
#: Tags that make a household a special-assistance household (特殊帮扶对象) for the daily quota.
SPECIAL_ASSISTANCE_TAGS = frozenset({"special_assistance", "elderly_alone", "disabled", "hardship"})
#: What an erased personal field reads.
ERASED = "erased"

TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class AlreadyRegistered(Conflict):
    """Another household is already registered under this id (409)."""

    code = "already_registered"


class DataErased(Conflict):
    """The household's personal data was erased under PIPL and cannot be written again (409)."""

    code = "erased"


def check_tags(tags: Iterable[str], field: str = "tags") -> list[str]:
    """Tags are short snake_case words; returns them de-duplicated in order."""
    out: list[str] = []
    for i, tag in enumerate(tags):
        if not TAG_PATTERN.match(tag):
            raise Invalid(f"tag {tag!r} must be snake_case ascii, up to 32 characters", field=f"{field}[{i}]")
        if tag not in out:
            out.append(tag)
    return out


def is_special_assistance(tags: Iterable[str]) -> bool:
    """Whether a household's tags make a visit to it a special-assistance visit."""
    return not SPECIAL_ASSISTANCE_TAGS.isdisjoint(tags)


def ledger_missing(fields_present: Iterable[str], erased: bool = False) -> list[str]:
    """Required ledger fields a household lacks (an erased household lacks its personal fields)."""
    have = set(fields_present)
    if erased:
        have -= set(PERSONAL_FIELDS)
    return [f for f in REQUIRED_LEDGER_FIELDS if f not in have]


def ledger_fields_present(personal: Iterable[str], members: int | None) -> list[str]:
    """The required ledger fields a new entry holds: its personal fields given, and members if known."""
    have = set(personal) | ({"members"} if members is not None else set())
    return [f for f in REQUIRED_LEDGER_FIELDS if f in have]


# ---------------------------------------------------------------- where a household is


@dataclass(frozen=True, slots=True)
class HouseholdRef:
    """What validation needs to know about a household (no personal data)."""

    household_id: str
    building_id: str
    grid_id: str | None
    tags: frozenset[str]
    erased: bool
    version: int = 0


def in_grid(
    ref: HouseholdRef | None, household_id: str, grid_id: str | None, field: str = "household_id"
) -> HouseholdRef:
    """The household, if it exists (404) and lies in ``grid_id`` (403)."""
    if ref is None:
        raise NotFound(f"household {household_id} is not registered", field=field)
    if grid_id is None or ref.grid_id != grid_id:
        raise Forbidden(f"household {household_id} is not in grid {grid_id}", field=field)
    return ref


def may_read_personal(role: str, reader_grid: str | None, grid_id: str | None) -> tuple[bool, bool]:
    """(may read?, must audit?) — the owning grid worker reads unaudited; secretary and street admin audited."""
    if role == "grid_worker":
        return (grid_id is not None and grid_id == reader_grid, False)
    if role in ("secretary", "street_admin"):
        return (True, True)
    return (False, False)


# ---------------------------------------------------------------- state


class HouseholdState(BaseModel):
    """A household as its own events tell it."""

    registered: bool = False
    household_id: str = ""
    building_id: str = ""
    unit: str | None = None
    room: str | None = None
    grid_id: str | None = None
    members: int | None = None
    tags: list[str] = Field(default_factory=list)
    fields_present: list[str] = Field(default_factory=list)
    sealed: dict[str, str] = Field(default_factory=dict)
    erased: bool = False


def evolve_household(state: HouseholdState, event: Event) -> HouseholdState:
    """Fold one household event."""
    data: Any = event.data
    if isinstance(event, HouseholdRegistered):
        return HouseholdState(
            registered=True,
            household_id=data.household_id,
            building_id=data.building_id,
            unit=data.unit,
            room=data.room,
            grid_id=data.grid_id,
            members=data.members,
            tags=list(data.tags),
            fields_present=list(data.fields_present),
            sealed=dict(data.sealed),
        )
    if isinstance(event, HouseholdProfileUpdated):
        return state.model_copy(
            update={
                "fields_present": list(data.fields_present),
                "sealed": {**state.sealed, **data.sealed},
                "members": data.members if data.members is not None else state.members,
            }
        )
    if isinstance(event, HouseholdTagged):
        tags = [t for t in state.tags if t not in data.removed]
        tags += [t for t in data.tags if t not in tags]
        return state.model_copy(update={"tags": tags})
    if isinstance(event, ResidentDataErased):
        kept = [f for f in state.fields_present if f not in PERSONAL_FIELDS]
        return state.model_copy(update={"erased": True, "sealed": {}, "fields_present": kept})
    return state


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterHousehold:
    """Enter a household in the ledger.  ``personal`` is in clear here; it is sealed before any event."""

    community: str
    household_id: str
    building_id: str
    unit: str | None = None
    room: str | None = None
    grid_id: str | None = None  # None: the building's grid
    members: int | None = None
    tags: tuple[str, ...] = ()
    personal: Mapping[str, str] = field(default_factory=dict)
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateHouseholdProfile:
    """Complete or correct a ledger entry: personal fields to set (in clear), fields no longer held, members."""

    community: str
    household_id: str
    personal: Mapping[str, str] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    members: int | None = None
    expected_version: int | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TagHousehold:
    """Add and remove tags (special_assistance 特殊帮扶对象, elderly_alone 独居老人, young…)."""

    community: str
    household_id: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    expected_version: int | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EraseResidentData:
    """PIPL erasure: the household's personal data becomes unreadable for good; its counts stay."""

    community: str
    household_id: str
    reason: str = "erasure_request"
    at: datetime


# ---------------------------------------------------------------- decisions


def decide_registration(
    state: HouseholdState,
    cmd: RegisterHousehold,
    *,
    actor: str,
    grid_id: str | None,
    tags: list[str],
    sealed: Mapping[str, str],
    stored_personal: Mapping[str, str] | None,
) -> list[Event]:
    """Register a household once.  The same registration again changes nothing; a different one for a
    registered id is refused (change it with an update).  ``sealed``: the new entry's personal fields,
    sealed; ``stored_personal``: a registered household's personal fields, unsealed, to compare."""
    if state.registered:
        same = (state.building_id, state.unit, state.room, state.members, sorted(state.tags)) == (
            cmd.building_id,
            cmd.unit,
            cmd.room,
            cmd.members,
            sorted(tags),
        ) and stored_personal == dict(cmd.personal)
        if same:
            return []
        raise AlreadyRegistered(
            f"household {cmd.household_id} is already registered; change it with PATCH", field="household_id"
        )
    data = HouseholdRegisteredData(
        household_id=cmd.household_id,
        building_id=cmd.building_id,
        unit=cmd.unit,
        room=cmd.room,
        grid_id=grid_id,
        members=cmd.members,
        tags=tags,
        fields_present=ledger_fields_present(cmd.personal, cmd.members),
        sealed=dict(sealed),
    )
    return [
        HouseholdRegistered.new(
            community=cmd.community,
            aggregate_id=cmd.household_id,
            actor=actor,
            data=data,
            occurred_at=cmd.at,
            idempotency_key="registered",  # once per household
        )
    ]


def decide_profile_update(
    state: HouseholdState, cmd: UpdateHouseholdProfile, *, actor: str, sealed: Mapping[str, str]
) -> list[Event]:
    """Complete or correct the ledger entry; ``sealed`` holds the personal fields that change, sealed."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    cleared = [f for f in cmd.clear if f in REQUIRED_LEDGER_FIELDS]
    if state.erased and sealed:
        raise DataErased("this household's personal data was erased; it cannot be filled in again", field="personal")
    present = set(state.fields_present) | set(sealed)
    if cmd.members is not None:
        present.add("members")
    present -= set(cleared)
    ordered = [f for f in REQUIRED_LEDGER_FIELDS if f in present] + sorted(present - set(REQUIRED_LEDGER_FIELDS))
    if not sealed and not cleared and (cmd.members is None or cmd.members == state.members):
        return []  # nothing changes: a retried update is a no-op
    data = HouseholdProfileUpdatedData(
        household_id=state.household_id, fields_present=ordered, sealed=dict(sealed), members=cmd.members
    )
    return [
        HouseholdProfileUpdated.new(
            community=cmd.community,
            aggregate_id=state.household_id,
            actor=actor,
            data=data,
            occurred_at=cmd.at,
            idempotency_key=content_key(data),
        )
    ]


def decide_tagging(state: HouseholdState, cmd: TagHousehold, *, actor: str) -> list[Event]:
    """Add and remove tags; tags already as asked change nothing (a retry is a no-op)."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    add = [t for t in check_tags(cmd.add, "add") if t not in state.tags]
    remove = [t for t in check_tags(cmd.remove, "remove") if t in state.tags]
    if not add and not remove:
        return []
    data = HouseholdTaggedData(household_id=state.household_id, tags=add, removed=remove)
    return [
        HouseholdTagged.new(
            community=cmd.community,
            aggregate_id=state.household_id,
            actor=actor,
            data=data,
            occurred_at=cmd.at,
            idempotency_key=content_key(data),
        )
    ]


def decide_erasure(state: HouseholdState, cmd: EraseResidentData, *, actor: str) -> list[Event]:
    """PIPL erasure: once per household; a second request changes nothing."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    if state.erased:
        return []
    data = ResidentDataErasedData(household_id=state.household_id, reason=cmd.reason)
    return [
        ResidentDataErased.new(
            community=cmd.community,
            aggregate_id=state.household_id,
            actor=actor,
            data=data,
            occurred_at=cmd.at,
            idempotency_key="erased",  # once per household
        )
    ]


def content_key(data: BaseModel) -> str:
    """An event's idempotency key from what it says: with the command's time it fixes the event id,
    so deciding twice on the same command gives the same event (and the store keeps one)."""
    return hashlib.sha256(data.model_dump_json().encode()).hexdigest()[:32]
