"""SIGKILL the scoring service in the middle of folding some 50,000 events of a street's work (the
workload `gridwork simulate` generates): after a restart the board equals a fresh replay, number for
number."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.cli.embedded import free_port
from services.cli.workload import by_aggregate, generate
from services.scoring import queries
from services.scoring.domain.calendar import parse_period
from services.scoring.projections import ScoringProjection
from services.scoring.settings import scoring_settings
from shared.projection import replay
from shared.settings import Settings
from tests.harness import eventually

N = 50_000
ROOT = Path(__file__).resolve().parents[3]
TABLES = {
    "quota_item": "community, worker_id, period_key, item",
    "standing": "community, grain, day, worker_id",
    "figures": "community, year",
    "training_seen": "community, year, training_id",
    "household": "community, household_id",
    "ledger": "community",
    "issue": "community, issue_id",
    "community": "community",
    "roster": "community, worker_id",
    "closure": "community, worker_id, period_key",
    "rulebook_use": "community, rulebook, version",
}
#: Bookkeeping that depends on where batches happened to end, not on what was folded.
BATCH_DEPENDENT = {"changed_seq", "prev_num", "prev_met", "prev_points", "closed_seq"}


async def _append(store: Any) -> tuple[int, int]:
    """Six communities (1,000 households each) until about N events the scoring projection folds;
    returns (those events, the stream's last sequence)."""
    folded = frozenset(ScoringProjection().event_types)
    total, last = 0, 0
    for _day, events in generate(6, 40, seed=3, start=date(2025, 10, 1), households=1000):
        groups = by_aggregate(events)
        for i in range(0, len(groups), 5000):
            for res in await store.append_many(groups[i : i + 5000]):
                assert not isinstance(res, Exception), res
                last = max(last, res.last_seq)
        total += sum(1 for e in events if e.type in folded)
        if total >= N:
            break
    assert total >= N
    return total, last


def _service_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWORK_")}
    env.update(
        GRIDWORK_NATS_URL=str(settings.nats_url),
        GRIDWORK_DATABASE_URL=str(settings.database_url),
        GRIDWORK_NAMESPACE=settings.namespace,
        GRIDWORK_JWT_SECRET=settings.jwt_secret,
        GRIDWORK_DATA_DIR=str(settings.data_dir),
        GRIDWORK_SCORING_PORT=str(free_port()),
        GRIDWORK_SCORING_CLOSE_INTERVAL_SECONDS="0",
        GRIDWORK_PROJECTION_BATCH="1000",
        GRIDWORK_LOG_FORMAT="json",
        GRIDWORK_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


async def _dump(pool: asyncpg.Pool, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, order in TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {schema}.{table} ORDER BY {order}")
        out[table] = [
            tuple(
                round(v, 6) if isinstance(v, float) else sorted(v) if isinstance(v, list) else v
                for k, v in r.items()
                if k not in BATCH_DEPENDENT
            )
            for r in rows
        ]
    return out


async def _checkpoint(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM proj_scoring._checkpoint") or 0)


@pytest.mark.slow
async def test_sigkill_mid_fold_then_restart_equals_a_fresh_replay(settings: Settings, env) -> None:
    nc, store, pool = env
    total, last = await _append(store)
    cmd = [sys.executable, "-m", "services.scoring"]

    crashed = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, env=_service_env(settings, GRIDWORK_FAULT_KILL_AFTER_COMMIT="12")
    )
    assert await asyncio.wait_for(crashed.wait(), 120) == -9  # SIGKILLed right after its 12th commit, unacked
    at_crash = await _checkpoint(pool)
    assert 0 < at_crash < last

    restarted = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=_service_env(settings))
    try:
        await eventually(lambda: _at(pool, last), timeout=120, interval=0.2, what="restarted fold caught up")
    finally:
        restarted.terminate()
        await asyncio.wait_for(restarted.wait(), 30)
    assert await pool.fetchval("SELECT events FROM proj_scoring._checkpoint") >= total - 1000  # nothing folded twice

    rules = scoring_settings(settings).rules()
    fresh = await replay(
        ScoringProjection(rules), nc=nc, pool=pool, settings=settings, swap=False, target_schema="proj_scoring_fresh"
    )
    assert fresh["events"] == total
    live, rebuilt = await _dump(pool, "proj_scoring"), await _dump(pool, "proj_scoring_fresh")
    for table in TABLES:
        assert live[table] == rebuilt[table], table
    assert len(live["quota_item"]) > 5000 and len(live["roster"]) == 150

    month = parse_period("2025-10")
    for schema_pair in (("proj_scoring", "proj_scoring_fresh"),):
        boards = [
            await queries.street_board(pool, rules, "s00", month, month.end, schema=schema) for schema in schema_pair
        ]
        assert boards[0] == boards[1]
        assert len(boards[0]["workers"]) == 150 and boards[0]["workers"][0]["total"] > 0
        for c in ("c000", "c005"):
            a, b = [await queries.community_board(pool, rules, c, month, month.end, schema=s) for s in schema_pair]
            assert a == b and len(a["workers"]) == 25


async def _at(pool: asyncpg.Pool, last: int) -> bool:
    return await _checkpoint(pool) >= last
