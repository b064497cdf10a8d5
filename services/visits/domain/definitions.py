"""Directory entries — who and where: communities (社区), buildings (楼栋), grids (网格), community
workers (网格员…) and active residents (party members, building leaders, volunteers).

Each entry is its own aggregate: the last definition wins, and re-sending the same definition
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.errors import NotFound
from shared.events import Event
from shared.events.visits import (
    BuildingRegistered,
    BuildingRegisteredData,
    CommunityMoved,
    CommunityMovedData,
    CommunityRegistered,
    CommunityRegisteredData,
    GridDefined,
    GridDefinedData,
    PersonRegistered,
    PersonRegisteredData,
    WorkerRegistered,
    WorkerRegisteredData,
)

from .households import content_key

#: What an entry can be defined as.
EntryData = (
    CommunityRegisteredData | BuildingRegisteredData | GridDefinedData | WorkerRegisteredData | PersonRegisteredData
)

#: The event that records each kind of definition.
_RECORDED_BY: dict[type[BaseModel], type[Event]] = {
    CommunityRegisteredData: CommunityRegistered,
    BuildingRegisteredData: BuildingRegistered,
    GridDefinedData: GridDefined,
    WorkerRegisteredData: WorkerRegistered,
    PersonRegisteredData: PersonRegistered,
}


class Definition(BaseModel):
    """A directory entry (community, grid, building, worker, person): its latest definition."""

    data: dict[str, Any] | None = None


def evolve_definition(state: Definition, event: Event) -> Definition:
    """The last definition wins (a community's move is its registration under the new street)."""
    if isinstance(event, CommunityMoved):
        return Definition(data=event.data.model_dump(mode="json", exclude={"from_street", "reason"}))
    return Definition(data=event.data.model_dump(mode="json"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DefineEntry:
    """Define or redefine the directory entry ``entry_id`` as ``data`` says."""

    community: str
    entry_id: str
    data: EntryData
    expected_version: int | None = None
    at: datetime

    @property
    def kind(self) -> str:
        """The entry's aggregate kind (community, building, grid, worker, person)."""
        return _RECORDED_BY[type(self.data)].aggregate_kind


def decide_definition(state: Definition, cmd: DefineEntry, *, actor: str) -> list[Event]:
    """Define or redefine an entry; the same definition again changes nothing."""
    if state.data == cmd.data.model_dump(mode="json"):
        return []
    recorded_by = _RECORDED_BY[type(cmd.data)]
    return [
        recorded_by.new(
            community=cmd.community,
            aggregate_id=cmd.entry_id,
            actor=actor,
            data=cmd.data,
            occurred_at=cmd.at,
            idempotency_key=content_key(cmd.data),
        )
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveCommunity:
    """Move a registered community to another street (an operations action, with its reason)."""

    community: str
    street: str
    reason: str
    at: datetime


def decide_move(state: Definition, cmd: MoveCommunity, *, version: int, actor: str) -> list[Event]:
    """CommunityMoved with the whole registration under the new street; already there: nothing.

    ``version``: the community entry's version the move starts from (a later move back and forth
    is a new fact, a retry of this one is not)."""
    if state.data is None:
        raise NotFound(f"community {cmd.community} is not registered", field="community")
    registered = CommunityRegisteredData.model_validate(state.data)
    if registered.street == cmd.street:
        return []
    data = CommunityMovedData(
        **{**registered.model_dump(), "street": cmd.street}, from_street=registered.street, reason=cmd.reason
    )
    return [
        CommunityMoved.new(
            community=cmd.community,
            aggregate_id=cmd.community,
            actor=actor,
            data=data,
            occurred_at=cmd.at,
            idempotency_key=f"move:{version}:{cmd.street}",
        )
    ]
