"""Reactions of the issues service: "when this happens, do that".

* :mod:`.filing` — ``ProblemFiling``: problems noted on visits, sessions and councils become issues;
* :mod:`.escalation` — ``EscalationProcess``: rules on report, climbs on unacknowledged
  notifications, and the deadline timers it schedules;
* :mod:`.timers` — :func:`fire_due_timers`, the deadline worker;
* :mod:`.hotline_feedback` — :func:`deliver_hotline_feedback`, the 12345 feedback outbox worker,
  and the outbox's status for ``/readyz``;
* :mod:`.gauges` — :func:`refresh_board_gauges`, the board gauges' refresh loop.

The two process managers are projections (the runner's exactly-once fold); the others are
background tasks of the service (``async def task(runtime)``, reading ``runtime.deps``).
"""

from __future__ import annotations

from .escalation import EscalationProcess
from .filing import ProblemFiling
from .gauges import refresh_board_gauges, reports_board
from .hotline_feedback import deliver_hotline_feedback, hotline_feedback_outbox
from .timers import fire_due_timers

__all__ = [
    "EscalationProcess",
    "ProblemFiling",
    "deliver_hotline_feedback",
    "fire_due_timers",
    "hotline_feedback_outbox",
    "refresh_board_gauges",
    "reports_board",
]
