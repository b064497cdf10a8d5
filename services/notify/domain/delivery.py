"""A notification's delivery, pure: the steps it records and how they fold, and the backoff between tries.

A notification is an aggregate of its own (aggregate id = notification id).  Each try records
NotificationSent (the channel was called) and its outcome, NotificationDelivered or
NotificationFailed; when the retry budget is spent or the error is permanent, NotificationDeadLettered
follows.  Each step's id is derived from (notification, step, attempt), so a step recorded again
after a crash is the same event, which the store recognises.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.events import Event
from shared.events.notify import (
    NotificationData,
    NotificationDeadLettered,
    NotificationDelivered,
    NotificationFailed,
    NotificationSent,
)

from .directory import ChannelName

#: Delivery (outbox row) states: pending → sending → delivered | pending (retry later) | dead.
DeliveryState = Literal["pending", "sending", "delivered", "dead"]

#: How a notification ended: its channel confirmed it, or it was given up.
Outcome = Literal["delivered", "dead"]


@dataclass(frozen=True, slots=True)
class NotificationDelivery:
    """One notification on its way: what its step events name, and how far it got."""

    notification_id: str
    community: str
    recipient_id: str
    channel: ChannelName
    subject_ref: str
    causation_id: UUID | None = None  # the source event (None for a digest)
    correlation_id: UUID | None = None
    attempts: int = 0
    version: int = 0  # step events recorded
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class RecordDelivery:
    """Record the ``attempt``-th try as confirmed: handed over at ``started``, confirmed at ``confirmed``."""

    attempt: int
    started: datetime
    confirmed: datetime


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Record the ``attempt``-th try as failed.

    ``tried``: the channel was called (a NotificationSent precedes the failure); ``final``: the error
    is permanent or the retry budget is spent, so the notification is dead-lettered.
    """

    attempt: int
    started: datetime
    failed_at: datetime
    error: str
    tried: bool = True
    final: bool = False


@dataclass(frozen=True, slots=True)
class SendTestMessage:
    """Send a test message to a directory entry over each of its channels, once per ``test_id``.

    A test goes through the outbox like any notification, as kind ``test``: no acknowledgement watch,
    not in the escalation-delivery figures."""

    community: str
    recipient_id: str
    test_id: str
    requested_by: str
    at: datetime

    @property
    def source_id(self) -> str:
        """What the test's notification ids derive from: the same test id gives the same notifications."""
        return f"test:{self.community}:{self.test_id}"


@dataclass(frozen=True, slots=True)
class RetryNotification:
    """Give a dead-lettered notification a fresh retry budget (one not dead is left as it is)."""

    community: str
    notification_id: str


def decide(notification: NotificationDelivery, command: RecordDelivery | RecordFailure) -> list[Event]:
    """The step events of one try; nothing once the notification was delivered or given up."""
    if notification.outcome is not None:
        return []
    if isinstance(command, RecordDelivery):
        return [
            _step(NotificationSent, notification, "sent", command.attempt, command.started),
            _step(NotificationDelivered, notification, "delivered", command.attempt, command.confirmed),
        ]
    events: list[Event] = []
    if command.tried:
        events.append(_step(NotificationSent, notification, "sent", command.attempt, command.started))
    events.append(_step(NotificationFailed, notification, "failed", command.attempt, command.failed_at, command.error))
    if command.final:
        events.append(
            _step(NotificationDeadLettered, notification, "dead", command.attempt, command.failed_at, command.error)
        )
    return events


def _step(
    cls: type[Event],
    notification: NotificationDelivery,
    step: str,
    attempt: int,
    at: datetime,
    error: str | None = None,
) -> Event:
    return cls.new(
        community=notification.community,
        aggregate_id=notification.notification_id,
        actor="notify",
        data=NotificationData(
            notification_id=notification.notification_id,
            recipient=notification.recipient_id,
            channel=notification.channel,
            subject_ref=notification.subject_ref,
            attempt=max(1, attempt),
            error=error[:2000] if error else None,
        ),
        occurred_at=at,
        idempotency_key=f"{step}:{attempt}",
        causation_id=notification.causation_id,
        correlation_id=notification.correlation_id,
    )


def evolve(notification: NotificationDelivery, event: Event) -> NotificationDelivery:
    """Fold one step: tries counted from Sent and Failed, the first Delivered or DeadLettered ends it."""
    attempts, outcome = notification.attempts, notification.outcome
    if isinstance(event, NotificationSent | NotificationFailed):
        attempts = max(attempts, event.data.attempt)
    elif isinstance(event, NotificationDelivered) and outcome is None:
        outcome = "delivered"
    elif isinstance(event, NotificationDeadLettered) and outcome is None:
        outcome = "dead"
    return replace(notification, attempts=attempts, version=notification.version + 1, outcome=outcome)


def fold(events: list[Event], notification: NotificationDelivery) -> NotificationDelivery:
    """Fold a notification's stored steps onto ``notification``."""
    for event in events:
        notification = evolve(notification, event)
    return notification


def backoff_seconds(round_no: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter for the ``round_no``-th persistent retry (1-based).

    The delay doubles each round up to ``maximum``; the jitter picks uniformly from the upper half
    so that recipients coming back after an outage are not hit by every sender at the same instant.
    The randomness comes in as ``rng`` (the delivery worker's), so the rule itself stays pure.
    """
    ceiling = min(maximum, initial * (2 ** max(0, round_no - 1)))
    return rng.uniform(ceiling / 2, ceiling)
