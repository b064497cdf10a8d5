"""Broker metrics: FastStream's ``NatsPrometheusMiddleware`` on gridwork's own message paths.

Operators get FastStream's standard broker families — ``faststream_received_messages_total``,
``…_received_processed_messages_duration_seconds``, ``…_received_messages_in_process``,
``…_published_messages_total``, ``…_published_messages_duration_seconds``, exceptions — with
``app_name`` = the service, so FastStream's dashboards and alerts work on gridwork unchanged.

Two things differ from dropping the middleware onto a FastStream subscriber, both deliberate:

* **No FastStream subscriber consumes the event stream.** A projection must fold a whole batch in
  one transaction with its checkpoint, ack only after commit, stay in stream order across a leader
  take-over and re-position its consumer on a gap; FastStream's batch subscriber measured
  ≈ 12,000 events/s here against the runner's ≈ 31,000/s and scoring's ≥ 15,000/s target. So the
  runner (``shared/projection.py``) passes each batch through the middleware's ``consume_scope``,
  and the event store (``shared/eventstore.py``) each append through its ``publish_scope``.
* **Bounded labels.** FastStream's NATS settings provider labels a message by its subject; our
  subjects name one aggregate each (``gw.<community>.visits.household.<id>.…``), which would make a
  time series per household — personal data in the metrics and an unbounded series count.
  :class:`BoundedNatsProvider` labels consumption by the consumer (the projection, as FastStream
  labels by handler) and publication by ``<context>`` (visits, issues, scoring, notify).

This leans on FastStream internals (the middleware's settings-provider factory, its scopes, the
publish command's type): written for the releases in :data:`FASTSTREAM_SUPPORTED`, which
pyproject bounds the same way.  On any other release the broker metrics stand down — a warning at
start-up, and every consume and publish runs without them — rather than break the message path.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import structlog
from faststream import ContextRepo
from faststream.message import StreamMessage
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.nats.response import NatsPublishCommand
from faststream.prometheus import ConsumeAttrs
from faststream.response import PublishType
from prometheus_client import REGISTRY, CollectorRegistry

T = TypeVar("T")


class ConsumedBatch:
    """What the runner hands the middleware: one fetched batch of a named consumer."""

    __slots__ = ("consumer", "count", "size")

    def __init__(self, consumer: str, count: int, size: int) -> None:
        self.consumer, self.count, self.size = consumer, count, size


class BoundedNatsProvider:
    """FastStream's metrics settings for NATS, labelled by consumer and context, never by subject."""

    __slots__ = ()
    messaging_system = "nats"

    def get_consume_attrs_from_message(self, msg: StreamMessage[Any]) -> ConsumeAttrs:
        batch: ConsumedBatch = msg.raw_message
        return {"destination_name": batch.consumer, "message_size": batch.size, "messages_count": batch.count}

    def get_publish_destination_name_from_cmd(self, cmd: NatsPublishCommand) -> str:
        return cmd.destination


_PROVIDER = BoundedNatsProvider()


class _Published(NatsPublishCommand):
    """A publish of ``count`` events of one context (the middleware counts ``batch_bodies``)."""

    def __init__(self, context: str, count: int) -> None:
        super().__init__(b"", subject=context, correlation_id="-", _publish_type=PublishType.PUBLISH)
        self._count = count

    @property
    def batch_bodies(self) -> tuple[Any, ...]:
        return (b"",) * self._count


class BoundedNatsPrometheusMiddleware(NatsPrometheusMiddleware):
    """``NatsPrometheusMiddleware`` with :class:`BoundedNatsProvider` as its settings provider."""

    def __init__(self, *, registry: CollectorRegistry, app_name: str) -> None:
        super().__init__(registry=registry, app_name=app_name)
        self._settings_provider_factory = lambda _msg: _PROVIDER


#: FastStream (major, minor) releases whose internals :class:`BrokerMetrics` was written against.
FASTSTREAM_SUPPORTED = ((0, 7),)


def faststream_supported() -> bool:
    """Whether the installed FastStream is a release the broker metrics were written for."""
    try:
        major, minor = (int(x) for x in version("faststream").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) in FASTSTREAM_SUPPORTED


class BrokerMetrics:
    """One service's broker metrics (``app_name``), shared by its event store and projection runners."""

    def __init__(self, app_name: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.app_name = app_name
        self._commands: dict[tuple[str, int], _Published] = {}
        self._scope: Any = None
        if not faststream_supported():
            structlog.get_logger("gridwork.nats").warning(
                "broker_metrics_disabled", written_for=[f"{a}.{b}" for a, b in FASTSTREAM_SUPPORTED]
            )
            return
        self._middleware = BoundedNatsPrometheusMiddleware(registry=registry, app_name=app_name)
        # The scope keeps no per-message state with our provider: one serves every call.
        self._scope = self._middleware(None, context=ContextRepo())

    async def consume(self, consumer: str, sizes: Sequence[int], work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` (folding one batch of messages of ``sizes`` bytes) inside ``consume_scope``."""
        if self._scope is None:
            return await work()
        batch = ConsumedBatch(consumer, len(sizes), sum(sizes))
        message: StreamMessage[Any] = StreamMessage(raw_message=batch, body=b"")

        async def call_next(_msg: Any) -> T:
            return await work()

        return await self._scope.consume_scope(call_next, message)  # type: ignore[no-any-return]

    async def publish(self, context: str, count: int, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` (publishing ``count`` events of ``context``) inside ``publish_scope``."""
        if self._scope is None:
            return await work()
        command = self._commands.get((context, count))
        if command is None:  # the command is only read by the scope: one per (context, count) serves
            command = _Published(context, count)
            if len(self._commands) < 256:
                self._commands[(context, count)] = command

        async def call_next(_cmd: Any) -> T:
            return await work()

        return await self._scope.publish_scope(call_next, command)  # type: ignore[no-any-return]

    async def publish_many(self, counts: Mapping[str, int], work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` publishing ``counts[context]`` events of each context as one pipelined batch."""
        for context, count in counts.items():
            work = functools.partial(self.publish, context, count, work)
        return await work()


#: The process-wide default, for tools outside a service (CLI, benchmarks).
DEFAULT = BrokerMetrics("gridwork")
