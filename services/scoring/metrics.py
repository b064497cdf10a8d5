"""The scoring service's own metrics: periods closed, closing runs, and the 5+1 completion gauge.

``gridwork_quota_completion_ratio``: for every community and period kind (daily, weekly, monthly,
quarterly, yearly), the mean over its grid workers of the board's completion — quota items met
over items due so far in the period that contains today (Asia/Shanghai).  Like the issues board
gauges, the numbers describe the shared read model: only the instance that folds the scoring
projection publishes them (``reactions.refresh_completion_gauges``); a scrape shows the last
snapshot.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from shared.metrics import SnapshotGauges

PERIODS_CLOSED = Counter(
    "gridwork_scoring_periods_closed_total",
    "Worker-periods closed (QuotaPeriodClosed appended), first closings and corrections",
    ["period", "closing"],
)
CLOSE_RUN_SECONDS = Histogram(
    "gridwork_scoring_close_run_seconds", "Time for one closing run", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)

#: The ``period`` label of each period kind (the dashboards select ``period="daily"``, …).
PERIOD_LABELS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly", "year": "yearly"}

Completion = dict[tuple[str, str], float]  # (community, period kind) → ratio 0..1


class CompletionGauges(SnapshotGauges[Completion]):
    """``gridwork_quota_completion_ratio`` from the last published snapshot."""

    def __init__(self) -> None:
        super().__init__({})

    def families(self, snapshot: Completion) -> list[GaugeMetricFamily]:
        """The gauge's series: one per community and period kind of the snapshot."""
        family = GaugeMetricFamily(
            "gridwork_quota_completion_ratio",
            "Mean share of due 5+1 quota items met by the community's grid workers in the current period",
            labels=["community", "period"],
        )
        for (community, kind), ratio in sorted(snapshot.items()):
            family.add_metric([community, PERIOD_LABELS[kind]], ratio)
        return [family]


COMPLETION = CompletionGauges()
REGISTRY.register(COMPLETION)
