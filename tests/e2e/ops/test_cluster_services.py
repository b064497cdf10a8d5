"""The four services on a three-node JetStream cluster: field apps keep syncing while the stream leader dies.

The production shape without Docker: three nats-server processes with the production users and
permissions, PostgreSQL, and the four services as `gridwork cluster up` runs them (each service its
own process and NATS user, streams with three replicas).  The simulator's workload is played
through the public APIs — the directory, the ledger, the phones' 500-record sync batches, reported
problems, 12345 orders — and the node leading the event stream is killed (SIGKILL) while a day's
batches are in flight.  Requests caught in the election fail; the clients send them again, as
phones do (the record ids make that safe).  At the end the stream holds every piece of work the
workload did exactly once, and everything the services acknowledged before the kill is among it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import nats.errors
import pytest

from services.cli.embedded import NatsCluster, free_port
from services.cli.simulate import SYNC_KINDS, ApiSimulator
from services.cli.stack import SERVICE_NAMES, LocalStack
from services.cli.workload import generate
from shared.events import now
from shared.eventstore import EventStore, connect
from shared.nats.users import load_permissions, new_passwords, render_authorization
from shared.settings import Settings
from tests.harness import eventually

COMMUNITIES, DAYS, SEED, HOUSEHOLDS = 1, 4, 11, 300
KILL_AFTER_DAY = 1  # the leader dies while the second day's requests are in flight


@pytest.fixture
def passwords(settings: Settings) -> dict[str, str]:
    return new_passwords(load_permissions(settings.namespace))


@pytest.fixture
def cluster(tmp_path: Path, settings: Settings, passwords: dict[str, str]) -> Iterator[NatsCluster]:
    nodes = NatsCluster(
        tmp_path / "cluster", size=3, authorization=render_authorization(settings.namespace, passwords)
    ).start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def stack(
    tmp_path: Path, settings: Settings, cluster: NatsCluster, passwords: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalStack]:
    monkeypatch.setenv("GRIDWORK_SCORING_CLOSE_INTERVAL_SECONDS", "0")  # the event counts hold still
    ports = {f"{name}_port": free_port() for name in SERVICE_NAMES}
    update = {"nats_url": cluster.url, "stream_replicas": 3, "nats_passwords": passwords, "data_dir": tmp_path}
    services = LocalStack(settings.model_copy(update={**update, **ports}))
    try:
        services.start(echo=lambda _line: None)
        yield services
    finally:
        services.stop(echo=lambda _line: None)


async def _stored(settings: Settings) -> Counter[str]:
    """Events in the stream by type; asserts no event id is stored twice."""
    nc = await connect(settings, "tests-admin")
    try:
        events = await EventStore(nc, settings).read(f"{settings.namespace}.>")
    finally:
        await nc.close()
    ids = Counter((e.headers or {}).get("Nats-Msg-Id") for e in events)
    assert ids and max(ids.values()) == 1, "an event is stored twice"
    return Counter(e.type for e in events)


async def _play(sim: ApiSimulator, workload: list, on_day: Callable[[int], None] | None = None) -> None:
    """Play the workload; a day whose requests failed is sent again (as a phone retries), for up to 3 minutes."""
    for n, (day, events) in enumerate(workload):
        deadline = asyncio.get_running_loop().time() + 180
        while True:
            try:
                if day is None:
                    await sim.seed(events)
                    await sim.settle(timeout=300)
                else:
                    await sim.play_day(day, events)
                break
            except Exception:  # 5xx or a dropped connection while the cluster elects a leader
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(1)
        if on_day is not None:
            on_day(n)


async def test_services_on_a_cluster_keep_every_acknowledged_record_once_when_the_leader_dies(
    stack: LocalStack, cluster: NatsCluster
) -> None:
    s = stack.settings
    services = stack.endpoints["services"]
    start = now().date() - timedelta(days=DAYS)
    workload = list(generate(COMMUNITIES, DAYS, SEED, start, HOUSEHOLDS))
    kinds = Counter(e.type for _, events in workload for e in events)
    killed: list[str] = []
    kills: list[asyncio.Task[None]] = []

    admin = await connect(s, "tests-admin")
    store = EventStore(admin, s)

    async def kill_the_leader() -> None:
        await asyncio.sleep(0.5)  # the next day's batches are in flight
        leader = (await store.js.stream_info(s.stream_name())).cluster.leader  # type: ignore[union-attr]
        assert leader
        killed.append(leader)
        await asyncio.to_thread(cluster.node(leader).kill)

    def on_day(n: int) -> None:
        if n == KILL_AFTER_DAY and not kills:
            kills.append(asyncio.create_task(kill_the_leader()))

    first = ApiSimulator(s, services)
    try:
        await _play(first, workload, on_day)
        await kills[0]

        async def new_leader() -> str | None:
            try:  # the admin connection may itself be reconnecting from the dead node
                info = await store.js.stream_info(s.stream_name())
            except nats.errors.Error:
                return None
            leader = info.cluster.leader if info.cluster else None
            return leader if leader not in (None, killed[0]) else None

        assert await eventually(new_leader, timeout=60, what="a new stream leader")
        assert first.tally.total("accepted") > 0
        # what the election swallowed was refused as "send it again" (sync records: per record; other
        # requests: 503 with Retry-After), never a half-written record
        for reason in first.tally.rejections:
            assert "send the record again" in reason or "→ 503" in reason, reason
    finally:
        await first.close()
        await admin.close()

    # Every client sends its whole history once more: what was acknowledged comes back a duplicate,
    # what the election swallowed is stored now.
    again = ApiSimulator(s, services)
    try:
        await _play(again, workload)
        await again.settle(timeout=300)
    finally:
        await again.close()
    assert again.tally.total("rejected") == 0, again.tally.rejections
    for what, counts in first.tally.counts.items():
        assert again.tally.counts[what]["duplicate"] >= counts["accepted"], f"{what}: an acknowledged record is gone"

    stored = await _stored(s)
    directory = ("CommunityRegistered", "BuildingRegistered", "WorkerRegistered", "GridDefined", "PersonRegistered")
    for kind in (*directory, "HouseholdRegistered", "ShiftStarted", "ShiftEnded", *SYNC_KINDS, "HotlineOrderReceived"):
        assert stored[kind] == kinds[kind], kind
