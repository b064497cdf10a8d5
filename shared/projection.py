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
keeps serving, then swaps the schemas in one transaction.  It reads with a
:class:`~shared.nats.replay_reader.ReplayReader`, fetches the next batch while one folds and, for a
:class:`Staged` projection, aggregates the next batch while the previous one is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import asyncpg
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .db import Conn
from .eventstore import StoredEvent
from .metrics import (
    MESSAGES_NAKED,
    PROJECTION_BATCH_SECONDS,
    PROJECTION_CHECKPOINT,
    PROJECTION_DEAD_LETTERS,
    PROJECTION_EVENTS,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
)
from .nats.broker_metrics import DEFAULT as DEFAULT_BROKER_METRICS
from .nats.broker_metrics import BrokerMetrics
from .nats.pull_consumer import PullConsumer, Pulled
from .nats.replay_reader import ReplayReader
from .settings import Settings

log = structlog.get_logger("gridwork.projection")


class Projection(Protocol):
    """A read model folded from events.  ``apply`` must only touch its own schema's tables (and its
    service's own tables, found through the path after them)."""

    #: Short name: ``[a-z][a-z0-9_]*``.  The schema is ``proj_<name>``.
    name: str
    #: DDL creating its tables, unqualified (it runs with the projection's schema first in the path).
    ddl: str

    @property
    def event_types(self) -> Sequence[str]:
        """Event types it folds; the consumer only receives those.  A plain class attribute will do."""
        ...

    async def apply(self, conn: Conn, events: Sequence[StoredEvent]) -> None:
        """Fold ``events`` (stream order, none seen before) into the tables, in the caller's transaction."""
        ...


@runtime_checkable
class Staged(Projection, Protocol):
    """A projection whose fold splits into CPU work and writes; :func:`replay` then overlaps them.

    ``apply(conn, events)`` must equal ``write(conn, await stage(events))``.  A replay stages the
    next batch while the previous one is being written (``stage`` should give the event loop a
    turn now and then, so the write in flight and the reader make progress).
    """

    async def stage(self, events: Sequence[StoredEvent]) -> Any:
        """Decode and aggregate ``events`` in memory: no I/O, no dependence on what is stored."""
        ...

    async def write(self, conn: Conn, staged: Any) -> None:
        """Write what :meth:`stage` produced, in the caller's transaction."""
        ...


def schema_of(projection: Projection | str) -> str:
    name = projection if isinstance(projection, str) else projection.name
    return f"proj_{name}"


def _lock_key(schema: str) -> int:
    return zlib.crc32(schema.encode())


#: Inside a transaction: the projection's schema first, then the connection's own path (a service's
#: pool: the service's schema, which holds ``dead_letters`` and the service's own tables).
_PATH = (
    "SELECT set_config('search_path', format('%I, ', $1::text) || "
    "(SELECT reset_val FROM pg_settings WHERE name = 'search_path'), true)"
)


async def create_schema(conn: Conn, projection: Projection, schema: str) -> None:
    """Create the projection's schema, its tables and its checkpoint row if they are missing."""
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    async with conn.transaction():
        await conn.execute(_PATH, schema)
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


async def _enter(conn: Conn, schema: str, *, lock: bool = True) -> None:
    """Inside a transaction: the projection's schema first in the path and, with ``lock``, its
    transaction lock (the one a replay's swap takes, so a batch never straddles a swap)."""
    await conn.execute(_PATH, schema)
    if lock:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))


async def _fold(
    conn: Conn,
    projection: Projection,
    schema: str,
    events: Sequence[StoredEvent],
    *,
    lock: bool,
) -> int:
    """One batch in the caller's transaction: skip seen events, check each against its schema,
    apply, move the checkpoint."""
    await _enter(conn, schema, lock=lock)
    checkpoint = await conn.fetchval("SELECT position FROM _checkpoint WHERE id = 1 FOR UPDATE")
    fresh = [e for e in events if e.seq > checkpoint]
    if fresh:
        check_events(fresh)
        await projection.apply(conn, fresh)
        await _advance(conn, fresh)
    return len(fresh)


def check_events(events: Sequence[StoredEvent]) -> None:
    """Raise (a ``ValidationError`` naming the field) for the first event its schema refuses.

    Every projection folds only events that validate, whatever it reads them with (the hot paths
    read the raw JSON): one malformed event — a string for minutes, no household — is then
    dead-lettered by every projection that folds its type, and counted by none (#15 item 10).
    About 4 µs an event; the decoded events are not kept (holding them cost more in collections
    than a projection that decodes again pays)."""
    for e in events:
        e.event()


async def _advance(conn: Conn, folded: Sequence[StoredEvent]) -> None:
    await conn.execute(
        "UPDATE _checkpoint SET position = $1, events = events + $2, last_recorded_at = $3, "
        "updated_at = now() WHERE id = 1",
        folded[-1].seq,
        len(folded),
        _recorded_at(folded[-1]),
    )


async def _write_staged(
    pool: asyncpg.Pool, projection: Staged, schema: str, events: Sequence[StoredEvent], staged: Any
) -> int:
    """A replay's staged batch: its rows and the checkpoint, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await _enter(conn, schema, lock=False)
        checkpoint = await conn.fetchval("SELECT position FROM _checkpoint WHERE id = 1 FOR UPDATE")
        if checkpoint >= events[0].seq:  # a replay's schema has one writer, folding in order
            raise RuntimeError(f"replay into {schema}: batch from {events[0].seq} is behind the checkpoint")
        await projection.write(conn, staged)
        await _advance(conn, events)
    return len(events)


def _recorded_at(event: StoredEvent) -> datetime | None:
    if not event.timestamp_ns:
        return None
    return datetime.fromtimestamp(event.timestamp_ns / 1e9, tz=UTC)


async def _cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel a prefetch (its messages, never acked, come again from the checkpoint)."""
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return None


#: Errors meaning the database connection itself is gone: the runner reconnects (and re-elects).
_CONNECTION_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, OSError)


class ProjectionRunner:
    """Runs one projection on a durable pull consumer until stopped.

    Several processes may run the same projection: one is active (it holds a PostgreSQL session
    advisory lock for the projection), the others stand by and take over when its connection
    goes.  Events are folded strictly in stream order, which is what makes the high-water
    checkpoint safe:

    * whenever a runner becomes active, or NATS reconnected, it re-positions the durable consumer
      at checkpoint + 1, so whatever an earlier holder had in flight comes again, in order;
    * a failing event is retried in place with growing delays, never skipped over: nothing newer
      is pulled until it has folded or, after ``max_deliver`` attempts, gone to the dead-letter
      stream with its reason.  If the runner stops meanwhile it NAKs what it still holds.
    """

    def __init__(
        self,
        projection: Projection,
        *,
        nc: NATS,
        pool: asyncpg.Pool,
        settings: Settings,
        broker_metrics: BrokerMetrics | None = None,
    ) -> None:
        self.projection = projection
        #: FastStream's broker metrics (``faststream_received_*``), handler = the projection.
        self.broker_metrics = broker_metrics or DEFAULT_BROKER_METRICS
        self.nc = nc
        self.js = nc.jetstream(timeout=10)
        self.pool = pool
        self.settings = settings
        self.schema = schema_of(projection)
        self.durable = f"{settings.namespace}_{projection.name}"
        self.stream = settings.stream_name()
        self.role = "stopped"
        self._puller: PullConsumer | None = None
        self._stopping = asyncio.Event()
        self._leader_key = zlib.crc32(f"{self.schema}:leader".encode())
        self.commits = 0
        self._last_pending = 0
        # Test hook: SIGKILL this process right after the Nth commit, before its ack.
        self._kill_after_commit = int(os.environ.get("GRIDWORK_FAULT_KILL_AFTER_COMMIT", "0") or 0)

    def filter_subjects(self) -> list[str]:
        ns = self.settings.namespace
        return [f"{ns}.*.*.*.*.{t}" for t in self.projection.event_types]

    async def setup(self) -> None:
        """Create the schema, and the durable consumer if there is none yet (idempotent)."""
        async with self.pool.acquire() as conn:
            await create_schema(conn, self.projection, self.schema)
            try:
                await self.js.consumer_info(self.stream, self.durable)
            except nats.js.errors.NotFoundError:
                await self._create_consumer(await self._checkpoint(conn))

    async def _checkpoint(self, conn: Conn) -> int:
        return int(await conn.fetchval(f'SELECT position FROM "{self.schema}"._checkpoint WHERE id = 1'))

    async def _create_consumer(self, checkpoint: int) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if checkpoint else DeliverPolicy.ALL,
            opt_start_seq=checkpoint + 1 if checkpoint else None,
            ack_policy=AckPolicy.ALL,
            ack_wait=60,
            max_deliver=-1,  # the runner counts attempts itself and dead-letters
            max_ack_pending=max(self.settings.projection_batch * 4, 1000),
            filter_subjects=self.filter_subjects(),
        )
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_consumer(self.stream, self.durable)
        await self.js.add_consumer(self.stream, config)

    async def _reposition(self, conn: Conn) -> None:
        """Point the durable consumer at checkpoint + 1 and start a fresh pull client on it."""
        if self._puller is not None:
            await self._puller.stop()
        await self._create_consumer(await self._checkpoint(conn))
        self._puller = PullConsumer(self.nc, self.stream, self.durable)
        await self._puller.start()

    def stop(self) -> None:
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """Stand by or lead; while leading, pull, fold, commit, ack — until :meth:`stop`."""
        await self.setup()
        while not self._stopping.is_set():
            try:
                async with self.pool.acquire() as conn:
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._leader_key):
                        self.role = "standby"
                        await self._pause(2)
                        continue
                    self.role = "active"
                    try:
                        await self._lead(conn)
                    finally:
                        self.role = "standby"
                        with contextlib.suppress(Exception):
                            await conn.execute("SELECT pg_advisory_unlock($1)", self._leader_key)
            except nats.errors.ConnectionClosedError:
                break
            except _CONNECTION_ERRORS as err:
                log.warning("runner_reconnecting", projection=self.projection.name, error=repr(err))
                await self._pause(1)
            except Exception as err:  # never die: log, wait, lead again from the checkpoint
                log.error("runner_failed", projection=self.projection.name, error=repr(err))
                await self._pause(2)
        if self._puller is not None:
            await self._puller.stop()
            self._puller = None
        self.role = "stopped"

    async def _lead(self, conn: Conn) -> None:
        await self._reposition(conn)
        reconnects = self.nc.stats["reconnects"]
        batch = self.settings.projection_batch
        ahead: asyncio.Task[list[Pulled]] | None = None
        try:
            while not self._stopping.is_set():
                if self.nc.stats["reconnects"] != reconnects:
                    # Messages pushed to us while NATS was away are lost in transit: start over from
                    # the checkpoint rather than fold past a hole.
                    reconnects = self.nc.stats["reconnects"]
                    await _cancelled(ahead)
                    ahead = None
                    await self._reposition(conn)
                assert self._puller is not None
                try:
                    msgs = await (ahead or self._puller.fetch(batch, wait=1))
                    ahead = None
                except nats.errors.ConnectionClosedError:
                    raise
                except Exception as err:  # broker hiccup: wait, then resume from the checkpoint
                    ahead = None
                    log.warning("fetch_failed", projection=self.projection.name, error=repr(err))
                    await self._pause(1)
                    await self._reposition(conn)
                    continue
                if self._puller.gap:  # a delivery went missing: never fold past a hole
                    log.warning("delivery_gap", projection=self.projection.name)
                    await _cancelled(ahead)
                    ahead = None
                    await self._reposition(conn)
                    continue
                if msgs:
                    # Pull the next batch while this one folds (it waits its turn: order is kept).
                    ahead = asyncio.create_task(self._puller.fetch(batch, wait=1))
                    await self.broker_metrics.consume(
                        self.projection.name,
                        [len(m.event.data) for m in msgs],
                        functools.partial(self._process, conn, msgs),
                    )
        finally:
            await _cancelled(ahead)

    async def _process(self, conn: Conn, msgs: list[Pulled]) -> None:
        """Fold ``msgs`` in order; retry a failing event in place until it folds or is dead-lettered."""
        pending, tries = msgs, 0
        while pending:
            started = time.perf_counter()
            done, failed, error, applied = await self._commit_prefix(conn, pending)
            if done is not None:
                self._after_commit()
                assert self._puller is not None
                await self._puller.ack(done)
                PROJECTION_EVENTS.labels(self.projection.name).inc(applied)
                PROJECTION_CHECKPOINT.labels(self.projection.name).set(done.event.seq)
                PROJECTION_BATCH_SECONDS.labels(self.projection.name).observe(time.perf_counter() - started)
            if failed is None:
                return
            if failed > 0:
                tries = 0  # progress was made: the failing event is a new one
            pending = pending[failed:]
            head = pending[0]
            tries += 1
            attempts = head.deliveries - 1 + tries
            if attempts >= self.settings.max_deliver:
                await self._dead_letter(conn, head, repr(error), attempts)
                assert self._puller is not None
                await self._puller.ack(head)
                pending, tries = pending[1:], 0
                continue
            log.warning(
                "event_failed",
                projection=self.projection.name,
                seq=head.event.seq,
                type=head.event.type,
                attempt=attempts,
                error=repr(error),
            )
            MESSAGES_NAKED.labels(self.projection.name).inc()
            if self._stopping.is_set():
                break
            assert self._puller is not None
            for m in pending:  # still working on them: keep JetStream from redelivering meanwhile
                await self._puller.working(m)
            backoff = self.settings.redelivery_backoff_seconds
            await self._pause(backoff[min(tries, len(backoff)) - 1])
        if pending and self._puller is not None:
            for m in pending:  # stopping with events in hand: give them back at once
                await self._puller.nak(m, 0)

    async def _commit_prefix(
        self, conn: Conn, msgs: list[Pulled]
    ) -> tuple[Pulled | None, int | None, BaseException | None, int]:
        """Commit as long a prefix of ``msgs`` as folds: (last committed, index of the failure, error, applied).

        The whole batch first, in one transaction; if that fails, event by event in savepoints
        of one transaction, stopping at the first failure.
        """
        events = [m.event for m in msgs]
        try:
            async with conn.transaction():
                applied = await _fold(conn, self.projection, self.schema, events, lock=True)
            return msgs[-1], None, None, applied
        except _CONNECTION_ERRORS:
            raise
        except Exception as err:
            if len(msgs) == 1:
                return None, 0, err, 0
        last: Pulled | None = None
        failed: int | None = None
        error: BaseException | None = None
        applied = 0
        try:
            async with conn.transaction():
                await _enter(conn, self.schema)
                for i, m in enumerate(msgs):
                    try:
                        async with conn.transaction():  # a savepoint per event
                            applied += await _fold(conn, self.projection, self.schema, [m.event], lock=False)
                        last = m
                    except _CONNECTION_ERRORS:
                        raise
                    except Exception as err:
                        failed, error = i, err
                        break
        except _CONNECTION_ERRORS:
            raise
        except Exception as err:  # the transaction itself failed: nothing committed
            return None, 0, err, 0
        return last, failed, error, applied

    def _after_commit(self) -> None:
        self.commits += 1
        if self._kill_after_commit and self.commits >= self._kill_after_commit:
            os.kill(os.getpid(), signal.SIGKILL)

    async def _dead_letter(self, conn: Conn, m: Pulled, reason: str, attempts: int) -> None:
        """Keep the poison message and its reason (dead-letter stream + dead_letters) and move past it."""
        ns = self.settings.namespace
        headers = {
            "Nats-Msg-Id": f"{self.projection.name}:{m.event.seq}",
            "Gw-Projection": self.projection.name,
            "Gw-Original-Subject": m.event.subject,
            "Gw-Original-Seq": str(m.event.seq),
            "Gw-Reason": reason[:1000].replace("\r", " ").replace("\n", " "),
            "Gw-Deliveries": str(attempts),
        }
        async with conn.transaction():
            await _enter(conn, self.schema)
            await self.js.publish(f"{ns}dlq.{self.projection.name}", m.event.data, headers=headers)
            await conn.execute(
                "INSERT INTO dead_letters (projection, stream_seq, subject, event_type, reason, deliveries) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                self.projection.name,
                m.event.seq,
                m.event.subject,
                m.event.type,
                reason[:4000],
                attempts,
            )
            await conn.execute(
                "UPDATE _checkpoint SET position = GREATEST(position, $1), updated_at = now() WHERE id = 1",
                m.event.seq,
            )
        PROJECTION_DEAD_LETTERS.labels(self.projection.name).inc()
        log.error("dead_lettered", projection=self.projection.name, seq=m.event.seq, type=m.event.type, reason=reason)

    async def status(self) -> dict[str, Any]:
        """Checkpoint and lag (events not yet folded, and age of the last folded event)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f'SELECT position, events, last_recorded_at FROM "{self.schema}"._checkpoint WHERE id = 1'
            )
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
            pending = self._last_pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        except nats.js.errors.NotFoundError:  # the leader is re-creating it at the checkpoint right now
            pending = self._last_pending
        lag_seconds = 0.0
        if pending and row and row["last_recorded_at"]:
            lag_seconds = max(0.0, time.time() - row["last_recorded_at"].timestamp())
        PROJECTION_LAG_EVENTS.labels(self.projection.name).set(pending)
        PROJECTION_LAG_SECONDS.labels(self.projection.name).set(lag_seconds)
        return {
            "projection": self.projection.name,
            "role": self.role,
            "checkpoint": row["position"] if row else 0,
            "events": row["events"] if row else 0,
            "lag_events": pending,
            "lag_seconds": round(lag_seconds, 3),
        }


async def stream_reader(nc: NATS, settings: Settings, projection: Projection, *, start_seq: int = 1) -> ReplayReader:
    """An ephemeral, ack-less pull consumer over the projection's events (for replays; a :class:`ReplayReader`).

    The consumer has no subject filter: the reader drops other event types itself.  A consumer
    filtered on the projection's types (several wildcard filters) over a stream with a subject per
    aggregate costs the server ~400 µs a message at two million subjects (nats-server #4888,
    #7852): a street-year replay read at 2,000 events/s; unfiltered, the server spends ~7 µs.
    """
    js = nc.jetstream(timeout=10)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60,
        mem_storage=True,
    )
    info = await js.add_consumer(settings.stream_name(), config)
    puller = ReplayReader(nc, settings.stream_name(), info.name, types=projection.event_types)
    await puller.start()
    return puller


class _Carry:
    """Reads a puller up to a stream sequence, keeping what it fetched beyond it for the next read."""

    def __init__(self, puller: ReplayReader) -> None:
        self.puller = puller
        self.left: list[Pulled] = []

    async def until(self, upto: int, batch: int) -> AsyncIterator[list[StoredEvent]]:
        """Yield batches of events up to and including ``upto`` (or until the stream has no more)."""
        while True:
            msgs, self.left = (self.left, []) if self.left else (await self.puller.fetch(batch, wait=1), [])
            if self.puller.gap:
                raise RuntimeError("deliveries went missing during the replay (a NATS node failed?): run it again")
            if not msgs:
                # Nothing within the wait.  On a big stream a new consumer can take seconds to find
                # its first message: stop only when JetStream says nothing is left for it.
                if self.puller.drained or not await self.puller.pending():
                    return
                continue
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


async def _dead_seqs(conn: Conn, projection: str) -> set[int]:
    """Stream sequences the live projection dead-lettered (the service's ``dead_letters``)."""
    rows = await conn.fetch("SELECT stream_seq FROM dead_letters WHERE projection = $1", projection)
    return {int(r["stream_seq"]) for r in rows}


async def _fold_skipping(
    conn: Conn,
    projection: Projection,
    schema: str,
    events: Sequence[StoredEvent],
    dead: set[int],
    skipped: list[dict[str, Any]],
) -> int:
    """A replay's batch in the caller's transaction, past the events the live projection dead-lettered.

    The batch in a savepoint; if it fails and holds a dead-lettered event, again event by event
    (a savepoint each): a dead-lettered event that fails again is skipped and reported in
    ``skipped``, one that folds now (its projection was fixed) is folded.  Any other failure is
    raised: the live projection folded that event, so the replay must not silently differ.
    """
    try:
        async with conn.transaction():
            return await _fold(conn, projection, schema, events, lock=False)
    except _CONNECTION_ERRORS:
        raise
    except Exception:
        if not any(e.seq in dead for e in events):
            raise
    folded = 0
    for event in events:
        try:
            async with conn.transaction():
                folded += await _fold(conn, projection, schema, [event], lock=False)
        except _CONNECTION_ERRORS:
            raise
        except Exception as err:
            if event.seq not in dead:
                raise
            skipped.append({"seq": event.seq, "type": event.type, "error": type(err).__name__})
            log.warning("replay_skipped", projection=projection.name, seq=event.seq, error=type(err).__name__)
    return folded


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

    An event the live projection dead-lettered is folded if it folds now (the projection was
    fixed: its dead letter is then cleared at the swap) and otherwise skipped and reported in the
    result's ``skipped`` (seq, type, error class), so a replay works while the stream holds a
    poison event.  A replay that fails leaves no half-built schema behind.
    """
    live = schema_of(projection)
    shadow = target_schema or f"{live}__replay"
    try:
        return await _replay(projection, nc, pool, settings, progress, swap, live, shadow, batch)
    except BaseException:
        with contextlib.suppress(Exception):
            async with pool.acquire(timeout=10) as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow}" CASCADE')
        raise


async def _replay(
    projection: Projection,
    nc: NATS,
    pool: asyncpg.Pool,
    settings: Settings,
    progress: Callable[[int, int], Awaitable[None] | None] | None,
    swap: bool,
    live: str,
    shadow: str,
    batch: int,
) -> dict[str, Any]:
    js = nc.jetstream(timeout=10)
    skipped: list[dict[str, Any]] = []
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow}" CASCADE')
        await create_schema(conn, projection, shadow)
        dead = await _dead_seqs(conn, projection.name)

    async def isolating(events: list[StoredEvent]) -> int:
        async with pool.acquire() as conn, conn.transaction():
            await _enter(conn, shadow, lock=False)
            return await _fold_skipping(conn, projection, shadow, events, dead, skipped)

    async def written(task: asyncio.Task[int], events: list[StoredEvent]) -> int:
        try:
            return await task
        except _CONNECTION_ERRORS:
            raise
        except Exception:
            if not any(e.seq in dead for e in events):
                raise
            return await isolating(events)  # the staged write failed on a dead-lettered event

    info = await js.stream_info(settings.stream_name())
    target = info.state.last_seq
    started = time.perf_counter()
    folded = 0
    sub = await stream_reader(nc, settings, projection)
    reader = _Carry(sub)
    # Batches in flight keep ~10^5 objects alive; the cyclic GC would rescan them again and again
    # (a quarter of a replay's CPU).  Folding makes no cycles worth collecting meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if target:
            # Fetch the next batch while the previous one folds: the broker and the database work
            # side by side instead of taking turns.
            queue: asyncio.Queue[list[StoredEvent] | None] = asyncio.Queue(maxsize=2)

            async def fetch_ahead() -> None:
                # The end (None) goes in when reading ends or fails, never on a cancellation: the
                # consumer cancels only once it stopped reading, and a put on a full queue would
                # then wait forever (a replay whose fold failed hung in the gather below).
                try:
                    async for events in reader.until(target, batch):
                        await queue.put(events)
                except Exception:
                    await queue.put(None)
                    raise
                await queue.put(None)

            fetcher = asyncio.create_task(fetch_ahead())
            # A Staged projection aggregates the next batch while the previous one is written.
            staged_fold = projection if isinstance(projection, Staged) else None
            writing: asyncio.Task[int] | None = None
            writing_events: list[StoredEvent] = []  # the batch being written
            try:
                while (events := await queue.get()) is not None:
                    if staged_fold is None:
                        folded += await isolating(events)
                        await _report(progress, events[-1].seq, target)
                        continue
                    try:
                        check_events(events)
                        staged = await staged_fold.stage(events)
                    except Exception:
                        if not any(e.seq in dead for e in events):
                            raise
                        staged = None  # a dead-lettered event it cannot stage: folded one by one below
                    if writing is not None:
                        folded += await written(writing, writing_events)
                        writing = None
                        await _report(progress, writing_events[-1].seq, target)
                    if staged is None:
                        folded += await isolating(events)
                        await _report(progress, events[-1].seq, target)
                        continue
                    writing = asyncio.create_task(_write_staged(pool, staged_fold, shadow, events, staged))
                    writing_events = events
                if writing is not None:
                    folded += await written(writing, writing_events)
                    writing = None
                    await _report(progress, writing_events[-1].seq, target)
            finally:
                tasks = [t for t in (writing, fetcher) if t is not None]
                for t in tasks:
                    if not t.done():
                        t.cancel()
                for res in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(res, Exception):
                        raise res  # the reader's (a delivery gap) or the write's error
        if not swap:
            return {"schema": shadow, "events": folded, "seconds": time.perf_counter() - started, "skipped": skipped}
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(live))
            # under the live projection's lock: what it dead-lettered during the rebuild counts too
            dead.update(await _dead_seqs(conn, projection.name))
            live_pos = None
            if await conn.fetchval("SELECT to_regclass($1)", f'"{live}"._checkpoint'):
                live_pos = await conn.fetchval(f'SELECT position FROM "{live}"._checkpoint WHERE id = 1')
            shadow_pos = await conn.fetchval(f'SELECT position FROM "{shadow}"._checkpoint WHERE id = 1')
            if live_pos is not None and live_pos > shadow_pos:
                async for events in reader.until(live_pos, batch):
                    folded += await _fold_skipping(conn, projection, shadow, events, dead, skipped)
            # The dead letters this rebuild folded are in the read model now: no longer held.
            await conn.execute(
                "DELETE FROM dead_letters WHERE projection = $1 AND NOT (stream_seq = ANY($2::bigint[]))",
                projection.name,
                [s["seq"] for s in skipped],
            )
            old = f"{live}__old"
            await conn.execute(f'DROP SCHEMA IF EXISTS "{old}" CASCADE')
            if live_pos is not None:
                await conn.execute(f'ALTER SCHEMA "{live}" RENAME TO "{old}"')
            await conn.execute(f'ALTER SCHEMA "{shadow}" RENAME TO "{live}"')
            await conn.execute(f'DROP SCHEMA IF EXISTS "{old}" CASCADE')
    finally:
        if collecting:
            gc.enable()
        await sub.stop()
    return {"schema": live, "events": folded, "seconds": time.perf_counter() - started, "skipped": skipped}


async def _report(progress: Callable[[int, int], Awaitable[None] | None] | None, done: int, target: int) -> None:
    if progress:
        res = progress(done, target)
        if asyncio.iscoroutine(res):
            await res


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
            assert msg.seq is not None  # a stored message always has its sequence
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
