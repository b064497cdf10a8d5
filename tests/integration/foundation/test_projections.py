"""The projection runner on real JetStream and PostgreSQL: every event counts exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta

import asyncpg
import pytest

from shared.db import create_pool, migrate
from shared.event_counts import EventCountsProjection
from shared.events import SHANGHAI
from shared.events.visits import VisitLogged, VisitLoggedData
from shared.eventstore import EventStore, connect
from shared.projection import ProjectionRunner, dead_letters, replay
from shared.settings import Settings
from tests.harness import eventually

START = datetime(2025, 4, 14, 9, 0, tzinfo=SHANGHAI)


def visits(n: int, first: int = 0, community: str = "bairuijing") -> list:
    return [
        (
            [
                VisitLogged.new(
                    community=community,
                    aggregate_id=f"v{i}",
                    actor=f"w{i % 25:02d}",
                    occurred_at=START + timedelta(minutes=7 * i),
                    data=VisitLoggedData(
                        visit_id=f"v{i}",
                        worker_id=f"w{i % 25:02d}",
                        household_id=f"h{i % 800}",
                        mode="regular",
                        minutes=10,
                    ),
                )
            ],
            0,
        )
        for i in range(first, first + n)
    ]


@pytest.fixture
async def env(settings: Settings):
    nc = await connect(settings, "test")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield nc, store, pool
    await nc.close()
    await pool.close()


async def table(pool: asyncpg.Pool, schema: str) -> list[tuple]:
    rows = await pool.fetch(
        f'SELECT community, context, type, day, events FROM "{schema}".activity ORDER BY 1, 2, 3, 4'
    )
    return [tuple(r) for r in rows]


async def total(pool: asyncpg.Pool, schema: str = "proj_activity") -> int:
    return int(await pool.fetchval(f'SELECT coalesce(sum(events), 0) FROM "{schema}".activity'))


async def test_a_poison_message_is_dead_lettered_and_the_projection_moves_on(env, settings: Settings) -> None:
    nc, store, pool = env
    await store.append_many(visits(10))
    # A message no decoder understands, on a subject the projection folds.
    await store.js.publish(f"{settings.namespace}.bairuijing.visits.visit.broken.VisitLogged", b"{not json")
    await store.append_many(visits(10, first=10))

    runner = ProjectionRunner(EventCountsProjection(), nc=nc, pool=pool, settings=settings)
    await runner.setup()
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _status_at(runner, 21), timeout=30, what="checkpoint past the poison message")
    finally:
        runner.stop()
        await task
    assert await total(pool) == 20  # every good event counted once, the bad one not at all
    [dead] = await dead_letters(nc, settings, "activity")
    assert dead["seq"] == 11 and dead["deliveries"] == settings.max_deliver
    assert "JSONDecodeError" in dead["reason"] or "Expecting" in dead["reason"]
    assert dead["data"] == "{not json"
    row = await pool.fetchrow("SELECT * FROM dead_letters WHERE projection = 'activity'")
    assert row["stream_seq"] == 11

    # A replay works past it (#15 item 19): the dead-lettered event is skipped and reported, the
    # rest rebuilt, and it stays held as a dead letter (the read model still lacks it).
    result = await replay(EventCountsProjection(), nc=nc, pool=pool, settings=settings, batch=4)
    assert result["schema"] == "proj_activity" and result["events"] == 20
    assert [(s["seq"], s["type"]) for s in result["skipped"]] == [(11, "VisitLogged")]
    assert await total(pool) == 20 and not await _schemas(pool, "proj_activity__%")
    assert await pool.fetchval("SELECT count(*) FROM dead_letters WHERE projection = 'activity'") == 1

    # A replay that fails on an event the live projection folded stops, and leaves no schema behind.
    with pytest.raises(RuntimeError, match="seq 5"):
        await replay(_FailsAt(5), nc=nc, pool=pool, settings=settings, batch=4)
    assert not await _schemas(pool, "proj_activity__%") and await total(pool) == 20

    # No projection folds what its schema refuses (#15 item 10): one that would pass the message
    # over still skips it, and it stays a dead letter until an upcaster or a schema admits it.
    result = await replay(_Tolerant(), nc=nc, pool=pool, settings=settings, batch=4)
    assert [s["seq"] for s in result["skipped"]] == [11] and result["events"] == 20
    assert await pool.fetchval("SELECT count(*) FROM dead_letters WHERE projection = 'activity'") == 1


async def test_a_dead_letter_left_by_a_projection_bug_is_cleared_by_the_replay_of_the_fixed_projection(
    env, settings: Settings
) -> None:
    """#15 item 19: fix the projection, then replay — the event folds now and its dead letter goes."""
    nc, store, pool = env
    await store.append_many(visits(21))
    runner = ProjectionRunner(_FailsAt(11), nc=nc, pool=pool, settings=settings)
    await runner.setup()
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _status_at(runner, 21), timeout=30, what="checkpoint past the event it fails on")
    finally:
        runner.stop()
        await task
    assert await total(pool) == 20
    [dead] = await dead_letters(nc, settings, "activity")
    assert dead["seq"] == 11 and "seq 11" in dead["reason"]
    result = await replay(EventCountsProjection(), nc=nc, pool=pool, settings=settings, batch=4)
    assert result["skipped"] == [] and result["events"] == 21
    assert await total(pool) == 21
    assert await pool.fetchval("SELECT count(*) FROM dead_letters WHERE projection = 'activity'") == 0


class _FailsAt(EventCountsProjection):
    """The activity projection with a bug that bites at one stream sequence."""

    def __init__(self, seq: int) -> None:
        super().__init__()
        self.seq = seq

    async def apply(self, conn, events):  # type: ignore[no-untyped-def]
        if any(e.seq == self.seq for e in events):
            raise RuntimeError(f"seq {self.seq}")
        await super().apply(conn, events)


class _Tolerant(EventCountsProjection):
    """The activity projection fixed: a message it cannot decode is passed over, not an error."""

    async def apply(self, conn, events):  # type: ignore[no-untyped-def]
        await super().apply(conn, [e for e in events if e.data != b"{not json"])


async def _schemas(pool: asyncpg.Pool, like: str) -> list[str]:
    return [r["nspname"] for r in await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", like)]


async def _status_at(runner: ProjectionRunner, seq: int) -> bool:
    return (await runner.status())["checkpoint"] >= seq


def _worker_env(settings: Settings, until: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "GRIDWORK_NATS_URL": settings.nats_url or "",
        "GRIDWORK_DATABASE_URL": settings.database_url or "",
        "GRIDWORK_NAMESPACE": settings.namespace,
        "GRIDWORK_PROJECTION_BATCH": "100",
        "GRIDWORK_TEST_FOLD_UNTIL": str(until),
        "GRIDWORK_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


async def test_a_consumer_killed_between_commit_and_ack_counts_nothing_twice(env, settings: Settings) -> None:
    _nc, store, pool = env
    n = 3000
    await store.append_many(visits(n))
    cmd = [sys.executable, "-m", "tests.integration.foundation.fold_worker"]

    crashed = await asyncio.create_subprocess_exec(
        *cmd, env=_worker_env(settings, n, GRIDWORK_FAULT_KILL_AFTER_COMMIT="7")
    )
    assert await asyncio.wait_for(crashed.wait(), 120) == -9  # SIGKILLed right after its 7th commit
    checkpoint = await pool.fetchval("SELECT position FROM proj_activity._checkpoint")
    assert checkpoint == 700  # seven batches of 100 committed, the 7th never acked

    restarted = await asyncio.create_subprocess_exec(*cmd, env=_worker_env(settings, n))
    assert await asyncio.wait_for(restarted.wait(), 120) == 0

    assert await total(pool) == n
    fresh = await replay(
        EventCountsProjection(),
        nc=env[0],
        pool=pool,
        settings=settings,
        swap=False,
        target_schema="proj_activity_fresh",
    )
    assert fresh["events"] == n
    assert await table(pool, "proj_activity") == await table(pool, "proj_activity_fresh")


async def test_replay_rebuilds_while_the_live_projection_keeps_folding(env, settings: Settings) -> None:
    nc, store, pool = env
    await store.append_many(visits(2000))
    runner = ProjectionRunner(EventCountsProjection(), nc=nc, pool=pool, settings=settings)
    await runner.setup()
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _status_at(runner, 2000), timeout=30, what="live projection caught up")
        # Corrupt the live table to prove the swap really replaces it with a rebuilt one.
        await pool.execute("UPDATE proj_activity.activity SET events = events + 1000")
        writer = asyncio.create_task(store.append_many(visits(1000, first=2000)))
        progress: list[tuple[int, int]] = []
        result = await replay(
            EventCountsProjection(),
            nc=nc,
            pool=pool,
            settings=settings,
            progress=lambda done, target: progress.append((done, target)),
            batch=500,
        )
        await writer
        assert result["schema"] == "proj_activity" and progress
        await eventually(lambda: _status_at(runner, 3000), timeout=30, what="live projection after the swap")
        assert await total(pool) == 3000
    finally:
        runner.stop()
        await task


async def test_a_consumer_killed_at_any_moment_and_restarted_folds_every_event_once(env, settings: Settings) -> None:
    nc, store, pool = env
    n = 6000
    await store.append_many(visits(n))
    cmd = [sys.executable, "-m", "tests.integration.foundation.fold_worker"]
    for _round in range(3):  # kill -9 mid-fold, wherever it is: mid-batch, mid-commit, before the ack
        worker = await asyncio.create_subprocess_exec(*cmd, env=_worker_env(settings, n))
        before = await _position(pool)
        await eventually(lambda before=before: _moved(pool, before), timeout=60, what="the worker folding")
        worker.kill()
        await worker.wait()
    finisher = await asyncio.create_subprocess_exec(*cmd, env=_worker_env(settings, n))
    assert await asyncio.wait_for(finisher.wait(), 120) == 0
    assert await total(pool) == n
    await replay(
        EventCountsProjection(), nc=nc, pool=pool, settings=settings, swap=False, target_schema="proj_activity_fresh"
    )
    assert await table(pool, "proj_activity") == await table(pool, "proj_activity_fresh")


async def _position(pool: asyncpg.Pool) -> int:
    if not await pool.fetchval("SELECT to_regclass('proj_activity._checkpoint')"):
        return 0
    return int(await pool.fetchval("SELECT position FROM proj_activity._checkpoint"))


async def _moved(pool: asyncpg.Pool, before: int) -> bool:
    return await _position(pool) > before
