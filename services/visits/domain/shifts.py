"""A grid worker's shifts in the grid (daily quota: ≥ 5 hours), one log per worker.

The log's aggregate id is the worker id, so "a worker has at most one open shift" is decided on
one consistent stream; the ids of recent shifts let a re-sent start or end change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import Conflict, Invalid
from shared.events import Event
from shared.events.visits import ShiftEnded, ShiftEndedData, ShiftStarted, ShiftStartedData

from .work import ActingWorker

#: How many past shift ids the log remembers to recognise re-sent starts and ends.
SHIFT_MEMORY = 200


class ShiftTooLong(Invalid):
    """A shift longer than the longest a deployment allows: its end time is wrong (422)."""

    code = "shift_too_long"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StartShift:
    """Start a shift in the grid.  ``worker_id``: the worker named by the caller (None: the caller)."""

    community: str
    shift_id: str
    worker_id: str | None = None
    expected_version: int | None = None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EndShift:
    """End the open shift ``shift_id``; a shift lasts at most ``max_hours``."""

    community: str
    shift_id: str
    worker_id: str | None = None
    expected_version: int | None = None
    max_hours: float
    at: datetime


def decide_shift_start(state: ShiftLog, cmd: StartShift, worker: ActingWorker) -> list[Event]:
    """Start a shift in the worker's grid; a worker has at most one open shift."""
    if cmd.shift_id in state.recent:
        return []  # the same start re-sent
    if state.open_shift_id is not None:
        raise Conflict(
            f"shift {state.open_shift_id} is still open since {state.open_started_at}; end it first",
            field="shift_id",
            open_shift_id=state.open_shift_id,
        )
    data = ShiftStartedData(shift_id=cmd.shift_id, worker_id=worker.worker_id, grid_id=worker.grid_id)
    return [
        ShiftStarted.new(
            community=cmd.community,
            aggregate_id=worker.worker_id,
            actor=worker.worker_id,
            data=data,
            occurred_at=cmd.at,
            idempotency_key=f"start:{cmd.shift_id}",
        )
    ]


def decide_shift_end(state: ShiftLog, cmd: EndShift, worker: ActingWorker) -> list[Event]:
    """End the open shift; ``minutes`` is the time in the grid, at most ``max_hours``."""
    if state.recent.get(cmd.shift_id) == "ended":
        return []  # the same end re-sent
    if state.open_shift_id is None or state.open_started_at is None:
        raise Conflict("no shift is open", field="shift_id")
    if cmd.shift_id != state.open_shift_id:
        raise Conflict(
            f"shift {cmd.shift_id} is not the open shift ({state.open_shift_id})",
            field="shift_id",
            open_shift_id=state.open_shift_id,
        )
    started = state.open_started_at
    minutes = (cmd.at - started).total_seconds() / 60
    if minutes < 0:
        raise Invalid(f"the shift cannot end before it started ({started.isoformat()})", field="occurred_at")
    max_hours = cmd.max_hours
    if minutes > max_hours * 60:
        raise ShiftTooLong(
            f"a shift of {minutes / 60:.1f} h is longer than {max_hours:g} h; end it with the real end time "
            f"(at most {max_hours:g} h after {started.isoformat()})",
            field="occurred_at",
        )
    data = ShiftEndedData(
        shift_id=state.open_shift_id,
        worker_id=worker.worker_id,
        started_at=started.isoformat(),
        minutes=round(minutes, 2),
    )
    return [
        ShiftEnded.new(
            community=cmd.community,
            aggregate_id=worker.worker_id,
            actor=worker.worker_id,
            data=data,
            occurred_at=cmd.at,
            idempotency_key=f"end:{state.open_shift_id}",
        )
    ]
