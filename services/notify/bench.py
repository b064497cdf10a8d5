"""``gridwork bench notify``: escalation-to-delivery latency on a throwaway stack, beside raw appends.

An IssueEscalated appended (as the issues service would) travels JetStream → the routing
projection (outbox row and checkpoint in one transaction) → ``pg_notify`` → the delivery worker's
claim → a signed webhook POST to a local receiver that verifies it; the clock stops when the
receiver has it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from services.cli.benchkit import bench_stack, percentiles
from shared.events import Place, now
from shared.events.issues import IssueEscalated, IssueEscalatedData, IssueReported, IssueReportedData
from shared.eventstore import EventStore, connect

from .app import build_app
from .domain.directory import Channels, PutRecipient, RecipientIn, WebhookChannel
from .handlers import put_recipient
from .receiver import LocalReceiver, Received, in_process
from .settings import NotifySettings

SECRET = "whsec-bench-0123456789abcdef0123"
COMMUNITY = "bench"


def run(coro: Any) -> Any:
    """Run on uvloop when it is there, as ``python -m services.notify`` serves (uvicorn, uvloop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def bench_notify(escalations: int, rate: float, burst: int, appends: int) -> tuple[list[dict[str, Any]], str]:
    """Run the benchmark on a throwaway stack; returns the report rows and a note."""
    arrived: dict[str, float] = {}

    def on_receive(item: Received) -> None:
        arrived[item.json()["facts"]["issue_id"]] = item.at

    receiver = LocalReceiver(webhook_secrets={"police-duty": [SECRET]}, on_receive=on_receive)
    night = now().replace(hour=23, minute=30)

    def report_of(issue_id: str) -> IssueReported:
        return IssueReported.new(
            community=COMMUNITY, aggregate_id=issue_id, actor="w01", occurred_at=night,
            data=IssueReportedData(issue_id=issue_id, category="conflicts_disputes", subcategory="noise",
                                   severity="high", place=Place(compound="百瑞景", phase="2"),
                                   description="深夜喊麦，邻居投诉"),
        )  # fmt: skip

    def escalation_of(issue_id: str) -> IssueEscalated:
        return IssueEscalated.new(
            community=COMMUNITY, aggregate_id=issue_id, actor="issues", occurred_at=night + timedelta(minutes=5),
            data=IssueEscalatedData(issue_id=issue_id, from_level="building", to_level="community", target="police",
                                    reason="severity", category="conflicts_disputes", subcategory="noise",
                                    severity="high"),
        )  # fmt: skip

    async with bench_stack("notify") as base:
        with in_process(receiver):
            settings = NotifySettings(**base.model_dump(), notify_public_url="http://notify.bench")
            app = build_app(settings)
            async with app.router.lifespan_context(app):
                runtime = app.state.runtime
                # The load plays the issues service: its own connection, as issues would append.
                feed = await connect(settings, "bench-notify-feed")
                store = EventStore(feed, settings)
                body = RecipientIn(
                    kind="police", desk="duty_line", name="值班室",
                    channels=Channels(webhook=WebhookChannel(url=f"{receiver.url}/webhook/police-duty",
                                                             secret=SECRET)),
                )  # fmt: skip
                await put_recipient(PutRecipient(COMMUNITY, "police-duty", body), deps=runtime.deps)

                # Baseline 1: raw pipelined appends (the issues the escalations are about).
                total = escalations + burst
                reports = [report_of(f"i{n:06d}") for n in range(total)]
                started = time.perf_counter()
                results = await store.append_many([([r], 0) for r in reports])
                append_rate = total / (time.perf_counter() - started)
                assert not any(isinstance(r, Exception) for r in results)

                # Baseline 2: one append at a time, each waiting for its ack.
                single: list[float] = []
                for n in range(appends):
                    event = report_of(f"s{n:06d}")
                    t0 = time.perf_counter()
                    await store.append([event], 0)
                    single.append(time.perf_counter() - t0)

                await _caught_up(runtime, await store.last_sequence())

                # Paced escalations: latency from the append call to the receiver having it.
                sent_at: dict[str, float] = {}
                cpu = time.process_time()
                start = time.perf_counter()
                for n in range(escalations):
                    due = start + n / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    issue_id = f"i{n:06d}"
                    sent_at[issue_id] = time.perf_counter()
                    await store.append([escalation_of(issue_id)], 1)
                await _all_arrived(arrived, sent_at, 60)
                paced = [arrived[i] - sent_at[i] for i in sent_at]
                paced_cpu = (time.process_time() - cpu) / escalations

                # Burst: many escalations at once, until the last one is delivered.
                burst_ids = [f"i{n:06d}" for n in range(escalations, total)]
                burst_sent: dict[str, float] = {}
                cpu = time.process_time()
                t0 = time.perf_counter()
                for issue_id in burst_ids:
                    burst_sent[issue_id] = t0
                results = await store.append_many([([escalation_of(i)], 1) for i in burst_ids])
                assert not any(isinstance(r, Exception) for r in results)
                await _all_arrived(arrived, burst_sent, 120)
                burst_latency = [arrived[i] - t0 for i in burst_ids]
                burst_rate = len(burst_ids) / max(burst_latency) if burst_latency else 0.0
                burst_cpu = (time.process_time() - cpu) / max(1, burst)
                await feed.close()

    p_single, p_paced, p_burst = percentiles(single), percentiles(paced), percentiles(burst_latency)
    rows = [
        {"variant": "raw append (append_many, pipelined)", "events": total, "events_per_s": append_rate},
        {"variant": "raw append, one at a time (baseline)", "events": appends,
         "events_per_s": appends / sum(single), **p_single},
        {"variant": f"escalation → delivered, paced {rate:g}/s", "events": escalations,
         "events_per_s": escalations / (max(arrived[i] for i in sent_at) - start), **p_paced,
         "max": max(paced) * 1000, "cpu_ms_per_event": paced_cpu * 1000},
        {"variant": f"escalation → delivered, burst of {burst}", "events": burst, "events_per_s": burst_rate,
         **p_burst, "max": max(burst_latency) * 1000, "cpu_ms_per_event": burst_cpu * 1000},
    ]  # fmt: skip
    verdict = "met" if p_paced["p99"] < 100 else "MISSED"
    note = (
        f"Latency columns in ms. Paced p99 {p_paced['p99']:.1f} ms — target p99 < 100 ms: {verdict}. "
        "cpu_ms_per_event: CPU of this process (notify and the load) per escalation; the receiver runs apart. "
        "Each delivery is a signed webhook to a receiver on 127.0.0.1 that verifies it; the path is "
        "JetStream → routing projection (outbox row + checkpoint in one transaction) → pg_notify → "
        "worker claim (SKIP LOCKED) → HTTP POST."
    )
    return rows, note


async def _caught_up(runtime: Any, last_seq: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [await r.status() for r in runtime.runners.values()]
        if all(s["checkpoint"] >= last_seq for s in statuses):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the routing projection did not catch up")


async def _all_arrived(arrived: dict[str, float], expected: dict[str, float], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i in arrived for i in expected):
            return
        await asyncio.sleep(0.01)
    missing = [i for i in expected if i not in arrived]
    raise TimeoutError(f"{len(missing)} escalations were not delivered within {timeout}s")
