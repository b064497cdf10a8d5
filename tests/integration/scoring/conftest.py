"""Scoring test helpers: hand-written 5+1 events for Bairuijing, and a scoring service to fold them."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.scoring.app import MIGRATIONS as SCORING_MIGRATIONS
from services.scoring.app import build_app
from services.scoring.domain import RuleSet
from services.scoring.settings import scoring_settings
from shared.db import create_pool, migrate
from shared.events import SHANGHAI, Event
from shared.events.issues import (
    IssueEscalated,
    IssueEscalatedData,
    IssueReported,
    IssueReportedData,
    IssueResolved,
    IssueResolvedData,
)
from shared.events.visits import (
    BuildingCouncilHeld,
    BuildingCouncilHeldData,
    CommunityRegistered,
    CommunityRegisteredData,
    FaceToFaceSessionHeld,
    FaceToFaceSessionHeldData,
    HouseholdProfileUpdated,
    HouseholdProfileUpdatedData,
    HouseholdRegistered,
    HouseholdRegisteredData,
    ResidentDataErased,
    ResidentDataErasedData,
    ResidentSurveyed,
    ResidentSurveyedData,
    ShiftEnded,
    ShiftEndedData,
    TrainingAttended,
    TrainingAttendedData,
    VisitLogged,
    VisitLoggedData,
    WorkerRegistered,
    WorkerRegisteredData,
)
from shared.eventstore import ConcurrencyError, EventStore, connect
from shared.settings import Settings
from tests.harness import auth, eventually, running

BAIRUIJING = "bairuijing"
STREET = "zhongnan"
_ids = itertools.count(1)


def at(day: date | str, hour: int = 9, minute: int = 0) -> datetime:
    """A moment on ``day`` in Asia/Shanghai."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=SHANGHAI)


def _next(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


# ---------------------------------------------------------- events, as the visits and issues services write them


def community(community: str = BAIRUIJING, street: str = STREET, name: str = "百瑞景社区") -> Event:
    return CommunityRegistered.new(
        community=community,
        aggregate_id=community,
        actor="ops",
        occurred_at=at("2025-01-02"),
        data=CommunityRegisteredData(community_id=community, name=name, street=street),
    )


def worker(worker_id: str, community: str = BAIRUIJING, role: str = "grid_worker", on: str = "2025-01-02") -> Event:
    return WorkerRegistered.new(
        community=community,
        aggregate_id=worker_id,
        actor="ops",
        occurred_at=at(on),
        data=WorkerRegisteredData(
            worker_id=worker_id, name=f"网格员 {worker_id}", role=role, grid_id=f"grid-{worker_id}"
        ),
    )  # type: ignore[arg-type]


def visit(
    worker_id: str,
    household: str,
    when: datetime,
    *,
    special: bool = False,
    outcome: str = "contacted",
    community: str = BAIRUIJING,
) -> Event:
    vid = _next("v")
    return VisitLogged.new(
        community=community,
        aggregate_id=vid,
        actor=worker_id,
        occurred_at=when,
        data=VisitLoggedData(
            visit_id=vid,
            worker_id=worker_id,
            household_id=household,
            mode="regular",
            special_assistance=special,
            minutes=15,
            outcome=outcome,
        ),
    )  # type: ignore[arg-type]


def shift(worker_id: str, started: datetime, minutes: float, community: str = BAIRUIJING) -> Event:
    sid = _next("s")
    return ShiftEnded.new(
        community=community,
        aggregate_id=sid,
        actor=worker_id,
        occurred_at=started + timedelta(minutes=minutes),
        data=ShiftEndedData(shift_id=sid, worker_id=worker_id, started_at=started.isoformat(), minutes=minutes),
    )


def issue(
    worker_id: str,
    category: str,
    when: datetime,
    *,
    issue_id: str | None = None,
    source: str = "grid_worker",
    community: str = BAIRUIJING,
) -> Event:
    iid = issue_id or _next("i")
    return IssueReported.new(
        community=community,
        aggregate_id=iid,
        actor=worker_id,
        occurred_at=when,
        data=IssueReportedData(
            issue_id=iid, category=category, description="seen on a knock", reported_by=worker_id, source=source
        ),
    )  # type: ignore[arg-type]


def escalated(issue_id: str, to_level: str, when: datetime, community: str = BAIRUIJING) -> Event:
    return IssueEscalated.new(
        community=community,
        aggregate_id=issue_id,
        actor="issues",
        occurred_at=when,
        data=IssueEscalatedData(
            issue_id=issue_id, from_level="building", to_level=to_level, target="police", reason="manual"
        ),
    )  # type: ignore[arg-type]


def resolved(issue_id: str, by: str, when: datetime, community: str = BAIRUIJING) -> Event:
    return IssueResolved.new(
        community=community,
        aggregate_id=issue_id,
        actor=by,
        occurred_at=when,
        data=IssueResolvedData(issue_id=issue_id, resolved_by=by, resolution="done"),
    )


def session(worker_id: str, when: datetime, party_members: list[str], community: str = BAIRUIJING) -> Event:
    sid = _next("f")
    return FaceToFaceSessionHeld.new(
        community=community,
        aggregate_id=sid,
        actor=worker_id,
        occurred_at=when,
        data=FaceToFaceSessionHeldData(
            session_id=sid,
            worker_id=worker_id,
            station="一期党群服务驿站",
            party_members_present=party_members,
            residents_attending=12,
        ),
    )


def council(worker_id: str, when: datetime, community: str = BAIRUIJING) -> Event:
    cid = _next("c")
    return BuildingCouncilHeld.new(
        community=community,
        aggregate_id=cid,
        actor=worker_id,
        occurred_at=when,
        data=BuildingCouncilHeldData(
            council_id=cid,
            worker_id=worker_id,
            building_id="p4-b4",
            party_members=["pm-li"],
            resident_backbones=["uncle-zhang"],
            attendees=14,
        ),
    )


def household(household_id: str, fields: list[str], community: str = BAIRUIJING) -> Event:
    return HouseholdRegistered.new(
        community=community,
        aggregate_id=household_id,
        actor="w01",
        occurred_at=at("2025-02-01"),
        data=HouseholdRegisteredData(household_id=household_id, building_id="p4-b4", fields_present=fields),
    )


def profile(household_id: str, fields: list[str], community: str = BAIRUIJING) -> Event:
    return HouseholdProfileUpdated.new(
        community=community,
        aggregate_id=household_id,
        actor="w01",
        occurred_at=at("2025-03-01"),
        data=HouseholdProfileUpdatedData(household_id=household_id, fields_present=fields),
    )


def erased(household_id: str, community: str = BAIRUIJING) -> Event:
    return ResidentDataErased.new(
        community=community,
        aggregate_id=household_id,
        actor="ops",
        occurred_at=at("2025-04-01"),
        data=ResidentDataErasedData(household_id=household_id),
    )


def training(worker_id: str, training_id: str, when: datetime, community: str = BAIRUIJING) -> Event:
    aid = _next("t")
    return TrainingAttended.new(
        community=community,
        aggregate_id=aid,
        actor=worker_id,
        occurred_at=when,
        data=TrainingAttendedData(
            attendance_id=aid, worker_id=worker_id, training_id=training_id, title="Role-play: pet conflicts"
        ),
    )


def survey(
    household_id: str,
    worker_id: str,
    when: datetime,
    *,
    visited: bool,
    knows: bool,
    satisfaction: int,
    community: str = BAIRUIJING,
) -> Event:
    qid = _next("q")
    return ResidentSurveyed.new(
        community=community,
        aggregate_id=qid,
        actor="survey",
        occurred_at=when,
        data=ResidentSurveyedData(
            survey_id=qid,
            household_id=household_id,
            worker_id=worker_id,
            visited=visited,
            knows_grid_worker=knows,
            satisfaction=satisfaction,
        ),
    )


# ------------------------------------------------------------------ a scoring service on the real stack


@dataclass
class Scoring:
    """A running scoring service plus direct access to the store and the database.

    ``store`` is the service's own (it may append only scoring events); ``writer`` is the test's
    admin connection, which plays the visits and issues services appending their events.
    """

    settings: Settings
    client: httpx.AsyncClient
    store: EventStore
    pool: asyncpg.Pool
    runtime: Any
    clock: Callable[[], datetime]
    writer: EventStore

    async def append(self, *events: Event) -> int:
        """Append events and return the last stream sequence.

        Each is tried as a new aggregate; one that continues an aggregate (an issue resolved, a
        household updated) is appended after that aggregate's last version.
        """
        last = 0
        results = await self.writer.append_many([([e], 0) for e in events])
        for e, res in zip(events, results, strict=True):
            if isinstance(res, ConcurrencyError):
                existing = await self.writer.read(
                    f"{self.settings.namespace}.{e.community}.{e.context}.{e.aggregate_type}.{e.aggregate_id}.*"
                )
                res = await self.writer.append([e], len(existing))
            assert not isinstance(res, Exception), res
            last = max(last, res.last_seq)
        return last

    async def folded(self, seq: int | None = None, timeout: float = 30) -> None:
        """Wait until the projection's checkpoint reaches ``seq`` (default: the stream's end)."""
        target = seq if seq is not None else await self.store.last_sequence()

        async def caught_up() -> bool:
            pos = await self.pool.fetchval("SELECT position FROM proj_scoring._checkpoint WHERE id = 1")
            return pos is not None and pos >= target

        await eventually(caught_up, timeout=timeout, what=f"scoring folded up to {target}")

    async def get(self, path: str, role: str = "secretary", **scope: Any) -> Any:
        """GET ``path`` with a token of ``role`` (scoped to Bairuijing / Zhongnan street unless ``scope`` says)."""
        resp = await self.client.get(path, headers=auth(self.settings, role, **{**SCOPES.get(role, {}), **scope}))
        assert resp.status_code == 200, resp.text
        return resp.json()


#: The scope of each role's token in these tests unless a test gives its own.
SCOPES: dict[str, dict[str, str]] = {
    "secretary": {"community": BAIRUIJING},
    "grid_worker": {"community": BAIRUIJING},
    "street_admin": {"street": STREET},
}


class Clock:
    """An injectable 'now' the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def scoring_service(
    settings: Settings, *, rules: RuleSet | None = None, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[Scoring]:
    """Run the scoring service in-process (closer timer off: tests close periods by hand)."""
    s = scoring_settings(settings, **{"scoring_close_interval_seconds": 0, **overrides})
    clk = clock or Clock(at("2025-12-01"))
    app = build_app(s, rules=rules, clock=clk)
    nc = await connect(s, "tests-writer")  # the admin: appends the other contexts' events
    try:
        async with running(app) as client:
            runtime = app.state.runtime
            yield Scoring(s, client, runtime.store, runtime.pool, runtime, clk, EventStore(nc, s))
    finally:
        await nc.close()


@pytest.fixture
async def scoring(settings: Settings) -> AsyncIterator[Scoring]:
    async with scoring_service(settings) as svc:
        await svc.append(community())
        yield svc


@pytest.fixture
async def env(settings: Settings):
    """Store and pool without the service (for replays and subprocess tests); the pool is the
    scoring role's, in its schema, as the service's is."""
    nc = await connect(settings, "test")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    pool = await create_pool(settings, service="scoring")
    async with pool.acquire() as conn:
        await migrate(conn, [SCORING_MIGRATIONS])
    yield nc, store, pool
    await nc.close()
    await pool.close()
