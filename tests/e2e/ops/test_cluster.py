"""A three-node JetStream cluster on 127.0.0.1: losing the stream leader loses no acknowledged event.

A street's hotline surge is being ingested when the server leading the event stream dies (SIGKILL,
no goodbye).  The ingest keeps going against the other two nodes, retrying what was not
acknowledged; the event store's dedupe makes the retries safe.  At the end every acknowledged
event is in the stream exactly once, and the dead node, restarted, catches up.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from services.cli.embedded import NatsCluster
from shared.db import create_pool
from shared.events.visits import HouseholdTagged, HouseholdTaggedData
from shared.eventstore import AppendResult, ConcurrencyError, EventStore, StoredEvent, connect
from shared.projection import ProjectionRunner
from shared.settings import Settings
from tests.harness import eventually

EVENTS = 3000
CHUNK = 250
KILL_AFTER = 1000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", size=3).start()
    try:
        yield nodes
    finally:
        nodes.stop()


class SurgeLedger:
    """Each folded event as one row — a duplicate fold would show up as a second row."""

    name = "ops_surge"
    event_types = ("HouseholdTagged",)
    ddl = "CREATE TABLE IF NOT EXISTS folded (household text NOT NULL, seq bigint NOT NULL);"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        await conn.executemany("INSERT INTO folded VALUES ($1, $2)", [(e.subject.split(".")[4], e.seq) for e in events])


def tagged(i: int) -> HouseholdTagged:
    household = f"h-{i:05d}"
    return HouseholdTagged.new(
        community="bairuijing",
        aggregate_id=household,
        actor="hotline",
        data=HouseholdTaggedData(household_id=household, tags=["hotline_surge"]),
    )


async def ingest(
    store: EventStore, events: list[HouseholdTagged], on_progress: Callable[[int], None]
) -> dict[str, int]:
    """Append ``events`` (each a new aggregate) until all are acknowledged; event id -> stream seq."""
    todo = list(events)
    acked: dict[str, int] = {}
    deadline = time.monotonic() + 45
    while todo and time.monotonic() < deadline:
        chunk, todo = todo[:CHUNK], todo[CHUNK:]
        try:
            # our own deadline, shorter than the store's: a publish lost with the leader is retried
            results: list[AppendResult | Exception] = await asyncio.wait_for(
                store.append_many([([e], 0) for e in chunk], window=128), 8
            )
        except Exception:
            results = [TimeoutError()] * len(chunk)  # nothing of this chunk is known to be acknowledged
        for event, result in zip(chunk, results, strict=True):
            if isinstance(result, AppendResult):
                acked[str(event.id)] = result.first_seq
            else:  # typically 503 "no stream is listening" while the survivors elect a leader
                todo.append(event)
        on_progress(len(acked))
        if not any(isinstance(r, AppendResult) for r in results):
            await asyncio.sleep(0.2)  # the client's retry backoff while no leader answers
    assert not todo, f"{len(todo)} events never acknowledged"
    return acked


async def test_killing_the_stream_leader_mid_ingest_loses_no_acknowledged_event(
    cluster: NatsCluster, settings: Settings
) -> None:
    s = settings.model_copy(update={"nats_url": cluster.url, "stream_replicas": 3})
    nc = await connect(s, "ops-cluster-test")  # all three servers, reconnecting forever
    runner_nc = await connect(s, "ops-cluster-projection")
    pool = await create_pool(s)
    store = EventStore(nc, s)
    await store.ensure_streams()
    info = await store.js.stream_info(s.stream_name())
    assert info.config.num_replicas == 3 and info.cluster is not None and len(info.cluster.replicas or []) == 2
    # a projection folds the surge meanwhile, on its own connection, like a service would
    runner = ProjectionRunner(SurgeLedger(), nc=runner_nc, pool=pool, settings=s)
    await runner.setup()
    folding = asyncio.create_task(runner.run())
    killed: list[str] = []
    kills: list[asyncio.Task[None]] = []

    async def kill_the_leader() -> None:
        leader = (await store.js.stream_info(s.stream_name())).cluster.leader  # type: ignore[union-attr]
        assert leader
        killed.append(leader)
        await asyncio.to_thread(cluster.node(leader).kill)

    def on_progress(acknowledged: int) -> None:
        if not kills and acknowledged >= KILL_AFTER:
            kills.append(asyncio.create_task(kill_the_leader()))  # while the next chunks are in flight

    try:
        acked = await ingest(store, [tagged(i) for i in range(EVENTS)], on_progress)
        await kills[0]
        assert len(acked) == EVENTS

        async def stored() -> Counter[str] | None:
            events = await store.read(f"{s.namespace}.>")
            ids = Counter((e.headers or {}).get("Nats-Msg-Id", "") for e in events)
            return ids if set(acked) <= set(ids) else None

        in_stream = await eventually(stored, timeout=30, what="every acknowledged event readable")
        assert all(n == 1 for n in in_stream.values()), "an event is stored twice"
        assert set(in_stream) == set(acked)
        info = await store.js.stream_info(s.stream_name())
        assert info.state.messages == EVENTS
        assert info.cluster is not None and info.cluster.leader not in (None, killed[0])

        # the crashed node comes back and catches up from its peers
        node = cluster.node(killed[0])
        await asyncio.to_thread(node.start)

        async def caught_up() -> bool:
            try:
                return await asyncio.to_thread(_local_messages, node.monitor_url, s.stream_name()) == EVENTS
            except OSError:  # its monitoring port is not up yet
                return False

        # Catching up is raft replay from the peers: give a loaded 2-core machine time for it.
        await eventually(caught_up, timeout=120, what=f"{killed[0]} caught up")

        # and the projection folded every event exactly once across the failover
        async def folded() -> bool:
            return await pool.fetchval("SELECT count(*) FROM proj_ops_surge.folded") >= EVENTS

        await eventually(folded, timeout=120, what="the projection caught up")
        rows = await pool.fetchrow("SELECT count(*) AS n, count(DISTINCT seq) AS seqs FROM proj_ops_surge.folded")
        assert (rows["n"], rows["seqs"]) == (EVENTS, EVENTS)
    finally:
        runner.stop()
        await asyncio.wait_for(folding, 15)
        for conn in (runner_nc, nc):
            await conn.close()
        await pool.close()


def _local_messages(monitor_url: str, stream: str) -> int:
    with urllib.request.urlopen(f"{monitor_url}/jsz?streams=true", timeout=2) as r:
        jsz = json.loads(r.read())
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    return -1


async def test_on_a_replicated_stream_fifty_concurrent_appends_at_one_version_exactly_one_wins(
    cluster: NatsCluster, settings: Settings
) -> None:
    # A replicated stream refuses a lost race with another error code (10164, "wrong last sequence"
    # while the winner is still in flight) than a single node (10071): both are a conflict (HTTP 409).
    s = settings.model_copy(update={"nats_url": cluster.url, "stream_replicas": 3})
    nc = await connect(s, "ops-cluster-race")
    try:
        store = EventStore(nc, s)
        await store.ensure_streams()
        await store.append([tagged(0)], 0)
        household = tagged(0).aggregate_id
        rivals = [
            HouseholdTagged.new(
                community="bairuijing",
                aggregate_id=household,
                actor=f"w{i:02d}",
                data=HouseholdTaggedData(household_id=household, tags=[f"tag{i}"]),
            )
            for i in range(50)
        ]
        results = await asyncio.gather(*(store.append([e], 1) for e in rivals), return_exceptions=True)
        wins = [r for r in results if isinstance(r, AppendResult)]
        conflicts = [r for r in results if isinstance(r, ConcurrencyError)]
        assert len(wins) == 1 and len(conflicts) == 49, [r for r in results if not isinstance(r, AppendResult)][:3]
        stored = await store.read(f"{s.namespace}.bairuijing.visits.household.{household}.*")
        assert [e.seq for e in stored] == [stored[0].seq, stored[0].seq + 1]  # two events, no gap, no duplicate
    finally:
        await nc.close()
