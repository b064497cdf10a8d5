"""Foundation benchmarks: ``gridwork bench append | fold | replay``.

Each prints events/s (median of several runs) and latency percentiles beside a naive baseline
measured in the same run on the same servers:

* append — pipelined appends with per-aggregate concurrency control and dedupe headers, in
  500-event calls with a bounded in-flight window, vs one awaited append per event;
* fold   — the projection runner (one transaction per 1,000-event batch, checkpoint included) vs
  the same runner taking one event per transaction;
* replay — rebuilding a projection into a fresh schema vs merely pulling the same events with no
  database work (the raw consume rate, the ceiling for any replay).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared.db import create_pool, migrate
from shared.event_counts import EventCountsProjection
from shared.events import SHANGHAI, encode
from shared.events.visits import VisitLogged, VisitLoggedData
from shared.eventstore import (
    HDR_EXPECTED_SEQ,
    EventStore,
    aggregate_filter,
    connect,
    event_headers,
)
from shared.nats import patches
from shared.projection import ProjectionRunner, replay, schema_of, stream_reader
from shared.settings import Settings

from .benchkit import bench_stack, percentiles, report

START = datetime(2025, 4, 1, 8, 0, tzinfo=SHANGHAI)


def visit_batches(n: int, prefix: str, communities: int = 20) -> list[tuple[list[VisitLogged], int]]:
    """``n`` first events of ``n`` visit aggregates spread over a street's communities."""
    out = []
    for i in range(n):
        community = f"c{i % communities:02d}"
        worker = f"w{(i // communities) % 25:02d}"
        out.append(
            (
                [
                    VisitLogged.new(
                        community=community,
                        aggregate_id=f"{prefix}{i}",
                        actor=worker,
                        occurred_at=START + timedelta(seconds=37 * i),
                        data=VisitLoggedData(
                            visit_id=f"{prefix}{i}",
                            worker_id=worker,
                            household_id=f"h{i % 8000}",
                            mode=("regular", "online", "priority")[i % 3],
                            minutes=5 + i % 20,
                        ),
                    )
                ],
                0,
            )
        )
    return out


async def _open(settings: Settings) -> tuple[Any, EventStore, Any]:
    nc = await connect(settings, "bench")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    pool = await create_pool(settings, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    return nc, store, pool


async def bench_append(
    n: int = 30_000, naive: int = 2_000, repeats: int = 3, chunk: int = 2_000, aggregates: int = 100_000
) -> list[dict[str, Any]]:
    async with bench_stack("append") as settings:
        nc, store, pool = await _open(settings)
        rows = []
        # Naive: one awaited round trip per event.
        lat: list[float] = []
        batches = visit_batches(naive, "naive")
        started = time.perf_counter()
        for events, expected in batches:
            t = time.perf_counter()
            await store.append(events, expected)
            lat.append(time.perf_counter() - t)
        naive_rate = naive / (time.perf_counter() - started)
        rows.append(
            {
                "variant": "naive: one awaited append per event",
                "events": naive,
                "events/s": naive_rate,
                **percentiles(lat),
                "latency of": "one event",
            }
        )
        # Pipelined, median of `repeats` runs.
        rates, chunk_lat = [], []
        for r in range(repeats):
            batches = visit_batches(n, f"p{r}x")
            started = time.perf_counter()
            for i in range(0, n, chunk):
                t = time.perf_counter()
                results = await store.append_many(batches[i : i + chunk])
                chunk_lat.append(time.perf_counter() - t)
                assert not any(isinstance(x, Exception) for x in results)
            rates.append(n / (time.perf_counter() - started))
        rates.sort()
        rows.append(
            {
                "variant": f"pipelined append_many ({chunk}/call, window {settings.publish_window})",
                "events": n * repeats,
                "events/s": rates[len(rates) // 2],
                **percentiles(chunk_lat),
                "latency of": f"{chunk}-event call",
                "vs naive": f"{rates[len(rates) // 2] / naive_rate:.1f}x",
            }
        )
        # The subject design at scale: first events of 100,000 aggregates in one stream.
        if aggregates:
            batches = visit_batches(aggregates, "agg")
            started = time.perf_counter()
            for i in range(0, aggregates, chunk):
                await store.append_many(batches[i : i + chunk])
            rate = aggregates / (time.perf_counter() - started)
            rows.append(
                {
                    "variant": f"{aggregates:,} distinct aggregates, first event each",
                    "events": aggregates,
                    "events/s": rate,
                    "vs naive": f"{rate / naive_rate:.1f}x",
                }
            )
        await nc.close()
        await pool.close()
    report(
        "gridwork bench append — events appended with Nats-Msg-Id and expected-sequence checks",
        rows,
        "latency in ms; every append carries per-aggregate optimistic concurrency and dedupe headers",
    )
    return rows


class _Named(EventCountsProjection):
    def __init__(self, name: str) -> None:
        self.name = name


async def _fold_once(nc: Any, pool: Any, settings: Settings, name: str, until: int, batch: int) -> tuple[float, list]:
    runner = ProjectionRunner(
        _Named(name), nc=nc, pool=pool, settings=settings.model_copy(update={"projection_batch": batch})
    )
    await runner.setup()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    while (await runner.status())["checkpoint"] < until:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    runner.stop()
    await task
    rows = await pool.fetch(f"SELECT sum(events) AS n FROM {schema_of(name)}.activity")
    return elapsed, rows


async def bench_fold(n: int = 50_000, naive: int = 2_000, repeats: int = 3) -> list[dict[str, Any]]:
    async with bench_stack("fold") as settings:
        nc, store, pool = await _open(settings)
        await _append_all(store, n)
        rows = []
        # Naive: the same runner, one event per transaction (the naive stream consumer's shape).
        base = settings.model_copy(update={"projection_batch": 1})
        runner = ProjectionRunner(_Named("naive"), nc=nc, pool=pool, settings=base)
        await runner.setup()
        started = time.perf_counter()
        task = asyncio.create_task(runner.run())
        while (await runner.status())["events"] < naive:
            await asyncio.sleep(0.01)
        naive_rate = (await runner.status())["events"] / (time.perf_counter() - started)
        runner.stop()
        await task
        rows.append({"variant": "naive: one transaction per event", "events": naive, "events/s": naive_rate})
        rates = []
        for r in range(repeats):
            elapsed, check = await _fold_once(nc, pool, settings, f"fold{r}", n, settings.projection_batch)
            assert int(check[0]["n"]) == n, "fold lost or doubled events"
            rates.append(n / elapsed)
        rates.sort()
        med = rates[len(rates) // 2]
        rows.append(
            {
                "variant": f"runner: {settings.projection_batch}-event batches, checkpoint in the same tx",
                "events": n,
                "events/s": med,
                "vs naive": f"{med / naive_rate:.1f}x",
                "runs": ", ".join(f"{x:,.0f}" for x in rates),
            }
        )
        await nc.close()
        await pool.close()
    report("gridwork bench fold — activity projection folded into PostgreSQL, exactly once", rows)
    return rows


async def _append_all(store: EventStore, n: int) -> None:
    batches = visit_batches(n, "f")
    for i in range(0, n, 1000):
        await store.append_many(batches[i : i + 1000])


async def bench_replay(n: int = 100_000, repeats: int = 3, batch: int = 5000) -> list[dict[str, Any]]:
    async with bench_stack("replay") as settings:
        nc, store, pool = await _open(settings)
        await _append_all(store, n)
        rows = []
        raw = []
        for _ in range(repeats):
            puller = await stream_reader(nc, settings, EventCountsProjection())
            got = 0
            started = time.perf_counter()
            while got < n:
                got += len(await puller.fetch(5000, wait=1))
            raw.append(n / (time.perf_counter() - started))
            await puller.stop()
        raw.sort()
        raw_rate = raw[len(raw) // 2]
        rows.append({"variant": "raw consume: pull the same events, no database", "events": n, "events/s": raw_rate})
        rates = []
        for _ in range(repeats):
            result = await replay(EventCountsProjection(), nc=nc, pool=pool, settings=settings, batch=batch)
            assert result["events"] == n
            rates.append(n / result["seconds"])
        rates.sort()
        med = rates[len(rates) // 2]
        rows.append(
            {
                "variant": f"replay into a fresh schema + atomic swap ({batch}-event transactions)",
                "events": n,
                "events/s": med,
                "vs raw consume": f"{med / raw_rate:.0%}",
                "runs": ", ".join(f"{x:,.0f}" for x in rates),
            }
        )
        await nc.close()
        await pool.close()
    report("gridwork bench replay — rebuilding the activity projection from the first event", rows)
    return rows


# ------------------------------------------------------------------------------- bench clients

#: Where ``gridwork bench clients`` keeps the interpreter with the newer clients (they need 3.13).
CLIENTS_VENV = Path.home() / ".cache" / "gridwork" / "nats-clients-py313"


def newer_clients_python(explicit: str | None) -> str | None:
    """An interpreter with ``nats-core`` and ``nats-jetstream``: the one given, or a venv made once
    from a Python ≥ 3.13 found on PATH or under pyenv (None when there is none)."""
    if explicit:
        return explicit
    python = CLIENTS_VENV / "bin" / "python"
    if python.exists():
        return str(python)
    candidates = [
        *sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.1[3-9]*/bin/python"))),
        *filter(None, (shutil.which(f"python3.{minor}") for minor in range(13, 20))),
    ]
    # a pyenv shim is on PATH even where that version is not installed: ask each one to run
    found = next(
        (c for c in candidates if subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0), None
    )
    if found is None:
        return None
    subprocess.run([found, "-m", "venv", str(CLIENTS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "nats-core", "nats-jetstream", "nkeys"], check=True)
    return str(python)


async def _patched_or_stock(settings: Settings, n: int, stock: bool) -> dict[str, float]:
    """Append ``n`` visits with the event store and read them back with the replay reader, with the
    nats-py patches on (gridwork's path) or stood down (stock nats-py)."""
    os.environ[patches.STOCK_VARIABLE] = "1" if stock else ""
    patches.reset()
    patches.install()
    nc = await connect(settings, "bench-clients")
    try:
        store = EventStore(nc, settings)
        await store.ensure_streams()
        batches = visit_batches(n, "c")
        started = time.perf_counter()
        for i in range(0, n, 2000):
            results = await store.append_many(batches[i : i + 2000])
            assert not any(isinstance(x, Exception) for x in results)
        append_rate = n / (time.perf_counter() - started)
        reader = await stream_reader(nc, settings, EventCountsProjection())
        got = 0
        started = time.perf_counter()
        while got < n:
            got += len(await reader.fetch(5000, wait=1))
        consume_rate = n / (time.perf_counter() - started)
        await reader.stop()
    finally:
        await nc.close()
        os.environ.pop(patches.STOCK_VARIABLE, None)
        patches.reset()
        patches.install()
    return {"append": append_rate, "consume": consume_rate}


def _probe_messages(settings: Settings, n: int, path: Path) -> float:
    """Write the exact messages the event store would append for ``n`` visits (the first event of
    each aggregate), as JSON lines; returns the seconds the store's own share took (encoding each
    event, building its headers), which the probe does not do but an event store on the newer
    clients would."""
    ns = settings.namespace
    events = [group[0] for group, _version in visit_batches(n, "c")]
    started = time.perf_counter()
    messages = [
        (
            e.subject(ns),
            event_headers(e, aggregate_filter(ns, e.community, e.context, e.aggregate_type, e.aggregate_id)),
            encode(e),
        )
        for e in events
    ]
    encoding = time.perf_counter() - started
    with path.open("w", encoding="utf-8") as f:
        for subject, headers, payload in messages:
            line = {"subject": subject, "headers": {**headers, HDR_EXPECTED_SEQ: "0"}, "payload": payload.decode()}
            f.write(json.dumps(line) + "\n")
    return encoding


async def bench_clients(n: int = 30_000, repeats: int = 3, python: str | None = None) -> list[dict[str, Any]]:
    """nats-py with gridwork's patches, stock nats-py, and the newer official clients (nats-core +
    nats-jetstream, in a Python ≥ 3.13 interpreter), each appending the same ``n`` visit events
    (dedupe id and expected-sequence check on every one, window 4096) and reading them back."""
    interpreter = newer_clients_python(python)
    runs: dict[str, list[dict[str, float]]] = {"patched": [], "stock": [], "newer": []}
    version = "not run: no Python ≥ 3.13 found (--python)"
    async with bench_stack("clients") as base:
        for r in range(repeats):
            for variant in ("patched", "stock"):
                settings = base.model_copy(update={"namespace": f"{base.namespace}{variant[0]}{r}"})
                runs[variant].append(await _patched_or_stock(settings, n, stock=variant == "stock"))
            if interpreter is None:
                continue
            settings = base.model_copy(update={"namespace": f"{base.namespace}n{r}"})
            messages = base.data_dir / f"probe-{r}.jsonl"
            encoding = _probe_messages(settings, n, messages)
            nats_url = settings.nats_url or ""
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    interpreter,
                    str(Path(__file__).with_name("client_probe.py")),
                    "--url",
                    nats_url.split(",")[0],
                    "--stream",
                    settings.stream_name(),
                    "--subjects",
                    f"{settings.namespace}.>",
                    "--messages",
                    str(messages),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the newer clients' probe failed: {done.stderr.strip()[-2000:]}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            version = f"Python {out['python']}"
            # the same work as the event store: its encoding plus the client's publishing
            append_seconds = n / out["append_events_per_s"] + encoding
            runs["newer"].append({"append": n / append_seconds, "consume": out["consume_events_per_s"]})

    def median(variant: str, phase: str) -> float:
        values = sorted(x[phase] for x in runs[variant])
        return values[len(values) // 2] if values else 0.0

    rows = []
    labels = {
        "patched": "nats-py 2.16 with gridwork's patches (the event store + replay reader)",
        "stock": "nats-py 2.16 stock (GRIDWORK_NATS_STOCK_CLIENT=1, same code)",
        "newer": f"nats-core + nats-jetstream ({version}), same messages and window, + the store's encoding",
    }
    for variant, label in labels.items():
        row: dict[str, Any] = {"client": label, "events": n}
        for phase in ("append", "consume"):
            rate = median(variant, phase)
            row[f"{phase} events/s"] = rate
            row[f"{phase} vs patched"] = f"{rate / median('patched', phase):.0%}" if rate else "—"
        row["runs"] = len(runs[variant])
        rows.append(row)
    report(
        "gridwork bench clients — the NATS client under the event store and the replay reader",
        rows,
        f"median of {repeats} runs each on one embedded nats-server; append: dedupe id + expected-sequence "
        "check per event; consume: an ack-less pull consumer in batches of 5,000",
    )
    return rows
