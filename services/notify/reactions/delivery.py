"""The delivery worker: works off the outbox, once per notification, with retries and dead letters.

Claiming: ``FOR UPDATE SKIP LOCKED`` picks due rows (and rows whose lease ran out because a
worker died holding them) and leases them, so several notify processes share the outbox without
sending anything twice.  The projection wakes the worker with ``pg_notify`` on commit; the claim
also says when the next pending row falls due, so retries and deferred messages go on time.
Under load rows are leased in chunks, and finished deliveries are marked by a group commit (one
UPDATE for all that finished since the last), so the database sees few statements per message.

Retries, two layers:

* a quick in-process burst with stamina (exponential backoff with jitter, a few tries within a
  second) rides out a blip without giving the row back;
* after the burst the row goes back to ``pending`` with a persistent backoff (doubling, jittered,
  capped), so a recipient that is down for hours holds no worker slot, and a notify restart
  carries on where it was.  After ``notify_max_attempts`` the row is ``dead`` with its last error.

Every attempt appends its step events (NotificationSent and NotificationDelivered, or
NotificationSent and NotificationFailed, plus NotificationDeadLettered at the end) with ids
derived from (notification, step, attempt).

On shutdown, sends in progress are finished and recorded; rows waiting in a backoff are released
for the next process.  A hard kill between a send and its record can repeat that one send; the
notification id travels with every channel (webhook header, SMS id, Message-ID) so the receiver
can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import stamina
import structlog

from shared.events import now
from shared.events.notify import NotificationSent
from shared.outbound import guarded_connector
from shared.service import DUE_SOON_SECONDS, OutboxStatus, Runtime

from ..bootstrap import NotifyDeps
from ..channels import Address, DeliveryError, Message, Sender, build_senders, redact
from ..domain.delivery import NotificationDelivery, RecordDelivery, RecordFailure, backoff_seconds, decide, fold
from ..domain.ids import as_uuid
from ..domain.templates import render
from ..metrics import ESCALATION_DELIVERY, NOTIFICATIONS
from ..projections import WAKE_CHANNEL
from ..sealing import address_of
from ..signing import make_token
from ..steps import append_steps, stored

#: The retries' jitter (the reaction owns the randomness; the backoff rule in the domain is pure).
_JITTER = random.Random()

log = structlog.get_logger("gridwork.notify.delivery")

# Leases due rows (and rows whose lease ran out) and, in the same round trip, tells when the next
# pending row falls due, so the loop can sleep exactly until then.  The lease commits without
# waiting for the WAL flush (most of a claim's time): a database crash can at worst lose a lease,
# and a row whose lease is lost is simply claimed again.
CLAIM = """
WITH due AS (
    SELECT notification_id, state AS was, community, recipient_id
    FROM notify_deliveries
    WHERE (state = 'pending' AND due_at <= now()) OR (state = 'sending' AND lease_until < now())
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notify_deliveries d
    SET state = 'sending', lease_until = now() + make_interval(secs => $2), claimed_by = $3, updated_at = now()
    FROM due LEFT JOIN notify_recipients r ON r.community = due.community AND r.recipient_id = due.recipient_id
    WHERE d.notification_id = due.notification_id
    RETURNING d.notification_id, d.community, d.source_id, d.source_recorded_at, d.correlation_id, d.subject_ref,
        d.kind, d.recipient_id, d.channel, d.urgent, d.facts, d.ack_id, d.attempts, d.budget_from, d.version,
        d.last_seq, d.created_at, due.was, r.language, r.channels AS recipient_channels, r.sealed,
        r.active AS recipient_active
)
SELECT claimed.*, next.due_at AS next_due, set_config('synchronous_commit', 'off', true) AS lease_async
FROM (SELECT min(due_at) AS due_at FROM notify_deliveries WHERE state = 'pending' AND due_at > now()) next
LEFT JOIN claimed ON true
"""


MARK_DELIVERED = """
UPDATE notify_deliveries d
SET state = 'delivered', attempts = m.attempts, version = m.version, last_seq = m.last_seq, last_error = NULL,
    lease_until = NULL, claimed_by = NULL, delivered_at = now(), updated_at = now()
FROM unnest($1::text[], $2::int[], $3::int[], $4::bigint[]) AS m(notification_id, attempts, version, last_seq)
WHERE d.notification_id = m.notification_id
"""


def unexpected(channel: str, stage: str, err: BaseException) -> DeliveryError:
    """A failure no channel classified: retryable, named by its class only (its text may quote the
    message or the address)."""
    return DeliveryError(f"{channel}: {stage} failed ({type(err).__name__})", tried=False)


@dataclass
class Job:
    """One claimed notification while it is being worked on."""

    row: asyncpg.Record
    attempts: int
    version: int
    last_seq: int | None = None
    sending: bool = False  # inside a send and its record: let it finish on shutdown
    done: bool = False

    @property
    def id(self) -> str:
        return str(self.row["notification_id"])

    @property
    def notification(self) -> NotificationDelivery:
        """The notification as the domain sees it, at the attempts and version this job holds."""
        row = self.row
        return NotificationDelivery(
            notification_id=row["notification_id"],
            community=row["community"],
            recipient_id=row["recipient_id"],
            channel=row["channel"],
            subject_ref=row["subject_ref"],
            causation_id=as_uuid(row["source_id"]),
            correlation_id=row["correlation_id"],
            attempts=self.attempts,
            version=self.version,
        )


@dataclass
class DeliveryWorker:
    """Claims due notifications and sends them, ``notify_concurrency`` at a time."""

    deps: NotifyDeps
    senders: dict[str, Sender] = field(default_factory=dict)
    inflight: dict[asyncio.Task[None], Job] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _marks: list[tuple[str, int, int, int | None, asyncio.Future[None]]] = field(default_factory=list)
    _marks_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.settings = self.deps.settings
        self.worker_id = uuid.uuid4().hex

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """Claim and send until cancelled; then finish sends in progress and release the rest."""
        s = self.settings
        # aiohttp rather than httpx here: on the delivery hot path its client costs a tenth as much
        # per request, and its pool does not slow down as connections grow (see the notify README).
        # Every connection goes to an address the outbound policy admits (no webhook aimed inside).
        connector = guarded_connector(
            s.outbound_policy(), limit=s.notify_concurrency, limit_per_host=min(s.notify_concurrency, 32)
        )
        timeout = aiohttp.ClientTimeout(total=s.notify_send_timeout_seconds)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
            self.senders = build_senders(s, client)
            listener = await self.deps.pool.acquire()
            await listener.add_listener(WAKE_CHANNEL, self._on_wake)
            recorder = asyncio.create_task(self._recorder(), name="notify-recorder")
            try:
                await self._loop()
            except BaseException:  # cancelled, or the database went away: settle what is in flight
                await self._shutdown()
                raise
            finally:
                recorder.cancel()
                with contextlib.suppress(Exception):
                    await listener.remove_listener(WAKE_CHANNEL, self._on_wake)
                with contextlib.suppress(Exception):
                    await self.deps.pool.release(listener, timeout=5)

    def _on_wake(self, *_args: Any) -> None:
        self.wakeup.set()

    @property
    def _chunk(self) -> int:
        # Claim in chunks: under load one query leases many rows instead of one row per finished send.
        return max(1, self.settings.notify_concurrency // 4)

    async def _loop(self) -> None:
        s = self.settings
        while True:
            self.wakeup.clear()  # before claiming: a wake-up during the claim is not lost
            free = s.notify_concurrency - len(self.inflight)
            if free < self._chunk and self.inflight:
                await self._sleep(s.notify_poll_seconds * 5)  # woken when a chunk of slots is free
                continue
            rows, next_due = await self.claim(free)
            for row in rows:
                job = Job(row, attempts=row["attempts"], version=row["version"], last_seq=row["last_seq"])
                task = asyncio.create_task(self._deliver(job), name=f"deliver:{job.id}")
                self.inflight[task] = job
                task.add_done_callback(self._finished)
            if len(rows) == free:
                continue  # there may be more due right now
            timeout = s.notify_poll_seconds
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - now()).total_seconds()) + 0.005)
            await self._sleep(timeout)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)
        if self.settings.notify_concurrency - len(self.inflight) == self._chunk:
            self.wakeup.set()  # a chunk of slots is free
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery_task_failed", error=repr(task.exception()))

    async def _sleep(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout)

    async def _shutdown(self) -> None:
        for task, job in list(self.inflight.items()):
            if not job.sending:
                task.cancel()  # waiting in a backoff: released for the next process
        if self.inflight:
            # The runtime gives each background task 10 s to stop; stay within it.
            await asyncio.wait(list(self.inflight), timeout=min(8.0, self.settings.notify_send_timeout_seconds + 1))
        # Whatever this worker still holds goes back at once, rather than after its lease: that
        # includes rows of a claim the cancellation interrupted after the database committed it.
        # A send still running keeps its lease: whoever takes it over reads its events first.
        still_sending = [job.id for job in self.inflight.values()]
        with contextlib.suppress(Exception):
            async with self.deps.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE notify_deliveries SET state = 'pending', due_at = now(), lease_until = NULL, "
                    "claimed_by = NULL, updated_at = now() WHERE claimed_by = $1 AND state = 'sending' "
                    "AND notification_id <> ALL($2::text[])",
                    self.worker_id,
                    still_sending,
                )
        # A send that outlived the wait keeps its lease (above), not this process's resources:
        # cancelled, it gives back the database connection it holds, so the pool can close (a send
        # left running held one past the runtime's shutdown and hung a test's teardown).
        outlived = list(self.inflight)
        for task in outlived:
            task.cancel()
        if outlived:
            await asyncio.wait(outlived, timeout=1.0)

    async def _recorder(self) -> None:
        """Group commit: one UPDATE marks every delivery finished since the last one."""
        while True:
            await self._marks_ready.wait()
            self._marks_ready.clear()
            batch, self._marks = self._marks, []
            try:
                async with self.deps.pool.acquire() as conn:
                    await conn.execute(
                        MARK_DELIVERED,
                        [m[0] for m in batch],
                        [m[1] for m in batch],
                        [m[2] for m in batch],
                        [m[3] for m in batch],
                    )
            except Exception as err:  # the rows stay leased; their Delivered events settle them on recovery
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for *_, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _mark_delivered(self, notification_id: str, attempts: int, version: int, last_seq: int | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marks.append((notification_id, attempts, version, last_seq, fut))
        self._marks_ready.set()
        await fut

    async def claim(self, limit: int) -> tuple[list[asyncpg.Record], datetime | None]:
        """Lease up to ``limit`` due notifications; also when the next pending one falls due."""
        async with self.deps.pool.acquire() as conn:
            result = await conn.fetch(CLAIM, limit, float(self.settings.notify_lease_seconds), self.worker_id)
        rows = [r for r in result if r["notification_id"] is not None]
        return rows, (result[0]["next_due"] if result else None)

    # ------------------------------------------------------------------ one notification

    async def _deliver(self, job: Job) -> None:
        try:
            if job.row["was"] == "sending" and await self._recover(job):
                return
            await self._attempts(job)
        except asyncio.CancelledError:
            if not job.done:
                await self._release(job)
            raise
        except Exception as err:
            # Whatever went wrong, the row must not stay leased to be claimed again forever: count
            # the try (the budget then ends it, dead) if the record can be written now; if it cannot
            # (the database or NATS away), the lease runs out and the history decides.
            log.error("delivery_failed_unexpectedly", notification_id=job.id, error=type(err).__name__)
            if not job.done:
                with contextlib.suppress(Exception):
                    await self._fail(job, unexpected(job.row["channel"], "delivery", err), now())

    async def _attempts(self, job: Job) -> None:
        s = self.settings
        row = job.row
        try:
            # The free text is revealed from the vault for this send only; the row keeps references.
            facts = await self.deps.vault.reveal(row["community"], json.loads(row["facts"]))
            message, address = self._prepare(row, facts)
        except DeliveryError as err:
            await self._record_failure(job, err, now(), final=True)
            return
        except Exception as err:  # a message that cannot be built: a failed try, within the budget
            await self._fail(job, unexpected(row["channel"], "preparing", err), now())
            return
        sender = self.senders[row["channel"]]
        budget = s.notify_max_attempts - (job.attempts - row["budget_from"])
        if budget <= 0:
            await self._record_failure(job, DeliveryError("retry budget spent", tried=False), now(), final=True)
            return
        try:
            await self._guarded_attempt(job, sender, message, address)
            return  # the common case: delivered (or dead-lettered) at the first try
        except DeliveryError as err:
            failed: DeliveryError | None = err
        # The first try failed and may be retried: stamina times the rest of the burst.  Building
        # its retry loop costs more than a whole delivery, so only a failure pays for it; the
        # first failure is raised inside the loop so that stamina's backoff starts from it.
        try:
            async for attempt in stamina.retry_context(
                on=lambda err: isinstance(err, DeliveryError) and not err.permanent,
                attempts=min(s.notify_burst_attempts, budget),
                timeout=None,
                wait_initial=s.notify_burst_wait_initial,
                wait_max=s.notify_burst_wait_max,
                wait_jitter=s.notify_burst_wait_initial,
            ):
                with attempt:
                    if failed is not None:
                        first, failed = failed, None
                        raise first
                    await self._guarded_attempt(job, sender, message, address)
                    return
        except DeliveryError:
            await self._reschedule(job)

    async def _guarded_attempt(self, job: Job, sender: Sender, message: Message, address: Address) -> None:
        # From the send to its record nothing may cancel this task: a send that reached the
        # receiver but was not recorded would be sent again by the next process.
        job.sending = True
        try:
            await self._attempt(job, sender, message, address)
        finally:
            job.sending = False

    async def _attempt(self, job: Job, sender: Sender, message: Message, address: Address) -> None:
        """One try: send, then record the outcome; raises a retryable DeliveryError for stamina."""
        started = now()
        try:
            await sender.send(message, address)
        except Exception as exc:
            # A channel's own DeliveryError, or anything else it raised (a header the mail library
            # refuses, a bug): a failed try either way, so a poison message ends dead, never re-claimed.
            err = exc if isinstance(exc, DeliveryError) else unexpected(sender.name, "sending", exc)
            err.message = redact(err.message, address.secrets())
            spent = job.attempts + 1 - job.row["budget_from"]
            final = err.permanent or spent >= self.settings.notify_max_attempts
            await self._record_failure(job, err, started, final=final)
            if not final:
                raise err from None
            return
        await self._record_success(job, started, now())

    def _prepare(self, row: asyncpg.Record, facts: dict[str, Any]) -> tuple[Message, Address]:
        if row["recipient_channels"] is None or not row["recipient_active"]:
            raise DeliveryError("recipient is no longer in the directory", permanent=True, tried=False)
        address = address_of(
            self.deps.sealer, row["community"], row["recipient_id"], row["recipient_channels"], row["sealed"]
        )
        ack_url = None
        if row["ack_id"]:
            expires = int(row["created_at"].timestamp() + self.settings.notify_ack_link_ttl_seconds)
            token = make_token(self.deps.link_key, row["community"], row["notification_id"], expires)
            ack_url = f"{self.settings.notify_public_url.rstrip('/')}/v1/ack/{token}"
        rendered = render(row["kind"], row["language"] or "zh", facts, ack_url)
        message = Message(
            notification_id=row["notification_id"],
            community=row["community"],
            subject_ref=row["subject_ref"],
            kind=row["kind"],
            title=rendered.title,
            text=rendered.text,
            markdown=rendered.markdown,
            short=rendered.short,
            urgent=row["urgent"],
            ack_url=ack_url,
            facts=facts,
        )
        return message, address

    # ------------------------------------------------------------------ recording

    async def _record_success(self, job: Job, started: datetime, confirmed: datetime) -> None:
        row = job.row
        attempt = job.attempts + 1
        if row["kind"] == "escalation" and row["source_recorded_at"] is not None:
            ESCALATION_DELIVERY.labels(row["channel"]).observe(
                max(0.0, (confirmed - row["source_recorded_at"]).total_seconds())
            )
        events = decide(job.notification, RecordDelivery(attempt, started, confirmed))
        version, last_seq = await append_steps(
            self.deps.store,
            events,
            job.version,
            lambda e: e.type == "NotificationDelivered",
            expected_seq=job.last_seq,
        )
        await self._mark_delivered(row["notification_id"], attempt, version, last_seq)
        job.attempts, job.version, job.last_seq, job.done = attempt, version, last_seq, True
        NOTIFICATIONS.labels(row["channel"], "delivered").inc()
        log.info(
            "delivered",
            notification_id=row["notification_id"],
            community=row["community"],
            channel=row["channel"],
            recipient=row["recipient_id"],
            attempt=attempt,
        )

    async def _record_failure(self, job: Job, err: DeliveryError, started: datetime, *, final: bool) -> None:
        row = job.row
        attempt = job.attempts + 1
        failed = RecordFailure(attempt, started, now(), err.message, tried=err.tried, final=final)
        events = decide(job.notification, failed)
        step = "NotificationDeadLettered" if final else "NotificationFailed"
        version, last_seq = await append_steps(
            self.deps.store,
            events,
            job.version,
            lambda e: e.type == step and e.data.attempt == attempt,  # type: ignore[attr-defined]
            expected_seq=job.last_seq,
        )
        async with self.deps.pool.acquire() as conn:
            await conn.execute(
                """UPDATE notify_deliveries SET attempts = $2, version = $3, last_error = $4, last_seq = $7,
                       updated_at = now(),
                       state = CASE WHEN $5 THEN 'dead' ELSE state END,
                       dead_at = CASE WHEN $5 THEN now() ELSE dead_at END,
                       lease_until = CASE WHEN $5 THEN NULL
                                          ELSE now() + make_interval(secs => $6) END
                   WHERE notification_id = $1""",
                row["notification_id"],
                attempt,
                version,
                err.message,
                final,
                float(self.settings.notify_lease_seconds),
                last_seq,
            )
        job.attempts, job.version, job.last_seq = attempt, version, last_seq
        NOTIFICATIONS.labels(row["channel"], "failed").inc()
        if final:
            job.done = True
            NOTIFICATIONS.labels(row["channel"], "dead_lettered").inc()
        log.warning(
            "dead_lettered" if final else "delivery_failed",
            notification_id=row["notification_id"],
            community=row["community"],
            channel=row["channel"],
            recipient=row["recipient_id"],
            attempt=attempt,
            error=err.message,
        )

    async def _fail(self, job: Job, err: DeliveryError, started: datetime) -> None:
        """Record a failed try outside the burst: dead when permanent or the budget is spent, else later."""
        spent = job.attempts + 1 - job.row["budget_from"]
        final = err.permanent or spent >= self.settings.notify_max_attempts
        await self._record_failure(job, err, started, final=final)
        if not final:
            await self._reschedule(job)

    async def _reschedule(self, job: Job) -> None:
        """The burst failed: back to pending after a persistent, jittered, growing backoff."""
        s = self.settings
        rounds = max(1, (job.attempts - job.row["budget_from"]) // s.notify_burst_attempts)
        delay = backoff_seconds(
            rounds, initial=s.notify_backoff_initial_seconds, maximum=s.notify_backoff_max_seconds, rng=_JITTER
        )
        async with self.deps.pool.acquire() as conn:
            await conn.execute(
                "UPDATE notify_deliveries SET state = 'pending', due_at = $2, lease_until = NULL, updated_at = now() "
                "WHERE notification_id = $1 AND state = 'sending'",
                job.id,
                now() + timedelta(seconds=delay),
            )
        job.done = True

    async def _release(self, job: Job) -> None:
        """Give a claimed row back (shutdown while it waited in a backoff)."""
        with contextlib.suppress(Exception):
            async with self.deps.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE notify_deliveries SET state = 'pending', due_at = now(), lease_until = NULL, "
                    "updated_at = now() WHERE notification_id = $1 AND state = 'sending'",
                    job.id,
                )

    async def _recover(self, job: Job) -> bool:
        """A row whose lease ran out: trust the event history over the row; True if nothing is left to do."""
        items = await stored(self.deps.store, NotificationSent, job.row["community"], job.id)
        folded = fold([item.event() for item in items], replace(job.notification, version=0))
        job.version, job.last_seq = folded.version, (items[-1].seq if items else 0)
        job.attempts = folded.attempts
        if folded.outcome is None:
            return False
        state = folded.outcome
        async with self.deps.pool.acquire() as conn:
            await conn.execute(
                "UPDATE notify_deliveries SET state = $2, attempts = $3, version = $4, last_seq = $5, "
                "lease_until = NULL, updated_at = now() WHERE notification_id = $1",
                job.id,
                state,
                job.attempts,
                job.version,
                job.last_seq,
            )
        job.done = True
        log.info("recovered", notification_id=job.id, state=state)
        return True


async def delivery_worker(runtime: Runtime[NotifyDeps]) -> None:
    """Background task: the delivery worker of this process."""
    await DeliveryWorker(runtime.deps).run()


async def delivery_outbox(runtime: Runtime[NotifyDeps]) -> OutboxStatus:
    """The deliveries still owed: being sent or due soon, waiting for a later time, and given up."""
    async with runtime.deps.pool.acquire(timeout=2) as conn:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'sending' OR (state = 'pending' AND due_at <= soon.at)) AS pending, "
            "count(*) FILTER (WHERE state = 'pending' AND due_at > soon.at) AS scheduled, "
            "count(*) FILTER (WHERE state = 'dead') AS dead "
            "FROM notify_deliveries, (SELECT now() + make_interval(secs => $1) AS at) soon "
            "WHERE state <> 'delivered'",
            DUE_SOON_SECONDS,
        )
    assert row is not None  # an aggregate query always returns its row
    return OutboxStatus("notify_deliveries", row["pending"], scheduled=row["scheduled"], dead=row["dead"])
