"""Settings shared by every service (pydantic-settings, env prefix ``GRIDWORK_``).

Each service subclasses :class:`Settings`; the object is built once in the service's lifespan
and passed down, never read from the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .outbound import OutboundPolicy


class Settings(BaseSettings):
    """Settings every gridwork process understands.  Each is listed in the README."""

    model_config = SettingsConfigDict(env_prefix="GRIDWORK_", env_file=None, extra="ignore")

    nats_url: str | None = Field(default=None, description="NATS server(s), comma separated")
    nats_user: str | None = Field(default=None, description="NATS user of this process (one per service)")
    nats_password: str | None = Field(default=None, repr=False, description="Password of ``nats_user``")
    nats_passwords: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="User -> password for every NATS user; only the embedded stack's tools and the tests",
    )
    nats_tls_ca: Path | None = Field(default=None, description="CA file that signed the NATS servers' certificates")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL DSN: a service's own role (production), or an admin for the tools and tests",
    )
    database_urls: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Service -> DSN of its own role; only the embedded stack's tools and the tests",
    )
    data_dir: Path = Field(default=Path(".gridwork"), description="Embedded stack's data directory")
    namespace: str = Field(
        default="gw",
        pattern=r"^[a-z][a-z0-9]{0,15}$",
        description="Subject root and stream-name prefix (tests use their own)",
    )

    # JetStream streams
    stream_replicas: int = Field(default=1, ge=1, le=5, description="1 embedded, 3 on a cluster")
    stream_max_age_days: float = Field(default=0, ge=0, description="0 keeps events forever")
    deadletter_max_age_days: float = Field(
        default=30,
        gt=0,
        description="How long a dead letter is kept (for replay past it) before JetStream drops it",
    )
    duplicate_window_seconds: float = Field(default=900, ge=120, description="JetStream dedupe window for Nats-Msg-Id")
    sync_interval: str = Field(
        default="2m", description="nats-server fsync interval ('always' for no loss on power cut)"
    )
    snapshot_every: int = Field(default=50, ge=2, description="Snapshot an aggregate after N events")
    publish_window: int = Field(
        default=4096,
        ge=1,
        le=65536,
        description="Appends in flight per connection, awaiting their ack: at least the concurrent sync batches "
        "× their records (a tight window stalls the pipeline: 512 halved the visits sync rate)",
    )

    # projections
    projection_batch: int = Field(default=1000, ge=1, le=10000)
    max_deliver: int = Field(default=5, ge=1, description="Deliveries before a message is dead-lettered")
    redelivery_backoff_seconds: list[float] = Field(default=[0.5, 2, 10, 30])

    # when work happened (occurred_at of the field app's records and reports)
    clock_skew_seconds: float = Field(
        default=300, ge=0, description="How far in the future a phone's occurred_at may be (clock drift)"
    )
    max_backdate_days: float = Field(default=30, gt=0, description="Oldest occurred_at accepted, in days")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body any route reads (413 before anything is read or checked)",
    )
    ledger_import_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1024,
        description="Largest ledger file POST …/ledger/import takes (its own limit, above max_body_bytes)",
    )

    # auth
    jwt_secret: str = Field(default="", description="HS256 secret for bearer tokens")
    jwt_issuer: str = "gridwork"
    jwt_audience: str = Field(default="gridwork", description="audience every token must carry (aud)")

    # the key-encryption key (KEK) wrapping residents' household keys (the visits service only)
    kek: str = Field(default="", repr=False, description="KEK: 32 random bytes, base64 (prefer kek_file)")
    kek_file: Path | None = Field(default=None, description="File holding the KEK (a compose secret)")
    kek_retired: str = Field(
        default="", repr=False, description="Retired KEKs (base64, comma separated) that still unwrap during a rotation"
    )
    kek_retired_file: Path | None = Field(default=None, description="File of retired KEKs, one per line")

    # logs
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    # service ports (gridwork up)
    host: str = "127.0.0.1"
    http_keep_alive_seconds: float = Field(
        default=65,
        gt=0,
        description="How long an idle HTTP connection stays open. Longer than clients' and load balancers' "
        "idle timeouts, so the server never closes a connection a client is just reusing",
    )
    visits_port: int = 8081
    issues_port: int = 8082
    scoring_port: int = 8083
    notify_port: int = 8084
    console_port: int = 8085
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    metrics_address: str | None = Field(
        default=None,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$",
        description="host:port of an operations address serving /metrics (then the service's own port "
        "answers 404 there); unset: /metrics on the service's port",
    )

    outbound_allowed_targets: list[str] = Field(
        default_factory=list,
        description="Outbound calls (webhooks, WeCom, the SMS gateway, the 12345 feedback) reach public "
        "addresses only; these hosts, addresses and CIDRs are admitted beside them (JSON list, e.g. "
        '["10.20.0.0/16", "sms-gateway.internal"]). gridwork up and the demo admit loopback when unset',
    )

    def outbound_policy(self) -> OutboundPolicy:
        """Which outbound targets are admitted (:mod:`shared.outbound`)."""
        return OutboundPolicy.from_entries(self.outbound_allowed_targets)

    def stream_name(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    def dlq_stream_name(self) -> str:
        return f"{self.namespace.upper()}_DEADLETTER"

    def snapshot_bucket(self) -> str:
        return f"{self.namespace}_snapshots"
