"""The projection runner: folds the event stream into PostgreSQL, each event exactly once.

A projection owns one PostgreSQL schema (``proj_<name>``) holding its tables and its checkpoint
row.  For every batch pulled from its durable JetStream consumer the runner, in ONE transaction,
skips what is at or below the checkpoint, lets the projection write its rows, and moves the
checkpoint to the batch's last stream sequence; only after the commit does it ack.  A crash
anywhere therefore either loses the whole batch (redelivered, then applied) or keeps it (the
redelivery is skipped): every event counts once.

Errors: a failing batch is retried event by event inside savepoints.  The events before the
failing one commit; the failing one and those after it are NAKed with a growing delay, so order
is kept.  After ``max_deliver`` deliveries the failing event goes to the dead-letter stream with
its reason, and the projection moves on.

Rebuild: :func:`replay` folds the whole stream into a fresh schema while the live projection
keeps serving, then swaps the schemas in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .eventstore import StoredEvent
from .metrics import (
    MESSAGES_CONSUMED,
    MESSAGES_NAKED,
    PROJECTION_BATCH_SECONDS,
    PROJECTION_CHECKPOINT,
    PROJECTION_DEAD_LETTERS,
    PROJECTION_EVENTS,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
)
from .puller import Pulled, Puller
from .settings import Settings

log = structlog.get_logger("gridwork.projection")


class Projection(Protocol):
    """A read model folded from events.  ``apply`` must only touch its own schema's tables."""

    #: Short name: ``[a-z][a-z0-9_]*``.  The schema is ``proj_<name>``.
    name: str
    #: Event types it folds; the consumer only receives those.
    event_types: Sequence[str]
    #: DDL creating its tables, unqualified (it runs with the projection's schema first in the path).
    ddl: str

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        """Fold ``events`` (stream order, none seen before) into the tables, in the caller's transaction."""
        ...


def schema_of(projection: Projection | str) -> str:
    name = projection if isinstance(projection, str) else projection.name
    return f"proj_{name}"


def _lock_key(schema: str) -> int:
    return zlib.crc32(schema.encode())


async def create_schema(conn: asyncpg.Connection, projection: Projection, schema: str) -> None:
    """Create the projection's schema, its tables and its checkpoint row if they are missing."""
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    async with conn.transaction():
        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
        await conn.execute(projection.ddl)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS _checkpoint (
                   id int PRIMARY KEY CHECK (id = 1),
                   position bigint NOT NULL,
                   events bigint NOT NULL DEFAULT 0,
                   last_recorded_at timestamptz,
                   updated_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute("INSERT INTO _checkpoint (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING")


async def _fold(
    conn: asyncpg.Connection,
    projection: Projection,
    schema: str,
    events: Sequence[StoredEvent],
    *,
    lock: bool,
) -> int:
    """One batch in the caller's transaction: skip seen events, apply, move the checkpoint."""
    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
    if lock:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
    checkpoint = await conn.fetchval("SELECT position FROM _checkpoint WHERE id = 1 FOR UPDATE")
    fresh = [e for e in events if e.seq > checkpoint]
    if fresh:
        await projection.apply(conn, fresh)
        await conn.execute(
            "UPDATE _checkpoint SET position = $1, events = events + $2, last_recorded_at = $3, "
            "updated_at = now() WHERE id = 1",
            fresh[-1].seq,
            len(fresh),
            _recorded_at(fresh[-1]),
        )
    return len(fresh)


def _recorded_at(event: StoredEvent) -> datetime | None:
    if not event.timestamp_ns:
        return None
    return datetime.fromtimestamp(event.timestamp_ns / 1e9, tz=UTC)


class ProjectionRunner:
    """Runs one projection on a durable pull consumer until stopped."""

    def __init__(self, projection: Projection, *, nc: NATS, pool: asyncpg.Pool, settings: Settings) -> None:
        self.projection = projection
        self.nc = nc
        self.js = nc.jetstream(timeout=10)
        self.pool = pool
        self.settings = settings
        self.schema = schema_of(projection)
        self.durable = f"{settings.namespace}_{projection.name}"
        self.stream = settings.stream_name()
        self._puller: Puller | None = None
        self._stopping = asyncio.Event()
        self.commits = 0
        # Test hook: SIGKILL this process right after the Nth commit, before its ack.
        self._kill_after_commit = int(os.environ.get("GRIDWORK_FAULT_KILL_AFTER_COMMIT", "0") or 0)

    def filter_subjects(self) -> list[str]:
        ns = self.settings.namespace
        return [f"{ns}.*.*.*.*.{t}" for t in self.projection.event_types]

    async def setup(self) -> None:
        """Create the schema and the durable consumer (idempotent)."""
        async with self.pool.acquire() as conn:
            await create_schema(conn, self.projection, self.schema)
        config = ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.ALL,
            ack_wait=60,
            max_deliver=-1,  # the runner counts deliveries itself and dead-letters
            max_ack_pending=max(self.settings.projection_batch * 4, 1000),
            filter_subjects=self.filter_subjects(),
        )
        try:
            await self.js.add_consumer(self.stream, config)
        except nats.js.errors.BadRequestError:
            # The consumer exists with another filter (the projection gained event types).
            await self.js.delete_consumer(self.stream, self.durable)
            await self.js.add_consumer(self.stream, config)
        self._puller = Puller(self.nc, self.stream, self.durable)
        await self._puller.start()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Pull, fold, commit, ack — until :meth:`stop`."""
        if self._puller is None:
            await self.setup()
        assert self._puller is not None
        batch = self.settings.projection_batch
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await self._puller.fetch(batch, wait=1)
                except nats.errors.ConnectionClosedError:
                    return
                except Exception as err:  # broker hiccup: log and retry, never die
                    log.warning("fetch_failed", projection=self.projection.name, error=str(err))
                    await asyncio.sleep(1)
                    continue
                if msgs:
                    MESSAGES_CONSUMED.labels(self.projection.name).inc(len(msgs))
                    await self.handle(msgs)
        finally:
            await self._puller.stop()
            self._puller = None

    async def handle(self, msgs: list[Pulled]) -> None:
        started = time.perf_counter()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                applied = await _fold(conn, self.projection, self.schema, [m.event for m in msgs], lock=True)
        except Exception as err:
            log.warning("batch_failed", projection=self.projection.name, size=len(msgs), error=repr(err))
            await self._handle_one_by_one(msgs)
            return
        self._after_commit()
        assert self._puller is not None
        await self._puller.ack(msgs[-1])
        PROJECTION_EVENTS.labels(self.projection.name).inc(applied)
        PROJECTION_CHECKPOINT.labels(self.projection.name).set(msgs[-1].event.seq)
        PROJECTION_BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)

    def _after_commit(self) -> None:
        self.commits += 1
        if self._kill_after_commit and self.commits >= self._kill_after_commit:
            os.kill(os.getpid(), signal.SIGKILL)

    async def _handle_one_by_one(self, msgs: list[Pulled]) -> None:
        """Isolate the failing event: commit those before it, dead-letter or NAK it and the rest."""
        failed_at: int | None = None
        last_done: Pulled | None = None
        applied = 0
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{self.schema}", public')
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(self.schema))
                    for i, m in enumerate(msgs):
                        try:
                            async with conn.transaction():  # a savepoint per event
                                applied += await _fold(conn, self.projection, self.schema, [m.event], lock=False)
                            last_done = m
                        except Exception as err:
                            if m.deliveries >= self.settings.max_deliver:
                                await self._dead_letter(conn, m, repr(err))
                                await conn.execute(
                                    "UPDATE _checkpoint SET position = GREATEST(position, $1) WHERE id = 1",
                                    m.event.seq,
                                )
                                last_done = m
                                continue
                            log.warning(
                                "event_failed",
                                projection=self.projection.name,
                                seq=m.event.seq,
                                type=m.event.type,
                                deliveries=m.deliveries,
                                error=repr(err),
                            )
                            failed_at = i
                            break
            except Exception as err:  # the database itself is failing: NAK everything
                log.error("transaction_failed", projection=self.projection.name, error=repr(err))
                failed_at, last_done = 0, None
        if last_done is not None:
            self._after_commit()
            assert self._puller is not None
            await self._puller.ack(last_done)
            PROJECTION_EVENTS.labels(self.projection.name).inc(applied)
            PROJECTION_CHECKPOINT.labels(self.projection.name).set(last_done.event.seq)
        if failed_at is not None:
            backoff = self.settings.redelivery_backoff_seconds
            delay = backoff[min(msgs[failed_at].deliveries, len(backoff)) - 1]
            MESSAGES_NAKED.labels(self.projection.name).inc(len(msgs) - failed_at)
            for m in msgs[failed_at:]:
                assert self._puller is not None
                await self._puller.nak(m, delay)

    async def _dead_letter(self, conn: asyncpg.Connection, m: Pulled, reason: str) -> None:
        """Keep the poison message and its reason: in the dead-letter stream and in dead_letters."""
        ns = self.settings.namespace
        headers = {
            "Nats-Msg-Id": f"{self.projection.name}:{m.event.seq}",
            "Gw-Projection": self.projection.name,
            "Gw-Original-Subject": m.event.subject,
            "Gw-Original-Seq": str(m.event.seq),
            "Gw-Reason": reason[:1000].replace("\r", " ").replace("\n", " "),
            "Gw-Deliveries": str(m.deliveries),
        }
        await self.js.publish(f"{ns}dlq.{self.projection.name}", m.event.data, headers=headers)
        await conn.execute(
            "INSERT INTO public.dead_letters (projection, stream_seq, subject, event_type, reason, deliveries) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            self.projection.name,
            m.event.seq,
            m.event.subject,
            m.event.type,
            reason[:4000],
            m.deliveries,
        )
        PROJECTION_DEAD_LETTERS.labels(self.projection.name).inc()
        log.error(
            "dead_lettered",
            projection=self.projection.name,
            seq=m.event.seq,
            type=m.event.type,
            reason=reason,
        )

    async def status(self) -> dict[str, Any]:
        """Checkpoint and lag (events not yet folded, and age of the last folded event)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f'SELECT position, events, last_recorded_at FROM "{self.schema}"._checkpoint WHERE id = 1'
            )
        info = await self.js.consumer_info(self.stream, self.durable)
        pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        lag_seconds = 0.0
        if pending and row and row["last_recorded_at"]:
            lag_seconds = max(0.0, time.time() - row["last_recorded_at"].timestamp())
        PROJECTION_LAG_EVENTS.labels(self.projection.name).set(pending)
        PROJECTION_LAG_SECONDS.labels(self.projection.name).set(lag_seconds)
        return {
            "projection": self.projection.name,
            "checkpoint": row["position"] if row else 0,
            "events": row["events"] if row else 0,
            "lag_events": pending,
            "lag_seconds": round(lag_seconds, 3),
        }


async def stream_reader(nc: NATS, settings: Settings, projection: Projection, *, start_seq: int = 1) -> Puller:
    """An ephemeral, ack-less pull consumer over the projection's events (for replays)."""
    js = nc.jetstream(timeout=10)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_policy=AckPolicy.NONE,
        filter_subjects=[f"{settings.namespace}.*.*.*.*.{t}" for t in projection.event_types],
        inactive_threshold=60,
        mem_storage=True,
    )
    info = await js.add_consumer(settings.stream_name(), config)
    puller = Puller(nc, settings.stream_name(), info.name)
    await puller.start()
    return puller


class _Carry:
    """Reads a puller up to a stream sequence, keeping what it fetched beyond it for the next read."""

    def __init__(self, puller: Puller) -> None:
        self.puller = puller
        self.left: list[Pulled] = []

    async def until(self, upto: int, batch: int) -> AsyncIterator[list[StoredEvent]]:
        """Yield batches of events up to and including ``upto`` (or until the stream has no more)."""
        while True:
            msgs, self.left = (self.left, []) if self.left else (await self.puller.fetch(batch, wait=1), [])
            if not msgs:
                return
            events: list[StoredEvent] = []
            done = False
            for i, m in enumerate(msgs):
                if m.event.seq > upto:
                    self.left = msgs[i:]
                    done = True
                    break
                events.append(m.event)
                if m.event.seq == upto or m.pending == 0:
                    done = True
            if events:
                yield events
            if done:
                return


async def replay(
    projection: Projection,
    *,
    nc: NATS,
    pool: asyncpg.Pool,
    settings: Settings,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    swap: bool = True,
    target_schema: str | None = None,
    batch: int = 5000,
) -> dict[str, Any]:
    """Rebuild a projection from the first event into a fresh schema, then swap it in atomically.

    The live projection keeps serving and folding meanwhile; the swap holds its lock for the
    few events that arrived during the rebuild.  With ``swap=False`` the rebuilt schema is left
    in place under ``target_schema`` (tests compare it with the live one).
    """
    live = schema_of(projection)
    shadow = target_schema or f"{live}__replay"
    js = nc.jetstream(timeout=10)
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow}" CASCADE')
        await create_schema(conn, projection, shadow)
    info = await js.stream_info(settings.stream_name())
    target = info.state.last_seq
    started = time.perf_counter()
    folded = 0
    sub = await stream_reader(nc, settings, projection)
    reader = _Carry(sub)
    try:
        if target:
            # Fetch the next batch while the previous one folds: the broker and the database work
            # side by side instead of taking turns.
            queue: asyncio.Queue[list[StoredEvent] | None] = asyncio.Queue(maxsize=2)

            async def fetch_ahead() -> None:
                try:
                    async for events in reader.until(target, batch):
                        await queue.put(events)
                finally:
                    await queue.put(None)

            fetcher = asyncio.create_task(fetch_ahead())
            try:
                while (events := await queue.get()) is not None:
                    async with pool.acquire() as conn, conn.transaction():
                        folded += await _fold(conn, projection, shadow, events, lock=False)
                    if progress:
                        res = progress(events[-1].seq, target)
                        if asyncio.iscoroutine(res):
                            await res
            finally:
                if not fetcher.done():
                    fetcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetcher
        if not swap:
            return {"schema": shadow, "events": folded, "seconds": time.perf_counter() - started}
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(live))
            live_pos = None
            if await conn.fetchval("SELECT to_regclass($1)", f'"{live}"._checkpoint'):
                live_pos = await conn.fetchval(f'SELECT position FROM "{live}"._checkpoint WHERE id = 1')
            shadow_pos = await conn.fetchval(f'SELECT position FROM "{shadow}"._checkpoint WHERE id = 1')
            if live_pos is not None and live_pos > shadow_pos:
                async for events in reader.until(live_pos, batch):
                    async with conn.transaction():
                        folded += await _fold(conn, projection, shadow, events, lock=False)
            old = f"{live}__old"
            await conn.execute(f'DROP SCHEMA IF EXISTS "{old}" CASCADE')
            if live_pos is not None:
                await conn.execute(f'ALTER SCHEMA "{live}" RENAME TO "{old}"')
            await conn.execute(f'ALTER SCHEMA "{shadow}" RENAME TO "{live}"')
            await conn.execute(f'DROP SCHEMA IF EXISTS "{old}" CASCADE')
    finally:
        await sub.stop()
    return {"schema": live, "events": folded, "seconds": time.perf_counter() - started}


async def dead_letters(nc: NATS, settings: Settings, projection: str) -> list[dict[str, Any]]:
    """The messages a projection dead-lettered, with their reasons (read from the DLQ stream)."""
    js = nc.jetstream(timeout=10)
    out: list[dict[str, Any]] = []
    try:
        seq = 0
        while True:
            msg = await js.get_msg(
                settings.dlq_stream_name(),
                seq=seq + 1,
                next=True,
                subject=f"{settings.namespace}dlq.{projection}",
            )
            seq = msg.seq
            h = msg.headers or {}
            out.append(
                {
                    "seq": int(h.get("Gw-Original-Seq", 0)),
                    "subject": h.get("Gw-Original-Subject"),
                    "reason": h.get("Gw-Reason"),
                    "deliveries": int(h.get("Gw-Deliveries", 0)),
                    "data": (msg.data or b"").decode(errors="replace"),
                }
            )
    except nats.js.errors.NotFoundError:
        pass
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
