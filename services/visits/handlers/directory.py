"""Defining the directory — who and where: communities, buildings, grids, workers, persons."""

from __future__ import annotations

from shared.auth import Principal
from shared.errors import Conflict, Forbidden
from shared.events.visits import CommunityRegisteredData
from shared.eventstore import Loaded

from ..aggregates import definition
from ..bootstrap import VisitsDeps
from ..domain.definitions import DefineEntry, Definition, MoveCommunity, decide_definition, decide_move
from ..schemas import Defined
from .common import check_version


async def define_entry(
    cmd: DefineEntry, principal: Principal, *, deps: VisitsDeps, loaded: Loaded[Definition] | None = None
) -> Defined:
    """Define or redefine a directory entry; the same definition again is a duplicate.  ``loaded``:
    the entry as the caller already checked it — appended at exactly that version (a concurrent
    change is a 409, not a silent "last wins")."""
    if loaded is None:
        loaded = await deps.store.load(definition(cmd.kind), cmd.community, cmd.entry_id)
    events = decide_definition(loaded.state, cmd, actor=principal.sub)
    if not events:
        return Defined(id=cmd.entry_id, version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"{cmd.kind} {cmd.entry_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Defined(id=cmd.entry_id, version=res.version, duplicate=res.duplicate)


async def register_community(cmd: DefineEntry, principal: Principal, *, deps: VisitsDeps) -> Defined:
    """社区: a community joins under its street, once; a street admin registers only their street's.

    Its details (name, district, area…) may be corrected later by its street's admin or ops; its
    street changes only by :func:`move_community`."""
    street = cmd.data.street if isinstance(cmd.data, CommunityRegisteredData) else None
    loaded = await deps.store.load(definition("community"), cmd.community, cmd.entry_id)
    registered = loaded.state.data
    if registered is not None:
        current = registered.get("street")
        if principal.role == "street_admin" and current != principal.street:
            raise Forbidden(f"community {cmd.community} is registered under street {current}", field="community")
        if street != current:
            raise Conflict(
                f"community {cmd.community} is registered under street {current}; moving it to street {street} "
                f"is an operations action (POST /v1/communities/{cmd.community}/street)",
                field="street",
            )
    elif principal.role == "street_admin" and street != principal.street:
        raise Forbidden(f"street admin of {principal.street} cannot register a community of {street}", field="street")
    return await define_entry(cmd, principal, deps=deps, loaded=loaded)


async def move_community(cmd: MoveCommunity, principal: Principal, *, deps: VisitsDeps) -> Defined:
    """Move a community to another street (ops): CommunityMoved, naming who, when, from where and why."""
    loaded = await deps.store.load(definition("community"), cmd.community, cmd.community)
    events = decide_move(loaded.state, cmd, version=loaded.version, actor=principal.sub)
    if not events:
        return Defined(id=cmd.community, version=loaded.version, duplicate=True)
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Defined(id=cmd.community, version=res.version, duplicate=res.duplicate)
