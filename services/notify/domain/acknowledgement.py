"""An escalation's acknowledgement watch, pure: who may acknowledge, once, and what a missed deadline records.

Escalations whose rule says ``ack = true`` (the police duty line at night, property management for
a safety hazard…) must be answered: one watch per (source event, recipient), an aggregate of its own
(aggregate id = the ack id).  The recipient acknowledges through the API (its agency's token) or a
signed link; if its deadline passes first, NotificationUnacknowledged is recorded and the issues
service climbs the ladder.  A late acknowledgement is still recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.errors import Conflict, Forbidden
from shared.events import Event
from shared.events.notify import (
    NotificationAcknowledged,
    NotificationData,
    NotificationUnacknowledged,
    NotificationUnacknowledgedData,
)

from .directory import ChannelName

#: Acknowledgement watch states (``moot``: the issue was resolved, closed or merged meanwhile).
AckState = Literal["open", "acknowledged", "unacknowledged", "moot"]


@dataclass(frozen=True, slots=True)
class AckWatch:
    """An acknowledgement watch, seen through one of the notifications it covers (any channel's)."""

    community: str
    notification_id: str  # the notification being acknowledged
    channel: ChannelName  # its channel
    recipient_id: str
    subject_ref: str  # the issue id
    ack_id: str | None  # None: this notification asks for no acknowledgement
    recipient_agency: str | None = None  # the agency claim allowed to acknowledge
    state: AckState = "open"
    version: int = 0  # events recorded on the watch
    causation_id: UUID | None = None  # the escalation
    correlation_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class AcknowledgeNotification:
    """The recipient confirms it got an escalation.

    ``agency``: the caller's agency claim when acknowledging through the API (it must be the
    recipient's); None through a signed link, which is its own credential.
    """

    community: str
    notification_id: str
    actor: str
    via: Literal["api", "link"]
    at: datetime
    agency: str | None = None


@dataclass(frozen=True, slots=True)
class ReportUnacknowledged:
    """The watch's deadline passed at ``at`` with no acknowledgement, ``waited_seconds`` after it started."""

    at: datetime
    waited_seconds: float


def decide(watch: AckWatch, command: AcknowledgeNotification | ReportUnacknowledged) -> list[Event]:
    """The events a command records on the watch (pure; raises when the caller may not acknowledge)."""
    if isinstance(command, AcknowledgeNotification):
        return _acknowledge(watch, command)
    if watch.ack_id is None or watch.state != "open":
        return []  # answered, reported or moot already: nothing more to report
    return [
        NotificationUnacknowledged.new(
            community=watch.community,
            aggregate_id=watch.ack_id,
            actor="notify",
            data=NotificationUnacknowledgedData(
                notification_id=watch.notification_id,
                recipient=watch.recipient_id,
                channel=watch.channel,
                subject_ref=watch.subject_ref,
                waited_seconds=round(command.waited_seconds, 3),
            ),
            # when the deadline passed; with the key, the same watch always gives the same id
            occurred_at=command.at,
            idempotency_key="unacknowledged",
            causation_id=watch.causation_id,
            correlation_id=watch.correlation_id,
        )
    ]


def _acknowledge(watch: AckWatch, command: AcknowledgeNotification) -> list[Event]:
    if command.agency is not None and watch.recipient_agency != command.agency:
        raise Forbidden("this notification went to another agency", field="notification_id")
    if watch.ack_id is None:
        raise Conflict("this notification does not ask for an acknowledgement", field="notification_id")
    if watch.state == "acknowledged":
        return []  # acknowledging again answers with the first acknowledgement
    return [
        NotificationAcknowledged.new(
            community=watch.community,
            aggregate_id=watch.ack_id,
            actor=command.actor,
            data=NotificationData(
                notification_id=watch.notification_id,
                recipient=watch.recipient_id,
                channel=watch.channel,
                subject_ref=watch.subject_ref,
            ),
            occurred_at=command.at,
            idempotency_key="acknowledged",  # once per watch
            causation_id=watch.causation_id,
            correlation_id=watch.correlation_id,
        )
    ]


def evolve(watch: AckWatch, event: Event) -> AckWatch:
    """Fold one event into the watch (a late acknowledgement still turns it acknowledged)."""
    if isinstance(event, NotificationAcknowledged):
        return replace(watch, state="acknowledged", version=watch.version + 1)
    if isinstance(event, NotificationUnacknowledged):
        return replace(watch, state="unacknowledged", version=watch.version + 1)
    return watch
