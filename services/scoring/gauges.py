"""``gridwork_quota_completion_ratio``: each community's 5+1 completion in the current periods.

For every community and period kind (daily, weekly, monthly, quarterly, yearly), the mean over its
grid workers of the board's completion — quota items met over items due so far in the period that
contains today (Asia/Shanghai) — the number the community board shows per worker.  A period with
nothing due yet (a holiday, the first morning of a week before its due day) reports no series
rather than a misleading 0 or 1.

Like the issues board gauges, the numbers describe the shared read model: only the instance that
folds the scoring projection reports them; a background task reads the board every
``scoring_gauge_refresh_seconds`` and a scrape only shows the last snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime

import asyncpg
import structlog
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from shared.db import Conn
from shared.metrics import SnapshotGauges
from shared.service import Runtime

from .calendar import KINDS, local_day, period_of
from .domain import RuleSet
from .projections import SCHEMA
from .queries import community_board
from .settings import ScoringSettings

log = structlog.get_logger("gridwork.scoring")

#: The ``period`` label of each period kind (the dashboards select ``period="daily"``, …).
PERIOD_LABELS = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly", "year": "yearly"}

Completion = dict[tuple[str, str], float]  # (community, period label) → ratio 0..1


class CompletionGauges(SnapshotGauges[Completion]):
    def __init__(self) -> None:
        super().__init__({})

    def families(self, snapshot: Completion) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "gridwork_quota_completion_ratio",
            "Mean share of due 5+1 quota items met by the community's grid workers in the current period",
            labels=["community", "period"],
        )
        for (community, period), ratio in sorted(snapshot.items()):
            family.add_metric([community, period], ratio)
        return [family]


COMPLETION = CompletionGauges()
REGISTRY.register(COMPLETION)


async def completion_ratios(conn: Conn | asyncpg.Pool, rules: RuleSet, today: date) -> Completion:
    """The completion of every known community in each period kind that contains ``today``."""
    communities = await conn.fetch(
        f"""SELECT community FROM {SCHEMA}.community
            UNION SELECT DISTINCT community FROM {SCHEMA}.roster WHERE role = 'grid_worker'"""
    )
    ratios: Completion = {}
    for (community,) in communities:
        for kind in KINDS:
            board = await community_board(conn, rules, community, period_of(kind, today), today)
            done = [w["completion"] for w in board["workers"] if w["completion"] is not None]
            if done:
                ratios[(community, PERIOD_LABELS[kind])] = round(sum(done) / len(done), 4)
    return ratios


async def refresh_completion_gauges(runtime: Runtime, projection: str, clock: Callable[[], datetime]) -> None:
    """Background task: keep ``gridwork_quota_completion_ratio`` current while this instance folds."""
    settings = runtime.settings
    interval = settings.scoring_gauge_refresh_seconds if isinstance(settings, ScoringSettings) else 15.0
    owner = object()
    try:
        while True:
            runner = runtime.runners.get(projection)
            try:
                if runner is not None and runner.role == "active":
                    rules: RuleSet = runtime.state["rules"]
                    COMPLETION.publish(owner, await completion_ratios(runtime.pool, rules, local_day(clock())))
                else:
                    COMPLETION.withdraw(owner)
            except Exception as err:  # numbers we cannot read are not reported: a gap, not a stale value
                COMPLETION.withdraw(owner)
                log.warning("completion_gauges_failed", error=repr(err))
            await asyncio.sleep(interval)
    finally:
        COMPLETION.withdraw(owner)
