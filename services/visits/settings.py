"""Settings of the visits service (env prefix ``GRIDWORK_``, on top of the shared ones)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.settings import Settings


class VisitsSettings(Settings):
    """The rules of the field app that a deployment may tune."""

    max_shift_hours: float = Field(default=16, gt=0, le=24, description="Longest shift in the grid")
    sync_batch_max: int = Field(default=500, ge=1, le=5000, description="Records per offline sync batch")
    volunteer_points_per_hour: int = Field(
        default=10, ge=0, description="Points a volunteer earns per hour when none are given"
    )
    directory_cache_seconds: float = Field(
        default=30, ge=0, description="How long a household's grid and tags are cached per process"
    )
    ledger_completion_bar: float = Field(
        default=0.9, gt=0, le=1, description="The community's ledger completion target (> 90%)"
    )
    import_max_rows: int = Field(default=100_000, ge=1, description="Largest ledger file accepted")
    import_max_inflated_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="What an XLSX ledger's parts may inflate to, in all"
    )
    import_max_shared_strings_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="What an XLSX ledger's shared strings may inflate to (every reader holds them in memory)",
    )
    visits_role: Literal["all", "api", "projections"] = Field(
        default="all",
        description=(
            "What this process runs: all (API and projections), api (HTTP only; scale it out), or "
            "projections (the read models only, on its own port)"
        ),
    )


def visits_settings(settings: Settings | None) -> VisitsSettings | None:
    """Upgrade shared settings (as the tests build them) to the visits service's settings."""
    if settings is None or isinstance(settings, VisitsSettings):
        return settings
    return VisitsSettings.model_validate(settings.model_dump())
