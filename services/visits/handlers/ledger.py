"""Storing a ledger sheet (居民基础信息底册): new households registered, changed ones updated, the same
ones left alone — each row once, however often the file is imported."""

from __future__ import annotations

import csv
import io
import json

from shared.auth import Principal
from shared.cells import safe_cell
from shared.events import Event, now
from shared.eventstore import AppendResult, ConcurrencyError

from ..aggregates import HOUSEHOLD
from ..bootstrap import VisitsDeps
from ..domain.households import (
    ERASED,
    PERSONAL_FIELDS,
    REQUIRED_LEDGER_FIELDS,
    HouseholdState,
    RegisterHousehold,
    TagHousehold,
    UpdateHouseholdProfile,
    decide_profile_update,
    decide_registration,
    decide_tagging,
)
from ..ledger import LedgerRow, LedgerSheet
from ..pii import seal, unseal
from ..queries.ledger import EXPORT_COLUMNS, ledger_entries, ledger_export_rows
from ..schemas import ImportReport, RowRejection


async def import_ledger(community: str, sheet: LedgerSheet, principal: Principal, *, deps: VisitsDeps) -> ImportReport:
    """Register new households, update changed ones, leave the same ones alone — each row once."""
    rejected = list(sheet.rejected)
    buildings = await deps.directory.buildings(community, {r.building_id for r in sheet.rows})
    rows: list[LedgerRow] = []
    for row in sheet.rows:
        building = buildings.get(row.building_id)
        if building is None:
            rejected.append(
                RowRejection(line=row.line, field="building", reason=f"building {row.building_id} is not registered")
            )
            continue
        row.grid_id = row.grid_id or building.get("grid_id")
        if principal.role == "grid_worker" and row.grid_id != principal.grid:
            rejected.append(
                RowRejection(
                    line=row.line, field="grid", reason=f"household is in grid {row.grid_id}, not {principal.grid}"
                )
            )
            continue
        rows.append(row)

    ids = [r.household_id for r in rows]
    known = await ledger_entries(community, ids, deps=deps)
    keys = await deps.keys.keys(community, ids, create=True)
    fresh = [r for r in rows if r.household_id not in known]
    existing = [r for r in rows if r.household_id in known]
    registered = updated = unchanged = 0

    batches: list[tuple[list[Event], int]] = []
    for row in fresh:
        key = keys[row.household_id].key
        if key is None:  # erased before the projection knew the household
            existing.append(row)
            continue
        cmd = RegisterHousehold(
            community=community,
            household_id=row.household_id,
            building_id=row.building_id,
            unit=row.unit,
            room=row.room,
            grid_id=row.grid_id,
            members=row.members,
            tags=tuple(row.tags),
            personal=row.personal,
            at=now(),
        )
        sealed = seal(key, community, row.household_id, row.personal)
        events = decide_registration(
            HouseholdState(),
            cmd,
            actor=principal.sub,
            grid_id=row.grid_id,
            tags=row.tags,
            sealed=sealed,
            stored_personal=None,
        )
        batches.append((events, 0))
    results = await deps.store.append_many(batches) if batches else []
    new_rows = [r for r in fresh if keys[r.household_id].key is not None]
    written: list[tuple[str, list[str]]] = []  # households whose personal fields the sheet wrote: audited
    for row, res in zip(new_rows, results, strict=True):
        if isinstance(res, AppendResult):
            registered += 0 if res.duplicate else 1
            if not res.duplicate:
                written.append((row.household_id, sorted(row.personal)))
        elif isinstance(res, ConcurrencyError):
            existing.append(row)  # registered meanwhile (or the projection lags): compare below
        else:
            rejected.append(RowRejection(line=row.line, reason=f"not stored: {res}; import the file again"))

    for row in existing:
        outcome = await _update_existing(
            community, row, known.get(row.household_id), keys[row.household_id].key, principal, written, deps=deps
        )
        if outcome == "updated":
            updated += 1
        elif outcome == "unchanged":
            unchanged += 1
        else:
            rejected.append(RowRejection(line=row.line, reason=outcome))
    rejected.sort(key=lambda r: r.line)
    await deps.audit.record(principal, community, written, "ledger_import", kind="import")
    return ImportReport(
        rows=sheet.total, registered=registered, updated=updated, unchanged=unchanged, rejected=rejected
    )


async def _update_existing(
    community: str,
    row: LedgerRow,
    known: tuple[HouseholdState, int] | None,
    key: bytes | None,
    principal: Principal,
    written: list[tuple[str, list[str]]],
    *,
    deps: VisitsDeps,
) -> str:
    """Bring an existing household in line with its row: "updated", "unchanged", or why it could not;
    the personal fields it wrote go to ``written`` (for the audit log)."""
    for attempt in range(3):
        # The projection's view first; after a conflict (it lagged), the household's own stream.
        if attempt == 0 and known is not None:
            state, version = known
        else:
            loaded = await deps.store.load(HOUSEHOLD, community, row.household_id)
            state, version = loaded.state, loaded.version
        if state.erased:
            return "unchanged"  # an erased household never gets its personal data back from an old sheet
        current = unseal(key, community, row.household_id, state.sealed)
        changed = {f: v for f, v in row.personal.items() if current.get(f) != v}
        at = now()
        events = decide_profile_update(
            state,
            UpdateHouseholdProfile(
                community=community, household_id=row.household_id, personal=changed, members=row.members, at=at
            ),
            actor=principal.sub,
            sealed=seal(key, community, row.household_id, changed) if key and changed else {},
        )
        events += decide_tagging(
            state,
            TagHousehold(community=community, household_id=row.household_id, add=tuple(row.tags), at=at),
            actor=principal.sub,
        )
        if not events:
            return "unchanged"
        try:
            res = await deps.store.append(events, version)
        except ConcurrencyError:
            continue
        deps.directory.changed(community, row.household_id, res.version)
        if changed and not res.duplicate:
            written.append((row.household_id, sorted(changed)))
        return "updated"
    return "the household kept changing during the import; import the file again"


async def export_ledger(community: str, principal: Principal, *, deps: VisitsDeps) -> str:
    """The ledger as CSV (the import's own columns); erased households read "erased".  Audited."""
    rows = await ledger_export_rows(community, deps=deps)
    keys = await deps.keys.keys(community, [r["household_id"] for r in rows], create=False)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    reads: list[tuple[str, list[str]]] = []
    for r in rows:
        hid = r["household_id"]
        sealed = json.loads(r["sealed"]) if isinstance(r["sealed"], str) else r["sealed"]
        if r["erased"]:
            personal = dict.fromkeys(PERSONAL_FIELDS, ERASED)
        else:
            personal = unseal(keys[hid].key, community, hid, sealed)
            if keys[hid].key is not None:
                reads.append((hid, sorted(personal)))
        missing = [f for f in REQUIRED_LEDGER_FIELDS if f not in r["fields_present"]]
        writer.writerow(
            safe_cell(value)
            for value in [
                hid,
                r["building_id"],
                r["unit"] or "",
                r["room"] or "",
                r["grid_id"] or "",
                *(personal.get(f, "") for f in PERSONAL_FIELDS),
                "" if r["members"] is None else r["members"],
                ";".join(r["tags"]),
                "yes" if not missing else "no",
            ]
        )
    await deps.audit.record(principal, community, reads, "ledger_export", kind="export")
    return out.getvalue()
