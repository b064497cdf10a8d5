"""The visits domain, pure: aggregate states, ``evolve`` and the decisions (no I/O).

Aggregates that change over time and need optimistic concurrency:

* household (户): registered, profile completed, tagged, erased (PIPL);
* shift log: one per grid worker (aggregate id = worker id), so "an open shift can't start
  twice" is decided on one consistent stream;
* volunteer account: one per household (aggregate id = household id), so a redemption can
  never spend more than the balance, even when two phones redeem at once;
* directory entries (community, grid, building, worker, person): the last definition wins,
  and re-sending the same definition changes nothing.

Facts with their own id (a visit, a session, a council…) are new aggregates appended at
version 0; they need no state here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import Conflict, Invalid
from shared.events import Event
from shared.events.visits import (
    HouseholdProfileUpdated,
    HouseholdProfileUpdatedData,
    HouseholdRegistered,
    HouseholdTagged,
    HouseholdTaggedData,
    ResidentDataErased,
    ResidentDataErasedData,
    ShiftEnded,
    ShiftEndedData,
    ShiftStarted,
    ShiftStartedData,
    VolunteerPointsRedeemed,
    VolunteerPointsRedeemedData,
    VolunteerServiceLogged,
    VolunteerServiceLoggedData,
)

#: Personal information under PIPL: sealed per household, never in an event in clear.
PERSONAL_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "address")
#: What the resident basic-information ledger (居民基础信息底册) must hold for a household to be complete.
REQUIRED_LEDGER_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "address", "members")
#: Tags that make a household a special-assistance household (特殊帮扶对象) for the daily quota.
SPECIAL_ASSISTANCE_TAGS = frozenset({"special_assistance", "elderly_alone", "disabled", "hardship"})
#: Roles of persons that count as party members (下沉党员 sinking / 直管党员 directly managed).
PARTY_MEMBER_ROLES = frozenset({"sinking_party_member", "direct_party_member"})
ERASED = "erased"

TAG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ShiftTooLong(Invalid):
    code = "shift_too_long"


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class AlreadyRegistered(Conflict):
    code = "already_registered"


class DataErased(Conflict):
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


def session_counts(party_member_roles: Iterable[str]) -> bool:
    """A face-to-face session counts for the weekly quota with ≥ 1 sinking or directly-managed party member."""
    return any(role in PARTY_MEMBER_ROLES for role in party_member_roles)


def ledger_missing(fields_present: Iterable[str], erased: bool = False) -> list[str]:
    """Required ledger fields a household lacks (an erased household lacks its personal fields)."""
    have = set(fields_present)
    if erased:
        have -= set(PERSONAL_FIELDS)
    return [f for f in REQUIRED_LEDGER_FIELDS if f not in have]


# ---------------------------------------------------------------- household


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


def decide_profile_update(
    state: HouseholdState,
    *,
    community: str,
    actor: str,
    sealed: Mapping[str, str],
    cleared: Iterable[str],
    members: int | None,
    occurred_at: datetime | None = None,
) -> list[Event]:
    """Complete or correct the ledger entry; personal fields arrive already sealed."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    cleared = [f for f in cleared if f in REQUIRED_LEDGER_FIELDS]
    if state.erased and sealed:
        raise DataErased("this household's personal data was erased; it cannot be filled in again", field="personal")
    present = set(state.fields_present) | set(sealed)
    if members is not None:
        present.add("members")
    present -= set(cleared)
    ordered = [f for f in REQUIRED_LEDGER_FIELDS if f in present] + sorted(present - set(REQUIRED_LEDGER_FIELDS))
    if not sealed and not cleared and (members is None or members == state.members):
        return []  # nothing changes: a retried update is a no-op
    data = HouseholdProfileUpdatedData(
        household_id=state.household_id, fields_present=ordered, sealed=dict(sealed), members=members
    )
    return [
        HouseholdProfileUpdated.new(
            community=community, aggregate_id=state.household_id, actor=actor, data=data, occurred_at=occurred_at
        )
    ]


def decide_tagging(
    state: HouseholdState, *, community: str, actor: str, add: Iterable[str], remove: Iterable[str]
) -> list[Event]:
    """Add and remove tags; tags already as asked change nothing (a retry is a no-op)."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    add = [t for t in check_tags(add, "add") if t not in state.tags]
    remove = [t for t in check_tags(remove, "remove") if t in state.tags]
    if not add and not remove:
        return []
    data = HouseholdTaggedData(household_id=state.household_id, tags=add, removed=remove)
    return [HouseholdTagged.new(community=community, aggregate_id=state.household_id, actor=actor, data=data)]


def decide_erasure(state: HouseholdState, *, community: str, actor: str, reason: str) -> list[Event]:
    """PIPL erasure: once per household; a second request changes nothing."""
    if not state.registered:
        raise Invalid("household is not registered", field="household_id")
    if state.erased:
        return []
    data = ResidentDataErasedData(household_id=state.household_id, reason=reason)
    return [ResidentDataErased.new(community=community, aggregate_id=state.household_id, actor=actor, data=data)]


# ---------------------------------------------------------------- shifts (one log per worker)

#: How many past shift ids the log remembers to recognise re-sent starts and ends.
SHIFT_MEMORY = 200


class ShiftLog(BaseModel):
    """A grid worker's shifts: the open one (if any) and the ids of recent ones."""

    open_shift_id: str | None = None
    open_started_at: datetime | None = None
    open_grid_id: str | None = None
    recent: dict[str, str] = Field(default_factory=dict, description="shift id → 'open' | 'ended'")


def evolve_shift_log(state: ShiftLog, event: Event) -> ShiftLog:
    """Fold one shift event into the worker's log."""
    data: Any = event.data
    recent = dict(state.recent)
    if isinstance(event, ShiftStarted):
        recent[data.shift_id] = "open"
        recent = dict(list(recent.items())[-SHIFT_MEMORY:])
        return ShiftLog(
            open_shift_id=data.shift_id, open_started_at=event.occurred_at, open_grid_id=data.grid_id, recent=recent
        )
    if isinstance(event, ShiftEnded):
        recent[data.shift_id] = "ended"
        recent = dict(list(recent.items())[-SHIFT_MEMORY:])
        if state.open_shift_id == data.shift_id:
            return ShiftLog(recent=recent)
        return state.model_copy(update={"recent": recent})
    return state


def decide_shift_start(
    state: ShiftLog, *, community: str, worker_id: str, shift_id: str, grid_id: str | None, at: datetime
) -> list[Event]:
    """Start a shift in the grid; a worker has at most one open shift."""
    if shift_id in state.recent:
        return []  # the same start re-sent
    if state.open_shift_id is not None:
        raise Conflict(
            f"shift {state.open_shift_id} is still open since {state.open_started_at}; end it first",
            field="shift_id",
            open_shift_id=state.open_shift_id,
        )
    data = ShiftStartedData(shift_id=shift_id, worker_id=worker_id, grid_id=grid_id)
    return [
        ShiftStarted.new(
            community=community,
            aggregate_id=worker_id,
            actor=worker_id,
            data=data,
            occurred_at=at,
            idempotency_key=f"start:{shift_id}",
        )
    ]


def decide_shift_end(
    state: ShiftLog, *, community: str, worker_id: str, shift_id: str | None, at: datetime, max_hours: float
) -> list[Event]:
    """End the open shift; ``minutes`` is the time in the grid, at most ``max_hours``."""
    if shift_id is not None and state.recent.get(shift_id) == "ended":
        return []  # the same end re-sent
    if state.open_shift_id is None or state.open_started_at is None:
        raise Conflict("no shift is open", field="shift_id")
    if shift_id is not None and shift_id != state.open_shift_id:
        raise Conflict(
            f"shift {shift_id} is not the open shift ({state.open_shift_id})",
            field="shift_id",
            open_shift_id=state.open_shift_id,
        )
    started = state.open_started_at
    minutes = (at - started).total_seconds() / 60
    if minutes < 0:
        raise Invalid(f"the shift cannot end before it started ({started.isoformat()})", field="occurred_at")
    if minutes > max_hours * 60:
        raise ShiftTooLong(
            f"a shift of {minutes / 60:.1f} h is longer than {max_hours:g} h; end it with the real end time "
            f"(at most {max_hours:g} h after {started.isoformat()})",
            field="occurred_at",
        )
    data = ShiftEndedData(
        shift_id=state.open_shift_id, worker_id=worker_id, started_at=started.isoformat(), minutes=round(minutes, 2)
    )
    return [
        ShiftEnded.new(
            community=community,
            aggregate_id=worker_id,
            actor=worker_id,
            data=data,
            occurred_at=at,
            idempotency_key=f"end:{state.open_shift_id}",
        )
    ]


# ---------------------------------------------------------------- volunteer points (志愿服务换积分)


class VolunteerAccount(BaseModel):
    """A household's volunteer points: earned, redeemed, and the ids already counted."""

    earned: int = 0
    redeemed: int = 0
    seen: list[str] = Field(default_factory=list)

    @property
    def balance(self) -> int:
        return self.earned - self.redeemed


def evolve_volunteer(state: VolunteerAccount, event: Event) -> VolunteerAccount:
    """Fold one volunteer event into the account."""
    data: Any = event.data
    if isinstance(event, VolunteerServiceLogged):
        return VolunteerAccount(
            earned=state.earned + data.points, redeemed=state.redeemed, seen=[*state.seen, data.service_id]
        )
    if isinstance(event, VolunteerPointsRedeemed):
        return VolunteerAccount(
            earned=state.earned, redeemed=state.redeemed + data.points, seen=[*state.seen, data.redemption_id]
        )
    return state


def decide_volunteer_service(
    state: VolunteerAccount, *, community: str, actor: str, data: VolunteerServiceLoggedData, at: datetime
) -> list[Event]:
    """Credit a resident's volunteer service (the same service id is credited once)."""
    if data.service_id in state.seen:
        return []
    return [
        VolunteerServiceLogged.new(
            community=community,
            aggregate_id=data.household_id,
            actor=actor,
            data=data,
            occurred_at=at,
            idempotency_key=f"service:{data.service_id}",
        )
    ]


def decide_redemption(
    state: VolunteerAccount, *, community: str, actor: str, data: VolunteerPointsRedeemedData, at: datetime
) -> list[Event]:
    """Spend points; never more than the balance."""
    if data.redemption_id in state.seen:
        return []
    if data.points > state.balance:
        raise InsufficientPoints(
            f"cannot redeem {data.points} points: the balance is {state.balance}",
            field="points",
            balance=state.balance,
        )
    return [
        VolunteerPointsRedeemed.new(
            community=community,
            aggregate_id=data.household_id,
            actor=actor,
            data=data,
            occurred_at=at,
            idempotency_key=f"redeem:{data.redemption_id}",
        )
    ]


# ---------------------------------------------------------------- directory entries


class Definition(BaseModel):
    """A directory entry (community, grid, building, worker, person): its latest definition."""

    data: dict[str, Any] | None = None


def evolve_definition(state: Definition, event: Event) -> Definition:
    """The last definition wins."""
    return Definition(data=event.data.model_dump(mode="json"))


def decide_definition(state: Definition, event: Event) -> list[Event]:
    """Define or redefine an entry; the same definition again changes nothing."""
    if state.data == event.data.model_dump(mode="json"):
        return []
    return [event]
