"""Settings of the console service (env prefix ``GRIDWORK_``, each name starts with ``console_``)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import Field

from shared.settings import Settings


class ConsoleSettings(Settings):
    """The shared settings plus sign-in, sessions, and where the four services answer."""

    console_secret_key: str = Field(
        default="",
        repr=False,
        description="Base64 key (32 bytes) sealing password hashes in the event stream; derived from the "
        "JWT secret if empty",
    )
    console_session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="A session ends after this long without a request"
    )
    console_session_max_hours: float = Field(
        default=12, gt=0, le=24 * 7, description="A session ends this long after sign-in, however active"
    )
    console_secure_cookies: bool | None = Field(
        default=None,
        description="Mark cookies Secure; unset: when the request came over HTTPS (or X-Forwarded-Proto https "
        "from a trusted proxy)",
    )
    console_lock_after_failures: int = Field(
        default=5, ge=1, le=100, description="Failed sign-ins in a row that lock an account"
    )
    console_lock_minutes: float = Field(default=15, gt=0, description="How long a lock-out lasts")
    console_sign_ins_per_minute: int = Field(
        default=10, ge=1, description="Sign-in attempts per client address and per username a minute (429 past it)"
    )
    console_token_seconds: int = Field(
        default=300, ge=30, le=3600, description="Life of the token the console calls the services with"
    )
    console_visits_url: str = Field(default="", description="Base URL of the visits API; default http://host:port")
    console_issues_url: str = Field(default="", description="Base URL of the issues API")
    console_scoring_url: str = Field(default="", description="Base URL of the scoring API")
    console_notify_url: str = Field(default="", description="Base URL of the notify API")
    console_tile_url: str = Field(
        default="", description="A map tile server URL template ({z}/{x}/{y}); unset: the schematic plan only"
    )

    def service_url(self, service: str) -> str:
        """Where ``service`` answers (its setting, else this host and its port)."""
        configured: str = getattr(self, f"console_{service}_url")
        if configured:
            return configured.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{getattr(self, f'{service}_port')}"

    def sealing_key(self) -> bytes:
        """The AES-256 key sealing password hashes in account events."""
        if self.console_secret_key:
            key = base64.b64decode(self.console_secret_key)
            if len(key) != 32:
                raise ValueError("GRIDWORK_CONSOLE_SECRET_KEY must be 32 bytes, base64 encoded")
            return key
        if not self.jwt_secret:
            raise RuntimeError("no key material: set GRIDWORK_JWT_SECRET or GRIDWORK_CONSOLE_SECRET_KEY")
        return hmac.new(self.jwt_secret.encode(), b"gridwork-console-passwords", hashlib.sha256).digest()
