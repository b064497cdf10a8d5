"""The directory, pure: recipients, their channels and quiet hours, the commands that change an
entry, and the rules of its secrets (what a PUT keeps, what a rotation does, what may be shown).

Webhook HMAC keys and WeCom robot URLs (the URL carries the robot's key) are secrets: they are
sealed at rest (:mod:`services.notify.sealing`) and only their last four characters are ever
shown again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.errors import Invalid
from shared.events import SHANGHAI, TOKEN_PATTERN

RecipientKind = Literal[
    "property_management",  # 物业
    "police",  # 派出所 / 民警
    "street_office",  # 街道业务部室
    "urban_management",  # 城管
    "hotline",  # 12345 市民服务热线
    "secretary",  # 社区书记
]
RECIPIENT_KINDS: tuple[str, ...] = get_args(RecipientKind)

ChannelName = Literal["webhook", "wecom", "email", "sms"]
CHANNELS: tuple[str, ...] = get_args(ChannelName)

Language = Literal["zh", "en"]

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

    url: str | None = Field(
        default=None, pattern=URL_PATTERN, description="The robot's URL; omit on update to keep the current one"
    )


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
        """The names of the channels given, in preference order."""
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
        """Whether ``at`` falls in the quiet hours (local time)."""
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
        """Whether ``place`` lies in this part of the community (an unset key covers everything)."""
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
        """Whether the recipient is responsible for ``place`` (no covers: the whole community)."""
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


def send_at(recipient: Recipient, *, urgent: bool, now: datetime) -> datetime:
    """When a message to ``recipient`` may go out: ``now``, or the end of its quiet hours if not urgent."""
    if urgent or recipient.quiet_hours is None or not recipient.quiet_hours.contains(now):
        return now
    return recipient.quiet_hours.ends_after(now)


# ------------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class PutRecipient:
    """Create or replace a directory entry (the same entry twice leaves the same entry)."""

    community: str
    recipient_id: str
    entry: RecipientIn


@dataclass(frozen=True)
class RotateWebhookSecret:
    """Make ``secret`` the webhook's key; the current one keeps signing beside it for ``grace``."""

    community: str
    recipient_id: str
    secret: str
    grace: timedelta
    at: datetime


@dataclass(frozen=True)
class RemoveRecipient:
    """Take an entry out of the directory (removing what is gone changes nothing)."""

    community: str
    recipient_id: str


# ------------------------------------------------------------------------------------------ secrets


def kept_secrets(channels: Channels, secrets: dict[str, Any]) -> dict[str, Any]:
    """The secrets an entry holds after a PUT of ``channels`` over the ``secrets`` it had.

    A webhook given without its secret keeps the current one, and a WeCom robot without its URL
    its current URL; a new secret replaces the current one
    with no grace (a replacement, not a rotation); a channel left out loses its secrets.
    """
    secrets = dict(secrets)
    if channels.webhook is not None:
        if channels.webhook.secret is not None and channels.webhook.secret != secrets.get("webhook_secret"):
            secrets["webhook_secret"] = channels.webhook.secret
            secrets.pop("webhook_previous", None)
            secrets.pop("webhook_previous_until", None)
        elif not secrets.get("webhook_secret"):
            raise Invalid("a new webhook needs its secret", field="channels.webhook.secret")
    else:
        for key in ("webhook_secret", "webhook_previous", "webhook_previous_until"):
            secrets.pop(key, None)
    if channels.wecom is not None:
        if channels.wecom.url is not None:
            secrets["wecom_url"] = channels.wecom.url
        elif not secrets.get("wecom_url"):
            raise Invalid("a new WeCom robot needs its URL", field="channels.wecom.url")
    else:
        secrets.pop("wecom_url", None)
    return secrets


def rotated_secrets(secrets: dict[str, Any], command: RotateWebhookSecret) -> dict[str, Any]:
    """The secrets after a rotation: the new key first, the previous one valid until the grace ends.

    Rotating to the key in use changes nothing (a retried rotation must not cut the grace short).
    """
    if not secrets.get("webhook_secret"):
        raise Invalid("this recipient has no webhook to rotate", field="recipient_id")
    secrets = dict(secrets)
    if command.secret != secrets["webhook_secret"]:
        secrets["webhook_previous"] = secrets["webhook_secret"]
        secrets["webhook_previous_until"] = (command.at + command.grace).isoformat()
        secrets["webhook_secret"] = command.secret
    return secrets


def signing_secrets(secrets: dict[str, Any], at: datetime) -> tuple[str, ...]:
    """The webhook keys that sign at ``at``: the current one, then the previous one during its grace."""
    keys: list[str] = []
    if secrets.get("webhook_secret"):
        keys.append(secrets["webhook_secret"])
        until = secrets.get("webhook_previous_until")
        if secrets.get("webhook_previous") and until and datetime.fromisoformat(until) > at:
            keys.append(secrets["webhook_previous"])
    return tuple(keys)


def public_channels(channels: Channels) -> dict[str, Any]:
    """What is stored in the clear of an entry's channels (no secret)."""
    return {
        "webhook": {"url": channels.webhook.url} if channels.webhook else None,
        "wecom": {"configured": True} if channels.wecom else None,
        "email": {"address": channels.email.address} if channels.email else None,
        "sms": {"number": channels.sms.number} if channels.sms else None,
    }


def webhook_hints(secrets: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of the webhook's keys: the current key's hint and the end of the grace."""
    return {
        "webhook_secret": hint(secrets.get("webhook_secret")),
        "webhook_previous_until": secrets.get("webhook_previous_until"),
    }


def secret_hints(secrets: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of every secret of an entry."""
    return {
        **webhook_hints(secrets),
        "wecom_url": mask_url(secrets["wecom_url"]) if secrets.get("wecom_url") else None,
    }


def hint(secret: str | None) -> str | None:
    """What may be shown of a secret: its last four characters."""
    return f"…{secret[-4:]}" if secret else None


def mask_url(url: str) -> str:
    """A URL with its query (where a robot key lives) reduced to hints."""
    parts = urlsplit(url)
    query = "&".join(
        f"{k}={hint(v)}" if v else k for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
