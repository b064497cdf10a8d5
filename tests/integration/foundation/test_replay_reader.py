"""The replay reader: a ReplayReader reads the stream in order, with headers, while the same connection
keeps serving everything else, and gives the connection its own parser back when it stops; it keeps
only the projection's event types (its consumer has no subject filter)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nats.protocol.parser import Parser

from shared.event_counts import EventCountsProjection
from shared.events.visits import ShiftEnded, ShiftEndedData
from shared.eventstore import EventStore, connect
from shared.nats import patches
from shared.nats.replay_reader import ReplayReader, _Parser
from shared.projection import stream_reader
from shared.settings import Settings
from tests.harness import eventually
from tests.integration.foundation.test_projections import START, visits


async def test_fast_puller_reads_in_order_beside_other_traffic(settings: Settings) -> None:
    nc = await connect(settings, "test")
    try:
        store = EventStore(nc, settings)
        await store.ensure_streams()
        groups = visits(3000)
        appended = [r.last_seq for r in await store.append_many(groups)]
        events = {seq: group[0][0] for seq, group in zip(appended, groups, strict=True)}

        chatter: list[bytes] = []
        got_all = asyncio.Event()

        async def on_chatter(msg) -> None:  # a plain subscription on the same connection
            chatter.append(msg.data)
            if len(chatter) == 200:
                got_all.set()

        other = await nc.subscribe(f"{settings.namespace}_chatter", cb=on_chatter)
        reader = await stream_reader(nc, settings, EventCountsProjection())
        # with the patches on, deliveries to the reader take the fast parser; on stock nats-py
        # (GRIDWORK_NATS_STOCK_CLIENT=1) the connection keeps nats-py's own parser
        assert isinstance(reader, ReplayReader) and isinstance(nc._ps, _Parser) == patches.active()

        async def talk() -> None:
            for i in range(200):
                await nc.publish(f"{settings.namespace}_chatter", str(i).encode(), headers={"N": str(i)})
                if i % 20 == 0:
                    await asyncio.sleep(0)

        talker = asyncio.create_task(talk())
        pulled = []
        while len(pulled) < 3000:
            batch = await reader.fetch(700, wait=1)
            assert batch, "the reader stalled"
            pulled += batch
        await talker
        await asyncio.wait_for(got_all.wait(), 10)
        # a request/reply (JetStream API) on the same connection still works while the reader is on
        assert (await nc.jetstream().stream_info(settings.stream_name())).state.messages == 3000

        assert [p.event.seq for p in pulled] == sorted(appended)
        assert not reader.gap and pulled[-1].pending == 0
        for p in pulled[:50] + pulled[-50:]:
            sent = events[p.event.seq]
            got = p.event.event()
            assert p.event.subject == sent.subject(settings.namespace) and (got.id, got.data) == (sent.id, sent.data)
            assert p.event.headers is not None and p.event.headers["Nats-Msg-Id"] == str(sent.id)
            assert p.event.timestamp_ns > 0 and p.deliveries == 1
        assert chatter == [str(i).encode() for i in range(200)]

        # nothing more: the long poll ends with a status message, which still reaches the puller
        assert await reader.fetch(10, wait=0.2) == []
        await reader.stop()
        assert type(nc._ps) is Parser  # the connection's own parser is back
        await nc.publish(f"{settings.namespace}_chatter", b"after")
        await nc.flush()
        await eventually(lambda: _last_is(chatter, b"after"), timeout=5, what="chatter after the reader stopped")
        await other.unsubscribe()
    finally:
        await nc.close()


async def _last_is(seen: list[bytes], value: bytes) -> bool:
    return bool(seen) and seen[-1] == value


class _VisitsOnly:
    name = "visits_only"
    event_types = ("VisitLogged",)


async def test_the_replay_reader_keeps_only_the_projections_types(settings: Settings) -> None:
    nc = await connect(settings, "test")
    try:
        store = EventStore(nc, settings)
        await store.ensure_streams()
        groups = visits(400)
        kinds: dict[int, str] = {}
        for i in range(0, 400, 100):  # runs of visits with runs of shifts between them, and shifts at the end
            for res, group in zip(await store.append_many(groups[i : i + 100]), groups[i : i + 100], strict=True):
                kinds[res.last_seq] = group[0][0].type
            for res in await store.append_many(shifts(150, first=i * 10)):
                kinds[res.last_seq] = "ShiftEnded"
        reader = await stream_reader(nc, settings, _VisitsOnly())  # type: ignore[arg-type]
        pulled = []
        for _ in range(20):
            batch = await reader.fetch(120, wait=1)
            pulled += batch
            if reader.drained:
                break
        assert reader.drained and not reader.gap
        assert [p.event.seq for p in pulled] == sorted(s for s, kind in kinds.items() if kind == "VisitLogged")
        assert await reader.fetch(10, wait=0.2) == [] and await reader.pending() == 0
        await reader.stop()
    finally:
        await nc.close()


def shifts(n: int, first: int = 0) -> list:
    return [
        (
            [
                ShiftEnded.new(
                    community="bairuijing",
                    aggregate_id=f"s{i}",
                    actor="w01",
                    occurred_at=START + timedelta(hours=i),
                    data=ShiftEndedData(shift_id=f"s{i}", worker_id="w01", started_at=START.isoformat(), minutes=60),
                )
            ],
            0,
        )
        for i in range(first, first + n)
    ]
