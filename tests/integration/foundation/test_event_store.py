"""The event store on a real JetStream: concurrency, dedupe, upcasting, snapshots."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest

from shared.events import SHANGHAI, decode
from shared.events.visits import HouseholdTagged, HouseholdTaggedData, VisitLogged, VisitLoggedData
from shared.eventstore import Aggregate, ConcurrencyError, EventStore, aggregate_filter, connect
from shared.settings import Settings


def tagged(household: str, *tags: str, key: str | None = None, at: datetime | None = None) -> HouseholdTagged:
    return HouseholdTagged.new(
        community="bairuijing",
        aggregate_id=household,
        actor="w01",
        data=HouseholdTaggedData(household_id=household, tags=list(tags)),
        idempotency_key=key,
        occurred_at=at,
    )


@pytest.fixture
async def store(settings: Settings):
    nc = await connect(settings, "test")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    yield store
    await nc.close()


async def test_fifty_concurrent_appends_at_one_version_exactly_one_wins(store: EventStore) -> None:
    await store.append([tagged("h-4-4-301", "elderly_alone")], 0)
    attempts = [store.append([tagged("h-4-4-301", f"tag{i}")], 1) for i in range(50)]
    results = await asyncio.gather(*attempts, return_exceptions=True)

    wins = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, ConcurrencyError)]
    assert len(wins) == 1 and len(conflicts) == 49
    assert all(c.expected == 1 and c.actual == 2 for c in conflicts)

    stored = await store.read(aggregate_filter(store.ns, "bairuijing", "visits", "household", "h-4-4-301"))
    versions = [decode(s.data, s.type).aggregate_version for s in stored]
    assert versions == [1, 2]  # no gap, no duplicate


async def test_the_same_event_published_twice_is_stored_once(store: EventStore) -> None:
    event = tagged("h-2-1-502", "special_assistance")
    first = await store.append([event], 0)
    again = await store.append([event], 0)  # a client retry: same event id, same expected version
    assert not first.duplicate and again.duplicate
    assert again.first_seq == first.first_seq
    stored = await store.read(aggregate_filter(store.ns, "bairuijing", "visits", "household", "h-2-1-502"))
    assert len(stored) == 1


async def test_a_retried_command_with_an_idempotency_key_is_stored_once_even_in_a_batch(store: EventStore) -> None:
    when = datetime(2025, 4, 14, 9, 30, tzinfo=SHANGHAI)
    a = tagged("h-1", "young", key="phone-42:1", at=when)
    b = tagged("h-1", "young", key="phone-42:1", at=when)  # rebuilt from the same client record
    assert a.id == b.id
    results = await store.append_many([([a], 0), ([b], 0)])
    assert sorted(r.duplicate for r in results) == [False, True]  # type: ignore[union-attr]


async def test_several_events_of_one_aggregate_append_atomically(store: EventStore) -> None:
    events = [tagged("h-9", "a"), tagged("h-9", "b"), tagged("h-9", "c")]
    res = await store.append(events, 0)
    assert (res.version, res.last_seq - res.first_seq) == (3, 2)
    with pytest.raises(ConcurrencyError):
        await store.append([tagged("h-9", "d"), tagged("h-9", "e")], 2)
    assert (await store.append(events, 0)).duplicate


async def test_a_v1_event_stored_in_jetstream_upcasts_to_v2(store: EventStore) -> None:
    # A HouseholdTagged written by an older release: schema v1 had one `tag`, not a `tags` list.
    v1 = {
        "id": "01935f5e-8b7a-7cc3-9f00-0123456789ab",
        "type": "HouseholdTagged",
        "schema_version": 1,
        "source": "visits",
        "community": "bairuijing",
        "aggregate_type": "household",
        "aggregate_id": "h-old",
        "aggregate_version": 1,
        "occurred_at": "2025-03-01T09:30:00+08:00",
        "recorded_at": "2025-03-01T09:30:01+08:00",
        "actor": "w07",
        "correlation_id": None,
        "causation_id": None,
        "data": {"household_id": "h-old", "tag": "elderly_alone"},
    }
    subject = f"{store.ns}.bairuijing.visits.household.h-old.HouseholdTagged"
    await store.js.publish(subject, json.dumps(v1).encode(), headers={"Gw-Version": "1"})

    spec = Aggregate("visits", "household", initial=lambda: set(), evolve=lambda s, e: s | set(e.data.tags))
    loaded = await store.load(spec, "bairuijing", "h-old")
    assert loaded.state == {"elderly_alone"} and loaded.version == 1
    [stored] = await store.read(f"{store.ns}.bairuijing.visits.household.h-old.*")
    event = stored.event()
    assert isinstance(event, HouseholdTagged) and event.schema_version == 2
    assert event.data.tags == ["elderly_alone"]


async def test_load_uses_a_snapshot_after_enough_events(settings: Settings) -> None:
    from pydantic import BaseModel

    class Tags(BaseModel):
        tags: list[str] = []

    settings = settings.model_copy(update={"snapshot_every": 5})
    nc = await connect(settings, "test")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    spec = Aggregate(
        "visits", "household", initial=Tags, evolve=lambda s, e: Tags(tags=[*s.tags, *e.data.tags]), state_type=Tags
    )
    for i in range(12):
        await store.append([tagged("h-snap", f"t{i}")], i)
    first = await store.load(spec, "bairuijing", "h-snap")  # folds 12 events, writes a snapshot
    kv = await store.js.key_value(settings.snapshot_bucket())
    snap = json.loads((await kv.get("bairuijing.visits.household.h-snap")).value)
    assert snap["version"] == 12
    await store.append([tagged("h-snap", "t12")], 12, expected_seq=first.last_seq)
    again = await store.load(spec, "bairuijing", "h-snap")  # snapshot + 1 event
    assert again.version == 13 and again.state.tags == [f"t{i}" for i in range(13)]
    await nc.close()


async def test_visits_for_many_households_pipeline(store: EventStore) -> None:
    batch = [
        (
            [
                VisitLogged.new(
                    community="bairuijing",
                    aggregate_id=f"v{i}",
                    actor="w01",
                    data=VisitLoggedData(
                        visit_id=f"v{i}", worker_id="w01", household_id=f"h{i}", mode="regular", minutes=8
                    ),
                )
            ],
            0,
        )
        for i in range(2000)
    ]
    results = await store.append_many(batch, window=256)
    assert all(not isinstance(r, Exception) and not r.duplicate for r in results)
    assert len({r.last_seq for r in results}) == 2000  # type: ignore[union-attr]
