"""Problems noted on a visit, a face-to-face session (居民面对面) or a building council (楼栋议事会)
become issues ``<source_id>-p<index>``, exactly once.

A projection (the runner's exactly-once fold) that keeps the buildings and households it needs to
place a problem, and appends the reports with deterministic event ids: a redelivered or replayed
event files nothing twice.  Unbound (as listed in the spec, e.g. for ``gridwork replay``) it
rebuilds its tables only; the service binds it to its dependencies at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from shared.db import Conn
from shared.events import Event, Place
from shared.events.issues import IssueSource
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingRegistered,
    FaceToFaceSessionHeld,
    HouseholdRegistered,
    VisitLogged,
)
from shared.eventstore import ConcurrencyError, StoredEvent

from ..bootstrap import IssuesDeps
from ..domain import CommandMeta, ReportIssue, decide, initial_state
from ..metrics import FILED_PROBLEMS

log = structlog.get_logger("gridwork.issues")


def _short(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


class ProblemFiling:
    """Files every problem noted on a visit, session or council as an issue of its own."""

    name = "issue_filing"
    event_types = (
        "HouseholdRegistered",
        "BuildingRegistered",
        "VisitLogged",
        "FaceToFaceSessionHeld",
        "BuildingCouncilHeld",
    )
    ddl = """
    CREATE TABLE IF NOT EXISTS buildings (
        community    text NOT NULL,
        building_id  text NOT NULL,
        compound     text,
        phase        text,
        number       text,
        grid_id      text,
        PRIMARY KEY (community, building_id)
    );
    CREATE TABLE IF NOT EXISTS households (
        community     text NOT NULL,
        household_id  text NOT NULL,
        building_id   text,
        unit          text,
        grid_id       text,
        PRIMARY KEY (community, household_id)
    );
    """

    def __init__(self, deps: IssuesDeps | None = None) -> None:
        self.deps = deps

    def bound(self, deps: IssuesDeps) -> ProblemFiling:
        """This reaction, filing through the service's event store."""
        return ProblemFiling(deps)

    async def _place(
        self,
        conn: Conn,
        community: str,
        *,
        household: str | None = None,
        building: str | None = None,
        grid: str | None = None,
    ) -> Place:
        unit = None
        if household:
            row = await conn.fetchrow(
                "SELECT building_id, unit, grid_id FROM households WHERE community = $1 AND household_id = $2",
                community,
                household,
            )
            if row:
                building, unit, grid = row["building_id"], row["unit"], grid or row["grid_id"]
        compound = phase = None
        if building:
            row = await conn.fetchrow(
                "SELECT compound, phase, grid_id FROM buildings WHERE community = $1 AND building_id = $2",
                community,
                building,
            )
            if row:
                compound, phase, grid = row["compound"], row["phase"], grid or row["grid_id"]
        return Place(
            compound=_short(compound, 64),
            phase=_short(phase, 32),
            building=_short(building, 32),
            unit=_short(unit, 32),
            grid=_short(grid, 64),
        )

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Keep the places; file the batch's problems as new issues in one pipelined append (bound only)."""
        batch: list[tuple[list[Event], int]] = []
        for stored in events:
            event = stored.event()
            source: IssueSource
            match event:
                case HouseholdRegistered():
                    d = event.data
                    await conn.execute(
                        "INSERT INTO households (community, household_id, building_id, unit, grid_id) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (community, household_id) DO UPDATE SET "
                        "building_id = EXCLUDED.building_id, unit = EXCLUDED.unit, grid_id = EXCLUDED.grid_id",
                        event.community,
                        d.household_id,
                        d.building_id,
                        d.unit,
                        d.grid_id,
                    )
                    continue
                case BuildingRegistered():
                    bldg = event.data
                    await conn.execute(
                        "INSERT INTO buildings (community, building_id, compound, phase, number, grid_id) "
                        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (community, building_id) DO UPDATE SET "
                        "compound = EXCLUDED.compound, phase = EXCLUDED.phase, number = EXCLUDED.number, "
                        "grid_id = EXCLUDED.grid_id",
                        event.community,
                        bldg.building_id,
                        bldg.compound,
                        bldg.phase,
                        bldg.number,
                        bldg.grid_id,
                    )
                    continue
                case VisitLogged():
                    visit = event.data
                    source_id, source, worker, problems = visit.visit_id, "grid_worker", visit.worker_id, visit.problems
                    place = await self._place(conn, event.community, household=visit.household_id, grid=visit.grid_id)
                    address = None
                case FaceToFaceSessionHeld():
                    session = event.data
                    source_id, source, worker, problems = (
                        session.session_id,
                        "face_to_face",
                        session.worker_id,
                        session.problems,
                    )
                    place, address = Place(), f"party-mass service station {session.station}"[:500]
                case BuildingCouncilHeld():
                    council = event.data
                    source_id, source, worker, problems = (
                        council.council_id,
                        "council",
                        council.worker_id,
                        council.problems,
                    )
                    place = await self._place(conn, event.community, building=council.building_id)
                    address = None
                case _:
                    continue
            if not problems or self.deps is None:
                continue
            for i, note in enumerate(problems):
                issue_id = f"{source_id}-p{i}"
                meta = CommandMeta(
                    community=event.community,
                    actor=worker,
                    at=event.occurred_at,
                    key=f"filed:{event.id}:p{i}",
                    causation_id=event.id,
                    correlation_id=event.correlation_id or event.id,
                )
                command = ReportIssue(
                    issue_id=issue_id,
                    category=note.category,
                    subcategory=note.subcategory,
                    severity=note.severity,
                    description=note.description,
                    photos=tuple(note.photos),
                    place=place,
                    source=source,
                    reported_by=worker,
                    caused_by_visit=source_id,
                    address=address,
                )
                fresh = initial_state().model_copy(update={"issue_id": issue_id})
                batch.append((decide(fresh, command, meta, policy=self.deps.policy), 0))
                FILED_PROBLEMS.labels(source).inc()
        if batch and self.deps is not None:
            for (evs, _), result in zip(batch, await self.deps.store.append_many(batch), strict=True):
                if isinstance(result, ConcurrencyError):
                    # The id is taken by other events: never overwrite an issue; say so.
                    log.warning("problem_not_filed", issue_id=evs[0].aggregate_id, reason="id in use")
                elif isinstance(result, Exception):
                    raise result  # broker trouble: the runner retries the batch
