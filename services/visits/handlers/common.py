"""What the visits handlers share: who is acting, the directory rows work names, and the checks
around appending (a stale expected version, a record id already taken)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.auth import Principal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import Event
from shared.eventstore import ConcurrencyError, EventStore, aggregate_filter

from ..bootstrap import VisitsDeps
from ..domain.work import ActingWorker, HoldCouncil, HoldSession, WorkLookups, WorkPlan


async def acting_worker(
    principal: Principal, community: str, worker_id: str | None, *, deps: VisitsDeps
) -> ActingWorker:
    """A grid worker logs their own work; a secretary logs it for a named worker of the community."""
    if principal.role == "grid_worker":
        if not principal.worker_id:
            raise Forbidden("the token carries no worker_id", field="worker_id")
        if worker_id not in (None, principal.worker_id):
            raise Forbidden("a grid worker logs only their own work", field="worker_id")
        return ActingWorker(principal.worker_id, principal.grid)
    if worker_id is None:
        raise Invalid("name the worker whose work this is", field="worker_id")
    known, grid = await deps.directory.worker_grid(community, worker_id)
    if not known:
        raise NotFound(f"worker {worker_id} is not registered", field="worker_id")
    return ActingWorker(worker_id, grid)


async def lookups_for(community: str, cmds: Iterable[object], *, deps: VisitsDeps) -> WorkLookups:
    """One query per kind of row for every household, person and building the commands name (any
    command: work, shifts, volunteer points)."""
    households: set[str] = set()
    persons: set[str] = set()
    buildings: set[str] = set()
    for cmd in cmds:
        hid = getattr(cmd, "household_id", None)
        if hid:
            households.add(hid)
        if isinstance(cmd, HoldSession):
            persons.update(cmd.party_members_present)
        if isinstance(cmd, HoldCouncil):
            persons.update(cmd.party_members)
            persons.update(cmd.resident_backbones)
            buildings.add(cmd.building_id)
    found_households = await deps.directory.households(community, households) if households else {}
    roles = await deps.directory.person_roles(community, persons) if persons else {}
    found_buildings: dict[str, dict[str, Any]] = {}
    for bid in buildings:
        b = await deps.directory.building(community, bid)
        if b is not None:
            found_buildings[bid] = b
    return WorkLookups(found_households, roles, found_buildings)


def check_version(expected: int | None, actual: int, aggregate: str) -> None:
    """A stale ``expected_version`` is a 409, the same the event store gives when the aggregate moved on."""
    if expected is not None and expected != actual:
        raise ConcurrencyError(aggregate, expected, actual)


async def same_fact(store: EventStore, event: Event) -> bool:
    """Whether the aggregate already holds this fact (same data), e.g. re-sent with another time."""
    stored = await store.read(
        aggregate_filter(store.ns, event.community, event.context, event.aggregate_type, event.aggregate_id),
        limit=1,
    )
    return bool(stored) and stored[0].event().data == event.data


def id_taken(plan: WorkPlan) -> Conflict:
    """The 409 for a record id already used by a different record."""
    return Conflict(f"{plan.id_field} {plan.record_id} is already used by a different record", field=plan.id_field)
