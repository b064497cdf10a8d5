"""Offline sync: a phone uploads up to 500 records made without network.

Every record is answered on its own: accepted, duplicate (already stored — a re-sent batch), or
rejected with the field and the reason.  Each record's ``client_id`` is its aggregate id (a visit,
a session…) or, for shifts and volunteer points, part of the event's idempotency key and kept in
the aggregate's state, so the store recognises a re-send however late it comes.  The time the
work was done (``occurred_at``) comes from the phone.

One-off facts are appended together with ``store.append_many`` (pipelined); records touching a
stateful aggregate (the worker's shift log, a household's volunteer account) are grouped per
aggregate, decided in order on one load, and appended as one atomic batch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.auth import Principal
from shared.errors import DomainError, Invalid
from shared.events import TOKEN_PATTERN, Event, now
from shared.eventstore import AppendResult, ConcurrencyError

from .domain import ShiftLog, VolunteerAccount, decide_shift_end, decide_shift_start, evolve_shift_log, evolve_volunteer
from .handlers import (
    SHIFT_LOG,
    VOLUNTEER,
    WORK_KINDS,
    Acting,
    Deps,
    Plan,
    in_grid,
    lookups_for,
    plan_volunteer,
    plan_work,
    same_fact,
    when,
)
from .schemas import SyncAnswer, SyncBatch, SyncResult, VolunteerServiceIn, Work

_TOKEN = re.compile(TOKEN_PATTERN)
_TIME = TypeAdapter(datetime)


class _Shift(Work):
    """data of a shift_started / shift_ended record."""

    shift_id: str | None = None


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parse(index: int, rec: Any, settings: Any, current: datetime) -> tuple[Work, datetime]:
    """Validate one record into its command (raises ``Invalid`` naming the field)."""
    if not _TOKEN.match(rec.client_id):
        raise Invalid(f"client_id must match {TOKEN_PATTERN}", field="client_id")
    if rec.occurred_at is None:
        raise Invalid("occurred_at is required: when the work was done on the phone", field="occurred_at")
    try:
        at = _TIME.validate_python(rec.occurred_at)
    except ValidationError:
        raise Invalid("occurred_at is not an ISO 8601 time", field="occurred_at") from None
    if at.tzinfo is None:
        raise Invalid("occurred_at needs a UTC offset, e.g. +08:00", field="occurred_at")
    data = {**rec.data, "occurred_at": at}
    if rec.kind in WORK_KINDS:
        model, id_field = WORK_KINDS[rec.kind]
        data[id_field] = rec.client_id
    elif rec.kind in ("shift_started", "shift_ended"):
        model = _Shift
        if rec.kind == "shift_started":
            data["shift_id"] = rec.client_id
        elif not data.get("shift_id"):
            raise Invalid("a shift_ended record names the shift_id it ends", field="data.shift_id")
    elif rec.kind == "volunteer_service":
        model = VolunteerServiceIn
        data["service_id"] = rec.client_id
    else:
        raise Invalid(f"unknown kind {rec.kind!r}", field="kind")
    try:
        cmd = model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise Invalid(first["msg"], field="data." + _field(first["loc"])) from None
    when(cmd, settings, current)
    return cmd, at


async def sync_batch(community: str, batch: SyncBatch, principal: Principal, *, deps: Deps) -> SyncAnswer:
    """Store a phone's offline records once each and answer each one."""
    if len(batch.records) > deps.settings.sync_batch_max:
        raise Invalid(f"at most {deps.settings.sync_batch_max} records per batch", field="records")
    acting = Acting(principal.worker_id or "", principal.grid, principal.sub)
    results: list[SyncResult | None] = [None] * len(batch.records)
    current = now()

    def reject(i: int, err: DomainError) -> None:
        rec = batch.records[i]
        results[i] = SyncResult(
            client_id=rec.client_id,
            kind=rec.kind,
            status="rejected",
            code=err.code,
            field=err.field,
            reason=err.message,
        )

    def answer(i: int, status: str) -> None:
        rec = batch.records[i]
        # model_construct: 500 answers per batch, every value already checked.
        results[i] = SyncResult.model_construct(
            client_id=rec.client_id, kind=rec.kind, status=status, code=None, field=None, reason=None
        )

    parsed: list[tuple[int, Work, datetime]] = []
    seen: set[tuple[str, str]] = set()
    for i, rec in enumerate(batch.records):
        if (rec.kind, rec.client_id) in seen:
            answer(i, "duplicate")  # the same record twice in one batch
            continue
        seen.add((rec.kind, rec.client_id))
        try:
            cmd, at = _parse(i, rec, deps.settings, current)
            if cmd.worker_id not in (None, acting.worker_id):
                raise Invalid("a phone syncs only its own worker's records", field="data.worker_id")
        except DomainError as err:
            reject(i, err)
            continue
        parsed.append((i, cmd, at))

    look = await lookups_for(community, [cmd for _, cmd, _ in parsed], deps=deps)
    batches: list[tuple[list[Event], int]] = []
    owners: list[tuple[list[int], Plan | None]] = []  # which records each append answers for
    shifts: list[tuple[int, Work, datetime]] = []
    accounts: dict[str, list[tuple[int, Work, datetime]]] = defaultdict(list)
    for i, cmd, at in parsed:
        kind = batch.records[i].kind
        try:
            if kind in WORK_KINDS:
                plan = plan_work(kind, cmd, batch.records[i].client_id, at, acting, look, community)
                batches.append((plan.events, 0))
                owners.append(([i], plan))
            elif kind.startswith("shift_"):
                shifts.append((i, cmd, at))
            else:
                hid = cmd.household_id  # type: ignore[attr-defined]
                in_grid(look.households.get(hid), hid, acting.grid_id, field="data.household_id")
                accounts[hid].append((i, cmd, at))
        except DomainError as err:
            reject(i, err)

    if shifts:
        await _plan_shifts(community, shifts, acting, batch, batches, owners, reject, answer, deps=deps)
    for hid, items in accounts.items():
        await _plan_account(community, hid, items, acting, batch, batches, owners, reject, answer, deps=deps)

    stored = await deps.store.append_many(batches) if batches else []
    for (indexes, plan), result in zip(owners, stored, strict=True):
        if isinstance(result, AppendResult):
            for i in indexes:
                answer(i, "duplicate" if result.duplicate else "accepted")
        elif isinstance(result, ConcurrencyError) and plan is not None:
            # A one-off fact whose id exists: the same record re-sent (maybe with another time) or a clash.
            if await same_fact(deps.store, plan.events[0]):
                answer(indexes[0], "duplicate")
            else:
                reject(
                    indexes[0],
                    Invalid(
                        f"client_id {plan.record_id} is already used by a different record",
                        field="client_id",
                        reason="id_taken",
                    ),
                )
        else:
            for i in indexes:
                reject(i, _Retry(f"not stored ({type(result).__name__}); send the record again"))
    final = [r for r in results if r is not None]
    assert len(final) == len(results)
    return SyncAnswer(
        accepted=sum(r.status == "accepted" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        rejected=sum(r.status == "rejected" for r in final),
        results=final,
    )


class _Retry(DomainError):
    status = 409
    code = "retry"


async def _plan_shifts(
    community: str,
    items: list[tuple[int, Work, datetime]],
    acting: Acting,
    batch: SyncBatch,
    batches: list[tuple[list[Event], int]],
    owners: list[tuple[list[int], Plan | None]],
    reject: Any,
    answer: Any,
    *,
    deps: Deps,
) -> None:
    """The worker's shift starts and ends, in the order the work happened, on one load of the log."""
    loaded = await deps.store.load(SHIFT_LOG, community, acting.worker_id)
    state: ShiftLog = loaded.state
    events: list[Event] = []
    indexes: list[int] = []
    for i, cmd, at in sorted(items, key=lambda item: item[2]):
        shift_id = cmd.shift_id  # type: ignore[attr-defined]
        try:
            if batch.records[i].kind == "shift_started":
                decided = decide_shift_start(
                    state,
                    community=community,
                    worker_id=acting.worker_id,
                    shift_id=shift_id,
                    grid_id=acting.grid_id,
                    at=at,
                )
            else:
                decided = decide_shift_end(
                    state,
                    community=community,
                    worker_id=acting.worker_id,
                    shift_id=shift_id,
                    at=at,
                    max_hours=deps.settings.max_shift_hours,
                )
        except DomainError as err:
            reject(i, err)
            continue
        if not decided:
            answer(i, "duplicate")
            continue
        for e in decided:
            state = evolve_shift_log(state, e)
        events += decided
        indexes.append(i)
    if events:
        batches.append((events, loaded.version))
        owners.append((indexes, None))


async def _plan_account(
    community: str,
    household_id: str,
    items: list[tuple[int, Work, datetime]],
    acting: Acting,
    batch: SyncBatch,
    batches: list[tuple[list[Event], int]],
    owners: list[tuple[list[int], Plan | None]],
    reject: Any,
    answer: Any,
    *,
    deps: Deps,
) -> None:
    """A household's volunteer credits, decided in order on one load of its account."""
    loaded = await deps.store.load(VOLUNTEER, community, household_id)
    state: VolunteerAccount = loaded.state
    events: list[Event] = []
    indexes: list[int] = []
    for i, cmd, at in sorted(items, key=lambda item: item[2]):
        try:
            plan = plan_volunteer(
                batch.records[i].kind,
                cmd,
                batch.records[i].client_id,
                at,  # type: ignore[arg-type]
                acting.worker_id,
                community,
                deps.settings,
                state,
            )
        except DomainError as err:
            reject(i, err)
            continue
        if not plan.events:
            answer(i, "duplicate")
            continue
        for e in plan.events:
            state = evolve_volunteer(state, e)
        events += plan.events
        indexes.append(i)
    if events:
        batches.append((events, loaded.version))
        owners.append((indexes, None))
