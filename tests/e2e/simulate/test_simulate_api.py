"""``gridwork simulate --via api`` on real NATS and PostgreSQL: a small street workload played through
four real service processes, played again (everything a duplicate, nothing stored twice), and the
scoring service's numbers checked against the same workload appended straight into the store of a
second stack — and against the counts the workload itself implies."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.cli.embedded import create_database, free_port
from services.cli.player import ApiPlayer
from services.cli.simulate import SYNC_KINDS, simulate_into_store, simulate_via_api
from services.cli.stack import SERVICE_NAMES, LocalStack
from services.cli.workload import generate
from shared.auth import mint_token
from shared.events import now
from shared.eventstore import EventStore, connect
from shared.nats.users import render_authorization
from shared.settings import Settings
from tests.harness import eventually

COMMUNITIES, DAYS, SEED, HOUSEHOLDS = 1, 8, 5, 400
#: What the simulator's requests store (the services' own reactions — escalations, timers — excluded).
SIMULATED = {
    "CommunityRegistered",
    "BuildingRegistered",
    "WorkerRegistered",
    "GridDefined",
    "PersonRegistered",
    "HouseholdRegistered",
    "ShiftStarted",
    "ShiftEnded",
    *SYNC_KINDS,
    "IssueReported",
    "HotlineOrderReceived",
    "IssueAccepted",
    "IssueAssigned",
    "IssueResolved",
}


@pytest.fixture
async def store_settings(settings: Settings, stack: Any) -> Settings:
    """A second namespace and database on the session's servers, for the store-path stack."""
    ns = f"{settings.namespace}s"
    if stack.nats is not None:  # the suite's server knows the users of the namespaces it was told about
        stack._admitted.add(ns)
        stack.nats.authorization = render_authorization(sorted(stack._admitted), stack.nats_passwords)
        stack.nats.reload_and_wait()
    db = await create_database(stack.admin_db_url, f"gw_{ns}")
    second = settings.model_copy(update={"namespace": ns, "database_url": db, "data_dir": stack.data_dir / ns})
    nc = await connect(second, "tests-admin")
    try:
        await EventStore(nc, second).ensure_streams()
    finally:
        await nc.close()
    return second


def _ports() -> dict[str, int]:
    return {f"{name}_port": free_port() for name in SERVICE_NAMES}


@pytest.fixture
def stacks(settings: Settings, store_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Two `gridwork up` stacks on the same servers: one fed through the APIs, one straight into the store."""
    monkeypatch.setenv("GRIDWORK_SCORING_CLOSE_INTERVAL_SECONDS", "0")  # no closing: the event counts hold still
    api = LocalStack(settings.model_copy(update=_ports()))
    store = LocalStack(store_settings.model_copy(update=_ports()))
    try:
        yield api, api.start(echo=lambda _line: None), store, store.start(echo=lambda _line: None)
    finally:
        api.stop(echo=lambda _line: None)
        store.stop(echo=lambda _line: None)


async def _stored(settings: Settings) -> dict[str, set[int]]:
    """Stream sequences of the events the simulator's requests store, by type."""
    nc = await connect(settings, "tests-admin")
    try:
        out: dict[str, set[int]] = {}
        for e in await EventStore(nc, settings).read(f"{settings.namespace}.>"):
            if e.type in SIMULATED:
                out.setdefault(e.type, set()).add(e.seq)
        return out
    finally:
        await nc.close()


async def test_the_api_path_stores_the_workload_once_and_scores_as_the_store_path(stacks) -> None:
    api, api_endpoints, store, store_endpoints = stacks
    today = now().date()
    start = today - timedelta(days=DAYS)  # the days ending yesterday, inside the API's 30-day window
    workload = [(day, events) for day, events in generate(COMMUNITIES, DAYS, SEED, start, HOUSEHOLDS)]
    kinds = Counter(e.type for _, events in workload for e in events)
    worker_reports = kinds["IssueReported"] - kinds["HotlineOrderReceived"]  # each order brings its report
    assert kinds["HotlineOrderReceived"] and kinds["IssueResolved"], "the workload has orders and solved problems"

    # Through the APIs: every record accepted once; the late phones' records came days after the work.
    services = api_endpoints["services"]
    tally = (await simulate_via_api(api.settings, services, COMMUNITIES, DAYS, SEED, start, HOUSEHOLDS))["tally"]
    assert tally.total("rejected") == 0, tally.rejections
    assert tally.total("duplicate") == 0
    sync_kinds = sum(kinds[k] for k in (*SYNC_KINDS, "ShiftStarted", "ShiftEnded"))
    assert tally.counts["sync"]["accepted"] == sync_kinds
    assert tally.counts["ledger"]["accepted"] == kinds["HouseholdRegistered"] == COMMUNITIES * HOUSEHOLDS
    assert tally.counts["issues"]["accepted"] == worker_reports
    assert tally.counts["lifecycle"]["accepted"] == kinds["IssueResolved"]
    assert tally.counts["hotline"]["accepted"] == kinds["HotlineOrderReceived"]
    directory = ("CommunityRegistered", "BuildingRegistered", "WorkerRegistered", "GridDefined", "PersonRegistered")
    assert tally.counts["directory"]["accepted"] == sum(kinds[k] for k in directory)
    assert tally.late > 0, "some phones synced days after the work"
    stored = await _stored(api.settings)
    for kind in (*directory, "HouseholdRegistered", "ShiftStarted", "ShiftEnded", *SYNC_KINDS, "HotlineOrderReceived"):
        assert len(stored.get(kind, ())) == kinds[kind], kind
    assert len(stored["IssueResolved"]) == kinds["IssueResolved"]
    filed = sum(len(e.data.problems) for _, ev in workload for e in ev if e.type == "VisitLogged")
    assert len(stored["IssueReported"]) == kinds["IssueReported"] + filed  # problems noted on visits filed too

    # Again: everything a duplicate, nothing stored twice.
    again = (await simulate_via_api(api.settings, services, COMMUNITIES, DAYS, SEED, start, HOUSEHOLDS))["tally"]
    assert again.total("accepted") == 0 and again.total("rejected") == 0, again.rejections
    for what, counts in tally.counts.items():
        assert again.counts[what]["duplicate"] == counts["accepted"], what
    assert await _stored(api.settings) == stored

    # The same workload straight into the store of the second stack.
    appended = await simulate_into_store(store.settings, COMMUNITIES, DAYS, SEED, start.isoformat(), HOUSEHOLDS)
    assert appended["failed"] == 0 and appended["appended"] == sum(kinds.values())
    settling = ApiPlayer(store.settings, store_endpoints["services"])
    try:
        await settling.settle()
    finally:
        await settling.close()

    played = [start + timedelta(days=n) for n in range(DAYS)]
    workers = sorted({e.data.worker_id for _, ev in workload for e in ev if e.type == "WorkerRegistered"})
    years = sorted({d.year for d in played})
    via_api = await _scores(api.settings, api_endpoints, played, workers, years)
    via_store = await _scores(store.settings, store_endpoints, played, workers, years)
    # Resolutions through the API are recorded when they are made (the lifecycle commands take no
    # occurred_at), so they count today; every played day's numbers must be the same.
    for key in via_store["days"]:
        assert via_api["days"][key] == via_store["days"][key], key

    # The figures, once both issues services' timers have fired on the work orders' past deadlines.
    async def figures_agree() -> bool:
        a = await _figures(api.settings, api_endpoints, years)
        b = await _figures(store.settings, store_endpoints, years)
        via_api["figures"], via_store["figures"] = a, b
        return a == b

    await eventually(figures_agree, timeout=60, interval=1, what="the same figures on both stacks")
    # …and what the workload implies.
    for year in years:
        fig = via_api["figures"][year]
        in_year = [e for _, ev in workload for e in ev if e.occurred_at.year == year]
        assert fig["visits"]["value"] == sum(e.type == "VisitLogged" for e in in_year)
        assert fig["survey"]["surveys"] == sum(e.type == "ResidentSurveyed" for e in in_year)
        assert fig["trainings"]["value"] == len({e.data.training_id for e in in_year if e.type == "TrainingAttended"})
        assert fig["ledger"]["households"] == HOUSEHOLDS
        assert fig["ledger"]["complete_households"] == HOUSEHOLDS - HOUSEHOLDS // 10
    open_problems = via_api["figures"][years[-1]]["open_problems"]
    assert open_problems["total"] == kinds["IssueReported"] + filed - kinds["IssueResolved"]
    boards = [b for (what, _day), b in via_api["days"].items() if what == "board"]
    assert len(boards[0]["workers"]) == 25 and any(w["items_met"] for b in boards for w in b["workers"])


async def _scores(
    settings: Settings, endpoints: dict[str, Any], played: list[date], workers: list[str], years: list[int]
) -> dict[str, Any]:
    """The scoring service's day boards, every worker's progress on every played day, and the figures."""
    token = mint_token(settings, role="secretary", community="c000")
    out: dict[str, Any] = {"days": {}, "figures": {}}
    async with httpx.AsyncClient(
        base_url=endpoints["services"]["scoring"], timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for day in played:
            r = await client.get("/v1/communities/c000/board", params={"period": day.isoformat()})
            assert r.status_code == 200, r.text
            out["days"][("board", day)] = r.json()
            for w in workers:
                r = await client.get(
                    f"/v1/communities/c000/workers/{w}/progress", params={"at": f"{day.isoformat()}T20:00:00+08:00"}
                )
                assert r.status_code == 200, r.text
                out["days"][(w, day)] = r.json()
    out["figures"] = await _figures(settings, endpoints, years)
    return out


async def _figures(settings: Settings, endpoints: dict[str, Any], years: list[int]) -> dict[int, Any]:
    token = mint_token(settings, role="secretary", community="c000")
    out = {}
    async with httpx.AsyncClient(
        base_url=endpoints["services"]["scoring"], timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for year in years:
            r = await client.get("/v1/communities/c000/figures", params={"year": year})
            assert r.status_code == 200, r.text
            out[year] = r.json()
    return out
