"""`gridwork bench ingest` runs end to end (a smoke run: the figures themselves live in the benchmark)."""

from __future__ import annotations

import pytest

from services.visits.bench import run_bench
from tests.harness import Stack


async def test_bench_ingest_serves_single_visits_and_sync_batches_over_http(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench makes its own namespace and database on the session's servers.
    monkeypatch.setenv("GRIDWORK_NATS_URL", stack.nats_url)
    monkeypatch.setenv("GRIDWORK_DATABASE_URL", stack.admin_db_url)
    result = await run_bench(
        single=60,
        concurrency=4,
        batches=2,
        batch_size=50,
        batch_concurrency=2,
        raw=100,
        in_process=False,
        households=10,
        warmup=10,
    )
    baseline, ceiling, singles, batches = result["rows"]
    assert ceiling["statuses"] == "200×60"
    assert baseline["events"] == 100 and baseline["events_per_s"] > 0
    assert singles["statuses"] == "201×60"  # every single visit stored
    assert batches["statuses"] == "200×2" and batches["accepted"] == 100  # each record of each batch stored
    assert result["server"].startswith("uvicorn")
