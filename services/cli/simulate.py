"""``gridwork simulate --via api``: the simulator's workload played through the public HTTP APIs.

``services.cli.workload.generate`` yields the same deterministic events the store path appends; here
each one becomes the request a client of the running services would send for that work:

* the directory — communities (ops), buildings, workers, grids, party members and backbones
  (secretary) with ``PUT``, the households as the community's ledger CSV (``POST …/ledger/import``);
* a worker's day — shifts, visits, sessions, councils, friends, trainings, talents, surveys — as
  the phone's offline-sync batch (``POST …/sync``, at most 500 records, the record ids as client
  ids).  A phone that was offline uploads its records with a later day's batch, days after the
  work (occurred_at stays the time of the work), as the generator yields them;
* a problem the worker reports (``POST …/issues``) and, when the workload solves it, the steps to
  resolved (accept, assign to the worker, resolve);
* a 12345 work order (``POST …/hotline/orders``, dispatched at the order's time).

Every request carries the record's own id, so a second run stores nothing again: each record
comes back ``duplicate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import httpx

from services.cli.player import ApiPlayer
from services.cli.workload import HOUSEHOLDS, generate, ledger_csv, ledger_rows
from shared.events import Event
from shared.events import visits as ve
from shared.settings import Settings

from .local import load_settings

#: Sync record kind, the data field holding its client id, and the data fields the record sends.
SYNC_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "VisitLogged": (
        "visit",
        "visit_id",
        ("household_id", "mode", "special_assistance", "minutes", "outcome", "notes", "problems"),
    ),
    "FaceToFaceSessionHeld": (
        "face_to_face_session",
        "session_id",
        ("station", "party_members_present", "residents_attending", "topics", "problems"),
    ),
    "BuildingCouncilHeld": (
        "building_council",
        "council_id",
        ("building_id", "party_members", "resident_backbones", "attendees", "decisions", "problems"),
    ),
    "ResidentBefriended": ("resident_befriended", "friend_id", ("household_id",)),
    "TrainingAttended": ("training_attended", "attendance_id", ("training_id", "title", "organiser", "hours")),
    "TalentDiscovered": ("talent_discovered", "talent_id", ("household_id", "field", "description")),
    "ResidentSurveyed": (
        "resident_surveyed",
        "survey_id",
        ("household_id", "visited", "knows_grid_worker", "satisfaction"),
    ),
}
#: The next lifecycle step towards resolved, from each open state.
NEXT_STEP = {"reported": "accept", "reopened": "accept", "accepted": "assign", "assigned": "resolve"}
DONE = frozenset({"resolved", "verified", "closed", "merged"})
WHAT = ("directory", "ledger", "sync", "issues", "lifecycle", "hotline")


@dataclass
class Tally:
    """What the services answered, per kind of request: accepted, duplicate, rejected."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: {w: Counter() for w in WHAT})
    events: int = 0  # events the accepted requests stored
    late: int = 0  # sync records uploaded with a later day's batch than the day of the work
    rejections: list[str] = field(default_factory=list)

    def add(self, what: str, status: str, events: int = 1, reason: str | None = None) -> None:
        self.counts[what][status] += 1
        if status == "accepted":
            self.events += events
        elif status == "rejected" and len(self.rejections) < 20:
            self.rejections.append(f"{what}: {reason}")

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.counts.values())


def _given(body: dict[str, Any]) -> dict[str, Any]:
    """A request body without the fields the event leaves out."""
    return {k: v for k, v in body.items() if v is not None}


def _json(value: Any) -> Any:
    if isinstance(value, list):
        return [_json(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def sync_record(event: Event) -> dict[str, Any]:
    """The phone's sync record for one work event."""
    d = event.data
    at = event.occurred_at.isoformat()
    if event.type == "ShiftStarted":
        return {"client_id": d.shift_id, "kind": "shift_started", "occurred_at": at, "data": {}}  # type: ignore[attr-defined]
    if event.type == "ShiftEnded":
        shift = d.shift_id  # type: ignore[attr-defined]
        return {"client_id": f"{shift}-end", "kind": "shift_ended", "occurred_at": at, "data": {"shift_id": shift}}
    kind, id_field, fields = SYNC_KINDS[event.type]
    data = {f: _json(getattr(d, f)) for f in fields if getattr(d, f, None) is not None}
    return {"client_id": getattr(d, id_field), "kind": kind, "occurred_at": at, "data": data}


class ApiSimulator(ApiPlayer):
    """Plays ``generate(communities, days, seed, start, households)`` against running services."""

    def __init__(
        self, settings: Settings, services: dict[str, str], concurrency: int = 16, community: str = ""
    ) -> None:
        super().__init__(settings, services, community=community, connections=concurrency * 2)
        self.slots = asyncio.Semaphore(concurrency)
        self.tally = Tally()
        self.grid_of: dict[tuple[str, str], str] = {}  # (community, worker) → grid
        self._tokens: dict[tuple[str, ...], dict[str, str]] = {}

    # ------------------------------------------------------------------ tokens

    def _cached(self, role: str, **scope: Any) -> dict[str, str]:
        key = (role, *(f"{k}={v}" for k, v in sorted(scope.items())))
        if key not in self._tokens:
            self._tokens[key] = self.token(role, **scope)
        return self._tokens[key]

    def worker(self, community: str, worker: str) -> dict[str, str]:
        grid = self.grid_of[(community, worker)]
        return self._cached("grid_worker", community=community, worker_id=worker, grid=grid, sub=worker)

    def secretary(self, community: str) -> dict[str, str]:
        return self._cached("secretary", community=community)

    # ------------------------------------------------------------------ one request, answered

    async def _slotted(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """A request (resent as :meth:`send` does) while holding one of the simulator's slots."""
        async with self.slots:
            return await self.send(method, url, **kw)

    async def _put(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        r = await self._slotted("PUT", self.urls["visits"] + path, headers=headers, json=body)
        if r.status_code in (200, 201):
            self.tally.add("directory", "duplicate" if r.json().get("duplicate") else "accepted")
        else:
            self.tally.add("directory", "rejected", reason=f"PUT {path} → {r.status_code} {r.text[:200]}")

    async def seed(self, events: list[Event]) -> None:
        """The directory, then each community's ledger."""
        ops = self._cached("ops")
        households: dict[str, list[Event]] = defaultdict(list)
        buildings: dict[str, dict[str, ve.BuildingRegisteredData]] = defaultdict(dict)  # by community, by id
        later: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        first: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for e in events:
            d: Any = e.data
            base = f"/v1/communities/{e.community}"
            sec = self.secretary(e.community) if e.type != "CommunityRegistered" else ops
            if e.type == "CommunityRegistered":
                body = {"name": d.name, "street": d.street, "district": d.district, "city": d.city}
                body |= {"area_km2": d.area_km2, "residents": d.residents}
                first.append((base, ops, _given(body)))
            elif e.type == "BuildingRegistered":
                buildings[e.community][d.building_id] = d
                body = {"compound": d.compound, "phase": d.phase, "number": d.number, "units": d.units}
                body["grid_id"] = d.grid_id
                later.append((f"{base}/buildings/{d.building_id}", sec, _given(body)))
            elif e.type == "WorkerRegistered":  # a grid worker, or the secretary or deputy (no grid)
                self.grid_of[(e.community, d.worker_id)] = d.grid_id
                body = {"name": d.name, "role": d.role, "grid_id": d.grid_id, "street": d.street}
                later.append((f"{base}/workers/{d.worker_id}", sec, _given(body)))
            elif e.type == "GridDefined":
                body = {"name": d.name, "worker_id": d.worker_id, "buildings": list(d.buildings)}
                later.append((f"{base}/grids/{d.grid_id}", sec, body))
            elif e.type == "PersonRegistered":
                body = {"role": d.role, "building_id": d.building_id, "display_name": d.display_name}
                later.append((f"{base}/persons/{d.person_id}", sec, {k: v for k, v in body.items() if v}))
            elif e.type == "HouseholdRegistered":
                households[e.community].append(e)
            else:
                raise ValueError(f"no API call for directory event {e.type}")
        await asyncio.gather(*(self._put(p, h, b) for p, h, b in first))
        await asyncio.gather(*(self._put(p, h, b) for p, h, b in later))
        await asyncio.gather(*(self._ledger(c, hh, buildings[c]) for c, hh in households.items()))

    async def _ledger(
        self, community: str, households: list[Event], buildings: dict[str, ve.BuildingRegisteredData]
    ) -> None:
        rows = ledger_rows(community, (cast(ve.HouseholdRegisteredData, e.data) for e in households), buildings)
        files = {"file": (f"{community}-ledger.csv", ledger_csv(rows), "text/csv")}
        r = await self._slotted(
            "POST",
            f"{self.urls['visits']}/v1/communities/{community}/ledger/import",
            headers=self.secretary(community),
            files=files,
        )
        if r.status_code not in (200, 201):
            for _ in rows:
                self.tally.add("ledger", "rejected", reason=f"ledger import → {r.status_code} {r.text[:200]}")
            return
        report = r.json()
        for _ in range(report["registered"] + report["updated"]):
            self.tally.add("ledger", "accepted")
        for _ in range(report["unchanged"]):
            self.tally.add("ledger", "duplicate")
        for row in report["rejected"]:
            self.tally.add("ledger", "rejected", reason=f"{community} line {row.get('line')}: {row.get('reason')}")

    async def _sync(self, community: str, worker: str, records: list[dict[str, Any]]) -> None:
        max_batch = 500
        for i in range(0, len(records), max_batch):
            chunk = records[i : i + max_batch]
            r = await self._slotted(
                "POST",
                f"{self.urls['visits']}/v1/communities/{community}/sync",
                headers=self.worker(community, worker),
                json={"device_id": f"phone-{worker}", "records": chunk},
            )
            if r.status_code != 200:
                for _ in chunk:
                    self.tally.add("sync", "rejected", reason=f"sync of {worker} → {r.status_code} {r.text[:200]}")
                continue
            for res in r.json()["results"]:
                reason = f"{res['client_id']} {res.get('field')}: {res.get('reason')}"
                self.tally.add("sync", res["status"], reason=reason)

    async def _issue(self, report: Event, resolved: Event | None) -> None:
        """A worker's problem report and, if the workload solves it, the steps to resolved."""
        d: Any = report.data
        c, worker = report.community, d.reported_by
        headers = self.worker(c, worker)
        body = {
            "issue_id": d.issue_id,
            "category": d.category,
            "subcategory": d.subcategory,
            "severity": d.severity,
            "place": d.place.model_dump(mode="json", exclude_none=True),
            "description": d.description,
            "occurred_at": report.occurred_at.isoformat(),
        }
        r = await self._slotted("POST", f"{self.urls['issues']}/v1/communities/{c}/issues", headers=headers, json=body)
        if r.status_code not in (200, 201):
            self.tally.add("issues", "rejected", reason=f"{d.issue_id} → {r.status_code} {r.text[:200]}")
            return
        out = r.json()
        self.tally.add("issues", "duplicate" if out["duplicate"] else "accepted")
        if resolved is not None:
            await self._resolve(c, d.issue_id, worker, out["issue"]["status"], out["version"], resolved)

    async def _resolve(self, c: str, issue: str, worker: str, status: str, version: int, resolved: Event) -> None:
        headers = self.worker(c, worker)
        bodies = {
            "accept": {},
            "assign": {"assignee_kind": "worker", "assignee_id": worker},
            "resolve": {"resolution": resolved.data.resolution},  # type: ignore[attr-defined]
        }
        steps = 0
        for _attempt in range(20):
            if status in DONE:
                self.tally.add("lifecycle", "accepted" if steps else "duplicate", events=steps)
                return
            action = NEXT_STEP[status]
            r = await self._slotted(
                "POST",
                f"{self.urls['issues']}/v1/communities/{c}/issues/{issue}/{action}",
                headers=headers,
                json={"version": version, **bodies[action]},
            )
            if r.status_code in (200, 201):
                out = r.json()
                status, version, steps = out["issue"]["status"], out["version"], steps + 1
            elif r.status_code == 409:  # a rule or a timer moved the issue meanwhile: go on from where it is
                err = r.json()["error"]
                status, version = err.get("current_state", status), err.get("version", version)
            else:
                self.tally.add("lifecycle", "rejected", reason=f"{action} {issue} → {r.status_code} {r.text[:200]}")
                return
        self.tally.add("lifecycle", "rejected", reason=f"{issue}: still {status} after 20 steps")

    async def _order(self, e: Event) -> None:
        d: Any = e.data
        body = {
            "order_no": d.order_no,
            "request": d.request,
            "category": d.category,
            "subcategory": d.subcategory,
            "severity": d.severity,
            "place": d.place.model_dump(mode="json", exclude_none=True),
            "response_deadline": d.response_deadline.isoformat(),
            "resolution_deadline": d.resolution_deadline.isoformat(),
            "dispatched_at": e.occurred_at.isoformat(),
        }
        r = await self._slotted(
            "POST",
            f"{self.urls['issues']}/v1/communities/{e.community}/hotline/orders",
            headers=self._cached("hotline"),
            json={k: v for k, v in body.items() if v is not None},
        )
        if r.status_code not in (200, 201):
            self.tally.add("hotline", "rejected", reason=f"{d.order_no} → {r.status_code} {r.text[:200]}")
        else:
            self.tally.add("hotline", "duplicate" if r.json()["duplicate"] else "accepted", events=2)

    async def play_day(self, day: date, events: list[Event]) -> None:
        """One yielded day: every phone's batch (late records included), the reports, the work orders."""
        batches: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        reports: dict[tuple[str, str], Event] = {}
        resolutions: dict[tuple[str, str], Event] = {}
        orders: list[Event] = []
        for e in events:
            d: Any = e.data
            if e.type == "HotlineOrderReceived":
                orders.append(e)
            elif e.type == "IssueReported":
                if d.source != "hotline":  # a work order's report is the hotline endpoint's to make
                    reports[(e.community, d.issue_id)] = e
            elif e.type == "IssueResolved":
                resolutions[(e.community, d.issue_id)] = e
            else:
                batches[(e.community, d.worker_id)].append(sync_record(e))
                self.tally.late += e.occurred_at.date() < day
        jobs = [self._sync(c, w, sorted(recs, key=lambda r: r["occurred_at"])) for (c, w), recs in batches.items()]
        jobs += [self._issue(e, resolutions.get(key)) for key, e in reports.items()]
        jobs += [self._order(e) for e in orders]
        await asyncio.gather(*jobs)


async def simulate_via_api(
    settings: Settings,
    services: dict[str, str],
    communities: int,
    days: int,
    seed: int,
    start: date,
    households: int = HOUSEHOLDS,
    progress: Callable[[int, int, Tally], None] | None = None,
    concurrency: int = 16,
) -> dict[str, Any]:
    """Seed and play the workload through the APIs, then wait for the projections; returns the tally."""
    sim = ApiSimulator(settings, services, concurrency)
    started = time.perf_counter()
    seeded = started
    seed_events = 0
    try:
        for n, (day, events) in enumerate(generate(communities, days, seed, start, households)):
            if day is None:
                await sim.seed(events)
                await sim.settle(timeout=600)  # the ledger in the directory before the phones sync
                seeded, seed_events = time.perf_counter(), sim.tally.events
            else:
                await sim.play_day(day, events)
            if progress:
                progress(n, days, sim.tally)
        played = time.perf_counter()
        await sim.settle(timeout=1800)
    finally:
        await sim.close()
    return {
        "tally": sim.tally,
        "seed_seconds": seeded - started,  # directory and ledger, until the projections hold them
        "seed_events": seed_events,
        "play_seconds": played - seeded,  # the days' requests, until the last one was answered
        "work_events": sim.tally.events - seed_events,
        "settle_seconds": time.perf_counter() - played,  # until every projection folded the work
    }


# ---------------------------------------------------------------------------- gridwork simulate


async def simulate_into_store(
    settings: Settings,
    communities: int,
    days: int,
    seed: int,
    start: str,
    households: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate the deterministic workload and append it straight into the event store."""
    from datetime import date

    from shared.eventstore import EventStore, connect
    from shared.nats import patches

    from .workload import by_aggregate, generate

    patches.install()
    nc = await connect(settings, "gridwork-simulate")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    appended = duplicates = failed = 0
    started = time.perf_counter()
    try:
        for n, (_day, events) in enumerate(generate(communities, days, seed, date.fromisoformat(start), households)):
            groups = by_aggregate(events)
            for i in range(0, len(groups), 2000):
                for result in await store.append_many(groups[i : i + 2000]):
                    if isinstance(result, Exception):
                        failed += 1
                    elif result.duplicate:
                        duplicates += result.last_seq - result.first_seq + 1
                    else:
                        appended += result.last_seq - result.first_seq + 1
            if progress:
                progress(n, days, appended)
    finally:
        await nc.close()
    seconds = time.perf_counter() - started
    return {"appended": appended, "duplicates": duplicates, "failed": failed, "seconds": seconds}


def cmd_simulate(args: argparse.Namespace) -> int:
    from datetime import date

    for name in ("communities", "days", "households"):
        if getattr(args, name) < 1:
            print(f"--{name}: must be at least 1", file=sys.stderr)
            return 2
    if args.start:
        try:
            date.fromisoformat(args.start)
        except ValueError:
            print(f"--start: {args.start!r} is not a day (YYYY-MM-DD)", file=sys.stderr)
            return 2
    if args.via == "api":
        return _simulate_via_api(args)
    import uvloop
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = load_settings()
    start = args.start or "2025-01-01"
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[events]:,} events"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("days", total=args.days + 1, events=0)

        def progress(n: int, _days: int, appended: int) -> None:
            bar.update(task, completed=min(n + 1, args.days + 1), events=appended)

        result = uvloop.run(
            simulate_into_store(settings, args.communities, args.days, args.seed, start, args.households, progress)
        )
    print(
        f"{result['appended']:,} events appended ({result['duplicates']:,} already there, "
        f"{result['failed']:,} refused) in {result['seconds']:.1f} s "
        f"({result['appended'] / max(result['seconds'], 1e-9):,.0f} events/s)"
    )
    return 0 if not result["failed"] else 1


def _simulate_via_api(args: argparse.Namespace) -> int:
    """``gridwork simulate --via api``: the same workload through the running stack's public APIs."""
    from datetime import date, timedelta

    import uvloop
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from shared.events import now

    settings = load_settings()
    endpoints_file = settings.data_dir / "endpoints.json"
    if not endpoints_file.exists():
        print(f"--via api: no running stack ({endpoints_file} not found); start it with `gridwork up`", file=sys.stderr)
        return 2
    services = json.loads(endpoints_file.read_text())["services"]
    today = now().date()
    start = date.fromisoformat(args.start) if args.start else today - timedelta(days=args.days)
    oldest = today - timedelta(days=args.backdate_days - 1)
    if start < oldest:
        print(
            f"--start/--days: the visits API takes work at most {args.backdate_days} days back "
            f"(GRIDWORK_MAX_BACKDATE_DAYS; --backdate-days), so --via api plays days from {oldest} on; "
            f"asked to start on {start}",
            file=sys.stderr,
        )
        return 2
    if start + timedelta(days=args.days) > today + timedelta(days=1):
        print(f"--days: {args.days} days from {start} run past today ({today})", file=sys.stderr)
        return 2
    console = Console()
    with Progress(
        TextColumn("simulating via the APIs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[records]:,} records accepted"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("days", total=args.days + 1, records=0)

        def progress(n: int, _days: int, tally: Tally) -> None:
            bar.update(task, completed=min(n + 1, args.days + 1), records=tally.total("accepted"))

        result = uvloop.run(
            simulate_via_api(
                settings, services, args.communities, args.days, args.seed, start, args.households, progress
            )
        )
    tally: Tally = result["tally"]
    table = Table(title=f"{args.communities} communities × {args.days} days from {start}, seed {args.seed}")
    for col in ("requests", "accepted", "duplicate", "rejected"):
        table.add_column(col, justify="left" if col == "requests" else "right")
    for what in WHAT:
        c = tally.counts[what]
        table.add_row(what, f"{c['accepted']:,}", f"{c['duplicate']:,}", f"{c['rejected']:,}")
    console.print(table)
    play = result["play_seconds"]
    console.print(
        f"directory and ledger: {result['seed_events']:,} events in {result['seed_seconds']:.1f} s; "
        f"the days' work: {result['work_events']:,} events in {play:.1f} s "
        f"({result['work_events'] / max(play, 1e-9):,.0f} events/s through the APIs), "
        f"{tally.late:,} records synced days after the work; "
        f"projections caught up {result['settle_seconds']:.1f} s later"
    )
    for line in tally.rejections:
        console.print(f"rejected: {line}")
    return 0 if not tally.total("rejected") else 1


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``gridwork simulate``."""
    sim = commands.add_parser("simulate", help="a deterministic workload of N communities over D days")
    sim.add_argument("--communities", type=int, default=1)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--start", help="first simulated day, YYYY-MM-DD (default: 2025-01-01; --via api: the days ending yesterday)"
    )
    sim.add_argument("--households", type=int, default=8000, help="households per community")
    sim.add_argument(
        "--via",
        choices=("store", "api"),
        default="store",
        help="store: append straight into the event store (large volumes); "
        "api: through the public HTTP APIs of the stack `gridwork up` runs (sync batches, issues, 12345 orders)",
    )
    sim.add_argument(
        "--backdate-days",
        type=int,
        default=30,
        help="--via api: how far back the stack's visits API takes work (its GRIDWORK_MAX_BACKDATE_DAYS)",
    )
    sim.set_defaults(handler=cmd_simulate)
