"""Domain metrics shared by every service.  One ``gridwork_`` prefix, base units, bounded labels.

Labels are never a household or a person: community, category, level, target, channel,
projection, event type — each a small, known set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

S = TypeVar("S")

EVENTS_APPENDED = Counter("gridwork_events_appended_total", "Events appended to the event store", ["type"])
APPEND_CONFLICTS = Counter(
    "gridwork_append_conflicts_total", "Appends refused because the aggregate had moved on", ["context"]
)
PROJECTION_EVENTS = Counter("gridwork_projection_events_total", "Events folded by a projection", ["projection"])
PROJECTION_CHECKPOINT = Gauge(
    "gridwork_projection_checkpoint", "Stream sequence a projection has folded up to", ["projection"]
)
PROJECTION_LAG_EVENTS = Gauge(
    "gridwork_projection_lag_events", "Events waiting to be folded by a projection", ["projection"]
)
PROJECTION_LAG_SECONDS = Gauge(
    "gridwork_projection_lag_seconds", "Age of the last folded event while events wait", ["projection"]
)
PROJECTION_DEAD_LETTERS = Counter(
    "gridwork_projection_dead_letters_total", "Messages a projection dead-lettered", ["projection"]
)
PROJECTION_BATCH_SECONDS = Histogram(
    "gridwork_projection_batch_seconds",
    "Time to fold and commit one batch",
    ["projection"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Broker-level metrics are FastStream's (shared/nats/broker_metrics.py: faststream_received_* and
# faststream_published_* with app_name = the service); this one is ours: a single event of a
# batch failing and being retried in place.
MESSAGES_NAKED = Counter(
    "gridwork_messages_naked_total", "Messages NAKed for redelivery after a failure", ["projection"]
)


class SnapshotGauges(Collector, Generic[S]):
    """Gauges read from a read model: a background task publishes a snapshot, a scrape only shows it.

    Publishers are keyed by owner (one per running service): a process normally has one, but tests
    run several apps in one interpreter, and a stopped app must take its numbers with it.  Shows
    the most recently published snapshot; nothing when no owner publishes (another instance does).
    """

    def __init__(self, empty: S) -> None:
        self._empty = empty
        self._snapshots: dict[object, S] = {}

    def publish(self, owner: object, snapshot: S) -> None:
        """Make ``snapshot`` what the next scrape shows (replacing the owner's previous one)."""
        self._snapshots.pop(owner, None)
        self._snapshots[owner] = snapshot

    def withdraw(self, owner: object) -> None:
        """Stop showing the owner's numbers (it stopped, or another instance reports them now)."""
        self._snapshots.pop(owner, None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.families(self._empty))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._snapshots:
            return iter(())
        return iter(self.families(next(reversed(self._snapshots.values()))))

    def families(self, snapshot: S) -> list[GaugeMetricFamily]:
        raise NotImplementedError
