"""Scaling consumers: what happens to a projection's exactly-once folding under operations' conditions.

Two situations an operator meets: a second instance of a service started for capacity (both
instances share the projection's durable consumer), and a transient database error in the middle
of a busy stream.  The runner's checkpoint is a high-water mark, so it must fold strictly in stream
order: one instance leads (a PostgreSQL advisory lock) while the other stands by, and a failing
event is retried in place rather than skipped over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from shared.db import create_pool, migrate
from shared.events.visits import HouseholdTagged, HouseholdTaggedData
from shared.eventstore import EventStore, StoredEvent, connect
from shared.projection import ProjectionRunner
from shared.settings import Settings
from tests.harness import eventually


class Ledger:
    """Each folded event as one row: a lost event is a missing row, a double fold a second one."""

    name = "scoring"  # runs as the scoring user, which may run only its own projections' consumers
    event_types = ("HouseholdTagged",)
    ddl = "CREATE TABLE IF NOT EXISTS folded (seq bigint NOT NULL);"

    def __init__(self, fail_at: int = 0, failures: int = 0) -> None:
        self.fail_at = fail_at
        self.failures = failures

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        if self.failures and any(e.seq == self.fail_at for e in events):
            self.failures -= 1
            raise ConnectionError("PostgreSQL restarted under us")  # a transient error, twice
        await conn.executemany("INSERT INTO folded VALUES ($1)", [(e.seq,) for e in events])


def households(n: int) -> list[tuple[list[HouseholdTagged], int]]:
    return [
        (
            [
                HouseholdTagged.new(
                    community="bairuijing",
                    aggregate_id=f"h-{i}",
                    actor="w07",
                    data=HouseholdTaggedData(household_id=f"h-{i}", tags=["young"]),
                )
            ],
            0,
        )
        for i in range(n)
    ]


async def fold_with(settings: Settings, projections: list[Ledger], events: int) -> tuple[int, int, int]:
    """Run one runner per projection instance on its own connection; (rows, distinct seqs, events)."""
    writer = await connect(settings, "ops-writer")
    store = EventStore(writer, settings)
    await store.ensure_streams()
    pool = await create_pool(settings)
    async with pool.acquire() as conn:
        await migrate(conn)
    # the instances run as a service does, under its own NATS user (the suite's server has users)
    service = "scoring" if "scoring" in settings.nats_passwords else None
    conns = [await connect(settings, f"ops-instance-{i}", user=service) for i in range(len(projections))]
    runners = [
        ProjectionRunner(p, nc=nc, pool=pool, settings=settings) for p, nc in zip(projections, conns, strict=True)
    ]
    for runner in runners:
        await runner.setup()
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        await store.append_many(households(events))
        last = await store.last_sequence()

        async def at_end() -> bool:
            return await pool.fetchval("SELECT position FROM proj_scoring._checkpoint") == last

        await eventually(at_end, timeout=60, what="checkpoint at the end of the stream")
        row = await pool.fetchrow("SELECT count(*) AS n, count(DISTINCT seq) AS d FROM proj_scoring.folded")
        return row["n"], row["d"], last
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
        for nc in (*conns, writer):
            await nc.close()
        await pool.close()


async def test_two_instances_of_a_service_fold_every_event_exactly_once(settings: Settings) -> None:
    rows, distinct, events = await fold_with(
        settings.model_copy(update={"projection_batch": 50}), [Ledger(), Ledger()], 4000
    )
    assert (rows, distinct) == (events, events)


async def test_a_transient_database_error_mid_stream_loses_no_event(settings: Settings) -> None:
    rows, distinct, events = await fold_with(
        settings.model_copy(update={"projection_batch": 100}), [Ledger(fail_at=250, failures=2)], 2000
    )
    assert (rows, distinct) == (events, events)
