"""Metrics of the issues service (``gridwork_issues_…``; labels are small known sets).

Counters count what this process appended.  The board gauges (open, overdue, hotline feedback
pending) describe the shared read model, not the process: :mod:`services.issues.reactions.gauges` reads them
from PostgreSQL in a background task and publishes a snapshot here; scraping only reads that
snapshot, so ``/metrics`` never waits on the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily

from shared.metrics import SnapshotGauges

ISSUE_EVENTS = Counter("gridwork_issues_events_total", "Issue events appended by the issues service", ["type"])
ESCALATIONS = Counter(
    "gridwork_issues_escalations_total",
    "Issues escalated up the ladder or handed to an outside agency (target none: no agency)",
    ["reason", "to_level", "target"],
)
TIMERS_FIRED = Counter("gridwork_issues_timers_fired_total", "Deadline timers fired", ["kind", "outcome"])
HOTLINE_FEEDBACK = Counter(
    "gridwork_issues_hotline_feedback_attempts_total", "Feedback POSTs to the 12345 hotline", ["outcome"]
)
FILED_PROBLEMS = Counter(
    "gridwork_issues_filed_problems_total", "Problems from visits, sessions and councils filed as issues", ["source"]
)

#: The label value of an escalation that names no outside agency (a climb within the community).
NO_TARGET = "none"

BoardKey = tuple[str, str, str]  # (community, category, level)


@dataclass(frozen=True)
class BoardSnapshot:
    """The board gauges at one moment: counts per (community, category, level) and per community."""

    open: dict[BoardKey, int] = field(default_factory=dict)
    overdue: dict[BoardKey, int] = field(default_factory=dict)
    feedback_pending: dict[str, int] = field(default_factory=dict)


class BoardGauges(SnapshotGauges[BoardSnapshot]):
    """Exposes the latest published :class:`BoardSnapshot` as three gauges."""

    def __init__(self) -> None:
        super().__init__(BoardSnapshot())

    def families(self, snapshot: BoardSnapshot) -> list[GaugeMetricFamily]:
        labels = ["community", "category", "level"]
        open_ = GaugeMetricFamily("gridwork_issues_open", "Open issues (waiting for someone to act)", labels=labels)
        overdue = GaugeMetricFamily(
            "gridwork_issues_overdue", "Open issues past their deadline at their current level", labels=labels
        )
        pending = GaugeMetricFamily(
            "gridwork_hotline_feedback_pending",
            "Status feedback owed to the 12345 hotline and not yet delivered",
            labels=["community"],
        )
        for key, value in sorted(snapshot.open.items()):
            open_.add_metric(list(key), value)
        for key, value in sorted(snapshot.overdue.items()):
            overdue.add_metric(list(key), value)
        for community, value in sorted(snapshot.feedback_pending.items()):
            pending.add_metric([community], value)
        return [open_, overdue, pending]


BOARD_GAUGES = BoardGauges()
REGISTRY.register(BOARD_GAUGES)
