"""The scoring service's background loops: the period closer and the completion gauges.

* :func:`close_periods` — every ``scoring_close_interval_seconds`` (0: never, e.g. on a replica),
  once the fold has caught up, closes the periods that ended (:func:`handlers.close_due_periods`).
* :func:`refresh_completion_gauges` — every ``scoring_gauge_refresh_seconds``, while this instance
  folds the projection, publishes ``gridwork_quota_completion_ratio`` from the boards.
"""

from __future__ import annotations

import asyncio

import structlog

from shared.events import shanghai_day
from shared.service import Runtime

from . import queries
from .bootstrap import ScoringDeps
from .handlers import close_due_periods
from .metrics import CLOSE_RUN_SECONDS, COMPLETION
from .projections import ScoringProjection

log = structlog.get_logger("gridwork.scoring")


async def close_periods(runtime: Runtime[ScoringDeps]) -> None:
    """Background task: close periods every ``scoring_close_interval_seconds`` once the fold has caught up."""
    deps = runtime.deps
    settings = deps.settings
    interval = settings.scoring_close_interval_seconds
    if interval <= 0:
        return
    while True:
        runner = runtime.runners.get(ScoringProjection.name)
        try:
            lag = (await runner.status())["lag_events"] if runner is not None else 0
        except Exception as err:  # the consumer is being re-created (takeover, reconnect): next round
            log.info("close_skipped", reason=repr(err))
            lag = None
        # Closing while the fold lags would close periods on partial numbers, then correct them.
        if lag is not None and lag <= settings.scoring_close_max_lag_events:
            with CLOSE_RUN_SECONDS.time():
                await close_due_periods(deps.clock(), deps=deps)
        await asyncio.sleep(interval)  # a timer, not a wait on a condition


async def refresh_completion_gauges(runtime: Runtime[ScoringDeps]) -> None:
    """Background task: keep ``gridwork_quota_completion_ratio`` current while this instance folds.

    Numbers it cannot read are not reported — a gap, not a stale value.
    """
    deps = runtime.deps
    owner = object()
    try:
        while True:
            runner = runtime.runners.get(ScoringProjection.name)
            try:
                if runner is not None and runner.role == "active":
                    COMPLETION.publish(
                        owner, await queries.completion_ratios(deps.pool, deps.rules, shanghai_day(deps.clock()))
                    )
                else:
                    COMPLETION.withdraw(owner)
            except Exception as err:
                COMPLETION.withdraw(owner)
                log.warning("completion_gauges_failed", error=repr(err))
            await asyncio.sleep(deps.settings.scoring_gauge_refresh_seconds)
    finally:
        COMPLETION.withdraw(owner)
