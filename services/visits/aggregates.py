"""How each visits aggregate is rebuilt from its stream: the event store's view of the domain's states."""

from __future__ import annotations

from shared.eventstore import Aggregate

from .domain.definitions import Definition, evolve_definition
from .domain.households import HouseholdState, evolve_household
from .domain.shifts import ShiftLog, evolve_shift_log
from .domain.volunteer import VolunteerAccount, evolve_volunteer

HOUSEHOLD = Aggregate("visits", "household", HouseholdState, evolve_household, HouseholdState)
SHIFT_LOG = Aggregate("visits", "shift", ShiftLog, evolve_shift_log, ShiftLog)
VOLUNTEER = Aggregate("visits", "volunteer", VolunteerAccount, evolve_volunteer, VolunteerAccount)


def definition(kind: str) -> Aggregate[Definition]:
    """How to load a directory entry (community, grid, building, worker, person) from its stream."""
    return Aggregate("visits", kind, Definition, evolve_definition, None)
