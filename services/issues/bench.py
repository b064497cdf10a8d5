"""``gridwork bench issues``: how fast a reported problem reaches the agency a rule sends it to.

Measured in one run, on one stack (the configured servers or a throwaway embedded one):

* the baseline: raw event-store appends of the same IssueReported events (one at a time, and
  pipelined with ``append_many``) on a namespace no projection reads;
* report latency: POST /v1/communities/{c}/issues through the real app (in-process ASGI);
* report → escalation: from the POST until the rule's IssueEscalated is in the stream (a core NATS
  subscription sees it the moment JetStream stores it), one report at a time and in a burst;
* the board: how long until the issues board has folded the whole burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.cli.benchkit import bench_stack, percentiles, report
from shared.auth import mint_token
from shared.events.issues import IssueReported, IssueReportedData
from shared.eventstore import EventStore, connect

COMMUNITY = "bench"


@contextlib.asynccontextmanager
async def running_app(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (real connections) and an in-process HTTP client on it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            yield client


def _reported(i: int, tag: str) -> IssueReported:
    return IssueReported.new(
        community=COMMUNITY,
        aggregate_id=f"raw-{tag}-{i}",
        actor="bench",
        data=IssueReportedData(
            issue_id=f"raw-{tag}-{i}",
            category="safety_hazards",
            subcategory="stairwell_clutter",
            description="boxes in the stairwell",
            source="grid_worker",
            reported_by="bench",
        ),
    )


async def _raw_baseline(settings: Any, n: int) -> dict[str, Any]:
    """Append rates and single-append latency on a namespace no projection consumes."""
    raw = settings.model_copy(update={"namespace": f"{settings.namespace}raw"[:16]})
    nc = await connect(raw, "bench-raw")
    try:
        store = EventStore(nc, raw)
        await store.ensure_streams()
        single = []
        started = time.perf_counter()
        for i in range(min(n, 500)):
            t0 = time.perf_counter()
            await store.append([_reported(i, "one")], 0)
            single.append(time.perf_counter() - t0)
        one_rate = len(single) / (time.perf_counter() - started)
        batch = [([_reported(i, "many")], 0) for i in range(n)]
        started = time.perf_counter()
        results = await store.append_many(batch)
        many_rate = n / (time.perf_counter() - started)
        assert not any(isinstance(r, Exception) for r in results)
    finally:
        await nc.close()
    return {"one_rate": one_rate, "single": single, "many_rate": many_rate}


async def run_bench(*, sequential: int, burst: int, concurrency: int, raw: int) -> dict[str, Any]:
    """Run every measurement and print the table; returns the figures."""
    from .app import build_app
    from .settings import issues_settings

    async with bench_stack("issues") as base:
        settings = issues_settings(base)
        baseline = await _raw_baseline(settings, raw)
        app = build_app(settings)
        async with running_app(app) as client:
            runtime = app.state.runtime
            arrived: dict[str, float] = {}
            waiters: dict[str, asyncio.Event] = {}

            async def on_escalated(msg: Any) -> None:
                issue_id = msg.subject.split(".")[-2]
                arrived.setdefault(issue_id, time.perf_counter())
                if issue_id in waiters:
                    waiters[issue_id].set()

            sub = await runtime.nc.subscribe(f"{settings.namespace}.*.issues.issue.*.IssueEscalated", cb=on_escalated)
            headers = {
                "Authorization": "Bearer "
                + mint_token(settings, role="grid_worker", community=COMMUNITY, worker_id="w-bench")
            }
            body = {
                "category": "safety_hazards",
                "subcategory": "stairwell_clutter",
                "severity": "medium",
                "place": {"compound": "bench", "phase": "4", "building": "4"},
                "description": "boxes, bikes and old furniture in the stairwell",
            }

            async def one(issue_id: str) -> tuple[float, float]:
                waiters[issue_id] = asyncio.Event()
                t0 = time.perf_counter()
                r = await client.post(
                    f"/v1/communities/{COMMUNITY}/issues", json={**body, "issue_id": issue_id}, headers=headers
                )
                acked = time.perf_counter()
                r.raise_for_status()
                await asyncio.wait_for(waiters[issue_id].wait(), 60)
                return acked - t0, arrived[issue_id] - t0

            for i in range(min(20, sequential)):  # warm up connections and the consumers
                await one(f"is-warm-{i}")
            seq = [await one(f"is-seq-{i}") for i in range(sequential)]

            gate = asyncio.Semaphore(concurrency)

            async def gated(i: int) -> tuple[float, float]:
                async with gate:
                    return await one(f"is-burst-{i}")

            started = time.perf_counter()
            burst_results = await asyncio.gather(*(gated(i) for i in range(burst)))
            burst_seconds = time.perf_counter() - started
            board = runtime.runners["issues_board"]
            last = await runtime.store.last_sequence()
            while (await board.status())["checkpoint"] < last:
                await asyncio.sleep(0.01)
            board_seconds = time.perf_counter() - started
            await sub.unsubscribe()

    p_single = percentiles(baseline["single"])
    p_post = percentiles([a for a, _ in seq])
    p_seq = percentiles([e for _, e in seq])
    p_burst = percentiles([e for _, e in burst_results])
    rows = [
        {"variant": "baseline: raw append, one at a time", "events/s": baseline["one_rate"], **p_single},
        {"variant": "baseline: raw append_many (pipelined)", "events/s": baseline["many_rate"]},
        {"variant": "report via the API (ack)", "reports/s": sequential / sum(a for a, _ in seq), **p_post},
        {"variant": "report → IssueEscalated, one at a time", **p_seq},
        {
            "variant": f"report → IssueEscalated, burst of {burst} ({concurrency} in flight)",
            "reports/s": burst / burst_seconds,
            **p_burst,
        },
        {"variant": "burst folded into the issues board", "reports/s": burst / board_seconds},
    ]
    report(
        "gridwork bench issues (latencies in ms)",
        rows,
        note="Each report is 1 event; the rule (safety hazard → property management) adds 1 more. "
        "Baseline and service run on the same servers in the same run.",
    )
    return {"rows": rows}
