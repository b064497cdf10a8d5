"""Settings of the notify service (env prefix ``GRIDWORK_``, each name starts with ``notify_``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import time

from pydantic import Field

from shared.settings import Settings

#: How long each kind of recipient has to acknowledge an escalation before it climbs (seconds).
DEFAULT_ACK_DEADLINES: dict[str, float] = {
    "police": 15 * 60,
    "street_office": 60 * 60,
    "urban_management": 60 * 60,
    "hotline": 60 * 60,
    "property_management": 2 * 60 * 60,
    "secretary": 4 * 60 * 60,
}


#: Deadline of a recipient kind missing from ``notify_ack_deadline_seconds``.
FALLBACK_ACK_DEADLINE = 24 * 60 * 60.0


class NotifySettings(Settings):
    """The shared settings plus what delivery, channels and acknowledgement need."""

    notify_public_url: str = Field(
        default="http://127.0.0.1:8084", description="Base URL of this service as recipients reach it (ack links)"
    )
    notify_secret_key: str = Field(
        default="",
        description="Base64 key (32 bytes) sealing channel secrets at rest; derived from the JWT secret if empty",
    )
    notify_ack_deadline_seconds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_ACK_DEADLINES),
        description="Per recipient kind: seconds to acknowledge before NotificationUnacknowledged",
    )
    notify_ack_link_ttl_seconds: float = Field(default=7 * 86400, gt=0, description="Validity of signed ack links")

    # delivery
    notify_concurrency: int = Field(default=64, ge=1, le=4096, description="Deliveries in flight at once")
    notify_poll_seconds: float = Field(default=1.0, gt=0, description="Outbox poll interval besides LISTEN")
    notify_lease_seconds: float = Field(default=60, ge=5, description="A claimed delivery's lease (crash recovery)")
    notify_max_attempts: int = Field(default=12, ge=1, le=100, description="Attempts before dead-lettering")
    notify_burst_attempts: int = Field(default=3, ge=1, le=10, description="Quick in-process tries per claim")
    notify_burst_wait_initial: float = Field(default=0.05, ge=0)
    notify_burst_wait_max: float = Field(default=0.5, ge=0)
    notify_backoff_initial_seconds: float = Field(default=2.0, gt=0, description="Persistent backoff, first delay")
    notify_backoff_max_seconds: float = Field(default=600.0, gt=0, description="Persistent backoff ceiling")
    notify_send_timeout_seconds: float = Field(default=10.0, gt=0)

    # timers
    notify_timer_seconds: float = Field(default=0.5, gt=0, description="Ack deadline and digest check interval")
    notify_digest_at: time = Field(default=time(8, 0), description="Local time (Asia/Shanghai) of the daily digest")
    notify_digest_settle_seconds: float = Field(
        default=60, ge=0, description="Quiet time after the last missed quota before the digest goes out"
    )

    # channels
    notify_smtp_host: str = "127.0.0.1"
    notify_smtp_port: int = 25
    notify_smtp_from: str = "gridwork@localhost"
    notify_smtp_user: str | None = None
    notify_smtp_password: str | None = None
    notify_smtp_starttls: bool = False
    notify_sms_gateway_url: str | None = Field(default=None, description="SMS gateway endpoint (JSON POST)")
    notify_sms_gateway_token: str | None = Field(default=None, description="Bearer token of the SMS gateway")

    def sealing_key(self) -> bytes:
        """The AES-256 key for channel secrets at rest."""
        if self.notify_secret_key:
            key = base64.b64decode(self.notify_secret_key)
            if len(key) != 32:
                raise ValueError("GRIDWORK_NOTIFY_SECRET_KEY must be 32 bytes, base64 encoded")
            return key
        return _derive(self.jwt_secret, b"gridwork-notify-sealing")

    def link_key(self) -> bytes:
        """The HMAC key of signed acknowledgement links."""
        return _derive(self.notify_secret_key or self.jwt_secret, b"gridwork-notify-ack-links")

    def ack_deadline(self, kind: str) -> float:
        """Seconds a recipient of ``kind`` has to acknowledge (a day when the kind is not configured)."""
        return float(self.notify_ack_deadline_seconds.get(kind, FALLBACK_ACK_DEADLINE))


def _derive(secret: str, label: bytes) -> bytes:
    # A keyed derivation per purpose, so the JWT key itself never seals or signs anything here.
    if not secret:
        raise RuntimeError("no key material: set GRIDWORK_JWT_SECRET or GRIDWORK_NOTIFY_SECRET_KEY")
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()
