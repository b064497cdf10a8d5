"""The notify domain, pure: who receives what, quiet hours, delivery ids, backoff.

Words used here:

* **recipient** — one entry of a community's directory: the property management company (物业),
  the police station's duty line (派出所值班), a street office department (街道业务部室), urban
  management (城管), the 12345 hotline, the community secretary (书记).
* **notification** — one message of one source event (an escalation, an overdue issue, a daily
  digest) to one recipient over one channel.  Its id is derived from (source, recipient, channel),
  so however often the source event is folded, the notification exists once.
* **acknowledgement watch** — for escalations that must be answered (police, street office…): one
  per (source, recipient); acknowledged in time or reported as NotificationUnacknowledged.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import SHANGHAI, TOKEN_PATTERN

RecipientKind = Literal[
    "property_management",  # 物业
    "police",  # 派出所 / 民警
    "street_office",  # 街道业务部室
    "urban_management",  # 城管
    "hotline",  # 12345 市民服务热线
    "secretary",  # 社区书记
]
RECIPIENT_KINDS: tuple[str, ...] = RecipientKind.__args__  # type: ignore[attr-defined]

ChannelName = Literal["webhook", "wecom", "email", "sms"]
CHANNELS: tuple[str, ...] = ChannelName.__args__  # type: ignore[attr-defined]

Language = Literal["zh", "en"]

#: Delivery (outbox row) states: pending → sending → delivered | pending (retry later) | dead.
DeliveryState = Literal["pending", "sending", "delivered", "dead"]

#: Acknowledgement watch states.
AckState = Literal["open", "acknowledged", "unacknowledged", "moot"]

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

EMAIL_PATTERN = r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$|^[^@\s<>\"',;]{1,64}@localhost$"
PHONE_PATTERN = r"^\+?[0-9]{5,20}$"
URL_PATTERN = r"^https?://[^\s]{3,2000}$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookChannel(_Model):
    """A signed HTTP webhook; the secret is sealed at rest and never shown again."""

    url: str = Field(pattern=URL_PATTERN)
    secret: str | None = Field(
        default=None, min_length=16, max_length=256, description="HMAC key; omit on update to keep the current one"
    )


class WecomChannel(_Model):
    """A WeCom group robot (企业微信群机器人): its webhook URL carries its key, so it is a secret."""

    url: str = Field(pattern=URL_PATTERN)


class EmailChannel(_Model):
    address: str = Field(pattern=EMAIL_PATTERN, max_length=320)


class SmsChannel(_Model):
    number: str = Field(pattern=PHONE_PATTERN)


class Channels(_Model):
    webhook: WebhookChannel | None = None
    wecom: WecomChannel | None = None
    email: EmailChannel | None = None
    sms: SmsChannel | None = None

    def configured(self) -> list[str]:
        return [name for name in CHANNELS if getattr(self, name) is not None]


class QuietHours(_Model):
    """Local hours (Asia/Shanghai) in which non-urgent messages wait; may wrap midnight (22:00–07:00)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self

    def contains(self, at: datetime) -> bool:
        return in_window(at.astimezone(SHANGHAI).time(), self.start, self.end)

    def ends_after(self, at: datetime) -> datetime:
        """The first end of quiet hours after ``at`` (for deferring a message)."""
        local = at.astimezone(SHANGHAI)
        end = datetime.combine(local.date(), self.end, tzinfo=SHANGHAI)
        if end <= local:
            end += timedelta(days=1)
        return end


class PlaceCover(_Model):
    """Part of the community a recipient is responsible for (e.g. the phase 4 property company)."""

    compound: str | None = Field(default=None, max_length=64)
    phase: str | None = Field(default=None, max_length=32)
    building: str | None = Field(default=None, max_length=32)

    def covers(self, place: dict[str, str | None]) -> bool:
        return all(
            want is None or place.get(key) == want
            for key, want in (("compound", self.compound), ("phase", self.phase), ("building", self.building))
        )


class RecipientIn(_Model):
    """A directory entry as written through the API."""

    kind: RecipientKind
    name: str = Field(min_length=1, max_length=100)
    desk: str | None = Field(default=None, pattern=TOKEN_PATTERN, description="e.g. duty_line, planning")
    language: Language = "zh"
    agency: str | None = Field(default=None, pattern=TOKEN_PATTERN, description="agency claim allowed to ack")
    quiet_hours: QuietHours | None = None
    covers: list[PlaceCover] = Field(default_factory=list, max_length=50)
    channels: Channels
    active: bool = True

    @field_validator("channels")
    @classmethod
    def _some_channel(cls, value: Channels) -> Channels:
        if not value.configured():
            raise ValueError("at least one channel (webhook, wecom, email, sms) is needed")
        return value


class Recipient(_Model):
    """A directory entry as the router sees it: no secrets, only which channels exist."""

    community: str
    recipient_id: str
    kind: RecipientKind
    name: str
    desk: str | None = None
    language: Language = "zh"
    agency: str | None = None
    quiet_hours: QuietHours | None = None
    covers: list[PlaceCover] = Field(default_factory=list)
    channels: list[ChannelName] = Field(default_factory=list)
    active: bool = True

    def covers_place(self, place: dict[str, str | None]) -> bool:
        return not self.covers or any(c.covers(place) for c in self.covers)


def in_window(t: time, start: time, end: time) -> bool:
    """Whether local time ``t`` lies in [start, end), a window that may wrap midnight."""
    if start < end:
        return start <= t < end
    return t >= start or t < end


def parse_window(text: str) -> tuple[time, time]:
    """``"22:00-06:00"`` → (22:00, 06:00)."""
    try:
        a, b = (part.strip() for part in text.split("-", 1))
        return time.fromisoformat(a), time.fromisoformat(b)
    except ValueError as err:
        raise ValueError(f"hours must look like 22:00-06:00, got {text!r}") from err


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def notification_id(source_id: str, recipient_id: str, channel: str) -> str:
    """The id of (source event, recipient, channel): the same fold always yields the same notification."""
    return f"n{_digest(source_id, recipient_id, channel)}"


def ack_id(source_id: str, recipient_id: str) -> str:
    """The id of the acknowledgement watch of (source event, recipient)."""
    return f"a{_digest(source_id, recipient_id)}"


def digest_id(community: str, day: date) -> str:
    """The secretary's daily digest of one community and one local day."""
    return f"digest-{community}-{day:%Y%m%d}"[:64]


def send_at(recipient: Recipient, *, urgent: bool, now: datetime) -> datetime:
    """When a message to ``recipient`` may go out: now, or the end of its quiet hours if not urgent."""
    if urgent or recipient.quiet_hours is None or not recipient.quiet_hours.contains(now):
        return now
    return recipient.quiet_hours.ends_after(now)


def backoff_seconds(round_no: int, *, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the ``round_no``-th persistent retry (1-based).

    The delay doubles each round up to ``maximum``; the jitter picks uniformly from the upper half
    so that recipients coming back after an outage are not hit by every sender at the same instant.
    """
    ceiling = min(maximum, initial * (2 ** max(0, round_no - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def next_digest_moment(after: datetime, at: time) -> datetime:
    """The first daily digest moment (local ``at``) at or after ``after``."""
    local = after.astimezone(SHANGHAI)
    moment = datetime.combine(local.date(), at, tzinfo=SHANGHAI)
    return moment if moment >= local else moment + timedelta(days=1)


def digest_due(now: datetime, at: time, last_line_at: datetime, settle_seconds: float) -> bool:
    """Whether a community's open digest goes out now: past today's digest time and settled."""
    local = now.astimezone(SHANGHAI)
    today_moment = datetime.combine(local.date(), at, tzinfo=SHANGHAI)
    return local >= today_moment and (now - last_line_at).total_seconds() >= settle_seconds


def as_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID (an event id kept as text), or None (a digest id is not one)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def missed_items(items: Iterable[dict]) -> list[str]:
    """Names of the 5+1 quota items a closed period missed."""
    return [str(item["item"]) for item in items if not item.get("met", False)]
