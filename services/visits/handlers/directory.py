"""Defining the directory — who and where: communities, buildings, grids, workers, persons."""

from __future__ import annotations

from shared.auth import Principal
from shared.errors import Forbidden
from shared.events.visits import CommunityRegisteredData

from ..aggregates import definition
from ..bootstrap import VisitsDeps
from ..domain.definitions import DefineEntry, decide_definition
from ..schemas import Defined
from .common import check_version


async def define_entry(cmd: DefineEntry, principal: Principal, *, deps: VisitsDeps) -> Defined:
    """Define or redefine a directory entry; the same definition again is a duplicate."""
    loaded = await deps.store.load(definition(cmd.kind), cmd.community, cmd.entry_id)
    events = decide_definition(loaded.state, cmd, actor=principal.sub)
    if not events:
        return Defined(id=cmd.entry_id, version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"{cmd.kind} {cmd.entry_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Defined(id=cmd.entry_id, version=res.version, duplicate=res.duplicate)


async def register_community(cmd: DefineEntry, principal: Principal, *, deps: VisitsDeps) -> Defined:
    """社区: a community joins under its street; a street admin registers only their street's."""
    street = cmd.data.street if isinstance(cmd.data, CommunityRegisteredData) else None
    if principal.role == "street_admin" and street != principal.street:
        raise Forbidden(f"street admin of {principal.street} cannot register a community of {street}", field="street")
    return await define_entry(cmd, principal, deps=deps)
