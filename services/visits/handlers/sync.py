"""Offline sync: the records a phone made without network, stored once each and answered each.

Every record is answered on its own: accepted, duplicate (already stored — a re-sent batch), or
refused with the field and the reason.  Each record's client id is its aggregate id (a visit, a
session…) or, for shifts and volunteer points, part of the event's idempotency key and kept in
the aggregate's state, so the store recognises a re-send however late it comes.  The time the
work was done (``at``) is the phone's.

One-off facts are appended together with ``store.append_many`` (pipelined); records touching a
stateful aggregate (the worker's shift log, a household's volunteer account) are grouped per
aggregate, decided in order on one load, and appended as one atomic batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from shared.errors import DomainError, Invalid
from shared.events import Event
from shared.eventstore import AppendResult, ConcurrencyError

from ..aggregates import SHIFT_LOG, VOLUNTEER
from ..bootstrap import VisitsDeps
from ..domain.households import in_grid
from ..domain.shifts import EndShift, ShiftLog, StartShift, decide_shift_end, decide_shift_start, evolve_shift_log
from ..domain.volunteer import LogVolunteerService, VolunteerAccount, decide_volunteer, evolve_volunteer
from ..domain.work import ActingWorker, WorkCommand, WorkPlan, decide_work
from .common import lookups_for, same_fact

#: A record a phone made offline, as its command.
OfflineCommand = WorkCommand | StartShift | EndShift | LogVolunteerService
#: What became of one record: stored now, stored before (a re-send), or refused and why.
SyncOutcome = Literal["accepted", "duplicate"] | DomainError


class _Retry(DomainError):
    status = 409
    code = "retry"


async def store_offline_work(
    community: str, commands: Sequence[OfflineCommand], worker: ActingWorker, *, deps: VisitsDeps
) -> list[SyncOutcome]:
    """Store ``worker``'s offline records once each; the outcome of each, in the order given."""
    outcomes: list[SyncOutcome | None] = [None] * len(commands)
    look = await lookups_for(community, commands, deps=deps)
    batches: list[tuple[list[Event], int]] = []
    owners: list[tuple[list[int], WorkPlan | None]] = []  # which records each append answers for
    shifts: list[int] = []
    accounts: dict[str, list[int]] = defaultdict(list)
    for i, cmd in enumerate(commands):
        try:
            if isinstance(cmd, WorkCommand):
                plan = decide_work(look, cmd, worker)
                batches.append((plan.events, 0))
                owners.append(([i], plan))
            elif isinstance(cmd, StartShift | EndShift):
                shifts.append(i)
            else:  # volunteer service: a household's account
                hid = cmd.household_id
                in_grid(look.households.get(hid), hid, worker.grid_id, field="data.household_id")
                accounts[hid].append(i)
        except DomainError as err:
            outcomes[i] = err

    if shifts:
        await _decide_shifts(community, commands, shifts, worker, batches, owners, outcomes, deps=deps)
    for hid, indexes in accounts.items():
        await _decide_account(community, hid, commands, indexes, worker, batches, owners, outcomes, deps=deps)

    stored = await deps.store.append_many(batches) if batches else []
    for (indexes, owned), result in zip(owners, stored, strict=True):
        if isinstance(result, AppendResult):
            for i in indexes:
                outcomes[i] = "duplicate" if result.duplicate else "accepted"
        elif isinstance(result, ConcurrencyError) and owned is not None:
            # A one-off fact whose id exists: the same record re-sent (maybe with another time) or a clash.
            if await same_fact(deps.store, owned.events[0]):
                outcomes[indexes[0]] = "duplicate"
            else:
                outcomes[indexes[0]] = Invalid(
                    f"client_id {owned.record_id} is already used by a different record",
                    field="client_id",
                    reason="id_taken",
                )
        else:
            for i in indexes:
                outcomes[i] = _Retry(f"not stored ({type(result).__name__}); send the record again")
    final = [o for o in outcomes if o is not None]
    assert len(final) == len(outcomes)
    return final


async def _decide_shifts(
    community: str,
    commands: Sequence[OfflineCommand],
    indexes: list[int],
    worker: ActingWorker,
    batches: list[tuple[list[Event], int]],
    owners: list[tuple[list[int], WorkPlan | None]],
    outcomes: list[SyncOutcome | None],
    *,
    deps: VisitsDeps,
) -> None:
    """The worker's shift starts and ends, in the order the work happened, on one load of the log."""
    loaded = await deps.store.load(SHIFT_LOG, community, worker.worker_id)
    state: ShiftLog = loaded.state
    events: list[Event] = []
    decided_for: list[int] = []
    for i in sorted(indexes, key=lambda i: commands[i].at):
        cmd = commands[i]
        try:
            if isinstance(cmd, StartShift):
                decided = decide_shift_start(state, cmd, worker)
            else:
                assert isinstance(cmd, EndShift)
                decided = decide_shift_end(state, cmd, worker)
        except DomainError as err:
            outcomes[i] = err
            continue
        if not decided:
            outcomes[i] = "duplicate"
            continue
        for e in decided:
            state = evolve_shift_log(state, e)
        events += decided
        decided_for.append(i)
    if events:
        batches.append((events, loaded.version))
        owners.append((decided_for, None))


async def _decide_account(
    community: str,
    household_id: str,
    commands: Sequence[OfflineCommand],
    indexes: list[int],
    worker: ActingWorker,
    batches: list[tuple[list[Event], int]],
    owners: list[tuple[list[int], WorkPlan | None]],
    outcomes: list[SyncOutcome | None],
    *,
    deps: VisitsDeps,
) -> None:
    """A household's volunteer credits, decided in order on one load of its account."""
    loaded = await deps.store.load(VOLUNTEER, community, household_id)
    state: VolunteerAccount = loaded.state
    events: list[Event] = []
    decided_for: list[int] = []
    for i in sorted(indexes, key=lambda i: commands[i].at):
        cmd = commands[i]
        assert isinstance(cmd, LogVolunteerService)
        try:
            decided = decide_volunteer(state, cmd, worker.worker_id)
        except DomainError as err:
            outcomes[i] = err
            continue
        if not decided:
            outcomes[i] = "duplicate"
            continue
        for e in decided:
            state = evolve_volunteer(state, e)
        events += decided
        decided_for.append(i)
    if events:
        batches.append((events, loaded.version))
        owners.append((decided_for, None))
