"""The event store: NATS JetStream, one stream per namespace, one subject per aggregate.

Subjects are ``<ns>.<community>.<context>.<aggregate_type>.<aggregate_id>.<EventType>`` so that
one community, one context, one aggregate or one event type can be read alone with a filter.

* ``append`` gives optimistic concurrency per aggregate through
  ``Nats-Expected-Last-Subject-Sequence`` on the aggregate's wildcard subject, and dedupe through
  ``Nats-Msg-Id`` = event id.  Several events for one aggregate go in one atomic batch, so an
  aggregate never holds half of a command's events.
* A retried append whose events are already stored is reported as a duplicate, not a conflict,
  however long after the dedupe window it comes: the aggregate's own history is the proof.
* ``append_many`` pipelines appends for many aggregates with a bounded window of in-flight acks.
* ``load`` folds an aggregate's events, starting from a JetStream KV snapshot when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from pydantic import BaseModel

from .events import Event, decode, encode
from .metrics import APPEND_CONFLICTS, EVENTS_APPENDED
from .nats import patches
from .nats.broker_metrics import DEFAULT as DEFAULT_BROKER_METRICS
from .nats.broker_metrics import BrokerMetrics
from .settings import Settings

HDR_MSG_ID = "Nats-Msg-Id"
HDR_EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
HDR_EXPECTED_SUBJ = "Nats-Expected-Last-Subject-Sequence-Subject"
HDR_VERSION = "Gw-Version"
ERR_WRONG_LAST_SEQUENCE = 10071
#: The same refusal from a replicated stream (another append to the subject is still in flight).
ERR_WRONG_LAST_SEQUENCE_CONSTANT = 10164
WRONG_LAST_SEQUENCE = (ERR_WRONG_LAST_SEQUENCE, ERR_WRONG_LAST_SEQUENCE_CONSTANT)
ERR_BATCH_DUPLICATE_ID = 10201

S = TypeVar("S")
log = structlog.get_logger("gridwork.eventstore")


class ConcurrencyError(Exception):
    """Someone else changed the aggregate since the caller read it (HTTP 409)."""

    def __init__(self, aggregate: str, expected: int, actual: int | None) -> None:
        super().__init__(f"{aggregate}: expected version {expected}, found {actual}")
        self.aggregate = aggregate
        self.expected = expected
        self.actual = actual


class AppendError(Exception):
    """JetStream refused an append for a reason other than a concurrency conflict."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the stream: its position plus the raw payload."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str] | None = None
    timestamp_ns: int = 0  # when JetStream stored it

    @property
    def type(self) -> str:
        return self.subject.rsplit(".", 1)[-1]

    @property
    def community(self) -> str:
        return self.subject.split(".", 2)[1]

    def event(self) -> Event:
        return decode(self.data, self.type)


@dataclass(frozen=True, slots=True)
class AppendResult:
    aggregate: str
    first_seq: int
    last_seq: int
    version: int
    duplicate: bool = False


@dataclass(frozen=True)
class Aggregate(Generic[S]):
    """How to rebuild one kind of aggregate: its initial state and the pure ``evolve``."""

    context: str
    kind: str
    initial: Callable[[], S]
    evolve: Callable[[S, Event], S]
    #: A pydantic model type for the state, so snapshots can be stored; None disables them.
    state_type: type[BaseModel] | None = None


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    state: S
    version: int
    last_seq: int


def event_headers(event: Event, filt: str) -> dict[str, str]:
    """The headers an append puts on ``event``: its dedupe id, its version, and the aggregate's
    wildcard subject the expected-sequence check reads (``filt``, :func:`aggregate_filter`)."""
    return {HDR_MSG_ID: str(event.id), HDR_VERSION: str(event.aggregate_version), HDR_EXPECTED_SUBJ: filt}


def aggregate_filter(namespace: str, community: str, context: str, kind: str, aggregate_id: str) -> str:
    """The wildcard subject that holds every event of one aggregate."""
    return f"{namespace}.{community}.{context}.{kind}.{aggregate_id}.*"


def _differs(wanted: StreamConfig, current: StreamConfig) -> list[str]:
    """The settings ``wanted`` asks for that the stream as stored lacks (unset fields are the server's)."""
    stored = current.as_dict()
    return [key for key, value in wanted.as_dict().items() if stored.get(key) != value]


def _not_managed(namespace: str) -> RuntimeError:
    return RuntimeError(
        f"the streams of namespace {namespace!r} are missing or differ from the settings, and this NATS "
        "connection may not create or change them: run `gridwork cluster streams` (or `gridwork up`) as "
        "the NATS admin first"
    )


@contextlib.contextmanager
def _connection_lost() -> Iterator[None]:
    """A write that met the connection being replaced is an :class:`AppendError` (503, send it
    again), not a crash: while nats-py reconnects — a stream leader died — a request can be written
    to the transport it is closing, and asyncio answers with a bare RuntimeError ("the handler is
    closed") or an OSError.  Nothing was stored that a retry would store twice: appends are
    idempotent by event id."""
    try:
        yield
    except (RuntimeError, OSError) as err:
        raise AppendError(f"the connection to NATS was lost during the write: {err}") from err


class EventStore:
    """Append and read events on JetStream.  Built by the service's lifespan with a live connection."""

    def __init__(self, nc: NATS, settings: Settings, broker_metrics: BrokerMetrics | None = None) -> None:
        self.nc = nc
        #: FastStream's broker metrics (``faststream_published_messages_*``) under the service's name.
        self.broker_metrics = broker_metrics or DEFAULT_BROKER_METRICS
        self.js: JetStreamContext = nc.jetstream(timeout=10)
        self._mux = _AckMux(nc, settings.publish_window)
        self.settings = settings
        self.ns = settings.namespace
        self.stream = settings.stream_name()
        self._kv: Any = None
        self._batches = asyncio.Semaphore(32)  # atomic batches in flight (server allows 50/stream)
        #: What a service does to its events before they are stored: the vault's sealing of free
        #: text (``shared.vault.TextVault.seal_events``); None stores them as they are.
        self.seal: Callable[[Sequence[Event]], Awaitable[list[Event]]] | None = None

    # ------------------------------------------------------------------ setup

    async def ensure_streams(self, manage: bool = True) -> None:
        """Make sure the event stream, the dead-letter stream and the snapshot bucket exist as configured.

        Each is looked up first and created or updated only when missing or different, so a
        start against streams that are as configured changes nothing.  ``manage=False`` is a
        service under its own NATS user, which may look streams up but not manage them (the admin
        — ``gridwork up``, the migration job — owns them): a missing stream is an error, one
        configured otherwise than this process's settings only a warning.
        """
        s = self.settings
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.ns}.>"],
            storage=StorageType.FILE,
            num_replicas=s.stream_replicas,
            max_age=s.stream_max_age_days * 86400,
            duplicate_window=s.duplicate_window_seconds,
            allow_direct=True,
            allow_atomic=True,
        )
        dlq = StreamConfig(
            name=s.dlq_stream_name(),
            subjects=[f"{self.ns}dlq.>"],
            storage=StorageType.FILE,
            num_replicas=s.stream_replicas,
            # A dead letter is a copy of an event and its error: kept for the operators' replay, not forever.
            max_age=s.deadletter_max_age_days * 86400,
            duplicate_window=s.duplicate_window_seconds,
            allow_direct=True,
        )
        bucket = s.snapshot_bucket()
        try:
            for cfg in (config, dlq):
                try:
                    current = (await self.js.stream_info(cfg.name)).config  # type: ignore[arg-type]
                except nats.js.errors.NotFoundError:
                    if not manage:
                        raise _not_managed(self.ns) from None
                    await self.js.add_stream(cfg)
                    continue
                differs = _differs(cfg, current)
                if differs and manage:
                    await self.js.update_stream(cfg)
                elif differs:
                    log.warning("stream_config_differs", stream=cfg.name, settings=differs)
            try:
                self._kv = await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                if not manage:
                    raise _not_managed(self.ns) from None
                self._kv = await self.js.create_key_value(
                    KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, replicas=s.stream_replicas)
                )
        except nats.errors.TimeoutError as err:
            # A NATS user without the right to manage streams gets no answer, only a timeout.
            raise _not_managed(self.ns) from err

    async def _snapshots(self) -> Any:
        if self._kv is None:
            self._kv = await self.js.key_value(self.settings.snapshot_bucket())
        return self._kv

    async def last_sequence(self) -> int:
        """The stream's last sequence number (0 when empty)."""
        info = await self.js.stream_info(self.stream)
        return info.state.last_seq

    # ------------------------------------------------------------------ append

    def _filter(self, event: Event) -> str:
        return aggregate_filter(self.ns, event.community, event.context, event.aggregate_type, event.aggregate_id)

    async def append(
        self, events: Sequence[Event], expected_version: int, *, expected_seq: int | None = None
    ) -> AppendResult:
        """Append one aggregate's new events after ``expected_version``.

        Raises :class:`ConcurrencyError` when the aggregate is at another version, unless the same
        events (by id) are already stored, which is reported as ``duplicate=True``.
        ``expected_seq``, when the caller knows it from :meth:`load`, saves one round trip.
        """
        if not events:
            raise ValueError("nothing to append")
        if self.seal is not None:
            events = await self.seal(events)
        return await self._append(events, expected_version, expected_seq=expected_seq)

    async def _append(
        self, events: Sequence[Event], expected_version: int, *, expected_seq: int | None = None
    ) -> AppendResult:
        first = events[0]
        filt = self._filter(first)
        for e in events[1:]:
            if self._filter(e) != filt:
                raise ValueError("append() takes events of one aggregate; use append_many()")
        if expected_seq is None:
            with _connection_lost():
                expected_seq = await self._seq_of_version(filt, expected_version, events)
            if expected_seq < 0:
                return await self._duplicate_or_conflict(filt, expected_version, events)
        stamped = [e.model_copy(update={"aggregate_version": expected_version + i + 1}) for i, e in enumerate(events)]

        async def publish() -> Any:
            if len(stamped) == 1:
                return await self._publish_one(stamped[0], filt, expected_seq)
            return await self._publish_atomic(stamped, filt, expected_seq)

        try:
            with _connection_lost():
                last = await self.broker_metrics.publish(first.context, len(stamped), publish)
        except PublishRejected as err:
            if err.err_code in (*WRONG_LAST_SEQUENCE, ERR_BATCH_DUPLICATE_ID):
                return await self._duplicate_or_conflict(filt, expected_version, events)
            raise AppendError(str(err)) from err
        if last.duplicate:
            return AppendResult(
                filt, last.seq - len(events) + 1, last.seq, expected_version + len(events), duplicate=True
            )
        for event in events:
            EVENTS_APPENDED.labels(event.type).inc()
        return AppendResult(filt, last.seq - len(events) + 1, last.seq, expected_version + len(events))

    async def append_many(
        self, batches: Sequence[tuple[Sequence[Event], int]], window: int | None = None
    ) -> list[AppendResult | Exception]:
        """Append for many aggregates at once with a bounded window of in-flight acks.

        Returns one result per input, in order: an :class:`AppendResult` or the exception
        (typically :class:`ConcurrencyError`) for that aggregate; one failure stops no other.
        The common case, one event starting a new aggregate, is pipelined without a round trip
        per event; the rest run as concurrent :meth:`append` calls.
        """
        gate = asyncio.Semaphore(window or self.settings.publish_window)
        if self.seal is not None:  # one pass (and one write to the vault) for the whole batch
            flat = await self.seal([e for events, _ in batches for e in events])
            at, resealed = 0, []
            for events, expected in batches:
                resealed.append((flat[at : at + len(events)], expected))
                at += len(events)
            batches = resealed
        results: list[AppendResult | Exception | None] = [None] * len(batches)
        pending: list[tuple[int, asyncio.Future[Any]]] = []

        async def one(i: int, events: Sequence[Event], expected: int) -> None:
            async with gate:
                try:
                    if not events:
                        raise ValueError("nothing to append")
                    results[i] = await self._append(events, expected)
                except (ConcurrencyError, AppendError, ValueError) as err:
                    results[i] = err

        slow: list[Any] = []
        pipelined: list[tuple[int, Event]] = []
        for i, (events, expected) in enumerate(batches):
            if len(events) == 1 and expected == 0:
                pipelined.append((i, events[0].model_copy(update={"aggregate_version": 1})))
            else:
                slow.append(one(i, events, expected))

        async def send_pipelined() -> None:
            for i, event in pipelined:
                pending.append((i, await self._send_one(event, self._filter(event), 0)))
            # One deadline for the whole window instead of a timer per event.
            await asyncio.wait([f for _, f in pending], timeout=30)

        if slow:
            await asyncio.gather(*slow)
        if pipelined:
            counts = Counter(event.context for _, event in pipelined)
            with _connection_lost():
                await self.broker_metrics.publish_many(counts, send_pipelined)
        appended: Counter[str] = Counter()
        for i, fut in pending:
            events = batches[i][0]
            if not fut.done():
                fut.cancel()
                results[i] = AppendError("no ack from JetStream within 30 s")
                continue
            err = fut.exception()
            if err is None:
                ack = fut.result()
                results[i] = AppendResult(self._filter(events[0]), ack.seq, ack.seq, 1, duplicate=ack.duplicate)
                if not ack.duplicate:
                    appended[events[0].type] += 1
            elif isinstance(err, PublishRejected) and err.err_code in WRONG_LAST_SEQUENCE:
                try:
                    results[i] = await self._duplicate_or_conflict(self._filter(events[0]), 0, events)
                except ConcurrencyError as conflict:
                    results[i] = conflict
            else:
                results[i] = AppendError(str(err))
        for etype, count in appended.items():
            EVENTS_APPENDED.labels(etype).inc(count)
        return results  # type: ignore[return-value]

    def _headers(self, event: Event, filt: str) -> dict[str, str]:
        return event_headers(event, filt)

    async def _send_one(self, event: Event, filt: str, expected_seq: int) -> asyncio.Future[Any]:
        """Publish one event with its concurrency and dedupe headers; the future resolves to its ack."""
        headers = self._headers(event, filt)
        headers[HDR_EXPECTED_SEQ] = str(expected_seq)
        return await self._mux.publish(event.subject(self.ns), encode(event), headers)

    async def _publish_one(self, event: Event, filt: str, expected_seq: int) -> Any:
        return await asyncio.wait_for(await self._send_one(event, filt, expected_seq), 30)

    async def _publish_atomic(self, events: Sequence[Event], filt: str, expected_seq: int) -> Any:
        batch_id = f"{events[0].id}"
        async with self._batches:
            for i, event in enumerate(events, start=1):
                headers = self._headers(event, filt)
                headers["Nats-Batch-Id"] = batch_id
                headers["Nats-Batch-Sequence"] = str(i)
                if i == 1:
                    headers[HDR_EXPECTED_SEQ] = str(expected_seq)
                else:
                    del headers[HDR_EXPECTED_SUBJ]
                if i < len(events):
                    await self.nc.publish(event.subject(self.ns), encode(event), headers=headers)
                    continue
                headers["Nats-Batch-Commit"] = "1"
                reply = await self.nc.request(event.subject(self.ns), encode(event), timeout=10, headers=headers)
        return _parse_ack(reply)

    async def _seq_of_version(self, filt: str, expected_version: int, events: Sequence[Event]) -> int:
        """The stream sequence of the aggregate's event at ``expected_version`` (-1: mismatch)."""
        if expected_version == 0:
            return 0
        try:
            last = await self.js.get_last_msg(self.stream, filt, direct=True)
        except nats.js.errors.NotFoundError:
            return -1
        version = int((last.headers or {}).get(HDR_VERSION, "0"))
        return last.seq if version == expected_version and last.seq is not None else -1

    async def _duplicate_or_conflict(self, filt: str, expected_version: int, events: Sequence[Event]) -> AppendResult:
        stored = await self.read(filt)
        ids = {str(e.id) for e in events}
        mine = [s for s in stored if (s.headers or {}).get(HDR_MSG_ID) in ids]
        if len(mine) == len(ids):
            return AppendResult(
                filt,
                mine[0].seq,
                mine[-1].seq,
                int((mine[-1].headers or {}).get(HDR_VERSION, "0")),
                duplicate=True,
            )
        actual = int((stored[-1].headers or {}).get(HDR_VERSION, "0")) if stored else 0
        APPEND_CONFLICTS.labels(events[0].context).inc()
        raise ConcurrencyError(filt, expected_version, actual)

    # ------------------------------------------------------------------ read

    async def read(self, subject_filter: str, after_seq: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events on ``subject_filter`` after ``after_seq``, in stream order (batched direct get)."""
        out: list[StoredEvent] = []
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            start = after_seq + 1
            while True:
                want = 256 if limit is None else min(256, limit - len(out))
                if want <= 0:
                    break
                req = {"seq": start, "next_by_subj": subject_filter, "batch": want}
                await self.nc.publish(f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(req).encode(), reply=inbox)
                pending = 0
                got = 0
                while True:
                    msg = await sub.next_msg(timeout=10)
                    hdrs = msg.headers or {}
                    status = hdrs.get("Status")
                    if status:
                        if status in ("404", "408", "204"):
                            pending = int(hdrs.get("Nats-Num-Pending", "0") or 0)
                            break
                        raise AppendError(f"direct get failed: {status} {hdrs.get('Description')}")
                    seq = int(hdrs["Nats-Sequence"])
                    out.append(StoredEvent(seq, hdrs["Nats-Subject"], msg.data, hdrs))
                    start = seq + 1
                    got += 1
                    if got == want:
                        pending = int(hdrs.get("Nats-Num-Pending", "0") or 0)
                        # the server still sends an EOB marker after a full batch
                if got == 0 or pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return out

    async def load(self, spec: Aggregate[S], community: str, aggregate_id: str) -> Loaded[S]:
        """Rebuild an aggregate: snapshot (if any) plus the events after it, folded by ``evolve``."""
        filt = aggregate_filter(self.ns, community, spec.context, spec.kind, aggregate_id)
        state, version, seq = spec.initial(), 0, 0
        key = f"{community}.{spec.context}.{spec.kind}.{aggregate_id}"
        if spec.state_type is not None:
            kv = await self._snapshots()
            try:
                entry = await kv.get(key)
                snap = json.loads(entry.value)
                state = spec.state_type.model_validate(snap["state"])  # type: ignore[assignment]
                version, seq = snap["version"], snap["seq"]
            except nats.js.errors.KeyNotFoundError:
                pass
        stored = await self.read(filt, after_seq=seq)
        for item in stored:
            state = spec.evolve(state, item.event())
        if stored:
            version = int((stored[-1].headers or {}).get(HDR_VERSION, version + len(stored)))
            seq = stored[-1].seq
            if spec.state_type is not None and len(stored) >= self.settings.snapshot_every:
                snap = {"version": version, "seq": seq, "state": state.model_dump(mode="json")}  # type: ignore[attr-defined]
                await (await self._snapshots()).put(key, json.dumps(snap).encode())
        return Loaded(state, version, seq)


@dataclass(frozen=True, slots=True)
class _Ack:
    seq: int
    duplicate: bool


class PublishRejected(Exception):
    """JetStream answered a publish with an error."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{code}/{err_code}: {description}")
        self.code = code
        self.err_code = err_code
        self.description = description


_ACK_SEQ = re.compile(rb'"seq":(\d+)')


def _parse_ack(msg: Any) -> _Ack:
    hdrs = msg.headers or {}
    if hdrs.get("Status") == "503":
        raise PublishRejected(503, 0, "no stream is listening on this subject")
    data = msg.data
    # The common answer, {"stream":…,"seq":N}, read without a JSON parse; anything else — an error,
    # a duplicate (nats-server writes `"duplicate": true`, with a space) — is parsed in full.
    if b'"error"' not in data and b'"duplicate"' not in data and (seq := _ACK_SEQ.search(data)) is not None:
        return _Ack(seq=int(seq.group(1)), duplicate=False)
    resp = json.loads(data)
    if "error" in resp:
        err = resp["error"]
        raise PublishRejected(err.get("code", 0), err.get("err_code", 0), err.get("description", ""))
    return _Ack(seq=resp["seq"], duplicate=bool(resp.get("duplicate")))


class _AckMux:
    """Pipelined JetStream publishes: one reply subscription, one future per in-flight message.

    (nats-py's ``publish_async`` loses the future when the server answers with an error, so we
    keep our own.)  At most ``window`` publishes wait for their ack at any time.
    """

    def __init__(self, nc: NATS, window: int) -> None:
        self.nc = nc
        self.window = asyncio.Semaphore(window)
        self.futures: dict[str, asyncio.Future[_Ack]] = {}
        self.prefix = ""
        self.counter = 0
        self._ready: asyncio.Lock = asyncio.Lock()
        self._framed = patches.can_frame(nc)  # asked once per connection, not per publish

    async def _start(self) -> None:
        async with self._ready:
            if not self.prefix:
                prefix = self.nc.new_inbox()
                await self.nc.subscribe(prefix + ".*", cb=self._on_reply)
                self.prefix = prefix

    async def _on_reply(self, msg: Any) -> None:
        fut = self.futures.pop(msg.subject[len(self.prefix) + 1 :], None)
        if fut is None or fut.done():
            return
        try:
            fut.set_result(_parse_ack(msg))
        except PublishRejected as err:
            fut.set_exception(err)

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[_Ack]:
        if not self.prefix:
            await self._start()
        await self.window.acquire()
        self.counter += 1
        token = str(self.counter)
        fut: asyncio.Future[_Ack] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda _f: self.window.release())
        self.futures[token] = fut
        try:
            reply = f"{self.prefix}.{token}"
            if self._framed:
                await patches.publish_framed(self.nc, subject, payload, reply, headers)
            else:
                await self.nc.publish(subject, payload, reply=reply, headers=headers)
        except Exception:
            self.futures.pop(token, None)
            fut.cancel()
            raise
        return fut


#: The NATS user that manages streams (deploy/nats/permissions.toml); every other user only looks.
ADMIN_USER = "admin"


def nats_credentials(settings: Settings, user: str | None = None) -> tuple[str, str] | None:
    """The NATS user and password a connection logs in with, or None for an open server.

    The user is ``user`` if given, else ``settings.nats_user`` (production: one per service), else
    ``admin`` when the settings know every user's password (the embedded stack's tools, the tests).
    Without any of them the connection sends no credentials, or those in ``GRIDWORK_NATS_URL``.
    """
    chosen = user or settings.nats_user or (ADMIN_USER if ADMIN_USER in settings.nats_passwords else None)
    if chosen is None:
        return None
    password = settings.nats_passwords.get(chosen)
    if password is None and chosen == settings.nats_user:
        password = settings.nats_password
    if password is None:
        raise RuntimeError(f"no password for NATS user {chosen!r} (set GRIDWORK_NATS_PASSWORD)")
    return chosen, password


async def connect(settings: Settings, name: str, user: str | None = None) -> NATS:
    """Connect to NATS with reconnects forever (a service outlives a server restart).

    Logs in as :func:`nats_credentials` chooses (or as the user in the URL), with that user's own
    inbox prefix; ``settings.nats_tls_ca`` (when set) is the only CA the connection trusts for
    ``tls://`` servers.
    """
    if not settings.nats_url:
        raise RuntimeError("GRIDWORK_NATS_URL is not set (run `gridwork up` or set it)")
    servers = [u.strip() for u in settings.nats_url.split(",") if u.strip()]
    options: dict[str, Any] = {}
    credentials = nats_credentials(settings, user)
    if credentials is not None:
        # explicit options win over credentials in the URL (nats-py), so one URL serves every user
        options["user"], options["password"] = credentials
    login = credentials[0] if credentials is not None else urlsplit(servers[0]).username if servers else None
    if login:
        # a service user may read replies on its own inbox prefix only (deploy/nats/permissions.toml)
        from .nats.users import inbox_prefix

        options["inbox_prefix"] = inbox_prefix(login)
    if settings.nats_tls_ca is not None:
        from .nats.users import tls_trust

        options["tls"] = tls_trust(settings.nats_tls_ca)
    return await nats.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        **options,
    )
