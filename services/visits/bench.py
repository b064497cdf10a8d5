"""``gridwork bench ingest``: how fast the visits service takes the field app's work over HTTP.

Measured in one run, on one stack (``bench_stack``: the configured servers or a throwaway embedded
nats-server + PostgreSQL):

1. the baseline — raw ``EventStore.append_many`` of VisitLogged events, no HTTP, no validation;
2. single visits: ``POST /v1/communities/{c}/visits`` with N requests in flight (requests/s, p50/p99);
3. offline sync: ``POST /v1/communities/{c}/sync`` with 500-record batches (events/s, p50/p99 per batch).

The service runs as a separate uvicorn process (``python -m services.visits``) with its projections,
exactly as deployed; the load comes from this process over keep-alive connections, through a
minimal HTTP/1.1 client so the load generator costs little CPU (on 2 cores it shares the machine
with the service, nats-server and PostgreSQL).  ``--in-process`` serves the app in this process
through httpx's ASGI transport instead (no sockets; useful where ports are not allowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.cli.benchkit import bench_stack, percentiles, report
from services.cli.embedded import free_port
from shared.auth import mint_token
from shared.events import SHANGHAI
from shared.events.visits import VisitLogged, VisitLoggedData
from shared.eventstore import EventStore, connect
from shared.settings import Settings

COMMUNITY = "benchcity"
GRID = "g-bench"
WORKER = "w-bench"
HOUSEHOLDS = 200

Send = Callable[[str, str, bytes, dict[str, str]], Awaitable[tuple[int, bytes]]]


class KeepAlive:
    """One persistent HTTP/1.1 connection; requests go one after another on it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        assert self.reader is not None
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        data = b""
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return status, data
            data += await self.reader.readexactly(size)
            await self.reader.readline()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def served(
    settings: Settings, in_process: bool, workers: int = 1, split: bool = False
) -> AsyncIterator[tuple[Callable[[], Send], str, Callable[[], float]]]:
    """The visits service, a factory of senders (one per concurrent client), and its CPU seconds so far."""
    if in_process:
        from .app import build_app

        app = build_app(settings)
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60)

            def factory() -> Send:
                async def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
                    r = await client.request(
                        method, path, content=body, headers={**headers, "Content-Type": "application/json"}
                    )
                    return r.status_code, r.content

                return send

            try:
                yield factory, "in-process (httpx ASGI)", time.process_time
            finally:
                await client.aclose()
        return
    port = free_port()
    env = {
        **os.environ,
        "GRIDWORK_NATS_URL": settings.nats_url or "",
        "GRIDWORK_DATABASE_URL": settings.database_url or "",
        "GRIDWORK_NAMESPACE": settings.namespace,
        "GRIDWORK_JWT_SECRET": settings.jwt_secret,
        "GRIDWORK_KEK": settings.kek,
        "GRIDWORK_VISITS_PORT": str(port),
        "GRIDWORK_HOST": "127.0.0.1",
        "GRIDWORK_LOG_LEVEL": "WARNING",
        "GRIDWORK_LOG_FORMAT": "json",
        "GRIDWORK_VISITS_ROLE": "api" if split else "all",
    }
    procs = []
    if workers == 1:
        procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", "services.visits", env=env))
    else:  # uvicorn's own process manager: the same app in several processes on one port
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uvicorn",
                "services.visits.app:build_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                "--no-access-log",
                env=env,
            )
        )
    ports = [port]
    if split:  # the read models in a process of their own
        ports.append(free_port())
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.visits",
                env={**env, "GRIDWORK_VISITS_ROLE": "projections", "GRIDWORK_VISITS_PORT": str(ports[-1])},
            )
        )
    conns: list[KeepAlive] = []
    try:
        deadline = time.monotonic() + 60
        for p in ports:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}") as probe:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await probe.get("/readyz")).status_code == 200:
                            break
                    if any(proc.returncode is not None for proc in procs) or time.monotonic() > deadline:
                        raise RuntimeError("the visits service did not start")
                    await asyncio.sleep(0.2)

        def factory() -> Send:
            conn = KeepAlive("127.0.0.1", port)
            conns.append(conn)
            return conn.request

        import uvicorn  # noqa: F401  (only to report which HTTP parser uvicorn picked)

        parser = "httptools" if _has("httptools") else "h11"
        import psutil

        watched = [psutil.Process(proc.pid) for proc in procs]
        watched += [child for p in list(watched) for child in p.children(recursive=True)]

        def cpu() -> float:
            """CPU seconds used by the service's processes (a figure the machine's other load cannot inflate)."""
            total = 0.0
            for p in watched:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
            return total

        roles = " + projections process" if split else " with projections"
        yield factory, f"uvicorn, {workers} API process{'es' if workers > 1 else ''}{roles}, uvloop, {parser}", cpu
    finally:
        for conn in conns:
            await conn.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


async def raw_append(settings: Settings, n: int) -> dict[str, Any]:
    """The foundation's figure: VisitLogged events straight into the store with append_many."""
    nc = await connect(settings, "bench-raw")
    try:
        store = EventStore(nc, settings)
        await store.ensure_streams()
        at = datetime.now(SHANGHAI)
        events = [
            (
                [
                    VisitLogged.new(
                        community="rawbench",
                        aggregate_id=f"raw-{i}",
                        actor=WORKER,
                        occurred_at=at,
                        data=VisitLoggedData(
                            visit_id=f"raw-{i}", worker_id=WORKER, household_id="h-0", mode="regular", minutes=5
                        ),
                    )
                ],
                0,
            )
            for i in range(n)
        ]
        started = time.perf_counter()
        for start in range(0, n, 5000):
            await store.append_many(events[start : start + 5000])
        seconds = time.perf_counter() - started
    finally:
        await nc.close()
    return {
        "variant": "baseline: store.append_many (no HTTP)",
        "events": n,
        "seconds": seconds,
        "events_per_s": n / seconds,
    }


async def seed(send: Send, settings: Settings, households: int = HOUSEHOLDS) -> dict[str, str]:
    """A community with one grid, one building, one worker and its households."""
    ops = {"Authorization": "Bearer " + mint_token(settings, role="ops")}
    sec = {"Authorization": "Bearer " + mint_token(settings, role="secretary", community=COMMUNITY)}
    worker = {
        "Authorization": "Bearer "
        + mint_token(settings, role="grid_worker", community=COMMUNITY, grid=GRID, worker_id=WORKER)
    }
    base = f"/v1/communities/{COMMUNITY}"

    async def ok(method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        status, data = await send(method, base + path, json.dumps(body).encode(), headers)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data) if data else None

    await ok("PUT", "", {"name": "Bench", "street": "bench-street"}, ops)
    await ok("PUT", "/buildings/b-1", {"number": "1", "units": 4, "grid_id": GRID}, sec)
    await ok("PUT", f"/grids/{GRID}", {"name": "bench grid", "worker_id": WORKER, "buildings": ["b-1"]}, sec)
    await ok("PUT", f"/workers/{WORKER}", {"name": "bench", "grid_id": GRID}, sec)
    for i in range(households):
        await ok(
            "POST",
            "/households",
            {
                "household_id": f"h-{i}",
                "building_id": "b-1",
                "grid_id": GRID,
                "unit": str(i % 4 + 1),
                "room": str(100 + i),
                "tags": ["elderly_alone"] if i % 10 == 0 else [],
            },
            sec,
        )
    for _ in range(600):
        status, data = await send("GET", base + "/households?limit=5000", b"", sec)
        if status == 200 and len(json.loads(data)) >= households:
            break
        await asyncio.sleep(0.1)
    return worker


async def load(
    sends: list[Send], jobs: list[tuple[str, str, bytes]], headers: dict[str, str], bodies: list[bytes] | None = None
) -> tuple[float, list[float], dict[int, int]]:
    """Run ``jobs`` over the senders (one job in flight per sender); wall time, latencies, status counts."""
    queue = iter(jobs)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker(send: Send) -> None:
        for method, path, body in queue:
            t0 = time.perf_counter()
            status, answer = await send(method, path, body, headers)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if bodies is not None:
                bodies.append(answer)

    # The load generator's own GC pauses (full collections of ~10^6 objects: up to 200 ms here) would
    # count as the service's latency: the generator runs with its collector frozen and off.
    gc.collect()
    gc.freeze()
    collecting = gc.isenabled()
    gc.disable()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(s) for s in sends))
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()
    return time.perf_counter() - started, latencies, statuses


def visit_body(i: int, prefix: str, households: int = HOUSEHOLDS) -> dict[str, Any]:
    return {
        "household_id": f"h-{i % households}",
        "mode": ("regular", "online", "priority")[i % 3],
        "minutes": 10,
        "visit_id": f"{prefix}-{i}",
    }


async def run_bench(
    *,
    single: int,
    concurrency: int,
    batches: int,
    batch_size: int,
    batch_concurrency: int,
    raw: int,
    in_process: bool,
    workers: int = 1,
    households: int = HOUSEHOLDS,
    warmup: int = 300,
    split: bool = False,
) -> dict[str, Any]:
    """Run the three measurements and print them side by side."""
    async with bench_stack("ingest") as settings:
        baseline = await raw_append(settings, raw)
        async with served(settings, in_process, workers, split) as (factory, how, cpu):
            worker = await seed(factory(), settings, households)
            path = f"/v1/communities/{COMMUNITY}"
            warm = [
                ("POST", path + "/visits", json.dumps(visit_body(i, "warm", households)).encode())
                for i in range(warmup)
            ]
            await load([factory() for _ in range(8)], warm, worker)

            # The HTTP layer's ceiling on this machine: the same server answering its cheapest route.
            pings = [("GET", "/healthz", b"")] * single
            seconds, plat, pstatuses = await load([factory() for _ in range(concurrency)], pings, {})
            ceiling = {
                "variant": f"ceiling: GET /healthz, {concurrency} in flight",
                "requests": single,
                "seconds": seconds,
                "requests_per_s": single / seconds,
                **percentiles(plat),
                "statuses": _codes(pstatuses),
            }
            jobs = [
                ("POST", path + "/visits", json.dumps(visit_body(i, "v", households)).encode()) for i in range(single)
            ]
            cpu0 = cpu()
            seconds, lat, statuses = await load([factory() for _ in range(concurrency)], jobs, worker)
            singles_cpu = await settled(cpu, cpu0)
            singles = {
                "variant": f"POST /visits, {concurrency} in flight",
                "requests": single,
                "seconds": seconds,
                "requests_per_s": single / seconds,
                "events_per_s": single / seconds,
                **percentiles(lat),
                "statuses": _codes(statuses),
                "service_cpu_ms_per_event": 1000 * singles_cpu / single,
            }

            now = datetime.now(SHANGHAI)
            batch_jobs = []
            for b in range(batches):
                records: list[dict[str, Any]] = [
                    {
                        "client_id": f"s{b}-{i}",
                        "kind": "visit",
                        "occurred_at": (now - timedelta(seconds=batch_size - i)).isoformat(),
                        "data": visit_body(i, "x", households),
                    }
                    for i in range(batch_size)
                ]
                for r in records:
                    del r["data"]["visit_id"]
                batch_jobs.append(("POST", path + "/sync", json.dumps({"records": records}).encode()))
            answers: list[bytes] = []
            cpu0 = cpu()
            seconds, blat, bstatuses = await load(
                [factory() for _ in range(batch_concurrency)], batch_jobs, worker, answers
            )
            events = batches * batch_size
            accepted = sum(json.loads(a).get("accepted", 0) for a in answers)
            batch_cpu = await settled(cpu, cpu0)
            batched = {
                "variant": f"POST /sync, {batch_size}-record batches, {batch_concurrency} in flight",
                "requests": batches,
                "seconds": seconds,
                "requests_per_s": batches / seconds,
                "events_per_s": events / seconds,
                **percentiles(blat),
                "statuses": _codes(bstatuses),
                "accepted": accepted,
                "service_cpu_ms_per_event": 1000 * batch_cpu / events,
            }
    rows = [baseline, ceiling, singles, batched]
    for row in rows:
        row["seconds"] = round(row["seconds"], 2)
    report(
        f"visits ingest ({how}; {os.cpu_count()} cores; the same stack for all rows)",
        [{k: v for k, v in row.items()} for row in rows],
        note="Targets on 2 cores: ≥ 1,500 single requests/s with p99 < 50 ms; ≥ 5,000 events/s through "
        "batches. p50/p99 in ms: per request (single) and per 500-record batch (sync). service_cpu_ms_per_event: "
        "CPU of the service's processes (API and projections, until folded) per visit — independent of other "
        "load on the machine; 1000 / it ≈ events/s one free core sustains.",
    )
    return {"server": how, "rows": rows}


async def settled(cpu: Callable[[], float], since: float) -> float:
    """CPU the service spent since ``since``, once its projections have folded what was sent (CPU idle)."""
    last = cpu()
    for _ in range(100):
        await asyncio.sleep(0.3)
        now = cpu()
        if now - last < 0.02:  # idle: requests answered and events folded
            break
        last = now
    return last - since


def _codes(statuses: dict[int, int]) -> str:
    return " ".join(f"{code}×{n}" for code, n in sorted(statuses.items()))
