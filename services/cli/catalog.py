"""Every service of the system, as the command sees them: their specs, projections and migrations."""

from __future__ import annotations

from pathlib import Path

from services.issues.app import SPEC as ISSUES
from services.notify.app import SPEC as NOTIFY
from services.scoring.app import SPEC as SCORING
from services.visits.app import SPEC as VISITS

SPECS = (VISITS, ISSUES, SCORING, NOTIFY)
#: Every projection of every service, by name (for ``gridwork replay`` and the benchmarks).
PROJECTIONS = {p.name: p for spec in SPECS for p in spec.projections}
#: Every service's own migrations, in service order (shared/'s always go first: ``shared.db.migrate``).
MIGRATIONS: tuple[Path, ...] = tuple(path for spec in SPECS for path in spec.migrations)
