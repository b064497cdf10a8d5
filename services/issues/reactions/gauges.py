"""The board gauges: open and overdue issues, hotline feedback not yet delivered.

They describe the shared read model, so exactly one instance reports them — the one folding the
``issues_board`` projection (it holds that projection's lock).  Every instance of the service
reads the same tables; if each reported, the dashboards' and alerts' ``sum by (community)`` would
count every issue once per instance.

A background task reads the counts every ``issues_gauge_refresh_seconds`` and publishes a snapshot
that ``/metrics`` shows as it stands (a scrape never queries PostgreSQL).  A label set seen once
stays in the snapshot with 0 when its issues are gone, so a category whose last overdue issue was
resolved reads 0 rather than its last value, and ``delta()`` over it keeps working.
"""

from __future__ import annotations

import asyncio

import structlog

from shared.service import Runtime

from ..bootstrap import IssuesDeps
from ..metrics import BOARD_GAUGES, BoardKey, BoardSnapshot
from ..projections import IssuesBoard
from ..queries import board_gauge_counts

log = structlog.get_logger("gridwork.issues")


class BoardCounts:
    """Turns successive counts into snapshots, keeping every label set seen so far (at 0 when gone).

    One per running service; it is also the key under which that service publishes.
    """

    def __init__(self) -> None:
        self._board: set[BoardKey] = set()
        self._communities: set[str] = set()

    def snapshot(self, board: dict[BoardKey, tuple[int, int]], pending: dict[str, int]) -> BoardSnapshot:
        """The snapshot for these counts: open/overdue per label set, pending per community."""
        self._board |= board.keys()
        self._communities |= pending.keys()
        return BoardSnapshot(
            open={key: board.get(key, (0, 0))[0] for key in self._board},
            overdue={key: board.get(key, (0, 0))[1] for key in self._board},
            feedback_pending={c: pending.get(c, 0) for c in self._communities},
        )


def reports_board(runtime: Runtime[IssuesDeps]) -> bool:
    """Whether this instance is the one that reports the board gauges (it folds the board)."""
    runner = runtime.runners.get(IssuesBoard.name)
    return runner is not None and runner.role == "active"


async def refresh_board_gauges_once(runtime: Runtime[IssuesDeps], counts: BoardCounts) -> BoardSnapshot | None:
    """Read the counts and publish them if this instance reports the board; returns what it published."""
    if not reports_board(runtime):
        BOARD_GAUGES.withdraw(counts)
        return None
    async with runtime.deps.pool.acquire() as conn:
        board, pending = await board_gauge_counts(conn)
    snapshot = counts.snapshot(board, pending)
    BOARD_GAUGES.publish(counts, snapshot)
    return snapshot


async def refresh_board_gauges(runtime: Runtime[IssuesDeps]) -> None:
    """Background task: keep the board gauges current, forever."""
    interval = runtime.deps.settings.issues_gauge_refresh_seconds
    counts = BoardCounts()
    try:
        while True:
            try:
                await refresh_board_gauges_once(runtime, counts)
            except Exception as err:
                # Numbers we cannot read are not reported: better a gap than a stale value.
                BOARD_GAUGES.withdraw(counts)
                log.warning("board_gauges_failed", error=repr(err))
            await asyncio.sleep(interval)
    finally:
        BOARD_GAUGES.withdraw(counts)
