"""``gridwork bench scoring``: how fast the scoring projection folds a street's events, and how fast boards answer.

Measured in one run, on one stack (``bench_stack``: the configured servers or a throwaway embedded
nats-server + PostgreSQL), after generating a street's work with the one workload generator,
``gridwork simulate``'s (:mod:`services.cli.workload`; ``--street-year`` for a whole year):

1. the baseline — the raw consume rate of the same events with the replay's reader, no database;
2. the fold's in-memory part (decode + aggregate);
3. the live fold (the projection runner from scratch, exactly once) and the replay (fresh schema + swap);
4. board latency: the community board and the street roll-up as queries and over HTTP, beside a
   naive on-the-fly aggregation of the item rows.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any


async def _generate(
    store: Any, communities: int, days: int, start: date, households: int, folded: frozenset[str]
) -> tuple[int, float]:
    """Append ``gridwork simulate``'s workload; returns (events the projection folds, seconds)."""
    from services.cli.workload import by_aggregate, generate

    n = 0
    started = time.perf_counter()
    for _day, events in generate(communities, days, seed=1, start=start, households=households):
        groups = by_aggregate(events)
        for i in range(0, len(groups), 5000):
            for res in await store.append_many(groups[i : i + 5000]):
                if isinstance(res, Exception):
                    raise res
        n += sum(1 for e in events if e.type in folded)
    return n, time.perf_counter() - started


async def _latency(call: Any, n: int) -> dict[str, float]:
    from services.cli.benchkit import percentiles

    samples = []
    for _ in range(max(5, n // 10)):  # warm-up: plans cached, pool connections open
        await call()
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def _live_fold(
    rows: list[dict[str, Any]],
    projection: Any,
    nc: Any,
    pool: Any,
    settings: Any,
    n: int,
    last: int,
    batch: int,
    raw_s: float,
) -> None:
    """The runner folds the stream from scratch, exactly once (the service's own path)."""
    import asyncpg

    from shared.projection import ProjectionRunner

    runner = ProjectionRunner(projection, nc=nc, pool=pool, settings=settings)
    started = time.perf_counter()
    task = asyncio.create_task(runner.run())
    checkpoint = "SELECT position FROM proj_scoring._checkpoint WHERE id = 1"
    while True:
        try:
            if (await pool.fetchval(checkpoint) or 0) >= last:
                break
        except asyncpg.UndefinedTableError:  # the runner has not created its schema yet
            pass
        await asyncio.sleep(0.02)
    live_s = time.perf_counter() - started
    runner.stop()
    await task
    rows.append(
        {
            "variant": f"live fold: runner, {batch}-event batches, exactly once",
            "events": n,
            "events/s": n / live_s,
            "vs raw consume": f"{raw_s / live_s:.0%}",
            "target": "≥ 15,000",
        }
    )


async def bench_scoring(
    communities: int = 20,
    days: int = 31,
    start: date = date(2025, 10, 1),
    queries: int = 300,
    batch: int = 10000,
    households: int = 8000,
    replay_batch: int | None = None,
    live: bool = True,
    street_year: bool = False,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Generate a street's work, then measure raw consume, live fold, replay and board latency in one run."""
    import gc
    import statistics

    import httpx

    from services.cli.benchkit import bench_stack, console, report
    from services.cli.workload import WORKERS
    from shared.auth import mint_token
    from shared.db import create_pool, migrate
    from shared.eventstore import EventStore, connect
    from shared.nats import patches
    from shared.projection import replay, stream_reader

    from . import queries as q
    from .app import MIGRATIONS, build_app
    from .domain.calendar import parse_period
    from .projections import ScoringProjection
    from .settings import scoring_settings

    patches.install()
    rows: list[dict[str, Any]] = []
    async with bench_stack("scoring") as base:
        settings = scoring_settings(base, scoring_close_interval_seconds=0, projection_batch=batch)
        nc = await connect(settings, "bench-scoring")
        store = EventStore(nc, settings)
        await store.ensure_streams()
        pool = await create_pool(settings, max_size=4)
        async with pool.acquire() as conn:
            await migrate(conn, [MIGRATIONS])
        rules = settings.rules()
        projection = ScoringProjection(rules)

        n, gen_s = await _generate(store, communities, days, start, households, frozenset(projection.event_types))
        last = await store.last_sequence()
        console.print(
            f"generated {n:,} events ({communities} communities × {WORKERS} workers × {days} days, "
            f"{households:,} households each) "
            f"in {gen_s:.1f} s ({n / gen_s:,.0f}/s incl. append)"
        )

        replay_batch = replay_batch or projection.replay_batch
        # Baseline: pull the same events the projection consumes with the replay's reader (and, as
        # the replay, with the cyclic GC paused), no database work.  The first ones are kept for
        # the in-memory row.
        reader = await stream_reader(nc, settings, projection)
        kept: list[Any] = []
        got = 0
        gc.disable()
        started = time.perf_counter()
        while got < n:
            msgs = await reader.fetch(5000, wait=1)
            got += len(msgs)
            if len(kept) < 200_000:
                kept += [m.event for m in msgs]
        raw_s = time.perf_counter() - started
        gc.enable()
        await reader.stop()
        rows.append(
            {"variant": "raw consume: pull the same events, no database", "events": got, "events/s": got / raw_s}
        )

        # Where the fold's own time goes: decoding and aggregating in memory, no database.
        gc.disable()
        started = time.perf_counter()
        for i in range(0, len(kept), replay_batch):
            projection.fold_batch(kept[i : i + replay_batch])
        mem_s = time.perf_counter() - started
        gc.enable()
        rows.append(
            {
                "variant": f"decode + aggregate in memory (the fold's Python part), {replay_batch}-event batches",
                "events": len(kept),
                "events/s": len(kept) / mem_s,
            }
        )
        del kept

        if live:
            await _live_fold(rows, projection, nc, pool, settings, n, last, batch, raw_s)

        times = []
        for i in range(repeat):  # each replay rebuilds from the first event and swaps (the stream is generated once)
            result = await replay(ScoringProjection(rules), nc=nc, pool=pool, settings=settings, batch=replay_batch)
            times.append(result["seconds"])
            replayed = {
                "variant": f"replay{f' {i + 1}/{repeat}' if repeat > 1 else ''}: {replay_batch}-event batches, "
                "fresh schema + atomic swap",
                "events": result["events"],
                "events/s": result["events"] / result["seconds"],
                "vs raw consume": f"{raw_s / result['seconds']:.0%}",
                "target": "≥ 30,000",
            }
            if street_year:
                replayed |= {"seconds": result["seconds"], "target": "< 90 s"}
            rows.append(replayed)
        if repeat > 1:
            mid = statistics.median(times)
            rows.append(
                {
                    "variant": f"replay: median of {repeat}",
                    "events": result["events"],
                    "events/s": result["events"] / mid,
                    "vs raw consume": f"{raw_s / mid:.0%}",
                    **({"seconds": mid} if street_year else {}),
                }
            )
        report(
            "gridwork bench scoring — the scoring projection folded from a street's events",
            rows,
            note=f"{n:,} events, same stream and machine for every row (raw consume took {raw_s:.1f} s)",
        )
        month = parse_period(f"{start.year}-{start.month:02d}")
        as_of = month.end
        community, street = "c000", "s00"  # the generator's first community and its street

        async def naive_board() -> Any:
            # Baseline: sum the item rows of the month on the fly (no standings table).
            return await pool.fetch(
                """SELECT worker_id, sum(points), count(*) FILTER (WHERE met AND NOT indicator)
                   FROM proj_scoring.quota_item WHERE community = $1 AND due BETWEEN $2 AND $3
                   GROUP BY worker_id""",
                community,
                month.start,
                month.end,
            )

        async def naive_street() -> Any:
            return await pool.fetch(
                """SELECT q.community, q.worker_id, sum(q.points), count(*) FILTER (WHERE q.met AND NOT q.indicator)
                   FROM proj_scoring.quota_item q JOIN proj_scoring.community c USING (community)
                   WHERE c.street = $1 AND q.due BETWEEN $2 AND $3 GROUP BY 1, 2""",
                street,
                month.start,
                month.end,
            )

        lat: list[dict[str, Any]] = []
        lat.append(
            {
                "what": f"naive: community board from item rows ({WORKERS} workers)",
                **await _latency(naive_board, queries),
            }
        )
        lat.append(
            {
                "what": f"community board query ({WORKERS} workers)",
                **await _latency(lambda: q.community_board(pool, rules, community, month, as_of), queries),
                "target p99": "< 10 ms",
            }
        )
        lat.append(
            {
                "what": f"naive: street board from item rows ({communities} communities)",
                **await _latency(naive_street, max(20, queries // 3)),
            }
        )
        lat.append(
            {
                "what": f"street roll-up query ({communities} communities)",
                **await _latency(lambda: q.street_board(pool, rules, street, month, as_of), max(20, queries // 3)),
                "target p99": "< 50 ms",
            }
        )
        app = build_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scoring") as client,
        ):
            sec = {"Authorization": f"Bearer {mint_token(settings, role='secretary', community=community)}"}
            adm = {"Authorization": f"Bearer {mint_token(settings, role='street_admin', street=street)}"}
            url = f"/v1/communities/{community}/board?period={month.key}&as_of={as_of}"
            lat.append(
                {
                    "what": "GET community board over HTTP (in-process ASGI)",
                    **await _latency(lambda: client.get(url, headers=sec), queries),
                    "target p99": "< 10 ms",
                }
            )
            surl = f"/v1/streets/{street}/board?period={month.key}&as_of={as_of}"
            lat.append(
                {
                    "what": "GET street roll-up over HTTP (in-process ASGI)",
                    **await _latency(lambda: client.get(surl, headers=adm), max(20, queries // 3)),
                    "target p99": "< 50 ms",
                }
            )
        report("gridwork bench scoring — board latency (ms)", lat)
        await nc.close()
        await pool.close()
    return rows
