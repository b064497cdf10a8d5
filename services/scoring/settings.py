"""Settings of the scoring service (env prefix ``GRIDWORK_``), and the rulebook files they point to."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from shared.settings import Settings

from .domain import Rulebook, RulebookError, RuleSet, parse_rulebook

#: The rulebooks that come with the service (5plus1, 4plus1).
BUILTIN_DIR = Path(__file__).parent / "rulebooks"


def load_rulebook(path: Path) -> Rulebook:
    """Read and validate one rulebook file; :class:`RulebookError` says where it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RulebookError(f"{path}: {err}") from err
    return parse_rulebook(text, str(path))


def load_rulebooks(dirs: Iterable[Path] = ()) -> dict[str, Rulebook]:
    """The built-in rulebooks plus those in ``dirs``; a later file with the same id replaces an earlier one."""
    books: dict[str, Rulebook] = {}
    for folder in (BUILTIN_DIR, *dirs):
        for path in sorted(Path(folder).glob("*.toml")):
            book = load_rulebook(path)
            books[book.id] = book
    return books


class ScoringSettings(Settings):
    """What the scoring service needs beyond the shared settings."""

    # The scoring fold writes rows per worker-day, not per event: the more of a day's events one
    # batch holds, the fewer rows it writes (10,000 folds ~1.4x faster than 5,000 on a street).
    # A live tail still folds whatever has arrived, so this only matters when catching up.
    projection_batch: int = Field(default=10000, ge=1, le=10000)
    scoring_rulebook_dirs: list[Path] = Field(
        default_factory=list,
        description="Extra folders of rulebook TOML files (a community's own variant, no code change)",
    )
    scoring_rulebooks: dict[str, str] = Field(
        default_factory=dict,
        description='Community → rulebook id, e.g. {"xinhe": "4plus1"}; overrides the files\' `communities`',
    )
    scoring_default_rulebook: str = Field(default="5plus1", description="Rulebook of every other community")
    scoring_close_interval_seconds: float = Field(
        default=60, ge=0, description="How often ended periods are closed (0: never, e.g. on a replica)"
    )
    scoring_close_grace_seconds: float = Field(
        default=0, ge=0, description="Wait this long after a period ends before closing it"
    )
    scoring_close_lookback_days: int = Field(
        default=40, ge=1, le=800, description="Ended periods this far back are closed if still open"
    )
    scoring_gauge_refresh_seconds: float = Field(
        default=15, gt=0, description="How often gridwork_quota_completion_ratio is read from the board"
    )
    scoring_close_max_lag_events: int = Field(
        default=0, ge=0, description="Close only when the fold is at most this many events behind"
    )

    def rules(self) -> RuleSet:
        """The rulebooks and each community's choice, loaded from the files."""
        return RuleSet(
            load_rulebooks(self.scoring_rulebook_dirs), self.scoring_rulebooks, self.scoring_default_rulebook
        )


def scoring_settings(settings: Settings | None = None, **overrides: object) -> ScoringSettings:
    """Upgrade shared settings (e.g. a test's) to :class:`ScoringSettings`, reading the rest from the environment."""
    if isinstance(settings, ScoringSettings) and not overrides:
        return settings
    base = settings.model_dump() if settings is not None else {}
    return ScoringSettings(**{**base, **overrides})
