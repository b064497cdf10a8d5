"""The issue aggregate (问题): a problem's life as two pure functions, ``decide`` and ``evolve``.

The digital city-management case flow (信息收集→案卷建立→任务派遣→任务处理→处理反馈→核查结案)
and the escalation ladder, with no I/O and no clock: the handlers load an issue's history, call
``decide`` with the command, its metadata (who, when) and the escalation policy, and append what it
returns.

* :mod:`.state` — ``IssueState`` and ``evolve``/``fold``;
* :mod:`.commands` — the commands and their ``CommandMeta``;
* :mod:`.lifecycle` — ``decide``: which command applies in which state, the domain errors;
* :mod:`.policy` — the escalation policy (rules on report, deadlines, the ladder's agencies);
* :mod:`.catalogue` — the five categories and their subcategories;
* :mod:`.access` — who may see and act on which issue (grid, agency, the hotline's own steps);
* :mod:`.hotline` — the 12345 hotline's rules (work order ids, feedback, repeated call-backs);
* :mod:`.open311` — how an issue reads as an Open311 GeoReport v2 service request.
"""

from __future__ import annotations

from .catalogue import Catalogue, CategoryInfo, Subcategory, service_code
from .commands import (
    AcceptIssue,
    ApplyEscalationRules,
    AssignIssue,
    CloseIssue,
    CommandMeta,
    EscalateIssue,
    EscalateUnacknowledged,
    MarkOverdue,
    MergeIssue,
    ReceiveHotlineOrder,
    RecordHotlineFeedback,
    RecordResidentCallback,
    RedactIssue,
    ReopenIssue,
    ReportIssue,
    ResolveIssue,
    Timer,
    VerifyIssue,
)
from .lifecycle import ALLOWED, IllegalTransition, StaleVersion, decide, same_effect, timer_for_level
from .policy import LEVEL_INDEX, SEVERITIES, Deadline, EscalationRule, Policy, PolicyError, next_level
from .state import OPEN_STATES, IssueState, Status, evolve, fold, initial_state, overdue_at

__all__ = [
    "ALLOWED",
    "LEVEL_INDEX",
    "OPEN_STATES",
    "SEVERITIES",
    "AcceptIssue",
    "ApplyEscalationRules",
    "AssignIssue",
    "Catalogue",
    "CategoryInfo",
    "CloseIssue",
    "CommandMeta",
    "Deadline",
    "EscalateIssue",
    "EscalateUnacknowledged",
    "EscalationRule",
    "IllegalTransition",
    "IssueState",
    "MarkOverdue",
    "MergeIssue",
    "Policy",
    "PolicyError",
    "ReceiveHotlineOrder",
    "RecordHotlineFeedback",
    "RecordResidentCallback",
    "RedactIssue",
    "ReopenIssue",
    "ReportIssue",
    "ResolveIssue",
    "StaleVersion",
    "Status",
    "Subcategory",
    "Timer",
    "VerifyIssue",
    "decide",
    "evolve",
    "fold",
    "initial_state",
    "next_level",
    "overdue_at",
    "same_effect",
    "service_code",
    "timer_for_level",
]
