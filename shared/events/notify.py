"""Events of the notify context: the delivery of a notification, step by step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from .envelope import Event, Payload

Channel = Literal["webhook", "wecom", "email", "sms"]


class _NotificationEvent(Event):
    context: ClassVar[str] = "notify"
    aggregate_kind: ClassVar[str] = "notification"


class NotificationData(Payload):
    notification_id: str
    recipient: str
    channel: Channel
    subject_ref: str = Field(description="What it is about, e.g. issue id or digest id")
    attempt: int = Field(default=1, ge=1)
    error: str | None = Field(default=None, max_length=2000)


class NotificationSent(_NotificationEvent):
    """A notification was handed to its channel."""

    type: Literal["NotificationSent"] = "NotificationSent"
    data: NotificationData


class NotificationDelivered(_NotificationEvent):
    """The channel confirmed delivery."""

    type: Literal["NotificationDelivered"] = "NotificationDelivered"
    data: NotificationData


class NotificationFailed(_NotificationEvent):
    """A delivery attempt failed; it will be retried."""

    type: Literal["NotificationFailed"] = "NotificationFailed"
    data: NotificationData


class NotificationAcknowledged(_NotificationEvent):
    """The recipient acknowledged the notification (signed link or API call)."""

    type: Literal["NotificationAcknowledged"] = "NotificationAcknowledged"
    data: NotificationData


class NotificationDeadLettered(_NotificationEvent):
    """The retry budget ran out; the last error is kept."""

    type: Literal["NotificationDeadLettered"] = "NotificationDeadLettered"
    data: NotificationData


class NotificationUnacknowledgedData(Payload):
    notification_id: str
    recipient: str
    channel: Channel
    subject_ref: str = Field(description="The issue id the unacknowledged escalation is about")
    waited_seconds: float = Field(ge=0)


class NotificationUnacknowledged(_NotificationEvent):
    """An escalation's recipient did not acknowledge it in time; the issues service climbs the ladder."""

    type: Literal["NotificationUnacknowledged"] = "NotificationUnacknowledged"
    data: NotificationUnacknowledgedData


EVENTS: tuple[type[Event], ...] = (
    NotificationUnacknowledged,
    NotificationSent,
    NotificationDelivered,
    NotificationFailed,
    NotificationAcknowledged,
    NotificationDeadLettered,
)
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
