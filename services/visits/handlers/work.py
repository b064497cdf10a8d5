"""Logging the 5+1 work: one-off facts (visit, session, council, friend, training, talent, survey),
the worker's shifts, and a household's volunteer points."""

from __future__ import annotations

import stamina

from shared.auth import Principal
from shared.errors import NotFound
from shared.eventstore import ConcurrencyError

from ..aggregates import SHIFT_LOG, VOLUNTEER
from ..bootstrap import VisitsDeps
from ..domain.households import in_grid
from ..domain.shifts import EndShift, StartShift, decide_shift_end, decide_shift_start
from ..domain.volunteer import AccountCommand, decide_volunteer, evolve_volunteer
from ..domain.work import ActingWorker, WorkCommand, decide_work
from ..schemas import Recorded
from .common import acting_worker, check_version, id_taken, lookups_for, same_fact


async def log_work(cmd: WorkCommand, principal: Principal, *, deps: VisitsDeps) -> Recorded:
    """Log one work fact (visit, session, council, friend, training, talent, survey)."""
    worker = await acting_worker(principal, cmd.community, cmd.worker_id, deps=deps)
    known = await lookups_for(cmd.community, [cmd], deps=deps)
    plan = decide_work(known, cmd, worker)
    try:
        res = await deps.store.append(plan.events, 0)
    except ConcurrencyError:
        if not await same_fact(deps.store, plan.events[0]):
            raise id_taken(plan) from None
        return Recorded(id=plan.record_id, kind=plan.kind, version=1, duplicate=True, **plan.info)
    return Recorded(
        id=plan.record_id,
        kind=plan.kind,
        event_id=str(plan.events[0].id),
        version=res.version,
        duplicate=res.duplicate,
        **plan.info,
    )


# ---------------------------------------------------------------- shifts


async def start_shift(
    cmd: StartShift, principal: Principal, *, deps: VisitsDeps, worker: ActingWorker | None = None
) -> Recorded:
    """Start a shift in the grid; a worker cannot have two open shifts.

    ``worker``: the acting worker when the route resolved it already (before the command's own checks).
    """
    worker = worker or await acting_worker(principal, cmd.community, cmd.worker_id, deps=deps)
    loaded = await deps.store.load(SHIFT_LOG, cmd.community, worker.worker_id)
    events = decide_shift_start(loaded.state, cmd, worker)
    if not events:
        return Recorded(id=cmd.shift_id, kind="shift_started", version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"shift log of {worker.worker_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    return Recorded(
        id=cmd.shift_id, kind="shift_started", event_id=str(events[0].id), version=res.version, duplicate=res.duplicate
    )


async def end_shift(
    cmd: EndShift, principal: Principal, *, deps: VisitsDeps, worker: ActingWorker | None = None
) -> Recorded:
    """End the open shift; the minutes in the grid go into ShiftEnded (over the longest shift is refused).

    ``worker``: the acting worker when the route resolved it already (before the command's own checks).
    """
    worker = worker or await acting_worker(principal, cmd.community, cmd.worker_id, deps=deps)
    loaded = await deps.store.load(SHIFT_LOG, cmd.community, worker.worker_id)
    events = decide_shift_end(loaded.state, cmd, worker)
    if not events:
        return Recorded(id=cmd.shift_id, kind="shift_ended", version=loaded.version, duplicate=True)
    check_version(cmd.expected_version, loaded.version, f"shift log of {worker.worker_id}")
    res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    minutes = events[0].data.minutes  # type: ignore[attr-defined]
    return Recorded(
        id=cmd.shift_id,
        kind="shift_ended",
        event_id=str(events[0].id),
        version=res.version,
        duplicate=res.duplicate,
        minutes=minutes,
    )


# ---------------------------------------------------------------- volunteer points


async def change_account(cmd: AccountCommand, principal: Principal, *, deps: VisitsDeps) -> Recorded:
    """Credit volunteer service or redeem points (志愿服务换积分) for a household; a grid worker, only
    in their grid.  On a concurrent change of the account, decide again on its fresh state."""
    community, household_id = cmd.community, cmd.household_id
    ref = await deps.directory.household(community, household_id)
    if principal.role == "grid_worker":
        worker = await acting_worker(principal, community, cmd.worker_id, deps=deps)
        in_grid(ref, household_id, worker.grid_id)
        actor = worker.worker_id
    else:
        if ref is None:
            raise NotFound(f"household {household_id} is not registered", field="household_id")
        actor = principal.sub
    # Two phones crediting the same household at once: the loser decides again on the fresh account.
    async for attempt in stamina.retry_context(
        on=ConcurrencyError, attempts=5, timeout=None, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
    ):
        with attempt:
            loaded = await deps.store.load(VOLUNTEER, community, household_id)
            events = decide_volunteer(loaded.state, cmd, actor)
            if not events:
                return Recorded(
                    id=cmd.record_id,
                    kind=cmd.kind,
                    version=loaded.version,
                    duplicate=True,
                    balance=loaded.state.balance,
                )
            res = await deps.store.append(events, loaded.version, expected_seq=loaded.last_seq)
    state = evolve_volunteer(loaded.state, events[0])
    return Recorded(
        id=cmd.record_id,
        kind=cmd.kind,
        event_id=str(events[0].id),
        version=res.version,
        duplicate=res.duplicate,
        balance=state.balance,
    )
