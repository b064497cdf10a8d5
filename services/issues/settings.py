"""Settings of the issues service (env prefix ``GRIDWORK_``, on top of the shared ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import Settings

HERE = Path(__file__).parent


class IssuesSettings(Settings):
    """What the issues service needs beyond the shared settings.  Each is listed in the README."""

    issues_escalation_file: Path = Field(
        default=HERE / "escalation.toml",
        description="Escalation rules, deadlines per category/severity/level and the night window (TOML)",
    )
    issues_catalogue_file: Path = Field(
        default=HERE / "categories.toml", description="The five categories, their subcategories (TOML)"
    )
    issues_timer_poll_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often the deadline worker looks for due timers"
    )
    issues_gauge_refresh_seconds: float = Field(
        default=5,
        gt=0,
        le=300,
        description="How often the open/overdue/hotline-pending gauges are re-read from the board",
    )
    issues_duplicate_days: int = Field(
        default=14, ge=1, le=365, description="How recent an open issue must be to be suggested as a duplicate"
    )
    issues_duplicate_radius_m: float = Field(
        default=150, ge=1, description="Distance within which two located issues count as nearby"
    )

    # 12345 city service hotline
    hotline_callback_url: str | None = Field(
        default=None, description="Where status feedback on 12345 work orders is POSTed (none: held in the outbox)"
    )
    hotline_callback_token: str | None = Field(
        default=None, description="Bearer token sent with each feedback POST to the hotline"
    )
    hotline_callback_timeout_seconds: float = Field(default=5, gt=0, le=120)
    hotline_retry_attempts: int = Field(
        default=6, ge=1, le=100, description="Attempts per delivery round before the outbox row waits"
    )
    hotline_retry_wait_initial: float = Field(default=0.2, gt=0, description="First backoff (seconds)")
    hotline_retry_wait_max: float = Field(default=30, gt=0, description="Longest backoff (seconds)")
    hotline_outbox_poll_seconds: float = Field(default=0.25, gt=0, le=60)

    # Open311 GeoReport v2
    open311_api_keys: dict[str, str] = Field(
        default_factory=dict, description="Open311 api_key → jurisdiction (community id), JSON object"
    )
    open311_reports_per_minute: int = Field(
        default=30, ge=1, description="Open311 reports one api_key may file per minute (429 beyond)"
    )
    open311_device_reports_per_hour: int = Field(
        default=10, ge=1, description="Open311 reports one device or account may file per hour (429 beyond)"
    )
    open311_public_sources: list[str] = Field(
        default=["open311"],
        description="Sources of the issues Open311 GET shows (public, unauthenticated): by default only "
        "what 311 apps reported, so residents' complaints from other channels stay private",
    )
    open311_contact: str = Field(
        default="Community service station (社区党群服务驿站)", description="Open311 discovery contact"
    )
    open311_public_url: str | None = Field(
        default=None, description="Public base URL of the issues service, for Open311 discovery"
    )


def issues_settings(settings: Settings) -> IssuesSettings:
    """The issues settings for ``settings``: itself when already one, else upgraded from the environment."""
    if isinstance(settings, IssuesSettings):
        return settings
    return IssuesSettings(**settings.model_dump())
