"""Notify metrics: one ``gridwork_`` prefix, base units, bounded labels (channel, outcome, kind)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: outcome: delivered | failed (will retry) | dead_lettered
NOTIFICATIONS = Counter(
    "gridwork_notifications_total", "Notification delivery attempts by channel and outcome", ["channel", "outcome"]
)
ESCALATION_DELIVERY = Histogram(
    "gridwork_escalation_delivery_seconds",
    "From IssueEscalated stored to the recipient's channel confirming the notification",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
#: outcome: acknowledged | unacknowledged
ACKNOWLEDGEMENTS = Counter(
    "gridwork_notification_acknowledgements_total", "Escalations acknowledged or not in time", ["kind", "outcome"]
)
DIGESTS = Counter("gridwork_notify_digests_total", "Daily digests put in the outbox")
