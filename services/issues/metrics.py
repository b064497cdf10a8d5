"""Metrics of the issues service (``gridwork_issues_…``; labels are small known sets)."""

from __future__ import annotations

from prometheus_client import Counter

ISSUE_EVENTS = Counter("gridwork_issues_events_total", "Issue events appended by the issues service", ["type"])
ESCALATIONS = Counter("gridwork_issues_escalations_total", "Issues escalated up the ladder", ["reason", "to_level"])
TIMERS_FIRED = Counter("gridwork_issues_timers_fired_total", "Deadline timers fired", ["kind", "outcome"])
HOTLINE_FEEDBACK = Counter(
    "gridwork_issues_hotline_feedback_attempts_total", "Feedback POSTs to the 12345 hotline", ["outcome"]
)
FILED_PROBLEMS = Counter(
    "gridwork_issues_filed_problems_total", "Problems from visits, sessions and councils filed as issues", ["source"]
)
