"""Households in the ledger: registered with their personal fields sealed, completed or corrected,
tagged, and erased under PIPL."""

from __future__ import annotations

from typing import Any

import structlog

from shared.auth import Principal
from shared.errors import Forbidden, NotFound
from shared.eventstore import Loaded

from ..aggregates import HOUSEHOLD
from ..bootstrap import VisitsDeps
from ..domain.households import (
    ERASED,
    PERSONAL_FIELDS,
    DataErased,
    EraseResidentData,
    HouseholdState,
    RegisterHousehold,
    TagHousehold,
    UpdateHouseholdProfile,
    check_tags,
    decide_erasure,
    decide_profile_update,
    decide_registration,
    decide_tagging,
    in_grid,
    ledger_missing,
    may_read_personal,
)
from ..pii import seal, unseal
from ..queries.households import household_row
from ..schemas import Changed, HouseholdOut
from .common import check_version

log = structlog.get_logger("gridwork.visits")


async def register_household(cmd: RegisterHousehold, principal: Principal, *, deps: VisitsDeps) -> Changed:
    """Enter a household in the ledger; its personal fields are sealed with a new household key."""
    community, household_id = cmd.community, cmd.household_id
    building = await deps.directory.building(community, cmd.building_id)
    if building is None:
        raise NotFound(f"building {cmd.building_id} is not registered", field="building_id")
    grid = cmd.grid_id or building.get("grid_id")
    if principal.role == "grid_worker" and (grid is None or grid != principal.grid):
        raise Forbidden(f"household's grid {grid} is not the worker's grid", field="building_id")
    tags = check_tags(cmd.tags)
    loaded = await deps.store.load(HOUSEHOLD, community, household_id)
    sealed: dict[str, str] = {}
    stored: dict[str, str] | None = None
    if loaded.state.registered:
        key = await deps.keys.key(community, household_id)
        stored = unseal(key.key, community, household_id, loaded.state.sealed)
    elif cmd.personal:
        key = await deps.keys.key(community, household_id, create=True)
        assert key.key is not None
        sealed = seal(key.key, community, household_id, cmd.personal)
    events = decide_registration(
        loaded.state, cmd, actor=principal.sub, grid_id=grid, tags=tags, sealed=sealed, stored_personal=stored
    )
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    res = await deps.store.append(events, 0)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def _household_for_change(
    community: str, household_id: str, principal: Principal, *, deps: VisitsDeps
) -> Loaded[HouseholdState]:
    loaded = await deps.store.load(HOUSEHOLD, community, household_id)
    if not loaded.state.registered:
        raise NotFound(f"household {household_id} is not registered", field="household_id")
    if principal.role == "grid_worker":
        ref = await deps.directory.household(community, household_id)
        in_grid(ref, household_id, principal.grid)
    return loaded


async def update_household(cmd: UpdateHouseholdProfile, principal: Principal, *, deps: VisitsDeps) -> Changed:
    """Complete or correct a ledger entry (a stale expected version → 409)."""
    community, household_id = cmd.community, cmd.household_id
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    state = loaded.state
    personal = cmd.personal
    sealed: dict[str, str] = {}
    if personal and not state.erased:
        key = await deps.keys.key(community, household_id, create=True)
        if key.key is None:  # the key was destroyed and the erasure event is still to be recorded
            raise DataErased("this household's personal data was erased", field="personal")
        current = unseal(key.key, community, household_id, state.sealed)
        # Only fields that really change are re-sealed, so a retried update changes nothing.
        changed = {f: v for f, v in personal.items() if current.get(f) != v}
        sealed = seal(key.key, community, household_id, changed)
    elif personal:
        sealed = dict.fromkeys(personal, "")  # decide refuses personal data for an erased household
    events = decide_profile_update(state, cmd, actor=principal.sub, sealed=sealed)
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"household {household_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def tag_household(cmd: TagHousehold, principal: Principal, *, deps: VisitsDeps) -> Changed:
    """Tag or untag a household (special assistance, elderly living alone, young…)."""
    community, household_id = cmd.community, cmd.household_id
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    events = decide_tagging(loaded.state, cmd, actor=principal.sub)
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"household {household_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def erase_household(cmd: EraseResidentData, principal: Principal, *, deps: VisitsDeps) -> Changed:
    """PIPL erasure: erase the free text that names the household, destroy the household key, then
    record ResidentDataErased."""
    community, household_id = cmd.community, cmd.household_id
    loaded = await _household_for_change(community, household_id, principal, deps=deps)
    # The texts go first, while the key still opens what names the household (a name, a phone, an
    # ID number, an address); then the key: if the append fails, the data is already unreadable
    # and a retry records it.
    key = await deps.keys.key(community, household_id)
    personal = unseal(key.key, community, household_id, loaded.state.sealed) if key.key is not None else {}
    erased = await deps.vault.erase_naming(community, personal, household_id=household_id)
    await deps.keys.destroy(community, household_id)
    events = decide_erasure(loaded.state, cmd, actor=principal.sub)
    if not events:
        return Changed(id=household_id, version=loaded.version, duplicate=True)
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    deps.directory.changed(community, household_id, res.version)
    if not res.duplicate:
        # The erasure itself is audited: who, when, which household and which fields it held (names only).
        await deps.audit.record(principal, community, [(household_id, sorted(personal))], cmd.reason, kind="erasure")
    # Once more, now that nothing new can be written about the household: a text sealed while
    # the first pass ran (a worker's note on it, a hotline request naming it) goes too.
    erased += await deps.vault.erase_naming(community, personal, household_id=household_id)
    log.info("household_texts_erased", community=community, texts=erased)
    return Changed(id=household_id, version=res.version, duplicate=res.duplicate)


async def household_view(
    community: str, household_id: str, principal: Principal, *, reveal: bool, deps: VisitsDeps
) -> HouseholdOut:
    """A household with its ledger completeness, its visit counts and, where allowed, its personal fields;
    a revealed read of a resident's personal data is audited (a write: it lives here, not in queries)."""
    row = await household_row(community, household_id, deps=deps)
    if row is None:
        loaded = await deps.store.load(HOUSEHOLD, community, household_id)
        if not loaded.state.registered:
            raise NotFound(f"household {household_id} is not registered", field="household_id")
        s = loaded.state
        item: dict[str, Any] = {
            **s.model_dump(),
            "version": loaded.version,
            "visits": 0,
            "special_visits": 0,
            "last_visit_at": None,
        }
    else:
        item = row
    if principal.role == "grid_worker" and item["grid_id"] != principal.grid:
        raise Forbidden(f"household {household_id} is not in grid {principal.grid}", field="household_id")
    allowed, audited = may_read_personal(principal.role, principal.grid, item["grid_id"])
    personal: dict[str, str] | None = None
    owner = allowed and not audited
    if allowed and (reveal or owner):
        if item["erased"]:
            personal = dict.fromkeys(PERSONAL_FIELDS, ERASED)
        else:
            key = await deps.keys.key(community, household_id)
            personal = unseal(key.key, community, household_id, item["sealed"])
            if audited and key.key is not None:
                await deps.audit.record(
                    principal, community, [(household_id, sorted(personal))], "household_view", kind="reveal"
                )
    elif reveal:
        raise Forbidden(f"role {principal.role} may not read residents' personal data", field="reveal")
    missing = ledger_missing(item["fields_present"], item["erased"])
    return HouseholdOut(
        household_id=household_id,
        building_id=item["building_id"],
        unit=item["unit"],
        room=item["room"],
        grid_id=item["grid_id"],
        members=item["members"],
        tags=list(item["tags"]),
        fields_present=list(item["fields_present"]),
        missing=missing,
        complete=not missing,
        erased=item["erased"],
        version=item["version"],
        visits=item["visits"] or 0,
        special_visits=item["special_visits"] or 0,
        last_visit_at=item["last_visit_at"],
        personal=personal,
    )
